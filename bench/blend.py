"""Lists from the learned ranking head and EASE together: how much a blend of the two gains, on inner splits of
the *training* rows of every suite set (bench/tune_suite.py's inner splits; the evaluation split is never
looked at).

For each suite set and protocol: EASE (``cflearn.evaluate``'s baseline, as in bench/suite.py) and preset
``rank`` fit on the inner training rows; a user's list is ranked by ``z(EASE) + w * z(rank)``, where ``z``
standardises a score row: per user over the catalogue (``user``), or by one mean and spread over every user's
row (``global``: a fixed linear mix of the two heads' raw scores, what a model could save as two numbers).
``w = 0`` is EASE alone, ``rank`` is the learned head alone. Each cell: NDCG@10 over EASE's, the mean over the
model seeds. ``--ease library`` blends the EASE that preset ``dual`` solves as its item-item head instead
(``cflearn.models.ItemItem``: items with >= 5 training rows, at most 5,000; lambda on a 10% slice), its other
items treated as unranked; the bar stays ``evaluate``'s EASE.

    python bench/blend.py [--weights 0.5 1 2 4] [--seeds 0,1] [--ease evaluate|library] [--jobs 2] [--record]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402
from suite import LABELS, _ease, data_set, evaluate  # noqa: E402
from tune_suite import inner  # noqa: E402

import cflearn  # noqa: E402
from cflearn._formula import item_item_scores  # noqa: E402
from cflearn.baselines import interactions  # noqa: E402
from cflearn.evaluation._baselines import ease_solution  # noqa: E402
from cflearn.metrics import relevance_level  # noqa: E402


def standardised(scores: torch.Tensor, how: str, stats: tuple[float, float] | None = None) -> torch.Tensor:
    """``scores`` (users x items; -inf: not ranked) standardised per user row or by ``stats`` (mean, spread);
    unranked entries take their row's lowest ranked score."""
    s = scores.double()
    ok = torch.isfinite(s)
    low = torch.where(ok, s, torch.full_like(s, float("inf"))).min(1, keepdim=True).values
    s = torch.where(ok, s, low)
    if how == "user":
        return (s - s.mean(1, keepdim=True)) / s.std(1, keepdim=True).clamp(min=1e-12)
    assert stats is not None
    return (s - stats[0]) / stats[1]


def library_ease(d: cflearn.CollabData) -> Callable[[torch.Tensor], torch.Tensor]:
    """The item-item head preset ``dual`` solves (its ``min_count`` 5), as a scorer; other items: -inf."""
    rows = d.codes[d.train_idx].astype(np.int64)
    relevant = np.ones(len(rows), bool) if d.implicit else d.values[d.train_idx] >= relevance_level(d.scale)
    keep, weights, floor, lam = ease_solution(rows[:, 0], rows[:, 1], relevant, len(d.users), len(d.items),
                                              min_count=cflearn.PRESETS["dual"].min_count)
    X = interactions(rows[:, 0], rows[:, 1], len(d.users), len(d.items))[:, keep.numpy()].tocsr()

    def scores(users: torch.Tensor) -> torch.Tensor:
        x = torch.from_numpy(X[users.numpy()].toarray()).float()
        out = item_item_scores(x, weights, floor, keep)
        return torch.where(floor > -500, out, torch.full_like(out, float("-inf")))

    return scores


def column(job: tuple[str, str, list[float], list[int], str]) -> tuple[str, dict[str, float], float, float]:
    """One set under one protocol: NDCG@10 / EASE's of every contender; rank's and EASE's fit CPU seconds."""
    name, protocol, weights, seeds, which = job
    torch.set_num_threads(1)
    d = inner(data_set(name, protocol))
    t = time.process_time()
    bar_ease, _ = _ease(d)
    ease_cpu = time.process_time() - t
    ease = bar_ease if which == "evaluate" else library_ease(d)
    ref_learn = cflearn.collab_learner(d, "rank" if d.implicit else "fast", epochs=1, progress=False)
    cflearn.fit(ref_learn)
    ref = ref_learn.cf
    bar = evaluate(d, ref, bar_ease)["ndcg@10"]
    got: dict[str, list[float]] = {}
    rank_cpu = []
    every = torch.arange(len(d.users))
    with torch.no_grad():
        ease_all = ease(every)
    e_stats = _stats(ease_all)
    for seed in seeds:
        learn = cflearn.collab_learner(d, "rank", progress=False, seed=seed)
        t = time.process_time()
        cflearn.fit(learn)
        rank_cpu.append(time.process_time() - t)
        model = learn.cf.model.eval()
        with torch.no_grad():
            tab = model.tables()
            rank_all = tab.users @ tab.items.T + tab.item_bias
        r_stats = _stats(rank_all)
        got.setdefault("rank", []).append(evaluate(d, ref, learn.cf)["ndcg@10"])
        for how in ("user", "global"):
            for w in weights:
                def mix(users: torch.Tensor, w: float = w, how: str = how, r: torch.Tensor = rank_all,
                        r_stats: tuple[float, float] = r_stats) -> torch.Tensor:
                    return standardised(ease_all[users], how, e_stats) + w * standardised(r[users], how, r_stats)
                got.setdefault(f"{how} w={w:g}", []).append(evaluate(d, ref, mix)["ndcg@10"])
    ratios = {k: float(np.mean(v)) / bar for k, v in got.items()}
    print(f"{LABELS[name]} {protocol}: " + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()), flush=True)
    return f"{LABELS[name]} {protocol}", ratios, float(np.mean(rank_cpu)), ease_cpu


def _stats(scores: torch.Tensor) -> tuple[float, float]:
    s = standardised(scores, "none", (0.0, 1.0))
    return float(s.mean()), float(s.std())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="*", type=float, default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--sets", nargs="*", default=list(LABELS), choices=list(LABELS))
    ap.add_argument("--protocols", nargs="*", default=["random", "last5"], choices=["random", "last5"])
    ap.add_argument("--seeds", default="0,1", help="model seeds of preset rank, comma-separated (cells: the mean)")
    ap.add_argument("--ease", choices=["evaluate", "library"], default="evaluate",
                    help="which EASE is blended (the bar is evaluate's either way)")
    ap.add_argument("--jobs", type=int, default=1, help="columns fitted at once (one thread each)")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(n, p, args.weights, seeds, args.ease) for n in args.sets for p in args.protocols]
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(column, jobs))
    names = list(done[0][1])
    rows = [[k, *(f"{r[k]:.3f}x" for _, r, _, _ in done), f"{min(r[k] for _, r, _, _ in done):.3f}x"] for k in names]
    rows.append(["rank fit CPU / EASE's", *(f"{c / e:.2f}x" for _, _, c, e in done), ""])
    table = markdown_table(["lists ranked by", *(c for c, _, _, _ in done), "min"], rows)
    print(table)
    if args.record:
        append_results(f"Blending the learned ranking head with EASE ({args.ease}'s), on inner splits of every suite "
                       "set", table,
                       f"Command: `python bench/blend.py --weights {' '.join(f'{w:g}' for w in args.weights)} --seeds "
                       f"{args.seeds} --ease {args.ease} --jobs {args.jobs}`. NDCG@10 over EASE's on the inner "
                       f"held-out rows, mean of model seeds {args.seeds} of preset rank; `user`: each score row "
                       "standardised per user, `global`: by one mean and spread per model. One "
                       "torch/BLAS thread per column.")


if __name__ == "__main__":
    main()
