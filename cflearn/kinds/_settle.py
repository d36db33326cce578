"""Settling a preset against the data, once, before anything is built: checks of every setting, the
model kind's own choices (:meth:`cflearn.kinds.Kind.settle`; its side features in
:mod:`cflearn.kinds._feature_settle`), ``y_range`` and memory."""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, ConfigWarning, caller_level, check_count, check_number
from ._presets import Preset, y_range_for

if TYPE_CHECKING:
    from torch import nn

    from ..data._data import CollabData

__all__ = ["resolve", "refuse_feature_overrides", "check_y_range", "check_memory", "check_own_model",
           "check_has_validation"]

_ARCH = ("n_factors", "use_nn", "emb_szs", "layers", "item_features", "user_features", "content_based", "y_range",
         "y_pad", "y_range_rule")


def resolve(data: CollabData, p: Preset, given: dict[str, Any], *, custom: bool = False) -> Preset:
    """The preset (with the caller's overrides ``given`` applied) checked and settled for ``data`` by its kind."""
    from . import get_kind

    for name in ("bs", "epochs", "n_factors"):
        check_count(name, getattr(p, name))
    for name in ("lr", "wd", "row_l2", "bias_l2"):
        check_number(name, getattr(p, name), positive=name == "lr")
    kind = get_kind(p.kind)
    settled = kind.settle(data, p, given, custom=custom)
    if not isinstance(settled, Preset):
        raise ConfigError(f"kind {kind.name!r}: settle() returned {type(settled).__name__}, not a cflearn.Preset; "
                          "return the preset (preset.replace(...) for changes)")
    return settled


FEATURE_DOOR = ("item_features", "user_features")
"""Side features have one door, the data: these are not keyword arguments of ``collab_learner`` or
``select_features`` (removed in 0.1.0; the changelog says so)."""


def refuse_feature_overrides(names: Any, where: str) -> None:
    """Side features have one door, the data: naming them to ``where`` is a :class:`ConfigError` saying so."""
    named = [k for k in FEATURE_DOOR if k in names]
    if named:
        raise ConfigError(f"{where} takes no {' or '.join(f'{k}=' for k in named)}: declare side features once, "
                          "on the data (cflearn.from_df(..., item_features=[...], user_features=[...]), or "
                          "--item-features on the command line); a preset uses them (best, content, dual) or says it "
                          "does not (fast), and select_features=False keeps them without best's check")


def check_y_range(data: CollabData, p: Preset, y_range: Any) -> tuple[float, float]:
    """The sigmoid range: the caller's (which must cover the ratings) or the preset's rule on the data's scale."""
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
                      ConfigWarning, stacklevel=caller_level())
    return (a, b)


def check_memory(data: CollabData, p: Preset) -> None:
    """Refuse tables that cannot fit in this machine's memory before allocating them (the kind's estimate,
    :meth:`cflearn.kinds.Kind.memory`: weights, gradients and two optimizer states)."""
    from . import get_kind, table_width

    need = get_kind(p.kind).memory(data, p)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not Linux/macOS: no limit known
        return
    if need > have:
        raise ConfigError(f"n_factors={table_width(p)} on {len(data.users) - 1:,} users and {len(data.items) - 1:,} "
                          f"items needs about {need / 2**30:,.0f} GB for the weights and optimizer state (kind "
                          f"{p.kind!r}); this machine has {have / 2**30:,.0f} GB: use a smaller n_factors (e.g. 64)")


def check_own_model(model: nn.Module, given: dict[str, Any], y_range: Any) -> None:
    """A user's ``model=`` is an ``nn.Module`` and comes without architecture settings."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch nn.Module taking the (n, 2) batch of (user, item) indices, got "
                          f"{type(model).__name__}")
    arch = sorted(k for k in given if k in _ARCH) + (["y_range"] if y_range is not None else [])
    if arch:
        raise ConfigError(f"{', '.join(arch)} do(es) not apply when you pass model=: your module defines its own "
                          "architecture and output")


def check_has_validation(data: CollabData) -> None:
    """Training needs validation rows (the loss curve, the checks of the fit)."""
    from .._errors import DataError

    if len(data.valid_idx):
        return
    if not data.valid_pct:
        raise ConfigError("the data has no validation rows (valid_pct=0); training needs some: use valid_pct=0.2")
    if len(data.ratings) >= 10:  # enough rows: the split's settings held none out
        raise DataError(f"the split ({data.split}, valid_pct={data.valid_pct:g}) holds out no validation rows "
                        f"from {len(data.ratings):,} ratings; raise valid_pct or use another split")
    raise DataError(f"{len(data.ratings)} rating(s) are too few to hold out validation rows; add ratings")
