"""The promises every model kind keeps (LensKit's ScorerTests): each preset in PRESETS and a user module.

One small trained learner per kind (module-scoped), then the same checks on each: finite scores for
known and unknown IDs, recommend == predict, save/load identical, fold-in works or says why not,
same seed same weights, fastai's test_dl/get_preds/predict agree with cflearn.predict, and
fastbook chapter 8's interpretation code runs and gives the model's real answers.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import cflearn

KINDS = [*cflearn.PRESETS, "dual, learned head", "own module"]


class EmbeddingDot(nn.Module):
    """The classic from-scratch model a student writes (fastbook ch. 8): no biases, no y_range."""

    def __init__(self, n_users: int, n_items: int, n_factors: int = 8):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        nn.init.uniform_(self.user_factors.weight, 0, 0.5)
        nn.init.uniform_(self.item_factors.weight, 0, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.user_factors(x[:, 0]) * self.item_factors(x[:, 1])).sum(1)


@pytest.fixture(scope="module")
def data(synth):
    """Side features declared on both sides: the hybrid presets (best, content) use them, the others say not."""
    return cflearn.from_df(synth, valid_pct=0.2, seed=42, user_features=["group"], item_features=["genres"])


def make(data: cflearn.CollabData, kind: str, seed: int = 3) -> object:
    if kind == "own module":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = EmbeddingDot(len(data.users), len(data.items))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the note that ColdRows/RowL2 do not apply
            return cflearn.collab_learner(data, model=module, wd=0.01, epochs=2, seed=seed, progress=False)
    extra = {"rank_head": "learned"} if kind == "dual, learned head" else {}  # the default's head on large catalogues
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*has no side features")
        return cflearn.collab_learner(data, kind.split(",")[0], epochs=2, seed=seed, progress=False, **extra)


THREADS = torch.get_num_threads()
"""Training threads fixed for this module: torch's (2 on this project's machine; one per worker under `make test`),
so that `.ci/run`'s seed test under two busy loops trains every kind twice with several threads, not with the one
thread cflearn's rule would choose there."""


@pytest.fixture(scope="module", params=KINDS)
def learned(request, data):
    learn = make(data, request.param)
    cflearn.fit(learn, threads=THREADS)
    return request.param, learn


def has_tables(learn) -> bool:
    return learn.cf.contract.tables() is not None


def ranks(learn) -> bool:
    """A ranking model: scores order items and are not ratings (``attrs["score_kind"]`` in predict)."""
    return learn.cf.contract.score_kind == "ranking"


def test_finite_scores_for_known_and_unknown_ids(learned, data):
    _, learn = learned
    users = data.valid["user"].tolist()[:20] + [10**9, 1]
    items = data.valid["item"].tolist()[:20] + [1, 10**9]
    out = cflearn.predict(learn, users, items)
    assert list(out.columns) == ["user", "item", "score", "fallback"]  # every kind: one vocabulary
    assert out.attrs["score_kind"] == learn.cf.contract.score_kind
    assert np.isfinite(out["score"]).all()
    assert out.fallback.tolist()[-2:] == ["average user", "average item"]
    lo, hi = data.scale
    if ranks(learn):  # preferences, not ratings: not squeezed into the scale
        assert out.attrs["score_kind"] == "ranking" and not out.score.between(lo, hi).all()
    else:
        assert out.score.between(lo, hi).all()


def test_recommend_scores_equal_predict(learned, data):
    _, learn = learned
    user = int(data.train["user"].iloc[0])
    top = cflearn.recommend(learn, user, n=5)
    assert len(top) == 5 and (top.fallback == "").all()
    seen = set(data.train.loc[data.train["user"] == user, "item"])
    assert not seen & set(top["item"])
    pred = cflearn.predict(learn, [user] * 5, top["item"].tolist())
    spec = learn.cf.contract
    assert top.attrs["score_kind"] == spec.list_kind
    if spec.list_kind == spec.score_kind:
        np.testing.assert_allclose(top["score"], pred["score"], rtol=1e-5, atol=1e-5)
        return
    # two heads: the list is the ranking head's (its own forward pass on the pairs), with the rating head's ratings
    np.testing.assert_allclose(top["rating"], pred["score"], rtol=1e-5, atol=1e-5)
    pairs = torch.tensor([[learn.cf.users.encode([user])[0], i] for i in learn.cf.items.encode(top["item"].tolist())])
    with torch.no_grad():
        head = (cflearn.models.ranking_head(learn.model) or cflearn.models.item_item_head(learn.model)).eval()
        np.testing.assert_allclose(top["score"], head(pairs).numpy(), rtol=1e-5, atol=1e-5)
    assert top["score"].is_monotonic_decreasing


def test_the_models_one_formula_is_its_forward_pass(learned, data):
    """``Contract.score_rows`` (what predict, recommend, fold-in, cold start and the feature check score
    with) gives the model's own forward pass on trained rows, pair by pair, per user and against every item;
    ``explain``'s parts add up to the raw score it reports."""
    _, learn = learned
    spec = learn.cf.contract
    tables = spec.tables()
    if tables is None:
        assert spec.score_rows(torch.zeros(1, 1), torch.zeros(1)) is None
        return
    rows = data.valid.head(12)
    u = torch.from_numpy(learn.cf.users.encode(rows["user"].tolist()))
    i = torch.from_numpy(learn.cf.items.encode(rows["item"].tolist()))
    learn.model.eval()
    with torch.no_grad():
        forward = cflearn.models.rating_head(learn.model)(torch.stack([u, i], 1)).reshape(-1)
        vec, bias = tables.users[u], tables.user_bias[u]
        np.testing.assert_allclose(spec.score_rows(vec, bias, i), forward, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(spec.score_rows(vec, bias, (tables.items[i], tables.item_bias[i])), forward,
                                   rtol=1e-5, atol=1e-5)
        matrix = spec.score_rows(vec, bias)
        np.testing.assert_allclose(matrix[torch.arange(len(i)), i], forward, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(spec.score_rows(vec, bias, i[:, None].repeat(1, 3))[:, 1], forward, rtol=1e-5,
                                   atol=1e-5)
        parts, raw = cflearn.models.contract(cflearn.models.rating_head(learn.model)).explain(int(u[0]), int(i[0]))
    assert sum(v for _, v in parts) == pytest.approx(raw, abs=1e-4)
    assert float(spec.output(torch.tensor([raw]))[0]) == pytest.approx(float(forward[0]), abs=1e-5)


def test_save_load_identical(learned, data, tmp_path):
    kind, learn = learned
    path = tmp_path / "m.safetensors"
    users, items = data.valid["user"].tolist()[:50], data.valid["item"].tolist()[:50]
    if kind == "own module":
        with pytest.warns(UserWarning, match="loading it needs the class"):
            cflearn.save(learn, path)
        with pytest.raises(cflearn.ModelFileError, match=r"model=YourModule\(\.\.\.\)"):
            cflearn.load(path)
        model = cflearn.load(path, model=EmbeddingDot(len(data.users), len(data.items)))
    else:
        cflearn.save(learn, path)
        model = cflearn.load(path)
    a, b = cflearn.predict(learn, users, items), cflearn.predict(model, users, items)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(cflearn.recommend(learn, users[0]), cflearn.recommend(model, users[0]))


def test_fold_in_works_or_says_why_not(learned, data):
    _, learn = learned
    ratings = dict(zip(data.train["item"].iloc[:5], data.train["rating"].iloc[:5]))
    with torch.no_grad():  # a ranking model without tables (rank's blend) encodes a new user from their items
        encodes = ranks(learn) and learn.cf.contract.fold_vector(torch.tensor([1])) is not None
    if has_tables(learn) or encodes:
        folded = cflearn.fold_in(learn, ratings)
        top = cflearn.recommend(learn, folded, n=3)
        assert len(top) == 3 and not set(ratings) & set(top["item"])
    else:
        with pytest.raises(cflearn.ConfigError, match="fold_in needs a model with user/item tables"):
            cflearn.fold_in(learn, ratings)


def test_same_seed_same_weights(learned, data):
    kind, learn = learned
    again = make(data, kind)
    cflearn.fit(again, threads=THREADS)
    a, b = learn.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_test_dl_and_get_preds_equal_predict(learned, data):
    """The bug this replaces: test_dl returned the whole validation set, shuffled. Three rows in, three out."""
    _, learn = learned
    rows = data.valid.head(3)
    dl = learn.dls.test_dl(rows)
    preds, _ = learn.get_preds(dl=dl)
    ref = cflearn.predict(learn, rows["user"].tolist(), rows["item"].tolist(), clip=False)
    assert preds.numel() == 3
    np.testing.assert_allclose(preds.reshape(-1).numpy(), ref["score"].to_numpy(), rtol=1e-5, atol=1e-5)
    if ranks(learn):  # a ranking loss is over a user's catalogue: no per-row loss against ratings
        with pytest.raises(cflearn.ConfigError, match="per-row losses"):
            learn.get_preds(dl=learn.dls.test_dl(rows, with_labels=True), with_loss=True)
        return
    # with labels, the targets are the three ratings, and per-row losses are their squared errors
    _, targs, losses = learn.get_preds(dl=learn.dls.test_dl(rows, with_labels=True), with_loss=True)
    np.testing.assert_allclose(targs.reshape(-1).numpy(), rows["rating"].to_numpy())
    np.testing.assert_allclose(losses.reshape(-1).numpy(), (ref.score.to_numpy() - rows["rating"].to_numpy()) ** 2,
                               rtol=1e-4, atol=1e-5)


def test_fastai_classes_are_category_maps(learned, data):
    _, learn = learned
    item = data.train["item"].iloc[0]
    classes = learn.dls.classes
    assert classes["item"][0] == "#na#"
    idx = classes["item"].o2i[item]
    assert classes["item"][idx] == item and learn.cf.items.encode([item])[0] == idx


def test_fastbook_interpretation_code_gives_the_models_answers(learned, data):
    """fastbook chapter 8's code, unchanged, on the learner; the answers are the model's own."""
    kind, learn = learned
    if not has_tables(learn):
        assert not hasattr(learn.model, "i_bias")  # NN / own module: the book's tables do not exist
        return
    dls = learn.dls
    # biases: the five lowest items
    movie_bias = learn.model.i_bias.weight.squeeze()
    idxs = movie_bias.argsort()[:5]
    low = [dls.classes["item"][i] for i in idxs]
    assert len(low) == 5
    # PCA of the most rated items' factors
    g = data.train.groupby("item")["rating"].count()
    top_movies = g.sort_values(ascending=False).index.values[:50]
    top_idxs = torch.tensor([learn.dls.classes["item"].o2i[m] for m in top_movies])
    movie_w = learn.model.i_weight.weight[top_idxs].cpu().detach()
    movie_pca = movie_w.pca(3)
    fac0, fac1, fac2 = movie_pca.t()
    assert fac0.shape == (50,)
    # nearest neighbour by cosine similarity
    movie_factors = learn.model.i_weight.weight
    idx = dls.classes["item"].o2i[top_movies[0]]
    distances = nn.CosineSimilarity(dim=1)(movie_factors, movie_factors[idx][None])
    nearest = distances.argsort(descending=True)[1]
    book_answer = dls.classes["item"][nearest]
    # ... is the model's: the vectors and biases it scores with, and cflearn's own neighbour
    tables = learn.cf.contract.tables()
    torch.testing.assert_close(learn.model.i_weight.weight, tables.items)
    torch.testing.assert_close(learn.model.i_bias.weight[:, 0], tables.item_bias)
    sims = nn.CosineSimilarity(dim=1)(tables.items, tables.items[idx][None])
    sims[idx] = -2
    best = float(sims.max())  # ties (content-based: items with the same features are the same vector)
    assert int(nearest) == idx or float(sims[nearest]) == pytest.approx(best, abs=1e-6)  # a tie with itself
    if book_answer != "#na#":  # row 0 is the average item (ColdRows), which cflearn never recommends
        top = cflearn.similar_items(learn, top_movies[0], n=1, min_ratings=0)
        assert top["similarity"].iloc[0] == pytest.approx(best, abs=1e-5)
        if (sims > best - 1e-6).sum() == 1:
            assert top["item"].iloc[0] == book_answer
    u, i = learn.cf.users.encode([1])[0], learn.cf.items.encode([top_movies[0]])[0]
    if ranks(learn):  # users are encoded from their items: the user side is tables().users
        raw = (tables.users[u] * learn.model.i_weight.weight[i]).sum() + learn.model.i_bias.weight[i, 0]
        assert float(raw) == pytest.approx(cflearn.predict(learn, 1, top_movies[0]).score.iloc[0], rel=1e-5)
        return
    raw = (learn.model.u_weight.weight[u] * learn.model.i_weight.weight[i]).sum() + \
        learn.model.u_bias.weight[u, 0] + learn.model.i_bias.weight[i, 0]
    lo, hi = learn.model.y_range
    by_hand = float(torch.sigmoid(raw) * (hi - lo) + lo)
    assert by_hand == pytest.approx(cflearn.predict(learn, 1, top_movies[0], clip=False).score.iloc[0], rel=1e-5)


def test_evaluate_and_plot_loss_work(learned):
    _, learn = learned
    table = cflearn.evaluate(learn, n=5)
    rating_rows = table.drop(index=[table.index[0]] if ranks(learn) else []).drop(index=["EASE", "item-kNN"])
    assert np.isfinite(rating_rows["rmse"]).all() and "ndcg@5" in table.columns
    assert np.isnan(table["rmse"].iloc[0]) == ranks(learn)  # a ranking model predicts no ratings
    assert np.isfinite(table["ndcg@5"]).all()
    assert cflearn.plot_loss(learn).axes


# -- fastai's own API on the fast loaders --------------------------------------------------------------
@pytest.fixture(scope="module")
def fast(data):
    learn = cflearn.collab_learner(data, "fast", epochs=2, progress=False)
    cflearn.fit(learn)
    return learn


def test_test_dl_from_raw_id_rows(fast, data):
    row = data.valid.iloc[0]
    user, item = row["user"], row["item"]
    dl = fast.dls.test_dl([[user, item]] * 3)
    preds, targs = fast.get_preds(dl=dl)
    assert targs is None and preds.shape == (3,)
    expected = cflearn.predict(fast, user, item, clip=False).score.iloc[0]
    np.testing.assert_allclose(preds.numpy(), [expected] * 3, rtol=1e-5)
    with pytest.raises(cflearn.UnknownIDError, match="is a string, but the item IDs are ints"):
        fast.dls.test_dl([[user, str(item)]])
    with pytest.raises(cflearn.ConfigError, match="training columns 'user' and 'item'"):
        fast.dls.test_dl(pd.DataFrame({"userId": [1], "movieId": [2]}))


def test_learn_predict_on_a_row(fast, data):
    row = data.valid.iloc[0]
    user, item = row["user"], row["item"]
    decoded, pred, raw = fast.predict(row)
    expected = cflearn.predict(fast, user, item, clip=False).score.iloc[0]
    assert pred == pytest.approx(expected, rel=1e-5) and float(raw) == pytest.approx(expected, rel=1e-5)
    inp, *_ = fast.predict({"user": user, "item": item}, with_input=True)
    assert inp["user"] == user and inp["item"] == item


def test_show_batch_and_show_results_in_raw_ids(fast, data):
    batch = fast.dls.show_batch(max_n=4, show=False)
    assert list(batch.columns) == ["user", "item", "rating"] and len(batch) == 4
    assert set(batch["user"]) <= set(data.train["user"])
    fast.show_results(max_n=3)  # displays; must not raise
    x, y = fast.dls.valid.one_batch()
    out = fast.dls.valid.show_results((x, y), fast.model(x), max_n=3, show=False)
    assert list(out.columns) == ["user", "item", "rating", "score"]
    assert out["rating"].tolist() == pytest.approx(data.valid["rating"].head(3).tolist())


def test_get_preds_keeps_dataset_order_on_a_shuffled_loader(fast, data):
    dl = fast.dls.train.new(shuffle=True, drop_last=False)
    preds, targs = fast.get_preds(dl=dl)
    np.testing.assert_allclose(targs.numpy(), data.train["rating"].to_numpy())


def test_export_says_to_use_cflearn_save(fast, tmp_path):
    fast.path = tmp_path
    with pytest.raises(cflearn.ConfigError, match=r"cflearn.save\(learn"):
        fast.export("x.pkl")
    assert not (tmp_path / "x.pkl").exists()


def test_hybrid_i_weight_is_the_scoring_vector(data):
    learn = cflearn.collab_learner(data, "best", epochs=1, progress=False)
    cflearn.fit(learn)
    m = learn.model
    collab_only = m.i_cf_weight.weight
    assert not torch.allclose(m.i_weight.weight, collab_only)  # features are part of it
    f, c = m.features()
    torch.testing.assert_close(m.i_weight.weight, collab_only + f)
    assert m.i_weight.num_embeddings == len(learn.cf.items) and m.i_bias.embedding_dim == 1


# -- bring your own model ----------------------------------------------------------------------------------
def test_own_module_trains_and_says_which_callbacks_do_not_apply(data):
    module = EmbeddingDot(len(data.users), len(data.items))
    with pytest.warns(UserWarning, match=r"EmbeddingDot has no user/item tables.*ColdRows.*RowL2 \(row_l2=0.15"):
        learn = cflearn.collab_learner(data, model=module, epochs=3, progress=False)
    assert learn.model is module
    cflearn.fit(learn)
    assert learn.loss_history.train_losses[-1] < learn.loss_history.train_losses[0]
    top = cflearn.recommend(learn, 1, n=3)
    assert len(top) == 3
    with pytest.raises(cflearn.ConfigError, match="similarities need factor vectors|no user/item tables"):
        cflearn.similar_items(learn, 1)


def test_own_module_settings_that_do_not_apply(data):
    module = EmbeddingDot(len(data.users), len(data.items))
    with pytest.raises(cflearn.ConfigError, match="n_factors do.*not apply when you pass model="):
        cflearn.collab_learner(data, model=module, n_factors=8)
    with pytest.raises(cflearn.ConfigError, match="y_range do.*not apply"):
        cflearn.collab_learner(data, model=module, y_range=(0, 5.5))
    with pytest.raises(cflearn.ConfigError, match="model must be a torch nn.Module"):
        cflearn.collab_learner(data, model="EmbeddingDot")


def test_swapping_learn_model_is_followed(data):
    learn = cflearn.collab_learner(data, "fast", epochs=1, progress=False)
    learn.model = EmbeddingDot(len(data.users), len(data.items))
    with pytest.warns(UserWarning, match="RowL2 skipped"):
        learn.fit_one_cycle(1, 1e-2)
    assert learn.cf.model is learn.model or cflearn.predict(learn, 1, 1) is not None
    out = cflearn.predict(learn, [1], [1], clip=False)
    with torch.no_grad():
        x = torch.tensor([[learn.cf.users.encode([1])[0], learn.cf.items.encode([1])[0]]])
        assert out.score.iloc[0] == pytest.approx(float(learn.model.eval()(x)[0]), rel=1e-5)


# -- the caller's state ------------------------------------------------------------------------------------
def test_collab_learner_leaves_the_global_rng_alone(data):
    state = torch.random.get_rng_state()
    cflearn.collab_learner(data, "fast", seed=11, progress=False)
    cflearn.collab_learner(data, "book", seed=11, progress=False)
    assert torch.equal(state, torch.random.get_rng_state())


def test_importing_cflearn_installs_no_warning_filter():
    code = ("import warnings, fastai.collab; before = list(warnings.filters); import cflearn; "
            "print([f for f in warnings.filters if f not in before])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_looking_at_a_batch_does_not_change_training(data):
    a = cflearn.collab_learner(data, "fast", epochs=1, seed=5, progress=False)
    b = cflearn.collab_learner(data, "fast", epochs=1, seed=5, progress=False)
    b.dls.show_batch(show=False)
    cflearn.fit(a)
    cflearn.fit(b)
    assert a.recorder.values[-1] == b.recorder.values[-1]


def test_explain_parts_add_up_to_the_raw_score(learned, data):
    """cflearn.interpret.explain on every kind with tables; a clear error on the others."""
    _, learn = learned
    user, item = int(data.train["user"].iloc[0]), int(data.train["item"].iloc[0])
    if not has_tables(learn):
        with pytest.raises(cflearn.ConfigError, match="factor tables"):
            cflearn.interpret.explain(learn, user, item)
        return
    e = cflearn.interpret.explain(learn, user, item)
    assert e.parts["value"].sum() == pytest.approx(e.raw, abs=1e-5)
    assert e.score == pytest.approx(cflearn.predict(learn, user, item, clip=False)["score"].iloc[0], rel=1e-5)


def _mutations(value):
    """Values a tampered header might hold in place of ``value``: the wrong type, out of range, empty."""
    out = ["tampered", -1, None, [float("nan")]]
    return [m for m in out if not (type(m) is type(value) and m == value)]


def _header_paths(obj, prefix=()):
    """Every (nested) field of a header: paths into its objects (lists are replaced whole)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            if isinstance(value, dict):
                yield from _header_paths(value, (*prefix, key))


def test_every_field_of_a_saved_file_is_checked_or_harmless(learned, data, tmp_path):
    """Each header field of a saved model, replaced by a value of the wrong type or range, is refused with a
    ModelFileError when loading, or changes nothing the model answers; so are tampered index tensors."""
    import json
    import struct

    from safetensors.torch import load_file, save_file

    kind, learn = learned
    if kind == "own module":
        return  # loading it needs the user's class; its header holds only the class name
    path = cflearn.save(learn, tmp_path / "m.safetensors")
    users, items = data.valid["user"].tolist()[:10] + [10**9], data.valid["item"].tolist()[:10] + [10**9]
    expect = cflearn.predict(learn, users, items)["score"].to_numpy()
    expect_top = cflearn.recommend(learn, users[0], n=5)["item"].tolist()
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["cflearn"])

    def same_or_refused(target):
        try:
            model = cflearn.load(target)
            got = cflearn.predict(model, users, items)["score"].to_numpy()
            top = cflearn.recommend(model, users[0], n=5)["item"].tolist()
        except cflearn.ModelFileError:
            return
        except Exception as e:  # anything else is a bug: the file was not checked
            raise AssertionError(f"{kind}: {target.name} raised {type(e).__name__}: {e}") from None
        np.testing.assert_allclose(got, expect, rtol=1e-5, err_msg=f"{kind}: {target.name} changed the answers")
        assert top == expect_top, f"{kind}: {target.name} changed the list"

    checked = 0
    for field in _header_paths(meta):
        if field[0] in ("versions", "format"):
            continue
        holder = meta
        for key in field[:-1]:
            holder = holder[key]
        for bad in _mutations(holder[field[-1]]):
            m = json.loads(json.dumps(meta))
            h = m
            for key in field[:-1]:
                h = h[key]
            h[field[-1]] = bad
            blob = json.dumps(dict(header, __metadata__={"cflearn": json.dumps(m)})).encode()
            blob += b" " * (-len(blob) % 8)
            target = tmp_path / f"f{checked}-{'.'.join(field)}={str(bad)[:10]}.safetensors"
            target.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n:])
            same_or_refused(target)
            checked += 1
    tensors = load_file(path)
    for name, t in tensors.items():
        if t.dtype.is_floating_point or t.dtype == torch.bool or not t.numel() or name.startswith("cflearn.users") \
                or name.startswith("cflearn.items"):
            continue
        for bad in (t.flip(0), t - t.max() - 1, t + t.max() + 10):  # shuffled, negative, out of range
            target = tmp_path / f"t{checked}-{name}.safetensors"
            save_file({**tensors, name: bad.contiguous()}, str(target), metadata=header["__metadata__"])
            same_or_refused(target)
            checked += 1
    assert checked > 20
