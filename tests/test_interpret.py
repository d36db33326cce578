"""cflearn.interpret: biases, the factor map, explanations, titles -> IDs; on learners and loaded models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

import cflearn
from cflearn import interpret


@pytest.fixture(scope="module")
def titled(synth):
    """The synthetic data with titles: item i is "Film number i (year)"."""
    items = synth.items.copy()
    items["title"] = [f"Film number {i} ({1950 + i % 60})" for i in items["item"]]
    return cflearn.from_df(synth.ratings, "user", "item", "rating", items=items)


@pytest.fixture(scope="module")
def learn(titled):
    learn = cflearn.collab_learner(titled, "fast", progress=False)
    cflearn.fit(learn)
    return learn


@pytest.fixture(scope="module")
def loaded(learn, tmp_path_factory):
    return cflearn.load(cflearn.save(learn, tmp_path_factory.mktemp("m") / "m.safetensors"))


def test_biases_rank_the_models_own_biases_with_counts_and_means(learn, titled, synth):
    table = interpret.biases(learn, 5)
    assert list(table.columns) == ["end", "item", "title", "bias", "n_ratings", "mean_rating"]
    hi, lo = table[table.end == "highest"], table[table.end == "lowest"]
    assert len(hi) == len(lo) == 5 and hi.bias.min() > lo.bias.max()
    assert list(hi.bias) == sorted(hi.bias, reverse=True)
    tables = learn.cf.contract.tables()
    idx = learn.cf.items.encode(hi["item"])
    np.testing.assert_allclose(hi.bias, tables.item_bias.detach().numpy()[idx], rtol=1e-6)
    train = titled.train
    for item, n, mean in zip(hi["item"], hi.n_ratings, hi.mean_rating):
        rows = train[train["item"] == item]["rating"]
        assert n == len(rows) and mean == pytest.approx(rows.mean(), rel=1e-5)
    # planted: the learned item biases follow the planted ones
    truth = pd.Series(synth.truth["item_bias"], index=synth.truth["item_ids"])
    assert truth[hi["item"]].mean() > truth[lo["item"]].mean()
    strict = interpret.biases(learn, 5, min_ratings=25)
    assert (strict.n_ratings >= 25).all()
    users = interpret.biases(learn, 3, side="user")
    assert list(users.columns) == ["end", "user", "bias", "n_ratings", "mean_rating"]


def test_factor_coords_are_the_pca_of_the_most_rated_items(learn):
    frame = interpret.factor_coords(learn, 40)
    counts = learn.cf.item_counts.numpy()
    idx = learn.cf.items.encode(frame["item"])
    assert len(frame) == 40 and list(frame.n_ratings) == sorted(frame.n_ratings, reverse=True)
    assert frame.n_ratings.min() >= np.sort(counts[1:])[-40]
    # reference: numpy's SVD of the centred vectors (signs may differ)
    x = learn.cf.contract.tables().items.detach().double().numpy()[idx]
    x = x - x.mean(0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    ref = x @ vt[:2].T
    for k, col in enumerate(["pc1", "pc2"]):
        sign = np.sign(np.dot(ref[:, k], frame[col]))
        np.testing.assert_allclose(frame[col], sign * ref[:, k], atol=1e-6)
    assert frame.attrs["explained"][0] >= frame.attrs["explained"][1] > 0


def test_factor_map_labels_do_not_overlap(learn):
    fig = interpret.factor_map(learn, 60, labels=20)
    ax = fig.axes[0]
    texts = [t for t in ax.texts]
    assert 5 <= len(texts) <= 20
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(len(t.get_text()) <= 28 and "(" not in t.get_text()[-6:] for t in texts)  # short, no year


def test_explain_parts_add_up_to_the_raw_score(learn):
    e = interpret.explain(learn, 1, 5)
    assert e.parts["value"].sum() == pytest.approx(e.raw, abs=1e-5)
    expected = cflearn.predict(learn, 1, 5, clip=False).score.iloc[0]
    assert e.score == pytest.approx(expected, rel=1e-5)
    assert len(e.factors) == 3 and "global offset" in repr(e)
    with pytest.raises(cflearn.UnknownIDError, match="not in the training data"):
        interpret.explain(learn, 10**9, 5)


def test_interpretation_of_a_loaded_model_equals_the_learners(learn, loaded):
    pd.testing.assert_frame_equal(interpret.biases(learn, 5), interpret.biases(loaded, 5))
    pd.testing.assert_frame_equal(interpret.biases(learn, 5, side="user"), interpret.biases(loaded, 5, side="user"))
    a, b = interpret.factor_coords(learn, 30), interpret.factor_coords(loaded, 30)
    pd.testing.assert_frame_equal(a, b)
    ea, eb = interpret.explain(learn, 1, 5), interpret.explain(loaded, 1, 5)
    pd.testing.assert_frame_equal(ea.parts, eb.parts)
    assert ea.raw == eb.raw


def test_titles_to_ids(learn):
    assert interpret.title_to_id(learn, "Film number 5 (1955)") == 5
    assert interpret.title_to_id(learn, "film number 5") == 5  # case and year ignored
    assert interpret.title_to_id(learn, "Film number 1") == 1  # not 10, 11, ...: the bare title is equal
    with pytest.raises(cflearn.UnknownIDError, match="matches several titles.*item 1[0-9]"):
        interpret.title_to_id(learn, "number 1")
    with pytest.raises(cflearn.UnknownIDError, match="no item titled"):
        interpret.title_to_id(learn, "Casablanca")
    with pytest.raises(cflearn.UnknownIDError, match="title of item 5: pass 5"):
        cflearn.similar_items(learn, "Film number 5 (1955)")


def test_titles_by_id_never_by_position(learn):
    rows = learn.model.i_bias.weight.detach()[:, 0].argsort(descending=True)[:4]
    ids = [learn.dls.classes["item"][int(r)] for r in rows]  # row 0, '#na#', may be among them
    got = interpret.titles(learn, ids, missing="#na#")
    assert got == [f"Film number {i} ({1950 + i % 60})" if i != "#na#" else "#na#" for i in ids]
    assert interpret.titles(learn, [np.int64(5), 7]) == ["Film number 5 (1955)", "Film number 7 (1957)"]
    with pytest.raises(cflearn.UnknownIDError, match="item '#na#' has no title; pass missing="):
        interpret.titles(learn, ["#na#"])


def test_silence_of_the_lambs_by_title(ml_data):
    learn = cflearn.collab_learner(ml_data, "fast", epochs=2, progress=False)
    cflearn.fit(learn)
    assert interpret.title_to_id(learn, "Silence of the Lambs") == 593
    assert interpret.title_to_id(learn, "toy story") == 1
    with pytest.raises(cflearn.UnknownIDError, match=r"'Silence of the Lambs, The \(1991\)' \(item 593\)"):
        cflearn.similar_items(learn, "Silence of the Lambs")


def test_models_without_tables_say_so(titled):
    nn = cflearn.collab_learner(titled, "fast_nn", epochs=1, progress=False)
    cflearn.fit(nn)
    for call in (interpret.biases, interpret.factor_coords):
        with pytest.raises(cflearn.ConfigError, match="needs a model with user/item factor tables"):
            call(nn)
    with pytest.raises(cflearn.ConfigError, match="factor tables"):
        interpret.explain(nn, 1, 1)


def test_hybrid_explanation_names_each_feature(titled):
    data = cflearn.from_df(titled.ratings, "user", "item", "rating", items=titled.item_info.reset_index(),
                           item_features=["genres"])
    best = cflearn.collab_learner(data, "best", epochs=2, progress=False, select_features=False)
    cflearn.fit(best)
    e = interpret.explain(best, 1, 5)
    features = [p for p in e.parts["part"] if p.startswith("feature genres=")]
    assert features, e.parts
    assert e.parts["value"].sum() == pytest.approx(e.raw, abs=1e-5)
    with torch.no_grad():
        expected = cflearn.predict(best, 1, 5, clip=False).score.iloc[0]
    assert e.score == pytest.approx(expected, rel=1e-5)
