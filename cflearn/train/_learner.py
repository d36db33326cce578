"""``cflearn.collab_learner``: cflearn data + a preset (or your own module) -> a plain fastai ``Learner``.

Three steps: settle the preset on the data (:mod:`cflearn.kinds`), choose its side features when it asks
for a check (:mod:`._select`: it trains inner models), then assemble (:mod:`._factory`)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from fastai.learner import Learner
from torch import nn

from .._device import resolve_device
from .._errors import ConfigError, check_seed, closest
from ..data._data import CollabData
from ..kinds import get_kind
from ..kinds._feature_settle import needs_choice
from ..kinds._presets import DEFAULT_PRESET, OVERRIDABLE, Preset, get_preset
from ..kinds._rating import OwnModule
from ..kinds._settle import check_has_validation, check_own_model, refuse_feature_overrides, resolve
from ._distributed import is_main
from ._factory import build_learner
from ._select import choose

__all__ = ["collab_learner", "resolve_device"]


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

    A preset that checks its side features (``best``; ``dual`` on data with declared features) runs the
    check here, before building: two or three inner models train on an inner split of the training rows
    and the choice is printed (:func:`cflearn.select_features`). The learner is built once, with the
    features it trains with, so ``lr_find`` and fastai's ``fit_one_cycle`` see the checked model too. To
    build several learners from one check, pass ``select_features``'s result as the preset.

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
    seed_given = seed  # the feature check seeds its inner models with it (None: theirs)
    seed = check_seed(data.seed if seed is None else seed)
    if model is None and needs_choice(p):  # the step between data and factory: it trains, and says so
        chosen = choose(data, p, given, seed=seed_given, device=device, say=print if progress and is_main() else None)
        p = resolve(data, chosen.replace(**given), given)  # settled for the kind chosen (dot or hybrid)
    kind = OwnModule(model) if model is not None else get_kind(p.kind)
    return build_learner(data, p, kind, device=device, seed=seed, y_range=y_range, progress=progress,
                         cbs=list(learner_kwargs.pop("cbs", None) or []), learner_kwargs=learner_kwargs,
                         custom=model is not None)


def _check_learner_kwargs(kwargs: dict[str, Any]) -> None:
    """Every remaining keyword must be one of fastai ``Learner``'s (else a did-you-mean error)."""
    accepted = set(inspect.signature(Learner.__init__).parameters) - {"self", "dls", "model"}
    for name in kwargs:
        if name not in accepted:
            ours = set(inspect.signature(collab_learner).parameters) | OVERRIDABLE
            hint = closest(name, sorted(ours | accepted))
            raise ConfigError(f"unknown option {name!r}{hint}; see help(cflearn.collab_learner) and cflearn.PRESETS")
