"""Evaluate a model against baselines on rating and ranking metrics, in one tidy table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ._collab import CollabModel, as_collab
from ._errors import ConfigError, check_count
from ._scoring import item_mask, score_matrix, score_pairs, top_n
from .metrics import Empty, catalog_coverage, mae, popularity_bias, ranking_metrics, rmse

if TYPE_CHECKING:
    from fastai.learner import Learner

    from ._data import CollabData

__all__ = ["evaluate", "bias_baseline"]


def bias_baseline(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
                  reg_u: float = 15.0, reg_i: float = 10.0, n_iter: int = 10) -> tuple[float, np.ndarray, np.ndarray]:
    """Regularised user and item biases by alternating least squares (Surprise's ``BaselineOnly``).

    Returns ``(mean, user biases, item biases)``; index 0 (unknown) keeps bias 0.
    """
    mu = float(ratings.mean())
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    n_u = np.bincount(users, minlength=n_users) + reg_u
    n_i = np.bincount(items, minlength=n_items) + reg_i
    for _ in range(n_iter):
        bi = np.bincount(items, weights=ratings - mu - bu[users], minlength=n_items) / n_i
        bu = np.bincount(users, weights=ratings - mu - bi[items], minlength=n_users) / n_u
    bu[0] = bi[0] = 0.0
    return mu, bu, bi


def _ranked(cf: CollabModel, uidx: torch.Tensor, n: int, allowed: torch.Tensor,
            score_rows: Callable[[torch.Tensor], torch.Tensor], chunk: int = 1024) -> list[list[int]]:
    """Top-``n`` item indices per user (seen and not-``allowed`` items left out), scoring users in
    chunks with ``score_rows(user indices) -> (len, n_items)``."""
    out: list[list[int]] = []
    for s in range(0, len(uidx), chunk):
        rows = uidx[s:s + chunk]
        scores = score_rows(rows)
        top = top_n(scores, allowed, [cf.seen(int(u)) for u in rows], min(n, scores.shape[1]))
        out += [[i for i, v in zip(idx, val) if v > -np.inf] for idx, val in zip(top.indices.tolist(),
                                                                                 top.values.tolist())]
    return out


def _same_for_all(item_scores: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A scorer giving every user the same item scores (the bias and popularity baselines)."""
    return lambda rows: item_scores.double().expand(len(rows), -1).clone()


def evaluate(learn: Learner | CollabModel, data: CollabData | None = None, n: int = 10, *,
             relevance: float | None = None, empty: Empty = "skip") -> pd.DataFrame:
    """The model and three baselines side by side on the validation rows of ``data``.

    Rating metrics: RMSE and MAE of predicted ratings (clipped to the scale; cold rows included).
    Ranking metrics: for each validation user seen in training, the top ``n`` items among those
    the user did not rate in training (items with at least one training rating) are compared
    with the user's *relevant* validation items: those rated at least ``relevance``. Users with
    no relevant item are skipped (``empty="skip"``) or count as zero (``empty="zero"``). Coverage
    is the share of the rankable items shown to anyone; popularity is the average share of
    training users who rated the recommended items (lower = less popularity bias).

    Baselines: ``global mean`` (predicts the mean rating; as all its scores tie, it ranks at
    random, seeded: the chance level), ``user+item bias`` (regularised biases; ranks by item bias)
    and ``most popular`` (ranks by number of training ratings; predicts each item's mean rating,
    shrunk towards the global mean by 10 pseudo-ratings).

    Args:
        learn: a learner or loaded model.
        data: the data to evaluate on (default: the learner's own training data).
        n: list length (the ``k`` of the ``@k`` metrics).
        relevance: rating that makes a validation item relevant (default: 80% up the scale,
            4.0 on 0.5-5 and 1-5 stars).
        empty: treatment of users with no relevant items.

    Returns:
        DataFrame with one row per method and columns ``rmse, mae, precision@n, recall@n, ndcg@n,
        map@n, mrr@n, hit_rate@n, coverage@n, popularity@n`` (``n`` as given, e.g. ``ndcg@10``).
    """
    cf = as_collab(learn)
    cf.require_trained()
    check_count("n", n)
    data = data if data is not None else cf.data
    if data is None:
        raise ConfigError("evaluate needs data: a loaded model carries no ratings; pass data=cflearn.from_df(...)")
    lo, hi = cf.scale
    relevance = lo + 0.8 * (hi - lo) if relevance is None else relevance
    relevance = round(relevance * 2) / 2 if hi - lo >= 2 else relevance
    valid, train = data.valid, data.train
    vu = cf.users.encode(valid[data.user])
    vi = cf.items.encode(valid[data.item])
    target, train_ratings = valid[data.rating].to_numpy(), train[data.rating].to_numpy()
    tu, ti = cf.users.encode(train[data.user]), cf.items.encode(train[data.item])

    # rating metrics
    pred = score_pairs(cf, vu, vi)
    mu, bu, bi = bias_baseline(tu, ti, train_ratings, len(cf.users), len(cf.items))
    bias_pred = np.clip(mu + bu[vu] + bi[vi], lo, hi)
    sums = np.bincount(ti, weights=train_ratings, minlength=len(cf.items))
    item_mean = (sums + 10 * mu) / (np.bincount(ti, minlength=len(cf.items)) + 10)
    preds = {"model": pred, "global mean": np.full_like(target, mu), "user+item bias": bias_pred,
             "most popular": item_mean[vi]}
    rows = {name: {"rmse": rmse(p, target), "mae": mae(p, target)} for name, p in preds.items()}

    # ranking metrics over validation users known to the model
    known_users = sorted(set(vu[vu > 0].tolist()))
    rel_by_user: dict[int, set[int]] = {u: set() for u in known_users}
    for u, i, r in zip(vu, vi, target):
        if u > 0 and r >= relevance:
            rel_by_user[int(u)].add(int(i))
    relevant = [rel_by_user[u] for u in known_users]
    allowed = item_mask(cf, None, 1)
    n_rankable = int(allowed.sum())
    if cf.item_counts is None:
        raise ConfigError("evaluate needs the training counts; this model was saved without them")
    counts = cf.item_counts.double()
    popularity = dict(enumerate((counts / max(1, len(cf.users) - 1)).tolist()))
    uidx = torch.tensor(known_users, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    same_for_all = {"user+item bias": torch.from_numpy(bi), "most popular": counts}
    lists = {"model": _ranked(cf, uidx, n, allowed, lambda rows: score_matrix(cf, rows)),
             # all scores tie: a fresh random order per user (seeded), the chance level
             "global mean": _ranked(cf, uidx, n, allowed, lambda rows: torch.rand(
                 len(rows), len(cf.items), generator=gen, dtype=torch.float64))}
    for name, item_scores in same_for_all.items():
        lists[name] = _ranked(cf, uidx, n, allowed, _same_for_all(item_scores))
    for name, top in lists.items():
        rows[name] |= ranking_metrics(top, relevant, n, empty=empty)
        rows[name][f"coverage@{n}"] = catalog_coverage(top, n_rankable, n)
        rows[name][f"popularity@{n}"] = popularity_bias(top, popularity, n)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = [f"model ({cf.preset.get('name', '?')})", "global mean", "user+item bias", "most popular"]
    table.attrs.update({"n": n, "relevance": relevance, "users_ranked": sum(1 for r in relevant if r) if
                        empty == "skip" else len(relevant), "n_valid": len(valid)})
    return table
