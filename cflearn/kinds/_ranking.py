"""Training to rank: user-row loaders and the losses that score a user against the catalogue.

A ranking model (:class:`cflearn.models.Ranker`) is trained on batches of *users*: the loader
yields user indices, the model turns them into vectors, and :class:`RankLoss` scores each vector
against the items (all of them, a sample, or one negative per positive) and rewards the user's own
items. Targets are CSR rows (items and weights): rows ``0..n_users-1`` are the training items of
each user, rows ``n_users..`` the validation items, so one loss serves both loaders.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback

from .._errors import ConfigError, check_count, check_fraction, check_number
from ..data._data import relevance_level
from ..data._loaders import CollabLoaders, Decoder, TensorDataset, TensorLoader
from ..evaluation._baselines import ease_solution
from ..models import Blend, ItemItem, Ranker, csr_rows, item_item_head, ranking_head
from ..train._distributed import unwrap
from . import Built, Kind, on_interactions, register, schedule_line
from ._feature_settle import settle_features
from ._presets import ITEM_ITEM_MAX

if TYPE_CHECKING:
    from torch import nn

    from ..data._data import CollabData
    from ._presets import Preset

__all__ = ["RankLoss", "TargetItems", "RankTargets", "rank_targets", "rank_loaders", "valid_bs", "target_weights",
           "RankLossKind", "check_ranking", "check_dual", "check_rated_factors", "ranking_parts", "RANK_ONLY",
           "RankKind", "sample_items"]

RankLossKind = Literal["softmax", "bpr"]
FULL_SOFTMAX_ITEMS = 20_000
"""Catalogues up to this size may get the full softmax (see :func:`auto_negatives`)."""
FULL_SOFTMAX_COST = 5_000_000
"""... when steps per epoch x items stays below this (each full-softmax step updates every item row)."""


@dataclasses.dataclass
class RankTargets:
    """CSR rows of target items and weights (``indptr`` has one more entry than rows)."""

    indptr: torch.Tensor
    items: torch.Tensor
    weights: torch.Tensor

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(row position in the batch, item, weight)`` of every target of ``rows``."""
        pos, _, lens = csr_rows(self.indptr, rows)
        which = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lens)
        return which, self.items[pos].long(), self.weights[pos]

    def to(self, device: torch.device) -> RankTargets:
        return RankTargets(self.indptr.to(device), self.items.to(device), self.weights.to(device))


def target_weights(data: CollabData, idx: np.ndarray, below_weight: float, relevance: float) -> np.ndarray:
    """How much each row counts as a target: implicit weights enter as ``log2(1 + weight)`` (a
    single play or click counts 1); explicit ratings count 1 at or above ``relevance`` and
    ``below_weight`` below it (a watched but disliked film is a weaker positive, or none)."""
    values = data.values[idx].astype(np.float64)
    if data.implicit:
        return np.log2(1.0 + values).astype(np.float32)
    return np.where(values >= relevance, 1.0, below_weight).astype(np.float32)


def _csr(users: np.ndarray, items: np.ndarray, weights: np.ndarray, n_rows: int,
         item_dtype: type = np.int64) -> RankTargets:
    order = np.lexsort((items, users))
    counts = np.bincount(users, minlength=n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return RankTargets(torch.from_numpy(indptr.astype(np.int64)), torch.from_numpy(items[order].astype(item_dtype)),
                       torch.from_numpy(weights[order]))


def rank_targets(data: CollabData, below_weight: float, relevance: float, *, codes: np.ndarray | None = None,
                 n_users: int | None = None) -> tuple[RankTargets, RankTargets]:
    """``(history, targets)``: each user's training items (the model's input, CSR over users) and
    the loss's target rows (training rows, then validation rows of users seen in training).

    On explicit ratings, an item rated below ``relevance`` weighs ``below_weight`` in both (0:
    the model ignores it, though it is still never recommended back); implicit interactions
    weigh 1 as inputs and ``log2(1 + weight)`` as targets. ``codes`` and ``n_users``: the rows
    under other vocabularies than the data's (a hybrid model's, extended by metadata).
    """
    n = len(data.users) if n_users is None else n_users
    codes = data.codes if codes is None else codes
    tr, va = codes[data.train_idx], codes[data.valid_idx]
    known = (va[:, 0] > 0) & (va[:, 1] > 0)
    w_tr = target_weights(data, data.train_idx, below_weight, relevance)
    w_va = target_weights(data, data.valid_idx, below_weight, relevance)[known]
    w_in = np.ones(len(tr), np.float32) if data.implicit else w_tr
    used = w_in > 0
    history = _csr(tr[used, 0].astype(np.int64), tr[used, 1].astype(np.int64), w_in[used], n)
    # the loss's targets keep int32 items (half the memory on large tables; a batch's are made int64)
    targets = _csr(np.concatenate([tr[:, 0], va[known, 0] + n]).astype(np.int64),
                   np.concatenate([tr[:, 1], va[known, 1]]), np.concatenate([w_tr, w_va]), 2 * n,
                   item_dtype=np.int32 if int(codes[:, 1].max(initial=0)) < 2**31 - 1 else np.int64)
    return history, targets


def valid_bs(bs: int, scored: int) -> int:
    """Users per validation batch: up to 1,024, fewer on a large catalogue (``scored`` items) so that
    the batch's scores, targets and log-softmax (a few tensors of users x items floats) stay near
    64 MB each, never below the training batch."""
    return max(bs, min(1024, 2**24 // max(1, scored)))


def rank_loaders(targets: RankTargets, n_users: int, *, bs: int, device: torch.device, seed: int | None,
                 decoder: Decoder, scored: int = 0, shard: tuple[int, int] = (0, 1)) -> CollabLoaders:
    """Shuffled batches of the users with training items; validation over users with validation items.

    Each batch is ``(user indices, target rows)``: the same indices for training, shifted by
    ``n_users`` (the validation rows of :func:`rank_targets`) for validation; ``scored``: the items
    the loss scores per user (see :func:`valid_bs`); ``shard``: ``(rank, world)`` under data-parallel
    training (each rank takes its share of every step's users).
    """
    lens = targets.indptr[1:] - targets.indptr[:-1]
    train_users = torch.nonzero(lens[:n_users] > 0).view(-1)
    valid_users = torch.nonzero(lens[n_users:] > 0).view(-1)
    train = TensorLoader(TensorDataset(train_users, train_users), bs=max(1, bs // shard[1]), shuffle=True, seed=seed,
                         decoder=decoder, shard=shard)
    valid = TensorLoader(TensorDataset(valid_users, valid_users + n_users), bs=valid_bs(bs, scored), seed=seed,
                         decoder=decoder)
    return CollabLoaders(train, valid, decoder=decoder, device=device)


class RankLoss:
    """Negative log-likelihood of each user's items given the user's vector (fastai ``loss_func``).

    ``kind="softmax"``: a softmax over the catalogue per user (the multinomial likelihood of
    Mult-DAE): over every item when ``negatives`` is 0, else over the user's own items and
    ``negatives`` items drawn uniformly for the batch, their share of the partition function
    scaled up to the catalogue (cost per batch independent of the catalogue's size).
    The full softmax in training runs over the items that are a target of some training user (on
    ratings with ``below_weight=0``: items someone rated at or above the relevance level), which
    saves a third of the work on MovieLens; :class:`TargetItems` places the other items below them.
    ``kind="bpr"``: Bayesian personalised ranking (Rendle et al. 2009), each target item against
    one uniformly drawn item. The loss is summed over each user's target items and averaged over
    the users (Mult-DAE's objective): large gradients, which Adam's ``eps`` does not blur. A
    validation user has fewer target items (the held-out ones) than a training row, so the
    validation loss sits below the training loss: compare its trend, not its level.

    Args:
        model: the :class:`cflearn.models.Ranker` whose item tables score the users.
        targets: the target rows (see :func:`rank_targets`).
        kind: ``"softmax"`` or ``"bpr"``.
        negatives: sampled items per batch for the softmax (0: all items).
        seed: seed of the sampling generator.
    """

    reduction: str = "mean"

    def __init__(self, model: nn.Module, targets: RankTargets, kind: RankLossKind = "softmax", negatives: int = 0,
                 seed: int | None = None, min_count: int = 1):
        self.model, self.targets, self.kind, self.negatives = model, targets, kind, int(negatives)
        self.learn: Any = None  # set by collab_learner: the loss follows learn.model if it is swapped
        self._gen: torch.Generator | None = None
        self._seed = seed
        self.targeted: torch.Tensor | None = None
        """Items that are a training target (``None``: all of them): the full softmax's catalogue."""
        self._where = torch.zeros(0, dtype=torch.long)  # item -> its column in the full softmax (-1: none)
        net = ranking_head(model)
        if kind == "softmax" and self.negatives == 0 and net is not None:
            n_items = int(net.i_weight.weight.shape[0])
            train_end = int(targets.indptr[len(targets.indptr) // 2])  # rows 0..n_users-1: the training rows
            liked = torch.zeros(n_items, dtype=torch.bool)
            items, weights = targets.items[:train_end], targets.weights[:train_end]
            liked[items[weights > 0].long()] = True
            if min_count > 1:  # items too rare to learn from rank below the others (as EASE leaves them out)
                liked &= torch.bincount(items.long(), minlength=n_items) >= min_count
            liked[0] = False
            if 0 < int(liked.sum()) < n_items - 1:
                self.targeted = torch.nonzero(liked).view(-1)
                self._where = torch.full((n_items,), -1, dtype=torch.long)
                self._where[self.targeted] = torch.arange(len(self.targeted))

    @property
    def scored_items(self) -> int:
        """Items the full softmax scores for each user (0 when the loss samples items instead)."""
        if self.kind != "softmax" or self.negatives > 0:
            return 0
        if self.targeted is not None:
            return len(self.targeted)
        net = ranking_head(self.model)
        return int(net.i_weight.weight.shape[0]) if net is not None else 0

    def _draw(self, n: int, n_items: int, device: torch.device) -> torch.Tensor:
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device)
            self._gen.manual_seed(self._seed if self._seed is not None else int(torch.randint(0, 2**62, (1,))))
        return torch.randint(1, n_items, (n,), generator=self._gen, device=device)

    def __call__(self, h: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if h.dim() != 2:
            raise ConfigError("per-row losses need a rating model: a ranking model's loss scores a user against the "
                              "catalogue (its loaders yield users, not (user, item, rating) rows)")
        found = ranking_head(self.learn.model if self.learn is not None else self.model)
        if found is None:
            raise ConfigError(f"a ranking loss scores with a Ranker's item tables; learn.model is now a "
                              f"{type(unwrap(self.learn.model)).__name__}: build a new learner for it")
        model = found
        if self.targets.indptr.device != h.device:
            self.targets = self.targets.to(h.device)
        which, items, w = self.targets.gather(rows.view(-1))
        n_items = model.i_weight.weight.shape[0]
        if self.kind == "softmax" and (self.negatives <= 0 or self.negatives >= n_items - 1):
            weight, bias = model.i_weight.weight, model.i_bias.weight
            if self.targeted is not None:  # training and validation score the same catalogue
                if self.targeted.device != h.device:
                    self.targeted, self._where = self.targeted.to(h.device), self._where.to(h.device)
                sparse = model.sparse  # lazy updates: only the scored rows get a gradient
                weight = F.embedding(self.targeted, weight, sparse=sparse)
                bias = F.embedding(self.targeted, bias, sparse=sparse)
                items = self._where[items]
                w = w * (items >= 0).float()  # rows of untargeted items have weight 0 anyway
                items = items.clamp(min=0)
            logits = torch.addmm(bias[:, 0], h, weight.T)
            target = torch.zeros_like(logits).index_put_((which, items), w, accumulate=True)
            per_user = -(target * F.log_softmax(logits, dim=1)).sum(1)
            return per_user if self.reduction == "none" else per_user.sum() / max(1, len(rows))
        v, b = model.item_rows(items)
        hw = h.index_select(0, which)  # not h[which]: its backward adds duplicates in a thread-dependent order
        pos = (hw * v).sum(1) + b
        if self.kind == "bpr":
            v_neg, b_neg = model.item_rows(self._draw(len(items), n_items, h.device))
            per_item = F.logsigmoid(pos - (hw * v_neg).sum(1) - b_neg)
        else:
            v_neg, b_neg = model.item_rows(self._draw(self.negatives, n_items, h.device))
            sampled = h @ v_neg.T + b_neg + float(np.log((n_items - 1) / self.negatives))
            top = torch.maximum(sampled.max(1).values, torch.full_like(sampled[:, 0], -torch.inf).scatter_reduce(
                0, which, pos, "amax")).detach()
            z = torch.exp(sampled - top[:, None]).sum(1) + torch.zeros_like(top).index_add(
                0, which, torch.exp(pos - top[which]))
            per_item = pos - (torch.log(z) + top).index_select(0, which)
        return self._reduce(-(w * per_item), which, rows)

    def _reduce(self, loss: torch.Tensor, which: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.reduction == "none":
            return torch.zeros(len(rows), device=loss.device).index_add(0, which, loss)
        return loss.sum() / max(1, len(rows))

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def label(self) -> str:
        """What the loss is, for plots."""
        return "cross-entropy per user" if self.kind == "softmax" else "BPR loss per user"

    def __repr__(self) -> str:
        how = "all items" if self.negatives <= 0 else f"{self.negatives} sampled items"
        return f"RankLoss({self.kind}, {how})" if self.kind == "softmax" else "RankLoss(bpr)"


class TargetItems(Callback):
    """Give the items a full-softmax :class:`RankLoss` trains without (never a training target) vector 0
    and the lowest bias of the trained items: they rank below the items users liked, as an average
    user's least liked item would. Runs before each validation and after fitting."""

    order = 4  # before ColdRows

    def __init__(self, loss: RankLoss):
        self.loss = loss

    def before_validate(self) -> None:
        self._place()

    def after_fit(self) -> None:
        self._place()

    @torch.no_grad()
    def _place(self) -> None:
        model = ranking_head(self.learn.model)
        if self.loss.targeted is None or model is None:
            return
        targeted = self.loss.targeted.to(model.i_bias.weight.device)
        other = torch.ones(model.i_bias.weight.shape[0], dtype=torch.bool, device=targeted.device)
        other[targeted] = False
        other[0] = False
        for table in (model.i_in, model.i_weight):
            table.weight[other] = 0.0
        model.i_bias.weight[other] = model.i_bias.weight[targeted].min()


class ItemItemFit(Callback):
    """Solve a model's item-item ranking head (EASE on the training rows, ``lambda`` chosen on a seeded 10% slice
    of them) before the rest trains (a dual model's rating head, a blend's learned head); once per model and
    data."""

    order = 3

    def __init__(self, rows: np.ndarray, relevant: np.ndarray, min_count: int, seed: int | None):
        self.rows, self.relevant, self.min_count, self.seed = rows, relevant, int(min_count), seed

    def before_fit(self) -> None:
        head = item_item_head(self.learn.model)
        if head is None or head.fitted:
            return
        keep, B, floor, lam = ease_solution(self.rows[:, 0], self.rows[:, 1], self.relevant, head.n_users,
                                            head.n_items, min_count=self.min_count, seed=self.seed or 0)
        head.fit_weights(keep, B, floor, lam)


def covered_items(data: CollabData, min_count: int) -> int:
    """Items with at least ``min_count`` training interactions (what a ranking head covers)."""
    counts = np.bincount(data.codes[data.train_idx, 1], minlength=len(data.items))
    return int(np.count_nonzero(counts[1:] >= min_count))


def ease_head(data: CollabData, codes: np.ndarray, n_users: int, n_items: int, min_count: int,
              seed: int | None) -> tuple[ItemItem, ItemItemFit]:
    """An unsolved :class:`ItemItem` head over the training rows (``codes``: the rows encoded in the model's
    vocabularies) and the callback that solves it before training (relevant: rated at or above the relevance
    level, or every interaction)."""
    rows = codes[data.train_idx].astype(np.int64)
    history = _csr(rows[:, 0], rows[:, 1], np.ones(len(rows), np.float32), n_users)
    relevant = np.ones(len(rows), bool) if data.implicit else data.values[data.train_idx] >= relevance_level(
        data.scale)
    return ItemItem(n_users, n_items, 0, history.indptr, history.items), ItemItemFit(rows, relevant, min_count, seed)


class BlendMix(Callback):
    """Measure a :class:`cflearn.models.Blend`'s mix (:meth:`~cflearn.models.Blend.fit_mix`) after training, once
    the untargeted items are placed (:class:`TargetItems`)."""

    order = 5

    def __init__(self, seed: int | None):
        self.seed = seed

    def after_fit(self) -> None:
        model = unwrap(self.learn.model)
        if isinstance(model, Blend):
            model.fit_mix(self.seed or 0)


RANK_ONLY = ("below_weight", "negatives", "min_count", "step_budget", "rank_weight", "rank_factors",
             "implicit_factors")
"""Preset fields that apply to ranking presets only."""
_NOT_FOR_RANKING = {"use_nn": "the ranking model is its own architecture", "emb_szs": "the NN model only",
                    "layers": "the NN model only", "item_features": "rating models only (preset 'best')",
                    "user_features": "rating models only (preset 'best')",
                    "content_based": "rating models only (preset 'content')",
                    "row_l2": "rating models; regularise a ranking model with dropout= or wd=",
                    "bias_l2": "rating models; regularise a ranking model with dropout= or wd=",
                    "y_pad": "ratings (a ranking model's scores are not ratings)"}


def check_ranking(p: Preset, given: dict[str, Any], *, custom: bool) -> Preset:
    """Check a preset's ranking settings (errors for those that do not apply); :meth:`RankKind.schedule`
    settles ``negatives`` and an ``auto`` optimizer."""
    if not p.ranking:
        wrong = [k for k in RANK_ONLY if k in given]
        raise ConfigError(f"{', '.join(wrong)} appl(y/ies) to ranking presets only (loss='softmax' or 'bpr', e.g. "
                          f"preset='rank'); preset {p.name!r} predicts ratings")
    if custom:
        raise ConfigError(f"preset {p.name!r} trains cflearn's Ranker; your own model= trains with a rating preset "
                          "(e.g. 'fast')")
    for name, why in _NOT_FOR_RANKING.items():
        if given.get(name):
            raise ConfigError(f"{name} does not apply to ranking preset {p.name!r}: it is for {why}")
    if p.loader != "fast":
        raise ConfigError(f"ranking presets need loader='fast', got {p.loader!r}")
    if p.loss not in ("softmax", "bpr"):
        raise ConfigError(f"loss must be 'mse', 'softmax' or 'bpr', got {p.loss!r}")
    for name in ("bs", "epochs", "n_factors", "min_count"):
        check_count(name, getattr(p, name))
    for name in ("step_budget", "implicit_factors"):
        if getattr(p, name) is not None:
            check_count(name, getattr(p, name))
    if p.rank_head not in ("auto", "learned", "blend"):
        raise ConfigError(f"rank_head of ranking preset {p.name!r} must be 'auto', 'learned' or 'blend', got "
                          f"{p.rank_head!r}" + (" (EASE alone: preset 'dual' on ratings, or cflearn.evaluate's "
                                                "baseline)" if p.rank_head == "item_item" else ""))
    if p.rank_factors is not None or "rank_factors" in given or "rank_weight" in given:
        raise ConfigError(f"rank_factors and rank_weight apply to preset 'dual' (its ranking head); preset {p.name!r} "
                          "is a ranking head alone, sized by n_factors")
    check_number("lr", p.lr, positive=True)
    check_number("wd", p.wd)
    check_number("below_weight", p.below_weight)
    check_fraction("dropout", p.dropout)
    _check_negatives(p)
    return p


def _check_negatives(p: Preset) -> None:
    if p.negatives is not None and (not isinstance(p.negatives, int) or p.negatives < 0):
        raise ConfigError(f"negatives must be a non-negative integer (0: all items) or None, got {p.negatives!r}")


_NOT_FOR_DUAL = {"use_nn": "the dual model's heads are its own architecture", "emb_szs": "the NN model only",
                 "layers": "the NN model only", "content_based": "preset 'content'"}


def check_dual(p: Preset, given: dict[str, Any], *, custom: bool, implicit: bool, n_users: int) -> Preset:
    """Check the two-headed preset's settings and settle the users per step (at least ~10 steps an
    epoch on small tables); on implicit data (no ratings) it becomes its ranking head alone
    (``loss="softmax"``)."""
    if custom:
        raise ConfigError(f"preset {p.name!r} trains cflearn's two-headed model; your own model= trains with a "
                          "rating preset (e.g. 'fast')")
    for name, why in _NOT_FOR_DUAL.items():
        if given.get(name) or getattr(p, name):
            raise ConfigError(f"{name} does not apply to preset {p.name!r}: it is for {why}")
    if p.loader != "fast":
        raise ConfigError(f"preset {p.name!r} needs loader='fast', got {p.loader!r}")
    for name in ("bs", "epochs", "n_factors", "min_count"):
        check_count(name, getattr(p, name))
    for name in ("rank_factors", "step_budget", "implicit_factors"):
        if getattr(p, name) is not None:
            check_count(name, getattr(p, name))
    for name in ("lr", "rank_weight"):
        check_number(name, getattr(p, name), positive=True)
    for name in ("wd", "below_weight", "row_l2", "bias_l2"):
        check_number(name, getattr(p, name))
    check_fraction("dropout", p.dropout)
    _check_negatives(p)
    if "bs" not in given:  # few users: keep at least ~10 steps an epoch (the rating head needs its steps)
        p = p.replace(bs=min(p.bs, max(8, n_users // 10)))
    if implicit:  # interactions: no ratings to predict, the ranking head alone
        for name in ("row_l2", "bias_l2", "y_pad", "item_features", "user_features", "n_factors"):
            if given.get(name):
                raise ConfigError(f"{name} applies to the rating head of preset {p.name!r}, and the data holds "
                                  "interactions (no ratings): only the ranking head trains"
                                  + ("; size it with rank_factors=" if name == "n_factors" else ""))
        sized = p.implicit_factors if "rank_factors" not in given else None
        factors = sized or p.rank_factors or p.n_factors
        optimizer = "adamw" if p.optimizer == "auto" else p.optimizer
        alone = dataclasses.replace(p, kind="rank", loss="softmax", optimizer=optimizer, row_l2=0.0, bias_l2=0.0,
                                    item_features=(), user_features=(), n_factors=factors, rank_factors=None,
                                    rank_head="learned")
        return check_ranking(alone, {}, custom=False)
    check_rated_factors(p, given)
    return p  # the optimizer stays "auto" here: each head's schedule chooses (sample_items, pair_schedule)


def check_rated_factors(p: Preset, given: dict[str, Any]) -> None:
    """``implicit_factors`` given for data with ratings: an error (it sizes the ranking head on interactions)."""
    if "implicit_factors" in given:
        size = "rank_factors" if p.dual else "n_factors"
        raise ConfigError(f"implicit_factors sizes the ranking head on interactions (data with no ratings), and this "
                          f"data has ratings; use {size}= to size it here")


def auto_negatives(n_users: int, n_items: int, bs: int) -> int:
    """``negatives=None``: the full softmax (0) while the catalogue is small and an epoch's dense updates
    (steps x items) stay cheap, as on MovieLens-small; else 2,048 sampled items per batch, with
    sparse updates, so that a step costs the same however large the catalogue."""
    steps = math.ceil(n_users / bs)
    if n_items - 1 <= 2048 or (n_items <= FULL_SOFTMAX_ITEMS and steps * n_items <= FULL_SOFTMAX_COST):
        return 0
    return 2048


def sample_items(p: Preset, n_users: int, n_items: int, *, softmax: bool) -> Preset:
    """A softmax ranking head's ``negatives`` (:func:`auto_negatives` unless given; 0 for other losses) and
    the optimizer that suits them (:func:`_optimizer`), as presets ``rank`` and ``dual`` settle them."""
    negatives = p.negatives if p.negatives is not None else auto_negatives(n_users, n_items, p.bs)
    negatives = negatives if softmax else 0
    return p.replace(negatives=negatives, optimizer=_optimizer(p, n_users, n_items, negatives))


def _optimizer(p: Preset, n_users: int, n_items: int, negatives: int) -> str:
    """``auto``: dense AdamW when each step touches the whole item table (full softmax) or an epoch's
    dense updates are cheap anyway; lazy (sparse) AdamW when a step touches only the batch's own and
    sampled rows (sampled softmax, BPR) of a table too large to update whole at every step."""
    if p.optimizer != "auto":
        return p.optimizer
    sampled = p.loss == "bpr" or negatives > 0
    return "lazy" if sampled and math.ceil(n_users / p.bs) * n_items > FULL_SOFTMAX_COST else "adamw"


def budget_epochs(p: Preset, steps_per_epoch: int, *, given: bool) -> Preset:
    """The preset with ``epochs`` cut to its ``step_budget`` (unless the caller gave epochs): a table with
    many users takes more steps per epoch, and needs fewer epochs."""
    if given or not p.step_budget or steps_per_epoch < 1:
        return p
    return p.replace(epochs=min(p.epochs, max(MIN_EPOCHS, math.ceil(p.step_budget / steps_per_epoch))))


MIN_EPOCHS = 5
"""The step budget never cuts a ranking preset below this many epochs."""


def train_steps(data: CollabData, bs: int) -> int:
    """Steps of a ranking epoch: one per ``bs`` of the users with training rows (what the step budget and
    the loaders of ``rank`` and ``dual`` count)."""
    users = int(np.count_nonzero(np.bincount(data.codes[data.train_idx, 0], minlength=len(data.users))[1:]))
    return math.ceil(users / bs)


class RankKind(Kind):
    """:class:`cflearn.models.Ranker`: a user is the bag of their items; the loss ranks the catalogue
    (``softmax``) or each item against a random one (``bpr``). Scores are not ratings. With
    ``rank_head="blend"`` (``"auto"`` while EASE fits: at most :data:`ITEM_ITEM_MAX` items with ``min_count``
    training interactions) the model is a :class:`cflearn.models.Blend` of the learned head and EASE."""

    name = "rank"
    model_class = Ranker
    implicit = True
    distributed = True  # each rank: its share of every step's users
    rates = False
    fields = None  # check_ranking names what applies

    def memory(self, data: CollabData, preset: Preset) -> int:
        """Three item tables (what a user's bag reads, what the catalogue is scored with, the item biases), and a
        blend's EASE (three matrices over the covered items while it is solved)."""
        tables = 16 * 3 * len(data.items) * (preset.n_factors + 1)
        return tables + (12 * covered_items(data, preset.min_count) ** 2 if preset.rank_head == "blend" else 0)

    def describe(self, preset: Preset) -> str:
        line = schedule_line(preset, f"{preset.bs} users", f"{preset.n_factors} factors{on_interactions(preset)}")
        when = {"auto": f" while at most {ITEM_ITEM_MAX:,} items have {preset.min_count} interactions", "blend": ""}
        return line if preset.rank_head not in when else f"{line}; blended with EASE{when[preset.rank_head]}"

    def training_note(self, preset: Preset) -> str:
        from ._presets import PRESETS

        if preset.name in PRESETS and PRESETS[preset.name].kind == "dual":
            return "the ranking head alone (the data are interactions: no ratings to predict)"
        if preset.rank_head == "blend":
            return "blended with EASE (solved in closed form: the catalogue is small)"
        return ""

    def settle(self, data: CollabData, p: Preset, given: dict[str, Any], *, custom: bool = False) -> Preset:
        """Check the settings; size the model (``implicit_factors`` on interactions); settle ``negatives``, the
        optimizer and ``epochs`` from the step budget."""
        p = check_ranking(p, given, custom=custom)
        if not data.implicit:
            check_rated_factors(p, given)
        elif p.implicit_factors and "n_factors" not in given:
            p = p.replace(n_factors=p.implicit_factors)
        if p.rank_head == "auto":
            p = p.replace(rank_head="blend" if covered_items(data, p.min_count) <= ITEM_ITEM_MAX else "learned")
        return self.schedule(data, settle_features(data, p), epochs_given="epochs" in given)

    @staticmethod
    def schedule(data: CollabData, p: Preset, *, epochs_given: bool) -> Preset:
        """Settle ``negatives``, the optimizer and ``epochs`` from the step budget of a checked preset."""
        p = sample_items(p, len(data.users), len(data.items), softmax=p.loss == "softmax")
        return budget_epochs(p, train_steps(data, p.bs), given=epochs_given)

    def build(self, data: CollabData, p: Preset, *, device: torch.device, seed: int | None,
              y_range: tuple[float, float] | None, shard: tuple[int, int] = (0, 1)) -> Built:
        decoder = Decoder.of(data)
        dls, net, loss = ranking_parts(data, p, device=device, seed=seed, decoder=decoder, shard=shard)
        if p.rank_head != "blend":
            return Built(dls, net, loss_func=loss, callbacks=[TargetItems(loss)], metrics=[], rank_loss=loss)
        ease, fit = ease_head(data, data.codes, len(data.users), len(data.items), p.min_count, seed)
        return Built(dls, Blend(net, ease), loss_func=loss, callbacks=[TargetItems(loss), fit, BlendMix(seed)],
                     metrics=[], rank_loss=loss)


def ranking_parts(data: CollabData, p: Preset, *, device: torch.device, seed: int | None,
                  decoder: Decoder, shard: tuple[int, int] = (0, 1)) -> tuple[CollabLoaders, Ranker, RankLoss]:
    """Loaders, model and loss of a settled ranking preset (``shard``: ``(rank, world)``, as
    :func:`rank_loaders`)."""
    history, targets = rank_targets(data, p.below_weight, relevance_level(data.scale))
    n_users, n_items = len(data.users), len(data.items)
    negatives = p.negatives or 0
    net = Ranker(p.n_factors, n_users, n_items, history.indptr, history.items, history.weights, dropout=p.dropout,
                 seed=seed)
    loss = RankLoss(net, targets, "bpr" if p.loss == "bpr" else "softmax", negatives=negatives, seed=seed,
                    min_count=p.min_count)
    dls = rank_loaders(targets, n_users, bs=p.bs, device=device, seed=seed, decoder=decoder,
                       scored=loss.scored_items, shard=shard)
    if shard[1] == 1 and len(dls.train) != train_steps(data, p.bs):  # the step budget was settled on this count
        raise AssertionError("ranking epochs were budgeted on another number of steps")
    return dls, net, loss


register(RankKind())
