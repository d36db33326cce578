import numpy as np
import pytest

import cflearn


def test_predict_by_raw_id(trained, synth_data):
    row = synth_data.valid.iloc[0]
    out = cflearn.predict(trained, [row.user], [row.item])
    assert list(out.columns) == ["user", "item", "score", "fallback"]
    assert out.user.tolist() == [row.user] and out.item.tolist() == [row.item]
    assert 1 <= out.score.iloc[0] <= 5


def test_scalars_broadcast(trained):
    out = cflearn.predict(trained, 1, [1, 2, 3])
    assert out.user.tolist() == [1, 1, 1] and len(out) == 3
    with pytest.raises(cflearn.ConfigError, match="same length"):
        cflearn.predict(trained, [1, 2], [1, 2, 3])


def test_unknown_ids_fall_back_and_are_flagged(trained):
    out = cflearn.predict(trained, [1, 999999, 1, 999999], [1, 1, 888888, 888888])
    assert out.fallback.tolist() == ["", "average user", "average item", "average user and item"]
    assert out.score.notna().all()
    # the unknown user is the average user: the same as row 0, which is the mean of trained rows
    m = trained.model
    u_mean = m.u_weight.weight[1:].mean(0).detach().numpy()
    bu = m.u_bias.weight[1:].mean().item()
    i = trained.cf.items.encode([1])[0]
    z = float(u_mean @ m.i_weight.weight[i].detach().numpy() + bu + m.i_bias.weight[i].item())
    lo, hi = m.y_range
    expected = np.clip(1 / (1 + np.exp(-z)) * (hi - lo) + lo, *trained.cf.scale)
    assert out.score.iloc[1] == pytest.approx(expected, rel=1e-5)


def test_strict_raises_clear_error_not_bare_keyerror(trained):
    with pytest.raises(cflearn.UnknownIDError, match="users 999999.*strict=False"):
        cflearn.predict(trained, [999999], [1], strict=True)
    with pytest.raises(cflearn.CflearnError):
        cflearn.predict(trained, [1], [12345], strict=True)


def test_clip_to_scale(trained):
    raw = cflearn.predict(trained, [1] * 200, list(range(1, 201)), clip=False).score
    clipped = cflearn.predict(trained, [1] * 200, list(range(1, 201))).score
    assert clipped.min() >= 1 and clipped.max() <= 5
    assert np.allclose(np.clip(raw, 1, 5), clipped)


def test_plain_fastai_learner_is_refused():
    with pytest.raises(cflearn.ConfigError, match="collab_learner"):
        cflearn.predict(object(), [1], [1])


def test_an_id_of_the_wrong_type_is_a_clear_error_not_a_fallback(trained, synth_data):
    item = int(synth_data.train["item"].iloc[0])
    message = f"item '{item}' is a string, but the item IDs are ints: pass {item}"
    with pytest.raises(cflearn.UnknownIDError, match=message):
        cflearn.predict(trained, [1], [str(item)])
    with pytest.raises(cflearn.UnknownIDError, match="user 'ann' is a string, but the user IDs are ints"):
        cflearn.recommend(trained, "ann")


def test_a_title_gets_its_id_suggested(ml_data):
    learn = cflearn.collab_learner(ml_data, epochs=1, progress=False)
    cflearn.fit(learn)
    with pytest.raises(cflearn.UnknownIDError, match=r"title of item 593: pass 593"):
        cflearn.predict(learn, [1], ["Silence of the Lambs, The (1991)"])


def test_an_untrained_model_is_refused_everywhere(synth_data, tmp_path):
    learn = cflearn.collab_learner(synth_data, progress=False)
    calls = [lambda: cflearn.predict(learn, [1], [1]), lambda: cflearn.recommend(learn, 1),
             lambda: cflearn.evaluate(learn), lambda: cflearn.save(learn, tmp_path / "m.safetensors"),
             lambda: cflearn.similar_items(learn, 1), lambda: cflearn.fold_in(learn, {1: 4.0})]
    for call in calls:
        with pytest.raises(cflearn.ConfigError, match=r"not been trained: call cflearn.fit\(learn\) first"):
            call()
    assert not (tmp_path / "m.safetensors").exists()
