"""What ``cflearn demo`` and ``cflearn fit`` share: the run folder, the training run and its summary."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..kinds._presets import Preset
    from ..runs._fitrun import RunSpec

__all__ = ["run_folder", "train_and_write", "say_better_lists"]


def run_folder(out: Path, *, force: bool, kind: str, inputs: Sequence[str | None] = ()) -> Any:
    """The run folder's lock and temporary folder (:class:`RunFolder`), held by the process that writes:
    rank 0 under torchrun; the other ranks get ``None``."""
    import contextlib

    from ..runs._runs import RunFolder
    from ..train._launch import torchrun_env

    job = torchrun_env()
    if job is not None and job.rank != 0:
        return contextlib.nullcontext(None)

    class _Held(RunFolder):
        def __enter__(self) -> Any:  # the folder object itself: the caller writes into .tmp and commits
            super().__enter__()
            return self

    return _Held(out, force=force, kind=kind, inputs=inputs)


def train_and_write(source_data: Any, out: Path, spec: RunSpec, *, run: Any = None) -> int:
    """Run :func:`cflearn.runs._fitrun.run_fit` with the command line's progress lines, then print its table."""
    from ..callbacks import EpochPrinter
    from ..metrics import summary_columns
    from ..runs._fitrun import run_fit
    from ..train._distributed import is_main

    result = run_fit(source_data, out, spec, run=run, callbacks=[EpochPrinter(bar=sys.stdout.isatty())],
                     say=print if is_main() else None)
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
            say_better_lists(table, metrics["ndcg@10"], p)
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
        say_better_lists(table, metrics["ndcg@10"], p)
    print()
    if spec.keep_best or spec.patience is not None:
        ran = learn.cf.epochs_run
        stopped = f"stopped after {ran} of {p.epochs} epochs; " if ran != p.epochs else ""
        heads = learn.cf.kept_heads
        kept = (f"kept the rating head of epoch {heads['rating']} (the lowest validation RMSE) and the ranking head "
                f"of epoch {heads['ranking']} (the lowest validation ranking loss)" if heads and len(heads) == 2 else
                f"kept the weights of epoch {learn.cf.kept_epoch} (the lowest validation loss)")
        print(f"{stopped}{kept}")
    print(f"wrote {out / 'metrics.json'}, {out / 'loss.png'}, {out / 'model.safetensors'}, {out / 'report.html'}")
    return 0


def say_better_lists(table: Any, model_ndcg: float, preset: Preset) -> None:
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
