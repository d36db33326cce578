"""Top-10 lists on ml-latest-small: cflearn's ranking presets against EASE, item-kNN, implicit and LensKit.

Two protocols, the same for every contender (cflearn's ``evaluate`` protocol): a seeded random 80/20
split (seed 42) and each user's last 5 ratings held out. An item is relevant when rated >= 4 in
validation; every item with a training rating that the user did not rate in training is ranked.
Every contender trains on all training ratings as interactions (cflearn's ``rank`` also uses the
rating values: those below 4 count as weaker targets). EASE's lambda is chosen on a 10% slice of
the training rows (never on the validation rows); the peers run with their documented defaults.

implicit and LensKit are optional (``make bench-peers`` builds ``.venv-peers`` with them; LensKit
needs pandas < 3); missing ones are reported as such. Torch, BLAS and implicit use 2 threads.

    .venv-peers/bin/python bench/ranking.py [--record]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table  # noqa: E402

import cflearn  # noqa: E402
from cflearn.baselines import choose_ease_lambda, ease, interactions, item_knn  # noqa: E402
from cflearn.metrics import relevance_level  # noqa: E402

Scorer = Callable[[torch.Tensor], torch.Tensor]
Contender = Scorer | cflearn.CollabModel


def protocols() -> dict[str, cflearn.CollabData]:
    ml = cflearn.datasets.movielens("ml-latest-small")
    return {"random 80/20": cflearn.from_df(ml, seed=42),
            "last 5 per user": cflearn.from_df(ml, split="leave_last", n_last=5)}


def cflearn_contender(preset: str) -> Callable[[cflearn.CollabData], tuple[Contender, object]]:
    def fit(data: cflearn.CollabData) -> tuple[Contender, object]:
        learn = cflearn.collab_learner(data, preset, progress=False)
        cflearn.fit(learn)
        return learn.cf, None
    return fit


def _matrix(data: cflearn.CollabData) -> sp.csr_matrix:
    tr = data.codes[data.train_idx]
    return interactions(tr[:, 0], tr[:, 1], len(data.users), len(data.items))


def ease_contender(data: cflearn.CollabData) -> tuple[Scorer, object]:
    tr = data.codes[data.train_idx]
    rel = data.values[data.train_idx] >= relevance_level(data.scale)
    lam = choose_ease_lambda(tr[:, 0], tr[:, 1], rel, len(data.users), len(data.items), min_count=1,
                             max_items=10**9)
    model = ease(_matrix(data), lam, min_count=1, max_items=10**9)
    return model.scores, f"lambda {lam:g}"


def knn_contender(data: cflearn.CollabData) -> tuple[Scorer, object]:
    return item_knn(_matrix(data)).scores, "k 20"


def popular_contender(data: cflearn.CollabData) -> tuple[Scorer, object]:
    counts = torch.from_numpy(np.asarray(_matrix(data).sum(0)).ravel()).double()
    return (lambda rows: counts.expand(len(rows), -1).clone()), None


def implicit_contender(kind: str) -> Callable[[cflearn.CollabData], tuple[Scorer, object]]:
    def fit(data: cflearn.CollabData) -> tuple[Scorer, object]:
        from implicit.als import AlternatingLeastSquares
        from implicit.bpr import BayesianPersonalizedRanking
        X = _matrix(data)
        model = (AlternatingLeastSquares(random_state=0, num_threads=2) if kind == "als"
                 else BayesianPersonalizedRanking(random_state=0, num_threads=2))
        model.fit(X, show_progress=False)
        U, V = (torch.from_numpy(np.asarray(m)).double() for m in (model.user_factors, model.item_factors))
        return (lambda rows: U[rows] @ V.T), None
    return fit


def lenskit_contender(kind: str) -> Callable[[cflearn.CollabData], tuple[Scorer, object]]:
    def fit(data: cflearn.CollabData) -> tuple[Scorer, object]:
        import pandas as pd
        from lenskit.data import ItemList, RecQuery, from_interactions_df
        tr = data.codes[data.train_idx]
        frame = pd.DataFrame({"user_id": tr[:, 0].astype(np.int64), "item_id": tr[:, 1].astype(np.int64)})
        ds = from_interactions_df(frame)
        if kind == "ImplicitMF":
            from lenskit.als import ImplicitMFScorer
            scorer = ImplicitMFScorer()
        else:
            from lenskit.knn import ItemKNNScorer
            scorer = ItemKNNScorer(feedback="implicit")
        scorer.train(ds)
        all_items = ItemList(item_ids=np.arange(1, len(data.items)))
        history = frame.groupby("user_id")["item_id"].apply(np.asarray)

        def rows_fn(rows: torch.Tensor) -> torch.Tensor:
            out = torch.full((len(rows), len(data.items)), -torch.inf, dtype=torch.float64)
            for j, u in enumerate(rows.tolist()):
                query = RecQuery(user_id=int(u), user_items=ItemList(item_ids=history.get(int(u), np.zeros(0, int))))
                scored = scorer(query=query, items=all_items)
                s = np.nan_to_num(scored.scores(), nan=-np.inf)
                out[j, torch.from_numpy(scored.ids().astype(np.int64))] = torch.from_numpy(s.astype(np.float64))
            return out
        return rows_fn, None
    return fit


CONTENDERS: dict[str, Callable[[cflearn.CollabData], tuple[Contender, object]]] = {
    "cflearn rank": cflearn_contender("rank"),
    "cflearn rank_bpr": cflearn_contender("rank_bpr"),
    "cflearn fast (by predicted rating)": cflearn_contender("fast"),
    "EASE (lambda on inner split)": ease_contender,
    "item-kNN (cflearn baseline)": knn_contender,
    "implicit ALS": implicit_contender("als"),
    "implicit BPR": implicit_contender("bpr"),
    "LensKit ImplicitMF": lenskit_contender("ImplicitMF"),
    "LensKit ItemKNN": lenskit_contender("ItemKNN"),
    "most popular": popular_contender,
}


def score(data: cflearn.CollabData, ref: cflearn.CollabModel, contender: Contender, n: int = 10) -> dict[str, float]:
    """The ranking metrics of a contender by ``cflearn.evaluate``'s protocol: a cflearn model is ranked by
    ``evaluate`` itself; any other contender (a function from user indices to their scores of every item,
    under ``ref``'s vocabularies) as a baseline of ``evaluate``'s beside ``ref``."""
    if isinstance(contender, cflearn.CollabModel):
        row = cflearn.evaluate(contender, data, n=n, baselines=False).iloc[0]
    else:
        row = cflearn.evaluate(ref, data, n=n, baselines=[("contender", lambda *_: contender)]).loc["contender"]
    out = {str(k): float(v) for k, v in row.items()}
    out["coverage"] = out[f"coverage@{n}"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    ap.add_argument("--only", nargs="*", help="run only these contenders")
    args = ap.parse_args()
    torch.set_num_threads(2)
    header = ["protocol", "contender", "NDCG@10", "Recall@10", "coverage@10", "fit s", "vs EASE", "vs popular"]
    rows: list[list[str]] = []
    sets = protocols()
    refs = {}
    for proto, data in sets.items():
        ref = cflearn.collab_learner(data, "fast", epochs=1, progress=False)  # vocabularies and seen lists
        cflearn.fit(ref)
        refs[proto] = ref
    results: dict[str, dict[str, tuple[dict[str, float], float, str]]] = {proto: {} for proto in sets}
    # contender by contender (cflearn's first): the peers' thread pools, once started, would slow what follows
    for name, fit in CONTENDERS.items():
        if args.only and name not in args.only:
            continue
        for proto, data in sets.items():
            try:
                t0 = time.perf_counter()
                scorer, note = fit(data)
                secs = time.perf_counter() - t0
            except ImportError as e:
                print(f"{proto} | {name}: not installed ({e.name})", flush=True)
                break
            m = score(data, refs[proto].cf, scorer)
            results[proto][name] = (m, secs, "" if note is None or not isinstance(note, str) else note)
            print(f"{proto} | {name}: NDCG@10 {m['ndcg@10']:.4f} recall@10 {m['recall@10']:.4f} "
                  f"coverage {m['coverage']:.3f} fit {secs:.1f} s", flush=True)
    for proto, res in results.items():
        ease_ndcg = res.get("EASE (lambda on inner split)", ({"ndcg@10": float("nan")}, 0, ""))[0]["ndcg@10"]
        pop_ndcg = res.get("most popular", ({"ndcg@10": float("nan")}, 0, ""))[0]["ndcg@10"]
        for name, (m, secs, note) in res.items():
            rows.append([proto, name + (f" ({note})" if note else ""), f"{m['ndcg@10']:.4f}", f"{m['recall@10']:.4f}",
                         f"{m['coverage']:.3f}", f"{secs:.1f}", f"{m['ndcg@10'] / ease_ndcg:.2f}x",
                         f"{m['ndcg@10'] / pop_ndcg:.2f}x"])
    table = markdown_table(header, rows)
    print(table)
    if args.record:
        append_results("Top-10 ranking on ml-latest-small: cflearn rank vs EASE, item-kNN, implicit, LensKit", table,
                       "Relevant = rated >= 4 in validation; all unseen items with a training rating ranked; scored "
                       "by cflearn.evaluate (each relevant item without a training row counts as a miss; a rating "
                       "model's lists rank its clipped ratings). "
                       "Fit seconds include cflearn's per-epoch validation. 2 threads (torch, BLAS, implicit). "
                       "Contenders run one after another (cflearn's first), each on both protocols.")


if __name__ == "__main__":
    main()
