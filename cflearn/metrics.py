"""Metrics as plain functions of arrays and lists (no model, no state).

Ranking metrics take, per user, the recommended items in rank order and the set of relevant
items (e.g. the user's validation items rated at least 4: see :func:`cflearn.evaluate`); ``n`` is
the list length (the k of "@k"). Gains are binary. Users with no relevant item are skipped
(``empty="skip"``, the default: they cannot be served well or badly) or count as zero (``empty="zero"``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from ._errors import ConfigError, DataError, closest

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
    "Metric",
    "Catalogue",
    "METRICS",
    "register",
    "unregister",
    "better",
    "summary_columns",
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
    per_user = [m for m in METRICS.values() if m.user is not None]
    rows = []
    for recs, rel in zip(recommended, relevant):
        rel = set(rel)
        if not rel:
            if empty == "zero":
                rows.append((0.0,) * len(per_user))
            continue
        hits = _hits(recs, rel, n)
        rows.append(tuple(float(m.user(hits, len(rel), n)) for m in per_user))  # type: ignore[misc]
    if not rows:
        return {m.column(n): float("nan") for m in per_user}
    return {m.column(n): float(v) for m, v in zip(per_user, np.mean(rows, axis=0))}


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
    """Every registered per-user ranking metric at ``n`` in one pass (keys like ``"ndcg@10"``; cflearn's
    own six: precision, recall, NDCG, MAP, MRR and hit rate)."""
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


# -- the registry: what evaluate computes, the command line shows, the report marks and metrics.json holds ----------

@dataclass(frozen=True)
class Catalogue:
    """What a metric of whole lists knows besides the lists: the items that could be recommended and
    each item's popularity (the share of training users who rated it)."""

    n_items: int
    popularity: Mapping[Any, float]


@dataclass(frozen=True)
class Metric:
    """One metric of :func:`cflearn.evaluate`, computed in one of three ways.

    Attributes:
        name: its column (``name@n`` for the ranking metrics, e.g. ``ndcg@10``).
        pairs: a rating metric: ``(predicted, true ratings) -> value``.
        user: a ranking metric averaged over users: ``(hits, n_relevant, n) -> value`` for one user,
            ``hits`` the 0/1 relevance of their top ``n`` (shorter when the list is).
        lists: a metric of all the lists together: ``(lists, catalogue, n) -> value``.
        better: ``"higher"``, ``"lower"`` or ``None`` (neither: the report marks no best value).
        summary: its place in ``cflearn fit``'s summary table (1 first; 0: not shown there).
    """

    name: str
    pairs: Callable[[np.ndarray, np.ndarray], float] | None = None
    user: Callable[[np.ndarray, int, int], float] | None = None
    lists: Callable[[Sequence[Sequence[Any]], Catalogue, int], float] | None = None
    better: Literal["higher", "lower"] | None = "higher"
    summary: int = 0

    def column(self, n: int) -> str:
        """Its column in :func:`cflearn.evaluate`'s table for lists of ``n``."""
        return self.name if self.pairs is not None else f"{self.name}@{n}"


METRICS: dict[str, Metric] = {}
"""The registered metrics by name, in the order of :func:`cflearn.evaluate`'s columns."""


def register(metric: Metric, *, replace: bool = False) -> Metric:
    """Add a metric: :func:`cflearn.evaluate` computes it for the model and every baseline, the
    command line's summary shows it (``summary``), and the run's report and ``metrics.json`` hold it."""
    if not isinstance(metric, Metric) or not metric.name or "@" in metric.name:
        raise ConfigError(f"register takes a cflearn.metrics.Metric with a name (no '@'), got {metric!r}")
    if sum(f is not None for f in (metric.pairs, metric.user, metric.lists)) != 1:
        raise ConfigError(f"metric {metric.name!r}: give exactly one of pairs=, user= or lists=")
    if metric.name in METRICS and not replace:
        raise ConfigError(f"a metric named {metric.name!r} is registered already; pass replace=True to replace it")
    METRICS[metric.name] = metric
    return metric


def unregister(name: str) -> None:
    """Remove a registered metric."""
    if name not in METRICS:
        raise ConfigError(f"no metric named {name!r} is registered{closest(name, METRICS)}")
    del METRICS[name]


def better(column: str) -> Literal["higher", "lower"] | None:
    """Which way a column of :func:`cflearn.evaluate`'s table is better (a metric of your own: higher)."""
    metric = METRICS.get(column.split("@")[0])
    return "higher" if metric is None else metric.better


def summary_columns(n: int) -> list[str]:
    """The columns ``cflearn fit``'s summary table shows, in order."""
    shown = sorted((m for m in METRICS.values() if m.summary), key=lambda m: m.summary)
    return [m.column(n) for m in shown]


@functools.cache
def _discounts(n: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..n, once per ``n`` (read, never written)."""
    return 1.0 / np.log2(np.arange(2, n + 2))


def _ndcg(hits: np.ndarray, n_rel: int, n: int) -> float:
    discounts = _discounts(n)
    return float((hits * discounts[: len(hits)]).sum() / discounts[: min(n, n_rel)].sum())


def _map(hits: np.ndarray, n_rel: int, n: int) -> float:
    precision_at_r = np.cumsum(hits) / np.arange(1, len(hits) + 1) if len(hits) else np.zeros(0)
    return float((precision_at_r * hits).sum() / min(n, n_rel))


def _mrr(hits: np.ndarray, n_rel: int, n: int) -> float:
    first = np.flatnonzero(hits)
    return 1.0 / (first[0] + 1) if len(first) else 0.0


register(Metric("rmse", pairs=rmse, better="lower", summary=1))
register(Metric("mae", pairs=mae, better="lower", summary=2))
register(Metric("precision", user=lambda hits, n_rel, n: hits.sum() / n))
register(Metric("recall", user=lambda hits, n_rel, n: hits.sum() / n_rel, summary=4))
register(Metric("ndcg", user=_ndcg, summary=3))
register(Metric("map", user=_map))
register(Metric("mrr", user=_mrr))
register(Metric("hit_rate", user=lambda hits, n_rel, n: float(hits.sum() > 0)))
register(Metric("coverage", lists=lambda lists, cat, n: catalog_coverage(lists, cat.n_items, n), summary=5))
register(Metric("popularity", lists=lambda lists, cat, n: popularity_bias(lists, cat.popularity, n), better=None))
