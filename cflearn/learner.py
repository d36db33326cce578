"""The learner factory: cflearn data + a preset -> a plain fastai ``Learner``."""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from typing import Any, Literal

import numpy as np
import torch
from fastai.callback.progress import ProgressCallback
from fastai.collab import TabularCollab
from fastai.collab import collab_learner as fastai_collab_learner
from fastai.data.block import TransformBlock
from fastai.learner import CastToTensor, Learner, Metric
from fastai.losses import MSELossFlat
from fastai.optimizer import Adam
from fastai.tabular.core import Categorify
from torch.nn import functional as F

from .callbacks import ColdRows, KeepBest, LossHistory, NaNGuard, RowL2, fill_cold_rows
from .collab import CollabModel
from .data import CollabData
from .errors import ConfigError, DataError
from .features import hybrid_items
from .loaders import fast_loaders
from .models import DotBias, HybridDotBias, embedding_tables
from .optim import adamw, lazy_adamw
from .presets import Preset, get_preset, y_range_for
from .vocab import Vocab

__all__ = ["collab_learner", "fit", "resolve_device"]

# fastai's tabular loaders turn pandas' read-only (copy-on-write) arrays into tensors; harmless here
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, else CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:0'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but torch sees no CUDA GPU; use device='cpu'")
    return dev


def collab_learner(
    data: CollabData,
    preset: str | Preset = "fast",
    *,
    n_factors: int | None = None,
    use_nn: bool | None = None,
    emb_szs: dict[str, int] | None = None,
    layers: list[int] | tuple[int, ...] | None = None,
    y_range: tuple[float, float] | None = None,
    y_pad: float | None = None,
    bs: int | None = None,
    wd: float | None = None,
    row_l2: float | None = None,
    bias_l2: float | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    progress: bool = True,
    **learner_kwargs: Any,
) -> Learner:
    """Build a fastai ``Learner`` for ``data`` from a named preset (keyword arguments override it).

    The result is fastai's own ``collab_learner`` output: ``lr_find``, ``fit_one_cycle``, callbacks
    and the recorder work unchanged. cflearn adds ``learn.cf`` (a :class:`CollabModel` with the ID
    vocabularies) and four callbacks: ``ColdRows`` (unseen IDs predicted as the average user/item),
    ``LossHistory`` (raw per-batch losses for :func:`cflearn.plot_loss`), ``NaNGuard`` and, when the
    preset asks, ``RowL2``.

    Args:
        data: from :func:`cflearn.from_df`.
        preset: ``"fast"`` (default), ``"best"``, ``"book"`` (fastbook ch. 8 via fastai's
            ``CollabDataLoaders``), ``"book_nn"``, ``"fast_nn"``, ``"best_nn"``, or a :class:`Preset`.
        n_factors, use_nn, emb_szs, layers, bs, wd, row_l2, bias_l2, epochs, lr, y_pad: override the preset.
        y_range: explicit sigmoid range; default from the data's scale and the preset's rule.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available.
        seed: seeds weights and shuffling; default ``data.seed``. Same seed, same result.
        progress: show fastai's progress bars.
        **learner_kwargs: any other :class:`Preset` field (``optimizer``, ``item_features``, ``loader``,
            ...) overrides the preset; the rest go to fastai's ``Learner`` (``metrics``, ``cbs``, ...).
    """
    if not isinstance(data, CollabData):
        raise ConfigError(f"collab_learner needs the CollabData from cflearn.from_df, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(Preset)} - {"name", "description"}
    extra = {k: learner_kwargs.pop(k) for k in list(learner_kwargs) if k in fields}
    p = _resolve_preset(data, get_preset(preset).replace(
        **extra, n_factors=n_factors, use_nn=use_nn, emb_szs=emb_szs, layers=layers, bs=bs, wd=wd, row_l2=row_l2,
        bias_l2=bias_l2, epochs=epochs, lr=lr, y_pad=y_pad), bs_given=bs is not None)
    if len(data.valid_idx) == 0:
        if not data.valid_pct:
            raise ConfigError("the data has no validation rows (valid_pct=0); training needs some: use valid_pct=0.2")
        raise DataError(f"{len(data.ratings)} rating(s) are too few to hold out validation rows; add ratings")
    dev = resolve_device(device)
    seed = data.seed if seed is None else seed
    if seed is not None:
        torch.manual_seed(seed)
    yr = y_range_for(data.scale, p.y_range_rule, p.y_pad) if y_range is None else tuple(y_range)

    l2 = [RowL2(p.row_l2, p.bias_l2)] if p.row_l2 > 0 or p.bias_l2 > 0 else []
    cbs = [ColdRows(), LossHistory(), NaNGuard(), *l2, *(learner_kwargs.pop("cbs", None) or [])]
    learner_kwargs.setdefault("metrics", [RMSE()])
    learner_kwargs.setdefault("opt_func", {"adamw": adamw, "lazy": lazy_adamw}.get(p.optimizer, Adam))
    users, items = data.users, data.items
    if p.item_features:  # hybrid: items known only from metadata get rows too
        hyb = hybrid_items(data, p.item_features)
        items = hyb.items
        dls = fast_loaders(*hyb.tensors("train"), *hyb.tensors("valid"), bs=p.bs, device=dev, seed=seed,
                           classes={data.user: users.itos, data.item: items.itos})
        model = HybridDotBias(p.n_factors, len(users), len(items), hyb.features.idx, hyb.features.weight,
                              len(hyb.features.names), hyb.trained, y_range=yr)
        model.feature_names = hyb.features.names
        learn = Learner(dls, model, loss_func=mse_flat, wd=p.wd, cbs=cbs, **learner_kwargs)
    elif p.loader == "fastai":
        dls = _fastai_loaders(data, p.bs, dev)
        users = Vocab.from_list(list(dls.classes[data.user][1:]))  # the rows fastai laid out (same order)
        items = Vocab.from_list(list(dls.classes[data.item][1:]))
        learn = _fastai_learner(dls, p, yr, cbs, learner_kwargs)
    else:
        dls = fast_loaders(*data.tensors("train"), *data.tensors("valid"), bs=p.bs, device=dev, seed=seed,
                           classes={data.user: users.itos, data.item: items.itos})
        if p.use_nn:
            learn = _fastai_learner(dls, p, yr, cbs, learner_kwargs)
        else:  # fastai's collab_learner builds EmbeddingDotBias; DotBias is the same module keeping its lookups
            model = DotBias.from_classes(p.n_factors, dls.classes, y_range=yr)
            learn = Learner(dls, model, loss_func=mse_flat, wd=p.wd, cbs=cbs, **learner_kwargs)
        learn.remove_cb(CastToTensor)  # our loaders yield plain tensors: nothing to cast, one callback less
    if p.optimizer == "lazy":
        for table in embedding_tables(learn.model).values():
            table.sparse = True  # sparse row gradients for LazyAdamW
    learn.model.to(dev)
    if not progress:
        learn.remove_cb(ProgressCallback)
        learn.logger = _silent
    learn.cf = CollabModel(
        model=learn.model, users=users, items=items, scale=data.scale, preset=p.to_dict(),
        columns={"user": data.user, "item": data.item, "rating": data.rating, "timestamp": data.timestamp},
        global_mean=data.global_mean, item_info=data.item_info, data=data,
    )
    train = data.train
    learn.cf.set_training_rows(torch.from_numpy(users.encode(train[data.user]).astype(np.int32)),
                               torch.from_numpy(items.encode(train[data.item]).astype(np.int32)))
    return learn


def _resolve_preset(data: CollabData, p: Preset, *, bs_given: bool) -> Preset:
    """Check the preset and settle what depends on the data: batch cap, optimizer, side features."""
    if p.bs < 1 or p.epochs < 1 or p.lr <= 0 or p.n_factors < 1:
        raise ConfigError(f"bs, epochs, lr and n_factors must be positive, got {p.bs}, {p.epochs}, {p.lr}, "
                          f"{p.n_factors}")
    if not bs_given and p.loader == "fast":  # small tables: keep at least ~16 steps per epoch
        p = p.replace(bs=min(p.bs, max(64, 2 ** int(np.log2(max(1, len(data.train_idx) // 16))))))
    if p.optimizer == "auto":  # dense updates cost O(table), lazy ones O(batch): take the cheaper
        p = p.replace(optimizer="adamw" if len(data.users) + len(data.items) < 16 * p.bs else "lazy")
    if p.item_features:
        usable = not p.use_nn and data.item_info is not None and all(
            c in data.item_info.columns for c in p.item_features)
        if not usable:
            p = p.replace(item_features=())  # recorded as trained: no side features used
        elif p.loader != "fast":
            raise ConfigError("item_features need the fast loader (loader='fast')")
    return p


def _fastai_learner(dls: Any, p: Preset, y_range: tuple[float, float], cbs: list, kwargs: dict) -> Learner:
    """fastai's own ``collab_learner`` (the course's models: ``EmbeddingDotBias`` / ``EmbeddingNN``)."""
    return fastai_collab_learner(dls, n_factors=p.n_factors, use_nn=p.use_nn,
                                 emb_szs=dict(p.emb_szs) if p.emb_szs else None, layers=list(p.layers) or None,
                                 y_range=y_range, loss_func=MSELossFlat(), wd=p.wd, cbs=cbs, **kwargs)


class RMSE(Metric):
    """Validation RMSE as a running sum of squared errors (fastai's ``rmse`` keeps every prediction)."""

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def accumulate(self, learn: Learner) -> None:
        err = learn.pred.detach().reshape(-1).float() - learn.yb[0].reshape(-1).float()
        self.total += float(err.pow(2).sum())
        self.count += err.numel()

    @property
    def value(self) -> float | None:
        return (self.total / self.count) ** 0.5 if self.count else None

    @property
    def name(self) -> str:
        return "rmse"


def mse_flat(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of flattened tensors (fastai's ``MSELossFlat`` without its tensor casts)."""
    return F.mse_loss(pred.view(-1), target.view(-1))


def _silent(*_: Any) -> None:
    """A logger that prints nothing (fastai prints each epoch's row when bars are off)."""


def _fastai_loaders(data: CollabData, bs: int, device: torch.device):
    """fastai's ``CollabDataLoaders.from_df`` recipe, on cflearn's split (for the course presets)."""
    frame = data.ratings[[data.user, data.item, data.rating]]
    to = TabularCollab(frame, [Categorify], [data.user, data.item], y_names=[data.rating],
                       y_block=TransformBlock(), splits=(list(data.train_idx), list(data.valid_idx)))
    return to.dataloaders(bs=bs, device=device)


def fit(learn: Learner, epochs: int | None = None, lr: float | None = None, wd: float | None = None, *,
        keep_best: bool = False, interrupt: Literal["keep", "raise"] = "keep", **kwargs: Any) -> Learner:
    """Train with the preset's one-cycle schedule (``learn.fit_one_cycle(epochs, lr, wd=wd)``).

    Interrupting (Ctrl-C, or the notebook's stop button) keeps the learner usable: the weights of
    the last completed epoch are put back, a message says so, and the learner is returned.

    Args:
        learn: from :func:`collab_learner`.
        epochs, lr, wd: override the preset's.
        keep_best: end with the weights of the epoch with the lowest validation loss (kept in
            memory by :class:`cflearn.callbacks.KeepBest`), not those of the last epoch.
        interrupt: on Ctrl-C, after putting the last complete epoch's weights back, ``"keep"``
            returns the learner (notebooks), ``"raise"`` re-raises ``KeyboardInterrupt`` (scripts).
        **kwargs: passed to ``fit_one_cycle``.

    Returns:
        The same learner, trained; ``learn.cf.fit_seconds`` holds the wall time.
    """
    preset = learn.cf.preset
    cbs = list(kwargs.pop("cbs", None) or []) + ([KeepBest()] if keep_best else [])
    t0 = time.perf_counter()
    try:
        learn.fit_one_cycle(epochs or preset["epochs"], lr or preset["lr"], wd=preset["wd"] if wd is None else wd,
                            cbs=cbs, **kwargs)
    except KeyboardInterrupt:
        guard = next((cb for cb in learn.cbs if isinstance(cb, NaNGuard)), None)
        if guard is None:  # the user removed the callback that keeps the last good weights
            raise
        learn.model.load_state_dict(guard.good)
        fill_cold_rows(learn.model)
        learn.model.eval()
        print(f"training interrupted: kept the weights after epoch {guard.good_epoch} "
              f"({'the start' if guard.good_epoch == 0 else 'the last complete epoch'})", file=sys.stderr)
        if interrupt == "raise":
            raise
    learn.cf.fit_seconds = time.perf_counter() - t0
    return learn
