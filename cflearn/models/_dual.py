"""The two-headed model (:class:`Dual`): a rating head and a ranking head, and the helpers that find
either head in any model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..train._distributed import unwrap
from ._blend import Blend
from ._contract import Contract, TableKey, Tables
from ._dot import DotBias
from ._hybrid import HybridDotBias
from ._item_item import ItemItem
from ._ranker import Ranker

__all__ = ["Dual", "rating_head", "ranking_head", "item_item_head"]


class Dual(nn.Module, Contract):
    """Two heads in one model: ratings from a rating head, top-N lists from a ranking head.

    ``rating`` is a dot-product model (:class:`DotBias`, or :class:`HybridDotBias` with side
    features) trained with MSE on the observed ratings; ``ranking`` is a :class:`Ranker` trained
    with a softmax over the catalogue on who liked what. They train together, in one loop
    (each step: a batch of users for the ranking head and a slice of the ratings for the rating
    head, one weighted loss), and are saved and loaded as one model. :func:`cflearn.predict` answers
    from the rating head (``score_kind = "rating"``); :func:`cflearn.recommend`,
    :func:`cflearn.recommend_all` and the ranking metrics of :func:`cflearn.evaluate` from the
    ranking head (``list_kind = "ranking"``).

    The heads keep their own tables: sharing the item table between them, or the user vector, was
    measured and lost or tied on ml-latest-small (``bench/one_model.py``; the rating head's row L2
    shrinks the vectors the softmax needs), so each head keeps the form it is best at.

    A forward pass on an ``(n, 2)`` batch returns the rating head's scores (the contract); on a
    training batch ``(users, pairs)`` it returns ``(user vectors of the ranking head, ratings of
    the pairs)`` for :class:`cflearn.kinds._ranking.DualLoss`.
    """

    kind = "dual"
    score_kind = "rating"
    list_kind = "ranking"

    def __init__(self, rating: DotBias | HybridDotBias, ranking: Ranker | ItemItem):
        super().__init__()
        self.rating, self.ranking = rating, ranking
        self.y_range = rating.y_range

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> Any:
        if isinstance(x, (tuple, list)):
            users, pairs = x
            return self.ranking(users), self.rating(pairs)
        if x.dim() == 1:
            return self.ranking(x)
        return self.rating(x)

    @property
    def last_rows(self) -> tuple[torch.Tensor, ...] | None:
        """The rating head's last looked-up rows (for :class:`cflearn.callbacks.RowL2`)."""
        return self.rating.last_rows

    # fastbook chapter 8's interpretation code reads these: the rating head's tables
    @property
    def u_weight(self) -> Any:
        """The rating head's user vectors (as fastai's ``EmbeddingDotBias.u_weight``)."""
        return self.rating.u_weight

    @property
    def i_weight(self) -> Any:
        """The rating head's item vectors."""
        return self.rating.i_weight

    @property
    def u_bias(self) -> Any:
        """The rating head's user biases."""
        return self.rating.u_bias

    @property
    def i_bias(self) -> Any:
        """The rating head's item biases."""
        return self.rating.i_bias

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        return self.rating.output(raw)

    def tables(self) -> Tables:
        return self.rating.tables()

    def list_tables(self) -> Tables | None:
        return None if isinstance(self.ranking, ItemItem) else self.ranking.tables()

    def list_scores(self, users: torch.Tensor | None = None, vectors: torch.Tensor | None = None
                    ) -> torch.Tensor | None:
        return self.ranking.list_scores(users, vectors) if isinstance(self.ranking, ItemItem) else None

    def list_output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        return {**{(c, f"rating.{n}"): t for (c, n), t in self.rating.embeddings().items()},
                **{(c, f"ranking.{n}"): t for (c, n), t in self.ranking.embeddings().items()}}

    def trained_rows(self, col: int) -> torch.Tensor | slice:
        return self.rating.trained_rows(col)

    def featureless_shift(self, col: int, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A hybrid rating head's shift of featureless cold rows (see :meth:`HybridDotBias.featureless_shift`);
        the ranking head's rows have no features."""
        if isinstance(self.rating, HybridDotBias) and name.startswith("rating."):
            return self.rating.featureless_shift(col, name.removeprefix("rating."))
        return None

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The ranking head's vector of a new user (encoded from their items)."""
        return self.ranking.fold_vector(items, weights)

    def validate(self) -> None:
        self.rating.validate()
        self.ranking.validate()

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "rating": self.rating.config(), "ranking": self.ranking.config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dual:
        rating, ranking = (config.get(key) for key in ("rating", "ranking"))
        if not isinstance(rating, dict) or not isinstance(ranking, dict):
            raise ValueError("a dual model's config holds its two heads' configs")
        heads: dict[Any, Any] = {"dot": DotBias, "hybrid": HybridDotBias, "rank": Ranker, "item_item": ItemItem}
        rating_cls, ranking_cls = heads.get(rating.get("kind")), heads.get(ranking.get("kind"))  # Dual's own heads
        if rating_cls not in (DotBias, HybridDotBias) or ranking_cls not in (Ranker, ItemItem):
            raise ValueError("a dual model holds a dot-product rating head and a ranking head")
        return cls(rating_cls.from_config(rating), ranking_cls.from_config(ranking))


def rating_head(model: nn.Module) -> nn.Module:
    """The part of a model that predicts ratings (a :class:`Dual`'s rating head, else the model)."""
    model = unwrap(model)
    return model.rating if isinstance(model, Dual) else model


def ranking_head(model: nn.Module) -> Ranker | None:
    """The learned :class:`Ranker` of a model (itself, a :class:`Dual`'s ranking head or a :class:`Blend`'s
    learned head), or ``None`` (an :class:`ItemItem` head has nothing to train: see :func:`item_item_head`)."""
    model = unwrap(model)
    if isinstance(model, Blend):
        return model.learned
    if isinstance(model, Dual):
        return model.ranking if isinstance(model.ranking, Ranker) else None
    return model if isinstance(model, Ranker) else None


def item_item_head(model: nn.Module) -> ItemItem | None:
    """The closed-form :class:`ItemItem` ranking head of a model (itself, a :class:`Dual`'s or a
    :class:`Blend`'s), or ``None``."""
    model = unwrap(model)
    if isinstance(model, Blend):
        return model.item_item
    if isinstance(model, Dual):
        model = model.ranking
    return model if isinstance(model, ItemItem) else None
