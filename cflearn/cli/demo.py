"""``cflearn demo``: train the default preset on MovieLens (or, offline, a synthetic set) and write a run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._training import run_folder, train_and_write

NAME = "demo"
SUMMARY = "train on MovieLens (local or downloaded), else on synthetic data; print RMSE"
ORDER = 10


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``demo`` command's arguments."""
    from ..kinds._presets import DEFAULT_PRESET, PRESETS

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
    demo.add_argument("--threads", type=int, metavar="N",
                      help="torch's and BLAS's threads while training (default: the cores free when training "
                           "starts; OMP_NUM_THREADS, when set, stands)")
    demo.add_argument("--offline", action="store_true", help="never try to download")
    demo.add_argument("--force", action="store_true", help="replace --out even if it holds something else than an "
                      "earlier demo run")
    return demo


def run(args: argparse.Namespace) -> int:
    """Run ``cflearn demo``; the exit code."""
    from .. import datasets
    from .._errors import CflearnError
    from ..data._spec import DataSpec
    from ..runs._fitrun import RunSpec

    try:
        ds = datasets.movielens("ml-latest-small", download=not args.offline, timeout=15)
        print(f"data: {ds.name}, {len(ds.ratings):,} ratings from {ds.path}")
    except CflearnError as e:
        ds = datasets.synthetic(n_users=600, n_items=1200, density=0.06, seed=args.seed)
        print(f"MovieLens is not available here ({e})")
        print(f"data: training on a SYNTHETIC MovieLens-like set instead ({len(ds.ratings):,} ratings, planted tastes)")
    out = Path(args.out)
    with run_folder(out, force=args.force, kind="demo") as run:
        if run is not None and run.out.exists() and any(run.out.iterdir()):
            print(f"note: replacing the previous run in {out}")
        spec = RunSpec(DataSpec(seed=args.seed, valid_pct=0.2), preset=args.preset, epochs=args.epochs,
                       threads=args.threads, source=ds.name, command="demo")
        return train_and_write(ds, out, spec, run=run)
