"""Training the two-headed model (:class:`cflearn.models.Dual`): one loop, one loss, two heads.

Each step takes a batch of users for the ranking head (their vectors are scored against the
catalogue, as preset ``rank`` trains) and a slice of the ratings for the rating head (MSE, as
preset ``fast`` trains); an epoch is one pass over the users *and* one pass over the ratings, in
independent shuffles (ratings batched by user train a worse rating model: RMSE 0.878 against
0.868 on ml-latest-small). The loss is ``MSE + rank_weight x ranking loss``; the heads have no
parameters in common, so the weight sets the scale of the reported loss, not the balance of the
heads (Adam normalises each parameter's steps).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from fastai.learner import Learner, Metric

from .._errors import ConfigError
from ..data._data import relevance_level
from ..data._features import hybrid_data
from ..data._loaders import CollabLoaders, Decoder, TensorDataset, TensorLoader, _show, fast_loaders, pair_loaders
from ..models import DotBias, Dual, HybridDotBias, Ranker
from . import Built, Kind, epochs_words, on_interactions, register, schedule_line
from ._feature_settle import settle_features
from ._presets import ITEM_ITEM_MAX
from ._ranking import (
    ItemItemFit,
    RankKind,
    RankLoss,
    RankTargets,
    TargetItems,
    budget_epochs,
    check_dual,
    covered_items,
    ease_head,
    rank_targets,
    sample_items,
    train_steps,
    valid_bs,
)
from ._rating import RMSE, RatingLoss, hybrid_net, pair_schedule

if TYPE_CHECKING:
    from ..data._data import CollabData
    from ._presets import Preset

__all__ = ["DualLoader", "DualLoss", "DualRMSE", "DualRankingLoss", "DualKind", "dual_parts", "ItemItemFit",
           "choose_head", "ITEM_ITEM_MAX"]



class DualLoader(TensorLoader):
    """Batches ``((users, pairs), (target rows, ratings))``: a batch of users for the ranking head and
    the matching slice of this epoch's shuffled ratings for the rating head.

    The dataset holds the users (and their target rows, as :func:`cflearn.kinds._ranking.rank_loaders`);
    ``pairs`` / ``ratings`` are the rating rows. ``new(dataset)`` with another dataset (fastai's
    ``test_dl``) gives a plain :class:`cflearn.data._loaders.TensorLoader` over (user, item) pairs.
    """

    def __init__(self, dataset: TensorDataset | None = None, bs: int = 64, shuffle: bool = False,
                 pairs: torch.Tensor | None = None, ratings: torch.Tensor | None = None, **kwargs: Any):
        super().__init__(dataset, bs=bs, shuffle=shuffle, **kwargs)
        self.pairs = pairs if pairs is not None else torch.zeros(0, 2, dtype=torch.long)
        self.ratings = ratings if ratings is not None else torch.zeros(0)

    def __len__(self) -> int:
        users = math.ceil(self._rows() / self.bs) if self.dataset is not None else 0
        ratings = 0 if self.shuffle else math.ceil(len(self.pairs) / 65536)  # validation: every rating, bounded
        return max(1, users, ratings)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        ds, n_b = self.dataset, len(self)
        users, rows = ds.x, ds.y
        if self.shuffle:  # under data-parallel training, this rank's share of both orders (as TensorLoader's)
            rank, world = self.shard
            u_order = torch.randperm(len(users), generator=self._gen)
            r_order = torch.randperm(len(self.pairs), generator=self._gen)
            u_order, r_order = (o[: len(o) - len(o) % world][rank::world] for o in (u_order, r_order))
            u_order, r_order = u_order.to(users.device), r_order.to(self.pairs.device)
            n_u, n_r = len(u_order), len(r_order)
        else:
            n_u, n_r = len(users), len(self.pairs)
            u_order = torch.arange(n_u, device=users.device)
            r_order = torch.arange(n_r, device=self.pairs.device)
        for b in range(n_b):
            ui = u_order[b * n_u // n_b:(b + 1) * n_u // n_b]
            ri = r_order[b * n_r // n_b:(b + 1) * n_r // n_b]
            yield (users[ui].long(), self.pairs[ri].long()), (rows[ui].long(), self.ratings[ri])

    def to(self, device: Any) -> DualLoader:
        super().to(device)
        if self.device is not None:
            self.pairs, self.ratings = self.pairs.to(self.device), self.ratings.to(self.device)
        return self

    def new(self, dataset: TensorDataset | None = None, cls: type | None = None, **kwargs: Any) -> TensorLoader:
        if dataset is not None:  # another dataset (test_dl's pairs): a plain loader of (user, item) rows
            return TensorLoader.new(self, dataset, cls or TensorLoader, **kwargs)
        kwargs.setdefault("pairs", self.pairs)
        kwargs.setdefault("ratings", self.ratings)
        return super().new(None, cls, **kwargs)

    def show_batch(self, b: Sequence[Any] | None = None, max_n: int = 9, ctxs: Any = None, show: bool = True,
                   unique: bool = False, **kwargs: Any) -> pd.DataFrame | None:
        """The rating rows of a batch with raw IDs (and titles)."""
        b = self.one_batch() if b is None else b
        d = self._decoder()
        (_, pairs), (_, ratings) = b
        return _show(d.frame(pairs[:max_n], **{d.rating: ratings[:max_n]}), show)

    def show_results(self, b: Sequence[Any], out: Any, max_n: int = 9, ctxs: Any = None, show: bool = True,
                     **kwargs: Any) -> pd.DataFrame | None:
        d = self._decoder()
        (_, pairs), (_, ratings) = b
        preds = out[1] if isinstance(out, (tuple, list)) else out
        return _show(d.frame(pairs[:max_n], **{d.rating: ratings[:max_n]}, score=preds[:max_n]), show)


class DualLoss:
    """``MSE(rating head) + weight x ranking loss`` (fastai ``loss_func``); on a batch of (user, item)
    pairs (``test_dl``) it is the rating head's MSE alone."""

    def __init__(self, rank: RankLoss, weight: float):
        self.rank, self.weight = rank, float(weight)
        self.reduction = "mean"
        self.last_rank: torch.Tensor | None = None  # the last batch's ranking loss (for DualRankingLoss)

    def __call__(self, pred: Any, target: Any) -> torch.Tensor:
        if isinstance(pred, (tuple, list)):
            h, r = pred
            rows, y = target
            mse = F.mse_loss(r.view(-1), y.view(-1).to(r.dtype), reduction="sum") / max(1, len(y))
            ranking = self.rank(h, rows)
            self.last_rank = ranking.detach()
            return mse + self.weight * ranking
        return F.mse_loss(pred.view(-1), target.view(-1), reduction=self.reduction)

    def activation(self, x: Any) -> Any:
        return x[1] if isinstance(x, (tuple, list)) else x.reshape(-1)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def label(self) -> str:
        """What the loss is, for plots."""
        return f"MSE + {self.weight:g} x cross-entropy per user"

    def __repr__(self) -> str:
        return f"DualLoss(mse + {self.weight:g} x {self.rank!r})"


class DualRMSE(RMSE):
    """Validation RMSE of the rating head (its predictions are the second of the model's outputs)."""

    def ratings(self, learn: Learner) -> tuple[Any, Any]:
        pred, target = learn.pred, learn.yb[0]
        return (pred[1], target[1]) if isinstance(pred, (tuple, list)) else (pred, target)


class DualRankingLoss(Metric):
    """Validation loss of the ranking head alone (the ranking part of :class:`DualLoss`, per user): what
    :class:`cflearn.callbacks.KeepBest` and early stopping judge the ranking head by."""

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def accumulate(self, learn: Learner) -> None:
        last = getattr(learn.loss_func, "last_rank", None)
        if last is not None:
            n = len(learn.xb[0])
            self.total += float(last) * n
            self.count += n

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def name(self) -> str:
        return "ranking_loss"


def _users_of(targets: RankTargets, first: int, n: int) -> torch.Tensor:
    lens = targets.indptr[first + 1:first + n + 1] - targets.indptr[first:first + n]
    return torch.nonzero(lens > 0).view(-1)


class DualKind(Kind):
    """:class:`cflearn.models.Dual`: a rating head (the dot product, or the hybrid with the features
    declared on the data) and a ranking head (:class:`cflearn.models.Ranker`), trained in one loop.
    On implicit data it is its ranking head alone (kind ``"rank"``)."""

    name = "dual"
    model_class = Dual
    distributed = True  # each rank: its share of every step's users and ratings; the item-item head solved on each
    implicit = True
    fields = None  # check_dual names what applies

    def memory(self, data: CollabData, preset: Preset) -> int:
        """The rating head's user and item tables and the ranking head's three item tables."""
        return 16 * (len(data.users) + 4 * len(data.items)) * (preset.n_factors + 1)

    def describe(self, p: Preset) -> str:
        size = (f"rating head {p.n_factors} factors, ranking head {p.rank_factors or p.n_factors}"
                f"{on_interactions(p)}")
        if p.rank_head != "auto":
            return schedule_line(p, f"{p.bs} users", size)
        from ._presets import PRESETS

        fast = PRESETS["fast"]
        return (f"kind {p.kind}; item-item head (up to {ITEM_ITEM_MAX:,} items with {p.min_count} ratings): the rating "
                f"head trains as 'fast' (bs {fast.bs}, {fast.epochs} epochs, lr {fast.lr:g}); learned head (larger "
                f"catalogues): bs {p.bs} users, {epochs_words(p)}, lr {p.lr:g}; wd {p.wd:g}, row_l2 {p.row_l2:g}, "
                f"{size}")

    def training_note(self, preset: Preset) -> str:
        if preset.rank_head == "item_item":
            return "a rating head and a ranking head (EASE, solved in closed form: the catalogue is small)"
        return "a rating head and a ranking head"

    def settle(self, data: CollabData, p: Preset, given: dict[str, Any], *, custom: bool = False) -> Preset:
        head = choose_head(data, p, given)
        p = check_dual(p.replace(rank_head=head), given, custom=custom, implicit=data.implicit,
                       n_users=len(data.users) - 1)
        if head == "item_item":  # the ranking head is solved, not trained: the rating head trains alone, as 'fast'
            return settle_features(data, _rating_schedule(data, p, given))
        p = settle_features(data, p)
        if p.kind == "rank":  # implicit data: the ranking head alone
            return RankKind.schedule(data, p, epochs_given="epochs" in given)
        p = sample_items(p, len(data.users), len(data.items), softmax=True)  # a large catalogue: as preset rank
        return budget_epochs(p, train_steps(data, p.bs), given="epochs" in given)

    def build(self, data: CollabData, p: Preset, *, device: torch.device, seed: int | None,
              y_range: tuple[float, float] | None, shard: tuple[int, int] = (0, 1)) -> Built:
        codes: np.ndarray = data.codes
        users, items = data.users, data.items
        rating: DotBias | HybridDotBias
        if p.item_features or p.user_features:
            hyb = hybrid_data(data, p.item_features, p.user_features)
            users, items = hyb.users, hyb.items
            rating = hybrid_net(p, hyb, y_range)
            codes, parts = hyb.codes.numpy(), {part: hyb.tensors(part) for part in ("train", "valid")}
        else:
            rating = DotBias(p.n_factors, len(users), len(items), y_range=y_range)
            parts = {part: data.tensors(part) for part in ("train", "valid")}
        decoder = Decoder.of(data, users, items)
        if p.rank_head == "item_item":
            return _item_item_parts(data, p, rating, codes, parts, device=device, seed=seed, decoder=decoder,
                                    users=users, items=items, shard=shard)
        dls, net, loss, rank = dual_parts(data, p, rating, codes, parts, device=device, seed=seed, decoder=decoder,
                                          shard=shard)
        return Built(dls, net, loss_func=loss, callbacks=[TargetItems(rank)], metrics=[DualRMSE(), DualRankingLoss()],
                     users=users, items=items, rank_loss=rank)


def dual_parts(data: CollabData, p: Preset, rating: DotBias | HybridDotBias, codes: np.ndarray,
               tensors: dict[str, tuple[torch.Tensor, torch.Tensor]], *, device: torch.device, seed: int | None,
               decoder: Decoder, shard: tuple[int, int] = (0, 1)) -> tuple[CollabLoaders, Dual, DualLoss, RankLoss]:
    """Loaders, model and loss of the settled two-headed preset, given its rating head and the rows
    under the rating head's vocabularies (``codes``; ``tensors``: ``{"train": (x, y), "valid": (x, y)}``);
    ``shard``: ``(rank, world)`` under data-parallel training (each rank takes its share of every step)."""
    n_users, n_items = int(rating.u_weight.num_embeddings), int(rating.i_weight.num_embeddings)
    history, targets = rank_targets(data, p.below_weight, relevance_level(data.scale), codes=codes, n_users=n_users)
    ranker = Ranker(p.rank_factors or p.n_factors, n_users, n_items, history.indptr, history.items,
                    history.weights, dropout=p.dropout, seed=seed)
    model = Dual(rating, ranker)
    rank = RankLoss(model, targets, "softmax", negatives=p.negatives or 0, seed=seed, min_count=p.min_count)
    loss = DualLoss(rank, p.rank_weight)
    (xt, yt), (xv, yv) = tensors["train"], tensors["valid"]
    rated = torch.zeros(n_users, dtype=torch.bool)
    rated[xt[:, 0].long()] = True
    train_users = torch.nonzero(rated).view(-1)
    train_users = train_users[train_users > 0]
    valid_users = _users_of(targets, n_users, n_users)
    train = DualLoader(TensorDataset(train_users, train_users), bs=max(1, p.bs // shard[1]), shuffle=True, seed=seed,
                       decoder=decoder, pairs=xt, ratings=yt, shard=shard)
    valid = DualLoader(TensorDataset(valid_users, valid_users + n_users), bs=valid_bs(p.bs, rank.scored_items),
                       seed=seed, decoder=decoder, pairs=xv, ratings=yv)
    if shard[1] == 1 and len(train) != train_steps(data, p.bs):  # the step budget was settled on this count
        raise AssertionError("dual epochs were budgeted on another number of steps")
    return CollabLoaders(train, valid, decoder=decoder, device=device), model, loss, rank


register(DualKind())


def choose_head(data: CollabData, p: Preset, given: dict[str, Any]) -> str:
    """The dual preset's ranking head: ``"item_item"`` (closed-form EASE, :class:`cflearn.models.ItemItem`) or
    ``"learned"`` (:class:`cflearn.models.Ranker`); ``"auto"``: the item-item head on rated data while at most
    :data:`ITEM_ITEM_MAX` items have ``min_count`` training interactions, else the learned one. On interactions
    (no ratings) the learned head trains alone: the item-item head is solved beside a trained rating head."""
    if p.rank_head not in ("auto", "learned", "item_item"):
        raise ConfigError(f"rank_head must be 'auto', 'learned' or 'item_item', got {p.rank_head!r}" + (
            " (the blend of the learned head and EASE is preset 'rank''s)" if p.rank_head == "blend" else ""))
    if p.rank_head == "item_item" and data.implicit:
        raise ConfigError(f"rank_head='item_item' is solved beside preset {p.name!r}'s rating head, and the data holds "
                          "interactions (no ratings); use rank_head='learned' (or 'auto'), or preset 'rank'")
    if p.rank_head != "auto":
        return p.rank_head
    if data.implicit:
        return "learned"
    return "item_item" if covered_items(data, p.min_count) <= ITEM_ITEM_MAX else "learned"


_LEARNED_ONLY = ("rank_factors", "rank_weight", "dropout", "below_weight", "step_budget", "negatives")
"""Dual settings of the learned ranking head: with the item-item head they do not apply."""


def _rating_schedule(data: CollabData, p: Preset, given: dict[str, Any]) -> Preset:
    """The item-item dual's schedule: the rating head trains as preset ``fast`` does (its batch size, epochs
    and learning rate unless given; :func:`cflearn.kinds._rating.pair_schedule`'s batch cap and optimizer)."""
    from ._presets import PRESETS

    wrong = [k for k in _LEARNED_ONLY if k in given]
    if wrong:
        raise ConfigError(f"{', '.join(wrong)} {'applies' if len(wrong) == 1 else 'apply'} to the learned ranking "
                          f"head; preset {p.name!r} uses the "
                          "closed-form item-item head here (rank_head='item_item', chosen for catalogues up to "
                          f"{ITEM_ITEM_MAX:,} items): pass rank_head='learned' to train the learned head")
    fast = PRESETS["fast"]
    p = p.replace(**{k: getattr(fast, k) for k in ("bs", "epochs", "lr") if k not in given})
    return pair_schedule(data, p, given)


def _item_item_parts(data: CollabData, p: Preset, rating: DotBias | HybridDotBias, codes: np.ndarray,
                     tensors: dict[str, tuple[torch.Tensor, torch.Tensor]], *, device: torch.device,
                     seed: int | None, decoder: Decoder, users: Any, items: Any, shard: tuple[int, int]) -> Built:
    """A rating head trained with MSE on pairs (as preset ``fast``) beside an item-item ranking head solved
    before training (:class:`ItemItemFit`), under the rating head's vocabularies."""
    n_users, n_items = int(rating.u_weight.num_embeddings), int(rating.i_weight.num_embeddings)
    head, fit = ease_head(data, codes, n_users, n_items, p.min_count, seed)
    if isinstance(rating, DotBias) and users is data.users:
        dls = pair_loaders(data, p, device=device, seed=seed, shard=shard)
    else:
        dls = fast_loaders(*tensors["train"], *tensors["valid"], bs=p.bs, device=device, seed=seed, decoder=decoder,
                           shard=shard)
    return Built(dls, Dual(rating, head), loss_func=RatingLoss(), callbacks=[fit], users=users, items=items)
