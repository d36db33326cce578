"""A new user's first lists: fold-in of their first k ratings against the popularity chart.

Cold-users protocol on every shared data set (ml-latest-small, FilmTrust, Foursquare check-ins): 10% of
the users (seeded) are held out entirely; the preset trains on the others. Each held-out user with at
least k + 10 rows gives their first k rows by time (file order where there are no timestamps) and is
scored on the rest: relevant are the rest rated at the relevance level or above (every interaction on
implicit data); users with none are left out. For k = 0, 1, 3, 5, 10, 20 the table gives NDCG@10 and
Recall@10 of:

- fold-in: ``recommend(learn, fold_in(learn, first k))`` (k = 0: the list an unknown user gets), the
  default list, which leans on the chart by ``CHART_PRIOR / (CHART_PRIOR + k)``;
- model alone: the same with ``fold_in(..., chart=0)``, the model's ranking without the chart;
- metadata: where the set has user metadata (the shared sets have none; the synthetic set's planted user
  groups), the user known from it: ``cold_user`` at k = 0, ``fold_in(..., features=...)`` after;
- most popular: the training rows' most interacted items, the k given excluded;
- retrain: the same preset trained on the training rows plus every held-out user's first k (their
  own model, the reference fold-in aims at), its list for them by ID.

One torch thread; model seed 0.

    python bench/new_users.py [--sets ml filmtrust foursquare] [--preset dual] [--record]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402
from suite import _filmtrust, _foursquare  # noqa: E402

import cflearn  # noqa: E402
from cflearn.metrics import ndcg_at_k, recall_at_k, relevance_level  # noqa: E402

KS = (0, 1, 3, 5, 10, 20)
LABELS = {"ml": "ml-latest-small", "filmtrust": "FilmTrust", "foursquare": "Foursquare (implicit)",
          "groups": "synthetic, user groups"}
_GROUPS = {"n_users": 1500, "n_items": 1000, "density": 0.03, "seed": 11}  # tastes follow a planted user group


def frame(name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The raw rows and their columns (user, item, rating or weight, time)."""
    if name == "groups":
        df = cflearn.datasets.synthetic(**_GROUPS).ratings  # type: ignore[arg-type]
        return df, {"user": "user", "item": "item", "rating": "rating", "timestamp": "timestamp"}
    if name == "ml":
        df = cflearn.datasets.movielens("ml-latest-small").ratings
        return df, {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    if name == "filmtrust":
        return _filmtrust(), {"user": "user", "item": "item", "rating": "rating", "timestamp": "order"}
    return _foursquare(), {"user": "user", "item": "item", "weight": "count", "timestamp": "order"}


def user_table(name: str) -> pd.DataFrame | None:
    """The users' metadata where a set has any (the shared sets have none): the planted groups."""
    return cflearn.datasets.synthetic(**_GROUPS).users if name == "groups" else None  # type: ignore[arg-type]


def held_out(df: pd.DataFrame, user: str, seed: int = 42) -> pd.Series:
    """Which rows belong to the users held out as new: 10% of the users, seeded (the bench's evaluation users
    with seed 42)."""
    users = df[user].unique()
    held = set(np.random.default_rng(seed).choice(users, size=max(1, len(users) // 10), replace=False).tolist())
    return df[user].isin(held)


def train(df: pd.DataFrame, cols: dict[str, str], preset: str, users: pd.DataFrame | None = None) -> object:
    """The preset trained on ``df`` (with the users' metadata as user features, where given)."""
    extra = {} if users is None else {"users": users[users[cols["user"]].isin(df[cols["user"]])],
                                      "user_features": [c for c in users.columns if c != cols["user"]]}
    data = cflearn.from_df(df, **cols, valid_pct=0.05, seed=0, **extra)  # type: ignore[arg-type]
    learn = cflearn.collab_learner(data, preset, progress=False, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cflearn.fit(learn)
    return learn


def lists(learn: object, users: list[object], n: int = 10) -> dict[object, list[object]]:
    recs = cflearn.recommend_all(learn, users, n)  # type: ignore[arg-type]
    return {u: list(g["item"]) for u, g in recs.groupby("user", sort=False)}


def _cell(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="*", default=list(LABELS), choices=list(LABELS))
    ap.add_argument("--preset", default="dual")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: list[list[str]] = []
    for name in args.sets:
        df, cols = frame(name)
        u, i, t = cols["user"], cols["item"], cols["timestamp"]
        is_held = held_out(df, u)
        base = df[~is_held]
        meta = user_table(name)
        learn = train(base, cols, args.preset, meta)
        info = None if meta is None else meta.set_index(u)
        known = set(base[i])
        counts = base[i].value_counts()
        implicit = "rating" not in cols
        scale = (0.0, 1.0) if implicit else (float(df[cols["rating"]].min()), float(df[cols["rating"]].max()))
        level = relevance_level(scale)
        test = df[is_held].sort_values([u, t], kind="stable")
        by_user = {key: g for key, g in test.groupby(u, sort=True)}
        for k in KS:
            given, truth = {}, {}
            for user, g in by_user.items():
                if len(g) < k + 10:
                    continue
                rest = g.iloc[k:]
                rel = rest if implicit else rest[rest[cols["rating"]] >= level]
                if len(rel) == 0:
                    continue
                first = g.iloc[:k]
                given[user] = first[first[i].isin(known)]
                truth[user] = set(rel[i])
            order = list(given)
            if not order:
                continue
            t0 = time.process_time()
            folded: list[object] = []  # a held-out user's own ID is unknown to the model: its unknown-user list
            for user in order:
                g = given[user]
                values = np.ones(len(g)) if implicit else g[cols["rating"]].to_numpy()
                folded.append(cflearn.fold_in(learn, dict(zip(g[i], values))) if len(g) else user)  # type: ignore
            got = lists(learn, folded)
            fold = [got[f] for f in folded]
            fold_ms = 1000 * (time.process_time() - t0) / len(order)
            alone_users = [cflearn.fold_in(learn, dict(zip(given[user][i], np.ones(len(given[user])) if implicit
                                                           else given[user][cols["rating"]])), chart=0)
                           if len(given[user]) else user for user in order]
            got = lists(learn, alone_users)
            alone = [got[f] for f in alone_users]
            metadata: list[list[object]] | None = None
            if info is not None:  # the same users with their metadata: from it alone (k = 0), or fold-in from it
                with_meta = [cflearn.fold_in(learn, dict(zip(given[user][i], given[user][cols["rating"]])),
                                             features=info.loc[user]) if len(given[user])
                             else cflearn.cold_user(learn, info.loc[user]) for user in order]
                got = lists(learn, with_meta)
                metadata = [got[f] for f in with_meta]
            popular = []
            for user in order:
                seen = set(given[user][i])
                popular.append([x for x in counts.index[:10 + len(seen)] if x not in seen][:10])
            if k > 0:
                extra = pd.concat([test[test[u] == user].iloc[:k] for user in order])
                again = train(pd.concat([base, extra]), cols, args.preset, meta)
                got = lists(again, order)
                retrain = [got.get(user, []) for user in order]
            else:
                retrain = fold
            rel = [truth[user] for user in order]
            cells = {what: (ndcg_at_k(recs, rel, 10), recall_at_k(recs, rel, 10)) if recs is not None
                     else (float("nan"), float("nan"))
                     for what, recs in (("fold-in", fold), ("model alone", alone), ("metadata", metadata),
                                        ("most popular", popular), ("retrain", retrain))}
            ratio = cells["fold-in"][0] / cells["most popular"][0] if cells["most popular"][0] else float("nan")
            rows.append([LABELS[name], str(k), str(len(order)), *(_cell(cells[w][0]) for w in cells),
                         f"{ratio:.2f}x", *(_cell(cells[w][1]) for w in cells), f"{fold_ms:.0f}"])
            print(" | ".join(rows[-1]), flush=True)
    header = ["data", "k given", "users", "NDCG@10 fold-in", "model alone", "metadata", "most popular", "retrain",
              "fold-in / popular", "Recall@10 fold-in", "model alone", "metadata", "most popular", "retrain",
              "fold-in + list ms/user"]
    table = markdown_table(header, rows)
    print(table)
    if args.record:
        append_results(f"New users: fold-in of the first k ratings against the chart (preset {args.preset!r})",
                       table, "Cold-users protocol: 10% of users held out (seed 42); each held-out user with at "
                       "least k + 10 rows gives their first k by time (file order without timestamps) and is "
                       "scored on the rest (relevant: rated at the relevance level or above; every interaction "
                       "on implicit data). k = 0: the unknown-user list. fold-in: the default list, leaning on "
                       "the chart; model alone: fold_in(..., chart=0). One torch thread, model seed 0.")


if __name__ == "__main__":
    main()
