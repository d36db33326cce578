"""A training run end to end, as ``cflearn fit`` and ``cflearn demo`` do it: encode the table, choose
the side features, build, train, evaluate, and write the run folder (metrics, loss plot, model,
report) all at once (:class:`cflearn.runs._runs.RunFolder`). The command line only parses and prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data._spec import DataSpec
from ..kinds._presets import DEFAULT_PRESET

if TYPE_CHECKING:
    import pandas as pd
    from fastai.learner import Learner

    from ..data._data import CollabData

__all__ = ["FitRun", "RunSpec", "run_fit", "release_training_state"]


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


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A ``cflearn fit`` run: how to read the table, how to train, and what the run records.

    Attributes:
        data: how :func:`cflearn.from_df` reads the table (its ``seed`` also seeds the feature check,
            the weights and the shuffling).
        preset, epochs, device: as :func:`cflearn.collab_learner` takes them.
        keep_best, patience, threads: as :func:`cflearn.fit` takes them (``threads`` also holds for the
            feature check and the evaluation).
        source: where the data came from (recorded in ``metrics.json`` and the report).
        command: the command recorded in ``metrics.json``.
    """

    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    preset: str = DEFAULT_PRESET
    epochs: int | None = None
    device: str | None = None
    keep_best: bool = False
    patience: int | None = None
    threads: int | None = None
    source: str = "data"
    command: str = "fit"


def run_fit(source_data: Any, out: Path, spec: RunSpec, *, run: Any = None, callbacks: Sequence[Any] = (),
            say: Callable[[str], Any] | None = None) -> FitRun | None:
    """Train on a table as ``spec`` says and write the run into ``out`` (through ``run``, a held
    :class:`RunFolder`, when given).

    Args:
        source_data: a DataFrame or :class:`cflearn.datasets.Dataset`, or a one-element list holding
            one (the list is emptied, so the raw table can be freed once encoded).
        out: the run folder.
        spec: the run (:class:`RunSpec`).
        run: the held :class:`cflearn.runs._runs.RunFolder` to write into and commit.
        callbacks: more fastai callbacks for training (e.g. an epoch printer).
        say: prints progress lines (the data, the feature check, the training settings); ``None``: silent.

    Returns:
        The :class:`FitRun`; ``None`` on a rank other than 0 of a distributed run (rank 0 writes).
    """
    from .. import __version__
    from .._errors import CflearnError
    from .._io import atomic_write_bytes, atomic_write_json
    from .._memory import release_memory
    from ..callbacks import ReleaseMemory
    from ..data._data import from_df
    from ..evaluation._evaluate import evaluate
    from ..report._plots import plot_loss
    from ..report._report import run_samples, write_report
    from ..serve._export import save
    from ..train._distributed import is_main, leave, world
    from ..train._fit import fit
    from ..train._launch import launcher_alive
    from ..train._learner import collab_learner
    from ..train._select import select_features
    from ..train._threads import training_threads

    seed, epochs, device, source = spec.data.seed, spec.epochs, spec.device, spec.source
    table = source_data.pop() if isinstance(source_data, list) else source_data  # a list: ours to drop
    data = from_df(table, spec=spec.data)
    del table
    release_memory()  # between steps: a large file's freed text and temporaries go back to the system
    if say is not None:
        say(str(data))
    with training_threads(spec.threads) as threads:  # the feature check, training and evaluation
        settled = select_features(data, spec.preset, epochs=epochs, seed=seed, device=device, verbose=say is not None)
        learn = collab_learner(data, settled, epochs=epochs, seed=seed, device=device, progress=False,
                               cbs=[*callbacks, ReleaseMemory()])
        p = learn.cf.preset
        n_proc = world()
        if say is not None:
            say(_training_line(learn, n_proc, threads))
        fit(learn, interrupt="raise", keep_best=spec.keep_best, patience=spec.patience)
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
        "processes": n_proc, "threads": threads.n, "threads_reason": threads.reason,
        "split": data.split, "valid_pct": data.valid_pct, "device": str(learn.cf.device), "data": source,
        "command": spec.command,
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


def _training_line(learn: Learner, n_proc: int, threads: Any) -> str:
    """``training: preset 'best' (10 epochs, bs 4096) on cpu, 2 threads (2.0 of 2 cores free); item features
    genres, year``, with what the model's kind says of it (:meth:`cflearn.kinds.Kind.training_note`)."""
    from ..kinds import get_kind

    p = learn.cf.preset
    procs = f" x {n_proc} processes (bs {p.bs // n_proc} each)" if n_proc > 1 else ""
    sides = "; ".join(f"{side} features {', '.join(cols)}"
                      for side, cols in (("item", p.item_features), ("user", p.user_features)) if cols)
    note = get_kind(p.kind).training_note(p)
    heads = f"; {note}" if note else ""
    return (f"training: preset {p.name!r} ({p.epochs} epochs, bs {p.bs}) on {learn.cf.device}, {threads}{procs}"
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
