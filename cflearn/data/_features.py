"""Side features of users and items (genres, tags, year, age, occupation) as padded row -> feature tables.

Each column is read once, on the training metadata, into a *spec* (its kind, and the bucket edges
of a numeric column); the spec is saved with the model, so a new user's or item's metadata, given
after training, is encoded exactly as the training rows were.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from .._errors import ColumnError, ConfigError, DataWarning, caller_level, closest
from ._vocab import Vocab

if TYPE_CHECKING:
    from ._data import CollabData

__all__ = ["SideFeatures", "side_features", "encode_rows", "as_rows", "HybridData", "hybrid_data", "title_year",
           "has_feature", "check_feature_columns", "N_BUCKETS"]

Side = Literal["user", "item"]


@dataclasses.dataclass
class SideFeatures:
    """Which features each row (user or item) has, padded to the largest count.

    Attributes:
        names: feature names, e.g. ``"genres=Drama"``, ``"age=[25, 35)"``.
        idx: ``(n_rows, width)`` feature indices per row (padding has weight 0).
        weight: ``(n_rows, width)`` 1 / (number of the row's features), 0 for padding.
        spec: how each column was read (``{"column", "kind", ...}``), to encode new rows alike.
    """

    names: list[str]
    idx: torch.Tensor
    weight: torch.Tensor
    spec: list[dict[str, Any]]


N_BUCKETS = 10
"""Numeric columns (year, age, runtime) become at most this many quantile buckets."""
MAX_LABELS = 64
"""At most this many labels of one cell are used (the first ones): a row of a million tags stays small."""
MAX_FEATURES = 20_000
"""At most this many distinct features per side (the most frequent labels)."""
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def title_year(titles: pd.Series) -> pd.Series:
    """The release year at the end of MovieLens titles, ``"Heat (1995)"`` -> 1995 (NaN if none)."""
    return pd.to_numeric(titles.astype("string").str.extract(_YEAR, expand=False), errors="coerce")


def has_feature(info: pd.DataFrame, col: str) -> bool:
    """Whether ``col`` is a column of ``info`` or derived from one (``year`` from titles that end with one,
    ``"Heat (1995)"``)."""
    if col in info.columns:
        return True
    return col == "year" and "title" in info.columns and bool(title_year(info["title"]).notna().any())


def check_feature_columns(info: pd.DataFrame | None, columns: Sequence[str], side: Side) -> None:
    """Every requested column exists in the side's table (else the closest name and the columns)."""
    if not columns:
        return
    if info is None:
        article = "an" if side == "item" else "a"
        raise ConfigError(f"{side}_features={tuple(columns)} need {article} {side}s table: pass {side}s=... to "
                          "cflearn.from_df")
    for col in columns:
        if not isinstance(col, str):
            raise ConfigError(f"{side}_features must be column names, got {col!r}")
        if not has_feature(info, col):
            raise ColumnError(f"no {side} feature column {col!r} in the {side}s table"
                              f"{closest(col, map(str, info.columns))}; columns are {list(info.columns)}")


def _column(info: pd.DataFrame, col: str) -> pd.Series:
    if col not in info.columns and col == "year" and "title" in info.columns:
        return title_year(info["title"])  # the year a MovieLens title ends with
    values = info[col]
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.year.astype("float64")  # a date: its year
    return values


def _whole(values: pd.Series) -> bool:
    v = values.dropna().to_numpy(dtype="float64")
    return bool(np.all(np.mod(v, 1) == 0))


def _read_spec(values: pd.Series, col: str) -> dict[str, Any]:
    """How a training column is read: numbers with many values -> quantile buckets, a few -> codes, else labels."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric:
        return {"column": col, "kind": "labels"}
    if values.nunique() <= N_BUCKETS:  # a few codes (a rating class, a studio number): categories
        return {"column": col, "kind": "codes", "whole": _whole(values)}
    v = values.to_numpy(dtype="float64", na_value=np.nan)
    finite = v[np.isfinite(v)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, N_BUCKETS + 1))) if len(finite) else np.zeros(0)
    return {"column": col, "kind": "buckets", "edges": [float(e) for e in edges]}


def _list_literal(text: str) -> list[str] | None:
    """The labels of a Python/JSON list written as text (``"['Pork', 'Rich Fish']"``), else ``None``."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, int, float)) for v in value):
        return None
    return [str(v).strip() for v in value]


def _labels(value: object, col: str) -> list[str]:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return [f"{col}=unknown"]
    if isinstance(value, (list, tuple)):  # a column of lists
        value = "|".join(str(v) for v in value)
    if isinstance(value, str):
        listed = _list_literal(value)  # "['Pork', 'Rich Fish']": multi-valued, as "Pork|Rich Fish"
        parts = listed if listed is not None else [p.strip() for p in value.split("|")]
        labels = [f"{col}={p}" for p in parts if p and p != "(no genres listed)"]
        return labels or [f"{col}=unknown"]
    return [f"{col}={value}"]


def _bucket(x: float, edges: list[float], col: str) -> str:
    if not np.isfinite(x) or not edges:
        return f"{col}=unknown"
    k = min(int(np.searchsorted(edges[1:-1], x, side="right")), max(0, len(edges) - 2))
    lo, hi = edges[k], edges[min(k + 1, len(edges) - 1)]
    return f"{col}=[{lo:g}, {hi:g}{']' if k + 1 >= len(edges) - 1 else ')'}"


def _apply_spec(values: pd.Series, spec: Mapping[str, Any]) -> list[list[str]]:
    """Labels of each value of a column, read as ``spec`` says."""
    col, kind = spec["column"], spec["kind"]
    if kind == "buckets":
        v = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        return [[_bucket(x, spec["edges"], col)] for x in v]
    if kind == "codes":
        codes = pd.Series(pd.to_numeric(values, errors="coerce"), dtype="float64")
        whole = spec.get("whole") and bool(np.all(np.mod(codes.dropna(), 1) == 0))
        out = codes.astype("Int64" if whole else "Float64").astype(object)
        return [_labels(None if x is pd.NA else x, col) for x in out.tolist()]
    return [_labels(x, col) for x in values.tolist()]


_DATE = re.compile(r"^\s*\d{4}-\d{1,2}-\d{1,2}([ T][\d:.]+)?\s*$")


def _numbers(values: pd.Series) -> tuple[pd.Series, list[Any]]:
    """A new row's numbers given as numbers, text (``"25"``) or ISO dates (``"1995-07-01"``: its year), and
    the given values that are none of these (``"now"``, ``"thirty"``, ``1e999``, a list): missing."""
    def one(v: Any) -> float:
        if v is None or v is pd.NA or isinstance(v, (list, tuple, dict, set)):
            return np.nan
        if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
            return float(v) if np.isfinite(float(v)) else np.nan
        text = str(v).strip()
        try:
            x = float(text)
            return x if np.isfinite(x) else np.nan
        except ValueError:
            pass
        if _DATE.match(text):
            date = pd.to_datetime(text, errors="coerce")
            return float(date.year) if not pd.isna(date) else np.nan
        return np.nan

    raw = list(values)
    out = pd.Series([one(v) for v in raw], index=values.index, dtype="float64")
    missing = [v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) for v in raw]
    unreadable = [v for v, x, m in zip(raw, out, missing) if np.isnan(x) and not m]
    return out, unreadable


def _pad(per_row: list[list[int]], n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max((len(r) for r in per_row), default=1))
    idx = np.zeros((n_rows, width), dtype=np.int64)
    weight = np.zeros((n_rows, width), dtype=np.float32)
    for r, feats in enumerate(per_row):
        if feats:
            idx[r, : len(feats)] = feats
            weight[r, : len(feats)] = 1.0 / len(feats)
    return torch.from_numpy(idx), torch.from_numpy(weight)


def side_features(info: pd.DataFrame, columns: Sequence[str], vocab: Vocab, side: Side = "item") -> SideFeatures:
    """Build the padded feature table of the vocabulary's rows from metadata columns.

    Kinds of column: text may hold several labels separated by ``|`` (MovieLens genres, tags);
    numbers and dates (their year) become quantile buckets (at most :data:`N_BUCKETS`), unless
    they take at most that many distinct values (codes: each value is a category); anything else
    is one categorical label (pass numbers as text to force categories). ``year`` may also be
    derived from a ``title`` ending in ``(1995)``. A missing value, and a row missing from
    ``info``, get the column's own ``unknown`` feature; row 0 (the unknown ID) gets none.

    Raises:
        ColumnError: a requested column is not in ``info``.
    """
    check_feature_columns(info, columns, side)
    rows = info.reindex(vocab.ids)
    per_row: list[list[str]] = [[] for _ in range(len(vocab))]
    spec = []
    long_rows = 0
    for col in columns:
        values = _column(rows, col)
        spec.append(_read_spec(values, col))
        for r, labels in enumerate(_apply_spec(values, spec[-1]), start=1):
            if len(labels) > MAX_LABELS:  # a cell of thousands of labels: its first ones
                long_rows += 1
                labels = labels[:MAX_LABELS]
            per_row[r].extend(labels)
    counts: dict[str, int] = {}
    for labels in per_row:
        for f in labels:
            counts[f] = counts.get(f, 0) + 1
    if long_rows:
        warnings.warn(f"{long_rows:,} {side}(s) have more than {MAX_LABELS} labels in one column; the first "
                      f"{MAX_LABELS} of each are used", DataWarning, stacklevel=caller_level())
    if len(counts) > MAX_FEATURES:  # keep the most frequent labels: a label on one row teaches little anyway
        keep = set(sorted(counts, key=lambda f: (-counts[f], f))[:MAX_FEATURES])
        warnings.warn(f"the {side} features have {len(counts):,} distinct labels; the {MAX_FEATURES:,} most "
                      "frequent are used", DataWarning, stacklevel=caller_level())
        per_row = [[f for f in labels if f in keep] for labels in per_row]
    names = sorted({f for labels in per_row for f in labels})
    index = {n: j for j, n in enumerate(names)}
    idx, weight = _pad([[index[f] for f in labels] for labels in per_row], len(vocab))
    return SideFeatures(names, idx, weight, spec)


def as_rows(features: Mapping[str, Any] | pd.Series | pd.DataFrame, side: Side) -> pd.DataFrame:
    """New rows' metadata as a table: one mapping (``{"age": 25, "gender": "F"}``), a row of a users /
    items table (a Series), or a table."""
    if isinstance(features, pd.DataFrame):
        return features
    if isinstance(features, pd.Series):
        return features.to_frame().T.infer_objects()
    if isinstance(features, Mapping):
        return pd.DataFrame([dict(features)])
    raise ConfigError(f"{side} features must be a mapping like {{'column': value}}, a row of the {side}s table "
                      f"(a pandas Series) or a table, got {type(features).__name__}")


def encode_rows(spec: Sequence[Mapping[str, Any]], names: Sequence[str], rows: pd.DataFrame,
                side: Side, *, strict: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Encode new rows' metadata as training encoded its rows: ``(idx, weight, ignored, unreadable)``.

    A column left out or a missing value gets the column's ``unknown`` feature (when training had
    one, else nothing from that column); a value training never saw (a new occupation; a number
    outside the buckets still goes to the nearest) is ignored and listed in ``ignored``; a row left
    with no known feature has none (weights 0); a column the model was not trained with raises
    when ``strict`` (features written by hand: a typo), else it is one of the table's other
    columns and is skipped. A value of a numeric column that is not a number or an ISO date
    (``"now"``, ``"thirty"``, ``1e999``, a list) counts as missing and is listed in ``unreadable``.
    """
    if not spec:
        raise ConfigError(f"this model was trained without {side} features; train with {side}_features=... "
                          f"(declared on cflearn.from_df, preset 'best') to score new {side}s from metadata")
    trained = [s["column"] for s in spec]
    for col in rows.columns if strict else ():
        if col not in trained and not (col == "title" and "year" in trained):
            raise ColumnError(f"the model has no {side} feature {col!r}{closest(str(col), trained)}; its {side} "
                              f"features are {trained}")
    index = {n: j for j, n in enumerate(names)}
    per_row: list[list[int]] = [[] for _ in range(len(rows))]
    ignored: list[str] = []
    unreadable: list[str] = []
    for s in spec:
        col = s["column"]
        if has_feature(rows, col):
            values = _column(rows, col)
            if s["kind"] != "labels":
                values, bad = _numbers(values)
                unreadable += [f"{col}={v!r}" for v in bad]
        else:
            values = pd.Series([None] * len(rows), dtype=object)
        for r, labels in enumerate(_apply_spec(values.reset_index(drop=True), s)):
            known = [index[f] for f in labels if f in index]
            ignored += [f for f in labels if f not in index and f != f"{col}=unknown"]  # missing is not unseen
            if not known and f"{col}=unknown" in index and labels:
                known = [index[f"{col}=unknown"]]
            per_row[r].extend(known)
    idx, weight = _pad(per_row, len(rows))
    return idx, weight, sorted(set(ignored)), unreadable


@dataclasses.dataclass
class HybridData:
    """What a hybrid model needs beyond :class:`cflearn.CollabData`.

    Attributes:
        users, items: vocabularies over the training IDs *and* the IDs of a side's metadata table
            when that side has features.
        user_features, item_features: the padded feature tables (``None``: the side has none).
        trained_users, trained_items: ``(len(vocab),)`` bool, rows with training ratings.
        codes: ``(n, 2)`` (user, item) indices of every rating under these vocabularies.
        values: ratings, aligned with ``codes``.
        train_idx, valid_idx: the split of the data.
    """

    users: Vocab
    items: Vocab
    user_features: SideFeatures | None
    item_features: SideFeatures | None
    trained_users: torch.Tensor
    trained_items: torch.Tensor
    codes: torch.Tensor
    values: torch.Tensor
    train_idx: np.ndarray
    valid_idx: np.ndarray

    def tensors(self, part: Literal["train", "valid"]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of one part, as :meth:`cflearn.CollabData.tensors`."""
        idx = torch.from_numpy(self.train_idx if part == "train" else self.valid_idx)
        return self.codes[idx], self.values[idx]


def _side(data: CollabData, side: Side, columns: Sequence[str]) -> tuple[Vocab, SideFeatures | None, torch.Tensor,
                                                                          np.ndarray]:
    col, info, vocab = ((data.user, data.user_info, data.users) if side == "user"
                        else (data.item, data.item_info, data.items))
    feats = None
    if columns:
        check_feature_columns(info, columns, side)
        assert info is not None
        vocab = Vocab(np.concatenate([data.train[col].to_numpy(), info.index.to_numpy()]))
        feats = side_features(info, columns, vocab, side)
    trained = torch.zeros(len(vocab), dtype=torch.bool)
    trained[vocab.encode(data.train[col])] = True
    codes = data.codes[:, 0 if side == "user" else 1]
    if columns:
        codes = vocab.encode(data.ratings[col]).astype(data.codes.dtype)
    return vocab, feats, trained, codes


def hybrid_data(data: CollabData, item_columns: Sequence[str], user_columns: Sequence[str] = ()) -> HybridData:
    """Extend each side's vocabulary with its metadata's IDs and build its feature table."""
    users, u_feats, u_trained, u_codes = _side(data, "user", user_columns)
    items, i_feats, i_trained, i_codes = _side(data, "item", item_columns)
    codes = torch.from_numpy(np.stack([u_codes, i_codes], axis=1))
    return HybridData(users, items, u_feats, i_feats, u_trained, i_trained, codes, torch.from_numpy(data.values),
                      data.train_idx, data.valid_idx)
