"""The networks (forward only) and the one model contract every kind answers.

cflearn's models are fastai's: :class:`DotBias` has fastai's ``EmbeddingDotBias`` parameters,
initialisation, forward and ``state_dict`` keys (written here in plain PyTorch, so that loading a
model and recommending never import fastai), and :class:`NN` is fastai's ``EmbeddingNN`` (imported
on first use). :class:`HybridDotBias` adds user and item side features. Each of them implements
the contract (:class:`Contract`) that predict / recommend / fold-in / evaluate / save rely on, so
those never branch on the class:

- ``forward`` on an ``(n, 2)`` batch of (user index, item index) -> ``(n,)`` scores;
- :meth:`Contract.tables`: user and item ``(vectors, bias)`` in the space the model really scores
  with (hybrid items include their features), or ``None`` (scored by forward passes);
- :meth:`Contract.output`: the output transform (the sigmoid into ``y_range``, :func:`squash`);
  ``score_kind`` says what a score means (``"rating"``, or ``"ranking"``: an unnormalised
  preference, comparable only between items of one user);
- :meth:`Contract.embeddings` and :meth:`Contract.trained_rows`: the tables training updates and
  which of their rows it reaches (row L2, cold rows, sparse gradients);
- :meth:`Contract.config`: JSON to rebuild the model without pickle (:func:`cflearn.kinds.build_model`).

Any other ``nn.Module`` taking the ``(n, 2)`` batch (a student's ``EmbeddingDot``) is answered by
:class:`Foreign`: scored by forward passes, no tables, saved as weights whose class is needed to load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._blend import Blend
from ._contract import Contract, Embedding, Foreign, ScoreKind, TableKey, Tables, contract, squash  # noqa: F401
from ._dot import DotBias
from ._dual import Dual, item_item_head, ranking_head, rating_head
from ._hybrid import HybridDotBias, TableView
from ._item_item import ItemItem
from ._ranker import Ranker, csr_rows  # noqa: F401  (csr_rows, Embedding, TableKey: for cflearn's kinds)

__all__ = [
    "Contract",
    "Foreign",
    "Tables",
    "DotBias",
    "HybridDotBias",
    "NN",
    "Ranker",
    "ItemItem",
    "Blend",
    "Dual",
    "rating_head",
    "ranking_head",
    "item_item_head",
    "TableView",
    "squash",
    "contract",
    "ScoreKind",
]

if TYPE_CHECKING:  # what type checkers and the API reference see: fastai's NN, imported on first use
    from ._nn import NN  # noqa: F401



def __getattr__(name: str) -> Any:  # models.NN: fastai's EmbeddingNN, imported when first asked for
    if name == "NN":
        return importlib.import_module("cflearn.models._nn").NN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
