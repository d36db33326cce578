"""The learner factory: cflearn data + a preset (or your own module) -> a plain fastai ``Learner``."""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from fastai.callback.progress import ProgressCallback
from fastai.learner import CastToTensor, Learner
from fastai.optimizer import Adam
from torch import nn

from .._device import resolve_device
from .._errors import ConfigError, ConfigWarning, caller_level, check_count, check_number, check_seed, closest
from ..callbacks import (
    ColdRows,
    DDPTrainer,
    KeepBest,
    LossHistory,
    NaNGuard,
    PresetNote,
    RowL2,
    StopAfterWarmUp,
    fill_cold_rows,
)
from ..data._data import CollabData
from ..kinds import Built, Kind, check_built, get_kind
from ..kinds._feature_settle import needs_choice
from ..kinds._presets import DEFAULT_PRESET, OVERRIDABLE, Preset, get_preset
from ..kinds._rating import RMSE, OwnModule, RatingLoss
from ..kinds._settle import (
    check_has_validation,
    check_memory,
    check_own_model,
    check_y_range,
    refuse_feature_overrides,
    resolve,
)
from ..models import HybridDotBias, contract, ranking_head, rating_head
from ..optim import adamw, lazy_adamw
from ..serve._collab import CollabModel, as_collab
from ..serve._export import check_header_size
from ._distributed import init_from_env, is_main, rank, unwrap, world
from ._launch import TorchrunEnv, torchrun_env

__all__ = ["collab_learner", "train", "resolve_device"]


def collab_learner(
    data: CollabData,
    preset: str | Preset | None = None,
    *,
    model: nn.Module | None = None,
    n_factors: int | None = None,
    use_nn: bool | None = None,
    emb_szs: dict[str, int] | None = None,
    layers: Sequence[int] | None = None,
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

    The result is a plain fastai ``Learner``: ``lr_find``, ``fit_one_cycle``, ``get_preds``,
    ``predict``, ``show_results``, ``dls.test_dl``, callbacks and the recorder work unchanged.
    cflearn adds ``learn.cf`` (a :class:`CollabModel` with the ID vocabularies) and its callbacks:
    ``ColdRows`` (unseen IDs predicted as the average user/item), ``LossHistory`` (raw per-batch
    losses for :func:`cflearn.plot_loss`), ``NaNGuard``, ``RowL2`` when the preset asks, and
    ``PresetNote`` (says once when a fit uses other settings than the preset was tuned with).

    Args:
        data: from :func:`cflearn.from_df`.
        preset: ``"dual"`` (the default: ratings and top-N lists from one model; on implicit data its
            ranking head alone), ``"fast"`` (ratings), ``"best"`` (ratings with side features),
            ``"rank"`` (lists), ``"book"`` (fastbook ch. 8 via fastai's ``CollabDataLoaders``),
            ``"book_nn"``, ``"fast_nn"``, ``"best_nn"``, or a :class:`Preset`. Left out with
            ``model=`` (your module predicts ratings) it is ``"fast"``, with ``use_nn=True`` ``"fast_nn"``.
        model: your own ``nn.Module`` taking the ``(n, 2)`` batch of (user index, item index) and
            returning one score per row; it trains with the preset's loaders and schedule.
        n_factors: embedding size (overrides the preset's).
        use_nn: fastai's EmbeddingNN instead of the dot product (overrides the preset's).
        emb_szs: the NN's embedding sizes (overrides the preset's).
        layers: the NN's hidden layers (overrides the preset's).
        bs: batch size (overrides the preset's).
        wd: weight decay (overrides the preset's).
        row_l2: L2 on the embedding rows a batch uses (overrides the preset's).
        bias_l2: L2 on the bias rows a batch uses (overrides the preset's).
        epochs: epochs of the one-cycle schedule (overrides the preset's).
        lr: peak learning rate (overrides the preset's).
        y_pad: padding of y_range beyond the rating scale (overrides the preset's).
        y_range: explicit sigmoid range (it must cover the ratings); default from the data's scale
            and the preset's rule.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available.
        seed: seeds weights and shuffling (without touching torch's global generator); default
            ``data.seed``. Same seed, same result.
        progress: show fastai's progress bars.
        **learner_kwargs: any other :class:`Preset` field (``optimizer``, ``loader``, ``dropout``, ...)
            overrides the preset (side features are declared on the data: :func:`cflearn.from_df`); the
            rest go to fastai's ``Learner`` (``metrics``, ``cbs``, ...).

    Raises:
        ConfigError: an unknown option (with the closest name), or a setting that does not apply
            (``emb_szs`` on a dot-product model, item features on an NN, a ``y_range`` that does
            not cover the ratings, ...).
    """
    if not isinstance(data, CollabData):
        raise ConfigError(f"collab_learner needs the CollabData from cflearn.from_df, got {type(data).__name__}")
    if preset is None:  # the default: both heads; your own module or use_nn=True predict ratings
        preset = "fast" if model is not None else "fast_nn" if use_nn else DEFAULT_PRESET
    base = get_preset(preset)
    refuse_feature_overrides(learner_kwargs, "collab_learner")
    extra = {k: learner_kwargs.pop(k) for k in list(learner_kwargs) if k in OVERRIDABLE}
    _check_learner_kwargs(learner_kwargs)
    given = {k: v for k, v in dict(extra, n_factors=n_factors, use_nn=use_nn, emb_szs=emb_szs, layers=layers,
                                  bs=bs, wd=wd, row_l2=row_l2, bias_l2=bias_l2, epochs=epochs, lr=lr,
                                  y_pad=y_pad).items() if v is not None}
    if model is not None:
        check_own_model(model, given, y_range)
    p = resolve(data, base.replace(**given), given, custom=model is not None)
    check_has_validation(data)
    kind = OwnModule(model) if model is not None else get_kind(p.kind)
    dev, p, shard = _placement(p, kind, device)
    seed_given = seed  # the feature check seeds its inner models with it (None: theirs)
    seed = check_seed(data.seed if seed is None else seed)
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
    if model is None:
        built = check_built(kind, built, p)
    user_cbs = list(learner_kwargs.pop("cbs", None) or [])
    learn = _assemble(data, p, built, user_cbs, dict(learner_kwargs), custom=model is not None, shard=shard,
                      device=dev, progress=progress)
    learn.cf_choice = None  # the feature check that cflearn.fit runs first, when the preset asks for one
    if model is None and needs_choice(p):
        learn.cf_choice = _Pending(given, y_range, device, seed_given, progress, dict(learner_kwargs),
                                   {id(cb) for cb in learn.cbs} - {id(cb) for cb in user_cbs})
    return learn


@dataclasses.dataclass
class _Pending:
    """What :func:`cflearn.fit` needs to run a preset's feature check and rebuild the learner with its choice."""

    given: dict[str, Any]
    y_range: Any
    device: Any
    seed: int | None
    progress: bool
    learner_kwargs: dict[str, Any]
    own_cbs: set[int]


def _placement(p: Preset, kind: Kind, device: Any) -> tuple[torch.device, Preset, tuple[int, int]]:
    """The device, and under torchrun (or your own process group) data-parallel training's settings."""
    dev = resolve_device(device)
    if init_from_env(dev):
        if not kind.distributed:
            raise ConfigError(f"preset {p.name!r} trains in one process (ranking heads are not sharded); run it "
                              "without torchrun / --nproc, or train preset 'fast' or 'best' in several processes")
        if p.loader != "fast":
            raise ConfigError(f"preset {p.name!r} uses fastai's own loaders, which cflearn does not shard across "
                              "processes; train distributed with a fast preset (fast, best, fast_nn, best_nn)")
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


def _check_learner_kwargs(kwargs: dict[str, Any]) -> None:
    """Every remaining keyword must be one of fastai ``Learner``'s (else a did-you-mean error)."""
    accepted = set(inspect.signature(Learner.__init__).parameters) - {"self", "dls", "model"}
    for name in kwargs:
        if name not in accepted:
            ours = set(inspect.signature(collab_learner).parameters) | OVERRIDABLE
            hint = closest(name, sorted(ours | accepted))
            raise ConfigError(f"unknown option {name!r}{hint}; see help(cflearn.collab_learner) and cflearn.PRESETS")


def _silent(*_: Any) -> None:
    """A logger that prints nothing (fastai prints each epoch's row when bars are off)."""


def train(learn: Learner, epochs: int | None = None, lr: float | None = None, wd: float | None = None, *,
        keep_best: bool = False, patience: int | None = None, interrupt: Literal["keep", "raise"] = "keep",
        **kwargs: Any) -> Learner:
    """Train with the preset's one-cycle schedule: :func:`cflearn.fit` without the preset's feature
    check (a learner whose preset still has one to run trains with the features it was built with).
    The arguments and what an interruption keeps are :func:`cflearn.fit`'s."""
    cf = as_collab(learn)
    if cf.data is None:
        raise ConfigError("cflearn.fit trains a learner from cflearn.collab_learner (it reads the preset it was built "
                          "with); a loaded model is for predictions: build a new learner to train")
    preset = cf.preset
    epochs = check_count("epochs", preset.epochs if epochs is None else epochs)
    lr = check_number("lr", preset.lr if lr is None else lr, positive=True)
    if patience is not None:
        patience = check_count("patience", patience)
    keep = KeepBest() if keep_best or patience is not None else None
    warm = math.ceil(float(kwargs.get("pct_start", 0.25)) * epochs)  # fit_one_cycle's warm-up epochs
    stop = [StopAfterWarmUp(warm, monitor="valid_loss", patience=patience)] if patience is not None else []
    cbs = list(kwargs.pop("cbs", None) or []) + ([keep] if keep is not None else []) + stop
    notes = [cb for cb in learn.cbs if isinstance(cb, PresetNote)]
    for note in notes:
        note.in_cflearn_fit = True  # cflearn.fit chooses the preset's settings or the caller's on purpose
    t0 = time.perf_counter()
    try:
        learn.fit_one_cycle(epochs, lr, wd=preset.wd if wd is None else wd, cbs=cbs, **kwargs)
    except KeyboardInterrupt:
        guard = next((cb for cb in learn.cbs if isinstance(cb, NaNGuard)), None)
        if guard is None:  # the user removed the callback that keeps the last good weights
            raise
        learn.model = unwrap(learn.model)  # interrupted inside a distributed fit: no after_fit ran
        if hasattr(guard, "good"):  # else interrupted before the first step: the weights are untouched
            learn.model.load_state_dict(guard.good)
            fill_cold_rows(learn.model)
        learn.model.eval()
        epoch = getattr(guard, "good_epoch", 0)
        print(f"training interrupted: kept the weights after epoch {epoch} "
              f"({'the start' if epoch == 0 else 'the last complete epoch'})", file=sys.stderr)
        if interrupt == "raise":
            raise
    finally:
        for note in notes:
            note.in_cflearn_fit = False
    cf.fit_seconds = time.perf_counter() - t0
    cf.epochs_run = len(vars(learn.recorder).get("values") or [])  # none when interrupted before the first epoch
    cf.kept_epoch = keep.best_epoch if keep is not None and keep.best is not None else cf.epochs_run
    cf.kept_heads = dict(keep.head_epochs) if keep is not None and keep.head_epochs else None
    return learn
