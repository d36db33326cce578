"""Fold-in for new users: does fitting a new user from 5 ratings beat the average-user fallback?

Protocol (each data set, each preset): hold out 10% of the users entirely (seeded); train on the
other users' ratings (the usual random 80/20 split of them, seed 42); for each held-out user with
more than 5 ratings, fold in their 5 earliest ratings and predict the rest. Compares, on the same
rows (items the model knows): the average-user fallback (``predict`` for an unknown user), a
plain L2 fold-in (``fold_in(..., l2=preset row_l2)``, the old default) and the empirical-Bayes
fold-in (the default). Data: ml-latest-small and synthetic ratings with planted tastes.

    python bench/fold_in.py [--no-record]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402

import cflearn  # noqa: E402

N_GIVEN = 5


def held_out_users(ratings: pd.DataFrame, user: str, seed: int = 42) -> set:
    users = np.sort(ratings[user].unique())
    rng = np.random.default_rng(seed)
    return set(rng.choice(users, max(1, len(users) // 10), replace=False).tolist())


def run(name: str, ds: cflearn.datasets.Dataset, preset: str) -> list[str]:
    user, item, rating, ts = (ds.columns[k] for k in ("user", "item", "rating", "timestamp"))
    out = held_out_users(ds.ratings, user)
    table = ds.ratings
    data = cflearn.from_df(table[~table[user].isin(out)], user, item, rating, ts, seed=42, items=ds.items)
    learn = cflearn.collab_learner(data, preset, progress=False, seed=0)
    cflearn.fit(learn)
    l2 = float(learn.cf.preset.row_l2 or 0.05)
    err: dict[str, list[np.ndarray]] = {"fallback": [], "plain L2": [], "empirical Bayes": []}
    seconds, users = 0.0, 0
    for _, rows in table[table[user].isin(out)].groupby(user):
        rows = rows.sort_values(ts, kind="stable")
        given, rest = rows.iloc[:N_GIVEN], rows.iloc[N_GIVEN:]
        rest = rest[learn.cf.items.encode(rest[item]) > 0]  # items the model knows
        if len(rest) == 0 or not (learn.cf.items.encode(given[item]) > 0).any():
            continue
        truth = rest[rating].to_numpy(float)
        fallback = cflearn.predict(learn, [-1] * len(rest), rest[item].tolist()).score.to_numpy()
        err["fallback"].append(fallback - truth)
        for label, kwargs in (("plain L2", {"l2": l2}), ("empirical Bayes", {})):
            t0 = time.perf_counter()
            folded = cflearn.fold_in(learn, dict(zip(given[item], given[rating])), **kwargs)
            seconds += time.perf_counter() - t0 if label == "empirical Bayes" else 0.0
            pred = cflearn.predict(learn, folded, rest[item].tolist()).score.to_numpy(float)
            err[label].append(np.clip(pred, *learn.cf.scale) - truth)
        users += 1
    rmse = {k: float(np.sqrt(np.mean(np.concatenate(v) ** 2))) for k, v in err.items()}
    n_rows = sum(len(v) for v in err["fallback"])
    print(f"{name} {preset}: {users} users, {n_rows} ratings: " + ", ".join(f"{k} {v:.4f}" for k, v in rmse.items()),
          flush=True)
    return [name, preset, str(users), f"{n_rows:,}", f"{rmse['fallback']:.4f}", f"{rmse['plain L2']:.4f}",
            f"{rmse['empirical Bayes']:.4f}", f"{rmse['empirical Bayes'] / rmse['fallback']:.3f}",
            f"{1000 * seconds / max(1, users):.1f}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    sets = {"ml-latest-small": cflearn.datasets.movielens("ml-latest-small"),
            "synthetic (planted tastes)": cflearn.datasets.synthetic(2000, 600, density=0.05, seed=1)}
    rows = [run(name, ds, preset) for name, ds in sets.items() for preset in ("fast", "best")]
    header = ["data", "preset", "held-out users", "ratings predicted", "fallback RMSE", "plain L2 fold-in",
              "fold-in (default)", "vs fallback", "ms per fold-in"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_record:
        append_results("Fold-in: new users from their 5 earliest ratings", table,
                       "10% of the users held out entirely (seed 42); the model trains on the others; each held-out "
                       "user's 5 earliest ratings are folded in and the rest predicted. Fallback: the average user. "
                       "Plain L2: `fold_in(l2=row_l2)`. Default: the empirical-Bayes prior (cflearn.serve._fold).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
