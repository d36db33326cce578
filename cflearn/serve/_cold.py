"""Cold start from metadata: the vector and bias of a user or item the model never saw, from its features.

A hybrid model (:class:`cflearn.models.HybridDotBias`) scores a row as its collaborative part plus
the mean of its feature embeddings. A new row has no collaborative part of its own, so it gets the
trained rows' mean one (what the model gives a cold row) plus the mean embedding of *its* features,
encoded with the column specs saved with the model (the same buckets and labels as training).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd
import torch

from .._errors import ConfigError, DataWarning, caller_level, printable
from ..data._features import as_rows, encode_rows
from ..models import HybridDotBias, rating_head
from ._collab import CollabModel

__all__ = ["feature_rows", "feature_part", "FeatureInput"]

FeatureInput = Mapping[str, Any] | pd.Series | pd.DataFrame


def _hybrid(cf: CollabModel, side: Literal["user", "item"]) -> HybridDotBias:
    model = rating_head(cf.model)
    spec = getattr(model, "user_spec" if side == "user" else "item_spec", None)
    if not isinstance(model, HybridDotBias) or not spec:
        name, report = cf.preset.name, cf.preset.feature_selection
        dropped = [f for f in report.get("features", []) if f not in report.get("chosen", [])]
        if dropped:
            raise ConfigError(f"this model (preset {name!r}) was trained without {side} features: its feature check "
                              f"dropped {', '.join(map(str, dropped))} (they did not help on an inner split; "
                              "learn.cf.preset.feature_selection), so it scores a new "
                              f"{side} as the average {side}; select_features=False keeps them")
        raise ConfigError(f"this model (preset {name!r}) was trained without {side} features, so it cannot score a "
                          f"new {side} from metadata; declare them (cflearn.from_df(..., {side}s=..., "
                          f"{side}_features=[...])) and train preset 'dual', 'best' or 'content'")
    return model


@torch.no_grad()
def feature_part(cf: CollabModel, side: Literal["user", "item"],
                 features: FeatureInput) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean feature vectors ``(n, k)`` and biases ``(n,)`` of new rows' metadata (a mapping, a row of a
    metadata table, or a table). Values the model never saw are ignored with a warning; a row with
    no known feature gets the trained rows' mean (the average row). A mapping's keys must be
    feature columns (a typo raises); a table's other columns (the ID, a zip code) are skipped."""
    model = _hybrid(cf, side)
    s: Literal["u", "i"] = "u" if side == "user" else "i"
    rows = as_rows(features, side)
    spec, names = (model.user_spec, model.user_feature_names) if side == "user" else \
        (model.item_spec, model.feature_names)
    strict = not isinstance(features, (pd.Series, pd.DataFrame))  # a hand-written mapping: a typo is an error
    idx, weight, ignored, unreadable = encode_rows(spec, names, rows, side, strict=strict)
    if unreadable:
        warnings.warn(f"{side} feature values that are not numbers (or ISO dates) count as missing: "
                      f"{', '.join(printable(v) for v in unreadable[:5])}{' ...' if len(unreadable) > 5 else ''}",
                      DataWarning, stacklevel=caller_level())
    if ignored:
        shown = ", ".join(printable(v) for v in ignored[:5])
        warnings.warn(f"{side} feature values the model never saw are ignored: {shown}"
                      f"{' ...' if len(ignored) > 5 else ''}", DataWarning, stacklevel=caller_level())
    vec, bias = model.feature_mean(s, idx, weight)
    none = weight.sum(1) == 0  # nothing known about the row: the trained rows' mean feature part
    if none.any():
        f, c = model.mean_features(s)
        vec[none.to(vec.device)], bias[none.to(bias.device)] = f, c
    if s == "u":  # as much as features proved to help new users (held-out training users)
        vec, bias = model.shrink_features(vec, bias)
    return vec.detach().float().cpu(), bias.detach().float().cpu()


@torch.no_grad()
def feature_rows(cf: CollabModel, side: Literal["user", "item"],
                 features: FeatureInput) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole vectors and biases of new rows scored from their metadata: the trained rows' mean
    collaborative part plus the rows' own feature means."""
    model = _hybrid(cf, side)
    s: Literal["u", "i"] = "u" if side == "user" else "i"
    vec, bias = feature_part(cf, side, features)
    trained = model.trained_rows(0 if side == "user" else 1)
    own_vec = model.cf_part(s, slice(None), False)[trained].mean(0).float().cpu()
    own_bias = model.cf_part(s, slice(None), True)[trained].mean().float().cpu()
    return vec + own_vec, bias + own_bias
