"""Serving without torch: a saved model answered with NumPy (cflearn.load_served) agrees with torch's answers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import cflearn


@pytest.fixture(scope="module")
def planted():
    return cflearn.datasets.synthetic(300, 160, density=0.08, seed=5)


@pytest.fixture(scope="module")
def models(planted, tmp_path_factory):
    """One saved model of each kind NumPy serves: dot (fast), two heads (dual: item-item, learned), ranking
    (rank: its learned head blended with EASE, and the learned head alone) and hybrid (best with user and item
    features, where 15 users and 8 items are known only from metadata)."""
    ratings = planted.ratings
    kept = ratings[~ratings["user"].isin(planted.users["user"][:15]) & ~ratings["item"].isin(planted.items["item"][:8])]
    plain = cflearn.from_df(ratings, seed=0)
    hybrid = cflearn.from_df(kept, "user", "item", "rating", items=planted.items, users=planted.users,
                             user_features=["group"], item_features=["genres"], seed=0)
    specs = {"fast": (plain, "fast", {}), "dual": (plain, "dual", {}),
             "dual learned": (plain, "dual", {"rank_head": "learned"}),
             "rank": (plain, "rank", {}), "rank learned": (plain, "rank", {"rank_head": "learned"}),
             "hybrid": (hybrid, "best", {"select_features": False})}
    out = {}
    folder = tmp_path_factory.mktemp("served")
    for name, (data, preset, kwargs) in specs.items():
        learn = cflearn.collab_learner(data, preset, epochs=2, progress=False, seed=0, **kwargs)
        cflearn.fit(learn)
        path = cflearn.save(learn, folder / f"{name.replace(' ', '_')}.safetensors")
        out[name] = (cflearn.load(path), cflearn.load_served(path), path)
    return out


def _who(cf, planted):
    """Known users, users a hybrid knows only from metadata (the first three), an unknown one; every item and an
    unknown one."""
    users = list(cf.users.ids[:20]) + planted.users["user"][:3].tolist() + [-7]
    return users, list(cf.items.ids) + [-3]


@pytest.mark.parametrize("name", ["fast", "dual", "dual learned", "rank", "rank learned", "hybrid"])
def test_numpy_answers_are_torch_answers(models, name, planted):
    cf, served, _ = models[name]
    assert served is not None  # served by NumPy, not handed back to torch
    users, items = _who(cf, planted)
    pairs = pd.DataFrame([(u, i) for u in users[::5] + users[-4:] for i in items], columns=["user", "item"])
    want = cflearn.predict(cf, pairs["user"].tolist(), pairs["item"].tolist())
    got = served.predict(pairs["user"].tolist(), pairs["item"].tolist())
    assert got.attrs == want.attrs and list(got.columns) == list(want.columns)
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-6, atol=1e-6)  # float32, summed in another order
    assert got["fallback"].tolist() == want["fallback"].tolist()
    if name == "hybrid":
        assert {"user features", "average user", "item features", ""} <= {
            part for f in got["fallback"] for part in f.split(", ")}
    some = items[::3] + [-3]  # candidates: every third item and an unknown one
    for options in ({}, {"exclude_seen": False}, {"min_ratings": 0}, {"min_ratings": 5, "n": 30},
                    {"candidates": some, "n": 5}):
        for user in users:
            want = cflearn.recommend(cf, user, **options)
            got = served.recommend(user, **options)
            assert list(got.columns) == list(want.columns) and got.attrs == want.attrs, (user, options)
            assert got["item"].tolist() == want["item"].tolist(), (user, options)
            for col in ("score", "rating"):
                if col in want:
                    np.testing.assert_allclose(got[col], want[col], rtol=1e-6, atol=1e-6)
            assert got["fallback"].tolist() == want["fallback"].tolist()
    for strict in (lambda m: m.recommend(-7, strict=True), lambda m: m.predict([users[0], -7], [items[0], -3],
                                                                                strict=True)):
        with pytest.raises(cflearn.UnknownIDError) as by_numpy:
            strict(served)
        with pytest.raises(cflearn.UnknownIDError) as by_torch:
            strict(_Torch(cf))
        assert str(by_numpy.value) == str(by_torch.value)


class _Torch:
    """torch's answers through the same calls as :class:`cflearn.Served`'s."""

    def __init__(self, cf):
        self.cf = cf

    def recommend(self, user, **kwargs):
        return cflearn.recommend(self.cf, user, **kwargs)

    def predict(self, users, items, **kwargs):
        return cflearn.predict(self.cf, users, items, **kwargs)


def test_numpy_answers_need_neither_torch_nor_fastai(models):
    _, served, path = models["dual"]
    user = int(served.users.ids[3])
    code = (f"import sys, cflearn\ns = cflearn.load_served({str(path)!r})\ns.recommend({user!r})\n"
            f"s.predict({user!r}, [1, 2])\n"
            "from cflearn.cli import main\nmain(['recommend', sys.argv[1], '--user', '4'])\n"
            "main(['predict', sys.argv[1], '--user', '4', '--item', '1'])\n"
            "print('torch' in sys.modules, 'fastai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False False"
    assert "top 10 for user 4:" in out


def test_files_numpy_cannot_serve_go_to_torch(models, tmp_path):
    _, _, path = models["fast"]
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF  # a weight changed after saving: the checksums disagree
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(blob))
    assert cflearn.load_served(bad) is None and cflearn.load_served(tmp_path / "missing.safetensors") is None
    with pytest.raises(cflearn.ModelFileError, match="checksum"):
        cflearn.load(bad)
    from cflearn.cli import main

    assert main(["recommend", str(bad), "--user", "4"]) == 1  # torch's load says what is wrong
    nn = cflearn.collab_learner(cflearn.from_df(cflearn.datasets.synthetic(100, 50, seed=1), seed=0), "fast_nn",
                                epochs=1, progress=False)
    path = cflearn.save(cflearn.fit(nn), tmp_path / "nn.safetensors")  # no tables: forward passes, torch's
    assert cflearn.load_served(path) is None
    assert main(["recommend", str(path), "--user", str(nn.cf.users.ids[1]), "-n", "3"]) == 0


def test_ratings_clipped_to_the_scale_are_listed_alike(planted, tmp_path):
    """A rating model's list scores are predicted ratings clipped to the scale: many items tie at the top, and both
    paths list them in item order."""
    import torch

    learn = cflearn.collab_learner(cflearn.from_df(planted.ratings, seed=0), "fast", epochs=1, progress=False, seed=0)
    cflearn.fit(learn)
    with torch.no_grad():
        learn.model.i_bias.weight[1:40] += 4.0  # 39 items every user is predicted to rate above 5
    path = cflearn.save(learn, tmp_path / "clipped.safetensors")
    cf, served = cflearn.load(path), cflearn.load_served(path)
    for user in cf.users.ids[:10]:
        want, got = cflearn.recommend(cf, user, n=20), served.recommend(user, n=20)
        assert (want["score"] == cf.scale[1]).all() and got["item"].tolist() == want["item"].tolist()
        np.testing.assert_allclose(got["score"], want["score"], rtol=1e-6, atol=1e-6)
        codes = cf.items.encode(want["item"].tolist())
        assert (np.diff(codes) > 0).all()  # tied at 5: in item order
