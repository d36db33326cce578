"""One model for both questions: the default preset (``dual``) against ``fast``, ``rank``, the pair of them
(two trainings), EASE and most popular, in one invocation, on the same seeded splits.

Data: ml-latest-small with the seed-42 random 80/20 split and with each user's last 5 ratings held
out; synthetic ratings with planted tastes (1,500 users x 2,000 items); and a synthetic implicit
set of the Last.fm shape (1,892 users x 17,632 items, about 93k interactions with heavy-tailed play
counts as weights; a generator, not the real file), where ``dual`` trains its ranking head alone.
Metrics: validation RMSE (rating models), NDCG@10, Recall@10 and catalogue coverage@10 of the
top-10 lists (relevant = rated >= 4 in validation, or any validation interaction; every unseen item
with a training interaction is ranked: the protocol of ``bench/ranking.py``), fit CPU seconds
(``time.process_time``: the work done; torch pinned to one thread so that idle spinning does not
count) and wall seconds. EASE's lambda is chosen on a 10% slice of the training rows, over every
item (the bar of the NDCG target) and over the items with >= 3 interactions (what ``evaluate``
uses, cheaper); its cost includes that choice. ``recommend_all`` times the default model's top-10
for every user.

    python bench/one_model.py [--record] [--seeds 3] [--sets ml-random ml-last5 synthetic lastfm]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table  # noqa: E402
from ranking import score  # noqa: E402

import cflearn  # noqa: E402
from cflearn.baselines import choose_ease_lambda, ease, interactions  # noqa: E402
from cflearn.metrics import relevance_level  # noqa: E402

Scorer = Callable[[torch.Tensor], torch.Tensor]


def lastfm_shape(seed: int = 0) -> cflearn.CollabData:
    """A synthetic implicit set of the Last.fm (hetrec-2011) shape: 1,892 users, 17,632 items, ~93k
    interactions, play counts (log-normal, heavy tail) as weights."""
    ds = cflearn.datasets.synthetic(1892, 17632, density=92834 / (1892 * 17632), popularity=1.0, implicit=True,
                                    seed=seed)
    frame = ds.ratings.copy()
    frame["plays"] = np.maximum(1, np.round(np.random.default_rng(seed).lognormal(5, 1.5, len(frame)))).astype(int)
    return cflearn.from_df(frame[["user", "item", "plays"]], "user", "item", weight="plays", seed=42)


def data_sets(names: list[str]) -> dict[str, cflearn.CollabData]:
    out = {}
    if any(n.startswith("ml") for n in names):
        ml = cflearn.datasets.movielens("ml-latest-small")
        if "ml-random" in names:
            out["ml-latest-small, random 80/20"] = cflearn.from_df(ml, seed=42)
        if "ml-last5" in names:
            out["ml-latest-small, last 5 per user"] = cflearn.from_df(ml, split="leave_last", n_last=5)
    if "synthetic" in names:
        out["synthetic ratings, planted tastes"] = cflearn.from_df(
            cflearn.datasets.synthetic(1500, 2000, density=0.03, seed=7), seed=42)
    if "lastfm" in names:
        out["Last.fm-shaped synthetic (implicit)"] = lastfm_shape()
    return out


class Timed:
    def __enter__(self) -> Timed:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall


def fit(data: cflearn.CollabData, preset: str, seed: int) -> tuple[cflearn.CollabModel, Timed]:
    with Timed() as t:
        learn = cflearn.collab_learner(data, preset, progress=False, seed=seed)
        cflearn.fit(learn)
    return learn.cf, t


def rmse(cf: cflearn.CollabModel, data: cflearn.CollabData) -> float:
    if data.implicit:
        return float("nan")
    pred = cflearn.predict(cf, data.valid[data.user].tolist(), data.valid[data.item].tolist())
    return float(np.sqrt(np.mean((pred["score"].to_numpy() - data.valid[data.rating].to_numpy()) ** 2)))


def ease_fit(data: cflearn.CollabData, min_count: int, max_items: int) -> tuple[Scorer, Timed, int]:
    with Timed() as t:
        tr = data.codes[data.train_idx]
        rel = np.ones(len(tr), bool) if data.implicit else data.values[data.train_idx] >= relevance_level(data.scale)
        lam = choose_ease_lambda(tr[:, 0], tr[:, 1], rel, len(data.users), len(data.items), min_count=min_count,
                                 max_items=max_items)
        model = ease(interactions(tr[:, 0], tr[:, 1], len(data.users), len(data.items)), lam, min_count=min_count,
                     max_items=max_items)
    return model.scores, t, len(model.keep)


def cost_note(cf: cflearn.CollabModel, data: cflearn.CollabData) -> str:
    """What an epoch of the ranking head costs: users x scored items x factors (x 6 flops: forward and
    backward of the logits), against the old rank settings (every item, 300 factors, 30 epochs)."""
    p = cf.preset
    head = cflearn.models.ranking_head(cf.model)
    if head is None:
        return ""
    counts = cf.item_counts
    users = int((cf.seen_indptr[1:] - cf.seen_indptr[:-1] > 0).sum())
    scored = int((counts >= p.min_count).sum()) - (1 if p.min_count <= 0 else 0)
    k = head.i_in.embedding_dim
    now = 6 * users * scored * k
    old = 6 * users * (len(cf.items) - 1) * 300
    return (f"{users:,} users x {scored:,} scored items x {k} factors = {now / 1e9:.1f} GFLOP/epoch x {p.epochs} "
            f"epochs = {now * p.epochs / 1e9:.0f} GFLOP (old rank: {len(cf.items) - 1:,} items x 300 factors x 30 "
            f"epochs = {old * 30 / 1e9:.0f} GFLOP)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    ap.add_argument("--sets", nargs="*", default=["ml-random", "ml-last5", "synthetic", "lastfm"])
    ap.add_argument("--seeds", type=int, default=3, help="model seeds averaged per cflearn contender")
    args = ap.parse_args()
    torch.set_num_threads(1)
    header = ["data", "contender", "RMSE", "NDCG@10", "Recall@10", "coverage@10", "fit CPU s", "fit wall s"]
    rows: list[list[str]] = []
    notes: list[str] = []
    spreads: dict[tuple[str, str], float] = {}
    for dname, data in data_sets(args.sets).items():
        ref = cflearn.collab_learner(data, "rank" if data.implicit else "fast", epochs=1, progress=False)
        cflearn.fit(ref)  # the vocabularies and seen lists every contender is scored with
        results: dict[str, tuple[float, dict[str, float], float, float]] = {}
        models: dict[str, cflearn.CollabModel] = {}
        for preset in ("dual", "fast", "rank"):
            if data.implicit and preset == "fast":
                continue
            runs = []
            for seed in range(args.seeds):  # model seeds (the split stays): the mean of each number
                cf, t = fit(data, preset, seed)
                models[preset] = cf
                m = score(data, ref.cf, cf)
                err = rmse(cf, data) if cf.contract.score_kind == "rating" else float("nan")
                runs.append((err, m, t.cpu, t.wall))
            mean = {k: float(np.mean([r[1][k] for r in runs])) for k in runs[0][1]}
            spread = max(r[1]["ndcg@10"] for r in runs) - min(r[1]["ndcg@10"] for r in runs)
            label = f"cflearn {preset}" + (" (default)" if preset == "dual" else "")
            results[label] = tuple(float(np.mean([r[k] for r in runs])) if k != 1 else mean  # type: ignore
                                   for k in range(4))
            spreads[(dname, label)] = spread
            print(f"{dname} | {label}: {results[label][0]:.4f} NDCG {mean['ndcg@10']:.4f} (seed spread "
                  f"{spread:.4f}) cpu {results[label][2]:.1f}", flush=True)
        if not data.implicit:  # the pair: fast's ratings, rank's lists, two trainings
            f, r = results["cflearn fast"], results["cflearn rank"]
            results["pair: fast (ratings) + rank (lists)"] = (f[0], r[1], f[2] + r[2], f[3] + r[3])
        for what, (mc, mi) in {"EASE, every item": (1, 10**9), "EASE, items with >= 3 (as evaluate)": (3, 8000)}.items():
            scorer, t, kept = ease_fit(data, mc, mi)
            results[f"{what} ({kept:,} items)"] = (float("nan"), score(data, ref.cf, scorer), t.cpu, t.wall)
        counts = ref.cf.item_counts.double()
        results["most popular"] = (float("nan"), score(data, ref.cf, lambda rows: counts.expand(len(rows), -1)
                                                       .clone()), 0.0, 0.0)
        for label, (e, m, cpu, wall) in results.items():
            spread = f" (±{spreads[(dname, label)] / 2:.4f})" if (dname, label) in spreads and args.seeds > 1 else ""
            rows.append([dname, label, "-" if math.isnan(e) else f"{e:.4f}", f"{m['ndcg@10']:.4f}{spread}",
                         f"{m['recall@10']:.4f}", f"{m['coverage']:.3f}", f"{cpu:.1f}", f"{wall:.1f}"])
        dual = models["dual"]
        t0 = time.perf_counter()
        cflearn.recommend_all(dual, n=10)
        notes.append(f"{dname}: dual's ranking head: {cost_note(dual, data)}; recommend_all top-10 for all "
                     f"{len(dual.users) - 1:,} users {time.perf_counter() - t0:.2f} s.")
        print(notes[-1], flush=True)
    table = markdown_table(header, rows)
    print(table)
    print("\n".join(notes))
    if args.record:
        append_results("One model for ratings and lists: dual vs fast, rank, the pair, EASE, most popular", table,
                       f"cflearn rows: the mean over {args.seeds} model seeds (± half the range of NDCG@10 over the "
                       "seeds); the split is the same. One torch/BLAS thread; CPU seconds from time.process_time. "
                       + " ".join(notes))


if __name__ == "__main__":
    main()
