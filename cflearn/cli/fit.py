"""``cflearn fit``: train on a ratings file and write a run folder (metrics, loss plot, model, report)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._training import run_folder, train_and_write

NAME = "fit"
SUMMARY = "train on your ratings file and write metrics.json, loss.png, model.safetensors, report.html"
ORDER = 20


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``fit`` command's arguments."""
    from ..kinds._presets import DEFAULT_PRESET, PRESETS

    fit = sub.add_parser("fit", help="train on a ratings file and write metrics, loss plot and model",
                         description="Train on RATINGS (delimited text, Parquet, Feather, JSON or Excel) and write "
                                     "metrics.json, loss.png and "
                                     "model.safetensors to --out. The input file is only read.")
    fit.add_argument("ratings", metavar="RATINGS", help="ratings file: delimited text (also gzip/bz2/xz/zip), "
                     "Parquet, Feather, JSON or Excel, recognised by content")
    fit.add_argument("--user", required=True, metavar="COL", help="user ID column")
    fit.add_argument("--item", required=True, metavar="COL", help="item ID column")
    fit.add_argument("--rating", metavar="COL", help="rating column (leave out for interactions: clicks, plays)")
    fit.add_argument("--implicit", action="store_true", help="treat the rows as interactions (ranking metrics only; "
                     "with --rating, every rating is an interaction, or those >= --threshold)")
    fit.add_argument("--threshold", type=float, metavar="X", help="with --implicit: keep rows rated at least X")
    fit.add_argument("--rating-range", type=float, nargs=2, metavar=("LO", "HI"),
                     help="the rating scale, e.g. 1 5 (default: observed); ratings outside it are an error, and a "
                          "column that looks like counts is accepted as ratings only with it")
    fit.add_argument("--weight", metavar="COL", help="interaction weight column (play counts); implies --implicit")
    fit.add_argument("--timestamp", metavar="COL", help="timestamp column (optional)")
    fit.add_argument("--items", metavar="FILE", help="item metadata table with the --item column (titles, genres, "
                     "year, tags, ...): preset best uses the genres, year and tags it finds")
    fit.add_argument("--items-id", metavar="COL", help="the ID column of --items when it is not named as --item "
                     "(e.g. id)")
    fit.add_argument("--items-title", metavar="COL", help="the column of --items to show as titles (default: title, "
                     "else text under a name-like header such as name or WineName, mostly distinct, else the first "
                     "text column with 90%% distinct values)")
    fit.add_argument("--item-features", metavar="COLS", help="comma-separated columns of --items for the hybrid "
                     "model (multi-valued text with |, numbers, categories; 'year' from a title)")
    fit.add_argument("--users", metavar="FILE", help="user metadata table with the --user column (age, gender, "
                     "occupation, ...)")
    fit.add_argument("--users-id", metavar="COL", help="the ID column of --users when it is not named as --user")
    fit.add_argument("--user-features", metavar="COLS", help="comma-separated columns of --users for the hybrid "
                     "model (new users can then be scored from their metadata)")
    fit.add_argument("--sep", help="column separator (default: sniffed); use '\\t' for tabs")
    fit.add_argument("--no-header", action="store_true", help="the file has no header row (columns are 0, 1, ...)")
    fit.add_argument("--encoding", help="text encoding, e.g. latin-1 (default: utf-8; UTF-16 is recognised)")
    fit.add_argument("--decimal", default=".", choices=[".", ","], help="decimal mark of the ratings (default: .)")
    fit.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                     help=f"training preset (default: {DEFAULT_PRESET}: ratings and top-N lists from one model; on "
                          "interactions, its ranking head); see `cflearn presets`")
    fit.add_argument("--epochs", type=int, help="override the preset's epochs")
    fit.add_argument("--keep-best", action="store_true",
                     help="end with the weights of the epoch with the lowest validation loss "
                          "(recorded in metrics.json; a learned two-headed model keeps each head's own best: "
                          "RMSE, ranking loss)")
    fit.add_argument("--patience", type=int, metavar="N",
                     help="stop after N epochs without a lower validation loss (either head's own, for a learned "
                          "two-headed model), keeping the best epoch")
    fit.add_argument("--valid-pct", type=float, default=0.2, help="fraction held out (default: 0.2)")
    fit.add_argument("--split", default="random", choices=["random", "time", "leave_last", "cold_users", "cold_items"],
                     help="how to hold out validation rows (default: random)")
    fit.add_argument("--seed", type=int, default=42, help="seed (default: 42)")
    fit.add_argument("--duplicates", choices=["mean", "sum", "last", "error"],
                     help="repeated (user, item) rows: average, add up (interactions), keep last, or fail "
                          "(default: mean for ratings, sum for interactions)")
    fit.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    fit.add_argument("--nproc", type=int, metavar="N",
                     help="train with N processes (data-parallel, DistributedDataParallel): starts torchrun itself; "
                          "under torchrun (`torchrun --nproc-per-node N -m cflearn fit ...`) leave it out")
    fit.add_argument("--threads", type=int, metavar="N",
                     help="torch's and BLAS's threads while training (default: the cores free when training starts; "
                          "OMP_NUM_THREADS, when set, stands)")
    fit.add_argument("--out", required=True, metavar="DIR", help="output folder")
    fit.add_argument("--force", action="store_true", help="write into --out even if it already holds files")
    fit.set_defaults(start=_start_processes)  # --nproc N: torchrun runs the command N times
    return fit


def run(args: argparse.Namespace) -> int:
    """Run ``cflearn fit``; the exit code."""
    from ..data._read import read_ratings
    from ..data._spec import DataSpec
    from ..runs._fitrun import RunSpec
    from ..runs._runs import check_target

    out = Path(args.out)
    src = Path(args.ratings)
    _side_options(args)
    check_target(out, [src, args.items, args.users])  # before reading anything: never a run over its inputs
    if not src.is_file():  # answered before pandas is imported
        from .._errors import DataError

        if src.exists():
            kind = "a folder" if src.is_dir() else "a device, pipe or socket"
            raise DataError(f"the ratings file {src} is not a regular file ({kind}); give a CSV, TSV, Parquet, "
                            "Feather, JSON or Excel file")
        raise DataError(f"ratings file not found: {src}")
    sep = _separator(args.sep) if args.sep else None
    kwargs = {"encoding": args.encoding} if args.encoding else {}
    named = [c for c in (args.user, args.item, args.rating, args.timestamp, args.weight) if c is not None]
    columns = None if args.no_header else named  # only the columns used: less memory on large files
    frame = read_ratings(src, sep=sep, header=None if args.no_header else "infer", columns=columns,
                         decimal=args.decimal, **kwargs)
    if args.no_header:
        frame.columns = [str(c) for c in frame.columns]
    from ..data._columns import find_column

    for name, role in ((args.user, "user"), (args.item, "item"), (args.rating, "rating"), (args.weight, "weight"),
                       (args.timestamp, "timestamp")):  # a misspelt column is refused before torch loads
        if name is not None:
            find_column(frame, name, None, role)
    for col in (args.user, args.item):  # integer IDs that fit take int32: 200 MB less on 25M ratings
        if col in frame.columns and frame[col].dtype.kind == "i" and len(frame) and \
                -2**31 <= frame[col].min() and frame[col].max() < 2**31:
            frame[col] = frame[col].astype("int32")
    holder = [frame]  # train_and_write drops the raw table once it is encoded (less memory on large files)
    del frame
    items, item_features = _read_side_table(args.items, args.item_features, "item", kwargs)
    users, user_features = _read_side_table(args.users, args.user_features, "user", kwargs)
    with run_folder(out, force=args.force, kind="fit", inputs=[str(src), args.items, args.users]) as run:
        data = DataSpec(user=args.user, item=args.item, rating=args.rating, timestamp=args.timestamp,
                        valid_pct=args.valid_pct, seed=args.seed, split=args.split, duplicates=args.duplicates,
                        rating_range=tuple(args.rating_range) if args.rating_range else None,
                        implicit=True if args.implicit or (args.rating is None and args.threshold is None) else None,
                        threshold=args.threshold, weight=args.weight, items=items, item_id=args.items_id,
                        item_title=args.items_title, item_features=item_features, users=users,
                        user_id=args.users_id, user_features=user_features)
        spec = RunSpec(data, preset=args.preset, epochs=args.epochs, device=args.device, keep_best=args.keep_best,
                       patience=args.patience, threads=args.threads, source=str(src), command="fit")
        return train_and_write(holder, out, spec, run=run)


def _start_processes(args: argparse.Namespace, argv: list[str]) -> int | None:
    """``--nproc N``: start torchrun with N processes (its exit code), or ``None`` to run here (no
    ``--nproc``, N = 1, or already under torchrun with N processes)."""
    from .._errors import ConfigError
    from ..train._launch import launch, max_processes, torchrun_env, without_nproc

    if args.nproc is None:
        return None
    if args.nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {args.nproc}")
    job = torchrun_env()
    if job is not None:
        if args.nproc not in (1, job.world):
            raise ConfigError(f"--nproc {args.nproc} under torchrun, which started {job.world} processes; leave "
                              "--nproc out under torchrun")
        return None
    if args.nproc == 1:
        return None
    from ..kinds import one_process_only
    from ..kinds._presets import get_preset

    refused = one_process_only(get_preset(args.preset))  # asked of the kind: a registered one says so too
    if refused is not None:  # before any process starts
        raise ConfigError(f"--nproc {args.nproc}: {refused}")
    limit, what = max_processes(args.device)
    if args.nproc > limit:
        raise ConfigError(f"--nproc {args.nproc} is more than the {limit} {what} here; use at most --nproc {limit}")
    return launch(args.nproc, without_nproc(argv))


def _side_options(args: argparse.Namespace) -> None:
    """An option about a side table given without that table is an error, not ignored."""
    from .._errors import ConfigError

    for option, value, table in (("--items-id", args.items_id, args.items), ("--items-title", args.items_title,
                                                                              args.items),
                                 ("--users-id", args.users_id, args.users)):
        if value is not None and table is None:
            flag = "--items" if option.startswith("--items") else "--users"
            raise ConfigError(f"{option} {value} names a column of the {flag} table, but no {flag} FILE was given; "
                              f"add {flag} FILE or drop {option}")


def _separator(text: str) -> str:
    """``--sep`` as typed: a character as it is (``§``, ``;``), backslash escapes read (``\\t`` is a tab)."""
    from .._errors import ConfigError

    if "\\" not in text:
        return text
    try:
        value = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        value = ""
    if not value or "\\" in value and len(value) > 1:
        raise ConfigError(f"--sep {text!r} is not a separator: give the character itself (e.g. ';' or '|') or an "
                          "escape such as '\\t' (tab) or '\\x1f'")
    return value


def _read_side_table(path: str | None, features: str | None, side: str,
                kwargs: dict[str, Any]) -> tuple[Any, tuple[str, ...] | None]:
    """A ``--items`` / ``--users`` table and its ``--*-features`` columns."""
    from .._errors import ConfigError
    from ..data._read import read_ratings

    if features is not None and path is None:
        raise ConfigError(f"--{side}-features needs --{side}s FILE (the table that holds those columns)")
    table = None
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"{side}s file not found: {path}")
        table = read_ratings(path, **kwargs)
    cols = None if features is None else tuple(c.strip() for c in features.split(",") if c.strip())
    return table, cols
