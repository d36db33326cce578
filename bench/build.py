"""How long building a learner takes, per preset, on ml-latest-small (with its items table: genres, year, tags).

``collab_learner`` settles the preset, runs the check of its side features when it asks for one
(``best``; ``dual`` on data with declared features: two or three inner models trained on an inner
split of the training rows, ``cflearn.select_features``), then assembles (loaders, network, a fastai
Learner). This script times, median of ``--repeats`` runs each: the check alone
(``select_features``), the factory alone (``collab_learner`` from the settled preset), and the two
together (``collab_learner`` from the preset's name), beside ``fast``'s build; and for ``best`` the
chosen features, ``cflearn.fit``'s time and the validation RMSE after it. Torch runs on one thread
(``torch.set_num_threads(1)``) so that the machine's load matters less.

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
    rows, builds, checks = [], {}, {}
    for name in cflearn.PRESETS:
        check, factory, whole = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            settled = cflearn.select_features(data, name)
            t1 = time.perf_counter()
            cflearn.collab_learner(data, settled, progress=False)
            t2 = time.perf_counter()
            cflearn.collab_learner(data, name, progress=False)
            t3 = time.perf_counter()
            check.append(t1 - t0)
            factory.append(t2 - t1)
            whole.append(t3 - t2)
        builds[name], checks[name] = median(factory), median(check)
        rows.append([name, f"{median(check):.3f}", f"{median(factory):.3f}", f"{median(whole):.3f}"])
    for row in rows:
        row.append(f"{builds[row[0]] / builds['fast']:.1f}x")
    learn = cflearn.collab_learner(data, "best", progress=False)
    t0 = time.perf_counter()
    cflearn.fit(learn)
    fit_s = time.perf_counter() - t0
    pred = cflearn.predict(learn, data.valid[data.user].tolist(), data.valid[data.item].tolist())
    rmse, _ = rmse_mae(pred["score"].to_numpy(), data.valid[data.rating].to_numpy())
    chosen = ", ".join(learn.cf.preset.feature_selection.get("chosen", [])) or "none"
    table = markdown_table(["preset", "check s (select_features)", "factory s (settled preset)",
                            "collab_learner s (by name)", "factory vs fast"], rows)
    notes = (f"`best`: the check chose {chosen}; it took {checks['best']:.1f} s against {fit_s:.1f} s for "
             f"`cflearn.fit` of the learner ({checks['best'] / fit_s:.2f}x); valid RMSE after the fit {rmse:.4f}. "
             "Medians of the repeats; torch on one thread.")
    print(table)
    print()
    print(notes)
    if args.record:
        append_results("Building a learner (collab_learner), per preset, ml-latest-small", table, notes)


if __name__ == "__main__":
    main()
