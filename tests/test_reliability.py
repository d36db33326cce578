"""Training safety and fuzzing: interrupts, best-epoch weights, determinism, random messy tables."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.callback.core import Callback
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cflearn
from cflearn.callbacks import StateCopies, state_copy


class Snapshots(Callback):
    order = 90

    def before_fit(self):
        self.after = []

    def after_epoch(self):
        self.after.append(state_copy(self.learn.model))


class InterruptAt(Callback):
    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def before_batch(self):
        if self.training and (self.epoch, self.iter) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("interrupt", ["keep", "raise"])
def test_interrupt_keeps_last_complete_epoch(synth_data, interrupt, capsys):
    learn = cflearn.collab_learner(synth_data, "fast", epochs=4, bs=256, progress=False)
    snaps = Snapshots()
    if interrupt == "raise":
        with pytest.raises(KeyboardInterrupt):
            cflearn.fit(learn, cbs=[snaps, InterruptAt(2, 3)], interrupt="raise")
    else:
        assert cflearn.fit(learn, cbs=[snaps, InterruptAt(2, 3)]) is learn
    assert "kept the weights after epoch 2" in capsys.readouterr().err
    state = learn.model.state_dict()
    # epoch 2's weights (cold rows refilled, as they are after every epoch)
    for k in ["u_weight.weight", "i_weight.weight"]:
        torch.testing.assert_close(state[k][1:], snaps.after[1][k][1:])
    assert cflearn.predict(learn, [1, 2], [1, 2]).score.notna().all()
    learn.fit_one_cycle(1, 1e-3)  # and training can go on


class InterruptFirst(Callback):
    order = 0  # before NaNGuard has copied any weights

    def before_fit(self):
        raise KeyboardInterrupt


def test_interrupt_before_the_first_step_keeps_the_untouched_weights(synth_data, capsys):
    learn = cflearn.collab_learner(synth_data, epochs=2, progress=False)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    assert cflearn.fit(learn, cbs=[InterruptFirst()]) is learn
    assert "kept the weights after epoch 0 (the start)" in capsys.readouterr().err
    for k, v in learn.model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_keep_best_ends_on_the_best_validation_epoch(synth):
    data = cflearn.from_df(synth.ratings.sample(1500, random_state=0), "user", "item", "rating", seed=0)
    learn = cflearn.collab_learner(data, epochs=12, bs=64, lr=5e-2, row_l2=0, bias_l2=0, wd=0, progress=False)
    cflearn.fit(learn, keep_best=True)
    losses = learn.loss_history.valid_losses
    assert np.argmin(losses) < len(losses) - 1, losses  # it overfits: the last epoch is not the best
    final = learn.validate()[0]
    assert final == pytest.approx(min(losses), rel=1e-4)


def test_repeated_weight_copies_copy_only_what_changed():
    model = torch.nn.Linear(3, 2)
    model.register_buffer("fixed", torch.randn(4, 4))  # as an item-item head's matrix: never trained
    copies = StateCopies()
    first = copies.take(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    second = copies.take(model)
    assert second["fixed"] is first["fixed"]  # unchanged: shared, not copied again
    assert torch.equal(second["weight"], model.weight) and torch.equal(first["weight"] + 1, second["weight"])
    model.fixed = torch.zeros(4, 4)  # replaced by a new tensor
    assert torch.equal(copies.take(model)["fixed"], torch.zeros(4, 4))
    model.fixed.fill_(2.0)  # written in place
    third = copies.take(model)
    assert torch.equal(third["fixed"], torch.full((4, 4), 2.0))
    model.fixed.fill_(3.0)
    assert torch.equal(third["fixed"], torch.full((4, 4), 2.0))  # a copy, not the live tensor
    full = state_copy(model)
    assert all(torch.equal(v, full[k]) for k, v in copies.take(model).items())


def test_same_seed_same_metrics_and_weights(synth_data):
    runs = []
    for _ in range(2):
        learn = cflearn.collab_learner(synth_data, "best", epochs=3, seed=11, progress=False)
        cflearn.fit(learn)
        runs.append((learn.recorder.values, state_copy(learn.model)))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        torch.testing.assert_close(runs[0][1][k], runs[1][1][k], rtol=0, atol=0)


ids = st.one_of(
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=2**40, max_value=2**40 + 30),
    st.text(alphabet="abcxyz", min_size=1, max_size=2),
)


@st.composite
def tables(draw):
    n = draw(st.integers(min_value=0, max_value=60))
    kind_u, kind_i = draw(ids), draw(ids)  # one value fixes the ID type of each column
    def col(kind):
        if isinstance(kind, str):
            return [draw(st.text(alphabet="abcxyz", min_size=1, max_size=2)) for _ in range(n)]
        return [draw(st.integers(min_value=kind, max_value=kind + 12)) for _ in range(n)]
    scale = draw(st.sampled_from([(1, 5), (0, 1), (1, 10), (0, 0)]))
    ratings = [draw(st.one_of(st.floats(min_value=scale[0], max_value=scale[1]),
                              st.just(float("nan")), st.just("x"))) if draw(st.booleans()) and n and draw(
        st.integers(0, 20)) == 0 else draw(st.floats(min_value=scale[0], max_value=scale[1])) for _ in range(n)]
    return pd.DataFrame({"u": col(kind_u), "i": col(kind_i), "r": ratings})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables(), st.sampled_from(["mean", "last", "error"]))
def test_fuzz_from_df_fit_save_load(tmp_path_factory, df, duplicates):
    """from_df raises a cflearn error or gives data on which a 1-epoch fit and a save/load round trip work."""
    try:
        data = cflearn.from_df(df, "u", "i", "r", duplicates=duplicates, valid_pct=0.25)
        learn = cflearn.collab_learner(data, epochs=1, progress=False)
    except cflearn.CflearnError as e:
        assert str(e) and "\n" not in str(e)
        return
    cflearn.fit(learn)
    path = tmp_path_factory.mktemp("fuzz") / "m.safetensors"
    model = cflearn.load(cflearn.save(learn, path))
    users, items = data.ratings["u"].tolist()[:5], data.ratings["i"].tolist()[:5]
    a, b = cflearn.predict(learn, users, items), cflearn.predict(model, users, items)
    assert a.equals(b) and np.isfinite(a.score).all()


def test_validate_and_get_preds_leave_the_history_alone(trained):
    hist = trained.loss_history
    before = (list(hist.train_losses), list(hist.valid_losses), list(hist.epoch_ends))
    trained.validate()
    trained.get_preds()
    assert (hist.train_losses, hist.valid_losses, hist.epoch_ends) == before


# -- reliability round two: API inputs that used to escape as raw Python errors ---------------------------
def test_odd_id_types_are_refused_at_the_door(synth):
    import datetime

    for col, values, what in [
        ("user", lambda s: [datetime.datetime(2020, 1, 1 + int(u) % 28) for u in s], "dates"),
        ("item", lambda s: [str(i).encode() for i in s], "bytes"),
        ("item", lambda s: [(i, i) for i in s], "tuple"),
    ]:
        df = synth.ratings.copy()
        df[col] = values(df[col])
        with pytest.raises(cflearn.DataError, match=f"{what}.*IDs must be integers or strings"):
            cflearn.from_df(df)


def test_predict_fold_in_seed_and_memory_refusals(trained, synth_data):
    with pytest.raises(cflearn.ConfigError, match="users must be raw IDs"):
        cflearn.predict(trained, None, [1])
    for bad in (float("nan"), "five", float("inf")):
        with pytest.raises(cflearn.DataError, match="finite numbers"):
            cflearn.fold_in(trained, {1: bad, 2: 4.0})
    with pytest.raises(cflearn.ConfigError, match="2\\*\\*63"):
        cflearn.collab_learner(synth_data, "fast", seed=2**70, progress=False)
    with pytest.raises(cflearn.ConfigError, match="2\\*\\*63"):
        cflearn.from_df(synth_data.ratings, seed=2**64)
    with pytest.raises(cflearn.ConfigError, match=r"needs about [\d,]+ GB .* this machine has"):
        cflearn.collab_learner(synth_data, "fast", n_factors=10**9, progress=False)


def test_patience_stops_when_validation_stops_improving_and_keeps_the_best_epoch(synth_data, tmp_path, capsys):
    """Without L2 the dot product overfits the small table: the validation loss turns up, training stops
    `patience` epochs later and the best epoch's weights are kept; the CLI records which."""
    learn = cflearn.collab_learner(synth_data, "fast", epochs=40, row_l2=0.0, bias_l2=0.0, n_factors=64,
                                   progress=False)
    cflearn.fit(learn, patience=2)
    losses = [float(v[1]) for v in learn.recorder.values]
    assert learn.cf.epochs_run == len(losses) < 40
    assert learn.cf.kept_epoch == 1 + int(np.argmin(losses))
    assert float(learn.validate()[0]) == pytest.approx(min(losses), rel=1e-5)  # the best epoch's weights
    from cflearn.cli import main

    src = tmp_path / "r.csv"
    synth_data.ratings.to_csv(src, index=False)
    assert main(["fit", str(src), "--user", "user", "--item", "item", "--rating", "rating", "--preset", "fast",
                 "--epochs", "40", "--patience", "2", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["kept_epoch"] <= metrics["epochs_run"] <= 40
    assert f"kept the weights of epoch {metrics['kept_epoch']}" in out
    assert metrics["epochs_run"] >= 10 + 2  # never stopped inside the warm-up (a quarter of 40 epochs)
    printed = [float(x) for x in re.findall(r"valid_loss (\S+)", out)]  # one line an epoch, the last one too
    assert len(printed) == metrics["epochs_run"] and metrics["valid_loss"] == pytest.approx(min(printed), abs=1e-4)
    assert metrics["valid_loss"] != pytest.approx(printed[-1], abs=1e-4)  # the kept weights' loss, not the last's


def test_early_stopping_waits_for_the_warm_up():
    """The README's `--epochs 40 --patience 3` stopped the default after 7 epochs, inside the learning
    rate's warm-up, with a worse model than no early stopping."""
    from types import SimpleNamespace

    from fastai.callback.core import CancelFitException

    from cflearn.callbacks import StopAfterWarmUp

    def run(losses, warm):
        cb = StopAfterWarmUp(warm, monitor="valid_loss", patience=2)
        recorder = SimpleNamespace(values=[])
        cb.learn = SimpleNamespace(recorder=recorder, epoch=0)
        cb.wait, cb.idx, cb.best = 0, 0, float("inf")
        for epoch, loss in enumerate(losses):
            cb.learn.epoch = epoch
            recorder.values.append([loss])
            try:
                cb.after_epoch()
            except CancelFitException:
                return epoch + 1, cb.best
        return len(losses), cb.best

    rising_then_falling = [1.0, 1.2, 1.3, 1.4, 0.9, 0.8, 0.85, 0.86, 0.87, 0.7]
    assert run(rising_then_falling, warm=0) == (3, 1.0)  # fastai's rule: stopped during the warm-up
    assert run(rising_then_falling, warm=4) == (8, 0.8)  # counts from epoch 5: 0.9, 0.8, then 2 without a gain


def test_a_model_whose_file_could_not_hold_its_text_is_refused_before_training(synth, monkeypatch, tmp_path):
    """10^6 long tags trained and then failed at save ("header too large", a safetensors traceback). The
    header's text is estimated when the learner is built: a model that could never be saved is refused first,
    naming what takes the room. (The limit is lowered here so that the test needs kilobytes, not 100 MB.)"""
    import cflearn.serve._export as export

    monkeypatch.setattr(export, "HEADER_LIMIT", 200_000)
    items = synth.items.copy()
    items["blurb"] = [f"item {i} " + "long words " * 200 for i in range(len(items))]  # ~2 KB an item
    data = cflearn.from_df(synth.ratings, "user", "item", "rating", items=items, seed=0)
    assert data.titles_from != "blurb"  # long text is no title
    with pytest.raises(cflearn.DataError, match=r"could train but never be saved.*column 'blurb'"):
        cflearn.collab_learner(data, "fast", progress=False)
    short = cflearn.from_df(synth.ratings, "user", "item", "rating", items=items.drop(columns="blurb"), seed=0)
    learn = cflearn.fit(cflearn.collab_learner(short, "fast", epochs=1, progress=False))
    monkeypatch.setattr(export, "HEADER_LIMIT", 100)  # whatever slips past the estimate is a clear error at save
    with pytest.raises(cflearn.DataError, match="over the file format's"):
        cflearn.save(learn, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_model_file_mistakes_say_what_the_path_is(trained, tmp_path):
    """A folder, /dev/null or a ratings CSV given as the model file said "not found" or "header too large"."""
    cflearn.save(trained, tmp_path / "run" / "model.safetensors")
    with pytest.raises(cflearn.ModelFileError, match=r"is a folder; give the model file in it \(.*model.safetensors\)"):
        cflearn.load(tmp_path / "run")
    with pytest.raises(cflearn.ModelFileError, match="not a regular file"):
        cflearn.load("/dev/null")
    (tmp_path / "r.csv").write_text("user,item,rating\n1,2,3.5\n")
    with pytest.raises(cflearn.ModelFileError, match=r"is a text file \(a ratings table\?\), not a model file"):
        cflearn.load(tmp_path / "r.csv")
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "run" / "model.safetensors").read_bytes()[:100])
    with pytest.raises(cflearn.ModelFileError, match="truncated or corrupted"):
        cflearn.load(tmp_path / "cut.safetensors")
    for bad in (-1, 1.5, True):
        with pytest.raises(cflearn.ConfigError, match="min_ratings must be a whole number"):
            cflearn.recommend(trained, 1, min_ratings=bad)
    with pytest.raises(cflearn.ConfigError, match="chunk must be a positive integer"):  # range() arg 3 was zero
        cflearn.recommend_all(trained, [1, 2], 3, chunk=0)


def test_warnings_point_at_the_users_own_call(synth_data, synth):
    """Warnings hard-coded their depth (stacklevel 5, 6): a change of path inside cflearn pointed them into
    cflearn. They now point at the first frame outside the package, whatever the depth."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cflearn.collab_learner(synth_data, "best", progress=False)  # no genres, year or tags: a ConfigWarning
        data = cflearn.from_df(synth.ratings, "user", "item", "rating", users=synth.users, user_features=["group"],
                               seed=0)
        learn = cflearn.fit(cflearn.collab_learner(data, "best", select_features=False, epochs=1, progress=False))
        cflearn.cold_user(learn, {"group": "astronaut"})  # a value the model never saw: a DataWarning
    ours = [w for w in caught if issubclass(w.category, (cflearn.ConfigWarning, cflearn.DataWarning))]
    assert len({w.category for w in ours}) == 2 and all(w.filename == __file__ for w in ours), \
        [(w.category.__name__, w.filename, str(w.message)[:60]) for w in ours]
