"""Settling a preset's side features against the data: the declared ones replace a feature
preset's own list, a preset without side features says it leaves them unused, and every column
must exist (:meth:`cflearn.kinds.Kind.settle` calls it; the feature tables themselves are
:mod:`cflearn.data._features`)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .._errors import ColumnError, ConfigError, ConfigWarning, caller_level, closest
from ..data._features import check_feature_columns, has_feature
from ..train._launch import torchrun_env
from ._presets import Preset

if TYPE_CHECKING:
    from ..data._data import CollabData

__all__ = ["settle_features", "needs_choice"]


def settle_features(data: CollabData, p: Preset) -> Preset:
    """Settle the side features: those declared on the data replace a feature preset's own list; a
    preset without side features says it leaves declared ones unused; every column must exist. A
    preset whose features were chosen (:func:`cflearn.select_features`) keeps its lists."""
    chosen = p.chosen is not None  # chosen already: the lists are the choice
    declared = [f"{side} features {cols}" for side, cols in (("user", data.user_features),
                                                             ("item", data.item_features)) if cols]
    if p.dual and declared and not chosen:  # the two-headed model's rating head uses the declared features
        p = p.replace(item_features=data.item_features or (), user_features=data.user_features or ())
    uses = bool(p.item_features or p.user_features or p.content_based)
    if not uses and declared:
        if not chosen:
            warnings.warn(f"preset {p.name!r} has no side features, so the data's {' and '.join(declared)} are not "
                          "used; use preset='best' (hybrid) or 'content' (content-based)", ConfigWarning,
                          stacklevel=caller_level())
        return p
    if not uses:
        return p
    if p.use_nn:
        raise ConfigError(f"the NN model takes no side features, so item_features={tuple(p.item_features)} / "
                          f"user_features={tuple(p.user_features)} would be dropped; use preset='best_nn' or "
                          "'fast_nn' (they train without side features)")
    if p.loader != "fast":
        raise ConfigError("side features need the fast loader (loader='fast')")
    if not chosen and data.item_features is not None:
        p = p.replace(item_features=data.item_features)
    if not chosen and data.user_features:
        p = p.replace(user_features=data.user_features)
    check_feature_columns(data.user_info, p.user_features, "user")
    explicit = chosen or data.item_features is not None
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
    warnings.warn(f"preset {p.name!r}: {why}; training with {using}", ConfigWarning, stacklevel=caller_level())
    return kept


def needs_choice(p: Preset) -> bool:
    """Whether a settled preset still has a feature check to run: its features and the weight of new
    users' metadata (never under torchrun: the features are kept as they are)."""
    return bool(p.select_features and p.chosen is None and torchrun_env() is None
                and (p.item_features or p.user_features))
