"""The scoring formulas, written once for torch tensors and NumPy arrays alike (no torch import here).

The models score with them in torch (:meth:`cflearn.models.Contract.score_rows`, :func:`squash`), and a saved
model answers with them in NumPy, without torch (:mod:`cflearn.serve._served`): the same expressions on either
kind of array, so the two paths agree to float rounding.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sigmoid", "squash", "raw_scores", "item_item_scores", "blend_scores"]


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` of a tensor (torch's own) or an array (as ``(1 + tanh(x / 2)) / 2``: no overflow)."""
    if hasattr(x, "sigmoid"):
        return x.sigmoid()
    import numpy as np

    return 0.5 * (1.0 + np.tanh(0.5 * x))


def squash(raw: Any, y_range: tuple[float, float] | None) -> Any:
    """The output transform: ``sigmoid(raw)`` scaled into ``y_range`` (identity without one)."""
    if y_range is None:
        return raw
    return sigmoid(raw) * (y_range[1] - y_range[0]) + y_range[0]


def raw_scores(u: Any, b_u: Any, q: Any, b_i: Any, items: Any = None) -> Any:
    """Raw scores ``u . q_i + b_u + b_i`` of users given as rows ``u`` ``(n, k)`` and biases ``b_u`` ``(n,)``.

    Args:
        u, b_u: the users' vectors and biases.
        q, b_i: the item table ``(n_items, k)`` and biases ``(n_items,)``.
        items: ``None``: every item, ``(n, n_items)``; indices ``(n,)`` (one item per user) or ``(n, m)``
            (``m`` per user); or item rows ``(vectors (n, k), biases (n,))``, one per user.
    """
    if items is None:
        return u @ q.T + b_u[:, None] + b_i[None, :]
    if isinstance(items, tuple):
        return (u * items[0]).sum(-1) + b_u + items[1]
    if items.ndim == 2:
        u, b_u = u[:, None, :], b_u[:, None]
    return (u * q[items]).sum(-1) + b_u + b_i[items]


def item_item_scores(rows: Any, weights: Any, floor: Any, keep: Any) -> Any:
    """An item-item (EASE) head's scores ``(n, n_items)``: ``floor`` everywhere, plus ``rows @ weights`` on the
    covered items ``keep``, where ``rows`` ``(n, n_kept)`` are the users' binary item rows over them."""
    if hasattr(floor, "expand"):  # a tensor
        out = floor.expand(len(rows), -1).clone()
    else:
        import numpy as np

        out = np.repeat(floor[None, :], len(rows), axis=0)
    out[:, keep] += rows @ weights
    return out


def blend_scores(rows: Any, weights: Any, floor: Any, keep: Any, h: Any, q: Any, b_i: Any, mix: Any) -> Any:
    """A blend's scores ``(n, n_items)``: ``mix[0]`` x its EASE head's (:func:`item_item_scores`; the items EASE
    does not cover get 0 from it: ``floor``'s negative part is dropped) plus ``mix[1]`` x its learned head's raw
    scores of the user vectors ``h`` ``(n, k)`` (:func:`raw_scores` without a user bias)."""
    ease = item_item_scores(rows, weights, floor.clip(min=0.0), keep)
    return mix[0] * ease + mix[1] * raw_scores(h, h[:, 0] * 0, q, b_i)
