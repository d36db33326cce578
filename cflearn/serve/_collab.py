"""CollabModel: a trained network together with what it needs to answer in raw IDs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn

from .._errors import ConfigError
from ..data._vocab import Vocab
from ..models import Contract, contract
from ..train._distributed import unwrap

if TYPE_CHECKING:
    from fastai.learner import Learner

    from ..data._data import CollabData
    from ..kinds._presets import Preset

__all__ = ["CollabModel", "as_collab"]


@dataclasses.dataclass(eq=False)
class CollabModel:
    """A collaborative-filtering model with its vocabularies: raw IDs in, raw IDs out.

    ``cflearn.collab_learner`` attaches one to the fastai ``Learner`` as ``learn.cf`` (sharing the
    same ``nn.Module``); ``cflearn.load`` returns one. Every cflearn function that takes a learner
    takes a ``CollabModel`` too.

    Attributes:
        model: the network: a :mod:`cflearn.models` kind or the user's own ``nn.Module``.
        users, items: vocabularies (index 0 = unknown ID).
        scale: ``(lowest, highest)`` rating of the training data.
        preset: the settled :class:`cflearn.Preset` the model trains (or trained) with: the model's
            record, saved with it and loaded as a ``Preset`` (its ``feature_selection`` and
            ``new_user_features`` hold the feature check's reports).
        columns: the user/item/rating/timestamp column names of the training table.
        global_mean: mean training rating.
        item_info: optional item metadata indexed by raw item ID.
        data: the training :class:`CollabData` (``None`` for a loaded model).
        fit_seconds: wall time of the last :func:`cflearn.fit`.
        fit_threads: the threads it trained with and why (:class:`cflearn.train._threads.Threads`).
        seen_indptr, seen_items: CSR lists of the items each user rated in training.
        item_counts: training ratings per item (row 0: unknown).
        user_means, item_means: mean training rating of each user / item (NaN without ratings).
        implicit: trained on implicit interactions (no ratings).
        fold_noise: the squared error fold-in expects on a new rating (see
            :func:`cflearn.serve._fold.rating_noise`; computed on first use, saved with the model).
        fold_lists: how the model's own top-10 lists compare with the popularity chart for known
            users (NDCG@10 ratio on validation rows, :func:`cflearn.serve._recommend.lists_vs_chart`): a model whose
            lists come from predicted ratings and lose to the chart gives new users the chart.
        fold_prior: fold-in's prior from the trained users (:func:`cflearn.serve._fold.user_prior`),
            computed on first use; both are cleared when the model trains again.
        trained: whether a training epoch has completed (set by the learner's callbacks; a loaded
            model is trained).
        epochs_run, kept_epoch: after :func:`cflearn.fit`: the epochs trained and the one whose
            weights the model holds (the best one with ``keep_best`` / ``patience``, else the last).
        kept_heads: a two-headed model with a learned ranking head, kept by ``keep_best`` /
            ``patience``: each head's epoch (``{"rating": 9, "ranking": 12}``), each judged by its own
            validation metric; ``kept_epoch`` is then the later one.
    """

    model: nn.Module
    users: Vocab
    items: Vocab
    scale: tuple[float, float]
    preset: Preset
    columns: dict[str, str | None]
    global_mean: float
    item_info: pd.DataFrame | None = None
    data: CollabData | None = None
    fit_seconds: float | None = None
    fit_threads: Any = None
    seen_indptr: torch.Tensor | None = None
    seen_items: torch.Tensor | None = None
    item_counts: torch.Tensor | None = None
    user_means: torch.Tensor | None = None
    item_means: torch.Tensor | None = None
    trained: bool = False
    implicit: bool = False
    fold_noise: float | None = None
    fold_prior: Any = None
    fold_lists: float | None = None
    epochs_run: int | None = None
    kept_epoch: int | None = None
    kept_heads: dict[str, int] | None = None

    @property
    def contract(self) -> Contract:
        """The model's :class:`cflearn.models.Contract` (tables, output transform, config)."""
        return contract(self.model)

    def require_trained(self) -> None:
        """Raise :class:`cflearn.ConfigError` if no training epoch has completed yet."""
        if not self.trained:
            raise ConfigError("this model has not been trained: call cflearn.fit(learn) first "
                              "(or learn.fit_one_cycle(...))")

    def seen(self, user_index: int) -> torch.Tensor:
        """Item indices the user rated in training (empty for unknown users or without the lists)."""
        if self.seen_indptr is None or self.seen_items is None or user_index <= 0 or \
                user_index >= len(self.seen_indptr) - 1:
            return torch.zeros(0, dtype=torch.long)
        return self.seen_items[self.seen_indptr[user_index]:self.seen_indptr[user_index + 1]].long()

    def set_training_rows(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor | None = None) -> None:
        """Record which items each user rated in training, how often each item was rated and, with
        ``ratings``, each user's and item's mean rating.

        They are saved with the model, so a loaded model can exclude seen items, rank by
        popularity and be interpreted without the training data.
        """
        by_item = torch.argsort(items, stable=True)  # each user's items in order (a file check relies on it);
        order = by_item[torch.argsort(users[by_item], stable=True)]  # int32 in: 20M ratings stay cheap
        counts = torch.bincount(users, minlength=len(self.users))
        self.seen_indptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        self.seen_items = items[order].to(torch.int32)
        self.item_counts = torch.bincount(items, minlength=len(self.items))
        if ratings is not None:
            r = ratings.double()
            with torch.no_grad():
                self.user_means = (torch.bincount(users, r, minlength=len(self.users)) / counts).float()
                self.item_means = (torch.bincount(items, r, minlength=len(self.items)) / self.item_counts).float()

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        kind = type(self.model).__name__
        return (f"CollabModel({kind}, {len(self.users) - 1:,} users, {len(self.items) - 1:,} items, "
                f"preset {self.preset.name!r}, scale {self.scale[0]:g}-{self.scale[1]:g})")


def as_collab(obj: Learner | CollabModel) -> CollabModel:
    """The :class:`CollabModel` of a cflearn learner (or the model itself)."""
    if isinstance(obj, CollabModel):
        return obj
    cf = getattr(obj, "cf", None)
    if isinstance(cf, CollabModel):
        model = getattr(obj, "model", None)
        model = unwrap(model) if isinstance(model, nn.Module) else model
        if isinstance(model, nn.Module) and model is not cf.model:  # the user swapped learn.model
            cf.model = model
        return cf
    raise ConfigError(f"expected a learner from cflearn.collab_learner or a model from cflearn.load, got "
                      f"{type(obj).__name__}; a plain fastai Learner has no ID vocabularies attached: build it with "
                      "cflearn.collab_learner(data, model=your_module)")
