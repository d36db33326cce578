"""The blended ranking model (:class:`Blend`): the learned ranking head and EASE, one list."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._formula import blend_scores, raw_scores
from ._contract import Contract, TableKey
from ._item_item import ItemItem, pair_scores
from ._ranker import Ranker

__all__ = ["Blend", "BLEND_WEIGHT"]

BLEND_WEIGHT = 4.0
"""The learned head's weight beside EASE's, both scaled to unit spread: on inner splits of the training rows of
every suite set the blend ranks at least as well as the learned head alone within noise, and at least as well
as EASE alone (``bench/blend.py``, ``global w=4``)."""

MIX_USERS = 2048
"""At most this many users (seeded) measure the two heads' spreads."""


class Blend(nn.Module, Contract):
    """A learned ranking head (:class:`Ranker`) and a closed-form one (:class:`ItemItem`, EASE) ranking together.

    ``score(u, i) = a * ease(u, i) + b * learned(u, i)``: ``a`` and ``b`` scale each head's scores to unit spread
    (their standard deviation over a seeded sample of trained users' rows, EASE's over the items it covers)
    and ``b`` carries :data:`BLEND_WEIGHT`; they are measured once after training (:meth:`fit_mix`) and saved
    (buffer ``mix``). Items EASE does not cover get 0 from it (no item-item weight), so the learned head
    alone orders them. Before :meth:`fit_mix` the lists are the learned head's (``mix = (0, 1)``).

    Training trains the learned head alone (a forward pass on a 1-D batch of users returns its user vectors, as
    :class:`Ranker`'s); EASE is solved before training (:class:`cflearn.kinds._dual.ItemItemFit`). A pair's
    score (``forward`` on ``(n, 2)``, :func:`cflearn.predict`) is the blended score; ``score_kind =
    "ranking"``. A new user is folded in by both heads (:meth:`fold_vector`: the learned head's vector, then
    EASE's item row).

    Args:
        learned: the learned ranking head.
        item_item: the EASE head, over the same users and items.
        weight: the learned head's weight (EASE's is 1), both at unit spread.
    """

    kind = "blend"
    score_kind = "ranking"
    list_kind = "ranking"

    def __init__(self, learned: Ranker, item_item: ItemItem, weight: float = BLEND_WEIGHT):
        super().__init__()
        if learned.n_users != item_item.n_users or learned.i_in.num_embeddings != item_item.n_items:
            raise ValueError("the blended heads must have the same users and items")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"the learned head's weight must be a non-negative number, got {weight}")
        self.learned, self.item_item, self.weight = learned, item_item, float(weight)
        self.register_buffer("mix", torch.tensor([0.0, 1.0]))

    @torch.no_grad()
    def fit_mix(self, seed: int = 0) -> None:
        """Measure the two heads' spreads on up to :data:`MIX_USERS` trained users (seeded) and set ``mix``."""
        indptr = self.learned.get_buffer("hist_indptr")
        users = torch.nonzero(indptr[1:] > indptr[:-1]).view(-1)
        if len(users) > MIX_USERS:
            gen = torch.Generator().manual_seed(int(seed))
            users = users[torch.randperm(len(users), generator=gen)[:MIX_USERS].to(users.device)]
        keep = self.item_item.get_buffer("keep")
        if not len(users) or not len(keep):
            self.get_buffer("mix").copy_(torch.tensor([0.0, 1.0]))
            return
        was = self.training
        self.eval()
        spread_e = float((self.item_item.item_rows(users) @ self.item_item.get_buffer("weights")).std())
        spread_r = float(self._learned_scores(users)[:, 1:].std())
        self.train(was)
        a = 1.0 / spread_e if spread_e > 0 else 0.0
        b = self.weight / spread_r if spread_r > 0 else 0.0
        self.get_buffer("mix").copy_(torch.tensor([a, b]) if a or b else torch.tensor([0.0, 1.0]))

    def _learned_scores(self, users: torch.Tensor) -> torch.Tensor:
        """The learned head's raw scores of every item for users (by index), without a user bias."""
        t = self.learned.tables()
        h = t.users[users].to(t.items)
        return raw_scores(h, h.new_zeros(len(h)), t.items, t.item_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            return self.learned(x)  # training: the learned head's user vectors
        return pair_scores(self.list_scores, x)

    def tables(self) -> None:
        return None

    def list_scores(self, users: torch.Tensor | None = None, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """``(n, n_items)`` blended scores of users (by index) or of folded-in vectors (:meth:`fold_vector`)."""
        ii, mix, t = self.item_item, self.get_buffer("mix"), self.learned.tables()
        k = self.learned.i_in.embedding_dim
        if vectors is None:
            if users is None:
                raise ValueError("list_scores needs users or vectors")
            users = users.to(mix.device)
            rows, h = ii.item_rows(users), t.users[users]
        else:
            vectors = vectors.to(mix)
            rows, h = vectors[:, k:], vectors[:, :k]
        return blend_scores(rows, ii.get_buffer("weights"), ii.get_buffer("floor"), ii.get_buffer("keep"),
                            h.to(t.items), t.items, t.item_bias, mix)

    def list_output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        return {(c, f"learned.{n}"): t for (c, n), t in self.learned.embeddings().items()}

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """A new user's vector: the learned head's (``n_factors``), then EASE's item row (its covered items)."""
        return torch.cat([self.learned.fold_vector(items, weights), self.item_item.fold_vector(items, weights)])

    def validate(self) -> None:
        self.learned.validate()
        self.item_item.validate()
        mix = self.get_buffer("mix")
        if mix.shape != (2,) or not bool(torch.isfinite(mix).all()) or bool((mix < 0).any()):
            raise ValueError("the blend's mix must be two non-negative finite numbers")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "learned": self.learned.config(), "item_item": self.item_item.config(),
                "weight": self.weight}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Blend:
        learned, item_item, weight = config.get("learned"), config.get("item_item"), config.get("weight")
        if not isinstance(learned, dict) or learned.get("kind") != Ranker.kind or not isinstance(item_item, dict) \
                or item_item.get("kind") != ItemItem.kind:
            raise ValueError("a blend's config holds a learned ranking head's and an item-item head's")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"a blend's weight must be a number, got {weight!r}")
        return cls(Ranker.from_config(learned), ItemItem.from_config(item_item), float(weight))
