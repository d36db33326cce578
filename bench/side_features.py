"""Side features: does `best` (item genres, year, tags; kept only when an inner split says they help)
beat `fast`, on warm rows, on cold items, and on data where the features carry no signal?

Rows (valid RMSE, mean over model seeds 0 and 1, the same split for every model):

- ml-latest-small, random 80/20 (seed 42);
- ml-latest-small, cold items: 10% of the movies held out entirely (seed 42);
- synthetic ratings whose item factors follow planted genres, random 80/20;
- the same ratings with the genres shuffled across items (no signal left), random 80/20;
- the planted ratings with the user ``group`` declared as a user feature (tastes follow it) and the
  genres declared as item features, then both shuffled (declared features that carry nothing).

    python bench/side_features.py [--no-record]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402

import cflearn  # noqa: E402

SEEDS = (0, 1)


def score(data: cflearn.CollabData, preset: str) -> tuple[float, float, str]:
    """Mean valid RMSE over SEEDS, mean seconds (building + fit), and what best chose."""
    v = data.valid
    rmses, secs, chose = [], [], ""
    for seed in SEEDS:
        t0 = time.perf_counter()
        learn = cflearn.collab_learner(data, preset, progress=False, seed=seed)
        cflearn.fit(learn)
        secs.append(time.perf_counter() - t0)
        pred = cflearn.predict(learn, v[data.user].tolist(), v[data.item].tolist()).score.to_numpy()
        rmses.append(cflearn.metrics.rmse(pred, v[data.rating].to_numpy()))
        sel = learn.cf.preset.feature_selection
        if sel:
            chose = f"kept {', '.join(sel['chosen']) or 'none'} (of {', '.join(sel['features'])})"
    return float(np.mean(rmses)), float(np.mean(secs)), chose


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    ml = cflearn.datasets.movielens("ml-latest-small")
    planted = cflearn.datasets.synthetic(800, 500, density=0.05, seed=3)
    shuffled = planted.items.copy()
    shuffled["genres"] = shuffled["genres"].sample(frac=1, random_state=0).to_numpy()
    no_groups = planted.users.copy()
    no_groups["group"] = no_groups["group"].sample(frac=1, random_state=0).to_numpy()
    sets = {
        "ml-latest-small, random 80/20": cflearn.from_df(ml, valid_pct=0.2, seed=42),
        "ml-latest-small, cold items (10% of movies)": cflearn.from_df(ml, split="cold_items", valid_pct=0.1, seed=42),
        "synthetic, planted genres": cflearn.from_df(planted, seed=42),
        "synthetic, genres shuffled (no signal)": cflearn.from_df(dataclasses.replace(planted, items=shuffled),
                                                                  seed=42),
        "synthetic, planted genres + user groups (declared)": cflearn.from_df(
            planted, user_features=["group"], item_features=["genres"], seed=42),
        "synthetic, genres and user groups shuffled (declared)": cflearn.from_df(
            dataclasses.replace(planted, items=shuffled, users=no_groups), user_features=["group"],
            item_features=["genres"], seed=42),
    }
    rows = []
    for name, data in sets.items():
        with warnings.catch_warnings():  # fast says it leaves declared features unused
            warnings.simplefilter("ignore", UserWarning)
            fast, fast_s, _ = score(data, "fast")
        best, best_s, chose = score(data, "best")
        rows.append([name, f"{fast:.4f}", f"{best:.4f}", f"{best / fast:.3f}", chose, f"{best_s / fast_s:.1f}x"])
        print(rows[-1], flush=True)
    header = ["data", "fast RMSE", "best RMSE", "best / fast", "best's inner split", "best's time / fast"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_record:
        append_results("Side features: best (genres, year, tags, chosen on an inner split) against fast", table,
                       f"Valid RMSE, mean of model seeds {SEEDS}; time includes best's inner split (two extra "
                       "trainings on 90% of the training rows).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
