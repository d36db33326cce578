"""Preset ``rank``'s blend of the learned ranking head and EASE (:class:`cflearn.models.Blend`), on planted data."""

from __future__ import annotations

import pytest
import torch

import cflearn
from cflearn.kinds import _ranking
from cflearn.models import Blend, Ranker
from cflearn.models._blend import BLEND_WEIGHT


@pytest.fixture(scope="module")
def data():
    """300 users x 80 items of interactions with planted tastes."""
    ds = cflearn.datasets.synthetic(300, 80, density=0.25, implicit=True, taste=6, popularity=0.3, seed=3)
    return cflearn.from_df(ds, seed=0)


@pytest.fixture(scope="module")
def blended(data):
    learn = cflearn.collab_learner(data, "rank", epochs=4, progress=False, seed=0)
    cflearn.fit(learn)
    return learn


def _by_hand(model: Blend, users: torch.Tensor) -> torch.Tensor:
    """The blend's formula from its two heads, written out: a * EASE (0 off its items) + b * learned."""
    ii, learned = model.item_item, model.learned
    ease = torch.zeros(len(users), ii.n_items)
    ease[:, ii.keep] = ii.item_rows(users) @ ii.weights + ii.floor[ii.keep]
    h = learned.user_vectors(users)
    raw = h @ learned.i_weight.weight.T + learned.i_bias.weight[:, 0]
    return model.mix[0] * ease + model.mix[1] * raw


def test_rank_blends_the_learned_head_with_ease_measured_after_training(blended):
    model = blended.model
    assert blended.cf.preset.rank_head == "blend" and isinstance(model, Blend)
    assert model.item_item.fitted and len(model.item_item.keep) > 0
    a, b = model.mix.tolist()
    assert a > 0 and b > 0  # measured by fit_mix (before it: (0, 1), the learned head alone)
    users = torch.arange(1, 40)
    model.eval()
    with torch.no_grad():
        got = model.list_scores(users)
        assert torch.allclose(got, _by_hand(model, users), atol=1e-4)
        # over the trained users (all of them here: fewer than MIX_USERS), EASE's part has unit spread and the
        # learned head's BLEND_WEIGHT's
        indptr = model.learned.hist_indptr
        trained = torch.nonzero(indptr[1:] > indptr[:-1]).view(-1)
        ease_part = (model.item_item.item_rows(trained) @ model.item_item.weights) * a
        learned_part = (model.learned.user_vectors(trained) @ model.learned.i_weight.weight.T
                        + model.learned.i_bias.weight[:, 0])[:, 1:] * b
        assert float(ease_part.std()) == pytest.approx(1.0, rel=1e-4)
        assert float(learned_part.std()) == pytest.approx(BLEND_WEIGHT, rel=1e-4)
    pairs = torch.stack([users, torch.full_like(users, 5)], 1)
    with torch.no_grad():
        assert torch.allclose(model(pairs), got[:, 5], atol=1e-5)  # a pair's score is the list's


def test_a_saved_blend_loads_with_the_same_lists_and_folds_in_new_users(blended, data, tmp_path):
    path = cflearn.save(blended, tmp_path / "rank.safetensors")
    back = cflearn.load(path)
    assert isinstance(back.model, Blend) and torch.equal(back.model.mix, blended.model.mix)
    user = blended.cf.users.decode([3])[0]
    mine = cflearn.recommend(blended.cf, user, n=10)
    theirs = cflearn.recommend(back, user, n=10)
    assert mine["item"].tolist() == theirs["item"].tolist()
    served = cflearn.load_served(path)  # NumPy's answers: the same list (test_served compares every answer)
    assert served is not None and served.recommend(user, n=10)["item"].tolist() == mine["item"].tolist()
    items = list(back.items.ids[1:11])
    folded = cflearn.fold_in(back, {item: 1.0 for item in items})
    model = back.model
    vector = folded.list_vector if folded.list_vector is not None else folded.vector
    codes = torch.as_tensor(back.items.encode(items))
    assert torch.allclose(vector.cpu(), model.fold_vector(codes).cpu())  # both heads' parts of the new user
    top = cflearn.recommend(back, folded, n=5)
    assert len(top) == 5 and not set(top["item"]) & set(items)


def test_rank_head_choices(data, monkeypatch):
    learned = cflearn.collab_learner(data, "rank", epochs=1, progress=False, rank_head="learned")
    assert isinstance(learned.model, Ranker)
    monkeypatch.setattr(_ranking, "ITEM_ITEM_MAX", 10)  # a catalogue "too large" for EASE
    auto = cflearn.collab_learner(data, "rank", epochs=1, progress=False)
    assert auto.cf.preset.rank_head == "learned" and isinstance(auto.model, Ranker)
    with pytest.raises(cflearn.ConfigError, match="'auto', 'learned' or 'blend'.*preset 'dual'"):
        cflearn.collab_learner(data, "rank", rank_head="item_item")
    with pytest.raises(cflearn.ConfigError, match="preset 'rank''s"):
        cflearn.collab_learner(cflearn.from_df(cflearn.datasets.synthetic(60, 30, seed=1), seed=0), "dual",
                               rank_head="blend")


def test_a_tampered_mix_is_refused(blended):
    model = Blend.from_config(blended.model.config())
    model.load_state_dict(blended.model.state_dict())
    model.validate()
    model.mix[0] = float("nan")
    with pytest.raises(ValueError, match="mix"):
        model.validate()
    with pytest.raises(ValueError, match="learned ranking head"):
        Blend.from_config({**blended.model.config(), "item_item": {"kind": "rank"}})


def test_a_blend_saved_before_numpy_served_blends_still_loads_but_no_other_model_does(blended, data, tmp_path,
                                                                                     monkeypatch):
    import cflearn.serve._export as export

    served_by = export._serving
    monkeypatch.setattr(export, "_serving", lambda model: (None, {}))  # what a blend's file held then
    old = cflearn.save(blended, tmp_path / "old.safetensors")
    learned = cflearn.collab_learner(data, "rank", rank_head="learned", epochs=1, progress=False)
    cflearn.fit(learned)
    forged = cflearn.save(learned, tmp_path / "learned.safetensors")
    monkeypatch.setattr(export, "_serving", served_by)
    assert cflearn.load_served(old) is None  # answered by torch
    user = blended.cf.users.decode([3])[0]
    back = cflearn.recommend(cflearn.load(old), user, n=10)
    assert back["item"].tolist() == cflearn.recommend(blended.cf, user, n=10)["item"].tolist()
    with pytest.raises(cflearn.ModelFileError, match="tables saved for serving"):
        cflearn.load(forged)  # a model that always had serving tables may not drop them
