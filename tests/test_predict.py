import numpy as np
import pytest

import cflearn


def test_predict_by_raw_id(trained, synth_data):
    row = synth_data.valid.iloc[0]
    out = cflearn.predict(trained, [row.user], [row.item])
    assert list(out.columns) == ["user", "item", "prediction", "known_user", "known_item"]
    assert out.user.tolist() == [row.user] and out.item.tolist() == [row.item]
    assert 1 <= out.prediction.iloc[0] <= 5


def test_scalars_broadcast(trained):
    out = cflearn.predict(trained, 1, [1, 2, 3])
    assert out.user.tolist() == [1, 1, 1] and len(out) == 3
    with pytest.raises(cflearn.ConfigError, match="same length"):
        cflearn.predict(trained, [1, 2], [1, 2, 3])


def test_unknown_ids_fall_back_and_are_flagged(trained):
    out = cflearn.predict(trained, [1, "ghost", 1, "ghost"], [1, 1, "nope", "nope"])
    assert out.known_user.tolist() == [True, False, True, False]
    assert out.known_item.tolist() == [True, True, False, False]
    assert out.prediction.notna().all()
    # the unknown user is the average user: the same as row 0, which is the mean of trained rows
    m = trained.model
    u_mean = m.u_weight.weight[1:].mean(0).detach().numpy()
    bu = m.u_bias.weight[1:].mean().item()
    i = trained.cf.items.encode([1])[0]
    z = float(u_mean @ m.i_weight.weight[i].detach().numpy() + bu + m.i_bias.weight[i].item())
    lo, hi = m.y_range
    expected = np.clip(1 / (1 + np.exp(-z)) * (hi - lo) + lo, *trained.cf.scale)
    assert out.prediction.iloc[1] == pytest.approx(expected, rel=1e-5)


def test_strict_raises_clear_error_not_bare_keyerror(trained):
    with pytest.raises(cflearn.UnknownIDError, match="users 'ghost'.*strict=False"):
        cflearn.predict(trained, ["ghost"], [1], strict=True)
    with pytest.raises(cflearn.CflearnError):
        cflearn.predict(trained, [1], [12345], strict=True)


def test_clip_to_scale(trained):
    raw = cflearn.predict(trained, [1] * 200, list(range(1, 201)), clip=False).prediction
    clipped = cflearn.predict(trained, [1] * 200, list(range(1, 201))).prediction
    assert clipped.min() >= 1 and clipped.max() <= 5
    assert np.allclose(np.clip(raw, 1, 5), clipped)


def test_plain_fastai_learner_is_refused():
    with pytest.raises(cflearn.ConfigError, match="collab_learner"):
        cflearn.predict(object(), [1], [1])
