"""Adding a model kind is one file: this one defines a small two-tower model and its kind, registers
them, and runs the whole contract suite (every test of tests/test_contract.py that takes a trained
learner) and the command line (fit, predict, recommend from the saved file) on it."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import cflearn
from cflearn import kinds, models
from cflearn.kinds import Built, Kind
from tests import test_contract


class TwoTower(nn.Module, models.Contract):
    """Each side's embedding through its own small tower (a Linear layer and tanh); the score is the
    towers' dot product plus biases, squashed into y_range. No tables: scored by forward passes."""

    kind = "two_tower"

    def __init__(self, n_users: int, n_items: int, n_factors: int, tower: int = 8,
                 y_range: tuple[float, float] | None = None):
        super().__init__()
        self.y_range = y_range
        self.users, self.items = models.Embedding(n_users, n_factors), models.Embedding(n_items, n_factors)
        self.u_bias, self.i_bias_ = models.Embedding(n_users, 1), models.Embedding(n_items, 1)
        self.u_tower, self.i_tower = nn.Linear(n_factors, tower), nn.Linear(n_factors, tower)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.tanh(self.u_tower(self.users(x[:, 0])))
        i = torch.tanh(self.i_tower(self.items(x[:, 1])))
        return self.output((u * i).sum(1) + self.u_bias(x[:, 0]).view(-1) + self.i_bias_(x[:, 1]).view(-1))

    def embeddings(self) -> dict:
        return {(0, "users"): self.users, (1, "items"): self.items, (0, "u_bias"): self.u_bias,
                (1, "i_bias"): self.i_bias_}

    def config(self) -> dict:
        return {"kind": self.kind, "n_users": self.users.num_embeddings, "n_items": self.items.num_embeddings,
                "n_factors": self.users.embedding_dim, "tower": self.u_tower.out_features,
                "y_range": list(self.y_range)}

    @classmethod
    def from_config(cls, config: dict) -> TwoTower:
        sizes = [config[k] for k in ("n_users", "n_items", "n_factors", "tower")]
        y_range = config["y_range"]
        if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"two_tower sizes must be positive integers, got {sizes}")
        if not (isinstance(y_range, list) and len(y_range) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in y_range)
                and y_range[0] < y_range[1]):
            raise ValueError(f"two_tower y_range must be two finite numbers, low < high, got {y_range!r}")
        return cls(*sizes, y_range=(float(y_range[0]), float(y_range[1])))


class TwoTowerKind(Kind):
    name = "two_tower"
    model_class = TwoTower

    def build(self, data, preset, *, device, seed, y_range, shard=(0, 1)):
        dls = kinds.rating_loaders(data, preset, device=device, seed=seed, shard=shard)
        return Built(dls, TwoTower(len(data.users), len(data.items), preset.n_factors, y_range=y_range))


PRESET = cflearn.Preset("two_tower", "two small towers and a dot product (a test's own kind)", kind="two_tower",
                        bs=64, epochs=3, lr=1e-2, wd=0.0, n_factors=16, optimizer="adamw")


@pytest.fixture(scope="module", autouse=True)
def registered():
    kinds.register(TwoTowerKind(), PRESET)
    yield
    kinds.unregister("two_tower")
    assert "two_tower" not in cflearn.PRESETS


data = test_contract.data  # the contract suite's data (side features declared: this kind leaves them unused)


@pytest.fixture(scope="module", params=["two_tower"])
def learned(request, data):
    learn = test_contract.make(data, request.param)
    cflearn.fit(learn)
    return request.param, learn


SUITE = [name for name, fn in vars(test_contract).items()
         if name.startswith("test_") and callable(fn) and "learned" in inspect.signature(fn).parameters]
globals().update({name: getattr(test_contract, name) for name in SUITE})  # the whole suite, run on this kind


def test_the_suite_is_the_contract_suite():
    assert len(SUITE) >= 10 and "test_save_load_identical" in SUITE and "test_same_seed_same_weights" in SUITE


def test_the_kind_is_found_by_name(data):
    with pytest.warns(UserWarning, match="preset 'two_tower' has no side features, so the data's user features"):
        learn = cflearn.collab_learner(data, "two_tower", progress=False)
    assert type(learn.model) is TwoTower and learn.cf.preset.kind == "two_tower"
    with pytest.raises(cflearn.ConfigError, match=r"use_nn do\(es\) not apply to preset 'two_tower'"):
        cflearn.collab_learner(data, "two_tower", use_nn=True)
    with pytest.raises(cflearn.ConfigError, match="kind name 'dot' is reserved for cflearn's own"):
        kinds.register(type("Other", (Kind,), {"name": "dot"})(), replace=True)


def test_the_builtin_names_are_reserved_before_the_builtins_load():
    """register() took 'dual' when it ran before the built-in kinds' lazy registration: the default preset
    was then unusable for the process, and every dual model file failed to load."""
    import subprocess
    import sys

    code = ("import cflearn\nfrom cflearn import kinds\nclass Mine(kinds.Kind):\n    name = 'dual'\n"
            "try:\n    kinds.register(Mine())\nexcept cflearn.ConfigError as e:\n    print(e)\n"
            "print(type(kinds.get_kind('dual')).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["kind name 'dual' is reserved for cflearn's own (dot, hybrid, nn, rank, dual); "
                                       "give your kind another name", "DualKind"]


def test_the_command_line_trains_saves_and_serves_it(synth, tmp_path, capsys):
    from cflearn import cli

    path = tmp_path / "ratings.csv"
    synth.ratings.to_csv(path, index=False)
    out = tmp_path / "run"
    code = cli.main(["fit", str(path), "--user", "user", "--item", "item", "--rating", "rating",
                     "--preset", "two_tower", "--epochs", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "training: preset 'two_tower'" in printed and "valid RMSE" in printed
    model = cflearn.load(out / "model.safetensors")
    assert type(model.model) is TwoTower
    user, item = int(synth.ratings["user"].iloc[0]), int(synth.ratings["item"].iloc[0])
    assert cli.main(["recommend", str(out / "model.safetensors"), "--user", str(user), "-n", "3"]) == 0
    listed = capsys.readouterr().out
    top = cflearn.recommend(model, user, n=3)
    assert all(str(i) in listed for i in top["item"])
    assert cli.main(["predict", str(out / "model.safetensors"), "--user", str(user), "--item", str(item)]) == 0
    score = float(cflearn.predict(model, user, item)["score"].iloc[0])
    assert f"{score:.3f}"[:-1] in capsys.readouterr().out
    assert np.isfinite(score)


def test_builtin_presets_name_the_kind_their_flags_describe():
    from cflearn.kinds._presets import BUILTIN_KINDS, infer_kind

    for p in cflearn.PRESETS.values():
        assert p.kind not in BUILTIN_KINDS or p.kind == infer_kind(p), p.name
    assert cflearn.PRESETS["fast"].replace(use_nn=True).kind == "nn"
    assert cflearn.PRESETS["best"].replace(item_features=()).kind == "dot"
    assert cflearn.PRESETS["dual"].replace(loss="softmax").kind == "rank"
    assert PRESET.replace(use_nn=True).kind == "two_tower"  # a registered kind is not re-inferred


def test_building_a_learner_trains_only_the_feature_check(data, monkeypatch):
    """collab_learner assembles; the one training before it is the feature check of a preset that asks for it
    (it trains the inner split's candidates, never the learner it returns), and a settled preset builds at once."""
    from fastai.learner import Learner

    from cflearn.kinds._feature_settle import needs_choice
    from cflearn.kinds._settle import resolve

    fit, trained = Learner.fit, []

    def counted(self, *args, **kwargs):
        trained.append(self)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Learner, "fit", counted)
    checked = []
    for name in cflearn.PRESETS:
        trained.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learn = cflearn.collab_learner(data, name, progress=False, epochs=1)
        checks = needs_choice(resolve(data, cflearn.PRESETS[name].replace(epochs=1), {"epochs": 1}))
        assert not learn.cf.trained and learn not in trained, name
        assert bool(trained) == checks and (learn.cf.preset.chosen is not None) == checks, name
        if checks:
            checked.append(name)
            trained.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cflearn.collab_learner(data, learn.cf.preset, progress=False)
            assert not trained, name
    assert "best" in checked  # the data declares features: the check was exercised above


def test_what_a_kind_returns_is_checked_and_the_error_names_the_kind(data):
    """A kind whose model scored (n, 3) or (1,) trained silently; build or settle returning None, and a
    config without 'kind' or holding a tensor, ended in tracebacks."""

    class Shaped(TwoTower):
        def __init__(self, *args, shape="rows3", cfg="ok", **kwargs):
            super().__init__(*args, **kwargs)
            self.shape, self.cfg = shape, cfg

        def forward(self, x):
            out = super().forward(x)
            return {"rows3": out[:, None].expand(-1, 3), "one": out[:1], "ok": out}[self.shape]

        def config(self):
            config = super().config()
            if self.cfg == "nokind":
                config.pop("kind")
            elif self.cfg == "tensor":
                config["scale"] = torch.ones(2)
            return config

    def kind_of(name, **how):
        def build(self, data, preset, *, device, seed, y_range, shard=(0, 1)):
            if how.get("none"):
                return None
            dls = kinds.rating_loaders(data, preset, device=device, seed=seed, shard=shard)
            return Built(dls, Shaped(len(data.users), len(data.items), 8, y_range=y_range, **how))
        attrs = {"name": name, "build": build}
        if how.get("settle_none"):
            attrs["settle"] = lambda self, *a, **k: None
        return type(f"Kind_{name}", (Kind,), attrs)()

    cases = {"odd_rows3": ({"shape": "rows3"}, r"returned \(\d+, 3\) for a batch of \d+ rows; a rating model"),
             "odd_one": ({"shape": "one"}, r"returned \(1,\) for a batch of \d+ rows"),
             "odd_none": ({"none": True}, r"build\(\) returned NoneType, not a cflearn.kinds.Built"),
             "odd_settle": ({"settle_none": True}, r"settle\(\) returned NoneType, not a cflearn.Preset"),
             "odd_nokind": ({"cfg": "nokind"}, r"config\(\) must be a dict with a 'kind'"),
             "odd_tensor": ({"cfg": "tensor"}, r"config\(\)\['scale'\] is Tensor, which a saved file cannot hold")}
    for name, (how, words) in cases.items():
        kinds.register(kind_of(name, **how), PRESET.replace(name=name, kind=name, epochs=1))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(cflearn.ConfigError, match=rf"kind '{name}': .*{words}"):
                    cflearn.collab_learner(data, name, progress=False)
        finally:
            kinds.unregister(name)
    kinds.register(kind_of("odd_fine", shape="ok"), PRESET.replace(name="odd_fine", kind="odd_fine", epochs=1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert isinstance(cflearn.collab_learner(data, "odd_fine", progress=False).model, Shaped)
    finally:
        kinds.unregister("odd_fine")


def test_the_command_line_asks_the_kind_whether_it_trains_in_several_processes(tmp_path, capsys):
    """--nproc was refused by the preset's flags (ranking, dual): a registered kind that does not shard passed the
    check and then failed in every process. The kind is asked now, before any process starts."""
    from cflearn.cli import main

    cflearn.datasets.synthetic(60, 40, density=0.2, seed=0).ratings.to_csv(tmp_path / "r.csv", index=False)
    assert not TwoTowerKind.distributed
    code = main(["fit", str(tmp_path / "r.csv"), "--user", "user", "--item", "item", "--rating", "rating",
                 "--preset", "two_tower", "--nproc", "2", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "preset 'two_tower' trains in one process (its model kind 'two_tower' is not sharded)" in err
    assert not (tmp_path / "run").exists()


def test_a_kind_answers_for_itself_memory_description_training_note_and_interactions(tmp_path, capsys, data):
    """The settle step, `cflearn presets`, `cflearn fit`'s training line and the data check ask the kind,
    not the preset's flags: a kind that says no to each is heard."""
    from cflearn.cli import main

    class Greedy(TwoTowerKind):
        name = "greedy"

        def memory(self, data, preset):
            return 2**70  # more than any machine has

    kinds.register(Greedy(), PRESET.replace(name="greedy", kind="greedy", epochs=1))
    try:
        with pytest.raises(cflearn.ConfigError, match=r"needs about .* GB for the weights and optimizer state "
                                                      r"\(kind 'greedy'\)"):
            cflearn.collab_learner(data, "greedy", progress=False)
    finally:
        kinds.unregister("greedy")

    class Noted(TwoTowerKind):
        name = "noted"

        def describe(self, preset):
            return "kind noted; a line of its own"

        def training_note(self, preset):
            return "two towers, as the test asked"

    kinds.register(Noted(), PRESET.replace(name="noted", kind="noted", epochs=1))
    try:
        assert main(["presets"]) == 0
        assert "kind noted; a line of its own" in capsys.readouterr().out
        cflearn.datasets.synthetic(60, 40, density=0.2, seed=0).ratings.to_csv(tmp_path / "r.csv", index=False)
        assert main(["fit", str(tmp_path / "r.csv"), "--user", "user", "--item", "item", "--rating", "rating",
                     "--preset", "noted", "--out", str(tmp_path / "run")]) == 0
        line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("training: preset 'noted'"))
        assert line.endswith("; two towers, as the test asked"), line
        clicks = cflearn.from_df(cflearn.datasets.synthetic(60, 40, density=0.2, seed=0, implicit=True), seed=0)
        assert not Noted.implicit
        with pytest.raises(cflearn.ConfigError, match="the data is implicit .* preset 'noted' predicts ratings"):
            cflearn.collab_learner(clicks, "noted", progress=False)
    finally:
        kinds.unregister("noted")

    class Ranks(TwoTowerKind):  # its scores are no ratings: a y_range is refused by asking the kind, not the loss
        name = "ranks"
        rates = False

    kinds.register(Ranks(), PRESET.replace(name="ranks", kind="ranks", epochs=1))
    try:
        assert cflearn.PRESETS["ranks"].loss == "mse"  # the preset's flags say nothing of ranking
        with pytest.raises(cflearn.ConfigError, match="y_range does not apply to preset 'ranks'"):
            cflearn.collab_learner(data, "ranks", y_range=(0.0, 6.0), progress=False)
    finally:
        kinds.unregister("ranks")
