"""Fold-in's empirical-Bayes prior: new users from a few ratings beat the average user, on planted data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cflearn
from cflearn.serve._fold import TRAIN_TO_HELD_OUT, rating_noise, user_prior


@pytest.fixture(scope="module")
def held_out():
    """Planted tastes; 10% of the users never seen in training; the model trains on the others."""
    ds = cflearn.datasets.synthetic(400, 200, density=0.1, noise=0.3, seed=5)
    users = np.sort(ds.ratings["user"].unique())
    out = set(np.random.default_rng(0).choice(users, 40, replace=False).tolist())
    data = cflearn.from_df(ds.ratings[~ds.ratings["user"].isin(out)], seed=42)
    learn = cflearn.collab_learner(data, "fast", progress=False, seed=0)
    cflearn.fit(learn)
    return learn, ds.ratings[ds.ratings["user"].isin(out)]


def _rmse(learn, held, **kwargs):
    """RMSE on each held-out user's ratings after their 5 earliest, folded in (or the fallback)."""
    errors, biases = [], []
    for _, rows in held.groupby("user"):
        rows = rows.sort_values("timestamp", kind="stable")
        given, rest = rows.iloc[:5], rows.iloc[5:]
        rest = rest[learn.cf.items.encode(rest["item"]) > 0]
        if kwargs.get("fallback"):
            pred = cflearn.predict(learn, [-1] * len(rest), rest["item"].tolist()).score.to_numpy()
        else:
            folded = cflearn.fold_in(learn, dict(zip(given["item"], given["rating"])), **kwargs)
            biases.append(folded.bias)
            pred = cflearn.predict(learn, [folded] * len(rest), rest["item"].tolist())["score"].to_numpy()
        errors.append(pred - rest["rating"].to_numpy(float))
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2))), np.std(biases) if biases else np.nan


def test_five_ratings_beat_the_average_user(held_out):
    learn, held = held_out
    fallback, _ = _rmse(learn, held, fallback=True)
    bayes, bias_sd = _rmse(learn, held)
    assert bayes < 0.9 * fallback, (bayes, fallback)
    # the prior keeps folded biases as spread as the trained users' biases, not wider (the old fit's fault)
    trained_sd = float(learn.model.u_bias.weight[1:].std())
    assert bias_sd < 1.5 * trained_sd, (bias_sd, trained_sd)


def test_a_strong_prior_is_the_average_user_and_no_prior_overfits(held_out):
    learn, held = held_out
    fallback, _ = _rmse(learn, held, fallback=True)
    shrunk, _ = _rmse(learn, held, strength=1e6)
    assert shrunk == pytest.approx(fallback, abs=0.01)  # nothing learnt from 5 ratings: the average user
    loose, loose_sd = _rmse(learn, held, l2=0.0)
    bayes, bias_sd = _rmse(learn, held)
    assert bayes < loose and bias_sd < loose_sd


def test_the_prior_comes_from_the_trained_users_and_the_held_out_noise(held_out):
    learn, _ = held_out
    cf = learn.cf
    U, bu, _, _ = (t.detach() for t in cf.contract.tables())
    prior = user_prior(cf, U, bu)
    torch.testing.assert_close(prior.mean, U[1:].mean(0))
    assert prior.bias_var == pytest.approx(float(bu.reshape(-1)[1:].double().var()), rel=1e-4)
    data = cf.data
    known = data.valid_idx[(data.codes[data.valid_idx] > 0).all(axis=1)]
    pred = cflearn.predict(learn, data.ratings["user"].to_numpy()[known], data.ratings["item"].to_numpy()[known])
    assert prior.noise == pytest.approx(float(np.mean((pred.score - data.values[known]) ** 2)), rel=1e-3)


def test_noise_without_held_out_ratings_is_scaled_training_error(synth):
    data = cflearn.from_df(synth, valid_pct=0.0001, seed=1)
    learn = cflearn.collab_learner(data, "fast", epochs=3, progress=False)
    cflearn.fit(learn)
    train = data.train
    pred = cflearn.predict(learn, train["user"].tolist(), train["item"].tolist()).score.to_numpy()
    mse = float(np.mean((pred - train["rating"].to_numpy()) ** 2))
    assert rating_noise(learn.cf) == pytest.approx(TRAIN_TO_HELD_OUT * mse, rel=1e-3)


def test_saved_model_folds_in_the_same_user(held_out, tmp_path):
    learn, held = held_out
    rows = held[held["user"] == held["user"].iloc[0]].iloc[:5]
    ratings = dict(zip(rows["item"], rows["rating"]))
    cflearn.save(learn, tmp_path / "m.safetensors")
    loaded = cflearn.load(tmp_path / "m.safetensors")
    assert loaded.fold_noise == pytest.approx(rating_noise(learn.cf))
    a, b = cflearn.fold_in(learn, ratings), cflearn.fold_in(loaded, ratings)
    torch.testing.assert_close(a.vector, b.vector, rtol=1e-4, atol=1e-5)
    assert a.bias == pytest.approx(b.bias, abs=1e-5)


@pytest.mark.parametrize("kwargs", [{"strength": -1.0}, {"l2": float("nan")}, {"strength": "high"}])
def test_bad_settings_are_config_errors(trained, kwargs):
    with pytest.raises(cflearn.ConfigError):
        cflearn.fold_in(trained, {1: 4.0}, **kwargs)


def test_retraining_measures_the_noise_again(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", epochs=1, progress=False)
    cflearn.fit(learn)
    first = rating_noise(learn.cf)
    a = cflearn.fold_in(learn, {1: 4.0, 2: 2.0})
    prior = learn.cf.fold_prior
    assert prior is not None and cflearn.fold_in(learn, {1: 4.0, 2: 2.0}).bias == a.bias  # cached, same answer
    cflearn.fit(learn, epochs=3)
    assert learn.cf.fold_prior is None  # the trained users changed: the prior is computed again
    assert learn.cf.fold_noise is None or learn.cf.fold_noise != first
    assert rating_noise(learn.cf) < first  # more training: less error on held-out ratings of known users


def test_a_hybrid_model_measures_its_noise_too(synth):
    """best's item vocabulary extends the data's (items known from the items table): noise is still measured."""
    data = cflearn.from_df(synth, seed=3, item_features=["genres"])
    learn = cflearn.collab_learner(data, "best", select_features=False, epochs=3, progress=False)
    cflearn.fit(learn)
    assert learn.cf.items is not data.items
    known = data.valid_idx[(data.codes[data.valid_idx] > 0).all(axis=1)]
    pred = cflearn.predict(learn, data.ratings["user"].to_numpy()[known], data.ratings["item"].to_numpy()[known])
    assert rating_noise(learn.cf) == pytest.approx(float(np.mean((pred.score - data.values[known]) ** 2)), rel=1e-3)


def test_folded_users_can_be_grouped_in_recommend_alls_frame(held_out):
    """recommend_all's user column holds the FoldedUser objects given; grouping it raised 'unhashable type'."""
    learn, held = held_out
    firsts = [rows.sort_values("timestamp", kind="stable").iloc[:5] for _, rows in held.groupby("user")][:3]
    folded = [cflearn.fold_in(learn, dict(zip(g["item"], g["rating"]))) for g in firsts]
    recs = cflearn.recommend_all(learn, folded, n=4)
    groups = {user: list(g["item"]) for user, g in recs.groupby("user", sort=False)}
    assert list(groups) == folded and all(len(items) == 4 for items in groups.values())
    for f, g in zip(folded, firsts):  # each list is that user's, without the items they gave
        assert groups[f] == list(cflearn.recommend(learn, f, n=4)["item"]) and not set(groups[f]) & set(g["item"])
    assert folded[0] != cflearn.fold_in(learn, dict(zip(firsts[0]["item"], firsts[0]["rating"])))  # each its own


def test_predict_takes_folded_users_like_raw_ids(held_out):
    """A FoldedUser in predict is scored from its fitted vector and bias (it raised, and before that was
    scored as the average user), beside raw IDs in the same call, with a label that says so."""
    learn, held = held_out
    firsts = [rows.sort_values("timestamp", kind="stable").iloc[:5] for _, rows in held.groupby("user")][:2]
    a, b = (cflearn.fold_in(learn, dict(zip(g["item"], g["rating"]))) for g in firsts)
    known = int(learn.cf.users.ids[1])
    items = [1, 2, 3, 999999]
    out = cflearn.predict(learn, [a, known, b, a], items)
    tables = learn.cf.contract.tables()
    for row, user in ((0, a), (2, b), (3, a)):
        i = int(learn.cf.items.encode([items[row]])[0])
        with torch.no_grad():
            raw = tables.items[i] @ user.vector + user.bias + tables.item_bias[i]
        expect = float(learn.cf.contract.output(raw).clamp(*learn.cf.scale))
        assert out["score"].iloc[row] == pytest.approx(expect, rel=1e-5)
    assert out["score"].iloc[1] == pytest.approx(float(cflearn.predict(learn, known, 2)["score"].iloc[0]))
    assert out["fallback"].tolist() == ["fold-in (5 ratings)", "", "fold-in (5 ratings)",
                                        "fold-in (5 ratings), average item"]


@pytest.mark.parametrize(("n_ratings", "f", "strength"), [(1, 8, 1.0), (5, 16, 1.0), (40, 16, 0.3)])
def test_the_gauss_newton_fit_reaches_the_posterior_mode_lbfgs_finds(n_ratings, f, strength):
    """fold_in's solver (a few Gauss-Newton steps) against a long L-BFGS run on the same objective: random
    items, a sigmoid y_range output, a full-covariance prior; the same answer, the loss no higher."""
    from cflearn.models import squash
    from cflearn.serve._fold import UserPrior, posterior_mode

    g = torch.Generator().manual_seed(n_ratings)
    q, c = torch.randn(n_ratings, f, generator=g), 0.3 * torch.randn(n_ratings, generator=g)
    y = 0.5 + 4.5 * torch.rand(n_ratings, generator=g)
    A = torch.randn(f, f, generator=g)
    prior = UserPrior(0.1 * torch.randn(f, generator=g), A @ A.T / f + torch.eye(f), 0.2, 0.5, 0.8)

    def output(z):
        return squash(z, (0.0, 5.5))

    def loss(u, b):
        d = u - prior.mean.double()
        r = output(q.double() @ u + b + c.double()) - y.double()
        return r @ r / prior.noise + strength * (
            (b - prior.bias_mean) ** 2 / prior.bias_var + d @ prior.precision.double() @ d)

    u, b = posterior_mode(output, q, c, y, (prior.mean, prior.bias_mean), prior, strength=strength)
    ref_u = prior.mean.clone().double().requires_grad_(True)
    ref_b = torch.tensor(prior.bias_mean, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ref_u, ref_b], max_iter=2000, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = loss(ref_u, ref_b)
        value.backward()
        return value

    opt.step(closure)
    torch.testing.assert_close(u, ref_u.detach().float(), rtol=1e-3, atol=1e-4)
    assert b == pytest.approx(float(ref_b), abs=1e-4)
    assert float(loss(u.double(), torch.tensor(b, dtype=torch.float64))) <= float(loss(ref_u, ref_b)) + 1e-6


def test_a_new_users_list_starts_from_the_chart_and_leaves_it_as_ratings_come(held_out, monkeypatch):
    """The list is the model's ranking and the chart's, blended by rank, the chart weighing c / (c + m): checked
    against the formula written out here; chart=0 is the model's ranking alone, the label says which."""
    from cflearn.serve._fold import CHART_OFFSET, CHART_PRIOR

    learn, held = held_out
    monkeypatch.setattr(learn.cf, "fold_lists", 1.5)  # as a model whose lists beat the chart (see the next test)
    rows = held[held["user"] == held["user"].iloc[0]].sort_values("timestamp", kind="stable")
    counts = learn.cf.item_counts.double().numpy()
    for m in (1, 3, 10):
        given = dict(zip(rows["item"].iloc[:m], rows["rating"].iloc[:m]))
        folded = cflearn.fold_in(learn, given)
        w = CHART_PRIOR / (CHART_PRIOR + m)
        assert folded.chart == pytest.approx(w) and folded.list_items == m
        alone = cflearn.fold_in(learn, given, chart=0)
        assert alone.chart == 0 and torch.equal(alone.vector, folded.vector)
        everything = len(learn.cf.items) - 1
        model = cflearn.recommend(learn, alone, n=everything)  # the model's ranking of every unseen item
        top = cflearn.recommend(learn, folded, n=10)
        items = list(model["item"])
        model_rank = {item: r for r, item in enumerate(items)}
        enc = learn.cf.items.encode(items)
        chart_order = [items[k] for k in sorted(range(len(items)), key=lambda k: (-counts[enc[k]], enc[k]))]
        chart_rank = {item: r for r, item in enumerate(chart_order)}
        blend = {i: (1 - w) / (CHART_OFFSET + model_rank[i]) + w / (CHART_OFFSET + chart_rank[i]) for i in items}
        index = dict(zip(items, enc))
        expect = sorted(items, key=lambda i: (-blend[i], index[i]))[:10]  # equal blends in item order (m=10 has one)
        assert list(top["item"]) == expect
        np.testing.assert_allclose(top["score"], [blend[i] for i in expect], rtol=1e-5)
        assert (top["fallback"] == f"fold-in ({m} rating{'s' if m > 1 else ''}) + popular ({w:.0%})").all()
        assert (model["fallback"] == f"fold-in ({m} rating{'s' if m > 1 else ''})").all()
    with pytest.raises(cflearn.ConfigError, match="chart must be a non-negative number"):
        cflearn.fold_in(learn, {1: 4.0}, chart=-1)


def test_a_ranking_head_told_only_dislikes_says_so_and_lists_the_chart(synth_data):
    """rank learns from liked items only: fold-in from ratings below the relevance level gave a zero vector,
    labelled 'fold-in', with no word. It now warns, and the list is the chart without the rated items."""
    learn = cflearn.collab_learner(synth_data, "rank", epochs=2, progress=False, seed=0)
    cflearn.fit(learn)
    low = synth_data.train[synth_data.train["rating"] < 3].drop_duplicates("item").head(3)
    with pytest.warns(UserWarning, match="none of the 3 known ratings is at the relevance level"):
        folded = cflearn.fold_in(learn, dict(zip(low["item"], low["rating"])))
    assert folded.chart == 1.0 and folded.list_items == 0 and "none liked" in repr(folded)
    top = cflearn.recommend(learn, folded, n=5)
    chart = cflearn.recommend(learn, -99999, n=5 + 3)  # an unknown user's list
    assert list(top["item"]) == [i for i in chart["item"] if i not in set(low["item"])][:5]
    assert (top["fallback"] == "popular (3 ratings, none liked)").all()


def test_a_folded_user_belongs_to_the_model_that_folded_them(held_out, trained):
    """A FoldedUser's vector lives in its model's space: another model's recommend / predict ended in a matrix
    shape RuntimeError, or, with the same shapes, would have scored them as someone else."""
    learn, held = held_out
    rows = held[held["user"] == held["user"].iloc[0]].iloc[:5]
    folded = cflearn.fold_in(learn, dict(zip(rows["item"], rows["rating"])))
    assert not cflearn.recommend(learn, folded, n=3).empty  # its own model takes it
    for call in (lambda: cflearn.recommend(trained, folded, n=3), lambda: cflearn.predict(trained, folded, [1])):
        with pytest.raises(cflearn.ConfigError, match="folded in with another model"):
            call()


def test_a_model_whose_lists_lose_to_the_chart_gives_new_users_the_chart(held_out, tmp_path):
    """fast ranks by predicted rating; on this planted set (popular items are liked) its lists lose to the
    chart for known users, so a new user's list blended towards it would lose too (best's fold-in lists fell
    to 0.26x the chart after 20 ratings on a synthetic set). The ratio is measured on the validation rows,
    written out here again, and a new user then gets the chart, labelled so; the ratio travels in the file."""
    from cflearn.metrics import ndcg_at_k, relevance_level

    learn, held = held_out
    cf = learn.cf
    cf.fold_lists = None
    ratio = cflearn.serve._recommend.lists_vs_chart(cf)
    data = cf.data
    valid = data.valid[data.valid["rating"] >= relevance_level(cf.scale)]
    valid = valid[(cf.users.encode(valid["user"]) > 0) & (cf.items.encode(valid["item"]) > 0)]
    truth = {u: set(g["item"]) for u, g in valid.groupby("user")}
    users = sorted(truth)
    mine = cflearn.recommend_all(learn, users, 10)
    lists = [list(g["item"]) for _, g in mine.groupby("user", sort=False)]
    counts = data.train["item"].value_counts()
    charts = []
    for u in users:
        seen = set(data.train.loc[data.train["user"] == u, "item"])
        charts.append([i for i in counts.index if i not in seen][:10])
    expect = ndcg_at_k(lists, [truth[u] for u in users], 10) / ndcg_at_k(charts, [truth[u] for u in users], 10)
    assert ratio == pytest.approx(expect, rel=0.02) and ratio < 1
    rows = held[held["user"] == held["user"].iloc[0]].iloc[:5]
    folded = cflearn.fold_in(learn, dict(zip(rows["item"], rows["rating"])))
    assert folded.chart == 1.0
    top = cflearn.recommend(learn, folded, n=5)
    popular = [i for i in cflearn.recommend(learn, -1, n=10)["item"] if i not in set(rows["item"])][:5]
    assert list(top["item"]) == popular
    assert (top["fallback"] == "popular (5 ratings; this model's lists lose to the chart)").all()
    assert cflearn.fold_in(learn, dict(zip(rows["item"], rows["rating"])), chart=0).chart == 0  # the model alone
    loaded = cflearn.load(cflearn.save(learn, tmp_path / "m.safetensors"))  # no validation rows: the saved ratio
    assert loaded.fold_lists == pytest.approx(ratio) and cflearn.fold_in(loaded, dict(zip(rows["item"],
                                                                                          rows["rating"]))).chart == 1
