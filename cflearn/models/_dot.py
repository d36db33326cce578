"""fastai's ``EmbeddingDotBias`` in plain PyTorch (:class:`DotBias`): the course's model and ``fast``'s."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._checks import range_list, y_range_of
from ._contract import Contract, Embedding, TableKey, Tables

__all__ = ["DotBias"]


class DotBias(nn.Module, Contract):
    """fastai's ``EmbeddingDotBias``: the same parameters (``u_weight``, ``i_weight``, ``u_bias``,
    ``i_bias``), initialisation, forward, ``from_classes`` and ``bias`` / ``weight`` helpers, in
    plain PyTorch; it also keeps the rows it looked up.

    In training mode the last batch's ``(user factors, item factors, user bias, item bias)`` rows
    are kept in ``last_rows`` so that :class:`cflearn.callbacks.RowL2` can penalise them without
    looking them up a second time.

    Args:
        n_factors: latent factors.
        n_users: rows of the user table (index 0 = unknown).
        n_items: rows of the item table (index 0 = unknown).
        y_range: sigmoid range of the output, or ``None``.
    """

    kind = "dot"
    last_rows: tuple[torch.Tensor, ...] | None = None

    def __init__(self, n_factors: int, n_users: int, n_items: int, y_range: tuple[float, float] | None = None):
        super().__init__()
        self.y_range = y_range
        self.u_weight, self.i_weight = Embedding(n_users, n_factors), Embedding(n_items, n_factors)
        self.u_bias, self.i_bias = Embedding(n_users, 1), Embedding(n_items, 1)

    @classmethod
    def from_classes(cls, n_factors: int, classes: dict[str, Any], user: str | None = None, item: str | None = None,
                     y_range: tuple[float, float] | None = None) -> DotBias:
        """A model sized from fastai's ``dls.classes`` (as ``EmbeddingDotBias.from_classes``)."""
        user = list(classes)[0] if user is None else user
        item = list(classes)[1] if item is None else item
        model = cls(n_factors, len(classes[user]), len(classes[item]), y_range=y_range)
        vars(model).update(classes=classes, user=user, item=item)  # plain attributes, as fastai sets them
        return model

    def _get_idx(self, arr: Any, is_item: bool = True) -> torch.Tensor:
        classes = getattr(self, "classes", None)
        if classes is None:
            raise AttributeError("build the model with DotBias.from_classes to look rows up by ID")
        c2i = {v: k for k, v in enumerate(classes[self.item if is_item else self.user])}
        return torch.tensor([c2i[o] for o in arr])

    def bias(self, arr: Any, is_item: bool = True) -> torch.Tensor:
        """Biases of the items (or users) in ``arr`` (as fastai's ``EmbeddingDotBias.bias``)."""
        with torch.no_grad():
            return (self.i_bias if is_item else self.u_bias)(self._get_idx(arr, is_item).to(self.i_bias.weight.device)
                                                             ).squeeze().cpu()

    def weight(self, arr: Any, is_item: bool = True) -> torch.Tensor:
        """Factors of the items (or users) in ``arr`` (as fastai's ``EmbeddingDotBias.weight``)."""
        with torch.no_grad():
            table = self.i_weight if is_item else self.u_weight
            return table(self._get_idx(arr, is_item).to(table.weight.device)).cpu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = x[:, 0], x[:, 1]
        u, i = self.u_weight(users), self.i_weight(items)
        bu, bi = self.u_bias(users).view(-1), self.i_bias(items).view(-1)
        self.last_rows = (u, i, bu, bi) if self.training else None
        return self.output((u * i).sum(1) + bu + bi)

    def tables(self) -> Tables:
        return Tables(self.u_weight.weight, self.u_bias.weight[:, 0], self.i_weight.weight, self.i_bias.weight[:, 0])

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        return {(0, "u_weight"): self.u_weight, (1, "i_weight"): self.i_weight,
                (0, "u_bias"): self.u_bias, (1, "i_bias"): self.i_bias}

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_factors": self.u_weight.embedding_dim, "n_users": self.u_weight.num_embeddings,
                "n_items": self.i_weight.num_embeddings, "y_range": range_list(self.y_range)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DotBias:
        return cls(config["n_factors"], config["n_users"], config["n_items"], y_range=y_range_of(config, required=True))
