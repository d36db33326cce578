"""Top-10 for every user of ml-latest-small in one call (seen items excluded), and evaluate().

Trains each preset once on the seeded 80/20 split, then times `recommend_all` over every
training user (671 users x 9,066 items) and `evaluate` (--repeats, median). Appends to RESULTS.md.

    python bench/recommend.py [--repeats 5] [--no-record]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, append_results, markdown_table, median, movielens_split  # noqa: E402

import cflearn  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    data = movielens_split()
    rows = []
    for preset in ["fast", "best", "fast_nn", "rank"]:
        learn = cflearn.collab_learner(data, preset, progress=False)
        cflearn.fit(learn)
        rec_t, eval_t = [], []
        for _ in range(args.repeats):
            with Timer() as t:
                top = cflearn.recommend_all(learn, n=10)
            rec_t.append(t.seconds)
            with Timer() as t:
                table = cflearn.evaluate(learn, n=10)
            eval_t.append(t.seconds)
        n_users, n_items = len(learn.cf.users) - 1, len(learn.cf.items) - 1
        rows.append([preset, f"{n_users} x {n_items:,}", f"{len(top):,}", f"{median(rec_t):.3f}",
                     f"{median(eval_t):.3f}", f"{table['ndcg@10'].iloc[0]:.4f}", f"{table['rmse'].iloc[0]:.4f}"])
        print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["preset", "users x items", "rows returned", "top-10 for all users (s)", "evaluate (s)",
                            "model ndcg@10", "model rmse"], rows)
    print(table)
    if not args.no_record:
        append_results(f"recommendations: top-10 for every ml-latest-small user, medians of {args.repeats}", table,
                       "One `recommend_all(learn, n=10)` call: seen items excluded, items with at least one training "
                       "rating. fast_nn scores with chunked forward passes instead of a matrix product.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
