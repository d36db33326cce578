"""Scoring in one place: eval mode, pair scores, score matrices, item masks and top-n.

``predict``, ``recommend``, ``evaluate`` and ``fold_in`` all score through these functions, which
ask the model only what :class:`cflearn.models.Contract` promises: its tables (one matrix
product per block of users) or, for models without tables, forward passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from .._errors import ConfigError
from ..data._vocab import encode_ids, item_titles
from ._answers import NO_HELP, allowed_items, fallback_text
from ._collab import CollabModel

__all__ = ["eval_mode", "score_pairs", "score_matrix", "fallback_labels", "item_mask", "TopN", "top_n", "encode_users",
           "encode_items", "metadata_only"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode and no gradients inside; the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def encode_users(cf: CollabModel, raw: Sequence[Any]) -> np.ndarray:
    """Model indices of raw user IDs (0 = unknown; an ID of the wrong type raises)."""
    return encode_ids(cf.users, raw, "user")


def encode_items(cf: CollabModel, raw: Sequence[Any]) -> np.ndarray:
    """Model indices of raw item IDs (0 = unknown; the wrong type raises, a title gets its ID suggested)."""
    return encode_ids(cf.items, raw, "item", titles=item_titles(cf.item_info))


def score_pairs(cf: CollabModel, u: np.ndarray, i: np.ndarray, *, clip: bool = True,
                chunk: int = 1 << 20) -> np.ndarray:
    """Scores of encoded (user, item) pairs by forward passes, in chunks, in eval mode."""
    x = torch.from_numpy(np.stack([np.asarray(u, np.int64), np.asarray(i, np.int64)], axis=1))
    with eval_mode(cf.model) as model:
        out = [model(x[s:s + chunk].to(cf.device)).reshape(-1).float().cpu() for s in range(0, len(x), chunk)]
    pred = torch.cat(out).numpy() if out else np.zeros(0, np.float32)
    return np.clip(pred, *cf.scale) if clip else pred


def score_matrix(cf: CollabModel, uidx: torch.Tensor, *, vectors: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None, clip: bool = True,
                 head: Literal["list", "rating"] = "list") -> torch.Tensor:
    """Scores ``(len(uidx), n_items)`` of users against every item.

    ``head="list"``: the scores that order top-N lists (a :class:`cflearn.models.Dual`'s ranking
    head); ``"rating"``: predicted ratings. Models with tables: one matrix product;
    ``vectors``/``bias`` replace the users' rows (folded-in users). Models without: chunked
    forward passes.
    """
    spec = cf.contract
    kind = spec.list_kind if head == "list" else spec.score_kind
    with eval_mode(cf.model):
        direct = spec.list_scores(None if vectors is not None else uidx, vectors) if head == "list" else None
        tables = None if direct is not None else spec.list_tables() if head == "list" else spec.tables()
        if direct is not None:  # a closed-form ranking head scores its users itself
            scores = spec.list_output(direct).float().cpu()
        elif tables is not None:
            if vectors is None or bias is None:
                rows = uidx.to(tables.users.device)
                vectors, bias = tables.users[rows], tables.user_bias[rows]
            scored = spec.score_rows(vectors, bias, head="list" if head == "list" else "rating", tables=tables)
            assert scored is not None  # the model has tables
            scores = scored.float().cpu()
        elif vectors is not None:
            raise ConfigError("folded-in users need a model with user/item tables (presets dual, fast, best, book)")
        else:
            scores = _forward_matrix(cf, uidx)
    return scores.clamp(*cf.scale) if clip and kind == "rating" else scores


def _forward_matrix(cf: CollabModel, uidx: torch.Tensor) -> torch.Tensor:
    n_items = len(cf.items)
    block = max(1, (1 << 16) // n_items)  # about 65k pairs per forward pass (cache-friendly)
    item_col = torch.arange(n_items, device=cf.device)
    rows = []
    for s in range(0, len(uidx), block):
        us = uidx[s:s + block].to(cf.device)
        pairs = torch.stack([us.repeat_interleave(n_items), item_col.repeat(len(us))], 1)
        rows.append(cf.model(pairs).reshape(len(us), n_items).float().cpu())
    return torch.cat(rows) if rows else torch.zeros(0, n_items)


def metadata_only(cf: CollabModel, col: int, codes: np.ndarray) -> np.ndarray:
    """Which encoded rows of a side (``col`` 0: users, 1: items) a hybrid model knows only from
    metadata (a row but no training rating): they are scored by their features."""
    trained = cf.contract.trained_rows(col)
    if not isinstance(trained, torch.Tensor):
        return np.zeros(len(codes), dtype=bool)
    codes = np.asarray(codes)
    return (codes > 0) & ~trained.cpu().numpy()[codes]


def features_label(cf: CollabModel) -> str:
    """How a user known only from metadata is scored: ``"user features"``, or :data:`NO_HELP` where the
    features were given no weight for new users."""
    from ..models import rating_head

    weight = float(getattr(rating_head(cf.model), "user_feature_weight", 1.0))
    return "user features" if weight > 0 else NO_HELP


def fallback_labels(cf: CollabModel, users: np.ndarray | None, items: np.ndarray | None = None, *,
                    by_user: np.ndarray | None = None, by_item: np.ndarray | None = None) -> np.ndarray:
    """The ``fallback`` column, written once: how each row was scored when not by its own trained rows.

    A side is ``"user features"`` / ``"item features"`` (known only from metadata, or scored from
    metadata given with the call: ``by_user`` / ``by_item``), ``"average user"`` / ``"average item"``
    (unknown) or ``""``; a pair joins its sides with ``", "``, and both unknown read ``"average user and
    item"``. ``items=None``: the user side alone (the users of top-N lists); ``users=None``: the item side.
    """
    def meta(col: int, codes: np.ndarray | None, given: np.ndarray | None) -> Any:
        if codes is None:
            return False
        return metadata_only(cf, col, np.asarray(codes)) | (given if given is not None else False)

    return fallback_text(users, items, user_meta=meta(0, users, by_user), item_meta=meta(1, items, by_item),
                         user_label=features_label(cf))


def item_mask(cf: CollabModel, candidates: Sequence[Any] | None, min_ratings: int) -> torch.Tensor:
    """Items that may be recommended at all: not row 0, rated often enough, among the candidates
    (:func:`cflearn.serve._answers.allowed_items`)."""
    codes = None if candidates is None else encode_items(cf, list(candidates))
    counts = None if cf.item_counts is None else cf.item_counts.numpy()
    return torch.from_numpy(allowed_items(len(cf.items), counts, codes, min_ratings))


class TopN(NamedTuple):
    """The best scores of each row and their columns, best first."""

    values: torch.Tensor
    indices: torch.Tensor


def top_n(scores: torch.Tensor, allowed: torch.Tensor, seen: Sequence[torch.Tensor] | None, n: int) -> TopN:
    """Best ``n`` columns of each row of ``scores`` (users x items), leaving out items that are not
    ``allowed`` and, per row, the ``seen`` ones; equal scores in the order of their columns (as NumPy's
    stable sort orders them, :mod:`cflearn.serve._served`). Modifies ``scores``."""
    scores[:, ~allowed] = -torch.inf
    for j, items in enumerate(seen or []):
        scores[j, items] = -torch.inf
    top = scores.topk(min(n + 1, scores.shape[1]), dim=1)  # one more: a tie at the n-th place shows
    tied = (top.values[:, 1:] == top.values[:, :-1]).any(1) & torch.isfinite(top.values[:, 0])
    values, indices = top.values[:, :n].clone(), top.indices[:, :n].clone()
    for j in torch.nonzero(tied).reshape(-1).tolist():  # rare but for ratings clipped to the scale: sort again
        order = torch.sort(scores[j], descending=True, stable=True)
        values[j], indices[j] = order.values[:n], order.indices[:n]
    return TopN(values, indices)
