"""User side features and cold start from metadata: new users, new items, fold-in from features, content-based.

Planted data: user tastes follow a planted user ``group``, item factors planted genres
(:func:`cflearn.datasets.synthetic`), so metadata has a known effect.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import cflearn
from cflearn._scoring import score_matrix
from cflearn.metrics import rmse


@pytest.fixture(scope="module")
def planted():
    return cflearn.datasets.synthetic(500, 300, density=0.06, seed=3)


@pytest.fixture(scope="module")
def cold(planted):
    """best with the user group and genres; 10% of users held out, the users table holds the others only."""
    split = cflearn.from_df(planted, split="cold_users", valid_pct=0.1, seed=42)
    held = split.valid
    known = planted.users[~planted.users["user"].isin(held["user"])]
    data = cflearn.from_df(split.train, "user", "item", "rating", "timestamp", items=planted.items, users=known,
                           user_features=["group"], item_features=["genres"], seed=42)
    learn = cflearn.collab_learner(data, "best", progress=False, select_features=False, seed=0)
    cflearn.fit(learn)
    return learn, held


def test_new_users_scored_from_metadata_beat_the_average_user(cold, planted):
    learn, held = cold
    users, items = held["user"].tolist(), held["item"].tolist()
    plain = cflearn.predict(learn, users, items)
    feats = cflearn.predict(learn, users, items, user_info=planted.users)
    assert (plain["fallback"] == "average user").all() and (feats["fallback"] == "user features").all()
    mixed = cflearn.predict(learn, [users[0], learn.cf.users.ids[1], -5], items[:3], user_info=planted.users)
    assert mixed["fallback"].tolist() == ["user features", "", "average user"]  # only unknown IDs in the table
    assert rmse(feats["score"], held["rating"]) < 0.85 * rmse(plain["score"], held["rating"])
    # the same user through recommend(features=...): same scores, and it says which path it took
    user = users[0]
    recs = cflearn.recommend(learn, None, n=5, features=planted.users.set_index("user").loc[user])
    assert (recs["fallback"] == "user features").all()
    again = cflearn.predict(learn, [user] * 5, recs["item"].tolist(), user_info=planted.users)
    np.testing.assert_allclose(again["score"], recs["score"], atol=1e-4)


def test_fold_in_started_from_features_beats_fold_in_alone(cold, planted):
    learn, held = cold
    info = planted.users.set_index("user")
    errors: dict[str, list[np.ndarray]] = {"alone": [], "features": [], "target": []}
    users = [(u, rows) for u, rows in held.sort_values("timestamp").groupby("user") if len(rows) > 5]
    for user, rows in users[:20]:  # 20 held-out users (seeded split): fold-in costs ~0.1 s each
        first, rest = rows.iloc[:5], rows.iloc[5:]
        ratings = dict(zip(first["item"], first["rating"]))
        cols = torch.from_numpy(learn.cf.items.encode(rest["item"]))
        for key, folded in (("alone", cflearn.fold_in(learn, ratings)),
                            ("features", cflearn.fold_in(learn, ratings, features=info.loc[user]))):
            scores = score_matrix(learn.cf, torch.zeros(1, dtype=torch.long), vectors=folded.vector[None],
                                  bias=torch.tensor([folded.bias]))[0]
            errors[key].append(scores[cols].numpy())
        errors["target"].append(rest["rating"].to_numpy())
    target = np.concatenate(errors["target"])
    alone, started = (rmse(np.concatenate(errors[k]), target) for k in ("alone", "features"))
    assert started < alone, (started, alone)
    assert cflearn.fold_in(learn, {}, features={"group": "g1"}).source == "user features"  # no ratings: metadata


def test_user_features_are_saved_with_the_model(cold, planted, tmp_path):
    learn, held = cold
    loaded = cflearn.load(cflearn.save(learn, tmp_path / "m.safetensors"))
    users, items = held["user"].tolist()[:30], held["item"].tolist()[:30]
    a = cflearn.predict(learn, users, items, user_info=planted.users)
    b = cflearn.predict(loaded, users, items, user_info=planted.users)
    pd.testing.assert_frame_equal(a, b)
    torch.testing.assert_close(cflearn.cold_user(learn, {"group": "g2"}).vector,
                               cflearn.cold_user(loaded, {"group": "g2"}).vector)


def test_cold_start_mistakes_are_clear(cold, planted, synth_data):
    learn, _ = cold
    with pytest.raises(cflearn.ColumnError, match="did you mean 'group'"):
        cflearn.cold_user(learn, {"grup": "g1"})
    row = planted.users.assign(zip="01002").iloc[0]  # a table's row: its other columns (ID, zip) are not features
    assert cflearn.cold_user(learn, row).vector.shape == (learn.model.u_cf_weight.embedding_dim,)
    with pytest.warns(UserWarning, match="never saw.*group=astronaut"):
        odd = cflearn.cold_user(learn, {"group": "astronaut"})
    average = cflearn.predict(learn, [-1], [planted.items["item"].iloc[0]])["score"].iloc[0]
    mine = cflearn.recommend_all(learn, [odd], n=len(learn.cf.items), exclude_seen=False, min_ratings=0)
    assert mine.set_index("item")["score"][planted.items["item"].iloc[0]] == pytest.approx(average, abs=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a column left out is missing, not an unseen value: no warning
        blank = cflearn.cold_user(learn, {})
    torch.testing.assert_close(blank.vector, odd.vector)  # nothing known: the average user, both ways
    known = learn.cf.users.ids[1]
    with pytest.raises(cflearn.ConfigError, match="is known to the model"):
        cflearn.recommend(learn, known, features={"group": "g1"})
    plain = cflearn.collab_learner(synth_data, "fast", epochs=1, progress=False)
    cflearn.fit(plain)
    with pytest.raises(cflearn.ConfigError, match="trained without user features"):
        cflearn.recommend(plain, None, features={"group": "g1"})


def test_declared_features_are_checked_and_reported(planted):
    with pytest.raises(cflearn.ColumnError, match="did you mean 'group'"):
        cflearn.from_df(planted, user_features=["grup"])
    doubled = pd.concat([planted.users, planted.users.iloc[:2]])
    with pytest.raises(cflearn.DataError, match="several rows.*one row per ID"):
        cflearn.from_df(planted, users=doubled, user_features=["group"])
    some = pd.concat([planted.users.iloc[10:], pd.DataFrame({"user": [9001, 9002], "group": ["g0", "g1"]})])
    data = cflearn.from_df(planted, users=some, user_features=["group"])
    assert "users: group; 10 rated users have no row in the users table" in repr(data)
    assert "2 users of the table have no rating" in repr(data)
    with pytest.warns(UserWarning, match="preset 'fast' has no side features.*user features"):
        cflearn.collab_learner(data, "fast", progress=False)


def test_content_based_items_are_their_features(planted):
    data = cflearn.from_df(planted, item_features=["genres"], seed=42)
    learn = cflearn.collab_learner(data, "content", epochs=2, progress=False)
    cflearn.fit(learn)
    tables = learn.cf.contract.tables()
    genres = planted.items.set_index("item")["genres"]
    a, b = (int(learn.cf.items.encode([i])[0]) for i in genres[genres == genres.iloc[0]].index[:2])
    torch.testing.assert_close(tables.items[a], tables.items[b])  # same genres, same item
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim = cflearn.similar_items(learn, genres.index[0], n=3)
    assert (sim["similarity"] > 0.999).all()
    new = cflearn.similar_items(learn, None, n=3, features={"genres": genres.iloc[0]})  # an item nobody rated
    assert (new["genres"] == genres.iloc[0]).all() and (new["similarity"] > 0.999).all()
    with pytest.raises(cflearn.ConfigError, match="content-based: it needs item features"):
        cflearn.collab_learner(cflearn.from_df(planted.ratings), "content", progress=False)
