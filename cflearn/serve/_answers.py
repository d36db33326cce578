"""What an answer says beside its scores, written once for the torch path and the NumPy one (no torch here):
the ``fallback`` column, the popularity chart's order, the items' metadata columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._errors import ConfigError, UnknownIDError

__all__ = ["NO_HELP", "pair_lists", "refuse_unknown_pairs", "refuse_unknown_users", "allowed_items", "fallback_text",
           "chart_order", "with_info", "table_from_json"]

NO_HELP = "average user (user features did not help new users)"
"""The label of a user scored from metadata by a model whose user features did not help training users held
out as new (``user_feature_weight`` 0): such a user is scored exactly as the average user."""


def _as_list(v: Any, what: str, scalars: tuple[type, ...]) -> list[Any]:
    if isinstance(v, (str, bytes, *scalars)) or np.isscalar(v):
        return [v]
    if v is None:
        raise ConfigError(f"{what} must be raw IDs (one ID or a list), got None")
    try:
        return list(v)
    except TypeError:
        raise ConfigError(f"{what} must be raw IDs (one ID or a list), got {type(v).__name__}") from None


def pair_lists(users: Any, items: Any, scalars: tuple[type, ...] = ()) -> tuple[list[Any], list[Any]]:
    """``predict``'s users and items as two lists of one length: one ID (or one of ``scalars``, e.g. a folded-in
    user) or a list on each side; a single one is repeated to the other side's length."""
    users, items = _as_list(users, "users", scalars), _as_list(items, "items", ())
    if len(users) == 1 and len(items) > 1:
        users = users * len(items)
    if len(items) == 1 and len(users) > 1:
        items = items * len(users)
    if len(users) != len(items):
        raise ConfigError(f"users and items must have the same length, got {len(users)} and {len(items)}")
    return users, items


def refuse_unknown_pairs(users: list[Any], items: list[Any], u: np.ndarray, i: np.ndarray,
                         skip: np.ndarray | None = None) -> None:
    """``predict(strict=True)``: :class:`cflearn.UnknownIDError` naming up to five unknown users and items
    (codes 0; ``skip``: users that are not IDs, e.g. folded-in ones)."""
    skip = np.zeros(len(users), bool) if skip is None else skip
    if not ((u[~skip] == 0).any() or (i == 0).any()):
        return
    bad_u = sorted({repr(x) for x, c, f in zip(users, u, skip) if c == 0 and not f})[:5]
    bad_i = sorted({repr(x) for x, c in zip(items, i) if c == 0})[:5]
    what = "; ".join(s for s in [bad_u and f"users {', '.join(bad_u)}", bad_i and f"items {', '.join(bad_i)}"] if s)
    raise UnknownIDError(f"not in the training data: {what}; pass strict=False to get the average-user/item "
                         "fallback")


def refuse_unknown_users(unknown: list[Any]) -> None:
    """``recommend(strict=True)``: :class:`cflearn.UnknownIDError` naming up to five unknown users."""
    if unknown:
        raise UnknownIDError(f"users not in the training data: {', '.join(map(repr, unknown[:5]))}; pass "
                             "strict=False to get the most-popular fallback")


def allowed_items(n_items: int, counts: np.ndarray | None, candidates: np.ndarray | None,
                  min_ratings: int) -> np.ndarray:
    """Items that may be recommended at all (bool per item row): not row 0, at least ``min_ratings`` training
    ratings (``counts``), among the ``candidates`` (encoded; 0, an unknown ID, is none)."""
    if isinstance(min_ratings, bool) or not isinstance(min_ratings, (int, np.integer)) or min_ratings < 0:
        raise ConfigError(f"min_ratings must be a whole number of training ratings, 0 or more, got {min_ratings!r}")
    ok = np.ones(n_items, bool)
    ok[0] = False
    if min_ratings > 0:
        if counts is None:
            raise ConfigError("min_ratings needs the training counts; this model was saved without them")
        ok &= np.asarray(counts) >= min_ratings
    if candidates is not None:
        among = np.zeros(n_items, bool)
        among[candidates[candidates > 0]] = True
        ok &= among
    return ok


def fallback_text(users: np.ndarray | None, items: np.ndarray | None = None, *, user_meta: Any = False,
                  item_meta: Any = False, user_label: str = "user features") -> np.ndarray:
    """The ``fallback`` column: how each row was scored when not by its own trained rows.

    A side is ``user_label`` / ``"item features"`` where ``user_meta`` / ``item_meta`` (bool per row: known only
    from metadata), ``"average user"`` / ``"average item"`` where its code is 0 (unknown), or ``""``; a pair joins
    its sides with ``", "``, and both unknown read ``"average user and item"``. ``items=None``: the user side
    alone (the users of top-N lists); ``users=None``: the item side.
    """
    def side(name: str, codes: np.ndarray, meta: Any, label: str) -> np.ndarray:
        return np.select([np.asarray(meta, bool) & np.ones(len(codes), bool), codes == 0], [label, f"average {name}"],
                         "").astype(str)

    if users is None:
        return side("item", np.asarray(items), item_meta, "item features").astype(object)
    u_part = side("user", np.asarray(users), user_meta, user_label)
    if items is None:
        return u_part.astype(object)
    i_part = side("item", np.asarray(items), item_meta, "item features")
    both = (u_part != "") & (i_part != "")
    out = np.where(both, np.char.add(np.char.add(u_part, ", "), i_part), np.char.add(u_part, i_part)).astype(object)
    out[(u_part == "average user") & (i_part == "average item")] = "average user and item"
    return out


def chart_order(counts: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` most popular allowed items (most training ratings first; ties by index): an unknown user's list."""
    key = np.where(allowed, np.asarray(counts, np.float64), -1.0)
    return np.argsort(-key, kind="stable")[:n]


def with_info(item_info: pd.DataFrame | None, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the items' metadata columns (titles, genres) beside its ``item`` column."""
    if item_info is None or frame.empty:
        return frame
    info = item_info.reindex(frame["item"].to_numpy())
    for col in info.columns:
        frame[col] = info[col].to_numpy()
    return frame


def table_from_json(obj: dict[str, Any] | None) -> pd.DataFrame | None:
    """The items table a model file's header holds (``item_info``: index and columns), or ``None``."""
    if not obj:
        return None
    return pd.DataFrame(obj["columns"], index=pd.Index(obj["index"], name=obj.get("index_name")))
