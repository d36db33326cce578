"""The learned ranking head (:class:`Ranker`): a user is the bag of their items."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._contract import Contract, Embedding, TableKey, Tables

__all__ = ["csr_rows", "Ranker"]


def csr_rows(indptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the entries of some CSR ``rows`` are: ``(positions in the data, offset of each row's first
    entry in that concatenation, row lengths)``."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    offsets = torch.cumsum(lens, 0) - lens
    pos = torch.repeat_interleave(starts - offsets, lens) + torch.arange(int(lens.sum()), device=lens.device)
    return pos, offsets, lens


class Ranker(nn.Module, Contract):
    """A ranking model: a user is the bag of items they interacted with (an item-based encoder).

    ``score(u, i) = <h_u, q_i> + b_i`` with ``h_u = tanh(weighted mean of e_j over the user's
    training items j)``: the user's vector is computed from their history, so a new user is encoded from a
    few items without training (:meth:`fold_vector`), as in a linear autoencoder (Mult-DAE,
    Liang et al. 2018; EASE, Steck 2019) with a low-rank bottleneck. Trained with a softmax over
    the whole catalogue per user (cflearn's ``rank`` preset), the scores rank items; they are
    not ratings (``score_kind = "ranking"``).

    A forward pass on an ``(n, 2)`` batch returns pair scores (the contract); on a 1-D batch of
    user indices it returns the users' vectors ``h_u`` (what the ranking losses score against
    :attr:`i_weight` and :attr:`i_bias`). In training mode each history item is dropped with
    probability ``dropout`` (a denoising autoencoder).

    Parameters: ``i_in`` (what having an item says about a user), ``i_weight`` and ``i_bias``
    (the item side of the score). Buffers: the users' histories as CSR (``hist_indptr``,
    ``hist_items``, ``hist_weight``: how much each item counts), saved with the model.

    Args:
        n_factors: size of the vectors.
        n_users: user rows (index 0 = unknown).
        n_items: item rows (index 0 = unknown).
        hist_indptr: CSR offsets of each user's training items (``n_users + 1``).
        hist_items: CSR item indices of each user's training items.
        hist_weight: weight of each history item (default 1).
        dropout: input dropout in training.
        seed: seed of the dropout masks (``None``: drawn from torch's global generator once).
    """

    kind = "rank"
    score_kind = "ranking"
    list_kind = "ranking"

    def __init__(self, n_factors: int, n_users: int, n_items: int, hist_indptr: torch.Tensor,
                 hist_items: torch.Tensor, hist_weight: torch.Tensor | None = None, dropout: float = 0.5,
                 seed: int | None = None):
        super().__init__()
        if len(hist_indptr) != n_users + 1:
            raise ValueError(f"hist_indptr has {len(hist_indptr)} offsets for {n_users} users")
        self.dropout = float(dropout)
        self.n_users = int(n_users)
        self.seed = int(torch.randint(0, 2**62, (1,), device="cpu")) if seed is None else int(seed)
        self._gen: torch.Generator | None = None
        self.i_in, self.i_weight = Embedding(n_items, n_factors), Embedding(n_items, n_factors)
        self.i_bias = Embedding(n_items, 1)
        with torch.no_grad():
            self.i_bias.weight.zero_()
        self.register_buffer("hist_indptr", hist_indptr.long())
        self.register_buffer("hist_items", hist_items.long())
        self.register_buffer("hist_weight", torch.ones(len(hist_items)) if hist_weight is None else hist_weight.float())
        self.sparse = False  # sparse row gradients (set for LazyAdamW by the learner)
        self._users: tuple[tuple[int, ...], torch.Tensor] | None = None  # (weights' versions, user vectors)

    def encode(self, items: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """User vectors from weighted bags of item indices (``offsets``: where each bag starts)."""
        n = len(offsets)
        lens = torch.diff(offsets, append=offsets.new_tensor([len(items)]))
        total = torch.zeros(n, device=items.device).index_add(
            0, torch.repeat_interleave(torch.arange(n, device=items.device), lens), weights)
        w = weights
        if self.training and self.dropout > 0:
            if self._gen is None or self._gen.device != items.device:
                self._gen = torch.Generator(device=items.device)
                self._gen.manual_seed(self.seed)
            keep = torch.rand(len(items), device=items.device, generator=self._gen) >= self.dropout
            w = weights * keep.float() / (1 - self.dropout)
        h = F.embedding_bag(items, self.i_in.weight, offsets, mode="sum", per_sample_weights=w, sparse=self.sparse)
        return torch.tanh(h / total.clamp(min=1e-6).to(h).unsqueeze(1)) if n else h

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """``(len(users), n_factors)`` vectors of users (by index) from their training histories."""
        pos, offsets, _ = csr_rows(self.get_buffer("hist_indptr"), users)
        return self.encode(self.get_buffer("hist_items")[pos], offsets, self.get_buffer("hist_weight")[pos])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            return self.user_vectors(x)
        users, inverse = torch.unique(x[:, 0], return_inverse=True)  # each user's history encoded once
        h = self.user_vectors(users)[inverse]
        items = x[:, 1]
        return (h * self.i_weight(items)).sum(1) + self.i_bias(items).view(-1)

    def item_rows(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Item vectors and biases of some items (sparse gradients when :attr:`sparse`)."""
        return (F.embedding(items, self.i_weight.weight, sparse=self.sparse),
                F.embedding(items, self.i_bias.weight, sparse=self.sparse)[:, 0])

    def tables(self) -> Tables:
        """Every user's vector is encoded once per state of the weights (scoring users in chunks, as
        ``recommend_all`` and ``evaluate`` do, reuses it until training or loading changes them)."""
        tensors = (self.i_in.weight, self.get_buffer("hist_items"), self.get_buffer("hist_weight"),
                   self.get_buffer("hist_indptr"))
        key = (int(self.training), *(t._version for t in tensors), *(t.data_ptr() for t in tensors))
        if self._users is None or self._users[0] != key or torch.is_grad_enabled():
            users = self.user_vectors(torch.arange(self.n_users, device=self.i_in.weight.device))
            self._users = None if torch.is_grad_enabled() else (key, users)
        else:
            users = self._users[1]
        return Tables(users, users.new_zeros(len(users)), self.i_weight.weight, self.i_bias.weight[:, 0])

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        return {(1, "i_in"): self.i_in, (1, "i_weight"): self.i_weight, (1, "i_bias"): self.i_bias}

    def validate(self) -> None:
        indptr, items, w = (self.get_buffer(n) for n in ("hist_indptr", "hist_items", "hist_weight"))
        if int(indptr[0]) != 0 or not bool((indptr[1:] >= indptr[:-1]).all()) or int(indptr[-1]) != len(items):
            raise ValueError("hist_indptr is not a list of offsets into the users' histories")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= self.i_in.num_embeddings):
            raise ValueError("hist_items points outside the item table")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError("hist_weight holds negative or non-finite weights")

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        dev = self.i_in.weight.device
        w = torch.ones(len(items), device=dev) if weights is None else weights.float().to(dev)
        return self.encode(items.long().to(dev), torch.zeros(1, dtype=torch.long, device=dev), w)[0]

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_factors": self.i_in.embedding_dim, "n_users": self.n_users,
                "n_items": self.i_in.num_embeddings, "n_history": int(self.get_buffer("hist_items").numel()),
                "dropout": self.dropout}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Ranker:
        n_users = config["n_users"]
        n_hist = config["n_history"]
        return cls(config["n_factors"], n_users, config["n_items"], torch.zeros(n_users + 1, dtype=torch.long),
                   torch.zeros(n_hist, dtype=torch.long), torch.ones(n_hist), float(config.get("dropout", 0.5)))
