"""The rating kinds: the dot product (``"dot"``), the hybrid with side features (``"hybrid"``), fastai's
EmbeddingNN (``"nn"``) and a user's own module: models of ``(user, item)`` pairs trained with MSE on
ratings, through fastai's ``CollabDataLoaders`` recipe or cflearn's tensor loaders."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from fastai.learner import Learner, Metric
from fastai.losses import MSELossFlat
from fastai.tabular.model import get_emb_sz, tabular_config
from torch import nn
from torch.nn import functional as F

from .._errors import ColumnError, ConfigError, ConfigWarning, caller_level, check_count, check_fraction, closest
from ..data._features import hybrid_data
from ..data._loaders import Decoder, fast_loaders, pair_loaders
from ..models import DotBias, HybridDotBias
from . import Built, Kind, register, schedule_line
from ._feature_settle import settle_features
from ._ranking import RANK_ONLY, check_ranking

if TYPE_CHECKING:
    from ..data._data import CollabData
    from ._presets import Preset

__all__ = ["RMSE", "RatingLoss", "DotKind", "HybridKind", "NNKind", "OwnModule", "pair_loaders", "pair_schedule"]


class RMSE(Metric):
    """Validation RMSE (:func:`cflearn.metrics.rmse`) as a running sum of squared errors, batch by batch
    (fastai's ``rmse`` keeps every prediction)."""

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def ratings(self, learn: Learner) -> tuple[Any, Any]:
        """The batch's predicted and true ratings (a two-headed model says which of its outputs they are)."""
        return learn.pred, learn.yb[0]

    def accumulate(self, learn: Learner) -> None:
        pred, target = self.ratings(learn)
        err = pred.detach().reshape(-1).float() - target.reshape(-1).float()
        self.total += float(err.pow(2).sum())
        self.count += err.numel()

    @property
    def value(self) -> float | None:
        return (self.total / self.count) ** 0.5 if self.count else None

    @property
    def name(self) -> str:
        return "rmse"


class RatingLoss:
    """Mean squared error of flattened tensors (fastai's ``MSELossFlat`` without its tensor casts).

    Like fastai's losses it has ``activation`` and ``decodes`` (used by ``get_preds`` and
    ``learn.predict``); ``activation`` keeps one score per row, also for a single row (which
    fastai's gathering would otherwise squeeze to a 0-d tensor). ``reduction`` is what fastai's
    ``get_preds(with_loss=True)`` switches to ``"none"`` for per-row losses.
    """

    reduction: str = "mean"

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred.view(-1), target.view(-1), reduction=self.reduction)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __repr__(self) -> str:
        return "RatingLoss(mse)"


def hybrid_net(p: Preset, hyb: Any, yr: tuple[float, float] | None) -> HybridDotBias:
    """The hybrid model of a preset with side features, on :func:`cflearn.data._features.hybrid_data`'s tables."""
    def side(f: Any) -> tuple[torch.Tensor, torch.Tensor, int] | None:
        return None if f is None else (f.idx, f.weight, len(f.names))

    fi, fu = hyb.item_features, hyb.user_features
    return HybridDotBias(p.n_factors, len(hyb.users), len(hyb.items), items=side(fi), users=side(fu),
                         trained_items=hyb.trained_items, trained_users=hyb.trained_users, y_range=yr,
                         feature_names=fi.names if fi else None, user_feature_names=fu.names if fu else None,
                         item_spec=fi.spec if fi else None, user_spec=fu.spec if fu else None,
                         item_cf=not p.content_based)


def pair_schedule(data: CollabData, p: Preset, given: dict[str, Any], *, custom: bool = False) -> Preset:
    """Batch size and optimizer of a model trained on rating pairs: on the fast loader, unless ``bs`` is given,
    at least ~16 steps per epoch on small tables; ``optimizer="auto"``: dense AdamW while the tables are small
    (or for your own module), lazy AdamW otherwise (dense updates cost O(table), lazy ones O(batch))."""
    if "bs" not in given and p.loader == "fast":
        p = p.replace(bs=min(p.bs, max(64, 2 ** int(np.log2(max(1, len(data.train_idx) // 16))))))
    if p.optimizer == "auto":
        small = len(data.users) + len(data.items) < 16 * p.bs
        p = p.replace(optimizer="adamw" if small or custom else "lazy")
    return p


class RatingKind(Kind):
    """What the rating kinds share: settling (batch cap, optimizer, side features) and MSE on pairs."""

    implicit = False
    distributed = True
    fields = None  # checked below, setting by setting

    def settle(self, data: CollabData, p: Preset, given: dict[str, Any], *, custom: bool = False) -> Preset:
        self.check_implicit(data, p)
        if "dropout" in given:
            if not p.use_nn:
                raise ConfigError(f"dropout applies to ranking presets (e.g. 'rank') and NN models (use_nn=True, "
                                  f"e.g. 'fast_nn'); preset {p.name!r} is a dot product: regularise it with row_l2= "
                                  "or wd=")
            check_fraction("dropout", p.dropout)
        if "rank_head" in given:
            raise ConfigError(f"rank_head applies to preset 'dual' (its ranking head); preset {p.name!r} predicts "
                              "ratings")
        if any(k in given for k in RANK_ONLY):
            check_ranking(p, given, custom=custom)  # says which ranking settings do not apply
        p = pair_schedule(data, p, given, custom=custom)
        if custom:
            if data.user_features or data.item_features:
                warnings.warn("your own model= takes (user, item) indices only, so the side features declared on "
                              "the data are not used", ConfigWarning, stacklevel=caller_level())
            return p.replace(item_features=(), user_features=())
        if not p.use_nn:
            for name in ("emb_szs", "layers"):
                if name in given and given[name]:
                    raise ConfigError(f"{name} only applies to NN models (use_nn=True); the dot-product model's "
                                      "size is n_factors")
        elif p.emb_szs:
            for key, size in dict(p.emb_szs).items():
                if key not in (data.user, data.item):
                    raise ColumnError(f"emb_szs key {key!r} is not the user or item column"
                                      f"{closest(str(key), [data.user, data.item])}; use "
                                      f"{{{data.user!r}: ..., {data.item!r}: ...}}")
                check_count(f"emb_szs[{key!r}]", size)
        return settle_features(data, p)

    @staticmethod
    def loss(p: Preset) -> Any:
        return MSELossFlat() if p.loader == "fastai" else RatingLoss()

    def training_note(self, preset: Preset) -> str:
        """A feature preset (kind ``hybrid``) that found no side features trains the plain model: said."""
        from ._presets import PRESETS

        named = PRESETS.get(preset.name)
        if named is not None and named.kind == "hybrid" and not (preset.item_features or preset.user_features):
            return "no side features to use, so the plain dot-product model (as preset 'fast')"
        return ""


class DotKind(RatingKind):
    """fastai's ``EmbeddingDotBias`` (:class:`cflearn.models.DotBias`): the course's model and ``fast``'s."""

    name = "dot"
    model_class: ClassVar[type | None] = DotBias

    def network(self, data: CollabData, p: Preset, dls: Any, y_range: tuple[float, float] | None) -> nn.Module:
        return DotBias.from_classes(p.n_factors, dls.classes, y_range=y_range)

    def build(self, data: CollabData, p: Preset, *, device: torch.device, seed: int | None,
              y_range: tuple[float, float] | None, shard: tuple[int, int] = (0, 1)) -> Built:
        dls = pair_loaders(data, p, device=device, seed=seed, shard=shard)
        return Built(dls, self.network(data, p, dls, y_range), loss_func=self.loss(p))


class NNKind(DotKind):
    """fastai's ``EmbeddingNN`` (:class:`cflearn.models.NN`), with fastai's embedding-size rule unless
    ``emb_szs`` says; ``dropout`` is fastai's ``ps`` after each hidden layer."""

    name = "nn"
    model_class: ClassVar[type | None] = None  # saved_class imports NN on first use (it imports fastai)

    def saved_class(self) -> type | None:
        from .. import models

        return models.NN  # cflearn.models imports it on first use

    def network(self, data: CollabData, p: Preset, dls: Any, y_range: tuple[float, float] | None) -> nn.Module:
        from ..models._nn import NN

        hidden = list(p.layers) or [p.n_factors]
        config = tabular_config(y_range=y_range, ps=[p.dropout] * len(hidden) if p.dropout else None)
        return NN(emb_szs=get_emb_sz(dls, dict(p.emb_szs or {})), layers=hidden, **config)

    def describe(self, preset: Preset) -> str:
        return schedule_line(preset, str(preset.bs), f"NN layers {list(preset.layers)}")


class OwnModule(DotKind):
    """A user's own ``nn.Module`` (``collab_learner(data, model=...)``) on a rating preset's loaders."""

    name = "custom"

    def __init__(self, module: nn.Module):
        self.module = module

    def network(self, data: CollabData, p: Preset, dls: Any, y_range: tuple[float, float] | None) -> nn.Module:
        return self.module


class HybridKind(RatingKind):
    """:class:`cflearn.models.HybridDotBias`: the dot product with user and item side features (``best``),
    or items as their features alone (``content``); IDs known only from metadata get rows too."""

    name = "hybrid"
    model_class = HybridDotBias

    def build(self, data: CollabData, p: Preset, *, device: torch.device, seed: int | None,
              y_range: tuple[float, float] | None, shard: tuple[int, int] = (0, 1)) -> Built:
        hyb = hybrid_data(data, p.item_features, p.user_features)
        decoder = Decoder.of(data, hyb.users, hyb.items)
        dls = fast_loaders(*hyb.tensors("train"), *hyb.tensors("valid"), bs=p.bs, device=device, seed=seed,
                           decoder=decoder, shard=shard)
        return Built(dls, hybrid_net(p, hyb, y_range), loss_func=RatingLoss(), users=hyb.users, items=hyb.items)


for _kind in (DotKind(), HybridKind(), NNKind()):
    register(_kind)
