"""The learner factory: cflearn data + a settled preset (or your own module) -> a plain fastai ``Learner``.

It only assembles: the preset's side features are chosen before it is called
(:mod:`cflearn.train._select`), so a learner is built once, with the features it trains with."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from fastai.callback.progress import ProgressCallback
from fastai.learner import CastToTensor, Learner
from fastai.optimizer import Adam
from torch import nn

from .._device import resolve_device
from .._errors import ConfigError, ConfigWarning, caller_level
from ..callbacks import ColdRows, DDPTrainer, LossHistory, NaNGuard, PresetNote, RowL2
from ..data._data import CollabData
from ..kinds import Built, Kind, check_built, get_kind, one_process_only
from ..kinds._presets import Preset
from ..kinds._rating import RMSE, RatingLoss
from ..kinds._settle import check_has_validation, check_memory, check_y_range, resolve
from ..models import HybridDotBias, contract, ranking_head, rating_head
from ..optim import adamw, lazy_adamw
from ..serve._collab import CollabModel
from ..serve._export import check_header_size
from ._distributed import init_from_env, is_main, rank, world
from ._launch import TorchrunEnv, torchrun_env

__all__ = ["build_learner", "inner_learner"]


def build_learner(data: CollabData, p: Preset, kind: Kind, *, device: Any, seed: int | None,
                  y_range: tuple[float, float] | None, progress: bool, cbs: list[Any],
                  learner_kwargs: dict[str, Any], custom: bool = False) -> Learner:
    """The learner of a settled preset: the kind's loaders, network and loss in a fastai ``Learner`` with
    cflearn's callbacks and ``learn.cf``. ``y_range``: the caller's (``None``: the preset's rule);
    ``custom``: ``kind`` wraps the caller's own module."""
    dev, p, shard = _placement(p, kind, device)
    check_memory(data, p)
    y_range = p.y_range if y_range is None else y_range  # the caller's, or one a settled preset recorded
    if not kind.rates and y_range is not None:  # asked of the kind: a registered one that only ranks says so too
        raise ConfigError(f"y_range does not apply to preset {p.name!r}: a ranking model's scores are not ratings")
    yr = check_y_range(data, p, y_range)
    if y_range is not None:  # the caller's own range is the record's: load checks the model's against it
        p = p.replace(y_range=yr)
    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's global generator untouched
        if seed is not None:
            torch.manual_seed(seed)
        built = kind.build(data, p, device=dev, seed=seed, y_range=yr, shard=shard)
    if not custom:
        built = check_built(kind, built, p)
    return _assemble(data, p, built, cbs, dict(learner_kwargs), custom=custom, shard=shard, device=dev,
                     progress=progress)


def inner_learner(data: CollabData, p: Preset, *, seed: int | None, device: Any) -> Learner:
    """A silent learner of preset ``p`` (its features as given, none chosen) on an inner split: the feature
    check's candidates."""
    p = resolve(data, p.replace(select_features=False), {})
    check_has_validation(data)
    return build_learner(data, p, get_kind(p.kind), device=device, seed=data.seed if seed is None else seed,
                         y_range=None, progress=False, cbs=[], learner_kwargs={})


def _placement(p: Preset, kind: Kind, device: Any) -> tuple[torch.device, Preset, tuple[int, int]]:
    """The device, and under torchrun (or your own process group) data-parallel training's settings."""
    dev = resolve_device(device)
    if init_from_env(dev):
        refused = one_process_only(p, kind)
        if refused is not None:
            raise ConfigError(refused)
        if dev.type == "cuda":
            dev = torch.device("cuda", (torchrun_env() or TorchrunEnv(0, 1, 0)).local_rank)
        if p.optimizer == "lazy":  # DDP's sparse-gradient path is not reliable (it corrupted memory at 20M
            p = p.replace(optimizer="adamw")  # ratings on gloo; NCCL has none): dense gradients under DDP
    return dev, p, (rank(), world())


def _assemble(data: CollabData, p: Preset, built: Built, user_cbs: list[Any], learner_kwargs: dict[str, Any], *,
              custom: bool, shard: tuple[int, int], device: torch.device, progress: bool) -> Learner:
    """A plain fastai ``Learner`` around a kind's parts, with cflearn's callbacks and ``learn.cf``."""
    net = built.model
    _weigh_new_users(net, p)
    spec = contract(net)
    has_tables = bool(spec.embeddings())
    l2 = [RowL2(p.row_l2, p.bias_l2)] if (p.row_l2 > 0 or p.bias_l2 > 0) and has_tables else []
    if custom and not has_tables:
        skipped = ["ColdRows (unknown IDs keep their untrained rows)"]
        if p.row_l2 > 0 or p.bias_l2 > 0:
            skipped.append(f"RowL2 (row_l2={p.row_l2:g}; regularise with wd=... instead)")
        warnings.warn(f"your {type(net).__name__} has no user/item tables cflearn knows (Contract.embeddings), so "
                      f"these callbacks are skipped: {'; '.join(skipped)}", ConfigWarning, stacklevel=caller_level())
    cold = [ColdRows()] if has_tables else []
    note = [PresetNote(p)] if p.loader == "fast" else []
    distributed = [DDPTrainer()] if shard[1] > 1 else []
    cbs = [*distributed, *built.callbacks, *cold, LossHistory(), NaNGuard(), *l2, *note, *user_cbs]
    learner_kwargs.setdefault("metrics", [RMSE()] if built.metrics is None else built.metrics)
    learner_kwargs.setdefault("opt_func", {"adamw": adamw, "lazy": lazy_adamw}.get(p.optimizer, Adam))
    loss = built.loss_func if built.loss_func is not None else RatingLoss()
    learn = Learner(built.dls, net, loss_func=loss, wd=p.wd, cbs=cbs, **learner_kwargs)
    if built.rank_loss is not None:
        built.rank_loss.learn = learn  # the loss follows learn.model
    if p.loader == "fast":
        learn.remove_cb(CastToTensor)  # our loaders yield plain tensors: nothing to cast, one callback less
    if p.optimizer == "lazy":
        for table in spec.embeddings().values():
            table.sparse = True  # sparse row gradients for LazyAdamW
        list_head = ranking_head(net)
        if list_head is not None:
            list_head.sparse = True
    learn.model.to(device)
    if not progress or not is_main():  # one progress report: rank 0's
        learn.remove_cb(ProgressCallback)
        learn.logger = _silent
    users = built.users if built.users is not None else data.users
    items = built.items if built.items is not None else data.items
    learn.cf = CollabModel(
        model=learn.model, users=users, items=items, scale=data.scale, preset=p,
        columns={"user": data.user, "item": data.item, "rating": data.rating, "timestamp": data.timestamp},
        global_mean=data.global_mean, item_info=data.item_info, data=data, implicit=data.implicit,
    )
    check_header_size(learn.cf)  # a model that could never be saved is refused before it trains
    if users is data.users and items is data.items:  # the data's own codes: no copy of the training table
        x, y = data.tensors("train")
        learn.cf.set_training_rows(x[:, 0].to(torch.int32), x[:, 1].to(torch.int32), y)
    else:
        train = data.train
        learn.cf.set_training_rows(torch.from_numpy(users.encode(train[data.user]).astype(np.int32)),
                                   torch.from_numpy(items.encode(train[data.item]).astype(np.int32)),
                                   torch.from_numpy(train[data.rating].to_numpy(np.float32)))
    return learn


def _weigh_new_users(net: nn.Module, p: Preset) -> None:
    """How much a new user's metadata counts in a hybrid rating head, as the feature check chose."""
    head = rating_head(net)
    if isinstance(head, HybridDotBias) and p.chosen is not None:
        head.user_feature_weight = p.chosen.user_feature_weight
        chart = p.chosen.new_users.get("list_chart")
        head.new_user_chart = None if chart is None else float(chart)


def _silent(*_: Any) -> None:
    """A logger that prints nothing (fastai prints each epoch's row when bars are off)."""
