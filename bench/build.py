"""How long building a learner takes, per preset, on ml-latest-small (with its items table: genres, year, tags).

``collab_learner`` only assembles (settle the preset, build loaders and network, wrap a fastai
Learner); the feature check of ``best`` and ``dual`` (it trains two or three inner models) is its own
step, ``cflearn.select_features``, which ``cflearn.fit`` runs first. This script times both, median of
``--repeats`` runs each, and the ratio of each build to ``fast``'s (the same invocation), and for
``best`` the chosen features and the validation RMSE after ``cflearn.fit`` (which must not change with
the architecture). Torch runs on one thread (``torch.set_num_threads(1)``) so that the machine's load
matters less.

    python bench/build.py [--record] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table, median, movielens_split, rmse_mae  # noqa: E402

import cflearn  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    data = movielens_split()
    cflearn.collab_learner(data, "fast", progress=False)  # imports and first-use costs out of the timings
    builds: dict[str, float] = {}
    for name in cflearn.PRESETS:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            cflearn.collab_learner(data, name, progress=False)
            times.append(time.perf_counter() - t0)
        builds[name] = median(times)
    t0 = time.perf_counter()
    settled = cflearn.select_features(data, "best")
    select_s = time.perf_counter() - t0
    learn = cflearn.collab_learner(data, "best", progress=False)
    cflearn.fit(learn)
    pred = cflearn.predict(learn, data.valid[data.user].tolist(), data.valid[data.item].tolist())
    rmse, _ = rmse_mae(pred["score"].to_numpy(), data.valid[data.rating].to_numpy())
    chosen = ", ".join(learn.cf.preset.feature_selection.get("chosen", [])) or "none"
    rows = [[name, f"{s:.3f}", f"{s / builds['fast']:.1f}x"] for name, s in builds.items()]
    table = markdown_table(["preset", "collab_learner s (median)", "vs fast"], rows)
    picked = ", ".join(settled.item_features) or "none"
    notes = (f"`cflearn.select_features(data, 'best')`: {select_s:.1f} s (chose {picked}). "
             f"`collab_learner(data, 'best')` + `cflearn.fit`: chose {chosen}, valid RMSE {rmse:.4f}.")
    print(table)
    print()
    print(notes)
    if args.record:
        append_results("Building a learner (collab_learner), per preset, ml-latest-small", table, notes)


if __name__ == "__main__":
    main()
