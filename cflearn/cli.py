"""The ``cflearn`` command: demo, fit, predict, recommend, presets."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._presets import Preset

__all__ = ["main"]

DESCRIPTION = """Collaborative filtering on top of fastai: train a recommender from a ratings table.

commands:
  demo      train on MovieLens (local or downloaded), else on synthetic data; print RMSE
  fit       train on your ratings file and write metrics.json, loss.png, model.safetensors, report.html
  predict   predicted rating of a user for items, from a saved model
  recommend top-N items for a user, from a saved model
  report    (re)write the HTML report of a `cflearn fit` run folder
  presets   list the training presets
"""


def _parser() -> argparse.ArgumentParser:
    from ._presets import DEFAULT_PRESET, PRESETS

    parser = argparse.ArgumentParser(prog="cflearn", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cflearn {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="train on MovieLens or synthetic data and print RMSE",
                          description="Train the default preset on ml-latest-small (from $CFLEARN_DATA, the cache, or "
                                      "a verified download); offline without the data, train on a synthetic set "
                                      "and say so. Writes the outputs of `cflearn fit` to --out.")
    demo.add_argument("--out", default="runs/demo", help="output folder; each demo run overwrites its three "
                                                         "files there (default: runs/demo)")
    demo.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                      help=f"training preset (default: {DEFAULT_PRESET}: ratings and top-N lists)")
    demo.add_argument("--epochs", type=int, help="override the preset's epochs")
    demo.add_argument("--seed", type=int, default=42, help="seed of split, weights and shuffling (default: 42)")
    demo.add_argument("--offline", action="store_true", help="never try to download")
    demo.add_argument("--force", action="store_true", help="replace --out even if it holds something else than an "
                      "earlier demo run")
    demo.set_defaults(run=_demo)

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
    fit.add_argument("--out", required=True, metavar="DIR", help="output folder")
    fit.add_argument("--force", action="store_true", help="write into --out even if it already holds files")
    fit.set_defaults(run=_fit)

    pred = sub.add_parser("predict", help="predicted ratings from a saved model",
                          description="Print the predicted rating of USER for each ITEM (raw IDs as in the data).")
    pred.add_argument("model", metavar="MODEL", help="model.safetensors written by `cflearn fit`")
    pred.add_argument("--user", required=True, help="raw user ID")
    pred.add_argument("--item", required=True, nargs="+", help="raw item ID(s)")
    pred.set_defaults(run=_predict)

    rec = sub.add_parser("recommend", help="top-N items for a user from a saved model",
                         description="Print the top-N items for USER (unseen in training), best first. An unknown "
                                     "user gets the most popular items, and the output says so. A new user known "
                                     "only by metadata: --features col=value ... (a model fit with --user-features).")
    rec.add_argument("model", metavar="MODEL", help="model.safetensors written by `cflearn fit`")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="raw user ID")
    who.add_argument("--features", nargs="+", metavar="COL=VALUE",
                     help="a new user's metadata, e.g. age=25 gender=F occupation=writer")
    rec.add_argument("-n", type=int, default=10, help="how many items (default: 10)")
    rec.add_argument("--include-seen", action="store_true", help="also list items the user rated in training")
    rec.add_argument("--min-ratings", type=int, default=1,
                     help="only items with at least this many training ratings (default: 1)")
    rec.set_defaults(run=_recommend)

    rep = sub.add_parser("report", help="write the HTML report of a run folder",
                         description="Write RUN_DIR/report.html: one self-contained page (images inline, no network, "
                                     "no JavaScript) with the data, settings, loss plot, evaluation, biases, factor "
                                     "map, sample recommendations and similar items of a `cflearn fit` run.")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `cflearn fit` (or `cflearn demo`)")
    rep.add_argument("--out", metavar="FILE", help="write here instead of RUN_DIR/report.html")
    rep.set_defaults(run=_report)

    sub.add_parser("presets", help="list the training presets",
                   description="List the training presets.").set_defaults(run=_presets)

    crs = sub.add_parser("course", help="hand out the course's notebooks, or grade filled-in exercises",
                         description="`cflearn course DIR` writes the lessons and the exercises (solutions replaced "
                                     "by ____) into DIR and puts MovieLens ml-latest-small where the notebooks find "
                                     "it. `cflearn course --check NOTEBOOK ...` runs each filled-in exercise "
                                     "notebook (or every notebook in a folder) and prints a score table.")
    crs.add_argument("dest", nargs="?", metavar="DIR", help="folder for a student's copy of the course")
    crs.add_argument("--check", nargs="+", metavar="NOTEBOOK", help="grade these exercise notebooks (or folders)")
    crs.add_argument("--force", action="store_true", help="write into DIR even if it already holds files")
    crs.add_argument("--timeout", type=_positive_int, default=600,
                     help="seconds a notebook cell may run (default: 600); a cell that runs longer is stopped and "
                          "the rest of the notebook still runs")
    crs.add_argument("--time-limit", type=_positive_int, default=1800,
                     help="seconds a whole notebook may run (default: 1800); cells past it are not run, and the "
                          "questions answered before it are still checked")
    crs.add_argument("--max-output", type=float, default=5.0, metavar="MB",
                     help="megabytes of output a cell may print (default: 5); beyond it the output is cut and the "
                          "cell stopped")
    crs.add_argument("--grades", default="grades.csv", metavar="FILE",
                     help="the gradebook to write when grading (default: grades.csv here): a row per student, "
                          "notebook and question; per-student totals go to FILE's name + '-totals.csv'")
    crs.set_defaults(run=_course)
    return parser


def _positive_int(text: str) -> int:
    """An argument that must be a whole number of at least 1 (argparse reports the rest)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 cflearn error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    from ._errors import CflearnError

    with _cflearn_warnings(), _terminated() as stopped:
        try:
            if getattr(args, "nproc", None) is not None:
                code = _start_processes(args, argv)
                if code is not None:
                    return code
            from ._launch import torchrun_env, watch_launcher

            if torchrun_env() is not None:
                watch_launcher()
            return int(args.run(args))
        except CflearnError as e:
            print(f"cflearn: error: {_shown(_cli_words(str(e)))}", file=sys.stderr)
            return 1
        except (MemoryError, RuntimeError) as e:
            if not isinstance(e, MemoryError) and "allocate" not in str(e) and "out of memory" not in str(e):
                raise
            from ._errors import first_line

            print(f"cflearn: error: out of memory ({_shown(first_line(e))[:200]}); use a machine with more memory, "
                  "or fewer ratings", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            from ._runs import COMMITTED

            done = f"the run was already written to {_shown(COMMITTED[-1])}" if COMMITTED else (
                "nothing was written (an earlier run in --out is untouched)")
            print(f"cflearn: interrupted; {done}", file=sys.stderr)
            return 143 if stopped else 130


class _terminated:
    """While a command runs in the main thread, SIGTERM interrupts it as Ctrl-C does (the run's temporary
    folder is removed, one line is printed); the list it yields is non-empty once SIGTERM came."""

    def __enter__(self) -> list[int]:
        import signal
        import threading

        self.got: list[int] = []
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            def stop(signum: int, _frame: object) -> None:
                self.got.append(signum)
                if len(self.got) == 1:  # once: a second SIGTERM (torchrun's and the launcher watch's) must
                    raise KeyboardInterrupt  # not break into the clean-up the first one started

            self._previous = signal.signal(signal.SIGTERM, stop)
        return self.got

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _say_better_lists(table: Any, model_ndcg: float, preset: Preset) -> None:
    """One line when a baseline's top-10 lists beat the model's by more than 1%, with what to try."""
    better = {name: float(v) for name, v in table["ndcg@10"].items()
              if not str(name).startswith("model") and v == v and float(v) > 1.01 * model_ndcg}
    if not better:
        return
    name = max(better, key=better.__getitem__)
    if preset.rank_head == "item_item":
        what = ("the ranking head is EASE solved in closed form already (items with 5 ratings); on this split the "
                "baseline's lists are better")
    else:
        what = "try more --epochs" + (", or --preset rank" if preset.name != "rank" else "")
    print(f"note: the {name!r} baseline's top-10 lists beat the model's (NDCG@10 {better[name]:.4f} against "
          f"{model_ndcg:.4f}); {what}")


def _start_processes(args: argparse.Namespace, argv: list[str]) -> int | None:
    """``--nproc N``: start torchrun with N processes (its exit code), or ``None`` to run here (N = 1, or
    already under torchrun with N processes)."""
    from ._errors import ConfigError
    from ._launch import launch, max_processes, torchrun_env, without_nproc

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
    from ._presets import get_preset
    from .kinds import get_kind

    preset = get_preset(args.preset)
    if not get_kind(preset.kind).distributed:  # asked of the kind: a registered one says so too
        raise ConfigError(f"--nproc {args.nproc}: preset {preset.name!r} trains in one process (its model kind "
                          f"{preset.kind!r} is not sharded); leave --nproc out, or train a rating preset with several "
                          "processes: --preset fast (or best)")
    limit, what = max_processes(args.device)
    if args.nproc > limit:
        raise ConfigError(f"--nproc {args.nproc} is more than the {limit} {what} here; use at most --nproc {limit}")
    return launch(args.nproc, without_nproc(argv))


class _cflearn_warnings:
    """While a command runs, cflearn's warnings print as one escaped line (``cflearn: warning: ...``) and
    other libraries' warnings (torch's deprecations) are not shown: stderr carries cflearn's words only."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("default")
        warnings.showwarning = self._show

    def __exit__(self, *exc: Any) -> None:
        self._catch.__exit__(*exc)

    @staticmethod
    def _show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        from ._errors import CflearnWarning

        if issubclass(category, CflearnWarning):
            print(f"cflearn: warning: {_shown(message)}", file=sys.stderr)


# -- commands -----------------------------------------------------------------------------------
def _presets(args: argparse.Namespace) -> int:
    from ._presets import DEFAULT_PRESET, PRESETS
    from .kinds import get_kind

    for p in PRESETS.values():
        print(f"{p.name:<8} {p.description}" + (" [the default]" if p.name == DEFAULT_PRESET else ""))
        print(f"{'':<8} {get_kind(p.kind).describe(p)}")  # the kind says how its presets train
    print(f"\nThe default, {DEFAULT_PRESET!r}, answers both questions: predicted ratings (RMSE as 'fast') and "
          "top-N lists (NDCG@10 1.000-1.006x EASE's on the rated sets of bench/suite.py, 1.02-1.12x on its "
          "interaction sets; on synthetic catalogues of 10,000-60,000 items 1.01-1.06x its EASE, 0.98-0.99x a "
          "full EASE). Pick 'fast' for ratings alone (quicker), 'best' when side features help ratings, 'rank' "
          "for lists alone (1.01-1.08x EASE's on FilmTrust and planted synthetic ratings, 1.00x on "
          "ml-latest-small), 'book' to follow fastbook chapter 8; docs/guide/presets.md says which wins on which "
          "shape of data.")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ._export import load
    from ._predict import predict

    cf = load(args.model)
    user = _coerce_id(args.user, cf.users)
    items = [_coerce_id(i, cf.items) for i in args.item]
    table = predict(cf, [user] * len(items), items)
    if table.attrs.get("score_kind") == "ranking":
        print(f"preset {cf.preset.name!r} ranks: these are ranking scores (higher = recommended first), "
              "not ratings")
    words = {"average user": "an unknown user, scored as the average user",
             "average item": "an unknown item, scored as the average item",
             "average user and item": "an unknown user and item, scored as the average ones",
             "user features": "a user known only by metadata, scored from their features",
             "item features": "an item known only by metadata, scored from its features"}
    for row in table.itertuples():
        fallback = str(row.fallback)
        flag = f"  ({', '.join(words.get(part, part) for part in fallback.split(', '))})" if fallback else ""
        print(f"user {_shown(row.user)} item {_shown(row.item)}: {row.score:.3f}{flag}")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from ._export import load
    from ._recommend import cold_user, recommend

    cf = load(args.model)
    features = None if args.features is None else _pairs(args.features)
    user = cold_user(cf, features) if features is not None else _coerce_id(args.user, cf.users)
    top = recommend(cf, user, n=args.n, exclude_seen=not args.include_seen, min_ratings=args.min_ratings)
    if features is not None:
        shown = ", ".join(f"{k}={_shown(v)}" for k, v in features.items())
        how = ("scored from their features" if user.chart <= 0 else
               "the most popular items (this model's user features did not help users held out as new)"
               if user.source != "user features" else
               "the most popular items (this model's lists do not use user features; its predicted ratings do)"
               if user.chart >= 1 else
               f"scored from their features, leaning on the most popular items ({user.chart:.0%}: the features "
               "helped users held out as new only in part)")
        print(f"top {len(top)} for a new user ({shown}), {how}:")
    elif (top["fallback"] == "popular").any():
        print(f"user {_shown(user)} is not in the training data: showing the most popular items (score: their "
              "number of training ratings)")
    elif len(top) < args.n:
        print(f"top {len(top)} for user {_shown(user)} (only {len(top)} items they have not rated are left to "
              "recommend):")
    else:
        print(f"top {len(top)} for user {_shown(user)}:")
    extra = [c for c in ("title", "genres") if c in top.columns]
    rated = "rating" in top.columns and not (top["fallback"] == "popular").any()
    for row in top.itertuples():
        label = " ".join(_shown(getattr(row, c)) for c in extra)
        stars = f"  predicted {row.rating:.1f}" if rated else ""
        print(f"{row.rank:>3}. {_shown(row.item):<10} {row.score:5.2f}{stars}  {label}".rstrip())
    return 0


def _pairs(items: list[str]) -> dict[str, str]:
    """``["age=25", "gender=F"]`` -> ``{"age": "25", "gender": "F"}``."""
    from ._errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--features takes COL=VALUE pairs, got {item!r} (e.g. --features age=25 gender=F)")
        if key.strip() in out:
            raise ConfigError(f"--features gives {key.strip()!r} twice ({out[key.strip()]!r} and {value.strip()!r}); "
                              "give each column once")
        out[key.strip()] = value.strip()
    return out


def _course(args: argparse.Namespace) -> int:
    from ._errors import ConfigError, DataError
    from .course import copy_course, grade
    from .course._grade import read_submission
    from .course._gradebook import GradeBook

    if (args.dest is None) == (args.check is None):
        raise ConfigError("give either DIR (hand out the course) or --check NOTEBOOK ... (grade), not both")
    if args.dest is not None:
        written, data = copy_course(args.dest, force=args.force)
        lessons = sum(1 for p in written if p.parent.name != "exercises")
        print(f"wrote {lessons} lessons and {len(written) - lessons} exercises to {_shown(args.dest)}; its README.md "
              f"is the syllabus; start with {_shown(written[0].name)} (jupyter lab {_shown(args.dest)})")
        print(_shown(data))
        return 0
    if not 0 < args.max_output < float("inf"):
        raise ConfigError(f"--max-output takes a number of megabytes above 0, got {args.max_output}")
    found = [found for given in map(Path, args.check) for found in _submissions(given)]
    if not found:
        raise ConfigError(f"no notebooks in {', '.join(map(_shown, args.check))}")
    read: list[tuple[Path, dict[str, Any] | None, str]] = []
    for path in found:  # every submission read before any runs: none can delete another
        try:
            read.append((path, read_submission(path), ""))
        except DataError as e:
            read.append((path, None, str(e)))
    book = GradeBook(Path(args.grades))
    failed = 0
    students = _students([(path, notebook) for path, notebook, _ in read])
    for (path, notebook, error), student in zip(read, students):
        try:
            if notebook is None:
                raise DataError(error)
            graded = grade(path, notebook=notebook, timeout=args.timeout, time_limit=args.time_limit,
                           max_output=int(args.max_output * 2**20))
        except (DataError, OSError) as e:  # one broken submission does not stop the grading of the others
            failed += 1
            print(f"{_shown(path)}: not graded: {_shown(e)}")
            book.add(student, path, None, str(e))
            continue
        results = graded.results
        passed = sum(r.passed for r in results)
        failed += passed < len(results)
        print(f"{_shown(path)}: {passed}/{len(results)} passed")
        width = max(len(r.question) for r in results) if results else 2
        for r in results:
            print(f"  {r.question:<{width}}  {'passed' if r.passed else r.status:<12}  {_shown(r.message)}")
        for note in graded.notes:
            print(f"  note: {_shown(note)}")
        book.add(student, path, results, "; ".join(graded.notes))
    grades, totals = book.write()
    print(f"wrote {_shown(grades)} and {_shown(totals)}")
    return 0 if not failed else 3


def _submissions(given: Path) -> list[Path]:
    """The notebooks to grade: ``given`` itself, or the notebooks in that folder and in its
    sub-folders (one level down: ``submissions/alice/ex03.ipynb``)."""
    from ._errors import ConfigError

    if given.is_file():
        return [given]
    if not given.is_dir():
        raise ConfigError(f"no notebook {_shown(given)}")
    own = [p for p in sorted(given.glob("*.ipynb")) if not p.name.startswith(".")]
    return own + [p for d in sorted(given.iterdir()) if d.is_dir() and not d.name.startswith(".")
                  for p in sorted(d.glob("*.ipynb")) if not p.name.startswith(".")]


def _students(notebooks: list[tuple[Path, dict[str, Any] | None]]) -> list[str]:
    """Each notebook's student: the name of the folder holding it (``alice/ex03.ipynb``), or the
    file's own name when its folder holds two answers to the same exercise (``alice.ipynb``,
    ``bob.ipynb``)."""
    from ._errors import DataError
    from .course._grade import lesson_of

    def lesson(notebook: dict[str, Any] | None) -> int | None:
        try:
            return lesson_of(notebook, "") if notebook is not None else None
        except DataError:
            return None

    lessons = [lesson(nb) for _, nb in notebooks]
    shared: set[Path] = set()
    for folder in {p.parent.resolve() for p, _ in notebooks}:
        here = [les for (p, _), les in zip(notebooks, lessons) if p.parent.resolve() == folder and les is not None]
        if len(here) > len(set(here)):
            shared.add(folder)
    return [p.stem if p.parent.resolve() in shared else p.parent.resolve().name
            for p, _ in notebooks]


def _report(args: argparse.Namespace) -> int:
    from ._report import write_report

    path = write_report(args.run_dir, out=args.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


def _shown(value: Any) -> str:
    """Text safe for a terminal (:func:`cflearn._errors.printable`)."""
    from ._errors import printable

    return printable(value)


_OPTIONS = ("preset", "epochs", "valid_pct", "seed", "sep", "encoding", "decimal", "duplicates", "weight",
            "threshold", "item_features", "user_features", "item_id", "item_title", "user_id", "device")
_OPTION = re.compile(r"\b(" + "|".join(_OPTIONS) + r")=('([^']*)'|\(([^)]*)\)|[^\s,;)]+)")


def _cli_words(message: str) -> str:
    """An API error in the command line's words: ``preset='rank'`` -> ``--preset rank``, ``implicit=True``
    -> ``--implicit``, ``rating_range=(1, 5)`` -> ``--rating-range 1 5``."""
    def flag(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(3) if m.group(3) is not None else m.group(2)
        flag_name = {"item_id": "items-id", "item_title": "items-title", "user_id": "users-id"}.get(
            name, name.replace("_", "-"))
        return f"--{flag_name} {value}"

    message = re.sub(r"cflearn\.from_df\(\.\.\., (user|item)s=\.\.\., \1_features=\[\.\.\.\]\)",
                     r"--\1s FILE --\1-features COLS", message)  # the API's way to declare side features
    message = _OPTION.sub(flag, message)
    message = re.sub(r"\brating_range=\(([^,)]+),\s*([^)]+)\)", r"--rating-range \1 \2", message)
    return message.replace("implicit=True", "--implicit")


def _coerce_id(text: str, vocab: Any) -> Any:
    """A command-line ID as the vocabulary's type (``'31'`` -> ``31`` when IDs are integers)."""
    if text in vocab or vocab.ids.dtype.kind not in "iu":
        return text
    try:
        return int(text)
    except ValueError:
        return text  # predict/recommend say that the IDs are ints


def _demo(args: argparse.Namespace) -> int:
    from . import datasets
    from ._errors import CflearnError

    try:
        ds = datasets.movielens("ml-latest-small", download=not args.offline, timeout=15)
        print(f"data: {ds.name}, {len(ds.ratings):,} ratings from {ds.path}")
    except CflearnError as e:
        ds = datasets.synthetic(n_users=600, n_items=1200, density=0.06, seed=args.seed)
        print(f"MovieLens is not available here ({e})")
        print(f"data: training on a SYNTHETIC MovieLens-like set instead ({len(ds.ratings):,} ratings, planted tastes)")
    out = Path(args.out)
    with _run_folder(out, force=args.force, kind="demo") as run:
        if run is not None and run.out.exists() and any(run.out.iterdir()):
            print(f"note: replacing the previous run in {out}")
        return _train_and_write(ds, out, preset=args.preset, epochs=args.epochs, seed=args.seed, valid_pct=0.2,
                                source=ds.name, run=run, command="demo")


def _side_options(args: argparse.Namespace) -> None:
    """An option about a side table given without that table is an error, not ignored."""
    from ._errors import ConfigError

    for option, value, table in (("--items-id", args.items_id, args.items), ("--items-title", args.items_title,
                                                                              args.items),
                                 ("--users-id", args.users_id, args.users)):
        if value is not None and table is None:
            flag = "--items" if option.startswith("--items") else "--users"
            raise ConfigError(f"{option} {value} names a column of the {flag} table, but no {flag} FILE was given; "
                              f"add {flag} FILE or drop {option}")


def _fit(args: argparse.Namespace) -> int:
    from ._read import read_ratings
    from ._runs import check_target

    out = Path(args.out)
    src = Path(args.ratings)
    _side_options(args)
    check_target(out, [src, args.items, args.users])  # before reading anything: never a run over its inputs
    if not src.is_file():  # answered before pandas is imported
        from ._errors import DataError

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
    from ._columns import find_column

    for name, role in ((args.user, "user"), (args.item, "item"), (args.rating, "rating"), (args.weight, "weight"),
                       (args.timestamp, "timestamp")):  # a misspelt column is refused before torch loads
        if name is not None:
            find_column(frame, name, None, role)
    for col in (args.user, args.item):  # integer IDs that fit take int32: 200 MB less on 25M ratings
        if col in frame.columns and frame[col].dtype.kind == "i" and len(frame) and \
                -2**31 <= frame[col].min() and frame[col].max() < 2**31:
            frame[col] = frame[col].astype("int32")
    holder = [frame]  # _train_and_write drops the raw table once it is encoded (less memory on large files)
    del frame
    items, item_features = _read_side_table(args.items, args.item_features, "item", kwargs)
    users, user_features = _read_side_table(args.users, args.user_features, "user", kwargs)
    with _run_folder(out, force=args.force, kind="fit", inputs=[str(src), args.items, args.users]) as run:
        return _train_and_write(holder, out, preset=args.preset, epochs=args.epochs, seed=args.seed,
                                keep_best=args.keep_best, patience=args.patience,
                                items=items, item_features=item_features, users=users,
                                user_features=user_features,
                                valid_pct=args.valid_pct, split=args.split, duplicates=args.duplicates,
                                columns=(args.user, args.item, args.rating, args.timestamp), device=args.device,
                                source=str(src), implicit={"implicit": True if args.implicit or (
                                    args.rating is None and args.threshold is None) else None,
                                                           "threshold": args.threshold, "weight": args.weight,
                                                           "rating_range": tuple(args.rating_range)
                                                           if args.rating_range else None,
                                                           "item_id": args.items_id, "item_title": args.items_title,
                                                           "user_id": args.users_id},
                                run=run, command="fit")


def _separator(text: str) -> str:
    """``--sep`` as typed: a character as it is (``§``, ``;``), backslash escapes read (``\\t`` is a tab)."""
    from ._errors import ConfigError

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
    from ._errors import ConfigError
    from ._read import read_ratings

    if features is not None and path is None:
        raise ConfigError(f"--{side}-features needs --{side}s FILE (the table that holds those columns)")
    table = None
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"{side}s file not found: {path}")
        table = read_ratings(path, **kwargs)
    cols = None if features is None else tuple(c.strip() for c in features.split(",") if c.strip())
    return table, cols


def _run_folder(out: Path, *, force: bool, kind: str, inputs: Sequence[str | None] = ()) -> Any:
    """The run folder's lock and temporary folder (:class:`RunFolder`), held by the process that writes:
    rank 0 under torchrun; the other ranks get ``None``."""
    import contextlib

    from ._launch import torchrun_env
    from ._runs import RunFolder

    job = torchrun_env()
    if job is not None and job.rank != 0:
        return contextlib.nullcontext(None)

    class _Held(RunFolder):
        def __enter__(self) -> Any:  # the folder object itself: the caller writes into .tmp and commits
            super().__enter__()
            return self

    return _Held(out, force=force, kind=kind, inputs=inputs)


def _train_and_write(source_data: Any, out: Path, *, preset: str, epochs: int | None, seed: int, valid_pct: float,
                     source: str, run: Any = None, command: str = "fit", keep_best: bool = False,
                     patience: int | None = None, **data_options: Any) -> int:
    """Run :func:`cflearn._fitrun.run_fit` with the command line's progress lines, then print its table."""
    from ._distributed import is_main
    from ._fitrun import run_fit
    from .callbacks import EpochPrinter
    from .metrics import summary_columns

    result = run_fit(source_data, out, preset=preset, epochs=epochs, seed=seed, valid_pct=valid_pct, source=source,
                     run=run, command=command, keep_best=keep_best, patience=patience,
                     callbacks=[EpochPrinter(bar=sys.stdout.isatty())], say=print if is_main() else None,
                     **data_options)
    if result is None:  # a rank other than 0: rank 0 writes and prints
        return 0
    learn, table, metrics, p = result.learn, result.table, result.metrics, result.learn.cf.preset
    print()
    cols = [c for c in summary_columns(table.attrs["n"]) if c in table.columns]
    print(f"{'validation':<22}" + "".join(f"{c:>12}" for c in cols))
    for name, row in table.iterrows():
        print(f"{name:<22}" + "".join(f"{'-':>12}" if row[c] != row[c] else f"{row[c]:>12.4f}" for c in cols))
    if table.attrs["cold_relevant"]:
        print(f"({table.attrs['cold_relevant']:,} relevant validation items have no training row: no list can hold "
              "them, each counts as a miss for every method)")
    kind = "interactions" if metrics["implicit"] else "ratings"
    rows = f"{metrics['n_train']:,} train / {metrics['n_valid']:,} valid {kind}"
    ndcg = table["ndcg@10"].to_dict()
    if metrics["rmse"] is not None:
        print(f"\nvalid RMSE {metrics['rmse']:.4f} (global mean: {metrics['baseline_rmse_global_mean']:.4f}); {rows}; "
              f"fit {metrics['fit_seconds']:.2f} s")
        if learn.cf.contract.list_kind == "ranking":
            print(f"valid NDCG@10 {metrics['ndcg@10']:.4f} from the ranking head (most popular: "
                  f"{ndcg['most popular']:.4f}, EASE: {ndcg['EASE']:.4f})")
            _say_better_lists(table, metrics["ndcg@10"], p)
        elif metrics["ndcg@10"] < ndcg["most popular"]:
            print("note: ranked by predicted rating, this model's top-10 lists are worse than the most-popular chart; "
                  "for lists, train the default preset (dual) or --preset rank")
        better = {name: float(r) for name, r in table["rmse"].items()
                  if not str(name).startswith("model") and r == r and float(r) < metrics["rmse"]}
        if better:
            name = min(better, key=better.__getitem__)
            print(f"note: the {name!r} baseline predicts these ratings better than the model (RMSE {better[name]:.4f} "
                  f"against {metrics['rmse']:.4f}): its factors do not help as trained; try more --epochs, another "
                  "--preset (fast is the default's rating head), or the baseline itself")
    else:
        why = ("the data are interactions" if metrics["implicit"] else
               f"preset {p.name!r} ranks, its scores are not ratings")
        print(f"\nvalid NDCG@10 {metrics['ndcg@10']:.4f} (most popular: {ndcg['most popular']:.4f}, EASE: "
              f"{ndcg['EASE']:.4f}); ranking metrics only ({why}); {rows}; fit {metrics['fit_seconds']:.2f} s")
        _say_better_lists(table, metrics["ndcg@10"], p)
    print()
    if keep_best or patience is not None:
        ran = learn.cf.epochs_run
        stopped = f"stopped after {ran} of {p.epochs} epochs; " if ran != p.epochs else ""
        heads = learn.cf.kept_heads
        kept = (f"kept the rating head of epoch {heads['rating']} (the lowest validation RMSE) and the ranking head "
                f"of epoch {heads['ranking']} (the lowest validation ranking loss)" if heads and len(heads) == 2 else
                f"kept the weights of epoch {learn.cf.kept_epoch} (the lowest validation loss)")
        print(f"{stopped}{kept}")
    print(f"wrote {out / 'metrics.json'}, {out / 'loss.png'}, {out / 'model.safetensors'}, {out / 'report.html'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
