"""Checks of a saved config's values before a model is rebuilt from it (``ValueError`` naming the value)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["y_range_of", "check_spec", "check_weight", "range_list", "SPEC_KINDS"]


def y_range_of(config: dict[str, Any], *, required: bool = False) -> tuple[float, float] | None:
    """The ``y_range`` of a config (``None`` for none): two finite numbers, low < high (a tampered one is
    a ``ValueError``; so is a missing one where the model predicts ratings, ``required``)."""
    yr = config.get("y_range")
    if yr is None:
        if required:
            raise ValueError("a rating model's y_range is missing")
        return None
    if not isinstance(yr, (list, tuple)) or len(yr) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in yr):
        raise ValueError(f"y_range must be two numbers, got {yr!r}")
    lo, hi = float(yr[0]), float(yr[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"y_range must be two finite numbers, low < high, got {yr!r}")
    return lo, hi


SPEC_KINDS = ("labels", "codes", "buckets")


def check_spec(spec: Any, side: str) -> None:
    """A side's feature specs as saved: a list of ``{"column": name, "kind": ...}`` (buckets with finite,
    rising edges); a tampered one is a ``ValueError``."""
    if not isinstance(spec, list):
        raise ValueError(f"the {side} feature specs must be a list, got {type(spec).__name__}")
    for one in spec:
        if not isinstance(one, dict) or not isinstance(one.get("column"), str) or one.get("kind") not in SPEC_KINDS:
            raise ValueError(f"a {side} feature spec must name its column and kind ({', '.join(SPEC_KINDS)}), got "
                             f"{str(one)[:80]}")
        if one["kind"] == "buckets":
            edges = one.get("edges")
            if not isinstance(edges, list) or not all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                      and math.isfinite(e) for e in edges) or edges != sorted(edges):
                raise ValueError(f"the bucket edges of {side} feature {one['column']!r} must be rising numbers")


def check_weight(value: Any, name: str = "user_feature_weight") -> float:
    """A weight in [0, 1] from a config (a tampered one is a ``ValueError``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def range_list(y_range: tuple[float, float] | None) -> list[float] | None:
    return [float(v) for v in y_range] if y_range is not None else None
