"""Metrics as plain functions of arrays (no model, no state)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["rmse", "mae"]


def rmse(pred: ArrayLike, target: ArrayLike) -> float:
    """Root mean squared error: ``sqrt(mean((pred - target)^2))``; NaN for empty input."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    return float(np.sqrt(np.mean((p - t) ** 2))) if p.size else float("nan")


def mae(pred: ArrayLike, target: ArrayLike) -> float:
    """Mean absolute error: ``mean(|pred - target|)``; NaN for empty input."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    return float(np.mean(np.abs(p - t))) if p.size else float("nan")
