"""Metrics as plain functions of arrays and lists (no model, no state).

Ranking metrics take, per user, the recommended items in rank order and the set of relevant
items (e.g. the user's validation items rated at least 4: see :func:`cflearn.evaluate`); ``n`` is
the list length (the k of "@k"). Gains are binary. Users with no relevant item are skipped
(``empty="skip"``, the default: they cannot be served well or badly) or count as zero (``empty="zero"``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from ._errors import ConfigError, DataError

__all__ = [
    "relevance_level",
    "rmse",
    "mae",
    "precision_at_k",
    "recall_at_k",
    "ndcg_at_k",
    "map_at_k",
    "mrr_at_k",
    "hit_rate_at_k",
    "ranking_metrics",
    "catalog_coverage",
    "popularity_bias",
]

Empty = Literal["skip", "zero"]


def relevance_level(scale: tuple[float, float]) -> float:
    """The rating from which an item counts as liked (relevant, in ranking metrics): 80% up the scale,
    rounded to a half star on scales at least 2 wide (4.0 on 0.5-5 and 1-5 stars)."""
    lo, hi = scale
    level = lo + 0.8 * (hi - lo)
    return round(level * 2) / 2 if hi - lo >= 2 else level


def _pair(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise DataError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    return p, t


def rmse(pred: ArrayLike, target: ArrayLike) -> float:
    """Root mean squared error: ``sqrt(mean((pred - target)^2))``; NaN for empty input."""
    p, t = _pair(pred, target)
    return float(np.sqrt(np.mean((p - t) ** 2))) if p.size else float("nan")


def mae(pred: ArrayLike, target: ArrayLike) -> float:
    """Mean absolute error: ``mean(|pred - target|)``; NaN for empty input."""
    p, t = _pair(pred, target)
    return float(np.mean(np.abs(p - t))) if p.size else float("nan")


def _hits(recs: Sequence[Any], rel: Collection[Any], n: int) -> np.ndarray:
    return np.array([r in rel for r in list(recs)[:n]], dtype=float)


def _user_scores(recommended: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]], n: int,
                 empty: Empty) -> dict[str, float]:
    if len(recommended) != len(relevant):
        raise DataError(f"{len(recommended)} recommendation lists for {len(relevant)} relevant sets")
    if n < 1:
        raise ConfigError(f"n (the list length) must be at least 1, got {n}")
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    rows = []
    for recs, rel in zip(recommended, relevant):
        rel = set(rel)
        if not rel:
            if empty == "zero":
                rows.append((0.0,) * 6)
            continue
        hits = _hits(recs, rel, n)
        n_hit = hits.sum()
        idcg = discounts[: min(n, len(rel))].sum()
        precision_at_r = np.cumsum(hits) / np.arange(1, len(hits) + 1) if len(hits) else np.zeros(0)
        first = np.flatnonzero(hits)
        rows.append((
            n_hit / n,
            n_hit / len(rel),
            float((hits * discounts[: len(hits)]).sum() / idcg),
            float((precision_at_r * hits).sum() / min(n, len(rel))),
            1.0 / (first[0] + 1) if len(first) else 0.0,
            float(n_hit > 0),
        ))
    names = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")
    if not rows:
        return {f"{name}@{n}": float("nan") for name in names}
    return {f"{name}@{n}": float(v) for name, v in zip(names, np.mean(rows, axis=0))}


def precision_at_k(recommended: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]], n: int = 10,
                   *, empty: Empty = "skip") -> float:
    """Mean over users of (relevant items in the top ``n``) / ``n``."""
    return _user_scores(recommended, relevant, n, empty)[f"precision@{n}"]


def recall_at_k(recommended: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]], n: int = 10,
                *, empty: Empty = "skip") -> float:
    """Mean over users of (relevant items in the top ``n``) / (relevant items)."""
    return _user_scores(recommended, relevant, n, empty)[f"recall@{n}"]


def ndcg_at_k(recommended: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]], n: int = 10,
              *, empty: Empty = "skip") -> float:
    """Mean over users of DCG / ideal DCG, ``DCG = sum(hit_r / log2(r + 1))`` over ranks ``r <= n``."""
    return _user_scores(recommended, relevant, n, empty)[f"ndcg@{n}"]


def map_at_k(recommended: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]], n: int = 10,
             *, empty: Empty = "skip") -> float:
    """Mean over users of average precision: ``sum(P@r * hit_r) / min(n, relevant items)``."""
    return _user_scores(recommended, relevant, n, empty)[f"map@{n}"]


def mrr_at_k(recommended: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]], n: int = 10,
             *, empty: Empty = "skip") -> float:
    """Mean over users of 1 / (rank of the first relevant item in the top ``n``), 0 if none."""
    return _user_scores(recommended, relevant, n, empty)[f"mrr@{n}"]


def hit_rate_at_k(recommended: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]], n: int = 10,
                  *, empty: Empty = "skip") -> float:
    """Fraction of users with at least one relevant item in their top ``n``."""
    return _user_scores(recommended, relevant, n, empty)[f"hit_rate@{n}"]


def ranking_metrics(recommended: Sequence[Sequence[Any]], relevant: Sequence[Collection[Any]], n: int = 10,
                    *, empty: Empty = "skip") -> dict[str, float]:
    """All six per-user ranking metrics at ``n`` in one pass (keys like ``"ndcg@10"``)."""
    return _user_scores(recommended, relevant, n, empty)


def catalog_coverage(recommended: Sequence[Sequence[Any]], n_items: int, n: int | None = None) -> float:
    """Share of the catalogue's ``n_items`` that appear in at least one top-``n`` list."""
    shown = {i for recs in recommended for i in (list(recs)[:n] if n else recs)}
    return len(shown) / n_items if n_items else float("nan")


def popularity_bias(recommended: Sequence[Sequence[Any]], popularity: Mapping[Any, float],
                    n: int | None = None) -> float:
    """Average popularity of the recommended items (ARP): the mean, over every slot of every list,
    of ``popularity[item]`` (e.g. the share of training users who rated it; unknown items count 0)."""
    values = [popularity.get(i, 0.0) for recs in recommended for i in (list(recs)[:n] if n else recs)]
    return float(np.mean(values)) if values else float("nan")
