"""Item side features (genres, categories) as a padded item -> feature table for hybrid models."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch

from ._errors import ColumnError, ConfigError, closest
from ._vocab import Vocab

if TYPE_CHECKING:
    from ._data import CollabData

__all__ = ["ItemFeatures", "item_features", "HybridItems", "hybrid_items"]


@dataclasses.dataclass
class ItemFeatures:
    """Which features each item has, padded to the largest count.

    Attributes:
        names: feature names, e.g. ``"genres=Drama"``.
        idx: ``(n_items, width)`` feature indices per item row (padding has weight 0).
        weight: ``(n_items, width)`` 1 / (number of the item's features), 0 for padding.
    """

    names: list[str]
    idx: torch.Tensor
    weight: torch.Tensor


def _labels(value: object, col: str) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        parts = [p.strip() for p in value.split("|")]
        return [f"{col}={p}" for p in parts if p and p != "(no genres listed)"]
    return [f"{col}={value}"]


def item_features(info: pd.DataFrame, columns: Sequence[str], items: Vocab) -> ItemFeatures:
    """Build the padded feature table of the vocabulary's items from metadata columns.

    A text column may hold several labels separated by ``|`` (MovieLens genres); any other value is
    one categorical label. Items missing from ``info`` (and row 0, the unknown item) get none.

    Raises:
        ColumnError: a requested column is not in ``info``.
    """
    for col in columns:
        if col not in info.columns:
            raise ColumnError(f"no item feature column {col!r} in the items table"
                              f"{closest(col, map(str, info.columns))}; columns are {list(info.columns)}")
    rows = info.reindex(items.ids)
    per_item: list[list[str]] = [[] for _ in range(len(items))]
    for col in columns:
        for r, value in enumerate(rows[col].tolist(), start=1):
            per_item[r].extend(_labels(value, col))
    names = sorted({f for labels in per_item for f in labels})
    index = {n: j for j, n in enumerate(names)}
    width = max(1, max((len(labels) for labels in per_item), default=1))
    idx = np.zeros((len(items), width), dtype=np.int64)
    weight = np.zeros((len(items), width), dtype=np.float32)
    for r, labels in enumerate(per_item):
        if labels:
            idx[r, : len(labels)] = [index[f] for f in labels]
            weight[r, : len(labels)] = 1.0 / len(labels)
    return ItemFeatures(names, torch.from_numpy(idx), torch.from_numpy(weight))


@dataclasses.dataclass
class HybridItems:
    """What a hybrid model needs beyond :class:`cflearn.CollabData`.

    Attributes:
        items: item vocabulary over the training items *and* the items of the metadata table.
        features: the padded item -> feature table for that vocabulary.
        trained: ``(len(items),)`` bool, items with training ratings.
        codes: ``(n, 2)`` (user, item) indices of every rating under this vocabulary.
        values: ratings, aligned with ``codes``.
        train_idx, valid_idx: the split of the data.
    """

    items: Vocab
    features: ItemFeatures
    trained: torch.Tensor
    codes: torch.Tensor
    values: torch.Tensor
    train_idx: np.ndarray
    valid_idx: np.ndarray

    def tensors(self, part: Literal["train", "valid"]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of one part, as :meth:`cflearn.CollabData.tensors`."""
        idx = torch.from_numpy(self.train_idx if part == "train" else self.valid_idx)
        return self.codes[idx], self.values[idx]


def hybrid_items(data: CollabData, columns: Sequence[str]) -> HybridItems:
    """Extend the item vocabulary with the metadata's items and build their feature table."""
    info = data.item_info
    if info is None:
        raise ConfigError("item features need an items table: pass items=... to cflearn.from_df")
    items = Vocab(np.concatenate([data.train[data.item].to_numpy(), info.index.to_numpy()]))
    trained = torch.zeros(len(items), dtype=torch.bool)
    trained[items.encode(data.train[data.item])] = True
    item_codes = items.encode(data.ratings[data.item]).astype(data.codes.dtype)
    codes = torch.from_numpy(np.stack([data.codes[:, 0], item_codes], axis=1))
    return HybridItems(items, item_features(info, columns, items), trained, codes, torch.from_numpy(data.values),
                       data.train_idx, data.valid_idx)
