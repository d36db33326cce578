"""Item side features (genres, tags, year, categories) as a padded item -> feature table for hybrid models."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch

from ._errors import ColumnError, ConfigError, closest
from ._vocab import Vocab

if TYPE_CHECKING:
    from ._data import CollabData

__all__ = ["ItemFeatures", "item_features", "HybridItems", "hybrid_items", "title_year", "has_feature", "N_BUCKETS"]


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


N_BUCKETS = 10
"""Numeric item columns (year, runtime, price) become at most this many quantile buckets."""
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _labels(value: object, col: str) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return [f"{col}=unknown"]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split("|")]
        labels = [f"{col}={p}" for p in parts if p and p != "(no genres listed)"]
        return labels or [f"{col}=unknown"]
    return [f"{col}={value}"]


def title_year(titles: pd.Series) -> pd.Series:
    """The release year at the end of MovieLens titles, ``"Heat (1995)"`` -> 1995 (NaN if none)."""
    return pd.to_numeric(titles.astype("string").str.extract(_YEAR, expand=False), errors="coerce")


def _column(info: pd.DataFrame, col: str) -> pd.Series:
    if col not in info.columns and col == "year" and "title" in info.columns:
        return title_year(info["title"])  # the year a MovieLens title ends with
    values = info[col]
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.year.astype("float64")  # a date: its year
    return values


def _buckets(values: pd.Series, col: str) -> list[list[str]]:
    """Quantile buckets of a numeric column (at most :data:`N_BUCKETS`), missing values ``unknown``."""
    v = values.to_numpy(dtype="float64", na_value=np.nan)
    finite = v[np.isfinite(v)]
    if len(finite) == 0:
        return [[f"{col}=unknown"] for _ in v]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BUCKETS + 1)))
    inner = edges[1:-1]
    out = []
    for x in v:
        if not np.isfinite(x):
            out.append([f"{col}=unknown"])
            continue
        k = int(np.searchsorted(inner, x, side="right"))
        lo, hi = edges[k], edges[k + 1] if k + 1 < len(edges) else edges[-1]
        out.append([f"{col}=[{lo:g}, {hi:g}{']' if k + 1 >= len(edges) - 1 else ')'}"])
    return out


def _whole(values: pd.Series) -> bool:
    v = values.dropna().to_numpy(dtype="float64")
    return bool(np.all(np.mod(v, 1) == 0))


def has_feature(info: pd.DataFrame, col: str) -> bool:
    """Whether ``col`` is a column of ``info`` or derived from one (``year`` from ``title``)."""
    return col in info.columns or (col == "year" and "title" in info.columns)


def item_features(info: pd.DataFrame, columns: Sequence[str], items: Vocab) -> ItemFeatures:
    """Build the padded feature table of the vocabulary's items from metadata columns.

    Kinds of column: text may hold several labels separated by ``|`` (MovieLens genres, tags);
    numbers and dates (their year) become quantile buckets (at most :data:`N_BUCKETS`), unless
    they take at most that many distinct values (codes: each value is a category); anything else
    is one categorical label (pass numbers as text to force categories). ``year`` may also be
    derived from a ``title`` ending in ``(1995)``. A missing value, and an item missing from
    ``info``, get the column's own ``unknown`` feature; row 0 (the unknown item) gets none.

    Raises:
        ColumnError: a requested column is not in ``info``.
    """
    for col in columns:
        if not has_feature(info, col):
            raise ColumnError(f"no item feature column {col!r} in the items table"
                              f"{closest(col, map(str, info.columns))}; columns are {list(info.columns)}")
    rows = info.reindex(items.ids)
    per_item: list[list[str]] = [[] for _ in range(len(items))]
    for col in columns:
        values = _column(rows, col)
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric and values.nunique() <= N_BUCKETS:  # a few codes (a rating class, a studio number): categories
            values, numeric = values.astype("Int64" if _whole(values) else "Float64").astype(object), False
            values = values.where(values.notna(), None)
        column = _buckets(values, col) if numeric else [_labels(v, col) for v in values.tolist()]
        for r, item_labels in enumerate(column, start=1):
            per_item[r].extend(item_labels)
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
