"""Evaluate a model against baselines on rating and ranking metrics, in one tidy table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from .._errors import ConfigError, check_count, closest, first_line
from ..data._data import relevance_level
from ..metrics import METRICS, Catalogue, Empty, ranking_metrics
from ..serve._collab import CollabModel, as_collab
from ..serve._scoring import item_mask, score_matrix, score_pairs, top_n
from ._baselines import MIN_COUNT, bias_baseline, choose_ease_lambda, chunk_rows, item_models

if TYPE_CHECKING:
    from fastai.learner import Learner

    from ..data._data import CollabData

__all__ = ["evaluate", "bias_baseline", "MAX_RANKED_USERS", "BASELINES", "ListMetric", "Baseline"]

ListMetric = Callable[[list[list[int]], list[set[int]], int], float]
"""A ranking metric of your own: ``(recommended lists, relevant sets, n) -> float``, the signature of
:func:`cflearn.metrics.precision_at_k` and its siblings."""

Baseline = Callable[[np.ndarray, np.ndarray, int, int], Callable[[torch.Tensor], torch.Tensor]]
"""A baseline of your own: given the encoded training rows ``(users, items)`` and the numbers of
users and items, a function from a tensor of user indices to their ``(len(users), n_items)`` scores
(higher first; items the user rated in training are left out of the lists by :func:`evaluate`)."""

MAX_RANKED_USERS = 20_000
"""Ranking metrics rank at most this many validation users (a seeded sample beyond it)."""


def _ranked(cf: CollabModel, uidx: torch.Tensor, n: int, allowed: torch.Tensor,
            score_rows: Callable[[torch.Tensor], torch.Tensor], chunk: int = 1024) -> list[list[int]]:
    """Top-``n`` item indices per user (seen and not-``allowed`` items left out), scoring users in
    chunks with ``score_rows(user indices) -> (len, n_items)``."""
    out: list[list[int]] = []
    chunk = min(chunk, chunk_rows(len(cf.items)))
    for s in range(0, len(uidx), chunk):
        rows = uidx[s:s + chunk]
        scores = score_rows(rows)
        top = top_n(scores, allowed, [cf.seen(int(u)) for u in rows], min(n, scores.shape[1]))
        out += [[i for i, v in zip(idx, val) if v > -np.inf] for idx, val in zip(top.indices.tolist(),
                                                                                 top.values.tolist())]
    return out


def _own_scorer(name: str, score: Any, n_items: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A baseline's scoring function, its output checked (shape) and made float64."""
    if not callable(score):
        raise ConfigError(f"baseline {name!r} must return a function from user indices to scores, got "
                          f"{type(score).__name__}")

    def scores(rows: torch.Tensor) -> torch.Tensor:
        out = torch.as_tensor(score(rows), dtype=torch.float64).clone()  # ranking masks it in place: our copy
        if tuple(out.shape) != (len(rows), n_items):
            raise ConfigError(f"baseline {name!r} scored {len(rows)} users as shape {tuple(out.shape)}; expected "
                              f"({len(rows)}, {n_items}): one score per item")
        return out

    return scores


def _same_for_all(item_scores: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A scorer giving every user the same item scores (the bias and popularity baselines)."""
    return lambda rows: item_scores.double().expand(len(rows), -1).clone()


BASELINES = ("global mean", "user+item bias", "most popular", "EASE", "item-kNN")
"""The baselines :func:`evaluate` puts beside a model (``user+item bias`` on ratings only)."""


def evaluate(learn: Learner | CollabModel, data: CollabData | None = None, n: int = 10, *,
             relevance: float | None = None, empty: Empty = "skip",
             baselines: bool | Sequence[str | tuple[str, Baseline]] = True,
             metrics: Mapping[str, ListMetric] | None = None) -> pd.DataFrame:
    """The model and the baselines side by side on the validation rows of ``data``.

    Rating metrics: RMSE and MAE of predicted ratings (clipped to the scale; cold rows included);
    blank for ranking models and baselines that do not predict ratings, and left out on implicit
    data (no ratings). Ranking metrics: for each validation user seen in training, the top ``n``
    items among those the user did not rate in training (items with at least one training
    rating) are compared with the user's *relevant* validation items: those rated at least
    ``relevance`` (on implicit data, every validation interaction). Users with no relevant item
    are skipped (``empty="skip"``) or count as zero (``empty="zero"``). Coverage is the share of
    the rankable items shown to anyone; popularity is the average share of training users who
    rated the recommended items (lower = less popularity bias).

    Baselines: ``global mean`` (predicts the mean rating; as all its scores tie, it ranks at
    random, seeded: the chance level), ``user+item bias`` (regularised biases; ranks by item
    bias; ratings only), ``most popular`` (ranks by number of training ratings; predicts each
    item's mean rating, shrunk towards the global mean by 10 pseudo-ratings), ``EASE`` (closed
    form, its regularisation chosen on a 10% slice of the training rows) and ``item-kNN``
    (cosine, 20 neighbours); the last two rank items with at least 3 training interactions (see
    ``cflearn.evaluation._baselines``). Every training rating counts as an interaction for them. On large
    data the ranking metrics rank a seeded sample of :data:`MAX_RANKED_USERS` validation users
    (``attrs["users_sampled"]``); the rating metrics use every validation row.

    Args:
        learn: a learner or loaded model.
        data: the data to evaluate on (default: the learner's own training data).
        n: list length (the ``k`` of the ``@k`` metrics).
        relevance: rating that makes a validation item relevant (default: 80% up the scale,
            4.0 on 0.5-5 and 1-5 stars); not used on implicit data.
        empty: treatment of users with no relevant items.
        baselines: ``True`` (all of :data:`BASELINES`), ``False`` (the model's row alone: quick, for
            tuning and benchmarks), or the ones to compute: names of :data:`BASELINES` and
            ``(name, baseline)`` pairs of your own (see :data:`Baseline`), which get ranking rows.
        metrics: ranking metrics of your own by name (see :data:`ListMetric`), each a column
            ``name@n`` computed on every row's lists.

    Returns:
        DataFrame with one row per method and a column per registered metric
        (:data:`cflearn.metrics.METRICS`): ``rmse, mae, precision@n, recall@n, ndcg@n, map@n, mrr@n,
        hit_rate@n, coverage@n, popularity@n`` (``n`` as given, e.g. ``ndcg@10``), then yours.
        ``attrs`` holds ``n``, ``relevance``, ``users_ranked``, ``users_sampled``, ``n_valid``,
        ``implicit``, ``ease_lambda`` and ``cold_relevant``: the relevant validation items with no
        training row, which no list can contain; each counts as one relevant item (a miss for
        every method).
    """
    cf = as_collab(learn)
    cf.require_trained()
    check_count("n", n)
    data = data if data is not None else cf.data
    if data is None:
        raise ConfigError("evaluate needs data: a loaded model carries no ratings; pass data=cflearn.from_df(...)")
    if data.implicit and relevance is not None:
        raise ConfigError("relevance does not apply to implicit data: every validation interaction is relevant")
    relevance = relevance_level(cf.scale) if relevance is None else relevance
    names, own, extra = _methods(baselines, metrics, data.implicit)
    encoded = _encoded_rows(cf, data)
    bias = None if data.implicit else bias_baseline(encoded.tu, encoded.ti, encoded.train_ratings, encoded.n_users,
                                                    encoded.n_items)  # (mean, user biases, item biases)
    rows = _rating_metrics(cf, encoded, names, bias)
    users, relevant, cold_relevant, sampled = _relevant(encoded, relevance, data.implicit)
    scorers, lam, notes = _scorers(cf, encoded, names, own, relevance, bias)
    _list_metrics(cf, rows, names, scorers, torch.tensor(users, dtype=torch.long), relevant, n, empty, extra)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = [f"model ({cf.preset.name})"] + names[1:]
    table.attrs.update({"n": n, "relevance": None if data.implicit else relevance, "implicit": data.implicit,
                        "users_sampled": sampled,
                        "ease_lambda": lam, "users_ranked": sum(1 for r in relevant if r) if
                        empty == "skip" else len(relevant), "n_valid": len(encoded.target),
                        "cold_relevant": cold_relevant, "baseline_notes": notes})
    return table


class _Rows(NamedTuple):
    """The validation and training rows in the model's codes (0: unknown to it), with their ratings."""

    vu: np.ndarray
    vi: np.ndarray
    target: np.ndarray
    tu: np.ndarray
    ti: np.ndarray
    train_ratings: np.ndarray
    n_users: int
    n_items: int


def _encoded_rows(cf: CollabModel, data: CollabData) -> _Rows:
    """``data``'s rows in the model's codes: its own codes when the model trained on it (no copies)."""
    if cf.users is data.users and cf.items is data.items:  # the model's own data: its codes (no copies)
        codes, values = data.codes, data.values
        vu, vi = (codes[data.valid_idx, k] for k in (0, 1))  # int32 on large data: half the memory
        tu, ti = (codes[data.train_idx, k] for k in (0, 1))
        target, train_ratings = values[data.valid_idx].astype(np.float64), values[data.train_idx]  # float32: large
    else:
        valid, train = data.valid, data.train
        vu = cf.users.encode(valid[data.user])
        vi = cf.items.encode(valid[data.item])
        target, train_ratings = valid[data.rating].to_numpy(), train[data.rating].to_numpy()
        tu, ti = cf.users.encode(train[data.user]), cf.items.encode(train[data.item])
    return _Rows(vu, vi, target, tu, ti, train_ratings, len(cf.users), len(cf.items))


def _methods(baselines: bool | Sequence[str | tuple[str, Baseline]], metrics: Mapping[str, ListMetric] | None,
             implicit: bool) -> tuple[list[str], dict[str, Baseline], dict[str, ListMetric]]:
    """The rows to compute (``"model"``, then the baselines asked for, then the caller's own), the caller's
    baselines by name and the caller's extra list metrics; errors naming what is wrong."""
    given = list(BASELINES) if baselines is True else [] if baselines is False else list(baselines)
    wanted = [b for b in given if not isinstance(b, tuple)]
    own: dict[str, Baseline] = {}
    for b in given:
        if isinstance(b, tuple):
            if len(b) != 2 or not isinstance(b[0], str) or not callable(b[1]) or b[0] in BASELINES or b[0] == "model":
                raise ConfigError(f"a baseline of your own is a (name, function) pair with a new name, got {b!r}")
            own[b[0]] = b[1]
    extra = dict(metrics or {})
    for name, fn in extra.items():
        if not isinstance(name, str) or not callable(fn):
            raise ConfigError(f"metrics maps names to functions (recommended, relevant, n) -> float, got {name!r}")
    unknown = [b for b in wanted if b not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline {unknown[0]!r}{closest(str(unknown[0]), BASELINES)}; choose from "
                          f"{', '.join(BASELINES)}")
    names = ["model"] + [b for b in BASELINES if b in wanted and not (implicit and b == "user+item bias")] + list(own)
    return names, own, extra


def _rating_metrics(cf: CollabModel, rows: _Rows, names: list[str], bias: tuple[Any, Any, Any] | None
                    ) -> dict[str, dict[str, float]]:
    """Each row's registered pair metrics (RMSE, MAE) on the validation ratings; none on implicit data
    (``bias`` None), blank for the methods that predict no ratings."""
    out: dict[str, dict[str, float]] = {name: {} for name in names}
    if bias is None:
        return out
    lo, hi = cf.scale
    mu, bu, bi = bias
    sums = np.bincount(rows.ti, weights=rows.train_ratings, minlength=rows.n_items)
    item_mean = (sums + 10 * mu) / (np.bincount(rows.ti, minlength=rows.n_items) + 10)
    preds = {"global mean": np.full_like(rows.target, mu),
             "user+item bias": np.clip(mu + bu[rows.vu] + bi[rows.vi], lo, hi), "most popular": item_mean[rows.vi]}
    if cf.contract.score_kind == "rating":
        preds["model"] = score_pairs(cf, rows.vu, rows.vi)
    for m in (m for m in METRICS.values() if m.pairs is not None):
        assert m.pairs is not None
        for name in names:
            out[name][m.name] = m.pairs(preds[name], rows.target) if name in preds else float("nan")
    return out


def _relevant(rows: _Rows, relevance: float, implicit: bool) -> tuple[list[int], list[set[int]], int, bool]:
    """The validation users the model knows (a seeded sample of :data:`MAX_RANKED_USERS` on large data), each
    one's relevant validation items (an item with no training row as its own miss), how many relevant items
    have no training row, and whether the users were sampled."""
    vu, vi, target = rows.vu, rows.vi, rows.target
    known_users = sorted(set(vu[vu > 0].tolist()))
    sampled = len(known_users) > MAX_RANKED_USERS
    if sampled:  # a seeded sample: ranking every user of a large set against the catalogue takes long
        known_users = sorted(np.random.default_rng(0).choice(known_users, MAX_RANKED_USERS, replace=False).tolist())
    rel_by_user: dict[int, set[int]] = {u: set() for u in known_users}
    cold_relevant = 0
    for k, (u, i, r) in enumerate(zip(vu, vi, target)):
        if u > 0 and (implicit or r >= relevance) and int(u) in rel_by_user:
            cold_relevant += int(i) == 0
            # an item with no training row can never be recommended: each counts as its own relevant miss
            rel_by_user[int(u)].add(int(i) if i > 0 else -1 - k)
    return known_users, [rel_by_user[u] for u in known_users], cold_relevant, sampled


def _scorers(cf: CollabModel, rows: _Rows, names: list[str], own: dict[str, Baseline], relevance: float,
             bias: tuple[Any, Any, Any] | None
             ) -> tuple[dict[str, Callable[[torch.Tensor], torch.Tensor]], float | None, dict[str, str]]:
    """Each method's scores of a block of users against the catalogue; EASE's regularisation, and why a
    baseline could not be computed."""
    if cf.item_counts is None:
        raise ConfigError("evaluate needs the training counts; this model was saved without them")
    tu, ti, n_users, n_items = rows.tu, rows.ti, rows.n_users, rows.n_items
    implicit = bias is None
    gen = torch.Generator().manual_seed(0)
    scorers: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "model": lambda block: score_matrix(cf, block),
        # all scores tie: a fresh random order per user (seeded), the chance level
        "global mean": lambda block: torch.rand(len(block), n_items, generator=gen, dtype=torch.float64),
        "user+item bias": _same_for_all(torch.from_numpy(bias[2] if bias is not None else np.zeros(n_items))),
        "most popular": _same_for_all(cf.item_counts.double()),
    }
    lam = None
    notes: dict[str, str] = {}
    if "EASE" in names or "item-kNN" in names:
        try:
            lam = choose_ease_lambda(tu, ti, np.ones(len(tu), bool) if implicit else rows.train_ratings >= relevance,
                                     n_users, n_items)
            ease, knn = item_models(tu, ti, n_users, n_items, lam)
            if not len(ease.keep):
                raise ValueError(f"no item has {MIN_COUNT} training interactions")
            scorers |= {"EASE": ease.scores, "item-kNN": knn.scores}
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as e:  # a degenerate table: said, not fatal
            for name in ("EASE", "item-kNN"):
                notes[name] = f"not computed: {first_line(e)}"
    for name, make in own.items():
        scorers[name] = _own_scorer(name, make(np.asarray(tu), np.asarray(ti), n_users, n_items), n_items)
    return scorers, lam, notes


def _list_metrics(cf: CollabModel, rows: dict[str, dict[str, float]], names: list[str],
                  scorers: dict[str, Callable[[torch.Tensor], torch.Tensor]], users: torch.Tensor,
                  relevant: list[set[int]], n: int, empty: Empty, extra: dict[str, ListMetric]) -> None:
    """Each row's ranking metrics and registered list metrics on its top-``n`` lists, and the caller's
    own; blank for a baseline that could not be computed."""
    assert cf.item_counts is not None  # _scorers checked
    allowed = item_mask(cf, None, 1)
    popularity = dict(enumerate((cf.item_counts.double() / max(1, len(cf.users) - 1)).tolist()))
    catalogue = Catalogue(int(allowed.sum()), popularity)
    list_metrics = [m for m in METRICS.values() if m.lists is not None]
    for name in names:
        if name not in scorers:  # a baseline that could not be computed: blank, with the reason in attrs
            rows[name] |= {k: float("nan") for k in ranking_metrics([], [], n)}
            rows[name] |= {m.column(n): float("nan") for m in list_metrics}
            rows[name] |= {f"{metric}@{n}": float("nan") for metric in extra}
            continue
        top = _ranked(cf, users, n, allowed, scorers[name])
        rows[name] |= ranking_metrics(top, relevant, n, empty=empty)
        for m in list_metrics:
            assert m.lists is not None
            rows[name][m.column(n)] = float(m.lists(top, catalogue, n))
        for metric, fn in extra.items():
            rows[name][f"{metric}@{n}"] = float(fn(top, relevant, n))
