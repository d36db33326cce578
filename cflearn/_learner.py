"""The learner factory: cflearn data + a preset (or your own module) -> a plain fastai ``Learner``."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from types import MethodType
from typing import Any, Literal

import numpy as np
import torch
from fastai.callback.progress import ProgressCallback
from fastai.callback.tracker import EarlyStoppingCallback
from fastai.collab import TabularCollab
from fastai.data.block import TransformBlock
from fastai.learner import CastToTensor, Learner, Metric
from fastai.losses import MSELossFlat
from fastai.optimizer import Adam
from fastai.tabular.core import Categorify
from fastai.tabular.model import get_emb_sz, tabular_config
from torch import nn
from torch.nn import functional as F

from ._collab import CollabModel, as_collab
from ._data import CollabData
from ._device import resolve_device
from ._distributed import init_from_env, is_main, rank, unwrap, world
from ._dual import DualRMSE, dual_parts
from ._errors import (
    CflearnError,
    ColumnError,
    ConfigError,
    ConfigWarning,
    DataError,
    check_count,
    check_number,
    check_seed,
    closest,
)
from ._feature_trust import choose_user_feature_weight
from ._features import check_feature_columns, has_feature, hybrid_data
from ._launch import TorchrunEnv, torchrun_env
from ._loaders import Decoder, fast_loaders
from ._nn import NN
from ._presets import DEFAULT_PRESET, PRESETS, Preset, get_preset, y_range_for
from ._ranking import RANK_ONLY, TargetItems, check_dual, check_ranking, ranking_parts
from ._vocab import item_titles
from .callbacks import ColdRows, DDPTrainer, KeepBest, LossHistory, NaNGuard, PresetNote, RowL2, fill_cold_rows
from .models import DotBias, HybridDotBias, contract, ranking_head, rating_head
from .optim import adamw, lazy_adamw

__all__ = ["collab_learner", "fit", "resolve_device"]


_ARCH = ("n_factors", "use_nn", "emb_szs", "layers", "item_features", "user_features", "content_based", "y_range",
         "y_pad", "y_range_rule")


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
        **learner_kwargs: any other :class:`Preset` field (``optimizer``, ``item_features``, ``loader``,
            ...) overrides the preset; the rest go to fastai's ``Learner`` (``metrics``, ``cbs``, ...).

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
    fields = {f.name for f in dataclasses.fields(Preset)} - {"name", "description"}
    extra = {k: learner_kwargs.pop(k) for k in list(learner_kwargs) if k in fields}
    _check_learner_kwargs(learner_kwargs, fields)
    given = {k: v for k, v in dict(extra, n_factors=n_factors, use_nn=use_nn, emb_szs=emb_szs, layers=layers,
                                  bs=bs, wd=wd, row_l2=row_l2, bias_l2=bias_l2, epochs=epochs, lr=lr,
                                  y_pad=y_pad).items() if v is not None}
    if model is not None:
        _check_own_model(model, given, y_range)
    p = _resolve_preset(data, base.replace(**given), given, custom=model is not None)
    selection: dict[str, Any] = {}
    if p.select_features and (p.item_features or p.user_features) and not {"item_features", "user_features"} & \
            set(given) and model is None and torchrun_env() is None:  # under torchrun: as is
        p, selection = _select_features(data, p, seed, device=device, keep_bias_l2="bias_l2" in given)
    trust: tuple[float, dict[str, Any]] = (1.0, {})
    if p.select_features and p.user_features and model is None and torchrun_env() is None:
        trust = choose_user_feature_weight(data, p, seed, device=device)  # new users: do their features help?
    if len(data.valid_idx) == 0:
        if not data.valid_pct:
            raise ConfigError("the data has no validation rows (valid_pct=0); training needs some: use valid_pct=0.2")
        if len(data.ratings) >= 10:  # enough rows: the split's settings held none out
            raise DataError(f"the split ({data.split}, valid_pct={data.valid_pct:g}) holds out no validation rows "
                            f"from {len(data.ratings):,} ratings; raise valid_pct or use another split")
        raise DataError(f"{len(data.ratings)} rating(s) are too few to hold out validation rows; add ratings")
    dev = resolve_device(device)
    if init_from_env(dev):  # under torchrun (or your own process group): data-parallel training
        if p.ranking or p.dual:
            raise ConfigError(f"preset {p.name!r} trains in one process (ranking heads are not sharded); run it "
                              "without torchrun / --nproc, or train preset 'fast' or 'best' in several processes")
        if p.loader != "fast":
            raise ConfigError(f"preset {p.name!r} uses fastai's own loaders, which cflearn does not shard across "
                              "processes; train distributed with a fast preset (fast, best, fast_nn, best_nn)")
        if dev.type == "cuda":
            dev = torch.device("cuda", (torchrun_env() or TorchrunEnv(0, 1, 0)).local_rank)
        if p.optimizer == "lazy":  # DDP's sparse-gradient path is not reliable (it corrupted memory at 20M
            p = p.replace(optimizer="adamw")  # ratings on gloo; NCCL has none): dense gradients under DDP
    shard = (rank(), world())
    seed = data.seed if seed is None else seed
    seed = check_seed(seed)
    _check_memory(data, p)
    if p.ranking and y_range is not None:
        raise ConfigError(f"y_range does not apply to preset {p.name!r}: a ranking model's scores are not ratings")
    yr = _y_range(data, p, y_range)

    users, items = data.users, data.items
    titles = item_titles(data.item_info)
    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's global generator untouched
        if seed is not None:
            torch.manual_seed(seed)
        rank_loss = None
        dls: Any
        net: nn.Module
        loss_func: Any = None
        if p.ranking:  # a user is the bag of their items; the loss ranks the catalogue
            decoder = Decoder(data.user, data.item, data.rating, users, items, titles)
            dls, ranker, rank_loss, p = ranking_parts(data, p, device=dev, seed=seed, decoder=decoder,
                                                      epochs_given="epochs" in given)
            net = ranker
        elif p.dual:  # a rating head and a ranking head, trained together
            codes: np.ndarray = data.codes
            if p.item_features or p.user_features:
                hyb = hybrid_data(data, p.item_features, p.user_features)
                users, items = hyb.users, hyb.items
                rating_net: DotBias | HybridDotBias = _hybrid(p, hyb, yr)
                codes, parts = hyb.codes.numpy(), {part: hyb.tensors(part) for part in ("train", "valid")}
            else:
                rating_net = DotBias(p.n_factors, len(users), len(items), y_range=yr)
                parts = {part: data.tensors(part) for part in ("train", "valid")}
            decoder = Decoder(data.user, data.item, data.rating, users, items, titles)
            dls, net, loss_func, rank_loss, p = dual_parts(data, p, rating_net, codes, parts, device=dev, seed=seed,
                                                           decoder=decoder, epochs_given="epochs" in given)
        elif p.item_features or p.user_features or p.content_based:  # hybrid: rows known only from metadata too
            hyb = hybrid_data(data, p.item_features, p.user_features)
            users, items = hyb.users, hyb.items
            decoder = Decoder(data.user, data.item, data.rating, users, items, titles)
            dls = fast_loaders(*hyb.tensors("train"), *hyb.tensors("valid"), bs=p.bs, device=dev, seed=seed,
                               decoder=decoder, shard=shard)
            net = _hybrid(p, hyb, yr)
        else:
            if p.loader == "fastai":
                dls = _fastai_loaders(data, p.bs, dev, seed)
                for col, vocab in ((data.user, users), (data.item, items)):  # fastai's Categorify: same layout
                    if list(dls.classes[col]) != vocab.itos:
                        raise ConfigError(f"fastai laid out the {col!r} IDs differently from cflearn; use preset "
                                          "'fast' (loader='fast') for this table")
            else:
                decoder = Decoder(data.user, data.item, data.rating, users, items, titles)
                dls = fast_loaders(*data.tensors("train"), *data.tensors("valid"), bs=p.bs, device=dev, seed=seed,
                                   decoder=decoder, shard=shard)
            if model is not None:
                net = model
            elif p.use_nn:  # fastai's collab_learner recipe: fastai's embedding-size rule unless emb_szs says
                hidden = list(p.layers) or [p.n_factors]
                config = tabular_config(y_range=yr, ps=[p.dropout] * len(hidden) if p.dropout else None)
                net = NN(emb_szs=get_emb_sz(dls, dict(p.emb_szs or {})), layers=hidden, **config)
            else:
                net = DotBias.from_classes(p.n_factors, dls.classes, y_range=yr)

    head = rating_head(net)
    if isinstance(head, HybridDotBias):
        head.user_feature_weight = trust[0]
    spec = contract(net)
    has_tables = bool(spec.embeddings())
    l2 = [RowL2(p.row_l2, p.bias_l2)] if (p.row_l2 > 0 or p.bias_l2 > 0) and has_tables else []
    if model is not None and not has_tables:
        skipped = ["ColdRows (unknown IDs keep their untrained rows)"]
        if p.row_l2 > 0 or p.bias_l2 > 0:
            skipped.append(f"RowL2 (row_l2={p.row_l2:g}; regularise with wd=... instead)")
        warnings.warn(f"your {type(model).__name__} has no user/item tables cflearn knows (Contract.embeddings), so "
                      f"these callbacks are skipped: {'; '.join(skipped)}", ConfigWarning, stacklevel=2)
    cold = [ColdRows()] if has_tables else []
    note = [PresetNote(p.to_dict())] if p.loader == "fast" else []
    distributed = [DDPTrainer()] if shard[1] > 1 else []
    ranked = [TargetItems(rank_loss)] if rank_loss is not None else []
    cbs = [*distributed, *ranked, *cold, LossHistory(), NaNGuard(), *l2, *note,
           *(learner_kwargs.pop("cbs", None) or [])]
    learner_kwargs.setdefault("metrics", [] if p.ranking else [DualRMSE()] if p.dual else [RMSE()])
    learner_kwargs.setdefault("opt_func", {"adamw": adamw, "lazy": lazy_adamw}.get(p.optimizer, Adam))
    loss = loss_func if loss_func is not None else rank_loss if rank_loss is not None else (
        MSELossFlat() if p.loader == "fastai" else RatingLoss())
    learn = Learner(dls, net, loss_func=loss, wd=p.wd, cbs=cbs, **learner_kwargs)
    if rank_loss is not None:
        rank_loss.learn = learn  # the loss follows learn.model
    if p.loader == "fast":
        learn.remove_cb(CastToTensor)  # our loaders yield plain tensors: nothing to cast, one callback less
    if p.optimizer == "lazy":
        for table in spec.embeddings().values():
            table.sparse = True  # sparse row gradients for LazyAdamW
        list_head = ranking_head(net)
        if list_head is not None:
            list_head.sparse = True
    learn.model.to(dev)
    if not progress or not is_main():  # one progress report: rank 0's
        learn.remove_cb(ProgressCallback)
        learn.logger = _silent
    learn.cf = CollabModel(
        model=learn.model, users=users, items=items, scale=data.scale,
        preset=p.to_dict() | ({"feature_selection": selection} if selection else {}) |
        ({"new_user_features": trust[1]} if trust[1] else {}),
        columns={"user": data.user, "item": data.item, "rating": data.rating, "timestamp": data.timestamp},
        global_mean=data.global_mean, item_info=data.item_info, data=data, implicit=data.implicit,
    )
    if users is data.users and items is data.items:  # the data's own codes: no copy of the training table
        x, y = data.tensors("train")
        learn.cf.set_training_rows(x[:, 0].to(torch.int32), x[:, 1].to(torch.int32), y)
    else:
        train = data.train
        learn.cf.set_training_rows(torch.from_numpy(users.encode(train[data.user]).astype(np.int32)),
                                   torch.from_numpy(items.encode(train[data.item]).astype(np.int32)),
                                   torch.from_numpy(train[data.rating].to_numpy(np.float32)))
    return learn


def _hybrid(p: Preset, hyb: Any, yr: tuple[float, float]) -> HybridDotBias:
    """The hybrid model of a preset with side features."""
    def side(f: Any) -> tuple[torch.Tensor, torch.Tensor, int] | None:
        return None if f is None else (f.idx, f.weight, len(f.names))

    fi, fu = hyb.item_features, hyb.user_features
    return HybridDotBias(p.n_factors, len(hyb.users), len(hyb.items), items=side(fi), users=side(fu),
                         trained_items=hyb.trained_items, trained_users=hyb.trained_users, y_range=yr,
                         feature_names=fi.names if fi else None, user_feature_names=fu.names if fu else None,
                         item_spec=fi.spec if fi else None, user_spec=fu.spec if fu else None,
                         item_cf=not p.content_based)


def _check_memory(data: CollabData, p: Preset) -> None:
    """Refuse tables that cannot fit in this machine's memory before allocating them (weights, gradients and
    two optimizer states: 16 bytes per parameter)."""
    width = max([p.n_factors, *dict(p.emb_szs or {}).values()])
    rows = (3 * len(data.items) if p.ranking else len(data.users) + len(data.items)
            + (3 * len(data.items) if p.dual else 0))
    need = 16 * rows * (width + 1)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not Linux/macOS: no limit known
        return
    if need > have:
        raise ConfigError(f"n_factors={width} on {len(data.users) - 1:,} users and {len(data.items) - 1:,} items needs "
                          f"about {need / 2**30:,.0f} GB for the weights and optimizer state; this machine has "
                          f"{have / 2**30:,.0f} GB: use a smaller n_factors (e.g. 64)")


def _check_learner_kwargs(kwargs: dict[str, Any], fields: set[str]) -> None:
    """Every remaining keyword must be one of fastai ``Learner``'s (else a did-you-mean error)."""
    accepted = set(inspect.signature(Learner.__init__).parameters) - {"self", "dls", "model"}
    for name in kwargs:
        if name not in accepted:
            ours = set(inspect.signature(collab_learner).parameters) | fields
            hint = closest(name, sorted(ours | accepted))
            raise ConfigError(f"unknown option {name!r}{hint}; see help(cflearn.collab_learner) and cflearn.PRESETS")


def _check_own_model(model: Any, given: dict[str, Any], y_range: Any) -> None:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch nn.Module taking the (n, 2) batch of (user, item) indices, got "
                          f"{type(model).__name__}")
    arch = sorted(k for k in given if k in _ARCH) + (["y_range"] if y_range is not None else [])
    if arch:
        raise ConfigError(f"{', '.join(arch)} do(es) not apply when you pass model=: your module defines its own "
                          "architecture and output")


def _resolve_preset(data: CollabData, p: Preset, given: dict[str, Any], *, custom: bool) -> Preset:
    """Check the preset and settle what depends on the data: batch cap, optimizer, side features."""
    for name in ("bs", "epochs", "n_factors"):
        check_count(name, getattr(p, name))
    for name in ("lr", "wd", "row_l2", "bias_l2"):
        check_number(name, getattr(p, name), positive=name == "lr")
    if p.dual:
        return _side_features(data, check_dual(p, given, custom=custom, implicit=data.implicit,
                                               n_users=len(data.users) - 1), given)
    if data.implicit and not p.ranking:
        raise ConfigError(f"the data is implicit (interactions, no ratings) and preset {p.name!r} predicts ratings; "
                          "train the default preset ('dual', which trains its ranking head alone on interactions) "
                          "or preset='rank'")
    if "dropout" in given and not p.ranking:  # a ranking preset checks its own below
        if not p.use_nn:
            raise ConfigError(f"dropout applies to ranking presets (e.g. 'rank') and NN models (use_nn=True, e.g. "
                              f"'fast_nn'); preset {p.name!r} is a dot product: regularise it with row_l2= or wd=")
        if not (isinstance(p.dropout, (int, float)) and not isinstance(p.dropout, bool) and 0 <= p.dropout < 1):
            raise ConfigError(f"dropout must be a number in [0, 1), got {p.dropout!r}")
    if p.ranking or any(k in given for k in RANK_ONLY):
        return _side_features(data, check_ranking(p, given, custom=custom), given)
    if "bs" not in given and p.loader == "fast":  # small tables: keep at least ~16 steps per epoch
        p = p.replace(bs=min(p.bs, max(64, 2 ** int(np.log2(max(1, len(data.train_idx) // 16))))))
    if p.optimizer == "auto":  # dense updates cost O(table), lazy ones O(batch): take the cheaper
        small = len(data.users) + len(data.items) < 16 * p.bs
        p = p.replace(optimizer="adamw" if small or custom else "lazy")
    if custom:
        if data.user_features or data.item_features:
            warnings.warn("your own model= takes (user, item) indices only, so the side features declared on the "
                          "data are not used", ConfigWarning, stacklevel=3)
        return p.replace(item_features=(), user_features=())
    if not p.use_nn:
        for name in ("emb_szs", "layers"):
            if name in given and given[name]:
                raise ConfigError(f"{name} only applies to NN models (use_nn=True); the dot-product model's size "
                                  "is n_factors")
    elif p.emb_szs:
        for key, size in dict(p.emb_szs).items():
            if key not in (data.user, data.item):
                raise ColumnError(f"emb_szs key {key!r} is not the user or item column"
                                  f"{closest(str(key), [data.user, data.item])}; use "
                                  f"{{{data.user!r}: ..., {data.item!r}: ...}}")
            check_count(f"emb_szs[{key!r}]", size)
    return _side_features(data, p, given)


def _side_features(data: CollabData, p: Preset, given: dict[str, Any]) -> Preset:
    """Settle the side features: those declared on the data replace a feature preset's own list; a
    preset without side features says it leaves declared ones unused; every column must exist."""
    declared = [f"{side} features {cols}" for side, cols in (("user", data.user_features),
                                                             ("item", data.item_features)) if cols]
    if p.dual and declared:  # the two-headed model's rating head uses the features declared on the data
        p = p.replace(item_features=data.item_features or (), user_features=data.user_features or ())
    uses = bool(p.item_features or p.user_features or p.content_based)
    if not uses and declared:
        warnings.warn(f"preset {p.name!r} has no side features, so the data's {' and '.join(declared)} are not used; "
                      "use preset='best' (hybrid) or 'content' (content-based)", ConfigWarning, stacklevel=4)
        return p
    if not uses:
        return p
    if p.use_nn:
        raise ConfigError(f"the NN model takes no side features, so item_features={tuple(p.item_features)} / "
                          f"user_features={tuple(p.user_features)} would be dropped; use preset='best_nn' or "
                          "'fast_nn', or pass item_features=() to train without them")
    if p.loader != "fast":
        raise ConfigError("side features need the fast loader (loader='fast')")
    if "item_features" not in given and data.item_features is not None:
        p = p.replace(item_features=data.item_features)
    if "user_features" not in given and data.user_features:
        p = p.replace(user_features=data.user_features)
    check_feature_columns(data.user_info, p.user_features, "user")
    explicit = "item_features" in given or data.item_features is not None
    p = p.replace(item_features=_usable_features(data, p, explicit=explicit)) if p.item_features else p
    if p.content_based and not p.item_features:
        raise ConfigError(f"preset {p.name!r} is content-based: it needs item features (e.g. genres); pass "
                          "items=... and item_features=... to cflearn.from_df")
    return p


def _usable_features(data: CollabData, p: Preset, *, explicit: bool) -> tuple[str, ...]:
    """The preset's item features that apply to ``data``: errors for the ones you asked for, a warning
    for a preset's defaults that this data lacks."""
    feats = tuple(p.item_features)
    info = data.item_info
    cols = [] if info is None else [str(c) for c in info.columns]
    if info is None:
        why = f"item_features={feats} need an items table: pass items=... to cflearn.from_df"
    else:
        missing = [f for f in feats if not has_feature(info, f)]
        if not missing:
            return feats
        why = (f"item_features={feats}: {missing[0]!r} is not in the items table{closest(missing[0], cols)}; "
               f"columns are {cols}")
    if explicit:
        raise ColumnError(why) if info is not None else ConfigError(why)
    kept = tuple(f for f in feats if info is not None and has_feature(info, f))
    if p.select_features and kept:  # 'the features the data has': the others are not expected
        return kept
    using = f"item features {kept}" if kept else "no item features (the plain dot-product model, as preset fast)"
    warnings.warn(f"preset {p.name!r}: {why}; training with {using}", ConfigWarning, stacklevel=3)
    return kept


def _select_features(data: CollabData, p: Preset, seed: int | None, *, device: Any = None,
                     keep_bias_l2: bool = False) -> tuple[Preset, dict[str, Any]]:
    """The preset with all its side features, with its item features only (when it has user features
    too), or the plain dot-product model (``fast``'s bias penalty unless the caller set one): whichever
    predicts best when trained on 90% of the training rows and scored on the other 10% (seeded); ties
    keep more features."""
    from ._data import from_df
    from ._predict import predict
    from .metrics import rmse

    items, users = (info.reset_index() if info is not None else None for info in (data.item_info, data.user_info))
    try:  # features not declared here: each candidate names its own
        inner = from_df(data.train, data.user, data.item, data.rating, data.timestamp, valid_pct=0.1,
                        seed=0 if seed is None else seed, items=items, users=users)
    except CflearnError:  # too few rows to hold some out: keep the features
        return p, {}
    valid = inner.valid
    everything = (*p.item_features, *p.user_features)
    # the two-headed preset's features are its rating head's: compare rating models of the head's size
    probe = PRESETS["best"].replace(n_factors=p.n_factors, row_l2=p.row_l2, bias_l2=p.bias_l2,
                                    item_features=p.item_features, user_features=p.user_features) if p.dual else p
    candidates = {everything: probe}
    if p.user_features and p.item_features:
        candidates[tuple(p.item_features)] = probe.replace(user_features=())
    candidates[()] = probe.replace(item_features=(), user_features=(),
                                   bias_l2=p.bias_l2 if keep_bias_l2 or p.dual else PRESETS["fast"].bias_l2)
    scores = {}
    for feats, cand in candidates.items():
        learn = collab_learner(inner, cand.replace(select_features=False), seed=seed, device=device,
                               progress=False)
        fit(learn)
        pred = predict(learn, valid[inner.user].tolist(), valid[inner.item].tolist())
        scores[feats] = rmse(pred["score"].to_numpy(), valid[inner.rating].to_numpy())
    chosen = min(candidates, key=lambda f: (scores[f], -len(f)))
    note = {"kept": chosen == everything, "features": list(everything), "chosen": list(chosen),
            "inner_rmse": {", ".join(f) or "none": scores[f] for f in candidates},
            "inner_rmse_with": scores[everything], "inner_rmse_without": scores[()], "inner_valid_rows": len(valid)}
    if chosen != everything:
        dropped = [f for f in everything if f not in chosen]
        tried = "; ".join(f"{', '.join(f) or 'none'}: {scores[f]:.4f}" for f in candidates)
        warnings.warn(f"preset {p.name!r}: the side features {tuple(dropped)} did not help on an inner split of the "
                      f"training rows (RMSE {tried}); training without them (pass item_features=... / "
                      "user_features=... to collab_learner to insist)", ConfigWarning, stacklevel=3)
        won = candidates[chosen]
        p = p.replace(item_features=won.item_features, user_features=won.user_features) if p.dual else won
    return p, note


def _y_range(data: CollabData, p: Preset, y_range: Any) -> tuple[float, float]:
    lo, hi = data.scale
    if y_range is None:
        return y_range_for(data.scale, p.y_range_rule, p.y_pad)
    try:
        a, b = (float(v) for v in y_range)
    except (TypeError, ValueError):
        raise ConfigError(f"y_range must be two numbers (low, high), got {y_range!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ConfigError(f"y_range must be (low, high) with low < high, got {y_range!r}")
    if a > lo or b < hi:
        raise ConfigError(f"y_range ({a:g}, {b:g}) does not cover the ratings {lo:g}-{hi:g}; use "
                          f"({lo - 0.5:g}, {hi + 0.5:g}) (or leave y_range out: it is padded from the scale)")
    if a == lo or b == hi:
        warnings.warn(f"y_range ({a:g}, {b:g}) ends at the rating scale {lo:g}-{hi:g}, and a sigmoid never reaches "
                      "its ends, so the extreme ratings cannot be predicted; pad it, e.g. "
                      f"({lo - 0.5:g}, {hi + 0.5:g})",
                      ConfigWarning, stacklevel=3)
    return (a, b)


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


def _silent(*_: Any) -> None:
    """A logger that prints nothing (fastai prints each epoch's row when bars are off)."""


def _fastai_loaders(data: CollabData, bs: int, device: torch.device, seed: int | None) -> Any:
    """fastai's ``CollabDataLoaders.from_df`` recipe, on cflearn's split (for the course presets).

    fastai's tabular training loader draws each epoch from numpy's global generator (with
    replacement); with a seed, it draws from its own seeded generator, and building the loaders
    leaves the global state as it was.
    """
    frame = data.ratings[[data.user, data.item, data.rating]]
    state = np.random.get_state()
    try:
        with warnings.catch_warnings():  # fastai turns pandas' read-only (copy-on-write) arrays into tensors
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
            to = TabularCollab(frame, [Categorify], [data.user, data.item], y_names=[data.rating],
                               y_block=TransformBlock(), splits=(list(data.train_idx), list(data.valid_idx)))
            dls = to.dataloaders(bs=bs, device=device)
    finally:
        np.random.set_state(state)
    if seed is not None:
        train = dls.train
        train.cf_random = np.random.RandomState(seed)
        train.get_idxs = MethodType(_seeded_idxs, train)  # a method: fastai's `new` does not copy it
    return dls


def _seeded_idxs(self: Any) -> list[int]:
    """fastai's ``TabWeightedDL.get_idxs`` drawing from the loader's own seeded generator."""
    if self.n == 0 or not self.shuffle:
        return list(type(self).get_idxs(self))
    return list(self.cf_random.choice(self.n, self.n, p=self.wgts))


def fit(learn: Learner, epochs: int | None = None, lr: float | None = None, wd: float | None = None, *,
        keep_best: bool = False, patience: int | None = None, interrupt: Literal["keep", "raise"] = "keep",
        **kwargs: Any) -> Learner:
    """Train with the preset's one-cycle schedule (``learn.fit_one_cycle(epochs, lr, wd=wd)``).

    Interrupting (Ctrl-C, or the notebook's stop button) keeps the learner usable: the weights of
    the last completed epoch are put back, a message says so, and the learner is returned.

    Args:
        learn: from :func:`collab_learner`.
        epochs: epochs of the one-cycle schedule (overrides the preset's).
        lr: peak learning rate (overrides the preset's).
        wd: weight decay (overrides the preset's).
        keep_best: end with the weights of the epoch with the lowest validation loss (kept in
            memory by :class:`cflearn.callbacks.KeepBest`), not those of the last epoch.
        patience: stop after this many epochs without a lower validation loss (fastai's
            ``EarlyStoppingCallback``), keeping the best epoch's weights (implies ``keep_best``).
        interrupt: on Ctrl-C, after putting the last complete epoch's weights back, ``"keep"``
            returns the learner (notebooks), ``"raise"`` re-raises ``KeyboardInterrupt`` (scripts).
        **kwargs: passed to ``fit_one_cycle``.

    Returns:
        The same learner, trained; ``learn.cf.fit_seconds`` holds the wall time.
    """
    cf = as_collab(learn)
    preset = cf.preset
    epochs = check_count("epochs", preset["epochs"] if epochs is None else epochs)
    lr = check_number("lr", preset["lr"] if lr is None else lr, positive=True)
    if patience is not None:
        patience = check_count("patience", patience)
    keep = KeepBest() if keep_best or patience is not None else None
    stop = [EarlyStoppingCallback(monitor="valid_loss", patience=patience)] if patience is not None else []
    cbs = list(kwargs.pop("cbs", None) or []) + ([keep] if keep is not None else []) + stop
    notes = [cb for cb in learn.cbs if isinstance(cb, PresetNote)]
    for note in notes:
        note.in_cflearn_fit = True  # cflearn.fit chooses the preset's settings or the caller's on purpose
    t0 = time.perf_counter()
    try:
        learn.fit_one_cycle(epochs, lr, wd=preset["wd"] if wd is None else wd, cbs=cbs, **kwargs)
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
    return learn
