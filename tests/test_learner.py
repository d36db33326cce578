import numpy as np
import pytest
import torch
from fastai.collab import TabularCollab
from fastai.collab import collab_learner as fastai_collab_learner
from fastai.data.block import TransformBlock
from fastai.learner import Learner
from fastai.tabular.core import Categorify

import cflearn
from cflearn.kinds._presets import y_range_for


def test_returns_a_plain_fastai_learner(synth_data):
    learn = cflearn.collab_learner(synth_data, progress=False)
    assert type(learn) is Learner
    assert isinstance(learn.cf, cflearn.CollabModel)
    assert learn.cf.model is learn.model
    assert learn.model.y_range == (0.5, 5.5)


def test_planted_structure_is_learned(trained, synth_data):
    from cflearn.serve._predict import score

    s = score(trained)
    valid = synth_data.valid[synth_data.rating]
    baseline = float(np.sqrt(((valid - synth_data.global_mean) ** 2).mean()))
    assert s["rmse"] < 0.75 * baseline, (s, baseline)
    # the learned item biases agree with the planted ones
    truth = cflearn.datasets.synthetic(n_users=300, n_items=200, density=0.1, seed=0).truth
    idx = trained.cf.items.encode(truth["item_ids"])
    known = idx > 0
    learned = trained.model.i_bias.weight.detach().numpy()[idx[known], 0]
    assert np.corrcoef(learned, truth["item_bias"][known])[0, 1] > 0.6


def test_lr_find_and_fit_one_cycle_work_unchanged(synth_data):
    learn = cflearn.collab_learner(synth_data, bs=256, progress=False)
    res = learn.lr_find(show_plot=False)
    assert res.valley > 0
    learn.fit_one_cycle(2, 1e-2)
    assert len(learn.recorder.values) == 2
    assert len(learn.loss_history.epoch_ends) == 2  # lr_find did not pollute the history


def test_same_seed_same_metrics(synth_data):
    runs = []
    for _ in range(2):
        learn = cflearn.collab_learner(synth_data, epochs=3, bs=512, seed=7, progress=False)
        cflearn.fit(learn)
        runs.append(learn.recorder.values[-1])
    assert runs[0] == runs[1]


def test_y_range_rules():
    assert y_range_for((1, 5), "book") == (0.0, 5.5)
    assert y_range_for((0.5, 5), "book") == (0.0, 5.5)
    assert y_range_for((1, 5)) == (0.5, 5.5)
    assert y_range_for((1, 10)) == (0.5, 10.5)
    assert y_range_for((0, 1)) == pytest.approx((-0.1, 1.1))
    assert y_range_for((1, 5), pad=0.25) == (0.75, 5.25)


def test_book_preset_matches_fastbook_settings(synth_data):
    learn = cflearn.collab_learner(synth_data, "book", progress=False)
    assert learn.model.y_range == (0.0, 5.5)
    assert learn.dls.train.bs == 64
    assert learn.model.u_weight.embedding_dim == 50
    assert learn.wd == 0.1


def test_overrides_and_nn(synth_data):
    learn = cflearn.collab_learner(synth_data, use_nn=True, layers=[16], emb_szs={"user": 8, "item": 6},
                                   epochs=2, progress=False)
    assert [e.embedding_dim for e in learn.model.embeds] == [8, 6]
    cflearn.fit(learn)
    pred = cflearn.predict(learn, [1, 2], [1, 2])
    assert pred.score.between(1, 5).all()


def test_nn_dropout(synth_data, tmp_path):
    """dropout= on an NN model is fastai's ``ps`` after each hidden layer (off at predict time, kept on
    save); on a dot product it is an error that names what to use instead."""
    learn = cflearn.collab_learner(synth_data, "fast_nn", dropout=0.4, layers=[16, 8], epochs=1, progress=False)
    drops = [m.p for m in learn.model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    assert drops == [0.4, 0.4]
    cflearn.fit(learn)
    pred = cflearn.predict(learn, [1, 2, 3], [1, 2, 3]).score
    assert pred.equals(cflearn.predict(learn, [1, 2, 3], [1, 2, 3]).score)  # no dropout when predicting
    loaded = cflearn.load(cflearn.save(learn, tmp_path / "nn.safetensors"))
    assert [m.p for m in loaded.model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0] == [0.4, 0.4]
    with pytest.raises(cflearn.ConfigError, match="NN models"):
        cflearn.collab_learner(synth_data, "fast", dropout=0.3)
    with pytest.raises(cflearn.ConfigError, match=r"\[0, 1\)"):
        cflearn.collab_learner(synth_data, "fast_nn", dropout=1.0)


def test_bad_options(synth_data):
    with pytest.raises(cflearn.ConfigError, match="did you mean 'fast'"):
        cflearn.collab_learner(synth_data, "fats")
    with pytest.raises(cflearn.ConfigError, match="positive"):
        cflearn.collab_learner(synth_data, bs=0)
    with pytest.raises(cflearn.ConfigError, match="CollabData"):
        cflearn.collab_learner(synth_data.ratings)


@pytest.mark.parametrize("id_type", ["int", "str"])
def test_book_preset_agrees_with_raw_fastai(id_type):
    """cflearn's encoding and fastai's own CollabDataLoaders give the same rows for the same raw IDs."""
    ds = cflearn.datasets.synthetic(n_users=80, n_items=60, density=0.3, id_type=id_type, seed=5)
    data = cflearn.from_df(ds, valid_pct=0.2, seed=1)
    learn = cflearn.collab_learner(data, "book", progress=False)
    learn.fit_one_cycle(1, 5e-3)

    # the reference: fastai's documented recipe (CollabDataLoaders.from_df is exactly this, with its own split)
    ratings = data.ratings[["user", "item", "rating"]]
    to = TabularCollab(ratings, [Categorify], ["user", "item"], y_names=["rating"], y_block=TransformBlock(),
                       splits=(list(data.train_idx), list(data.valid_idx)))
    dls = to.dataloaders(bs=64)
    raw = fastai_collab_learner(dls, n_factors=50, y_range=(0, 5.5))
    assert list(dls.classes["user"]) == learn.cf.users.itos
    assert list(dls.classes["item"]) == data.items.itos  # the fast path's own vocab agrees too
    raw.model.load_state_dict(learn.model.state_dict())
    ref, targ = raw.get_preds()
    ours = cflearn.predict(learn, data.valid["user"].tolist(), data.valid["item"].tolist(), clip=False)
    np.testing.assert_allclose(ours.score.to_numpy(), ref.numpy().ravel(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targ.numpy().ravel(), data.valid["rating"].to_numpy())


def test_numpy_reference_of_the_dot_model(trained, synth_data):
    """micrograd-style: the prediction equals the NumPy formula on the weights."""
    m = trained.model
    users, items = synth_data.valid["user"].to_numpy()[:50], synth_data.valid["item"].to_numpy()[:50]
    u, i = trained.cf.users.encode(users), trained.cf.items.encode(items)
    W = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    z = (W["u_weight.weight"][u] * W["i_weight.weight"][i]).sum(1) + W["u_bias.weight"][u, 0] + W["i_bias.weight"][i, 0]
    lo, hi = m.y_range
    expected = 1 / (1 + np.exp(-z)) * (hi - lo) + lo
    got = cflearn.predict(trained, users, items, clip=False).score.to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_row_l2_adds_to_the_gradient_loss_only(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", row_l2=10.0, epochs=1, progress=False)
    learn.fit(1, 1e-3)
    # recorded loss is the plain MSE: compare with an unregularised learner's scale
    assert learn.loss_history.train_losses[0] < 5.0
    big = learn.model.u_weight.weight[1:].norm().item()
    plain = cflearn.collab_learner(synth_data, "fast", row_l2=0.0, wd=0.0, epochs=1, progress=False)
    plain.fit(1, 1e-3)
    assert big < plain.model.u_weight.weight[1:].norm().item()


def test_cold_rows_are_the_average_row(trained):
    for table in [trained.model.u_weight, trained.model.i_weight, trained.model.i_bias]:
        w = table.weight.detach()
        torch.testing.assert_close(w[0], w[1:].mean(0))


def test_nan_loss_stops_with_clear_error(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", epochs=1, progress=False)
    learn.fit(1, 1e-3)
    good = {k: v.clone() for k, v in learn.model.state_dict().items()}
    from fastai.callback.core import Callback

    class Blowup(Callback):  # a numerical blow-up in the middle of the second epoch
        def before_batch(self):
            if self.training and self.epoch == 1 and self.iter == 1:
                with torch.no_grad():
                    self.learn.model.u_weight.weight[1:] = float("nan")

    with pytest.raises(cflearn.TrainingError, match="became nan at epoch 2.*learning rate"):
        learn.fit(3, 1e-3, cbs=[Blowup()])
    for k, v in learn.model.state_dict().items():
        assert torch.isfinite(v).all(), k
    assert set(good) == set(learn.model.state_dict())
    assert cflearn.predict(learn, [1], [1]).score.notna().all()


def test_fast_loader_batches_cover_each_row_once(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", bs=100, progress=False)
    dl = learn.dls.train
    xs = torch.cat([x for x, _ in dl])
    assert len(xs) == (len(synth_data.train_idx) // 100) * 100  # drop_last
    full = learn.dls.train.new(shuffle=False, drop_last=False)
    xs = torch.cat([x for x, _ in full])
    x_all, _ = synth_data.tensors("train")
    assert xs.dtype == torch.int64 and torch.equal(xs, x_all.long())
    assert not torch.equal(torch.cat([x for x, _ in dl])[:100], torch.cat([x for x, _ in dl])[:100])


def test_auto_optimizer_picks_dense_for_small_tables(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", progress=False)
    assert learn.cf.preset.optimizer == "adamw" and not learn.model.u_weight.sparse
    learn = cflearn.collab_learner(synth_data, "fast", bs=16, progress=False)  # 500 rows > 16 batches of 16
    assert learn.cf.preset.optimizer == "lazy"


def test_lazy_optimizer_uses_sparse_rows(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", epochs=1, optimizer="lazy", progress=False)
    assert learn.cf.preset.optimizer == "lazy"
    assert learn.model.u_weight.sparse and learn.model.i_bias.sparse
    cflearn.fit(learn)
    assert np.isfinite(learn.loss_history.train_losses).all()


def test_extra_preset_fields_as_keywords(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", optimizer="lazy", progress=False)
    assert learn.cf.preset.optimizer == "lazy" and learn.model.u_weight.sparse


def test_hybrid_uses_genres_and_helps_cold_items(synth):
    """Planted: item factors follow genres. On items never rated in training, the hybrid model's
    genre-based rows beat the average-item fallback of the plain model."""
    data = cflearn.from_df(synth, split="cold_items", valid_pct=0.2, seed=0)
    assert data.cold["rows"] == len(data.valid_idx)
    from cflearn.serve._predict import score

    plain = cflearn.collab_learner(data, "fast", progress=False)
    cflearn.fit(plain)
    hybrid = cflearn.collab_learner(data, "best", progress=False)
    cflearn.fit(hybrid)
    assert type(hybrid.model).__name__ == "HybridDotBias"
    assert hybrid.cf.preset.item_features == ("genres",)
    assert all(n.startswith("genres=") for n in hybrid.model.feature_names)
    s_plain, s_hybrid = score(plain)["rmse"], score(hybrid)["rmse"]
    assert s_hybrid < s_plain - 0.02, (s_plain, s_hybrid)
    # cold items known from metadata are scored by their features (and say so); unknown ones get the average item
    out = cflearn.predict(hybrid, [1, 1], [data.valid["item"].iloc[0], 10**9])
    assert out.fallback.tolist() == ["item features", "average item"]


def test_best_without_item_metadata_falls_back_to_plain_and_says_so(synth):
    data = cflearn.from_df(synth.ratings, "user", "item", "rating")
    with pytest.warns(UserWarning, match=r"preset 'best': item_features=\('genres', 'year', 'tags'\) need an items "
                      "table"):
        learn = cflearn.collab_learner(data, "best", progress=False)
    assert type(learn.model).__name__ == "DotBias" and learn.cf.preset.item_features == ()


def test_device_choice(synth_data):
    assert cflearn.collab_learner(synth_data, device="cpu", progress=False).cf.device.type == "cpu"
    default = cflearn.collab_learner(synth_data, progress=False).cf.device.type
    if torch.cuda.is_available():
        assert default == "cuda"
        assert cflearn.collab_learner(synth_data, device="cuda", progress=False).cf.device.type == "cuda"
    else:
        assert default == "cpu"
        with pytest.raises(cflearn.ConfigError, match="no CUDA GPU"):
            cflearn.collab_learner(synth_data, device="cuda")
    with pytest.raises(cflearn.ConfigError, match="unknown device"):
        cflearn.collab_learner(synth_data, device="tpu9")
