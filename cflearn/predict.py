"""Predicted ratings for (user, item) pairs given by raw ID."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .collab import CollabModel, as_collab
from .errors import ConfigError, UnknownIDError
from .metrics import mae, rmse

if TYPE_CHECKING:
    from fastai.learner import Learner

    from .data import CollabData

__all__ = ["predict", "predict_codes", "score"]


def _as_list(v: Any) -> list[Any]:
    if isinstance(v, (str, bytes)) or np.isscalar(v):
        return [v]
    return list(v)


def predict(
    learn: Learner | CollabModel,
    users: Any | Sequence[Any],
    items: Any | Sequence[Any],
    *,
    strict: bool = False,
    clip: bool = True,
) -> pd.DataFrame:
    """Predict ratings for (user, item) pairs given by raw ID.

    ``users`` and ``items`` are equal-length sequences (or scalars, which are broadcast).

    Unknown IDs never raise a bare ``KeyError``. By default they get the documented fallback: an
    unknown user is scored as the *average user* (mean of the trained user embeddings and biases),
    an unknown item as the average item, so an unknown user gets roughly the item's mean rating
    and a known user with an unknown item gets roughly the global mean plus the user's bias. The
    result's ``known_user`` / ``known_item`` columns flag these rows.

    Args:
        learn: a learner from :func:`cflearn.collab_learner` or a model from :func:`cflearn.load`.
        users: raw user IDs.
        items: raw item IDs.
        strict: raise :class:`cflearn.UnknownIDError` on any unknown ID instead of the fallback.
        clip: clip predictions to the training data's rating scale.

    Returns:
        DataFrame with columns ``user``, ``item``, ``prediction``, ``known_user``, ``known_item``.
    """
    cf = as_collab(learn)
    users, items = _as_list(users), _as_list(items)
    if len(users) == 1 and len(items) > 1:
        users = users * len(items)
    if len(items) == 1 and len(users) > 1:
        items = items * len(users)
    if len(users) != len(items):
        raise ConfigError(f"users and items must have the same length, got {len(users)} and {len(items)}")
    u, i = cf.users.encode(pd.Series(users, dtype=object)), cf.items.encode(pd.Series(items, dtype=object))
    if strict and ((u == 0).any() or (i == 0).any()):
        bad_u = sorted({repr(x) for x, c in zip(users, u) if c == 0})[:5]
        bad_i = sorted({repr(x) for x, c in zip(items, i) if c == 0})[:5]
        what = "; ".join(s for s in [bad_u and f"users {', '.join(bad_u)}", bad_i and f"items {', '.join(bad_i)}"] if s)
        raise UnknownIDError(f"not in the training data: {what}; pass strict=False to get the average-user/item "
                             "fallback")
    pred = predict_codes(cf, u, i, clip=clip)
    return pd.DataFrame({"user": users, "item": items, "prediction": pred, "known_user": u > 0,
                         "known_item": i > 0})


@torch.no_grad()
def predict_codes(cf: CollabModel, u: np.ndarray, i: np.ndarray, *, clip: bool = True,
                  chunk: int = 1 << 20) -> np.ndarray:
    """Predictions for encoded (user, item) indices, in chunks, in eval mode."""
    model, dev = cf.model, cf.device
    was_training = model.training
    model.eval()
    try:
        x = torch.from_numpy(np.stack([np.asarray(u, np.int64), np.asarray(i, np.int64)], axis=1))
        out = [model(x[s : s + chunk].to(dev)).reshape(-1).float().cpu() for s in range(0, len(x), chunk)]
    finally:
        model.train(was_training)
    pred = torch.cat(out).numpy() if out else np.zeros(0, np.float32)
    return np.clip(pred, *cf.scale) if clip else pred


def score(learn: Learner | CollabModel, data: CollabData | None = None, *, clip: bool = True) -> dict[str, float]:
    """RMSE and MAE of the model on the validation rows of ``data`` (default: its training data).

    Rows are encoded with the model's own vocabularies, so cold rows get the average-user/item
    fallback, exactly as :func:`predict` would answer them.
    """
    cf = as_collab(learn)
    data = data if data is not None else cf.data
    if data is None:
        raise ConfigError("score needs data: a loaded model carries no ratings; pass data=cflearn.from_df(...)")
    valid = data.valid
    u, i = cf.users.encode(valid[data.user]), cf.items.encode(valid[data.item])
    pred = predict_codes(cf, u, i, clip=clip)
    target = valid[data.rating].to_numpy()
    return {"rmse": rmse(pred, target), "mae": mae(pred, target), "n_valid": len(valid),
            "n_train": len(data.train_idx)}
