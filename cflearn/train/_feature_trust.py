"""How much a new user's metadata should count: measured on training users held out as new users.

A hybrid model learns what each user feature (age, occupation, ...) adds to a user's vector. For a
user it has trained on, that part sits beside the user's own collaborative part. For a *new*
user, known only from metadata, it is all there is, and metadata that carries little signal moves
the user away from the average user for nothing (on a MovieLens set with real user metadata, new
users scored from it did worse than the average-user fallback). So the weight of the feature part
for new users, ``HybridDotBias.user_feature_weight`` (0: the average user, 1: where the features
place them), is chosen on an inner split: a share of the training *users* is held out entirely,
the preset trains on the rest, and the held-out users' ratings are predicted from their metadata
alone with each candidate weight. The smallest weight within noise of the best wins, so features
that do not help leave new users at the fallback.

The same held-out users choose how far a metadata-only user's *list* leans on the popularity chart
(``HybridDotBias.new_user_chart``): the list the features give, blended with the chart, scored by
NDCG@10 on the items they liked; the chart keeps every weight within noise of the best (a list from
predicted ratings alone is far worse than the chart), and features given no weight leave the chart.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._errors import CflearnError, DataWarning
from ..metrics import rmse

if TYPE_CHECKING:
    from ..data._data import CollabData
    from ..kinds._presets import Preset

__all__ = ["choose_user_feature_weight", "WEIGHTS", "HELD_OUT_USERS", "TOLERANCE", "CHARTS", "LIST_TOLERANCE"]

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Candidate weights of a new user's feature part."""
HELD_OUT_USERS = 0.15
"""Share of the training users (with at least 5 training ratings) held out as new users."""
TOLERANCE = 0.002
"""The smallest weight whose RMSE is within this of the best one wins (a gain below it is noise)."""
CHARTS = (1.0, 0.75, 0.5, 0.25, 0.0)
"""Candidate weights of the popularity chart in the list of a user known only from metadata."""
LIST_TOLERANCE = 0.005
"""The largest chart weight whose NDCG@10 on the held-out users is within this of the best one wins: the
features move a new user's list away from the chart only when that helps them by more than noise."""


def choose_user_feature_weight(data: CollabData, p: Preset, seed: int | None, *,
                               device: Any = None) -> tuple[float, dict[str, Any]]:
    """The weight of new users' features (see the module) and a note of the inner split's RMSEs.

    Returns ``(1.0, {})`` when there are too few users to hold some out.
    """
    from ..data._data import from_df
    from ..models import HybridDotBias, rating_head
    from ._factory import inner_learner
    from ._fit import fit

    rng = np.random.default_rng(0 if seed is None else seed)
    train = data.train
    counts = train.groupby(data.user).size()
    eligible = counts.index[counts >= 5].to_numpy()
    n_out = int(len(eligible) * HELD_OUT_USERS)
    if n_out < 5:
        return 1.0, {}
    out = set(rng.choice(eligible, n_out, replace=False).tolist())
    held = train[train[data.user].isin(out)]
    kept = train[~train[data.user].isin(out)]
    items, users = data.side_tables()
    users = users[~users[data.user].isin(out)] if users is not None else None  # new to the inner model
    try:
        inner = from_df(kept, data.user, data.item, data.rating, data.timestamp, valid_pct=0.05,
                        seed=0 if seed is None else seed, items=items, users=users,
                        item_features=p.item_features or None, user_features=p.user_features)
    except CflearnError:
        return 1.0, {}
    learn = fit(inner_learner(inner, p, seed=seed, device=device))
    model = rating_head(learn.model)
    if not isinstance(model, HybridDotBias):
        return 1.0, {}
    from ..serve._cold import feature_rows

    info = data.user_info.loc[sorted(out)] if data.user_info is not None else None
    if info is None:
        return 1.0, {}
    scores = {}
    cf = learn.cf
    items_idx = torch.from_numpy(cf.items.encode(held[data.item]))
    y = torch.from_numpy(held[data.rating].to_numpy(np.float32))
    order = {u: k for k, u in enumerate(info.index)}
    which = torch.tensor([order[u] for u in held[data.user]])
    with torch.no_grad():
        tables = cf.contract.tables()  # the item side: the same whatever weight new users' features get
    for w in WEIGHTS:
        model.user_feature_weight = w
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # held-out users' values the inner model never saw
            vec, bias = feature_rows(cf, "user", info)
            pred = cf.contract.score_rows(vec[which], bias[which], items_idx, tables=tables)
        assert pred is not None  # a hybrid model has tables
        scores[w] = rmse(pred.float().cpu().clamp(*cf.scale).numpy(), y.numpy())
    best = min(scores.values())
    chosen = min(w for w in WEIGHTS if scores[w] <= best + TOLERANCE)
    model.user_feature_weight = chosen
    # features that told nothing about new users leave their list at the unknown user's chart
    chart, lists = _list_chart(cf, info, held, data) if chosen > 0 else (1.0, {})
    return chosen, {"weight": chosen, "inner_rmse": {f"{w:g}": scores[w] for w in WEIGHTS},
                    "held_out_users": n_out, "held_out_ratings": len(held), "list_chart": chart,
                    "inner_ndcg@10": lists}


def _list_chart(cf: Any, info: Any, held: Any, data: CollabData) -> tuple[float, dict[str, float]]:
    """The chart's weight in the list of a user known only from metadata: each candidate of :data:`CHARTS`
    blends the list the features give (:func:`cflearn.serve._fold.lean_on_chart`) for the held-out users, scored by
    NDCG@10 on the items they rated at the relevance level; the largest weight within :data:`LIST_TOLERANCE`
    of the best wins. A two-headed model's list knows no features: the chart (1)."""
    from ..metrics import ndcg_at_k, relevance_level
    from ..serve._cold import feature_rows
    from ..serve._fold import lean_on_chart
    from ..serve._scoring import item_mask, score_matrix

    if cf.contract.fold_vector(torch.zeros(0, dtype=torch.long)) is not None or cf.item_counts is None:
        return 1.0, {}
    liked = held[held[data.rating] >= relevance_level(cf.scale)]
    truth = {u: set(cf.items.encode(g[data.item]).tolist()) - {0} for u, g in liked.groupby(data.user)}
    users = [u for u in info.index if truth.get(u)]
    if len(users) < 5:
        return 1.0, {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        vec, bias = feature_rows(cf, "user", info.loc[users])
        scores = score_matrix(cf, torch.zeros(len(users), dtype=torch.long), vectors=vec, bias=bias)
    masked = ~item_mask(cf, None, 1)
    ndcg = {}
    for chart in CHARTS:
        lists = [torch.topk(lean_on_chart(row, cf.item_counts, chart, masked), 10).indices.tolist() for row in scores]
        ndcg[chart] = float(ndcg_at_k(lists, [truth[u] for u in users], 10))
    best = max(ndcg.values())
    chosen = max(c for c in CHARTS if ndcg[c] >= best - LIST_TOLERANCE)
    return chosen, {f"{c:g}": ndcg[c] for c in CHARTS}
