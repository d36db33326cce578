"""Cold users: does a new user's metadata help, alone and with a few ratings?

Synthetic ratings whose user tastes follow a planted user ``group`` (and item factors planted
genres); 10% of the users are held out entirely (seeded). The model (preset ``best`` with user
feature ``group`` and item feature ``genres``) trains on the others; the users table it sees
holds the training users only, so the held-out users are new to it. Each held-out user is then
scored three ways on all their ratings, and fold-in is scored on all but their 5 earliest (the weight
of a new user's features is chosen on training users held out as new users; a third set keeps a third
of the groups' signal):

- average user: the fallback for an unknown user (``predict`` without metadata);
- user features: ``predict(..., user_info=users)`` / ``recommend(learn, None, features=...)``;
- fold-in of the 5 earliest ratings, alone and started from the user's features
  (``fold_in(learn, ratings, features=...)``).

RMSE over the held-out ratings; NDCG@10 (relevant: the user's held-out ratings >= 4) of the user's
own held-out items ranked by predicted rating (does the scoring order them right?) and of the
top-10 among all items (against the fallback's most-popular list); mean over model seeds. A
second data set has the groups shuffled across users (no signal left in the metadata).

    python bench/cold_users.py [--no-record]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402

import cflearn  # noqa: E402
from cflearn.train._feature_trust import choose_user_feature_weight  # noqa: E402
from cflearn.kinds._presets import FeatureChoice  # noqa: E402

SEEDS = (0, 1)
N_FOLD = 5
COLUMNS = {"rmse average user": "RMSE average user", "rmse user features": "RMSE user features",
           "ndcg own average user": "NDCG@10 own items, average user",
           "ndcg own user features": "NDCG@10 own items, user features",
           "ndcg catalogue popular": "NDCG@10 catalogue, most popular (fallback)",
           "ndcg catalogue user features": "NDCG@10 catalogue, user features",
           "rmse fold-in 5": "RMSE fold-in 5", "rmse fold-in 5 + features": "RMSE fold-in 5 + features",
           "feature weight": "new users' feature weight (inner split)"}


def run(ds: cflearn.datasets.Dataset, seed: int) -> dict[str, float]:
    """RMSE and NDCG@10 of each way of scoring the held-out users, for one model seed."""
    split = cflearn.from_df(ds, split="cold_users", valid_pct=0.1, seed=42)
    held = split.valid
    known_users = ds.users[~ds.users["user"].isin(held["user"])]
    data = cflearn.from_df(split.train, "user", "item", "rating", "timestamp", items=ds.items, users=known_users,
                           user_features=["group"], item_features=["genres"], seed=42)
    p = cflearn.PRESETS["best"].replace(item_features=("genres",), user_features=("group",), select_features=False)
    weight, trust = choose_user_feature_weight(data, p, seed)  # the features kept; their weight for new users chosen
    learn = cflearn.collab_learner(data, dataclasses.replace(p, chosen=FeatureChoice({}, weight, trust)),
                                   progress=False, seed=seed)
    cflearn.fit(learn)
    users = ds.users.set_index("user")
    level = 4.0
    out: dict[str, float] = {}
    plain = cflearn.predict(learn, held["user"].tolist(), held["item"].tolist())
    feats = cflearn.predict(learn, held["user"].tolist(), held["item"].tolist(), user_info=ds.users)
    out["rmse average user"] = cflearn.metrics.rmse(plain.score, held["rating"])
    out["rmse user features"] = cflearn.metrics.rmse(feats.score, held["rating"])
    relevant, popular, by_features, rest_rows, fold_plain, fold_feats = [], [], [], [], [], []
    own: dict[str, list[list[int]]] = {"average user": [], "user features": []}
    for user, rows in held.sort_values("timestamp").groupby("user", sort=True):
        relevant.append(set(rows.loc[rows["rating"] >= level, "item"]))
        for name, pred in (("average user", plain), ("user features", feats)):  # the user's own items, best first
            mine = pred[pred["user"] == user].sort_values("score", ascending=False, kind="stable")
            own[name].append(mine["item"].tolist())
        popular.append(cflearn.recommend(learn, user, n=10)["item"].tolist())  # the fallback: most popular
        by_features.append(cflearn.recommend(learn, None, n=10, features=users.loc[user])["item"].tolist())
        if len(rows) <= N_FOLD:
            continue
        first, rest = rows.iloc[:N_FOLD], rows.iloc[N_FOLD:]
        ratings = dict(zip(first["item"], first["rating"]))
        for folded, sink in ((cflearn.fold_in(learn, ratings), fold_plain),
                             (cflearn.fold_in(learn, ratings, features=users.loc[user]), fold_feats)):
            sink.append(cflearn.predict(learn, folded, rest["item"].tolist()).score.to_numpy())
        rest_rows.append(rest["rating"].to_numpy())
    out["ndcg own average user"] = cflearn.metrics.ndcg_at_k(own["average user"], relevant, 10)
    out["ndcg own user features"] = cflearn.metrics.ndcg_at_k(own["user features"], relevant, 10)
    out["ndcg catalogue popular"] = cflearn.metrics.ndcg_at_k(popular, relevant, 10)
    out["ndcg catalogue user features"] = cflearn.metrics.ndcg_at_k(by_features, relevant, 10)
    target = np.concatenate(rest_rows)
    out["rmse fold-in 5"] = cflearn.metrics.rmse(np.concatenate(fold_plain), target)
    out["rmse fold-in 5 + features"] = cflearn.metrics.rmse(np.concatenate(fold_feats), target)
    out["feature weight"] = learn.cf.preset.new_user_features.get("weight", 1.0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    planted = cflearn.datasets.synthetic(800, 500, density=0.05, seed=3)
    shuffled_users = planted.users.copy()
    shuffled_users["group"] = shuffled_users["group"].sample(frac=1, random_state=0).to_numpy()
    weak_users = planted.users.copy()  # two users in three get a random group: a third of the signal
    scramble = np.random.default_rng(0).random(len(weak_users)) < 2 / 3
    weak_users.loc[scramble, "group"] = shuffled_users["group"].to_numpy()[scramble]
    sets = {"synthetic, planted user groups": planted,
            "synthetic, weak groups (a third of the signal)": cflearn.datasets.Dataset(
                planted.name, planted.ratings, planted.columns, items=planted.items, users=weak_users),
            "synthetic, groups shuffled (no signal)": cflearn.datasets.Dataset(
                planted.name, planted.ratings, planted.columns, items=planted.items, users=shuffled_users)}
    rows = []
    for name, ds in sets.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            runs = pd.DataFrame([run(ds, seed) for seed in SEEDS]).mean()
        rows.append([name] + [f"{runs[k]:.4f}" for k in COLUMNS])
        print(rows[-1], flush=True)
    header = ["data", *COLUMNS.values()]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_record:
        append_results("Cold users: scored from metadata, and fold-in started from it (preset best, synthetic)",
                       table, f"10% of users held out entirely (seed 42); mean of model seeds {SEEDS}; fold-in uses "
                       f"each held-out user's {N_FOLD} earliest ratings, RMSE on the rest. The features are kept "
                       "(user_features=, item_features= given); how much they move a new user from the average user "
                       "was chosen on training users held out as new users (cflearn.train._feature_trust).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
