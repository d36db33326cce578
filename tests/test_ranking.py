"""Implicit data, ranking-trained models and the EASE / item-kNN baselines, on planted structure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import cflearn
from cflearn.evaluation._baselines import ease, interactions, item_knn
from cflearn.serve._predict import score


@pytest.fixture(scope="module")
def implicit_ds():
    """400 users x 120 items of interactions that follow planted tastes (no ratings)."""
    return cflearn.datasets.synthetic(400, 120, density=0.25, implicit=True, taste=8, popularity=0.3, seed=1)


@pytest.fixture(scope="module")
def implicit_data(implicit_ds):
    return cflearn.from_df(implicit_ds, seed=42)


@pytest.fixture(scope="module")
def ranked(implicit_data):
    learn = cflearn.collab_learner(implicit_data, "rank", epochs=15, progress=False, rank_head="learned")
    cflearn.fit(learn)  # the learned head alone (its blend with EASE, rank's default here: test_blend)
    return learn


@pytest.fixture(scope="module")
def table(ranked):
    return cflearn.evaluate(ranked)


# -- implicit data ---------------------------------------------------------------------------------------
def test_two_columns_are_interactions():
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 3] * 3, "item": [1, 2, 1, 3, 2, 3, 4] * 3})
    data = cflearn.from_df(df)
    assert data.implicit and "implicit" in repr(data)
    # duplicates add up: each pair appears three times
    assert set(data.ratings[data.rating]) == {3.0} and data.n_duplicates == 14


def test_weights_threshold_and_what_does_not_apply():
    df = pd.DataFrame({"u": [1, 1, 2, 2], "i": [1, 2, 1, 2], "r": [5.0, 2.0, 4.0, 1.0], "plays": [3, 1, 2, 0]})
    kept = cflearn.from_df(df, "u", "i", "r", implicit=True, threshold=4, valid_pct=0)
    assert kept.implicit and len(kept.ratings) == 2 and set(kept.ratings["i"]) == {1}
    weighted = cflearn.from_df(df[df.plays > 0], "u", "i", weight="plays", valid_pct=0)
    assert weighted.implicit and sorted(weighted.ratings["plays"]) == [1.0, 2.0, 3.0]
    with pytest.raises(cflearn.DataError, match="not positive"):
        cflearn.from_df(df, "u", "i", weight="plays")
    with pytest.raises(cflearn.ConfigError, match="threshold applies to implicit=True"):
        cflearn.from_df(df, "u", "i", "r", threshold=4)
    with pytest.raises(cflearn.ConfigError, match="rating_range applies to ratings"):
        cflearn.from_df(df[["u", "i"]], rating_range=(1, 5))
    with pytest.raises(cflearn.ConfigError, match="implicit data only"):
        cflearn.from_df(df, "u", "i", "r", duplicates="sum")
    with pytest.raises(cflearn.DataError, match="no rating reaches"):
        cflearn.from_df(df, "u", "i", "r", implicit=True, threshold=6)


def test_rating_presets_refuse_implicit_data(implicit_data):
    with pytest.raises(cflearn.ConfigError, match="preset='rank'"):
        cflearn.collab_learner(implicit_data, "fast")


def test_synthetic_implicit_follows_planted_tastes(implicit_ds):
    truth = implicit_ds.truth
    u = implicit_ds.ratings["user"].to_numpy() - 1
    i = implicit_ds.ratings["item"].to_numpy() - 1
    chosen = (truth["user_factors"][u] * truth["item_factors"][i]).sum(1).mean()
    rng = np.random.default_rng(0)
    rand_i = rng.integers(0, 120, len(u))
    baseline = (truth["user_factors"][u] * truth["item_factors"][rand_i]).sum(1).mean()
    assert chosen > baseline + 0.1
    assert "rating" not in implicit_ds.ratings.columns


# -- the ranking model -----------------------------------------------------------------------------------
def test_rank_beats_popularity_and_chance_on_planted_tastes(table):
    model = table.iloc[0]
    assert table.attrs["implicit"] and "rmse" not in table.columns  # ranking metrics only
    assert model["ndcg@10"] > 1.3 * table.loc["most popular", "ndcg@10"]
    assert table.loc["most popular", "ndcg@10"] > 2 * table.loc["global mean", "ndcg@10"]
    assert "user+item bias" not in table.index  # no ratings, no rating biases


def test_ease_and_item_knn_are_real_baselines(table):
    for name in ("EASE", "item-kNN"):
        assert table.loc[name, "ndcg@10"] > table.loc["most popular", "ndcg@10"]
    assert table.attrs["ease_lambda"] in (50.0, 200.0, 800.0, 3200.0)


def test_predict_is_labelled_as_ranking_scores(ranked, implicit_data):
    user, item = implicit_data.train["user"].iloc[0], implicit_data.train["item"].iloc[0]
    out = cflearn.predict(ranked, user, item)
    assert list(out.columns) == ["user", "item", "score", "fallback"] and out.attrs["score_kind"] == "ranking"
    with pytest.raises(cflearn.ConfigError, match="not ratings"):
        score(ranked)


def test_fold_in_encodes_a_new_user_from_items(ranked, implicit_data):
    # a trained user folded in from their own training items gets their own vector back
    user = implicit_data.train["user"].iloc[0]
    items = implicit_data.train.loc[implicit_data.train["user"] == user, "item"].tolist()
    folded = cflearn.fold_in(ranked, {i: 1.0 for i in items}, chart=0)  # the model's list alone
    assert np.isnan(folded.loss) and "encoded from the items" in repr(folded)
    own = ranked.cf.contract.tables().users[ranked.cf.users.encode([user])[0]]
    torch.testing.assert_close(folded.vector, own.detach(), rtol=1e-5, atol=1e-6)
    a = cflearn.recommend(ranked, folded, n=5)
    b = cflearn.recommend(ranked, user, n=5)
    assert a["item"].tolist() == b["item"].tolist() and not set(items) & set(a["item"])


def test_save_load_and_recommend_all(ranked, tmp_path):
    path = tmp_path / "rank.safetensors"
    cflearn.save(ranked, path)
    loaded = cflearn.load(path)
    a, b = cflearn.recommend_all(ranked, n=5), cflearn.recommend_all(loaded, n=5)
    pd.testing.assert_frame_equal(a, b)
    assert not cflearn.similar_items(loaded, a["item"].iloc[0], n=3).empty


def test_loss_goes_down_and_is_plotted(ranked):
    losses = ranked.loss_history.valid_losses
    assert losses[-1] < losses[0]
    fig = cflearn.plot_loss(ranked)
    assert "cross-entropy" in fig.axes[0].get_ylabel()


@pytest.mark.parametrize("kw", [{"preset": "rank_bpr"}, {"preset": "rank", "negatives": 40}],
                         ids=["bpr", "sampled softmax"])
def test_bpr_and_sampled_softmax_learn_tastes(implicit_data, kw):
    learn = cflearn.collab_learner(implicit_data, epochs=15, progress=False, **kw)
    cflearn.fit(learn)
    t = cflearn.evaluate(learn)
    assert t.iloc[0]["ndcg@10"] > 1.3 * t.loc["most popular", "ndcg@10"]


def test_rank_on_explicit_ratings_down_weights_disliked_items(synth_data):
    n = len(synth_data.users)
    liked = int((synth_data.values[synth_data.train_idx] >= 4.0).sum())
    # the preset: items rated below 4 are neither targets nor inputs (still never recommended back)
    learn = cflearn.collab_learner(synth_data, "rank", epochs=2, progress=False, rank_head="learned")
    targets = learn.loss_func.targets
    assert set(targets.weights[: targets.indptr[n]].unique().tolist()) == {0.0, 1.0}
    assert len(learn.model.hist_items) == liked
    # below_weight=0.2: they count, less
    learn = cflearn.collab_learner(synth_data, "rank", epochs=2, progress=False, below_weight=0.2,
                                   rank_head="learned")
    targets = learn.loss_func.targets
    assert {round(x, 3) for x in targets.weights[: targets.indptr[n]].unique().tolist()} == {0.2, 1.0}
    assert len(learn.model.hist_items) == len(synth_data.train_idx)
    assert {round(x, 3) for x in learn.model.hist_weight.unique().tolist()} == {0.2, 1.0}


def test_items_nobody_liked_rank_below_liked_items():
    """The training softmax covers the items someone liked; the others get vector 0 and the lowest bias."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(60), 12)
    items = np.concatenate([rng.choice(30, 12, replace=False) for _ in range(60)])
    ratings = np.where(items < 20, 5.0, 1.0)  # items 20..29 are only ever rated 1
    df = pd.DataFrame({"user": users, "item": items, "rating": ratings})
    data = cflearn.from_df(df, seed=0)
    learn = cflearn.collab_learner(data, "rank", epochs=3, progress=False, n_factors=8, rank_head="learned")
    disliked = torch.from_numpy(learn.cf.items.encode(pd.Series(range(20, 30))))
    loss = learn.loss_func
    assert loss.targeted is not None and not set(disliked.tolist()) & set(loss.targeted.tolist())
    cflearn.fit(learn)
    model = learn.model
    assert model.i_weight.weight[disliked].abs().sum() == 0 and model.i_in.weight[disliked].abs().sum() == 0
    assert torch.allclose(model.i_bias.weight[disliked, 0], model.i_bias.weight[loss.targeted, 0].min())
    recs = cflearn.recommend_all(learn, n=3)
    assert not set(recs["item"]) & set(range(20, 30))


def test_ranking_settings_that_do_not_apply(implicit_data, synth_data):
    with pytest.raises(cflearn.ConfigError, match="ranking presets .*NN models"):
        cflearn.collab_learner(synth_data, "fast", dropout=0.3)
    with pytest.raises(cflearn.ConfigError, match="ranking presets only"):
        cflearn.collab_learner(synth_data, "fast", below_weight=0.3)
    with pytest.raises(cflearn.ConfigError, match="row_l2 does not apply"):
        cflearn.collab_learner(implicit_data, "rank", row_l2=0.1)
    with pytest.raises(cflearn.ConfigError, match="y_range does not apply"):
        cflearn.collab_learner(implicit_data, "rank", y_range=(0, 1))
    with pytest.raises(cflearn.ConfigError, match="dropout must be in"):
        cflearn.collab_learner(implicit_data, "rank", dropout=1.0)
    with pytest.raises(cflearn.ConfigError, match="relevance does not apply"):
        learn = cflearn.collab_learner(implicit_data, "rank", epochs=1, progress=False)
        cflearn.fit(learn)
        cflearn.evaluate(learn, relevance=4)


# -- the baselines on a known answer ---------------------------------------------------------------------
def test_ease_and_knn_recommend_within_a_block():
    """Two blocks of users and items: users only touch their block; the missing item of the block wins."""
    rows = []
    for u in range(1, 41):
        block = range(1, 11) if u <= 20 else range(11, 21)
        rows += [(u, i) for i in block if (u + i) % 10]  # each user misses one item of the block
    u, i = np.array(rows).T
    X = interactions(u, i, 41, 21)
    for model in (ease(X, 10.0), item_knn(X, k=5)):
        s = model.scores(torch.tensor([1, 25]))
        s[torch.from_numpy(X[[1, 25]].toarray() > 0)] = -torch.inf
        assert int(s[0].argmax()) in range(1, 11) and int(s[1].argmax()) in range(11, 21)
    assert isinstance(X, sp.csr_matrix)


# -- the command line ------------------------------------------------------------------------------------
def _cli(capsys, *args):
    """The command line, in this process: (exit code, stdout, stderr)."""
    from cflearn.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_fit_rank_on_a_file_without_ratings(implicit_ds, tmp_path, capsys):
    src = tmp_path / "clicks.csv"
    implicit_ds.ratings[["user", "item"]].rename(columns={"user": "uid", "item": "iid"}).to_csv(src, index=False)
    out = tmp_path / "run"
    code, stdout, stderr = _cli(capsys, "fit", str(src), "--user", "uid", "--item", "iid", "--preset", "rank",
                                "--epochs", "3", "--out", str(out))
    assert code == 0, stderr
    assert "interactions (implicit)" in stdout and "ranking metrics only (the data are interactions)" in stdout
    assert "valid NDCG@10" in stdout and "EASE" in stdout and "rmse" not in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rmse"] is None and metrics["implicit"] is True and metrics["ndcg@10"] > 0
    assert "valid NDCG@10" in (out / "report.html").read_text()
    code, stdout, _ = _cli(capsys, "predict", str(out / "model.safetensors"), "--user", "1", "--item", "1", "2")
    assert code == 0 and "ranking scores" in stdout
    code, stdout, _ = _cli(capsys, "recommend", str(out / "model.safetensors"), "--user", "1", "-n", "3")
    assert code == 0 and stdout.startswith("top 3 for user 1")
    # a rating preset on the same file: one line naming the fix
    code, _, stderr = _cli(capsys, "fit", str(src), "--user", "uid", "--item", "iid", "--preset", "fast", "--out",
                           str(tmp_path / "r2"))
    assert code == 1 and stderr.count("\n") == 1 and "--preset rank" in stderr
    # the default preset trains its ranking head alone, and says so
    code, stdout, stderr = _cli(capsys, "fit", str(src), "--user", "uid", "--item", "iid", "--epochs", "3", "--out",
                                str(tmp_path / "r3"))
    assert code == 0, stderr
    assert "preset 'dual'" in stdout and "the ranking head alone (the data are interactions" in stdout
    assert json.loads((tmp_path / "r3" / "metrics.json").read_text())["ndcg@10"] > 0


def test_cli_unknown_encoding_is_one_line(implicit_ds, tmp_path, capsys):
    src = tmp_path / "clicks.csv"
    implicit_ds.ratings[["user", "item"]].to_csv(src, index=False)
    code, _, stderr = _cli(capsys, "fit", str(src), "--user", "user", "--item", "item", "--preset", "rank",
                           "--encoding", "bogus", "--out", str(tmp_path / "run"))
    assert code == 1 and stderr == "cflearn: error: unknown encoding 'bogus'; e.g. 'utf-8', 'latin-1' or 'utf-16'\n"


@pytest.mark.parametrize("args, message", [
    (["--seed", "99999999999999999999"], "seed must be an integer from 0 to 2**63 - 1"),
    (["--device", "meta"], "--device meta holds no data"),
    (["--device", "bogus"], "unknown device 'bogus'"),
], ids=["seed", "meta", "bogus device"])
def test_cli_out_of_range_settings_are_one_line(implicit_ds, tmp_path, capsys, args, message):
    src = tmp_path / "clicks.csv"
    implicit_ds.ratings[["user", "item"]].to_csv(src, index=False)
    code, _, stderr = _cli(capsys, "fit", str(src), "--user", "user", "--item", "item", "--preset", "rank",
                           "--out", str(tmp_path / "run"), *args)
    assert code == 1 and stderr.count("\n") == 1 and message in stderr
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))  # nothing written, no lock left


def test_the_loss_follows_a_swapped_model(implicit_data):
    learn = cflearn.collab_learner(implicit_data, "rank", epochs=1, progress=False, rank_head="learned")
    old = learn.model
    new = cflearn.collab_learner(implicit_data, "rank", epochs=1, seed=5, progress=False, rank_head="learned").model
    before = new.i_weight.weight.detach().clone()
    learn.model = new
    cflearn.fit(learn)
    assert not torch.equal(new.i_weight.weight, before)  # the swapped-in model trained
    assert learn.loss_func.learn is learn and old is not learn.model


def test_user_vectors_are_encoded_once_per_state_of_the_weights(ranked):
    model = ranked.model.eval()
    with torch.no_grad():
        a, b = model.tables().users, model.tables().users
        assert a is b  # chunked scoring reuses one encoding
        model.i_in.weight.add_(0.01)  # what an optimizer step or a load does: in place
        c = model.tables().users
    assert c is not a and not torch.equal(c, a)
    torch.testing.assert_close(c, model.user_vectors(torch.arange(model.n_users)).detach())
    with torch.no_grad():
        model.i_in.weight.sub_(0.01)
