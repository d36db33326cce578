"""A training run end to end, as ``cflearn fit`` and ``cflearn demo`` do it: encode the table, choose
the side features, build, train, evaluate, and write the run folder (metrics, loss plot, model,
report) all at once (:class:`cflearn.runs._runs.RunFolder`). The command line only parses and prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pandas as pd
    from fastai.learner import Learner

    from ..data._data import CollabData

__all__ = ["FitRun", "run_fit", "release_training_state"]


@dataclasses.dataclass
class FitRun:
    """What :func:`run_fit` trained and wrote.

    Attributes:
        learn: the trained learner (its optimizer state and training rows released).
        data: the encoded data.
        table: :func:`cflearn.evaluate`'s table (the model and the baselines).
        metrics: what ``metrics.json`` holds.
    """

    learn: Learner
    data: CollabData
    table: pd.DataFrame
    metrics: dict[str, Any]


def run_fit(source_data: Any, out: Path, *, preset: str, epochs: int | None, seed: int, valid_pct: float,
            source: str, split: str = "random", duplicates: str | None = None, items: Any = None,
            item_features: tuple[str, ...] | None = None, users: Any = None,
            user_features: tuple[str, ...] | None = None,
            columns: tuple[str | None, ...] = (None, None, None, None), device: str | None = None,
            implicit: dict[str, Any] | None = None, run: Any = None, command: str = "fit",
            keep_best: bool = False, patience: int | None = None, callbacks: Sequence[Any] = (),
            say: Callable[[str], Any] | None = None) -> FitRun | None:
    """Train on a table and write the run into ``out`` (through ``run``, a held :class:`RunFolder`, when given).

    Args:
        source_data: a DataFrame or :class:`cflearn.datasets.Dataset`, or a one-element list holding
            one (the list is emptied, so the raw table can be freed once encoded).
        out: the run folder.
        preset, epochs, seed, valid_pct, split, duplicates: as :func:`cflearn.from_df` and
            :func:`cflearn.collab_learner` take them.
        source: where the data came from (recorded).
        items, item_features, users, user_features: side tables and the features declared on them.
        columns: user, item, rating and timestamp columns.
        device: where to train.
        implicit: :func:`cflearn.from_df`'s options for interactions (``implicit``, ``threshold``, ...).
        run: the held :class:`cflearn.runs._runs.RunFolder` to write into and commit.
        command: the command recorded in ``metrics.json``.
        keep_best, patience: as :func:`cflearn.fit`.
        callbacks: more fastai callbacks for training (e.g. an epoch printer).
        say: prints progress lines (the data, the feature check, the training settings); ``None``: silent.

    Returns:
        The :class:`FitRun`; ``None`` on a rank other than 0 of a distributed run (rank 0 writes).
    """
    from .. import __version__
    from ..data._data import Duplicates, from_df
    from ..train._distributed import is_main, leave, world
    from .._errors import CflearnError
    from ..evaluation._evaluate import evaluate
    from ..serve._export import save
    from ..train._fit import fit
    from .._io import atomic_write_bytes, atomic_write_json
    from ..train._launch import launcher_alive
    from ..train._learner import collab_learner
    from .._memory import release_memory
    from ..report._plots import plot_loss
    from ..report._report import run_samples, write_report
    from ..train._select import select_features
    from ..data._splits import SplitName
    from ..callbacks import ReleaseMemory

    user, item, rating, timestamp = columns
    table = source_data.pop() if isinstance(source_data, list) else source_data  # a list: ours to drop
    data = from_df(table, user, item, rating, timestamp, valid_pct=valid_pct, seed=seed,
                   split=cast(SplitName, split), duplicates=cast("Duplicates | None", duplicates), items=items,
                   users=users, item_features=item_features, user_features=user_features,
                   **{k: v for k, v in (implicit or {}).items() if v is not None})
    del table
    release_memory()  # between steps: a large file's freed text and temporaries go back to the system
    if say is not None:
        say(str(data))
    settled = select_features(data, preset, epochs=epochs, seed=seed, device=device, verbose=say is not None)
    learn = collab_learner(data, settled, epochs=epochs, seed=seed, device=device, progress=False,
                           cbs=[*callbacks, ReleaseMemory()])
    p = learn.cf.preset
    n_proc = world()
    if say is not None:
        say(_training_line(learn, n_proc))
    fit(learn, interrupt="raise", keep_best=keep_best, patience=patience)
    main_rank = is_main()
    leave()  # training is over on every rank: leave the group together
    if not main_rank:  # every rank holds the same model; rank 0 evaluates and writes
        return None
    kept_loss = _kept_loss(learn)  # before the training state goes: it may validate once more
    release_training_state(learn)
    release_memory()
    table = evaluate(learn, n=10)
    release_memory()
    mine = table.loc[next(name for name in table.index if str(name).startswith("model"))]  # by name, not position
    ratings = "rmse" in table.columns and mine["rmse"] == mine["rmse"]
    baseline = float(table["rmse"].get("global mean", float("nan"))) if "rmse" in table.columns else float("nan")
    metrics = {
        "rmse": float(mine["rmse"]) if ratings else None, "mae": float(mine["mae"]) if ratings
        else None, "baseline_rmse_global_mean": baseline if baseline == baseline else None,
        "ndcg@10": float(mine["ndcg@10"]), "implicit": data.implicit,
        "valid_loss": kept_loss,  # the kept weights
        "loss": str(getattr(learn.loss_func, "label", "MSE")),
        "n_train": len(data.train_idx), "n_valid": len(data.valid_idx), "cold_valid_rows": data.cold["rows"],
        "fit_seconds": round(learn.cf.fit_seconds, 3), "epochs": p.epochs, "epochs_run": learn.cf.epochs_run,
        "kept_epoch": learn.cf.kept_epoch, "kept_heads": learn.cf.kept_heads, "preset": p.name, "seed": seed,
        "processes": n_proc,
        "split": split, "valid_pct": valid_pct, "device": str(learn.cf.device), "data": source, "command": command,
        "cflearn_version": __version__,
        "evaluation": {"n": 10, "relevance": table.attrs["relevance"], "cold_relevant": table.attrs["cold_relevant"],
                       "methods": {name: {c: (None if v != v else float(v)) for c, v in row.items()}
                                   for name, row in table.iterrows()}},
        "data_summary": data.summary(),
        "samples": run_samples(learn.cf, data),
    }
    where = run.tmp if run is not None else out  # everything in a private folder, moved into place at the end
    fig = plot_loss(learn, title=f"cflearn {p.name} on {Path(source).name}")
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    try:
        atomic_write_bytes(where / "loss.png", buf.getvalue())
        save(learn, where / "model.safetensors")
        atomic_write_json(where / "metrics.json", metrics)
        write_report(where, model=learn.cf)
        if run is not None:
            if not launcher_alive():  # `cflearn fit --nproc N` was stopped while this process finished
                raise KeyboardInterrupt
            run.commit()
    except OSError as e:
        raise CflearnError(f"could not write the run to {out}: {e.strerror or e}"
                           f"{f' ({e.filename})' if e.filename else ''}; nothing was written there") from None
    return FitRun(learn, data, table, metrics)


def _training_line(learn: Learner, n_proc: int) -> str:
    """``training: preset 'best' (10 epochs, bs 4096) on cpu; item features genres, year``, with what the
    model's kind says of it (:meth:`cflearn.kinds.Kind.training_note`)."""
    from ..kinds import get_kind

    p = learn.cf.preset
    procs = f" x {n_proc} processes (bs {p.bs // n_proc} each)" if n_proc > 1 else ""
    sides = "; ".join(f"{side} features {', '.join(cols)}"
                      for side, cols in (("item", p.item_features), ("user", p.user_features)) if cols)
    note = get_kind(p.kind).training_note(p)
    heads = f"; {note}" if note else ""
    return (f"training: preset {p.name!r} ({p.epochs} epochs, bs {p.bs}) on {learn.cf.device}{procs}"
            + heads + (f"; {sides}" if sides else ""))


def release_training_state(learn: Any) -> None:
    """Drop what only training needs before a run evaluates and writes: the optimizer's state, a ranking
    loss's targets and the training loader's rows (on 25M ratings each is about 300 MB). The learner
    is not trained again."""
    import torch

    from ..data._loaders import TensorDataset
    from ..kinds._ranking import RankTargets

    learn.opt = None
    rank = getattr(learn.loss_func, "rank", learn.loss_func)
    if isinstance(getattr(rank, "targets", None), RankTargets):
        empty = torch.zeros(0, dtype=torch.long)
        rank.targets = RankTargets(torch.zeros(1, dtype=torch.long), empty, empty.float())
    train: Any = getattr(learn.dls, "train", None)  # the training rows' copy in the loader (about 300 MB on 25M)
    if isinstance(getattr(train, "dataset", None), TensorDataset):
        ds = train.dataset
        train.dataset = TensorDataset(ds.x[:0], None if ds.y is None else ds.y[:0])
    if isinstance(getattr(train, "pairs", None), torch.Tensor):
        train.pairs, train.ratings = train.pairs[:0], train.ratings[:0]


def _kept_loss(learn: Any) -> float:
    """The validation loss of the weights the model holds: the kept epoch's, or, where each head kept its own
    epoch, the loss of the two heads together measured again."""
    if learn.cf.kept_heads and len(set(learn.cf.kept_heads.values())) > 1:
        return float(learn.validate()[0])
    return float(learn.loss_history.valid_losses[max(1, learn.cf.kept_epoch) - 1])
