"""User side features and cold start from metadata: new users, new items, fold-in from features, content-based.

Planted data: user tastes follow a planted user ``group``, item factors planted genres
(:func:`cflearn.datasets.synthetic`), so metadata has a known effect.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import cflearn
from cflearn.kinds._presets import FeatureChoice
from cflearn.metrics import rmse
from cflearn.serve._scoring import score_matrix
from cflearn.train._feature_trust import choose_user_feature_weight


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
    # the same user through recommend(features=...): same scores, and it says which path it took (the
    # features are trusted fully here: user_feature_weight 1, so the list is theirs, not the chart's)
    user = users[0]
    recs = cflearn.recommend(learn, None, n=5, features=planted.users.set_index("user").loc[user])
    assert (recs["fallback"] == "user features").all()
    again = cflearn.predict(learn, [user] * 5, recs["item"].tolist(), user_info=planted.users)
    np.testing.assert_allclose(again["score"], recs["score"], atol=1e-4)
    cold_one = cflearn.cold_user(learn, planted.users.set_index("user").loc[user])
    mine = cflearn.predict(learn, cold_one, recs["item"].tolist())  # predict takes the FoldedUser too
    np.testing.assert_allclose(again["score"], mine["score"], atol=1e-4)
    assert (mine["fallback"] == "user features").all()


def test_features_that_told_nothing_about_new_users_leave_their_list_at_the_chart(cold, planted, monkeypatch):
    """best's list for a metadata-only user came from the features whatever they were worth (every new user
    got the same 10 items on real metadata). It leans on the chart as far as the features did not help
    training users held out as new (user_feature_weight): none -> the unknown user's chart, half -> half."""
    learn, _ = cold
    features = {"group": "g1"}
    chart = cflearn.recommend(learn, -5, n=5)
    monkeypatch.setattr(learn.model, "user_feature_weight", 0.0)
    recs = cflearn.recommend(learn, None, n=5, features=features)
    assert recs["item"].tolist() == chart["item"].tolist()
    # scored exactly as the average user, and said so (it was labelled "user features")
    assert (recs["fallback"] == "popular").all()
    said = cflearn.predict(learn, cflearn.cold_user(learn, features), recs["item"].tolist())
    average = cflearn.predict(learn, -5, recs["item"].tolist())
    np.testing.assert_allclose(said["score"], average["score"], atol=1e-5)
    assert (said["fallback"] == "average user (user features did not help new users)").all()
    info = pd.DataFrame({"user": [-7], "group": ["g1"]})
    by_table = cflearn.predict(learn, -7, recs["item"].tolist(), user_info=info)
    assert (by_table["fallback"] == "average user (user features did not help new users)").all()
    assert cflearn.fold_in(learn, {recs["item"].iloc[0]: 4.0}, features=features).source == "fold-in"
    monkeypatch.setattr(learn.model, "user_feature_weight", 0.5)
    half = cflearn.recommend(learn, None, n=5, features=features)
    assert (half["fallback"] == "user features + popular (50%)").all() and half["score"].is_monotonic_decreasing


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
    mine = cflearn.predict(learn, [odd], [planted.items["item"].iloc[0]])
    assert mine["score"].iloc[0] == pytest.approx(average, abs=1e-4)
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


def _groups(signal: str, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ratings whose tastes follow a planted user group, and a users table whose `group` column carries
    all of that signal (informative), a third of it (weak: two users in three get a random group) or
    none (shuffled)."""
    ds = cflearn.datasets.synthetic(n_users=600, n_items=300, density=0.08, seed=seed)
    users = ds.users.copy()
    rng = np.random.default_rng(seed)
    if signal == "weak":
        scramble = rng.random(len(users)) < 2 / 3
        users.loc[scramble, "group"] = rng.permutation(users["group"].to_numpy())[scramble]
    elif signal == "shuffled":
        users["group"] = rng.permutation(users["group"].to_numpy())
    return ds.ratings, users


@pytest.mark.parametrize("signal", ["informative", "weak", "shuffled"])
def test_metadata_that_does_not_help_new_users_does_not_hurt_them(signal):
    """New users (held out entirely) scored from their metadata are never worse than the average-user
    fallback, and fold-in started from the metadata never worse than fold-in alone, beyond noise; the
    weight of a new user's features was chosen on training users held out as new users."""
    ratings, users = _groups(signal)
    rng = np.random.default_rng(1)
    new = set(rng.choice(users["user"].to_numpy(), 90, replace=False).tolist())
    known = ratings[~ratings["user"].isin(new)]
    data = cflearn.from_df(known, "user", "item", "rating", "timestamp", seed=0, users=users[~users["user"].isin(new)],
                           user_features=["group"])
    # the user features kept whatever they do for known users (as select_features=False keeps them), and the
    # weight of a new user's features chosen as the check chooses it: on training users held out as new
    p = cflearn.PRESETS["best"].replace(item_features=(), user_features=("group",), select_features=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weight, trust = choose_user_feature_weight(data, p, None)
        learn = cflearn.collab_learner(data, dataclasses.replace(p, chosen=FeatureChoice({}, weight, trust)),
                                       progress=False)
    assert learn.cf.preset.user_features == ("group",)
    cflearn.fit(learn)
    trust = learn.cf.preset.new_user_features
    held = ratings[ratings["user"].isin(new)].sort_values(["user", "timestamp"])
    fallback = cflearn.predict(learn, held["user"].tolist(), held["item"].tolist())
    scored = cflearn.predict(learn, held["user"].tolist(), held["item"].tolist(), user_info=users)
    said = "user features" if trust["weight"] > 0 else "average user (user features did not help new users)"
    assert (scored["fallback"] == said).all() and (fallback["fallback"] == "average user").all()
    e_fallback, e_features = rmse(fallback["score"], held["rating"]), rmse(scored["score"], held["rating"])
    if trust["weight"] == 0:  # no trust in the features: a new user known by metadata is the average user
        np.testing.assert_allclose(scored["score"], fallback["score"], atol=1e-5)
    assert e_features <= e_fallback + 0.01, (signal, trust, e_features, e_fallback)
    folds: dict[str, list] = {"alone": [], "features": []}
    with torch.no_grad():
        tables = learn.cf.contract.tables()
    by_user = users.set_index("user")
    for user, rows in held.groupby("user"):
        first, rest = rows.iloc[:5], rows.iloc[5:]
        if not len(rest):
            continue
        given = dict(zip(first["item"], first["rating"]))
        idx = torch.from_numpy(learn.cf.items.encode(rest["item"].tolist()))
        for how, kw in (("alone", {}), ("features", {"features": by_user.loc[user]})):
            f = cflearn.fold_in(learn, given, steps=30, **kw)
            with torch.no_grad():
                raw = tables.items[idx] @ f.vector + f.bias + tables.item_bias[idx]
            folds[how] += list(zip(learn.cf.contract.output(raw).clamp(1, 5).numpy(), rest["rating"]))
    e_alone = rmse(*map(np.array, zip(*folds["alone"])))
    e_both = rmse(*map(np.array, zip(*folds["features"])))
    assert e_both <= e_alone + 0.01, (signal, trust, e_both, e_alone)
    if signal == "informative":  # and it still helps where it should
        assert trust["weight"] > 0.5 and e_features < e_fallback - 0.02, (trust, e_features, e_fallback)
    if signal == "shuffled":
        assert trust["weight"] <= 0.25, trust
    # lists: a metadata-only user's list leans on the chart by a weight chosen on training users held out as
    # new (features that told nothing leave it at the chart); on these users, never held out for that choice,
    # it is no worse than the unknown user's chart, and better where the groups are informative
    if trust["weight"] == 0:
        assert trust["list_chart"] == 1.0
    else:
        ndcg = trust["inner_ndcg@10"]
        assert ndcg[f"{trust['list_chart']:g}"] >= ndcg["1"], trust
    liked = held[held["rating"] >= 4]
    truth = {u: set(g["item"]) for u, g in liked.groupby("user")}
    order = sorted(truth)
    cold = [cflearn.cold_user(learn, by_user.loc[u]) for u in order]
    recs = cflearn.recommend_all(learn, cold, n=10)
    lists = [list(g["item"]) for _, g in recs.groupby("user", sort=False)]
    chart = list(cflearn.recommend(learn, -5, n=10)["item"])
    from cflearn.metrics import ndcg_at_k

    mine, popular = ndcg_at_k(lists, [truth[u] for u in order], 10), ndcg_at_k([chart] * len(order),
                                                                            [truth[u] for u in order], 10)
    assert mine >= popular - 0.01, (signal, trust, mine, popular)
    if signal == "informative":
        assert trust["list_chart"] < 1 and mine > popular + 0.01, (trust, mine, popular)
    if trust["list_chart"] == 1.0:
        assert all(lst == chart for lst in lists)


def test_on_a_cold_users_split_user_features_are_judged_on_new_users(planted):
    """select_features on a cold-users split held out random rows of known users, where a user's own vector
    makes the group nearly redundant (inner RMSE 0.405 with it against 0.421 without): it could drop the
    user features on the one split where metadata is all there is. It now holds out training users as new."""
    data = cflearn.from_df(planted, split="cold_users", valid_pct=0.1, seed=42, user_features=["group"],
                           item_features=["genres"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = cflearn.select_features(data, "best", seed=0)
    report = p.chosen.report
    assert report["inner_split"] == "cold_users" and p.user_features == ("group",)
    rmse_of = report["inner_rmse"]
    assert rmse_of["genres"] - rmse_of["genres, group"] > 0.1  # new users: the group is what places them
