"""The model contract every network answers (:class:`Contract`), its tables and output transform, the
wrapper of a network of your own (:class:`Foreign`), and fastai's embedding layer."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import nn

from .._formula import raw_scores, squash
from ..train._distributed import unwrap

__all__ = ["ScoreKind", "Tables", "squash", "Contract", "Foreign", "contract", "Embedding"]


ScoreKind = Literal["rating", "ranking"]


TableKey = tuple[int, str]


class Tables(NamedTuple):
    """User and item tables such that a pair's raw score is ``users[u] @ items[i] + user_bias[u] + item_bias[i]``."""

    users: torch.Tensor
    user_bias: torch.Tensor
    items: torch.Tensor
    item_bias: torch.Tensor


class Contract:
    """What every cflearn model answers (a mixin of the ``nn.Module`` s below).

    Attributes:
        kind: the config key of the class (``"dot"``, ``"hybrid"``, ``"nn"``, ``"rank"``, ``"dual"``).
        score_kind: what a pair's score (``forward``, :func:`cflearn.predict`) means: ``"rating"``
            (a predicted rating) or ``"ranking"``.
        list_kind: what the scores that order top-N lists (:meth:`list_tables`) mean.
        y_range: the sigmoid range of the output, or ``None``.
    """

    kind: ClassVar[str] = ""
    score_kind: ClassVar[ScoreKind] = "rating"
    list_kind: ClassVar[ScoreKind] = "rating"
    y_range: tuple[float, float] | None = None

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw scores -> the model's output (ratings): :func:`squash` into ``y_range``."""
        return squash(raw, self.y_range)

    def tables(self) -> Tables | None:
        """The user/item tables the model scores with, or ``None`` (score by forward passes)."""
        return None

    def list_tables(self) -> Tables | None:
        """The tables top-N lists are ranked with (``list_kind`` says what their scores mean): the
        model's own tables, except for a model with a ranking head of its own (:class:`Dual`)."""
        return self.tables()

    def list_output(self, raw: torch.Tensor) -> torch.Tensor:
        """The output transform of :meth:`list_tables`' raw scores."""
        return self.output(raw)

    def score_rows(self, vectors: torch.Tensor, bias: torch.Tensor,
                   items: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None, *,
                   head: Literal["rating", "list"] = "rating", tables: Tables | None = None) -> torch.Tensor | None:
        """Scores of users given as rows of the user table's space (trained rows, folded-in users, users
        known by metadata): ``output(vector @ item row + bias + item bias)``, the model's one formula.

        Args:
            vectors: ``(n, k)`` user vectors.
            bias: ``(n,)`` user biases.
            items: item indices, ``(n,)`` (one item per user) or ``(n, m)`` (``m`` per user); item rows
                ``(vectors (n, k), bias (n,))``, one per user (items known by metadata); ``None``: every
                item, ``(n, n_items)``.
            head: ``"rating"``: predicted ratings (:meth:`tables`); ``"list"``: the scores that order
                top-N lists (:meth:`list_tables`, :meth:`list_output`).
            tables: the head's tables when the caller holds them already (a hybrid model computes its
                tables from its features on each call); ``None``: asked of the model.

        Returns:
            The scores, on the tables' device; ``None`` for a model without tables.
        """
        if tables is None:
            tables = self.list_tables() if head == "list" else self.tables()
        if tables is None:
            return None
        q = tables.items
        rows = (items[0].to(q), items[1].to(q)) if isinstance(items, tuple) else \
            None if items is None else items.to(q.device)
        raw = raw_scores(vectors.to(q), bias.to(q), q, tables.item_bias, rows)  # the formula NumPy serving uses too
        return self.list_output(raw) if head == "list" else self.output(raw)

    def explain(self, user: int, item: int) -> tuple[list[tuple[str, float]], float]:
        """The parts a trained user's score of a trained item adds up from (name, value), and the raw
        score they sum to (before :meth:`output`): an offset, the user's and the item's bias against the
        average ones, and the dot product. ``ValueError`` for a model without tables."""
        tables = self.tables()
        if tables is None:
            raise ValueError("a model without user/item tables has no parts to explain")
        with torch.no_grad():
            U, b_u, Q, b_i = (t.detach().float().cpu() for t in tables)
            pu, qi = U[user], Q[item]
            mu_u, mu_i = float(b_u[1:].mean()), float(b_i[1:].mean())
            parts = [("global offset (average user + item bias)", mu_u + mu_i),
                     ("user bias (vs the average user)", float(b_u[user]) - mu_u),
                     ("item bias (vs the average item)", float(b_i[item]) - mu_i),
                     ("dot product", float(pu @ qi))]
            return parts, float(pu @ qi + b_u[user] + b_i[item])

    def list_scores(self, users: torch.Tensor | None = None, vectors: torch.Tensor | None = None
                    ) -> torch.Tensor | None:
        """The list scores ``(n, n_items)`` of users (by index) or of folded-in users' list vectors, for a
        model that ranks without tables (a closed-form item-item head); ``None``: use :meth:`list_tables`."""
        return None

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        """Trainable tables keyed by (input column, name): column 0 is users, 1 items."""
        return {}

    def trained_rows(self, col: int) -> torch.Tensor | slice:
        """Rows of the column's tables that training reaches (the rest are filled as cold rows)."""
        return slice(1, None)

    def config(self) -> dict[str, Any]:
        """A JSON-able description from which :func:`cflearn.kinds.build_model` rebuilds the same architecture."""
        raise NotImplementedError

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor | None:
        """A new user's vector computed directly from the items they interacted with (and how much
        each counts), or ``None`` when the model has no such encoder (fold-in then fits the vector
        to the ratings)."""
        return None

    def validate(self) -> None:
        """Check what the weights' shapes cannot: the values of index tables (``ValueError`` naming the
        buffer). :func:`cflearn.load` calls it on a loaded file."""


class Foreign(Contract):
    """The contract of a user's own ``nn.Module``: forward passes only, weights saved with its class name.

    A module may implement any of :class:`Contract`'s methods itself (e.g. ``tables()`` to get
    matrix-product scoring and fold-in, ``embeddings()`` for row L2 and cold rows); those are used.
    """

    kind = "custom"

    def __init__(self, module: nn.Module):
        self.module = module
        self.y_range = getattr(module, "y_range", None)

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        fn = getattr(self.module, "output", None)
        return fn(raw) if callable(fn) else raw

    def tables(self) -> Tables | None:
        fn = getattr(self.module, "tables", None)
        return Tables(*fn()) if callable(fn) else None

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        fn = getattr(self.module, "embeddings", None)
        return dict(fn()) if callable(fn) else {}

    def config(self) -> dict[str, Any]:
        cls = type(self.module)
        return {"kind": self.kind, "class": f"{cls.__module__}.{cls.__qualname__}"}


def contract(model: nn.Module) -> Contract:
    """The model's contract: the model itself for cflearn's kinds, a :class:`Foreign` wrapper otherwise
    (the module inside a ``DistributedDataParallel`` wrapper is the model)."""
    model = unwrap(model)
    return model if isinstance(model, Contract) else Foreign(model)


class Embedding(nn.Embedding):
    """fastai's ``Embedding``: an ``nn.Embedding`` initialised from a truncated normal (std 0.01)."""

    def __init__(self, ni: int, nf: int, std: float = 0.01):
        if torch.get_default_device().type == "meta":  # a probe of the sizes a file claims: nothing to draw
            super().__init__(ni, nf, _weight=torch.empty(ni, nf))
            return
        super().__init__(ni, nf)
        with torch.no_grad():
            self.weight.normal_().fmod_(2).mul_(std)  # fastai's trunc_normal_, the same draws
