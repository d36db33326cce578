"""Recommendations by raw ID: top-N for one user or many, similar items/users, cold start and fold-in."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .._errors import ColumnError, ConfigError, DataError, UnknownIDError, check_count, check_number
from ..data._data import relevance_level
from ..models import HybridDotBias, rating_head
from ._answers import chart_order, refuse_unknown_users, with_info
from ._cold import FeatureInput, feature_part, feature_rows
from ._collab import CollabModel, as_collab
from ._fold import CHART_PRIOR, UserPrior, chart_weight, lean_on_chart, posterior_mode, user_prior
from ._scoring import encode_items, encode_users, fallback_labels, features_label, item_mask, score_matrix, top_n

if TYPE_CHECKING:
    from fastai.learner import Learner

__all__ = ["recommend", "recommend_all", "similar_items", "similar_users", "fold_in", "cold_user", "FoldedUser",
           "lists_vs_chart"]


@dataclasses.dataclass(eq=False)
class FoldedUser:
    """A user who was not in training, fitted from a few ratings against the frozen item factors.

    Pass it to :func:`recommend` (or :func:`recommend_all` in a list) like a user ID. Each is its own
    user (equal only to itself, hashable), so the ``user`` column of :func:`recommend_all`'s frame
    can be grouped by.

    Attributes:
        vector: the user's factors.
        bias: the user's bias.
        items: model indices of the items the ratings were about (excluded from recommendations).
        unknown_items: raw IDs in the ratings that the model does not know (ignored).
        loss: final mean squared error on the given ratings (NaN for a ranking model, which
            encodes the user from the items without fitting, and for a user scored from features alone).
        source: how the user was scored, shown as ``fallback`` in recommendations: ``"fold-in"``,
            ``"fold-in + user features"`` (the fit started from their features) or ``"user features"``
            (metadata alone, :func:`cold_user`; ``"average user (user features did not help new users)"``
            where the model gave them no weight for new users).
        list_vector: a two-headed model's (preset ``dual``) ranking-head vector of the user, encoded
            from the items (``None``: the lists come from ``vector``).
        chart: the popularity chart's weight in the user's list (0: the model's ranking alone; 1: the
            chart alone). :func:`fold_in` sets it from how many ratings inform the list
            (:func:`cflearn.serve._fold.chart_weight`): a new user's list starts from the chart and leaves it as
            evidence grows.
        list_items: how many of the ratings inform the list (a ranking head learns from liked items
            only: ratings below the relevance level tell it what the user has seen, not what to suggest).
    """

    vector: torch.Tensor
    bias: float
    items: torch.Tensor
    unknown_items: list[Any]
    loss: float
    source: str = "fold-in"
    list_vector: torch.Tensor | None = None
    chart: float = 0.0
    list_items: int | None = None
    origin: int | None = dataclasses.field(default=None, repr=False)  # which model folded the user in
    chart_reason: str = ""  # why the list is the chart alone though ratings inform it

    def check_model(self, cf: CollabModel) -> None:
        """Refuse a model other than the one this user was folded in with: their vector lives in that model's
        space (another model's, even of the same shape, would score them as someone else)."""
        if self.origin is not None and self.origin != id(cf.model):
            raise ConfigError("this FoldedUser was folded in with another model; its vector means nothing to this "
                              "one: fold the user in again with cflearn.fold_in(model, ratings)")

    def list_row(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The user's vector and bias for the tables lists are ranked with."""
        if self.list_vector is not None:
            return self.list_vector[None], torch.zeros(1)
        return self.vector[None], torch.tensor([self.bias])

    def label(self, for_list: bool = True) -> str:
        """What the user's list (or, ``for_list=False``, their predictions) was based on, as the ``fallback``
        column says it: ``"fold-in (3 ratings) + popular (80%)"``, ``"popular (2 ratings, none liked)"``,
        ``"popular (ratings from user features)"``; for predictions ``"fold-in (3 ratings)"``, ``"user
        features"``."""
        n = len(self.items)
        rated = f"{n} rating{'s' if n != 1 else ''}"
        base = f"fold-in ({rated})" + (" + user features" if "features" in self.source else "")
        if not n:
            base = self.source  # "user features", or the average user's label where they did not help
        if not for_list:
            return base
        if not n:
            if self.chart >= 1.0:
                return "popular (ratings from user features)" if base == "user features" else "popular"
            return base + (f" + popular ({self.chart:.0%})" if self.chart > 0 else "")
        if self.list_items == 0:
            return f"popular ({rated}, none liked)"
        if self.chart >= 1.0 and self.chart_reason:
            return f"popular ({rated}; {self.chart_reason})"
        return base + (f" + popular ({self.chart:.0%})" if self.chart > 0 else "")

    def __repr__(self) -> str:
        if not len(self.items):
            return f"FoldedUser(no ratings: {self.label()})"
        fit = "encoded from the items" if self.loss != self.loss else f"fit MSE {self.loss:.3f}"
        liked = "" if self.list_items in (None, len(self.items)) else f", {self.list_items} liked inform the list"
        n = len(self.items)
        return (f"FoldedUser({n} rating{'s' if n != 1 else ''} used{liked}, {len(self.unknown_items)} unknown items "
                "ignored, "
                f"{fit}{', started from user features' if 'features' in self.source else ''}, list: {self.label()})")


def _resolve_users(cf: CollabModel, users: Sequence[Any]) -> tuple[torch.Tensor, list[int]]:
    """Model indices of raw users (0 = unknown) and positions of folded-in users."""
    raw = [u for u in users if not isinstance(u, FoldedUser)]
    codes = iter(encode_users(cf, raw).tolist()) if raw else iter([])
    idx = [0 if isinstance(u, FoldedUser) else next(codes) for u in users]
    return torch.tensor(idx, dtype=torch.long), [k for k, u in enumerate(users) if isinstance(u, FoldedUser)]


def recommend_all(
    learn: Learner | CollabModel,
    users: Sequence[Any] | None = None,
    n: int = 10,
    *,
    exclude_seen: bool = True,
    candidates: Sequence[Any] | None = None,
    min_ratings: int = 1,
    strict: bool = False,
    chunk: int = 1024,
) -> pd.DataFrame:
    """Top-``n`` items for many users at once (all known users by default), scored with matrix products.

    Args:
        learn: a learner from :func:`cflearn.collab_learner` or a model from :func:`cflearn.load`.
        users: raw user IDs and/or :class:`FoldedUser` s; ``None`` means every user seen in training.
        n: items per user.
        exclude_seen: leave out the items each user rated in training.
        candidates: only recommend among these raw item IDs.
        min_ratings: only recommend items with at least this many training ratings (1 leaves out the
            items a hybrid model knows only from their features; 0 lets them in).
        strict: raise :class:`cflearn.UnknownIDError` for unknown users instead of the fallback.
        chunk: users scored per matrix product.

    Returns:
        Long DataFrame ``user, rank, item, score, fallback`` (+ item metadata columns such as
        ``title``, ``genres``). ``score`` is what ordered the list (``attrs["score_kind"]``): the
        predicted rating of a rating model, the ranking score of a ranking model; a two-headed
        model (preset ``dual``) ranks with its ranking head and adds a ``rating`` column, the
        rating head's prediction for the same items. Unknown users get the most popular items
        with ``fallback="popular"``, scored by their number of training ratings (the order of
        the list); a :class:`FoldedUser`'s rows say what its list was based on
        (:meth:`FoldedUser.label`: ``"fold-in (3 ratings) + popular (80%)"``, ``"popular (2
        ratings, none liked)"``, ...): its list blends the model's ranking with the chart by rank,
        the chart weighing ``FoldedUser.chart``, and ``score`` is that blend (the training count
        where the list is the chart alone, as for unknown users); :func:`cflearn.predict` gives a
        folded user's ratings. A hybrid model's users known only from metadata say ``"user
        features"``. A user with fewer than ``n`` items left to
        recommend gets fewer rows: never an item excluded as seen, nor the unknown-item row.
    """
    cf = as_collab(learn)
    cf.require_trained()
    users = list(cf.users.ids) if users is None else list(users)
    check_count("n", n)
    chunk = check_count("chunk", chunk)
    uidx, folded_pos = _resolve_users(cf, users)
    for k in folded_pos:
        users[k].check_model(cf)
    unknown = [users[k] for k in range(len(users)) if uidx[k] == 0 and k not in folded_pos]
    if strict:
        refuse_unknown_users(unknown)
    allowed = item_mask(cf, candidates, min_ratings)
    n_eff = min(int(n), int(allowed.sum()))
    out_items = torch.zeros(len(users), n_eff, dtype=torch.long)
    out_scores = torch.zeros(len(users), n_eff)
    folded = set(folded_pos)
    for s in range(0, len(users), chunk):
        rows = list(range(s, min(s + chunk, len(users))))
        scores = score_matrix(cf, uidx[rows])
        if folded.intersection(rows):  # a blend with the chart: listed by its float64 value
            scores = scores.double()
        for j, k in enumerate(rows):
            if k in folded:
                scores[j] = _folded_list(cf, users[k], allowed, exclude_seen)
        seen = [users[k].items if k in folded else cf.seen(int(uidx[k])) for k in rows] if exclude_seen else None
        top = top_n(scores, allowed, seen, n_eff)
        out_items[rows], out_scores[rows] = top.indices, top.values.float()
    fallback = fallback_labels(cf, uidx.numpy())  # "user features": a hybrid's users known only from metadata
    if unknown:  # the most popular items, scored (and so ordered) by their number of training ratings
        popular = _popular(cf, allowed, n_eff)
        assert cf.item_counts is not None
        counts = cf.item_counts[popular].float()
        for k in range(len(users)):
            if uidx[k] == 0 and k not in folded:
                out_items[k], out_scores[k], fallback[k] = popular, counts, "popular"
    for k in folded:
        fallback[k] = users[k].label()
    frame = pd.DataFrame({
        "user": np.repeat(np.array(users, dtype=object), n_eff),
        "rank": np.tile(np.arange(1, n_eff + 1), len(users)),
        "item": cf.items.decode(out_items.reshape(-1).numpy()),
        "score": out_scores.reshape(-1).numpy(),
        "fallback": np.repeat(fallback, n_eff),
    })
    spec = cf.contract
    if spec.list_kind != spec.score_kind and spec.score_kind == "rating":  # two heads: the list, with ratings
        frame.insert(4, "rating", _ratings_of(cf, users, uidx, folded, out_items).reshape(-1).numpy())
    frame.attrs["score_kind"] = spec.list_kind
    masked = ~np.isfinite(frame["score"].to_numpy())  # fewer unseen candidates than n: no seen or unknown items
    if masked.any():
        frame = frame[~masked].reset_index(drop=True)
    return with_info(cf.item_info, frame)


def _folded_list(cf: CollabModel, user: FoldedUser, allowed: torch.Tensor, exclude_seen: bool) -> torch.Tensor:
    """A folded-in user's list scores over every item: the model's, leaning on the chart by ``user.chart``."""
    vec, bias = user.list_row()
    scores = score_matrix(cf, torch.zeros(1, dtype=torch.long), vectors=vec, bias=bias)[0]
    if user.chart <= 0.0:
        return scores
    if cf.item_counts is None:
        raise ConfigError("a new user's list leans on the popularity chart, and this model was saved without the "
                          "training counts; fold in with chart=0 for the model's ranking alone")
    masked = ~allowed
    if exclude_seen:
        masked = masked.clone()
        masked[user.items] = True
    if user.chart >= 1.0:  # the chart alone: the unknown user's list, scored by the training counts as there
        return cf.item_counts.float().masked_fill(masked, -torch.inf)
    return lean_on_chart(scores, cf.item_counts, user.chart, masked, dtype=torch.float64)


@torch.no_grad()
def _ratings_of(cf: CollabModel, users: list[Any], uidx: torch.Tensor, folded: set[int],
                items: torch.Tensor) -> torch.Tensor:
    """Predicted ratings (the rating head's) of each user's listed items ``(len(users), n)``."""
    tables = cf.contract.tables()
    if tables is None:
        return torch.full(items.shape, float("nan"))
    vec, bias = tables.users.detach()[uidx.to(tables.users.device)].float().cpu(), \
        tables.user_bias.detach()[uidx.to(tables.users.device)].float().cpu()
    for k in folded:
        vec[k], bias[k] = users[k].vector.float().cpu(), float(users[k].bias)
    scores = cf.contract.score_rows(vec, bias, items, tables=tables)
    assert scores is not None  # the model has tables
    return scores.float().cpu().clamp(*cf.scale)


def _popular(cf: CollabModel, allowed: torch.Tensor, n: int) -> torch.Tensor:
    if cf.item_counts is None:
        raise ConfigError("the popularity fallback needs the training counts; this model was saved without them")
    return torch.from_numpy(chart_order(cf.item_counts.numpy(), allowed.numpy(), n))


def recommend(
    learn: Learner | CollabModel,
    user: Any,
    n: int = 10,
    *,
    exclude_seen: bool = True,
    candidates: Sequence[Any] | None = None,
    min_ratings: int = 1,
    strict: bool = False,
    features: FeatureInput | None = None,
) -> pd.DataFrame:
    """Top-``n`` items for one user (a raw ID or a :class:`FoldedUser`), best first.

    See :func:`recommend_all` for the options; the result has columns ``rank, item, score,
    fallback`` plus item metadata (e.g. MovieLens ``title`` and ``genres``).

    Cold start from metadata: ``recommend(learn, None, features={"age": 25, "occupation":
    "writer"})`` (or ``features=users.loc[new_id]``, a row of an updated users table) scores a new
    user from their features with a model trained with user features (:func:`cold_user`);
    ``fallback`` then says ``"user features"``. A known ``user`` with ``features`` is an error
    (which would count?).
    """
    if features is not None:
        if user is not None and not isinstance(user, FoldedUser) and int(encode_users(as_collab(learn), [user])[0]):
            raise ConfigError(f"user {user!r} is known to the model, so features= would be ignored; pass user=None "
                              "(or a new ID) to score a new user from their features")
        if isinstance(user, FoldedUser):
            raise ConfigError("a FoldedUser already holds its features: pass features= to cflearn.fold_in instead")
        user = cold_user(learn, features)
    elif user is None:
        raise ConfigError("user is None: pass a raw user ID, a FoldedUser, or features={...} for a new user")
    frame = recommend_all(learn, [user], n, exclude_seen=exclude_seen, candidates=candidates,
                          min_ratings=min_ratings, strict=strict)
    return frame.drop(columns="user").reset_index(drop=True)


def _similar(cf: CollabModel, side: int, raw: Any, n: int, ok: torch.Tensor) -> pd.DataFrame:
    """The ``n`` rows of one side's table most cosine-similar to ``raw``'s (``side`` 0: users, 1: items)."""
    cf.require_trained()
    check_count("n", n)
    kind, vocab = ("user", cf.users) if side == 0 else ("item", cf.items)
    idx = int((encode_users(cf, [raw]) if side == 0 else encode_items(cf, [raw]))[0])
    if idx == 0:
        raise UnknownIDError(f"{kind} {raw!r} is not in the training data; similarities need a trained {kind}")
    vectors = _vectors(cf, side)
    sims = F.cosine_similarity(vectors, vectors[idx][None], dim=1)
    sims[~ok] = -torch.inf
    sims[idx] = -torch.inf
    top = sims.topk(min(int(n), int(ok.sum()) - int(ok[idx])))
    return pd.DataFrame({kind: vocab.decode(top.indices.numpy()), "similarity": top.values.numpy()})


@torch.no_grad()
def _vectors(cf: CollabModel, side: int) -> torch.Tensor:
    """The vectors a model scores one side with: its tables, else its embedding table of that side."""
    spec = cf.contract
    tables = spec.tables()
    if tables is not None:
        return (tables.users if side == 0 else tables.items).detach().float().cpu()
    own = [t for (col, _), t in spec.embeddings().items() if col == side]
    if not own:
        raise ConfigError("similarities need factor vectors; this model has no user/item tables cflearn knows "
                          "(Contract.tables or Contract.embeddings)")
    return own[0].weight.detach().float().cpu()


def similar_items(learn: Learner | CollabModel, item: Any, n: int = 10, *, min_ratings: int = 1,
                  features: FeatureInput | None = None) -> pd.DataFrame:
    """The ``n`` items whose vectors (those the model scores with) are most cosine-similar to ``item``'s.

    With ``features=`` (and ``item=None``), the item is a new one known only from its metadata
    (``{"genres": "Comedy|Romance", "year": 1999}`` or a row of an updated items table), placed by a
    model with item features (``best``, ``content``): content-based neighbours of an item nobody
    has rated.

    Returns a DataFrame ``item, similarity`` (+ item metadata). Raises :class:`cflearn.UnknownIDError`
    for an item not in the model.
    """
    cf = as_collab(learn)
    ok = item_mask(cf, None, min_ratings)
    if features is None:
        return with_info(cf.item_info, _similar(cf, 1, item, n, ok))
    if item is not None:
        raise ConfigError("pass either an item ID or features= for a new item, not both")
    cf.require_trained()
    check_count("n", n)
    vec, _ = feature_rows(cf, "item", features)
    if len(vec) != 1:
        raise ConfigError(f"similar_items places one new item; got features for {len(vec)}")
    sims = F.cosine_similarity(_vectors(cf, 1), vec, dim=1)
    sims[~ok] = -torch.inf
    top = sims.topk(min(int(n), int(ok.sum())))
    return with_info(cf.item_info, pd.DataFrame({"item": cf.items.decode(top.indices.numpy()),
                                        "similarity": top.values.numpy()}))


def similar_users(learn: Learner | CollabModel, user: Any, n: int = 10) -> pd.DataFrame:
    """The ``n`` users whose vectors are most cosine-similar to ``user``'s (``user, similarity``)."""
    cf = as_collab(learn)
    ok = torch.ones(len(cf.users), dtype=torch.bool)
    ok[0] = False
    return _similar(cf, 0, user, n, ok)


def cold_user(learn: Learner | CollabModel, features: FeatureInput) -> FoldedUser:
    """A new user scored from their metadata alone (no ratings), for :func:`recommend`.

    The model must have user features (declared with ``cflearn.from_df(..., users=...,
    user_features=[...])``, preset ``best``). The user's vector and bias are the trained users'
    mean collaborative part plus the mean embedding of *their* features, encoded as training
    encoded its users (same buckets and labels). A column left out counts as ``unknown``; a value
    the model never saw is ignored with a warning.

    Args:
        learn: a hybrid learner or model with user features.
        features: ``{"age": 25, "gender": "F", "occupation": "writer"}``, or a row of a users table.
    """
    cf = as_collab(learn)
    cf.require_trained()
    vec, bias = feature_rows(cf, "user", features)
    if len(vec) != 1:
        raise ConfigError(f"cold_user scores one user; got features for {len(vec)} (pass one row or mapping)")
    empty = torch.zeros(0, dtype=torch.long)
    encoded = cf.contract.fold_vector(empty)  # a two-headed model's list: no items yet (its ranking head's chart)
    # the list: a two-headed model's ranking head knows no features, so the chart; a hybrid's own list from the
    # features, leaning on the chart as far as the features did not help new users (user_feature_weight, chosen
    # on training users held out as new: 0 when the features told nothing about them)
    head = rating_head(cf.model)
    measured = getattr(head, "new_user_chart", None)  # the chart's weight chosen on held-out users' lists
    trust = float(getattr(head, "user_feature_weight", 1.0))
    chart = 1.0 if encoded is not None else float(measured) if measured is not None else min(1.0, max(0.0, 1 - trust))
    return FoldedUser(vec[0], float(bias[0]), empty, [], float("nan"), features_label(cf),
                      None if encoded is None else encoded.detach().float().cpu(), chart=chart, list_items=0,
                      origin=id(cf.model))


def fold_in(learn: Learner | CollabModel, ratings: Mapping[Any, float] | pd.DataFrame, *,
            features: FeatureInput | None = None, l2: float | None = None, strength: float = 1.0,
            steps: int = 100, chart: float = CHART_PRIOR) -> FoldedUser:
    """Fit a new user's factors and bias from a few ratings, keeping every item factor frozen.

    The optimisation has ``n_factors + 1`` unknowns, so it takes milliseconds. By default it is
    empirical Bayes: the trained users are the prior (their mean and covariance of vectors, the
    spread of their biases) and the rating noise is measured on held-out ratings
    (:func:`cflearn.serve._fold.rating_noise`), so a user with few ratings stays near the average user
    and each rating moves them as far as the noise allows. On ml-latest-small (10% of users held
    out, 5 ratings each) this beats the average-user fallback; a plain L2 fit did not
    (``bench/fold_in.py``).
    A ranking model (preset ``rank``) needs no fit: its encoder turns the items into the user's
    vector, each rated item weighing as in training (items rated below the relevance level weigh
    the preset's ``below_weight``; on implicit data pass any value, e.g. 1).

    Args:
        learn: a dot-product learner or model (presets ``fast``, ``best``, ``book``).
        ratings: ``{raw item ID: rating}``, or a DataFrame with the model's item and rating columns.
        features: the new user's metadata (as for :func:`cold_user`), for a model with user
            features: the prior is then centred on where their features place them (the trained
            users' mean collaborative part + their feature mean, with the spread of the trained
            users' collaborative parts), so a few ratings refine a start that already fits them.
        l2: instead of the prior, a plain L2 penalty on the factors and bias (mean squared error
            plus ``l2 * (|u|^2 + b^2)``), for comparison.
        strength: weight of the prior (1 = the posterior mode; larger keeps the user nearer the
            average user).
        steps: at most this many Gauss-Newton steps (it stops once converged, usually within 10).
        chart: how many ratings the popularity chart is worth in the user's list: with ``m`` ratings
            that inform the list, the chart weighs ``chart / (chart + m)`` (``FoldedUser.chart``), so
            a new user's list starts from the chart and moves away from it as ratings come in; 0 gives
            the model's ranking alone. The default, :data:`cflearn.serve._fold.CHART_PRIOR`, was chosen on
            training users held out as new users of every suite data set. A ranking head learns from
            liked items only (rated at the relevance level or above): with none of those, the list is
            the chart without the rated items, and a warning says so. A model whose lists come from
            predicted ratings (``fast``, ``best``) and lose to the chart for its known users
            (:func:`lists_vs_chart`) gives a new user the chart.

    Returns:
        FoldedUser: pass it to :func:`recommend` or :func:`cflearn.predict`.
    """
    cf = as_collab(learn)
    cf.require_trained()
    spec = cf.contract
    with torch.no_grad():
        tables = spec.tables()
    if tables is None and spec.score_kind == "rating":
        raise ConfigError("fold_in needs a model with user/item tables (presets fast, best, book); "
                          f"{type(cf.model).__name__} is scored by forward passes only")
    steps = check_count("steps", steps)
    if isinstance(ratings, pd.DataFrame):
        wanted = [cf.columns.get("item"), cf.columns.get("rating")]
        missing = [str(c) for c in wanted if c is None or c not in ratings.columns]
        if missing:
            raise ColumnError(f"fold_in's DataFrame needs the model's item and rating columns {wanted}; missing "
                              f"{missing}, got {[str(c) for c in ratings.columns]}")
        ratings = dict(zip(ratings[cf.columns["item"]], ratings[cf.columns["rating"]]))
    elif not isinstance(ratings, Mapping):
        raise ConfigError(f"fold_in takes {{item: rating, ...}} or a DataFrame, got {type(ratings).__name__}")
    if not ratings and features is not None:
        return cold_user(cf, features)  # metadata alone
    if not ratings:
        raise ConfigError("fold_in needs at least one rating, e.g. {item_id: 4.0} (or features= for a model with "
                          "user features)")
    lo, hi = cf.scale
    for item, value in ratings.items():
        try:
            number = float(value) if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
                else float("nan")
        except OverflowError:  # 10**400
            number = float("inf")
        if not np.isfinite(number):
            raise DataError(f"fold_in ratings must be finite numbers; item {item!r} has {str(value)[:30]}")
        if not cf.implicit and not lo <= number <= hi:
            raise DataError(f"fold_in rating {number:g} of item {item!r} is outside the model's rating scale "
                            f"{lo:g}-{hi:g}")
        if cf.implicit and number <= 0:
            raise DataError(f"fold_in interaction weights must be positive; item {item!r} has {number:g}")
    raw_items = list(ratings)
    idx = torch.from_numpy(encode_items(cf, raw_items))
    unknown = [r for r, i in zip(raw_items, idx.tolist()) if i == 0]
    known = idx > 0
    if not known.any():
        raise UnknownIDError(f"none of the rated items is known to the model (e.g. {raw_items[0]!r})")
    with torch.no_grad():
        values = np.array([float(ratings[r]) for r, ok in zip(raw_items, known.tolist()) if ok])
        weights = np.ones(len(values)) if cf.implicit else np.where(
            values >= relevance_level(cf.scale), 1.0, cf.preset.below_weight)
        encoded = spec.fold_vector(idx[known], torch.from_numpy(weights))
    chart = check_number("chart", chart)
    liked = int(known.sum()) if encoded is None else int((weights > 0).sum())  # what informs the list
    if not liked:
        warnings.warn(f"none of the {len(values)} known ratings is at the relevance level "
                      f"({relevance_level(cf.scale):g}), and the model's ranking head learns from liked items only: "
                      "the user's list is the popularity chart, without the rated items", UserWarning, stacklevel=2)
    lean = chart_weight(liked, chart) if chart > 0 else 0.0 if liked else 1.0
    weak = ""
    if spec.list_kind == "rating" and chart > 0 and liked:  # lists by predicted rating: as good as the chart?
        ratio = lists_vs_chart(cf)
        if ratio is not None and ratio < 1.0:
            lean, weak = 1.0, "this model's lists lose to the chart"
    if encoded is not None and spec.score_kind != "rating":  # a ranking model: the encoded vector is the user
        return FoldedUser(encoded.detach().float().cpu(), 0.0, idx[known], unknown, float("nan"), chart=lean,
                          list_items=liked, origin=id(cf.model))
    if tables is None:  # a ranking model that cannot encode a user from their items
        raise ConfigError(f"fold_in needs a model with user/item tables or a ranking model that encodes a user "
                          f"from their items; {type(cf.model).__name__} is scored by forward passes only")
    list_vector = None if encoded is None else encoded.detach().float().cpu()  # two heads: the list's vector
    if l2 is not None:
        check_number("l2", l2)
    check_number("strength", strength)
    U, bu, items, bi = (t.detach().cpu().float() for t in tables)
    q, b_i = items[idx[known]], bi[idx[known]]
    y = torch.tensor([float(ratings[r]) for r, ok in zip(raw_items, known.tolist()) if ok])
    prior = _prior(cf, U, bu, features) if l2 is None else None
    if features is not None and l2 is not None:
        raise ConfigError("features= sets fold-in's prior and l2= replaces the prior by a plain penalty; pass one")
    if prior is None:  # mean((y - pred)^2) + l2 * (|u|^2 + b^2): the same problem with a flat, l2-wide prior
        n, weight = len(y), max(float(l2 or 0.0), 0.0)
        prior = UserPrior(torch.zeros(U.shape[1]), torch.eye(U.shape[1]) * n * weight, 0.0,
                          1.0 / (n * weight) if weight > 0 else float("inf"), 1.0)
        start = (U[0], float(bu.reshape(-1)[0]))
    else:
        start = (prior.mean, prior.bias_mean)
    vec, bias_value = posterior_mode(spec.output, q, b_i, y, start, prior, strength=strength if l2 is None else 1.0,
                                     steps=steps)
    u, b = vec, torch.tensor([bias_value])
    with torch.no_grad():
        fitted = spec.score_rows(u.expand(len(q), -1), b.expand(len(q)), (q, b_i), tables=tables)
        assert fitted is not None  # the model has tables
        mse = float(F.mse_loss(fitted.float().cpu(), y))
    source = "fold-in + user features" if features is not None and features_label(cf) == "user features" \
        else "fold-in"  # features given no weight for new users start the fit at the average user
    return FoldedUser(u, bias_value, idx[known], unknown, mse, source, list_vector, lean, liked, id(cf.model), weak)


def _prior(cf: CollabModel, users: torch.Tensor, bias: torch.Tensor, features: FeatureInput | None) -> UserPrior:
    """Fold-in's prior, cached per trained model (it costs O(users x factors^2)): the trained users'
    whole rows; with features, their collaborative parts, centred on the new user's features."""
    cache = cf.fold_prior if isinstance(cf.fold_prior, dict) else {}
    cf.fold_prior = cache
    trained = cf.contract.trained_rows(0)
    if features is None:
        if "rows" not in cache:
            cache["rows"] = user_prior(cf, users, bias, trained)
        return cast(UserPrior, cache["rows"])
    vec, b = feature_part(cf, "user", features)
    if len(vec) != 1:
        raise ConfigError(f"fold_in folds in one user; got features for {len(vec)} (pass one row or mapping)")
    if "cf" not in cache:
        # the trained users as the prior sees them: their collaborative part plus the share of their feature
        # part that features do not explain for a new user (all of it when the features did not help)
        model = cast(HybridDotBias, rating_head(cf.model))
        with torch.no_grad():
            a = model.user_feature_weight
            f, c = model.features("u")
            mf, mc = model.mean_features("u")
            users = model.cf_part("u", slice(None), False) + mf + (1 - a) * (f - mf)
            biases = model.cf_part("u", slice(None), True)[:, 0] + mc + (1 - a) * (c - mc)
            cache["cf"] = user_prior(cf, users.detach().float().cpu(), biases.detach().float().cpu(), trained)
            cache["mean_features"] = (mf.detach().float().cpu(), float(mc))
    base = cast(UserPrior, cache["cf"])
    mf, mc = cache["mean_features"]  # the new user's shrunk feature part, relative to the trained users' mean
    return dataclasses.replace(base, mean=base.mean + vec[0] - mf, bias_mean=base.bias_mean + float(b[0]) - mc)


LIST_USERS = 1000
"""Validation users (at most, seeded) on whom :func:`lists_vs_chart` compares the model's lists with the chart."""


def lists_vs_chart(cf: CollabModel) -> float | None:
    """NDCG@10 of the model's own top-10 lists over the popularity chart's (each without the user's training
    items), for the known users of the validation rows who liked one of them (at most :data:`LIST_USERS`,
    seeded); ``None`` without validation rows (a model loaded from a file uses the value saved with it).
    Cached on the model until it trains again."""
    if cf.fold_lists is not None:
        return cf.fold_lists
    data = cf.data
    if data is None or not len(data.valid_idx):
        return None
    from ..metrics import ndcg_at_k, relevance_level

    valid = data.valid
    valid = valid[(cf.users.encode(valid[data.user]) > 0) & (cf.items.encode(valid[data.item]) > 0)]
    if not data.implicit:
        valid = valid[valid[data.rating] >= relevance_level(cf.scale)]
    truth = {u: set(g[data.item]) for u, g in valid.groupby(data.user)}
    users = sorted(truth, key=str)
    if len(users) < 10:
        return None
    if len(users) > LIST_USERS:
        users = [users[k] for k in np.sort(np.random.default_rng(0).choice(len(users), LIST_USERS, replace=False))]
    mine = recommend_all(cf, users, 10)
    lists = {u: list(g["item"]) for u, g in mine.groupby("user", sort=False)}
    assert cf.item_counts is not None
    # the chart as recommend_all would list it for each user: the same items allowed, their own left out
    counts = cf.item_counts.float().expand(len(users), -1).clone()
    top = top_n(counts, item_mask(cf, None, 1), [cf.seen(int(k)) for k in cf.users.encode(users)], 10)
    charts = [list(cf.items.decode(idx[val > -torch.inf].numpy())) for idx, val in zip(top.indices, top.values)]
    rel = [truth[u] for u in users]
    chart = ndcg_at_k(charts, rel, 10)
    cf.fold_lists = float(ndcg_at_k([lists.get(u, []) for u in users], rel, 10) / chart) if chart else 1.0
    return cf.fold_lists
