"""Named training presets: small frozen dataclasses with the numbers that justify them."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal

from .._errors import ConfigError, closest

__all__ = ["Preset", "FeatureChoice", "PRESETS", "DEFAULT_PRESET", "BUILTIN_KINDS", "OVERRIDABLE", "ITEM_ITEM_MAX",
           "get_preset",
           "infer_kind", "y_range_for"]

ITEM_ITEM_MAX = 5000
"""``rank_head="auto"``: the closed-form item-item head while at most this many items have ``min_count``
training interactions (its ``B`` is that many squared floats: 100 MB at 5,000; a solve takes seconds), the
learned head above (its cost grows with the catalogue, not its square)."""

DEFAULT_PRESET = "dual"
"""The preset of :func:`cflearn.collab_learner`, ``cflearn fit`` and ``cflearn demo`` when none is named."""


BUILTIN_KINDS = ("dot", "hybrid", "nn", "rank", "dual")
"""The model kinds cflearn ships (:mod:`cflearn.kinds`); a preset of one of them follows its flags."""


@dataclasses.dataclass(frozen=True)
class FeatureChoice:
    """What :func:`cflearn.select_features` chose, carried by the settled preset.

    Attributes:
        report: the features tried, the inner-split RMSE of each choice and which one won (empty when
            the data were too small to hold rows out, or the features were named by the caller).
        user_feature_weight: how much a new user's metadata counts (0: the average user, 1: fully).
        new_users: the inner split that chose ``user_feature_weight`` (empty when not measured).
    """

    report: dict[str, Any] = dataclasses.field(default_factory=dict)
    user_feature_weight: float = 1.0
    new_users: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Preset:
    """Hyper-parameters and schedule of one way of training.

    Attributes:
        name: the preset's name.
        description: one line on what it is for.
        kind: the model kind it trains (:mod:`cflearn.kinds`): ``"dot"``, ``"hybrid"``, ``"nn"``,
            ``"rank"``, ``"dual"`` or a registered one. Left out (``""``), it follows the flags
            (:func:`infer_kind`); a built-in kind follows them when they are changed (``use_nn=True``
            turns ``"dot"`` into ``"nn"``).
        loader: ``"fastai"`` (fastai's ``CollabDataLoaders`` path, as in the course) or ``"fast"``
            (cflearn's tensor-slice loaders: same batches semantics, no per-batch pandas/collation).
        bs: batch size. On the fast loader, unless ``bs`` is given explicitly, it is capped at a
            power of two near 1/16 of the training rows (at least 64), so that small tables still
            get enough steps per epoch.
        epochs: epochs of ``fit_one_cycle``.
        lr: maximum learning rate of ``fit_one_cycle``.
        wd: fastai weight decay (decoupled, applied to every parameter each step).
        row_l2: L2 penalty on the factor rows a batch looks up (classic matrix-factorisation
            regularisation); 0 disables it.
        bias_l2: the same penalty on the bias rows.
        optimizer: ``"fastai"`` (fastai's own Adam, as in the course), ``"adamw"`` (PyTorch's
            vectorised AdamW, same maths with fastai's betas and eps, fewer Python calls per step) or
            ``"lazy"`` (:class:`cflearn.optim.LazyAdamW` on sparse embedding gradients: only the rows
            a batch touches are updated, so a step costs the same however large the tables are), or
            ``"auto"``: ``"adamw"`` while the user and item tables are small (fewer rows than 16
            batches), where dense vectorised updates are cheapest, else ``"lazy"``.
        n_factors: latent factors of the dot-product model.
        use_nn: use fastai's ``EmbeddingNN`` instead of the dot-product model.
        emb_szs: embedding sizes of the NN model by column name (``None``: fastai's rule).
        layers: hidden layer sizes of the NN model.
        item_features: item metadata columns (e.g. ``("genres",)``) for the hybrid model
            (:class:`cflearn.models.HybridDotBias`): multi-valued text (``|``), numbers and dates
            (quantile buckets), categories; ``year`` may come from a title ending in ``(1995)``.
            A preset's own list uses the columns the data has (with a warning for the others). Features
            declared on the data (``cflearn.from_df(..., item_features=...)``, which must all exist)
            replace a preset's own list; they are not a keyword of :func:`cflearn.collab_learner`.
        user_features: user metadata columns (age, gender, occupation) for the same hybrid model;
            a preset with side features (``best``, ``content``) uses those declared on the data.
        content_based: items are their features alone (no collaborative part): content-based
            recommendations, for comparison with collaborative and hybrid models.
        select_features: keep the preset's side features only if a model with them beats
            the plain model on an inner split of the training rows (10%, seeded), and weigh new
            users' metadata by how well it predicts held-out users. The check trains, so it is a
            step of its own: :func:`cflearn.select_features` runs it and returns the settled preset;
            :func:`cflearn.collab_learner` runs it before building when the preset has not been through it. The
            choice and its RMSEs are recorded in ``learn.cf.preset.feature_selection``. Under
            torchrun (several processes) the features are kept without the check.
        y_range_rule: ``"pad"``: (lowest - pad, highest + pad); ``"book"``: (min(0, lowest - pad),
            highest + pad), which is fastbook's ``(0, 5.5)`` on 1-5 and 0.5-5 star data.
        y_pad: padding of the rating scale; ``None`` means 0.5 on scales at least 2 wide, else 10%.
        loss: ``"mse"`` (predict ratings), or a ranking objective for :class:`cflearn.models.Ranker`
            trained on batches of users: ``"softmax"`` (each user's items against the catalogue)
            or ``"bpr"`` (each item against one random item); ``"dual"``: both heads of
            :class:`cflearn.models.Dual` in one loop (MSE for ratings + the softmax for lists; on
            implicit data, the ranking head alone).
        dropout: ranking models: share of a user's items hidden from the encoder in each step; NN
            models (``use_nn``): dropout after each hidden layer (fastai's ``ps``).
        below_weight: ranking models on explicit ratings: weight, as a training target, of items
            rated below the relevance level (80% up the scale: 4 of 5 stars); those at or above
            it weigh 1.
        negatives: ranking softmax: items sampled per batch; 0: the full catalogue; ``None``: the full
            catalogue while it is small (up to 20,000 items, and steps per epoch x items up to 5M, as
            on MovieLens-small), else 2,048 sampled with sparse (``lazy``) updates.
        min_count: ranking softmax over the full catalogue: only items with at least this many
            training interactions are scored in training (the rarer ones rank below them, as EASE
            leaves them out); the softmax's cost falls with the catalogue it scores.
        rank_weight: ``loss="dual"``: weight of the ranking loss beside the rating MSE.
        rank_factors: ``loss="dual"``: size of the ranking head's vectors (``None``: ``n_factors``,
            which is the rating head's).
        implicit_factors: ranking and dual presets on interactions (no ratings): the ranking head's size there
            (``None``: ``n_factors``, or the dual preset's ``rank_factors``, as on ratings). 128 in
            ``dual`` and ``rank``: on the suite's interaction sets it ranks better than 64 (NDCG@10 1.00-1.07x
            64's on inner splits), where on rated sets it ranks worse (``bench/tune_suite.py``).
        rank_head: ``loss="dual"``: its ranking head: ``"learned"`` (:class:`cflearn.models.Ranker`, trained
            with the rating head), ``"item_item"`` (:class:`cflearn.models.ItemItem`: EASE, solved in closed
            form before the rating head trains as preset ``fast`` does) or ``"auto"``: the item-item head on
            rated data while at most 5,000 items have ``min_count`` training interactions (its matrix grows
            with their square), the learned head above and on interactions (``bench/suite.py``). Ranking
            presets (``rank``): ``"learned"`` (:class:`cflearn.models.Ranker` alone), ``"blend"``
            (:class:`cflearn.models.Blend`: the learned head and EASE, each scaled to unit spread, the learned one
            weighted 4) or ``"auto"``: the blend while at most 5,000 items have ``min_count`` training
            interactions, on ratings and interactions, else the learned head (``bench/blend.py``).
        step_budget: ranking and dual presets, when ``epochs`` is not given: at most about this
            many optimizer steps (epochs = ``min(epochs, max(5, budget / steps per epoch))``), so a
            table with many users trains fewer epochs of more steps each (each epoch costs users x
            scored items x factors; on ml-latest-small the budget leaves the preset's epochs).
        y_range: the sigmoid range its caller chose (``collab_learner(..., y_range=(0, 5.5))``); ``None``:
            ``y_range_rule`` and ``y_pad`` on the data's scale.
        chosen: set by :func:`cflearn.select_features`: the side features have been chosen (the
            preset's lists are the choice) and how much new users' metadata counts.

    A trained model's record is its settled preset (``learn.cf.preset``, saved with the model and loaded
    as a ``Preset`` by :func:`cflearn.load`).
    """

    name: str
    description: str
    kind: str = ""
    loader: Literal["fastai", "fast"] = "fast"
    bs: int = 64
    epochs: int = 5
    lr: float = 5e-3
    wd: float = 0.1
    row_l2: float = 0.0
    bias_l2: float = 0.0
    optimizer: Literal["fastai", "adamw", "lazy", "auto"] = "fastai"
    n_factors: int = 50
    use_nn: bool = False
    emb_szs: dict[str, int] | None = None
    layers: tuple[int, ...] = ()
    item_features: tuple[str, ...] = ()
    user_features: tuple[str, ...] = ()
    content_based: bool = False
    select_features: bool = False
    y_range_rule: Literal["pad", "book"] = "pad"
    y_pad: float | None = None
    loss: Literal["mse", "softmax", "bpr", "dual"] = "mse"
    dropout: float = 0.0
    below_weight: float = 1.0
    negatives: int | None = None
    min_count: int = 1
    rank_weight: float = 1.0
    rank_factors: int | None = None
    implicit_factors: int | None = None
    rank_head: Literal["auto", "learned", "item_item", "blend"] = "learned"
    step_budget: int | None = None
    y_range: tuple[float, float] | None = None
    chosen: FeatureChoice | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", infer_kind(self))

    @property
    def ranking(self) -> bool:
        """Whether the preset trains a ranking model only (a ranking ``loss``)."""
        return self.loss in ("softmax", "bpr")

    @property
    def dual(self) -> bool:
        """Whether the preset trains both heads (:class:`cflearn.models.Dual`)."""
        return self.loss == "dual"

    @property
    def feature_selection(self) -> dict[str, Any]:
        """The feature check's report (:func:`cflearn.select_features`): the features tried, their inner
        RMSEs and the choice; empty when none ran."""
        return dict(self.chosen.report) if self.chosen is not None else {}

    @property
    def new_user_features(self) -> dict[str, Any]:
        """The inner split that chose how much new users' metadata counts; empty when none ran."""
        return dict(self.chosen.new_users) if self.chosen is not None else {}

    def replace(self, **changes: Any) -> Preset:
        """A copy with some fields changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown preset field(s) {sorted(unknown)}")
        for key in ("layers", "item_features", "user_features", "y_range"):
            if key in changes:
                changes[key] = tuple(changes[key])
        if self.kind in BUILTIN_KINDS and "kind" not in changes and set(changes) & set(_KIND_FLAGS):
            changes["kind"] = ""  # a built-in kind follows its flags
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields (with the feature choice's records, as saved with a model)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "chosen"}
        d["layers"] = list(self.layers)
        d["item_features"] = list(self.item_features)
        d["user_features"] = list(self.user_features)
        d["emb_szs"] = dict(self.emb_szs) if self.emb_szs is not None else None
        d["y_range"] = list(self.y_range) if self.y_range is not None else None
        if self.chosen is not None and self.chosen.report:
            d["feature_selection"] = self.chosen.report
        if self.chosen is not None and self.chosen.new_users:
            d["new_user_features"] = self.chosen.new_users
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preset:
        """The preset :meth:`to_dict` wrote (as a saved model holds it), each field's type checked
        (``ValueError`` naming the field). Fields this version does not know are left out; a missing
        one takes its default (files from older versions)."""
        if not isinstance(d, dict):
            raise ValueError(f"a preset must be a JSON object, got {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {"name": d.get("name", "saved"), "description": d.get("description", "")}
        for f in dataclasses.fields(cls):
            if f.name in d and f.name != "chosen":
                values[f.name] = d[f.name]
        if values.get("y_range") is None and d.get("y_range_given") is not None:  # format 6's name
            values["y_range"] = d["y_range_given"]
        for name, value in values.items():
            _check_field(name, value, hints[name])
        for key in ("layers", "item_features", "user_features", "y_range"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        report, new_users = d.get("feature_selection") or {}, d.get("new_user_features") or {}
        for name, value in (("feature_selection", report), ("new_user_features", new_users)):
            if not isinstance(value, dict):
                raise ValueError(f"the preset's {name} must be a JSON object, got {type(value).__name__}")
        if report or new_users:
            weight = new_users.get("weight", 1.0)
            _check_field("new_user_features.weight", weight, float)
            values["chosen"] = FeatureChoice(report, float(weight), new_users)
        return cls(**values)


def _check_field(name: str, value: Any, hint: Any) -> None:
    """``ValueError`` unless ``value`` (from JSON) fits the type ``hint`` of a :class:`Preset` field."""
    if not _fits(value, hint):
        raise ValueError(f"the preset's {name} is {value!r}, not a {_words(hint)}")


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    return False


def _words(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


OVERRIDABLE = frozenset(f.name for f in dataclasses.fields(Preset)) - {"name", "description", "chosen", "y_range",
                                                                     "item_features", "user_features"}
"""The :class:`Preset` fields that :func:`cflearn.collab_learner` and :func:`cflearn.select_features` take as
keyword overrides (``y_range`` is :func:`cflearn.collab_learner`'s own argument; side features are declared
on the data, :func:`cflearn.from_df`)."""

_KIND_FLAGS = ("loss", "use_nn", "item_features", "user_features", "content_based")
"""The fields that decide a built-in kind."""


def infer_kind(p: Preset) -> str:
    """The built-in kind a preset's flags describe: ``loss`` ``"dual"`` -> ``"dual"``, a ranking loss ->
    ``"rank"``, ``use_nn`` -> ``"nn"``, side features or ``content_based`` -> ``"hybrid"``, else ``"dot"``."""
    if p.loss == "dual":
        return "dual"
    if p.loss in ("softmax", "bpr"):
        return "rank"
    if p.use_nn:
        return "nn"
    return "hybrid" if p.item_features or p.user_features or p.content_based else "dot"


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("dual", "default: ratings and top-N lists from one model: a rating head (dot product, MSE) and a "
               "ranking head: EASE solved in closed form while at most 5,000 items have 5 ratings (the rating head "
               "then trains as 'fast'), else a user as the bag of their items with a softmax over the catalogue, "
               "trained together with the rating head",
               kind="dual", loader="fast", bs=64, epochs=25, lr=2e-2, wd=0.0, row_l2=0.15, bias_l2=0.02,
               n_factors=64, rank_factors=64, optimizer="auto", loss="dual", dropout=0.7, below_weight=0.0,
               min_count=5, step_budget=300, select_features=True, rank_head="auto", implicit_factors=128),
        Preset("book", "fastbook chapter 8, through fastai's CollabDataLoaders: bs 64, 5 epochs, lr 5e-3, wd 0.1",
               kind="dot", loader="fastai", bs=64, epochs=5, lr=5e-3, wd=0.1, n_factors=50, y_range_rule="book"),
        Preset("book_nn", "fastbook chapter 8's EmbeddingNN (layers [100]), through fastai's CollabDataLoaders",
               kind="nn", loader="fastai", bs=64, epochs=5, lr=5e-3, wd=0.1, use_nn=True, layers=(100,),
               y_range_rule="book"),
        Preset("fast", "ratings: dot product, large batches, L2 on the rows each batch uses, lazy AdamW",
               kind="dot", loader="fast", bs=4096, epochs=10, lr=3e-2, wd=0.0, row_l2=0.15, bias_l2=0.02,
               n_factors=64, optimizer="auto"),
        Preset("best", "'fast' plus the side features the data has (items: genres, year, tags; users: the declared "
               "columns) in a hybrid model, kept when they help on an inner split of the training rows",
               kind="hybrid", loader="fast", bs=4096, epochs=10, lr=3e-2, wd=0.0, row_l2=0.15, bias_l2=0.05,
               n_factors=64, optimizer="auto", item_features=("genres", "year", "tags"), select_features=True),
        Preset("content", "content-based: an item is its features alone (genres, year, tags, or the declared "
               "columns); each user learns a taste for them", kind="hybrid", loader="fast", bs=4096, epochs=10,
               lr=3e-2, wd=0.0, row_l2=0.15, bias_l2=0.05, n_factors=64, optimizer="auto",
               item_features=("genres", "year", "tags"), content_based=True),
        Preset("fast_nn", "fastai's EmbeddingNN on the fast loader, strong weight decay",
               kind="nn", loader="fast", bs=2048, epochs=5, lr=1e-2, wd=8.0, use_nn=True, layers=(64,)),
        Preset("best_nn", "EmbeddingNN with smaller batches: slower than fast_nn, more accurate",
               kind="nn", loader="fast", bs=512, epochs=5, lr=1e-2, wd=4.0, use_nn=True, layers=(64,)),
        Preset("rank", "top-N lists only: a user is the bag of their items, softmax over the catalogue (scores are "
               "not ratings), blended with EASE while the catalogue is small", kind="rank", loader="fast", bs=64,
               epochs=25, lr=2e-2, wd=0.0, n_factors=64, optimizer="auto", loss="softmax", dropout=0.7,
               below_weight=0.0, min_count=5, step_budget=300, implicit_factors=128, rank_head="auto"),
        Preset("rank_bpr", "'rank' trained with BPR (each item against one random item), for comparison",
               kind="rank", loader="fast", bs=64, epochs=30, lr=1e-2, wd=0.0, n_factors=200, optimizer="auto",
               loss="bpr", dropout=0.5, below_weight=0.0),
    ]
}


def get_preset(preset: str | Preset) -> Preset:
    """Look a preset up by name (a :class:`Preset` is returned as is)."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}{closest(str(preset), PRESETS)}; "
                          f"choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def y_range_for(scale: tuple[float, float], rule: Literal["pad", "book"] = "pad",
                pad: float | None = None) -> tuple[float, float]:
    """The sigmoid range for a rating scale (see :class:`Preset` for the rules)."""
    lo, hi = scale
    if pad is None:
        pad = 0.5 if hi - lo >= 2 else 0.1 * max(hi - lo, 1.0)
    if rule == "book":
        return (min(0.0, lo - pad), hi + pad)
    if rule == "pad":
        return (lo - pad, hi + pad)
    raise ConfigError(f"y_range_rule must be 'pad' or 'book', got {rule!r}")
