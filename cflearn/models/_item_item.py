"""The closed-form ranking head (:class:`ItemItem`): EASE, solved before training."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._formula import item_item_scores
from ._contract import Contract
from ._ranker import csr_rows

__all__ = ["ItemItem", "pair_scores"]


def pair_scores(list_scores: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Scores of ``(n, 2)`` (user, item) pairs from a model that scores whole rows (``list_scores(users)``), a
    block of users' rows at a time."""
    users, inverse = torch.unique(x[:, 0], return_inverse=True)
    out = torch.empty(len(x), device=x.device)
    for s in range(0, len(users), 1024):
        sel = (inverse >= s) & (inverse < s + 1024)
        rows = list_scores(users[s:s + 1024])
        out[sel] = rows[inverse[sel] - s, x[sel, 1]].to(out)
    return out


class ItemItem(nn.Module, Contract):
    """A closed-form ranking head: EASE (Steck 2019), a user's scores are their item row times an item x item matrix.

    ``score(u, i) = sum over the user's training items j of B[j, i]`` over the items with at least
    ``min_count`` training interactions (``keep``), ``B = I - P / diag(P)``, ``P = (X'X + lambda I)^-1``
    on the binary user x item matrix ``X``. Items outside ``keep`` score below every kept item, by
    popularity (covered items get a ``1e-6`` tie-break by popularity). It has no trainable parameter:
    :meth:`fit_weights` solves it (what :class:`cflearn.kinds._dual.ItemItemFit` does before training the
    rating head beside it), and a new user is encoded from their items without fitting
    (:meth:`fold_vector`). ``score_kind = "ranking"``.

    Buffers: the users' training items as CSR (``hist_indptr``, ``hist_items``; every interaction counts
    once, as in EASE), ``keep`` (the covered items), ``weights`` (``B`` over them, zero diagonal) and
    ``floor`` (the scores of the items outside ``keep``), saved with the model.

    Args:
        n_users: user rows (index 0 = unknown).
        n_items: item rows (index 0 = unknown).
        n_kept: covered items (the side of ``B``).
        hist_indptr: CSR offsets of each user's training items (``n_users + 1``).
        hist_items: CSR item indices of each user's training items.
        lam: EASE's regularisation (set by :meth:`fit_weights`; recorded in the config).
    """

    kind = "item_item"
    score_kind = "ranking"
    list_kind = "ranking"

    def __init__(self, n_users: int, n_items: int, n_kept: int, hist_indptr: torch.Tensor, hist_items: torch.Tensor,
                 lam: float = 0.0):
        super().__init__()
        if len(hist_indptr) != n_users + 1:
            raise ValueError(f"hist_indptr has {len(hist_indptr)} offsets for {n_users} users")
        self.n_users, self.n_items, self.lam = int(n_users), int(n_items), float(lam)
        self.register_buffer("hist_indptr", hist_indptr.long())
        self.register_buffer("hist_items", hist_items.long())
        self.register_buffer("keep", torch.zeros(n_kept, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(n_kept, n_kept))
        self.register_buffer("floor", torch.zeros(n_items))
        self.sparse = False  # no parameters; set like the learned head's by the learner

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit_weights` has run (or fitted weights were loaded)."""
        return self.lam > 0

    def fit_weights(self, keep: torch.Tensor, weights: torch.Tensor, floor: torch.Tensor, lam: float) -> None:
        """Set the solved model: the covered items, ``B`` over them, the other items' scores and ``lambda``."""
        device = self.get_buffer("hist_items").device
        self.keep, self.weights = keep.long().to(device), weights.float().to(device)
        self.floor = floor.float().to(device)
        self.lam = float(lam)

    def _column(self) -> torch.Tensor:
        column = torch.full((self.n_items,), -1, dtype=torch.long, device=self.keep.device)
        column[self.get_buffer("keep")] = torch.arange(len(self.keep), device=self.keep.device)
        return column

    def item_rows(self, users: torch.Tensor) -> torch.Tensor:
        """``(len(users), n_kept)`` binary rows of the users' training items over the covered items."""
        pos, offsets, lens = csr_rows(self.get_buffer("hist_indptr"), users)
        col = self._column()[self.get_buffer("hist_items")[pos]]
        row = torch.repeat_interleave(torch.arange(len(users), device=col.device), lens)
        out = torch.zeros(len(users), len(self.keep), device=col.device)
        ok = col >= 0
        out[row[ok], col[ok]] = 1.0
        return out

    def list_scores(self, users: torch.Tensor | None = None, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """``(n, n_items)`` scores of users (by index) or of item rows over the covered items (``vectors``,
        as :meth:`fold_vector` makes them)."""
        if vectors is None:
            if users is None:
                raise ValueError("list_scores needs users or vectors")
            x = self.item_rows(users.to(self.get_buffer("keep").device))
        else:
            x = vectors.to(self.get_buffer("weights"))
        return item_item_scores(x, self.get_buffer("weights"), self.get_buffer("floor"), self.get_buffer("keep"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            return self.item_rows(x)
        return pair_scores(self.list_scores, x)

    def list_output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """A new user's row over the covered items: each item they interacted with counts once, except those
        whose weight is 0 (:func:`cflearn.fold_in` gives ratings below the relevance level the preset's
        ``below_weight``: a disliked film is not a taste to extend). An empty row gets the popular items."""
        items = items.long().to(self.keep.device)
        if weights is not None:
            items = items[weights.to(items.device) > 0]
        col = self._column()[items]
        out = torch.zeros(len(self.keep), device=self.keep.device)
        out[col[col >= 0]] = 1.0
        return out

    def validate(self) -> None:
        indptr, items, keep = (self.get_buffer(n) for n in ("hist_indptr", "hist_items", "keep"))
        if int(indptr[0]) != 0 or not bool((indptr[1:] >= indptr[:-1]).all()) or int(indptr[-1]) != len(items):
            raise ValueError("hist_indptr is not a list of offsets into the users' histories")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= self.n_items):
            raise ValueError("hist_items points outside the item table")
        if keep.numel() and (int(keep.min()) < 1 or int(keep.max()) >= self.n_items
                             or not bool((keep[1:] > keep[:-1]).all())):
            raise ValueError("keep is not a sorted list of distinct known items")
        if not bool(torch.isfinite(self.get_buffer("weights")).all()) or not bool(
                torch.isfinite(self.get_buffer("floor")).all()):
            raise ValueError("the item-item weights hold non-finite values")
        if keep.numel() and float(self.get_buffer("weights").diagonal().abs().max()) != 0.0:
            raise ValueError("the item-item weights score an item by itself (non-zero diagonal)")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_users": self.n_users, "n_items": self.n_items, "n_kept": len(self.keep),
                "n_history": int(self.get_buffer("hist_items").numel()), "lambda": self.lam}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ItemItem:
        n_users, n_hist = int(config["n_users"]), int(config["n_history"])
        lam = float(config.get("lambda", 0.0))
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lambda must be a non-negative number, got {lam}")
        return cls(n_users, int(config["n_items"]), int(config["n_kept"]), torch.zeros(n_users + 1, dtype=torch.long),
                   torch.zeros(n_hist, dtype=torch.long), lam)
