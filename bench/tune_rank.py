"""Choose the ``rank`` preset's settings on inner splits of *training* rows only.

For each data set, the evaluation split's training rows are split again (the inner split); each
candidate trains on the inner training rows and is scored by NDCG@10 on the inner validation rows
(random: 10% of the training rows). The evaluation split is never looked at. Candidates vary one
setting at a time around the preset.

Data sets: ml-latest-small (random 80/20 seed 42; and each user's last 5 ratings held out), and a
synthetic implicit table of another shape (more users than items, no ratings).

    python bench/tune_rank.py            # prints the table; --record appends it to bench/RESULTS.md
    python bench/tune_rank.py --candidates '[{}, {"dropout": 0.5}]' --seeds 0,7,11   # other candidates, seeds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table  # noqa: E402
from ranking import score  # noqa: E402

import cflearn  # noqa: E402

CANDIDATES: list[dict[str, object]] = [
    {},
    {"epochs": 20}, {"epochs": 40},
    {"lr": 5e-3}, {"lr": 2e-2},
    {"n_factors": 128}, {"n_factors": 300},
    {"dropout": 0.3}, {"dropout": 0.7},
    {"below_weight": 0.2}, {"below_weight": 1.0},
    {"bs": 128},
]


INNER_PCT = 0.1
"""Share of the training rows the random inner split holds out: its training rows (72% of the data) are
close in size to the outer split's (80%), since the best capacity (factors, epochs) grows with data."""


def outer_sets() -> dict[str, cflearn.CollabData]:
    ml = cflearn.datasets.movielens("ml-latest-small")
    syn = cflearn.datasets.synthetic(4000, 1500, density=0.02, implicit=True, popularity=0.9, seed=3)
    return {"ml-latest-small random": cflearn.from_df(ml, seed=42),
            "ml-latest-small last 5": cflearn.from_df(ml, split="leave_last", n_last=5),
            "synthetic implicit": cflearn.from_df(syn, seed=42)}


def inner(data: cflearn.CollabData) -> cflearn.CollabData:
    """The inner split of the outer training rows (same protocol as the outer split)."""
    train = data.train
    kw = dict(user=data.user, item=data.item, timestamp=data.timestamp, implicit=data.implicit or None)
    if data.implicit:
        kw["weight"] = None
    else:
        kw["rating"] = data.rating
    if data.split == "leave_last":
        return cflearn.from_df(train, split="leave_last", n_last=5, **kw)
    return cflearn.from_df(train, seed=1, valid_pct=INNER_PCT, **kw)


def ndcg(learn, data: cflearn.CollabData, n: int = 10) -> float:
    """NDCG@n of the learner on ``data``'s validation rows, by bench/ranking.py's protocol."""
    return score(data, learn.cf, learn.cf, n)[f"ndcg@{n}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--candidates", help="JSON list of preset changes (default: the built-in list)")
    ap.add_argument("--seeds", default="0", help="model seeds, comma-separated: each cell is their mean")
    args = ap.parse_args()
    candidates = json.loads(args.candidates) if args.candidates else CANDIDATES
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(2)
    sets = {name: inner(d) for name, d in outer_sets().items()}
    header = ["change from preset 'rank'"] + list(sets) + ["mean", "fit s (ml random)"]
    rows = []
    for cand in candidates:
        scores, secs = [], 0.0
        for name, d in sets.items():
            if d.implicit and "below_weight" in cand:
                scores.append(float("nan"))
                continue
            per_seed = []
            for seed in seeds:
                learn = cflearn.collab_learner(d, "rank", progress=False, seed=seed, **cand)
                t = time.perf_counter()
                cflearn.fit(learn)
                if name.endswith("random"):
                    secs = time.perf_counter() - t
                per_seed.append(ndcg(learn, d))
            scores.append(float(np.mean(per_seed)))
        label = ", ".join(f"{k}={v}" for k, v in cand.items()) or "(preset)"
        rows.append([label] + [f"{s:.4f}" for s in scores] + [f"{np.nanmean(scores):.4f}", f"{secs:.1f}"])
        print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(header, rows)
    print(table)
    if args.record:
        append_results("rank preset: inner-split tuning (NDCG@10 on inner validation rows of the training data)",
                       table, f"Each column: the outer split's training rows split again (random "
                       f"{INNER_PCT:.0%} with seed 1, or each user's last 5); the outer validation rows are "
                       f"never used. Model seeds {seeds} (mean). "
                       "2 torch threads.")


if __name__ == "__main__":
    main()
