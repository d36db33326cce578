"""The default model (preset ``dual``): ratings from its rating head, lists from its ranking head, one file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.callback.core import Callback

import cflearn


def planted_groups(n_users: int = 400, n_items: int = 300, per_user: int = 30, seed: int = 3) -> pd.DataFrame:
    """Users and items in 3 planted groups: a user rates mostly (80%) items of their own group, 4-5 stars,
    and a few of the others, 1-2 stars; items are drawn with a popularity skew within a group. So who
    rates what (the lists) and how (the ratings) both follow the groups, and the most-popular chart
    is a weak answer."""
    rng = np.random.default_rng(seed)
    ugroup, igroup = rng.integers(0, 3, n_users), rng.integers(0, 3, n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.5
    rows = []
    for u in range(n_users):
        own = rng.random(per_user) < 0.8
        for mine in own:
            pool = np.flatnonzero((igroup == ugroup[u]) == mine)
            i = int(rng.choice(pool, p=pop[pool] / pop[pool].sum()))
            rows.append((u + 1, i + 1, float(rng.choice([4.0, 4.5, 5.0]) if mine else rng.choice([1.0, 1.5, 2.0]))))
    return pd.DataFrame(rows, columns=["user", "item", "rating"]).drop_duplicates(["user", "item"])


@pytest.fixture(scope="module")
def planted():
    return cflearn.from_df(planted_groups(), seed=42)


@pytest.fixture(scope="module")
def dual(planted):
    learn = cflearn.collab_learner(planted, progress=False)
    return cflearn.fit(learn)


@pytest.fixture(scope="module")
def dual_learned(planted):
    """The default with its learned ranking head (what ``rank_head="auto"`` picks on large catalogues)."""
    return cflearn.fit(cflearn.collab_learner(planted, rank_head="learned", progress=False))


def test_the_default_is_two_heads_that_answer_both_questions(dual, planted):
    assert dual.cf.preset.name == "dual" and type(dual.model).__name__ == "Dual"
    fast = cflearn.fit(cflearn.collab_learner(planted, "fast", progress=False))
    ev = cflearn.evaluate(dual, baselines=["most popular"])
    ev_fast = cflearn.evaluate(fast, baselines=False)
    # ratings as good as fast's (the same kind of head), lists better than ranking by predicted rating
    assert ev.iloc[0]["rmse"] <= ev_fast.iloc[0]["rmse"] + 0.02
    assert ev.iloc[0]["ndcg@10"] > ev_fast.iloc[0]["ndcg@10"]
    assert ev.iloc[0]["ndcg@10"] > ev.loc["most popular", "ndcg@10"]
    assert list(ev.index) == ["model (dual)", "most popular"]


def test_predict_gives_ratings_and_recommend_gives_the_ranking_heads_list_with_ratings(dual, planted):
    user = int(planted.train["user"].iloc[0])
    top = cflearn.recommend(dual, user, n=8)
    assert top.attrs["score_kind"] == "ranking" and top["score"].is_monotonic_decreasing
    pred = cflearn.predict(dual, [user] * 8, top["item"].tolist())
    lo, hi = planted.scale
    assert pred["score"].between(lo, hi).all()
    np.testing.assert_allclose(top["rating"], pred["score"], rtol=1e-5)
    everyone = cflearn.recommend_all(dual, n=5)
    assert len(everyone) == 5 * (len(dual.cf.users) - 1) and "rating" in everyone.columns


def test_a_new_user_folded_in_gets_a_list_and_ratings(dual_learned, planted):
    dual = dual_learned
    rated = planted.train[planted.train["user"] == planted.train["user"].iloc[0]].head(6)
    folded = cflearn.fold_in(dual, dict(zip(rated["item"], rated["rating"])), chart=0)  # the model's list alone
    assert folded.list_vector is not None and folded.vector.shape[0] == dual.cf.contract.tables().users.shape[1]
    top = cflearn.recommend(dual, folded, n=5)
    assert (top["fallback"] == "fold-in (6 ratings)").all() and not set(rated["item"]) & set(top["item"])
    # the list is the ranking head's encoding of the items, the ratings the fitted rating vector's
    head = cflearn.models.ranking_head(dual.model)
    idx = torch.from_numpy(dual.cf.items.encode(top["item"].tolist()))
    with torch.no_grad():
        expect = folded.list_vector @ head.i_weight.weight[idx].T + head.i_bias.weight[idx, 0]
    np.testing.assert_allclose(top["score"], expect.numpy(), rtol=1e-5)
    tables = dual.cf.contract.tables()
    with torch.no_grad():
        raw = tables.items[idx] @ folded.vector + folded.bias + tables.item_bias[idx]
    np.testing.assert_allclose(top["rating"], dual.cf.contract.output(raw).clamp(*planted.scale).numpy(), rtol=1e-5)


def test_on_a_small_catalogue_the_default_ranks_with_ease_and_rates_as_fast(dual, planted):
    p = dual.cf.preset
    assert p.rank_head == "item_item" and type(dual.model.ranking).__name__ == "ItemItem"
    assert (p.epochs, p.lr) == (cflearn.PRESETS["fast"].epochs, cflearn.PRESETS["fast"].lr)
    # the head is EASE as cflearn.baselines solves it, on the same items and lambda: the same scores
    head = cflearn.models.item_item_head(dual.model)
    tr = planted.codes[planted.train_idx]
    X = cflearn.baselines.interactions(tr[:, 0], tr[:, 1], len(planted.users), len(planted.items))
    ref = cflearn.baselines.ease(X, head.lam, min_count=p.min_count)
    users = torch.arange(1, len(planted.users))
    np.testing.assert_array_equal(ref.keep, head.keep.numpy())
    with torch.no_grad():
        ours = head.list_scores(users)[:, head.keep]
    np.testing.assert_allclose(ours.numpy(), ref.scores(users)[:, ref.keep].numpy(), rtol=1e-4, atol=2e-6)
    # items outside the covered ones rank below all of them
    outside = torch.ones(len(head.floor), dtype=torch.bool)
    outside[head.keep] = False
    assert float(head.floor[outside].max()) < float(ours.min())
    # a new user's list: the sum of the B rows of the items they liked (a NumPy formula; a disliked item is
    # no taste to extend), every rated item left out
    rated = planted.train[planted.train["user"] == planted.train["user"].iloc[0]].head(8)
    assert (rated["rating"] < 4).any() and (rated["rating"] >= 4).any()
    folded = cflearn.fold_in(dual, dict(zip(rated["item"], rated["rating"])), chart=0)  # the model's list alone
    top = cflearn.recommend(dual, folded, n=5)
    assert (top["fallback"] == "fold-in (8 ratings)").all() and not set(rated["item"]) & set(top["item"])
    B, keep = head.weights.numpy(), head.keep.numpy().tolist()
    liked = rated.loc[rated["rating"] >= 4, "item"].tolist()
    mine = [keep.index(i) for i in dual.cf.items.encode(liked) if i in keep]
    expect = B[mine].sum(0)[[keep.index(i) for i in dual.cf.items.encode(top["item"].tolist())]]
    np.testing.assert_allclose(top["score"].to_numpy(), expect, rtol=1e-4, atol=2e-6)
    # no rating to extend (only dislikes): the popular items, never a rated one
    disliked = rated[rated["rating"] < 4]
    with pytest.warns(UserWarning, match="none of the .* known ratings is at the relevance level"):
        unliked = cflearn.fold_in(dual, dict(zip(disliked["item"], disliked["rating"])))
    empty = cflearn.recommend(dual, unliked, n=3)
    assert (empty["fallback"] == f"popular ({len(disliked)} ratings, none liked)").all()
    counts = dual.cf.item_counts.clone()
    counts[torch.from_numpy(dual.cf.items.encode(disliked["item"].tolist()))] = -1
    counts[~torch.isin(torch.arange(len(counts)), head.keep)] = -1
    got = counts[torch.from_numpy(dual.cf.items.encode(empty["item"].tolist()))]
    assert got.tolist() == counts.topk(3).values.tolist()  # the most rated of the rest, in order


def test_the_ranking_head_follows_the_catalogue_and_the_data(planted, monkeypatch):
    import cflearn.kinds._dual as dual_kind
    monkeypatch.setattr(dual_kind, "ITEM_ITEM_MAX", 10)  # a catalogue "too large" for the item-item head
    big = cflearn.collab_learner(planted, progress=False)
    assert big.cf.preset.rank_head == "learned" and type(big.model.ranking).__name__ == "Ranker"
    forced = cflearn.collab_learner(planted, rank_head="item_item", progress=False)
    assert type(forced.model.ranking).__name__ == "ItemItem"
    with pytest.raises(cflearn.ConfigError, match="rank_head must be"):
        cflearn.collab_learner(planted, rank_head="ease")
    monkeypatch.undo()
    with pytest.raises(cflearn.ConfigError, match=r"dropout applies to the learned ranking head.*rank_head='learned'"):
        cflearn.collab_learner(planted, dropout=0.5)
    with pytest.raises(cflearn.ConfigError, match="rank_head applies to preset 'dual'"):
        cflearn.collab_learner(planted, "fast", rank_head="learned")
    implicit = cflearn.from_df(cflearn.datasets.synthetic(n_users=200, n_items=100, density=0.1, implicit=True))
    with pytest.raises(cflearn.ConfigError, match="interactions"):
        cflearn.collab_learner(implicit, rank_head="item_item")


def test_with_user_features_a_new_user_is_scored_from_metadata(tmp_path, capsys):
    ds = cflearn.datasets.synthetic(n_users=300, n_items=200, density=0.1, seed=0)
    data = cflearn.from_df(ds, seed=42, user_features=["group"], item_features=["genres"])
    learn = cflearn.fit(cflearn.collab_learner(data, epochs=3, progress=False))
    assert type(learn.model.rating).__name__ == "HybridDotBias"  # the rating head is the hybrid
    top = cflearn.recommend(learn, None, n=4, features={"group": "g1"})
    # the ranking head knows no features: the list is the chart, the ratings come from the features
    assert (top["fallback"] == "popular (ratings from user features)").all() and top["rating"].notna().all()
    model = cflearn.load(cflearn.save(learn, tmp_path / "m.safetensors"))
    pd.testing.assert_frame_equal(top, cflearn.recommend(model, None, n=4, features={"group": "g1"}))
    from cflearn.cli import main  # the command line says the same: the list is the chart, ratings from features

    assert main(["recommend", str(tmp_path / "m.safetensors"), "--features", "group=g1", "-n", "4"]) == 0
    said = capsys.readouterr().out
    assert "top 4 for a new user (group=g1), the most popular items (this model's lists do not use user " in said
    assert said.count("  predicted ") == 4  # each row: its rating from the features


def test_on_interactions_the_default_trains_its_ranking_head_alone():
    ds = cflearn.datasets.synthetic(n_users=300, n_items=200, density=0.1, implicit=True, seed=1)
    data = cflearn.from_df(ds)
    learn = cflearn.fit(cflearn.collab_learner(data, epochs=3, progress=False))
    assert learn.cf.preset.name == "dual" and learn.cf.preset.loss == "softmax"
    assert type(learn.model).__name__ == "Ranker"
    assert learn.cf.preset.n_factors == cflearn.PRESETS["dual"].implicit_factors == 128
    assert learn.model.i_in.weight.shape[1] == 128  # interactions: the ranking head's size there
    with pytest.raises(cflearn.ConfigError, match="rating head"):
        cflearn.collab_learner(data, row_l2=0.1)


def test_the_ranking_heads_size_on_interactions_gives_way_to_a_size_given():
    data = cflearn.from_df(cflearn.datasets.synthetic(n_users=100, n_items=80, density=0.1, implicit=True, seed=2))
    size = {preset: cflearn.collab_learner(data, preset, progress=False).cf.preset.n_factors
            for preset in ("dual", "rank")}
    assert size == {"dual": 128, "rank": 128}
    assert cflearn.collab_learner(data, rank_factors=16, progress=False).cf.preset.n_factors == 16
    with pytest.raises(cflearn.ConfigError, match="n_factors applies to the rating head"):
        cflearn.collab_learner(data, n_factors=24)
    assert cflearn.collab_learner(data, "rank", n_factors=24, progress=False).cf.preset.n_factors == 24
    assert cflearn.collab_learner(data, implicit_factors=32, progress=False).cf.preset.n_factors == 32
    rated = cflearn.from_df(cflearn.datasets.synthetic(n_users=100, n_items=80, density=0.1, seed=2))
    assert cflearn.collab_learner(rated, "rank", progress=False).cf.preset.n_factors == 64
    for preset, use in (("dual", "rank_factors="), ("rank", "n_factors=")):
        with pytest.raises(cflearn.ConfigError, match=f"this data has ratings; use {use}"):
            cflearn.collab_learner(rated, preset, implicit_factors=32)
    with pytest.raises(cflearn.ConfigError, match="ranking presets only"):
        cflearn.collab_learner(rated, "fast", implicit_factors=32)


def test_a_large_user_base_trains_fewer_epochs_unless_told(planted):
    p = cflearn.PRESETS["dual"]
    small = cflearn.collab_learner(planted, rank_head="learned", progress=False)
    steps = len(small.dls.train)
    assert small.cf.preset.epochs == min(p.epochs, max(5, -(-p.step_budget // steps)))
    many = cflearn.from_df(cflearn.datasets.synthetic(n_users=3000, n_items=100, density=0.02, seed=0))
    assert cflearn.collab_learner(many, rank_head="learned", progress=False).cf.preset.epochs < p.epochs
    assert cflearn.collab_learner(many, rank_head="learned", epochs=p.epochs,
                                  progress=False).cf.preset.epochs == p.epochs


def test_fastai_tools_work_on_the_default(dual, dual_learned, planted):
    x, y = dual.dls.one_batch()  # the item-item head is solved: batches are the rating head's pairs
    assert x.shape[1] == 2 and len(x) == len(y)
    dual = dual_learned
    batch = dual.dls.one_batch()
    (users, pairs), (rows, ratings) = batch
    assert users.dim() == 1 and pairs.shape[1] == 2 and len(pairs) == len(ratings)
    shown = dual.dls.show_batch(show=False, max_n=3)
    assert list(shown.columns[:3]) == ["user", "item", "rating"] and len(shown) == 3
    dl = dual.dls.test_dl(planted.valid.head(10))
    preds, _ = dual.get_preds(dl=dl)
    expect = cflearn.predict(dual, planted.valid["user"].head(10).tolist(), planted.valid["item"].head(10).tolist(),
                             clip=False)
    np.testing.assert_allclose(preds.numpy(), expect["score"].to_numpy(), rtol=1e-5)


def test_settings_that_do_not_apply_to_the_default_are_errors(planted):
    with pytest.raises(cflearn.ConfigError, match="use_nn does not apply"):
        cflearn.collab_learner(planted, "dual", use_nn=True)
    with pytest.raises(cflearn.ConfigError, match="apply to preset 'dual'"):
        cflearn.collab_learner(planted, "rank", rank_weight=2.0)
    with pytest.raises(cflearn.ConfigError, match="ranking presets only"):
        cflearn.collab_learner(planted, "fast", min_count=2)
    # model= and use_nn=True without a preset: the rating presets, as before
    assert cflearn.collab_learner(planted, use_nn=True, progress=False).cf.preset.name == "fast_nn"


def test_evaluate_can_leave_the_baselines_out(dual):
    assert list(cflearn.evaluate(dual, baselines=False).index) == ["model (dual)"]
    with pytest.raises(cflearn.ConfigError, match="did you mean 'EASE'"):
        cflearn.evaluate(dual, baselines=["ease"])


def test_a_count_column_passed_as_ratings_says_to_pass_it_as_a_weight():
    rng = np.random.default_rng(0)
    plays = pd.DataFrame({"user": rng.integers(1, 200, 3000), "artist": rng.integers(1, 300, 3000),
                          "plays": np.maximum(1, np.round(rng.lognormal(5, 1.5, 3000))).astype(int)})
    with pytest.raises(cflearn.DataError, match=r"looks like counts.*weight='plays'"):
        cflearn.from_df(plays, "user", "artist", "plays")
    hi = float(plays["plays"].max())
    assert cflearn.from_df(plays, "user", "artist", "plays", rating_range=(0, hi)).scale == (0.0, hi)
    assert cflearn.from_df(plays, "user", "artist", weight="plays").implicit
    stars = plays.assign(stars=rng.integers(1, 11, 3000))  # a 1-10 scale is not counts
    assert cflearn.from_df(stars, "user", "artist", "stars").scale == (1.0, 10.0)


def test_the_unknown_user_fallback_is_sorted_by_the_scores_it_shows(dual):
    top = cflearn.recommend(dual, "nobody-knows-me" if dual.cf.users.ids.dtype.kind not in "iu" else 10**9, n=6)
    assert (top["fallback"] == "popular").all() and top["score"].is_monotonic_decreasing
    counts = dual.cf.item_counts[torch.from_numpy(dual.cf.items.encode(top["item"].tolist()))]
    np.testing.assert_array_equal(top["score"].to_numpy(), counts.numpy())


def test_on_a_large_catalogue_the_learned_head_samples_items_as_rank_does():
    """The dual's learned head scored the whole catalogue at every step: 5.7x preset rank's CPU at 60,000 items
    (bench/catalogue.py). It now samples items where rank does, with its optimizer."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user": np.repeat(np.arange(1000), 40), "item": rng.integers(0, 60_000, 40_000),
                       "rating": rng.integers(1, 6, 40_000).astype(float)}).drop_duplicates(["user", "item"])
    data = cflearn.from_df(df)
    assert len(data.items) > 20_000  # above the full softmax's catalogue
    got = {}
    for preset, extra in (("dual", {"rank_head": "learned"}), ("rank", {})):
        learn = cflearn.collab_learner(data, preset, progress=False, **extra)
        got[preset] = (learn.cf.preset.negatives, learn.cf.preset.optimizer, learn.loss_func.rank.negatives
                       if preset == "dual" else learn.loss_func.negatives)
    assert got["dual"] == got["rank"] and got["dual"][::2] == (2048, 2048)  # and the same optimizer
    full = cflearn.collab_learner(data, rank_head="learned", negatives=0, progress=False)
    assert full.cf.preset.negatives == 0 and full.loss_func.rank.scored_items > 0
    learn = cflearn.fit(cflearn.collab_learner(data, rank_head="learned", epochs=1, progress=False))
    assert np.isfinite(learn.recorder.values[-1][0]) and len(cflearn.recommend(learn, df.user.iloc[0], n=5)) == 5
    with pytest.raises(cflearn.ConfigError, match="negatives must be a non-negative integer"):
        cflearn.collab_learner(data, rank_head="learned", negatives=-1)


class _Snapshots(Callback):
    """Each trained epoch's weights (after the Recorder has its metrics)."""

    order = 66

    def before_fit(self):
        self.states = []

    def after_epoch(self):
        if self.training is False and self.learn.training is False:
            self.states.append({k: v.detach().clone() for k, v in self.learn.model.state_dict().items()})


def test_keep_best_keeps_each_learned_head_at_its_own_best_epoch(planted):
    """The learned dual's validation loss mixes the rating head's MSE with the ranking loss, mostly the
    latter: keep_best kept the epoch of the lowest mix, so the rating head could end worse than at the last
    epoch (RMSE 0.4928 against 0.4721 on a wine set). Each head now keeps its epoch by its own metric."""
    learn = cflearn.collab_learner(planted, rank_head="learned", epochs=12, lr=0.05, progress=False, seed=0)
    snap = _Snapshots()
    cflearn.fit(learn, keep_best=True, cbs=[snap])
    names = list(learn.recorder.metric_names)[1:-1]  # train_loss, valid_loss, rmse, ranking_loss
    values = np.array([[float(v) for v in row[:len(names)]] for row in learn.recorder.values])
    rmse, ranking = values[:, names.index("rmse")], values[:, names.index("ranking_loss")]
    best_rating, best_ranking = int(np.argmin(rmse)), int(np.argmin(ranking))
    assert best_rating != best_ranking  # here the heads peak apart (the mixed loss's best is neither's)
    assert learn.cf.kept_heads == {"rating": best_rating + 1, "ranking": best_ranking + 1}
    state = learn.model.state_dict()
    assert len(snap.states) == len(values)
    for key, value in state.items():
        epoch = best_rating if key.startswith("rating.") else best_ranking
        torch.testing.assert_close(value, snap.states[epoch][key], msg=key)
    # the validation loss mixes the two: MSE + weight x ranking loss (up to how batches are weighted)
    w = learn.cf.preset.rank_weight
    np.testing.assert_allclose(values[:, names.index("valid_loss")], rmse ** 2 + w * ranking, rtol=0.05)
    again = learn.validate()  # the kept heads, measured again: each at its best, so no worse than the last epoch
    assert float(again[names.index("rmse") - 1]) == pytest.approx(rmse.min(), rel=1e-4) and rmse.min() <= rmse[-1]
    assert float(again[names.index("ranking_loss") - 1]) == pytest.approx(ranking.min(), rel=1e-4)


def test_early_stopping_waits_while_either_learned_head_improves(planted, capsys):
    """Early stopping on the learned dual follows each head's own metric: it stops after `patience` epochs in
    which neither the validation RMSE nor the ranking loss reached a new low, never inside the warm-up. The
    rule is replayed here on the recorded metrics: the run must end exactly where it says."""
    epochs, patience, warm = 12, 2, 3  # the warm-up: the first quarter of the one-cycle schedule
    learn = cflearn.collab_learner(planted, rank_head="learned", epochs=epochs, lr=0.05, progress=False, seed=0)
    cflearn.fit(learn, patience=patience)
    names = list(learn.recorder.metric_names)[1:-1]
    values = np.array([[float(v) for v in row[:len(names)]] for row in learn.recorder.values])
    heads = values[:, [names.index("rmse"), names.index("ranking_loss")]]
    best, wait, stop = np.full(2, np.inf), 0, epochs
    for k, row in enumerate(heads):
        improved = bool((row < best).any())
        best = np.minimum(best, row)
        wait = 0 if improved or k + 1 <= warm else wait + 1
        if wait >= patience:
            stop = k + 1
            break
    assert len(values) == stop
    if stop < epochs:
        assert f"no lower validation RMSE or ranking loss since epoch {stop - patience}" in capsys.readouterr().out


def test_the_cli_says_which_epoch_each_learned_head_kept(monkeypatch, tmp_path, capsys):
    import json

    import cflearn.kinds._dual as dual_kind
    from cflearn.cli import main

    monkeypatch.setattr(dual_kind, "ITEM_ITEM_MAX", 10)  # a catalogue "too large" for the item-item head
    planted_groups().to_csv(tmp_path / "r.csv", index=False)
    out = tmp_path / "run"
    assert main(["fit", str(tmp_path / "r.csv"), "--user", "user", "--item", "item", "--rating", "rating",
                 "--epochs", "12", "--keep-best", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    heads = m["kept_heads"]
    assert set(heads) == {"rating", "ranking"} and m["kept_epoch"] == max(heads.values())
    said = capsys.readouterr().out
    assert (f"kept the rating head of epoch {heads['rating']} (the lowest validation RMSE) and the ranking head of "
            f"epoch {heads['ranking']} (the lowest validation ranking loss)") in said
    if heads["rating"] != heads["ranking"]:
        assert "validation loss of the kept heads" in (out / "report.html").read_text()
