"""Choose the default preset's settings (``dual``) on inner splits of the training rows, never the evaluation rows.

For each data set the outer split is the one the benchmarks evaluate on (ml-latest-small: the seed-42
random 80/20 split and each user's last 5 ratings; synthetic ratings with planted tastes); only its
*training* rows are used here, split again by the same protocol (random 20% / each user's last 5).
Each candidate differs from the base settings in one field. A candidate is scored by its inner
NDCG@10 over inner EASE's (mean over the sets), among those whose inner RMSE stays within 0.005 of
``fast``'s on every set; ties go to the cheaper fit (CPU seconds). Torch uses one thread (CPU
time is then the work done, not the threads' spinning).

    python bench/tune_dual.py [--record] [--round 1|2|3] [--seeds N] [--inner-valid 0.2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table  # noqa: E402

import cflearn  # noqa: E402

BASE: dict[str, object] = {}  # the preset as it is
CANDIDATES: dict[str, dict[str, object]] = {
    "base": {},
    "rank_factors 64": {"rank_factors": 64},
    "rank_factors 200": {"rank_factors": 200},
    "n_factors 32": {"n_factors": 32},
    "n_factors 128": {"n_factors": 128},
    "lr 0.01": {"lr": 0.01},
    "lr 0.03": {"lr": 0.03},
    "dropout 0.5": {"dropout": 0.5},
    "min_count 1": {"min_count": 1},
    "min_count 5": {"min_count": 5},
    "epochs 15": {"epochs": 15},
    "epochs 35": {"epochs": 35, "step_budget": 420},
    "rank_weight 0.1": {"rank_weight": 0.1},
    "rank_weight 10": {"rank_weight": 10.0},
    "row_l2 0.1": {"row_l2": 0.1},
    # round 2 (--round 2): the round-1 winner (rank_factors 64) combined with the other cheap gains
    "rank_factors 96": {"rank_factors": 96},
    "rank_factors 64, min_count 5": {"rank_factors": 64, "min_count": 5},
    "rank_factors 64, epochs 20": {"rank_factors": 64, "epochs": 20},
    # round 3 (--round 3 --seeds 3 --inner-valid 0.1): the close candidates of rounds 1-2, less noise
    "rank_factors 128, min_count 5": {"rank_factors": 128, "min_count": 5},
    "rank_factors 128, min_count 3": {"rank_factors": 128, "min_count": 3},
    "rank_factors 96, min_count 5": {"rank_factors": 96, "min_count": 5},
}
ROUNDS = {1: list(CANDIDATES)[:15], 2: ["base", "rank_factors 64", "rank_factors 96", "rank_factors 64, min_count 5",
                                       "rank_factors 64, epochs 20"],
          3: ["base", "rank_factors 128, min_count 5", "rank_factors 128, min_count 3", "rank_factors 96, min_count 5"]}


def inner_sets(valid: float = 0.2) -> dict[str, cflearn.CollabData]:
    ml = cflearn.datasets.movielens("ml-latest-small")
    random = cflearn.from_df(ml, seed=42)
    last = cflearn.from_df(ml, split="leave_last", n_last=5)
    synth = cflearn.from_df(cflearn.datasets.synthetic(1500, 2000, density=0.03, seed=7), seed=42)
    cols = dict(user="userId", item="movieId", rating="rating", timestamp="timestamp")
    return {"ml random": cflearn.from_df(random.train, **cols, valid_pct=valid, seed=0),
            "ml last-5": cflearn.from_df(last.train, **cols, split="leave_last", n_last=5),
            "synthetic": cflearn.from_df(synth.train, "user", "item", "rating", "timestamp", valid_pct=valid,
                                         seed=0)}


def run(data: cflearn.CollabData, preset: str, seeds: int = 1, **kw: object) -> tuple[dict[str, float], float]:
    """Metrics (mean over ``seeds`` model seeds) and CPU seconds per fit."""
    out: dict[str, float] = {}
    cpu = 0.0
    for seed in range(seeds):
        t0 = time.process_time()
        learn = cflearn.collab_learner(data, preset, progress=False, seed=seed, **kw)
        cflearn.fit(learn)
        cpu += time.process_time() - t0
        row = cflearn.evaluate(learn, baselines=False).iloc[0]
        for k in ("rmse", "ndcg@10", "recall@10"):
            out[k] = out.get(k, 0.0) + float(row[k]) / seeds
    return out, cpu / seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--round", type=int, default=1, choices=[1, 2, 3],
                    help="1: one field at a time; 2, 3: combinations (see ROUNDS)")
    ap.add_argument("--inner-valid", type=float, default=0.2, help="share of the training rows held out (random sets)")
    ap.add_argument("--seeds", type=int, default=1, help="model seeds averaged per candidate")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets = inner_sets(args.inner_valid)
    bars = {}
    for name, data in sets.items():
        fast, _ = run(data, "fast", args.seeds)
        learn = cflearn.collab_learner(data, "fast", epochs=1, progress=False)
        cflearn.fit(learn)
        ease = float(cflearn.evaluate(learn, baselines=["EASE"]).loc["EASE", "ndcg@10"])
        bars[name] = (fast["rmse"], ease)
        print(f"{name}: fast RMSE {fast['rmse']:.4f}, EASE NDCG@10 {ease:.4f}", flush=True)
    cands = {c: CANDIDATES[c] for c in ROUNDS[args.round]}
    rows, scores = [], {}
    for cname, kw in cands.items():
        ok, ratios, cpus, cells = True, [], [], []
        for name, data in sets.items():
            m, cpu = run(data, "dual", args.seeds, **kw)
            fast_rmse, ease = bars[name]
            ok &= m["rmse"] <= fast_rmse + 0.005
            ratios.append(m["ndcg@10"] / ease)
            cpus.append(cpu)
            cells.append(f"{m['rmse']:.4f} / {m['ndcg@10']:.4f}")
        score = sum(ratios) / len(ratios)
        scores[cname] = (ok, score, sum(cpus))
        rows.append([cname, *cells, f"{score:.3f}", "yes" if ok else "no", f"{sum(cpus):.0f}"])
        print(" | ".join(rows[-1]), flush=True)
    best = max((c for c in scores if scores[c][0]), key=lambda c: (round(scores[c][1], 3), -scores[c][2]))
    header = ["candidate", *[f"{n}: RMSE / NDCG@10" for n in sets], "NDCG / EASE (mean)", "RMSE within fast+0.005",
              "CPU s (3 fits)"]
    bar_row = ["(bars: fast RMSE / EASE NDCG)", *[f"{bars[n][0]:.4f} / {bars[n][1]:.4f}" for n in sets], "", "", ""]
    table = markdown_table(header, [bar_row, *rows])
    print(table)
    print(f"chosen: {best}")
    if args.record:
        append_results(f"Tuning the default preset (dual) on inner splits of the training rows, round {args.round}, "
                       f"{args.seeds} model seed(s), inner valid {args.inner_valid:g}", table,
                       f"Chosen: **{best}** (highest mean inner NDCG@10 / EASE among the candidates within 0.005 of "
                       "fast's inner RMSE on every set; ties to the cheaper). Inner splits: the training rows of the "
                       "evaluation splits, split again by the same protocol. One torch thread.")


if __name__ == "__main__":
    main()
