"""Predicted ratings for (user, item) pairs given by raw ID."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from .._errors import ConfigError
from ..metrics import mae, rmse
from ._answers import pair_lists, refuse_unknown_pairs
from ._cold import feature_rows
from ._collab import CollabModel, as_collab
from ._recommend import FoldedUser
from ._scoring import encode_items, encode_users, eval_mode, fallback_labels, score_matrix, score_pairs

if TYPE_CHECKING:
    from fastai.learner import Learner

    from ..data._data import CollabData

__all__ = ["predict", "score"]


def predict(
    learn: Learner | CollabModel,
    users: Any | Sequence[Any],
    items: Any | Sequence[Any],
    *,
    strict: bool = False,
    clip: bool = True,
    user_info: pd.DataFrame | None = None,
    item_info: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Predict ratings for (user, item) pairs given by raw ID.

    ``users`` and ``items`` are equal-length sequences (or scalars, which are broadcast).

    Unknown IDs never raise a bare ``KeyError``. By default they get the documented fallback: an
    unknown user is scored as the *average user* (mean of the trained user embeddings and biases),
    an unknown item as the average item, so an unknown user gets roughly the item's mean rating
    and a known user with an unknown item gets roughly the global mean plus the user's bias. The
    result's ``fallback`` column names these rows. An ID of the wrong type (``'31'`` where the
    item IDs are ints, or a title) is not an unknown ID but a mistake: it raises
    :class:`cflearn.UnknownIDError` naming the fix.

    Args:
        learn: a trained learner from :func:`cflearn.collab_learner` or a model from :func:`cflearn.load`.
        users: raw user IDs.
        items: raw item IDs.
        strict: raise :class:`cflearn.UnknownIDError` on any unknown ID instead of the fallback.
        clip: clip predictions to the training data's rating scale.
        user_info: an updated users table (with the ID column or indexed by ID):
            an ID the model does not know but the table holds is scored from its features by a
            model trained with that side's features (cold start from metadata).
        item_info: an updated items table, read as ``user_info``.

    Every model answers with the same columns. What ``score`` means is in
    ``attrs["score_kind"]`` (the model's ``score_kind``): ``"rating"``, a predicted rating, or
    ``"ranking"`` for a ranking model (preset ``rank``), a preference that only orders one user's
    items (higher first); such a model scores an unknown user by item popularity (an empty history).

    Returns:
        DataFrame with columns ``user``, ``item``, ``score`` (see ``attrs["score_kind"]``) and
        ``fallback`` (``""``, ``"average user"``, ``"average item"``,
        ``"average user and item"``; with a hybrid model, ``"item features"`` for an item known
        only from metadata, scored by its features (``"average user, item features"``), and
        ``"user features"`` for a new user scored from ``user_info``).
    """
    cf = as_collab(learn)
    cf.require_trained()
    users, items = pair_lists(users, items, scalars=(FoldedUser,))
    folded = [k for k, x in enumerate(users) if isinstance(x, FoldedUser)]
    for k in folded:
        users[k].check_model(cf)
    raw_users = [None if isinstance(x, FoldedUser) else x for x in users]
    u = encode_users(cf, [x for x in raw_users if x is not None]) if len(folded) < len(users) else np.zeros(0, int)
    u = np.insert(u, [k - j for j, k in enumerate(folded)], 0).astype(np.int64) if folded else u
    i = encode_items(cf, items)
    is_folded = np.zeros(len(users), bool)
    is_folded[folded] = True
    if strict:
        refuse_unknown_pairs(users, items, u, i, skip=is_folded)
    ranking = cf.contract.score_kind == "ranking"
    scores = score_pairs(cf, u, i, clip=clip and not ranking)
    by_u, by_i = _from_metadata(cf, "user", users, u, user_info), _from_metadata(cf, "item", items, i, item_info)
    if by_u[0].any() or by_i[0].any():
        scores = _rescore(cf, u, i, by_u, by_i, scores, clip=clip)
    fallback = fallback_labels(cf, u, i, by_user=by_u[0], by_item=by_i[0])
    if folded:
        scores, fallback = _folded(cf, users, i, folded, scores, fallback, clip=clip and not ranking)
    frame = pd.DataFrame({"user": users, "item": items, "score": scores, "fallback": fallback})
    frame.attrs["score_kind"] = cf.contract.score_kind
    return frame


def _folded(cf: CollabModel, users: list[Any], i: np.ndarray, rows: list[int], scores: np.ndarray,
            fallback: np.ndarray, *, clip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of the rows whose user is a :class:`FoldedUser`: its predicted rating (the rating
    head's, from its fitted vector and bias), or a ranking model's score from its encoded vector."""
    scores, fallback = scores.copy(), fallback.copy()
    rating = cf.contract.score_kind == "rating"
    for user in {id(users[k]): users[k] for k in rows}.values():
        mine = [k for k in rows if users[k] is user]
        vec, bias = (user.vector[None], torch.tensor([float(user.bias)])) if rating else user.list_row()
        row = score_matrix(cf, torch.zeros(1, dtype=torch.long), vectors=vec, bias=bias,
                           head="rating" if rating else "list", clip=clip)[0]
        scores[mine] = row[torch.from_numpy(i[mine])].numpy()
        item_part = fallback_labels(cf, None, i[mine])
        said = user.label(for_list=False)
        fallback[mine] = [f"{said}, {p}" if p else said for p in item_part]
    return scores, fallback


def _from_metadata(cf: CollabModel, side: Literal["user", "item"], raw: list[Any], codes: np.ndarray,
                   info: pd.DataFrame | None) -> tuple[np.ndarray, torch.Tensor | None, torch.Tensor | None]:
    """Rows whose ID the model does not know but ``info`` (an updated users / items table) holds:
    a mask, and their vectors and biases from their features."""
    mask = np.zeros(len(raw), dtype=bool)
    if info is None:
        return mask, None, None
    if not isinstance(info, pd.DataFrame):
        raise ConfigError(f"{side}_info must be a DataFrame of {side} metadata, got {type(info).__name__}")
    key = cf.columns[side]
    table = info.set_index(key) if key in info.columns else info
    table = table[~table.index.duplicated()]
    mask = (codes == 0) & (pd.Index(table.index).get_indexer(pd.Index(raw, dtype=object)) >= 0)
    if not mask.any():
        return mask, None, None
    vec, bias = feature_rows(cf, side, table.loc[[raw[k] for k in np.flatnonzero(mask)]])
    return mask, vec, bias


def _rescore(cf: CollabModel, u: np.ndarray, i: np.ndarray, by_u: tuple, by_i: tuple, scores: np.ndarray, *,
             clip: bool) -> np.ndarray:
    """Scores of the rows where a user or item is scored from metadata (the rest are kept)."""
    rows = np.flatnonzero(by_u[0] | by_i[0])
    with eval_mode(cf.model):
        tables = cf.contract.tables()
        assert tables is not None  # feature_rows checked the model is hybrid
        pu, bu = tables.users[u[rows]].float().cpu(), tables.user_bias[u[rows]].float().cpu()
        qi, bi = tables.items[i[rows]].float().cpu(), tables.item_bias[i[rows]].float().cpu()
        for (mask, vec, bias), vecs, biases in ((by_u, pu, bu), (by_i, qi, bi)):
            if vec is not None:
                sub = mask[rows]
                vecs[torch.from_numpy(sub)], biases[torch.from_numpy(sub)] = vec, bias
        scored = cf.contract.score_rows(pu, bu, (qi, bi), tables=tables)
        assert scored is not None
        out = scored.float().cpu().numpy()
    scores = scores.copy()
    scores[rows] = np.clip(out, *cf.scale) if clip else out
    return scores


def score(learn: Learner | CollabModel, data: CollabData | None = None, *, clip: bool = True) -> dict[str, float]:
    """RMSE and MAE of the model on the validation rows of ``data`` (default: its training data).

    Rows are encoded with the model's own vocabularies, so cold rows get the average-user/item
    fallback, exactly as :func:`predict` would answer them.
    """
    cf = as_collab(learn)
    cf.require_trained()
    if cf.contract.score_kind != "rating":
        raise ConfigError(f"score gives RMSE/MAE of predicted ratings; preset {cf.preset.name!r} ranks (its "
                          "scores are not ratings): use cflearn.evaluate for ranking metrics")
    data = data if data is not None else cf.data
    if data is not None and data.implicit:
        raise ConfigError("score gives RMSE/MAE of ratings, and this data holds interactions: use cflearn.evaluate")
    if data is None:
        raise ConfigError("score needs data: a loaded model carries no ratings; pass data=cflearn.from_df(...)")
    valid = data.valid
    u, i = cf.users.encode(valid[data.user]), cf.items.encode(valid[data.item])
    pred = score_pairs(cf, u, i, clip=clip)
    target = valid[data.rating].to_numpy()
    return {"rmse": rmse(pred, target), "mae": mae(pred, target), "n_valid": len(valid),
            "n_train": len(data.train_idx)}
