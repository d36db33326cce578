"""Model kinds: each way of training knows how to build itself, and registers itself by name.

A :class:`cflearn.Preset` names its kind (``"dot"``, ``"hybrid"``, ``"nn"``, ``"rank"``, ``"dual"``,
or one you register). :func:`cflearn.collab_learner` only assembles: it settles the preset against
the data (:meth:`Kind.settle`), asks the kind for its parts (:meth:`Kind.build`: loaders, network,
loss, callbacks) and returns a plain fastai ``Learner`` around them. A new model is one new file:

.. code-block:: python

    class TwoTower(cflearn.kinds.Kind):
        name = "two_tower"
        model_class = TwoTowerNet          # a cflearn.models.Contract with kind = "two_tower"

        def build(self, data, preset, *, device, seed, y_range, shard):
            dls = cflearn.kinds.rating_loaders(data, preset, device=device, seed=seed, shard=shard)
            return cflearn.kinds.Built(dls, TwoTowerNet(len(data.users), len(data.items), preset.n_factors,
                                                        y_range=y_range))

    cflearn.kinds.register(TwoTower(), cflearn.Preset("two_tower", "two towers", kind="two_tower"))

and then ``cflearn.collab_learner(data, "two_tower")``, ``cflearn fit --preset two_tower``,
``cflearn.save`` / ``cflearn.load`` (rebuilt from ``model_class.from_config``, never unpickled) and
the contract test (``tests/test_kinds.py`` shows one) work with it.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from .._errors import ConfigError, closest
from ._presets import PRESETS, Preset

if TYPE_CHECKING:
    import torch
    from fastai.data.core import DataLoaders
    from torch import nn

    from ..data._data import CollabData

__all__ = ["Kind", "Built", "KINDS", "register", "unregister", "get_kind", "build_model", "rating_loaders",
           "one_process_only"]

_BUILTIN = ("cflearn.kinds._rating", "cflearn.kinds._ranking", "cflearn.kinds._dual")
"""The modules of the built-in kinds (each registers its own on import)."""


@dataclasses.dataclass
class Built:
    """What a kind gives the learner factory.

    Attributes:
        dls: fastai ``DataLoaders`` yielding ``(x, y)`` batches the network and loss take.
        model: the network (a :class:`cflearn.models.Contract` for save/load, recommend and interpret).
        loss_func: the loss; ``None``: mean squared error against ratings.
        callbacks: extra fastai callbacks the kind trains with.
        metrics: validation metrics; ``None``: RMSE of ratings.
        users, items: the vocabularies the network's tables use, when they differ from the data's
            (a hybrid model extends them with IDs known only from metadata).
        rank_loss: a ranking loss that must follow ``learn.model`` (set as ``loss.learn``).
    """

    dls: DataLoaders
    model: nn.Module
    loss_func: Any = None
    callbacks: list[Any] = dataclasses.field(default_factory=list)
    metrics: list[Any] | None = None
    users: Any = None
    items: Any = None
    rank_loss: Any = None


class Kind:
    """One model kind: how to check a preset against the data and how to build the parts of a learner.

    Attributes:
        name: the kind's name (``Preset.kind``); also the ``"kind"`` of its model's saved config.
        model_class: the :class:`cflearn.models.Contract` class :func:`cflearn.load` rebuilds a saved
            model of this kind with (``from_config``; :meth:`saved_class` asks for it). The kinds
            registry is the one registry of model classes: :func:`build_model` reads it.
        implicit: whether the kind trains on interactions without ratings.
        rates: whether its model's scores are predicted ratings (a ``y_range`` applies, and a kind of
            your own is checked to give one per row); ``False`` for a kind that only ranks.
        distributed: whether it trains data-parallel under torchrun (its loaders take ``shard``).
        fields: the :class:`Preset` fields the kind reads beyond the training schedule; a setting
            outside them passed to :func:`cflearn.collab_learner` is an error (``None``: any).

    The kind also answers for itself where cflearn would otherwise read a preset's flags: its memory
    estimate (:meth:`memory`, checked before building), its line in ``cflearn presets``
    (:meth:`describe`) and in ``cflearn fit``'s training line (:meth:`training_note`), whether it
    trains on interactions (``implicit``) and in several processes (``distributed``).
    """

    name: ClassVar[str] = ""
    model_class: ClassVar[type | None] = None
    implicit: ClassVar[bool] = False
    rates: ClassVar[bool] = True
    distributed: ClassVar[bool] = False
    fields: ClassVar[frozenset[str] | None] = frozenset({"n_factors", "y_pad", "y_range_rule", "row_l2", "bias_l2"})

    def saved_class(self) -> type | None:
        """The class whose ``from_config`` rebuilds this kind's saved models (``model_class``; a kind
        whose class imports heavy libraries imports it here, on first use)."""
        return self.model_class

    def settle(self, data: CollabData, preset: Preset, given: dict[str, Any], *, custom: bool = False) -> Preset:
        """The preset with what depends on the data settled; errors for settings that do not apply.

        Args:
            data: the training data.
            preset: the named preset with the caller's overrides.
            given: the overrides the caller passed (name -> value), to tell a choice from a default.
            custom: the caller passed their own ``model=``.
        """
        if custom:
            raise ConfigError(f"preset {preset.name!r} builds its own {self.name!r} model; your own model= trains "
                              "with a rating preset (e.g. 'fast')")
        self.check_implicit(data, preset)
        if self.fields is not None:
            schedule = {"bs", "epochs", "lr", "wd", "optimizer", "loader"}
            wrong = sorted(k for k in given if k not in self.fields | schedule)
            if wrong:
                raise ConfigError(f"{', '.join(wrong)} do(es) not apply to preset {preset.name!r} (kind "
                                  f"{self.name!r}); it reads {', '.join(sorted(self.fields | schedule))}")
        if preset.optimizer == "auto":
            preset = preset.replace(optimizer="adamw")
        from ._feature_settle import settle_features

        return settle_features(data, preset)  # says so when the data's declared features go unused

    def memory(self, data: CollabData, preset: Preset) -> int:
        """Bytes the model's weights, their gradients and two optimizer states take (16 a parameter),
        which :func:`cflearn.collab_learner` checks against this machine's memory before building
        anything. The default counts a user table and an item table of ``n_factors`` and a bias each."""
        return 16 * (len(data.users) + len(data.items)) * (table_width(preset) + 1)

    def describe(self, preset: Preset) -> str:
        """One line of how the preset trains, for ``cflearn presets``."""
        return schedule_line(preset, str(preset.bs), f"{preset.n_factors} factors{on_interactions(preset)}")

    def training_note(self, preset: Preset) -> str:
        """What ``cflearn fit``'s training line says of the settled preset's model (``""``: nothing)."""
        return ""

    def check_implicit(self, data: CollabData, preset: Preset) -> None:
        """A kind that predicts ratings (``implicit = False``) refuses interactions without ratings."""
        if data.implicit and not self.implicit:
            raise ConfigError(f"the data is implicit (interactions, no ratings) and preset {preset.name!r} predicts "
                              "ratings; train the default preset ('dual', which trains its ranking head alone on "
                              "interactions) or preset='rank'")

    def build(self, data: CollabData, preset: Preset, *, device: torch.device, seed: int | None,
              y_range: tuple[float, float] | None, shard: tuple[int, int] = (0, 1)) -> Built:
        """The learner's parts, under the caller's seeded generator (draw weights with ``torch``'s).

        Args:
            data: the training data.
            preset: the settled preset.
            device: where the loaders put batches.
            seed: seeds shuffling (``None``: unseeded).
            y_range: the sigmoid range of ratings, or ``None`` for a ranking kind.
            shard: ``(rank, world)`` under data-parallel training.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def table_width(preset: Preset) -> int:
    """The widest table row of a preset's model (its factors, or the widest of an NN's embeddings)."""
    return max([preset.n_factors, *dict(preset.emb_szs or {}).values()])


def epochs_words(preset: Preset) -> str:
    """``25 epochs at most (a budget of about 300 steps, at least 5)``, or ``10 epochs``."""
    return f"{preset.epochs} epochs" + (f" at most (a budget of about {preset.step_budget} steps, at least 5)"
                                        if preset.step_budget else "")


def on_interactions(preset: Preset) -> str:
    return f" ({preset.implicit_factors} on interactions)" if preset.implicit_factors else ""


def schedule_line(preset: Preset, batch: str, size: str) -> str:
    """What :meth:`Kind.describe` says: the kind, the schedule and the model's size."""
    return (f"kind {preset.kind}; bs {batch}, {epochs_words(preset)}, lr {preset.lr:g}, wd {preset.wd:g}, "
            f"row_l2 {preset.row_l2:g}, {size}, {preset.loader} loader")


KINDS: dict[str, Kind] = {}
"""Registered kinds by name (the built-in ones are registered on first lookup)."""


def one_process_only(preset: Preset, kind: Kind | None = None) -> str | None:
    """Why ``preset`` cannot train data-parallel (one line, with the way out), or ``None`` when it can: asked of
    its kind (``Kind.distributed``; ``kind``: the one that builds it, default the preset's) and of its loaders
    (fastai's own are not sharded). The command line asks before it starts any process, the factory in each."""
    kind = get_kind(preset.kind) if kind is None else kind
    if not kind.distributed:
        return (f"preset {preset.name!r} trains in one process (its model kind {kind.name!r} is not sharded); run it "
                "without torchrun / --nproc, or train a preset whose kind is (dual, rank, fast, best) in several")
    if preset.loader != "fast":
        return (f"preset {preset.name!r} uses fastai's own loaders, which cflearn does not shard across processes; "
                "train in several processes with a preset on cflearn's loaders (dual, rank, fast, best, fast_nn)")
    return None


def register(kind: Kind, *presets: Preset, replace: bool = False) -> Kind:
    """Register a kind (and presets that train it) by its name.

    Its saved models become loadable by :func:`cflearn.load` (:func:`build_model`), and each preset is added to
    :data:`cflearn.PRESETS` (so ``collab_learner(data, name)`` and ``cflearn fit --preset name``
    find it).

    Args:
        kind: an instance of a :class:`Kind` subclass with a ``name``.
        *presets: presets of this kind (``Preset.kind == kind.name``).
        replace: allow replacing a kind or preset of the same name (else an error).
    """
    from ._presets import BUILTIN_KINDS

    if not isinstance(kind, Kind) or not kind.name:
        raise ConfigError(f"register needs an instance of a cflearn.kinds.Kind subclass with a name, got {kind!r}")
    if kind.model_class is not None and not callable(getattr(kind.model_class, "from_config", None)):
        what = getattr(kind.model_class, "__name__", kind.model_class)
        raise ConfigError(f"kind {kind.name!r}: its model_class {what!r} needs a from_config(config) classmethod to "
                          "be rebuilt from a saved file")
    if kind.name in BUILTIN_KINDS and type(kind).__module__ not in _BUILTIN:  # reserved, loaded yet or not
        raise ConfigError(f"kind name {kind.name!r} is reserved for cflearn's own ({', '.join(BUILTIN_KINDS)}); "
                          "give your kind another name")
    if not replace and kind.name in KINDS and type(KINDS[kind.name]) is not type(kind):
        raise ConfigError(f"a kind named {kind.name!r} is registered already ({KINDS[kind.name]!r}); pass "
                          "replace=True to replace it")
    for p in presets:
        if not isinstance(p, Preset) or p.kind != kind.name:
            raise ConfigError(f"preset {getattr(p, 'name', p)!r} must be a cflearn.Preset with kind={kind.name!r}")
        if not replace and p.name in PRESETS and PRESETS[p.name] != p:
            raise ConfigError(f"a preset named {p.name!r} exists already; pass replace=True or choose another name")
    KINDS[kind.name] = kind
    for p in presets:
        PRESETS[p.name] = p
    return kind


def unregister(name: str) -> None:
    """Remove a registered kind, its presets and its saved-model class (cflearn's own kinds stay)."""
    from ._presets import BUILTIN_KINDS

    if name in BUILTIN_KINDS:
        raise ConfigError(f"kind {name!r} is one of cflearn's own ({', '.join(BUILTIN_KINDS)}); it stays registered")
    if name not in KINDS:
        raise ConfigError(f"no kind named {name!r} is registered{closest(name, KINDS)}")
    del KINDS[name]
    for preset in [p for p in PRESETS.values() if p.kind == name]:
        del PRESETS[preset.name]


def get_kind(name: str) -> Kind:
    """The registered kind called ``name`` (a :class:`cflearn.ConfigError` names the registered ones)."""
    for module in _BUILTIN:
        importlib.import_module(module)
    if name not in KINDS:
        raise ConfigError(f"unknown model kind {name!r}{closest(name, KINDS)}; registered kinds: "
                          f"{', '.join(KINDS)} (cflearn.kinds.register adds one)")
    return KINDS[name]


def build_model(config: dict[str, Any]) -> nn.Module:
    """An untrained model from :meth:`cflearn.models.Contract.config`'s output, built by the class of the
    registered kind its ``"kind"`` names (``ValueError`` for an unknown kind, or one without a class)."""
    name = config.get("kind")
    if not isinstance(name, str):
        raise ValueError(f"a model config names its kind, got {name!r}")
    # a registered kind answers; cflearn's own are found by their model class's `kind` without importing the
    # kinds' modules (they import fastai's training side, which loading a model never needs)
    cls = KINDS[name].saved_class() if name in KINDS else _model_class(name)
    if cls is None:
        raise ValueError(f"unknown model kind {name!r}")
    rebuild: Any = cls.from_config  # type: ignore[attr-defined]  # register checked it has one
    model: nn.Module = rebuild(config)
    return model


def _model_class(name: str) -> type | None:
    """The model class of cflearn's own kind ``name``: the :class:`cflearn.models.Contract` subclass whose
    ``kind`` it is; when none is loaded, once more after :mod:`cflearn.models` imports the class it
    loads on first use (fastai's NN)."""
    from .. import models

    def below(cls: type) -> list[type]:
        subs: list[type] = cls.__subclasses__()
        return [c for sub in subs for c in (sub, *below(sub))]

    def ours() -> type | None:
        found = [c for c in below(models.Contract) if c.__module__.startswith("cflearn.")]
        return next((c for c in found if getattr(c, "kind", "") == name), None)

    if ours() is None:
        models.NN  # noqa: B018  (imports fastai's NN, which then is a Contract subclass too)
    return ours()


def check_built(kind: Kind, built: object, preset: Preset) -> Built:
    """What ``kind.build`` returned, checked before anything trains on it; a :class:`ConfigError`
    naming the kind otherwise: a :class:`Built` holding an ``nn.Module`` whose saved config is JSON
    with a ``kind``, and, for a rating kind of your own, one score per row of a batch."""
    import json

    import torch
    from torch import nn

    where = f"kind {kind.name!r}"
    if not isinstance(built, Built):
        raise ConfigError(f"{where}: build() returned {type(built).__name__}, not a cflearn.kinds.Built")
    if not isinstance(built.model, nn.Module):
        raise ConfigError(f"{where}: Built.model is {type(built.model).__name__}, not a torch nn.Module")
    config = getattr(built.model, "config", None)
    if callable(config):
        value = config()
        if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
            raise ConfigError(f"{where}: its model's config() must be a dict with a 'kind' (the name load() rebuilds "
                              f"it by), got {type(value).__name__}" + (f" with keys {sorted(map(str, value))}"
                                                                       if isinstance(value, dict) else ""))
        for key, item in value.items():
            try:
                json.dumps(item, allow_nan=False)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: its model's config()[{key!r}] is {type(item).__name__}, which a saved "
                                  "file cannot hold; give numbers, text, booleans or lists of them") from None
    if type(kind).__module__ not in _BUILTIN and kind.rates:  # cflearn's own kinds have their own tests
        batch = built.dls.valid.one_batch()
        was = built.model.training
        built.model.eval()
        try:
            with torch.no_grad():
                out = built.model(*batch[:-1])
        finally:
            built.model.train(was)
        n = len(batch[-1])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) not in ((n,), (n, 1)):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"{where}: its model returned {shape} for a batch of {n} rows; a rating model returns "
                              f"one score per row, shape ({n},)")
    return built


def rating_loaders(data: CollabData, preset: Preset, *, device: torch.device, seed: int | None,
                   shard: tuple[int, int] = (0, 1)) -> DataLoaders:
    """The loaders of a model that takes ``(user, item)`` index pairs and predicts ratings: fastai's
    ``CollabDataLoaders`` recipe (``preset.loader == "fastai"``) or cflearn's tensor loaders."""
    from ..data._loaders import pair_loaders

    return pair_loaders(data, preset, device=device, seed=seed, shard=shard)
