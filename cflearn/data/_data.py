"""CollabData: a validated, de-duplicated, encoded and split ratings table."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from .._errors import ColumnError, ConfigError, DataError, DataWarning, caller_level, check_seed, closest, closest_name
from ..metrics import relevance_level
from ._columns import find_column
from ._features import check_feature_columns
from ._read import read_ratings
from ._spec import DataSpec, Duplicates
from ._splits import SplitName, check_split, split_rows
from ._vocab import Vocab

if TYPE_CHECKING:
    from ..datasets import Dataset

__all__ = ["CollabData", "DataSpec", "from_df", "from_file", "read_ratings", "Duplicates", "relevance_level",
           "IMPLICIT_COLUMN"]

IMPLICIT_COLUMN = "interaction"
"""Name of the weight column added to implicit data without a ``weight`` column."""



@dataclasses.dataclass(eq=False)
class CollabData:
    """Ratings ready for training: cleaned table, vocabularies, split and encoded tensors.

    Build it with :func:`from_df` or :func:`from_file`, not directly.

    Attributes:
        ratings: the cleaned table (one row per (user, item) pair), with the caller's column names.
        train_idx: row positions of ``ratings`` used for training.
        valid_idx: row positions of ``ratings`` used for validation.
        user: the user column's name.
        item: the item column's name.
        rating: the rating column's name (each interaction's weight on implicit data).
        timestamp: the time column's name, or ``None``.
        users: the user vocabulary, built from the training rows (index 0 = unknown).
        items: the item vocabulary, built from the training rows (index 0 = unknown).
        scale: ``(lowest, highest)`` rating, declared or observed.
        split: how the rows were split; ``seed`` and ``valid_pct`` as given.
        n_duplicates: how many duplicate (user, item) rows were merged.
        item_info: optional item metadata (titles, genres, ...) indexed by raw item ID.
        user_info: optional user attributes indexed by raw user ID.
        implicit: interactions (clicks, plays, purchases) rather than ratings: the ``rating``
            column then holds each interaction's weight (1 unless a ``weight`` column was given),
            only ranking presets train on it, and evaluation reports ranking metrics only.
        user_features: user side-feature columns declared on the data (``None``: not declared).
        item_features: item side-feature columns declared on the data (``None``: not declared, so
            a preset's own list applies).
        titles_from: the items table's column shown as titles (``None``: no titles).
        titles_how: how that column was chosen, in words.
    """

    ratings: pd.DataFrame
    train_idx: np.ndarray
    valid_idx: np.ndarray
    user: str
    item: str
    rating: str
    timestamp: str | None
    users: Vocab
    items: Vocab
    scale: tuple[float, float]
    split: str = "random"
    seed: int | None = 42
    valid_pct: float = 0.2
    n_duplicates: int = 0
    item_info: pd.DataFrame | None = None
    user_info: pd.DataFrame | None = None
    implicit: bool = False
    user_features: tuple[str, ...] = ()
    item_features: tuple[str, ...] | None = None
    titles_from: str | None = None
    titles_how: str = ""

    # -- views --------------------------------------------------------------------------------
    def side_tables(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """The items and users tables as :func:`from_df` takes them, keyed by this data's own ID
        columns (whatever the tables' key was called: ``item_id=`` / ``user_id=``), for inner splits."""
        return tuple(None if info is None else info.rename_axis(key).reset_index()  # type: ignore[return-value]
                     for info, key in ((self.item_info, self.item), (self.user_info, self.user)))

    @property
    def train(self) -> pd.DataFrame:
        """Training rows of the cleaned table."""
        return self.ratings.iloc[self.train_idx]

    @property
    def valid(self) -> pd.DataFrame:
        """Validation rows of the cleaned table."""
        return self.ratings.iloc[self.valid_idx]

    @cached_property
    def codes(self) -> np.ndarray:
        """``(n, 2)`` array of (user index, item index) for every row (unknown = 0).

        int32 while the vocabularies fit (half the memory of int64 on large tables); the loaders
        hand int64 batches to the model.
        """
        dtype = np.int32 if max(len(self.users), len(self.items)) < 2**31 else np.int64
        return np.stack([self.users.encode(self.ratings[self.user]).astype(dtype, copy=False),
                         self.items.encode(self.ratings[self.item]).astype(dtype, copy=False)], axis=1)

    @cached_property
    def values(self) -> np.ndarray:
        """Ratings as float32, aligned with :attr:`codes`."""
        return self.ratings[self.rating].to_numpy(dtype=np.float32)

    def tensors(self, part: Literal["train", "valid"]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` tensors of one part: x is ``(n, 2)`` indices (see :attr:`codes`), y is ``(n,)`` float32."""
        idx = self.train_idx if part == "train" else self.valid_idx
        return torch.from_numpy(self.codes[idx]), torch.from_numpy(self.values[idx])

    @cached_property
    def cold(self) -> dict[str, int]:
        """Validation rows whose user / item (or both) never appear in training."""
        c = self.codes[self.valid_idx]
        u, i = c[:, 0] == 0, c[:, 1] == 0
        return {
            "rows": int((u | i).sum()),
            "user_rows": int(u.sum()),
            "item_rows": int(i.sum()),
            "users": int(self.valid.loc[u, self.user].nunique()),
            "items": int(self.valid.loc[i, self.item].nunique()),
        }

    @property
    def global_mean(self) -> float:
        """Mean training rating."""
        return float(self.values[self.train_idx].mean())

    @property
    def n_users(self) -> int:
        """Users seen in training."""
        return len(self.users) - 1

    @property
    def n_items(self) -> int:
        """Items seen in training."""
        return len(self.items) - 1

    def summary(self) -> dict[str, Any]:
        """The numbers shown by ``repr``, as a dict."""
        n = len(self.ratings)
        return {
            "ratings": n,
            "users": int(self.ratings[self.user].nunique()),
            "items": int(self.ratings[self.item].nunique()),
            "scale": self.scale,
            "mean_rating": float(self.values.mean()),
            "density": n / max(1, self.ratings[self.user].nunique() * self.ratings[self.item].nunique()),
            "train": len(self.train_idx),
            "valid": len(self.valid_idx),
            "split": self.split,
            "seed": self.seed,
            "duplicates_merged": self.n_duplicates,
            "cold_valid": self.cold,
        }

    def __repr__(self) -> str:
        s = self.summary()
        cold = s["cold_valid"]
        if self.implicit:
            kind = "interactions" if self.rating == IMPLICIT_COLUMN else f"interactions weighted by {self.rating!r}"
            lines = [f"CollabData: {s['ratings']:,} {kind} (implicit) by {s['users']:,} users of {s['items']:,} items",
                     f"  columns   user={self.user!r} item={self.item!r}"
                     + (f" timestamp={self.timestamp!r}" if self.timestamp else ""),
                     f"  density   {s['density']:.2%} (sparsity {1 - s['density']:.2%})",
                     f"  split     {self.split}, seed {self.seed}: train {s['train']:,} / valid {s['valid']:,}"]
            return "\n".join(lines + self._titles_line())
        lines = [
            f"CollabData: {s['ratings']:,} ratings by {s['users']:,} users of {s['items']:,} items",
            f"  columns   user={self.user!r} item={self.item!r} rating={self.rating!r}"
            + (f" timestamp={self.timestamp!r}" if self.timestamp else ""),
            f"  scale     {s['scale'][0]:g} to {s['scale'][1]:g}, mean {s['mean_rating']:.3f};"
            f" density {s['density']:.2%} (sparsity {1 - s['density']:.2%})",
            f"  split     {self.split}, seed {self.seed}: train {s['train']:,} / valid {s['valid']:,}",
        ]
        if s["valid"]:
            lines.append(
                f"  cold      {cold['rows']:,} valid rows ({cold['rows'] / s['valid']:.1%}) have a user or item"
                f" unseen in training ({cold['users']} users, {cold['items']} items);"
                " they are predicted from the average user/item"
            )
        if self.n_duplicates:
            lines.append(f"  merged    {self.n_duplicates:,} duplicate (user, item) rows")
        lines += [f"  features  {line}" for line in self.feature_coverage()]
        return "\n".join(lines + self._titles_line())

    def _titles_line(self) -> list[str]:
        if self.titles_from is None or (self.titles_from == "title" and self.titles_how == "the 'title' column"):
            return []
        tip = "" if self.titles_how.startswith("chosen with") else "; item_title= / --items-title to choose"
        return [f"  titles    from the items table's {self.titles_from!r} column ({self.titles_how}{tip})"]

    def feature_coverage(self) -> list[str]:
        """One line per side with declared features: the columns, rated IDs without a metadata row,
        and metadata rows of IDs that have no rating (they still get rows in a hybrid model)."""
        lines = []
        for side, cols, info, col in (("users", self.user_features, self.user_info, self.user),
                                      ("items", self.item_features, self.item_info, self.item)):
            if not cols or info is None:
                continue
            rated = pd.unique(self.ratings[col])
            missing = int((~pd.Index(rated).isin(info.index)).sum())
            extra = int((~info.index.isin(rated)).sum())
            lines.append(f"{side}: {', '.join(cols)}; {missing:,} rated {side} have no row in the {side} table "
                         f"('unknown' features), {extra:,} {side} of the table have no rating (scored by features)")
        return lines


# -- reading files ------------------------------------------------------------------------------
def from_file(path: str | Path, *, sep: str | None = None, header: int | Literal["infer"] | None = "infer",
              encoding: str | None = None, decimal: str = ".", **kwargs: Any) -> CollabData:
    """Read ``path`` with :func:`read_ratings`, then build :class:`CollabData` with :func:`from_df`."""
    read_kwargs: dict[str, Any] = {"encoding": encoding} if encoding else {}
    return from_df(read_ratings(path, sep=sep, header=header, decimal=decimal, **read_kwargs), **kwargs)


# -- building CollabData ------------------------------------------------------------------------
def from_df(
    ratings: pd.DataFrame | Dataset,
    user: str | None = None,
    item: str | None = None,
    rating: str | None = None,
    timestamp: str | None = None,
    *,
    valid_pct: float = 0.2,
    seed: int | None = 42,
    split: SplitName = "random",
    n_last: int = 1,
    duplicates: Duplicates | None = None,
    rating_range: tuple[float, float] | None = None,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    user_features: Sequence[str] | None = None,
    item_features: Sequence[str] | None = None,
    implicit: bool | None = None,
    threshold: float | None = None,
    weight: str | None = None,
    item_id: str | None = None,
    item_title: str | None = None,
    user_id: str | None = None,
    spec: DataSpec | None = None,
) -> CollabData:
    """Validate, de-duplicate, split and encode a ratings table.

    Args:
        ratings: a DataFrame, or a :class:`cflearn.datasets.Dataset` (columns and metadata come with it).
        user: the user column; default: the first column (as fastai does).
        item: the item column; default: the second column.
        rating: the rating column; default: the third column, when there is one.
        timestamp: optional time column (needed by the ``time`` and ``leave_last`` splits).
        valid_pct: fraction held out for validation (of rows, or of users/items for cold splits).
        seed: seed of the random and cold splits; same seed, same split.
        split: ``"random"`` (default), ``"time"``, ``"leave_last"`` (each user's ``n_last`` latest),
            ``"cold_users"`` or ``"cold_items"``.
        n_last: ratings per user held out by ``split="leave_last"``.
        duplicates: what to do with repeated (user, item) pairs: ``"mean"`` (default for ratings)
            averages their ratings and keeps the latest timestamp; ``"sum"`` (default for implicit
            data) adds their weights (two plays weigh 2); ``"last"`` keeps the latest (by timestamp
            when given, else the last row); ``"error"`` raises.
        rating_range: the declared scale, e.g. ``(1, 5)``; ratings outside it raise. Default: observed;
            a column that looks like counts (whole numbers, the largest above 100 and at least 50
            times the median: play counts) raises unless its scale is declared (pass it as ``weight=``).
        items: optional item metadata with the item column (e.g. MovieLens titles and genres).
        users: optional user attributes with the user column.
        user_features: columns of ``users`` to use as side features
            (declared once here; presets with side features, ``best`` and ``content``, use them).
            Kinds: categories, ``|``-separated labels (genres, tags), numbers and dates (quantile
            buckets), ``year`` from a title ending in ``(1995)``. A missing value is the column's
            ``unknown`` feature; the ``repr`` says how many rated IDs have no metadata row and how
            many metadata rows have no rating.
        item_features: columns of ``items`` to use as side features, read as ``user_features``.
        implicit: the table holds interactions (clicks, plays, purchases), not ratings. Default:
            implicit when there is no rating column (a two-column table, a table of user, item and
            timestamp, or ``weight`` given);
            ``implicit=True`` on a table with ratings uses each rating as an interaction (those
            below ``threshold`` dropped). Implicit data trains ranking presets (``rank``) and is
            evaluated with ranking metrics only.
        threshold: with ``implicit=True`` and a rating column: keep the rows rated at least this.
        weight: optional column of interaction weights (play counts, quantities; positive); it
            implies ``implicit``.
        item_id: the ID column of the ``items`` / ``users`` table when its name differs
            from the ratings' (an artists table keyed by ``id``).
        user_id: the ID column of the ``items`` / ``users`` table when its name differs
            from the ratings' (an artists table keyed by ``id``).
        item_title: the items table's column to show as each item's title (in recommendations,
            reports, interpretation). Default: ``title``, else a column that looks like names (text
            with letters, not lists or years) under a name-like header (``WineName``) with at least
            half its values distinct, else the first such column with 90% distinct values;
            ``data.titles_from`` says which and ``data.titles_how`` why.
        spec: all of the above as one :class:`DataSpec` (``cflearn run_fit`` and the command line
            pass theirs so); with ``spec``, the other keywords must be left out.

    Returns:
        CollabData: the training data; its ``repr`` summarises counts, scale, sparsity and cold rows.

    Raises:
        DataError: empty table, unknown columns (with the closest name), missing or mixed-type IDs,
            NaN/inf/non-numeric ratings, ratings outside ``rating_range``, duplicates with
            ``duplicates="error"``, or a split that leaves nothing to train on.
    """
    given = {k: v for k, v in locals().items() if k not in ("ratings", "spec")}  # the keywords, as passed
    if spec is None:
        spec = DataSpec(**given)
    else:
        defaults = {f.name: f.default for f in dataclasses.fields(DataSpec)}
        changed = sorted(k for k, v in given.items() if v is not defaults[k] and (
            isinstance(v, pd.DataFrame) or v != defaults[k]))
        if changed:
            raise ConfigError(f"from_df takes spec= or the keywords it holds, not both (also given: "
                              f"{', '.join(changed)}); put them in the spec (spec.replace(...))")
    table, spec = _unpack_dataset(ratings, spec)
    spec = _roles(table, spec)
    frame, value_col, scale, n_dup = _cleaned(table, spec)
    return _encoded(frame, spec, value_col, scale, n_dup)


def _unpack_dataset(ratings: pd.DataFrame | Dataset, spec: DataSpec) -> tuple[pd.DataFrame, DataSpec]:
    """The ratings table, with a :class:`cflearn.datasets.Dataset`'s columns and side tables as the
    spec's defaults."""
    from ..datasets import Dataset

    if isinstance(ratings, Dataset):
        names = ratings.columns
        implicit = spec.implicit
        if names.get("rating") is None and spec.rating is None and implicit is None:
            implicit = True  # an interactions data set (e.g. datasets.synthetic(implicit=True))
        spec = spec.replace(user=spec.user or names["user"], item=spec.item or names["item"],
                            rating=spec.rating or names["rating"], timestamp=spec.timestamp or names.get("timestamp"),
                            implicit=implicit, items=ratings.items if spec.items is None else spec.items,
                            users=ratings.users if spec.users is None else spec.users)
        ratings = ratings.ratings
    if not isinstance(ratings, pd.DataFrame):
        raise DataError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}; "
                        "for a file use cflearn.from_file(path, ...)")
    return ratings, spec.replace(seed=check_seed(spec.seed))


def _roles(ratings: pd.DataFrame, spec: DataSpec) -> DataSpec:
    """The spec with each role's column found (the closest name suggested), interactions told from
    ratings and the duplicates rule settled; errors for roles that clash."""
    user, item, rating, timestamp, weight = spec.user, spec.item, spec.rating, spec.timestamp, spec.weight
    implicit, threshold = spec.implicit, spec.threshold
    if rating is None and implicit is None and timestamp is not None and user is not None and item is not None and \
            not set(map(str, ratings.columns)) - {str(user), str(item), str(timestamp), str(weight)}:
        implicit = True  # (user, item, timestamp) and nothing else: interactions, the timestamp is no rating
    implicit, rating, threshold = _implicit_mode(ratings, rating, implicit, threshold, weight)
    if implicit and spec.rating_range is not None:
        raise ConfigError("rating_range applies to ratings, not to implicit interactions; leave it out (or pass "
                          "implicit=False if the table holds ratings)")
    if len(ratings.columns) < 3 and None in (user, item, rating) and not implicit:
        raise DataError(f"the table has {len(ratings.columns)} column(s) {list(ratings.columns)}; it needs user, "
                        "item and rating columns (wrong separator? try sep='\\t' or sep=';')")
    user = find_column(ratings, user, 0, "user")
    item = find_column(ratings, item, 1, "item")
    rating = find_column(ratings, rating, 2, "rating") if rating is not None or not implicit else None
    value = find_column(ratings, weight, None, "weight") if weight is not None else None
    timestamp = find_column(ratings, timestamp, None, "timestamp") if timestamp is not None else None
    named = [c for c in (user, item, rating, value, timestamp) if c is not None]
    if len(set(named)) < len(named):
        raise ConfigError(f"user, item, rating, weight and timestamp must be different columns, got {user!r}, "
                          f"{item!r}, {rating!r}, {value!r}, {timestamp!r}")
    duplicates = spec.duplicates if spec.duplicates is not None else "sum" if implicit else "mean"
    if duplicates not in ("mean", "sum", "last", "error"):
        raise ConfigError(f"duplicates must be 'mean', 'sum', 'last' or 'error', got {duplicates!r}")
    if duplicates == "sum" and not implicit:
        raise ConfigError("duplicates='sum' adds interaction weights and applies to implicit data only; for ratings "
                          "use 'mean', 'last' or 'error'")
    if len(ratings) == 0:
        raise DataError("the ratings table is empty (a header but no rows?); it needs at least one rating")
    return spec.replace(user=user, item=item, rating=rating, weight=value, timestamp=timestamp,
                        implicit=bool(implicit), threshold=threshold, duplicates=duplicates)


def _cleaned(ratings: pd.DataFrame, spec: DataSpec) -> tuple[pd.DataFrame, str, tuple[float, float], int]:
    """A clean copy of the table's columns (the caller's table untouched): IDs, ratings or interaction
    weights, timestamps checked, the scale found, duplicates merged; ``(frame, value column, scale,
    duplicates merged)``."""
    user, item, rating, timestamp = spec.user, spec.item, spec.rating, spec.timestamp
    assert user is not None and item is not None  # _roles found them
    cols = [c for c in (user, item, rating, spec.weight, timestamp) if c is not None]
    frame = ratings[cols].copy()  # never touch the caller's table
    frame[user] = _clean_ids(frame[user], user)
    frame[item] = _clean_ids(frame[item], item)
    if spec.implicit:
        frame, value_col = _interactions(frame, rating, spec.weight, spec.threshold)
    else:
        value_col = str(rating)
        frame[value_col] = _clean_ratings(frame[value_col], value_col)
    if timestamp is not None and frame[timestamp].isna().any():
        raise DataError(f"column {timestamp!r} has {int(frame[timestamp].isna().sum())} missing timestamps; "
                        "fill or drop them")
    if timestamp is not None:
        frame[timestamp] = _clean_times(frame[timestamp], timestamp)
    scale = _scale(frame[value_col], value_col, spec.rating_range, counts_ok=bool(spec.implicit))
    assert spec.duplicates is not None  # _roles settled it
    frame, n_dup = _dedupe(frame, user, item, value_col, timestamp, spec.duplicates)
    return frame, value_col, scale, n_dup


def _encoded(frame: pd.DataFrame, spec: DataSpec, value_col: str, scale: tuple[float, float],
             n_dup: int) -> CollabData:
    """The split, the side tables and the vocabularies of a clean table."""
    user, item, timestamp = spec.user, spec.item, spec.timestamp
    assert user is not None and item is not None
    train_idx, valid_idx = split_rows(frame, spec.split, user=user, item=item, timestamp=timestamp,
                                      valid_pct=spec.valid_pct, seed=spec.seed, n_last=spec.n_last)
    check_split(train_idx, len(frame))
    train = frame.iloc[train_idx]
    item_info = _side_table(spec.items, spec.item_id or item, "items", ids=frame[item])
    user_info = _side_table(spec.users, spec.user_id or user, "users", ids=frame[user])
    item_info, titles_from, titles_how = _titles(item_info, spec.item_title)
    user_cols = _declared(spec.user_features, user_info, "user")
    item_cols = _declared(spec.item_features, item_info, "item")
    return CollabData(
        ratings=frame, train_idx=train_idx, valid_idx=valid_idx, user=user, item=item, rating=value_col,
        timestamp=timestamp, users=Vocab(train[user].to_numpy()), items=Vocab(train[item].to_numpy()),
        scale=scale, split=spec.split, seed=spec.seed, valid_pct=spec.valid_pct, n_duplicates=n_dup,
        item_info=item_info, user_info=user_info, implicit=bool(spec.implicit),
        user_features=user_cols or (), item_features=item_cols, titles_from=titles_from, titles_how=titles_how,
    )


_NAME_LIKE = re.compile(r"(^|_|\b|[a-z])(name|title|label)s?$", re.IGNORECASE)


def _titles(info: pd.DataFrame | None, column: str | None) -> tuple[pd.DataFrame | None, str | None, str]:
    """The items table with the names to show in a ``title`` column, the column they came from and
    how it was chosen: ``column`` if given; else a non-empty ``title``; else the first column that
    looks like names (text with letters, not lists, years or codes) under a name-like header
    (``name``, ``WineName``, ``label``) with at least half its values distinct; else the first such
    column with at least 90% distinct values."""
    if info is None:
        if column is not None:
            raise ConfigError(f"item_title={column!r} names a column of the items table; pass items=... too")
        return None, None, ""
    how = "chosen with item_title= / --items-title"
    if column is not None:
        if column not in info.columns:
            raise ColumnError(f"no title column {column!r} in the items table{closest(column, map(str, info.columns))};"
                              f" columns are {[str(c) for c in info.columns]}")
        if not _filled(info[column]).any():
            raise DataError(f"the title column {column!r} of the items table is empty; choose a column that holds "
                            "the items' names")
    elif "title" in info.columns and _filled(info["title"]).any():
        return info, "title", "the 'title' column"
    else:
        column, how = _guess_titles(info)
        if column is None:  # an empty 'title' column is no titles: never "None" or "nan" shown as a name
            return (info.drop(columns="title") if "title" in info.columns else info), None, ""
        if "title" in info.columns:
            how += "; the 'title' column is empty"
    info = info.copy()
    info["title"] = info[column].where(_filled(info[column]))
    return info, column, how


def _filled(values: pd.Series) -> pd.Series:
    """Which values hold something to show: not missing, not blank text."""
    return values.notna() & ~values.map(lambda v: isinstance(v, str) and not v.strip())


def _guess_titles(info: pd.DataFrame) -> tuple[str | None, str]:
    first_unique: str | None = None
    for c in info.columns:
        if c == "title":
            continue
        values = info[c][_filled(info[c])]
        if not len(values) or not values.map(lambda v: isinstance(v, str)).all():
            continue
        text = values.astype(str).str.strip()
        letters = text.str.contains(r"[^\W\d_]", regex=True).mean()  # names have letters; years and codes do not
        lists = (text.str.match(r"^[\[\{(]") | text.str.contains("|", regex=False)).mean()  # "[1998]", "a|b"
        if text.str.len().mean() <= 1 or text.str.len().median() > 300 or letters < 0.9 or lists > 0.5:
            continue
        distinct = values.nunique() / len(values)
        if _NAME_LIKE.search(str(c)) and distinct >= 0.5:
            return str(c), "a column named like names, holding mostly distinct text"
        if first_unique is None and distinct >= 0.9:
            first_unique = str(c)
    return first_unique, "the first text column with mostly distinct values"


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (``np.int64(7)`` -> ``7``), for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _implicit_mode(ratings: pd.DataFrame, rating: str | None, implicit: bool | None, threshold: float | None,
                   weight: str | None) -> tuple[bool, str | None, float | None]:
    """Settle whether the table is implicit (see :func:`from_df`); errors for settings that do not apply."""
    if implicit is None:
        implicit = weight is not None or (rating is None and len(ratings.columns) == 2)
    if not implicit:
        if threshold is not None:
            raise ConfigError("threshold applies to implicit=True (ratings used as interactions); pass implicit=True "
                              "or leave threshold out")
        return False, rating, None
    if threshold is not None:
        if rating is None and len(ratings.columns) < 3:
            raise ConfigError("threshold keeps the rows rated at least that much, but the table has no rating column")
        if not isinstance(threshold, (int, float, np.number)) or not math.isfinite(threshold):
            raise ConfigError(f"threshold must be a number (keep rows rated at least this), got {threshold!r}")
    return True, rating if rating is not None or threshold is None else str(ratings.columns[2]), threshold


def _interactions(frame: pd.DataFrame, rating: str | None, weight: str | None,
                  threshold: float | None) -> tuple[pd.DataFrame, str]:
    """Implicit rows: drop those rated below ``threshold``, then one weight column (1 by default)."""
    if rating is not None:
        frame[rating] = _clean_ratings(frame[rating], rating)
        if threshold is not None:
            frame = frame[frame[rating] >= threshold]
            if len(frame) == 0:
                raise DataError(f"no rating reaches threshold={threshold:g}; lower it")
        frame = frame.drop(columns=[rating])
    if weight is None:
        weight = IMPLICIT_COLUMN
        while weight in frame.columns:
            weight = "_" + weight
        frame[weight] = 1.0
    else:
        frame[weight] = _clean_ratings(frame[weight], weight)
        bad = frame[weight] <= 0
        if bad.any():
            raise DataError(f"column {weight!r} has {int(bad.sum())} weights that are not positive (e.g. "
                            f"{frame.loc[bad, weight].iloc[0]:g}); interaction weights must be > 0: drop those rows")
    return frame.reset_index(drop=True), weight


def _clean_ids(ids: pd.Series, name: str) -> pd.Series:
    n_missing = int(ids.isna().sum())
    if n_missing:
        raise DataError(f"column {name!r} has {n_missing} missing IDs; drop those rows first "
                        f"(df.dropna(subset=[{name!r}]))")
    if ids.dtype.kind == "f":
        if not np.all(np.isfinite(ids)) or not np.all(ids == np.floor(ids)):
            raise DataError(f"column {name!r} holds non-integer numbers; IDs must be integers or strings")
        return ids.astype(np.int64)
    if ids.dtype.kind == "b":
        return ids.astype(np.int64)
    if ids.dtype.kind in "mM":
        raise DataError(f"column {name!r} holds dates or durations; IDs must be integers or strings: convert it, "
                        f"e.g. df[{name!r}] = df[{name!r}].astype(str)")
    if ids.dtype == object:
        kinds = {("str" if isinstance(v, str) else "number" if isinstance(v, (int, float, np.number)) else
                  type(v).__name__) for v in ids.head(1_000_000)}
        odd = sorted(kinds - {"str", "number"})
        if odd:
            raise DataError(f"column {name!r} holds {odd[0]} values; IDs must be integers or strings (they are "
                            f"saved with the model and typed on the command line): convert it, e.g. "
                            f"df[{name!r}] = df[{name!r}].astype(str)")
        if len(kinds) > 1:
            raise DataError(f"column {name!r} mixes {' and '.join(sorted(kinds))} IDs (e.g. 7 and '7' would be "
                            f"different users); convert it to one type: df[{name!r}] = df[{name!r}].astype(str)")
    return ids


def _clean_ratings(values: pd.Series, name: str) -> pd.Series:
    if values.dtype.kind not in "iufb":
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() & values.notna()
        if bad.any():
            odd = values[bad].astype(str)
            examples = ", ".join(repr(v) for v in odd.unique()[:3])
            if bool(odd.str.fullmatch(r"[-+]?[0-9]*,[0-9]+").all()):
                raise DataError(f"column {name!r} has ratings with a decimal comma (e.g. {examples}); pass "
                                "decimal=',' or write them with a decimal point")
            raise DataError(f"column {name!r} has {int(bad.sum())} non-numeric ratings (e.g. {examples}); "
                            "fix or drop those rows, or check the rating column and separator")
        values = numeric
    values = values.astype(np.float64)
    big = np.isfinite(values) & (values.abs() > np.finfo(np.float32).max)
    if big.any():
        raise DataError(f"column {name!r} has {int(big.sum())} ratings beyond float32's range (e.g. "
                        f"{values[big].iloc[0]:g}); ratings are stored as float32: rescale or drop them")
    n_nan = int(values.isna().sum())
    if n_nan:
        raise DataError(f"column {name!r} has {n_nan} missing (NaN) ratings; drop them first "
                        f"(df.dropna(subset=[{name!r}]))")
    n_inf = int(np.isinf(values).sum())
    if n_inf:
        raise DataError(f"column {name!r} has {n_inf} infinite ratings; drop or fix those rows")
    return values


def _clean_times(values: pd.Series, name: str) -> pd.Series:
    """Timestamps as numbers: numbers are kept; dates and date strings (ISO 8601, or month first as
    pandas reads ``03/04/2020``) become seconds since 1970 (UTC); anything else is a ``DataError``."""
    if values.dtype.kind in "iuf":
        return values
    if values.dtype.kind == "b":
        raise DataError(f"column {name!r} holds booleans, not timestamps")
    if values.dtype.kind not in "mM":
        # a column of numbers that a few bad values made text: the numbers are still epochs, not bad dates
        numbers = pd.to_numeric(values, errors="coerce") if values.dtype.kind == "O" else None
        text = values if numbers is None else values[numbers.isna()]
        try:
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        except (ValueError, TypeError):
            parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
        if parsed.isna().any():  # other layouts, element by element (slower)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna()
        if bad.any():
            examples = ", ".join(repr(v) for v in text[bad].astype(str).unique()[:3])
            raise DataError(f"column {name!r} has {int(bad.sum())} timestamps that are neither numbers nor dates "
                            f"(e.g. {examples}); fix them, or leave timestamp out")
        if numbers is not None and numbers.notna().any():
            seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
            return numbers.astype(np.float64).fillna(seconds)
        values = parsed
    if values.dtype.kind == "m":
        raise DataError(f"column {name!r} holds durations, not timestamps")
    if getattr(values.dt, "tz", None) is None:
        values = values.dt.tz_localize("UTC")
    return (values - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


COUNT_LIKE_MAX, COUNT_LIKE_TAIL = 100.0, 50.0
"""A rating column looks like counts (plays, clicks) when its values are whole numbers >= 0, the largest
above :data:`COUNT_LIKE_MAX` (beyond any rating scale) and at least :data:`COUNT_LIKE_TAIL` times the
median (a heavy tail: a few users play a track thousands of times)."""


def looks_like_counts(values: pd.Series) -> bool:
    """Whether a column of numbers looks like counts rather than ratings (see :data:`COUNT_LIKE_MAX`)."""
    v = values.to_numpy(dtype=np.float64)
    if not len(v) or v.min() < 0 or not np.all(np.mod(v, 1) == 0):
        return False
    return bool(v.max() > COUNT_LIKE_MAX and v.max() >= COUNT_LIKE_TAIL * max(1.0, float(np.median(v))))


def _scale(values: pd.Series, name: str, rating_range: tuple[float, float] | None, *,
           counts_ok: bool = False) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    if rating_range is None:
        if not counts_ok and looks_like_counts(values):
            raise DataError(f"column {name!r} looks like counts, not ratings (whole numbers {lo:g} to {hi:g}, the "
                            f"largest {hi / max(1.0, float(values.median())):,.0f} times the median): pass it as the "
                            f"interaction weight (weight={name!r}), or declare the scale to use it as ratings "
                            f"(rating_range=({lo:g}, {hi:g}))")
        return (lo, hi)
    r_lo, r_hi = (float(v) for v in rating_range)
    if not (math.isfinite(r_lo) and math.isfinite(r_hi) and r_lo < r_hi):
        raise ConfigError(f"rating_range must be (low, high) with low < high, got {rating_range!r}")
    outside = (values < r_lo) | (values > r_hi)
    if outside.any():
        examples = ", ".join(f"{v:g}" for v in values[outside].unique()[:3])
        raise DataError(f"column {name!r} has {int(outside.sum())} ratings outside the declared range "
                        f"{r_lo:g}..{r_hi:g} (e.g. {examples}); fix them or widen rating_range")
    return (r_lo, r_hi)


def _dedupe(frame: pd.DataFrame, user: str, item: str, rating: str, timestamp: str | None,
            policy: Duplicates) -> tuple[pd.DataFrame, int]:
    key = pd.factorize(frame[user])[0].astype(np.int64) * (int(frame[item].nunique()) + 1) + pd.factorize(
        frame[item])[0]  # one int64 per (user, item): sorting it finds duplicates in little memory
    key.sort()
    if not (key[1:] == key[:-1]).any():
        return frame.reset_index(drop=True), 0
    del key
    dup = frame.duplicated([user, item], keep=False)
    n_extra = int(frame.duplicated([user, item]).sum())
    if policy == "error":
        row = frame[dup].index[0]
        u, i = frame.at[row, user], frame.at[row, item]  # the column's own type (a row mixes them into floats)
        raise DataError(f"{n_extra} duplicate (user, item) rows, e.g. user {_plain(u)!r} rated item {_plain(i)!r} "
                        "more than once; pass duplicates='mean' or duplicates='last' to merge them")
    if policy == "last":
        order = frame.sort_values(timestamp, kind="stable") if timestamp is not None else frame
        kept = order.drop_duplicates([user, item], keep="last").sort_index()
        return kept.reset_index(drop=True), n_extra
    agg: dict[str, str] = {rating: "sum" if policy == "sum" else "mean"}
    if timestamp is not None:
        agg[timestamp] = "max"
    merged = frame.groupby([user, item], sort=False, as_index=False).agg(agg)  # first-seen order
    return merged[frame.columns].reset_index(drop=True), n_extra


def _id_column_hint(table: pd.DataFrame, key: str, role: str, ids: pd.Series) -> str:
    """Which column of a side table holds the rated IDs: one with a row per ID whose values are most of
    the rated IDs (an ``id`` key), named with the option that picks it; else the closest name that is
    such a key (a ``WineryID`` column repeats across wines and is no ID of theirs)."""
    option = "item_id" if role == "items" else "user_id"
    rated = pd.Index(pd.unique(ids))
    best, share = None, 0.0
    for col in list(table.columns)[:50]:
        values = table[col]
        if values.duplicated().any() or values.isna().any():
            continue
        try:
            hit = float(pd.Index(values).isin(rated).mean()) if len(values) else 0.0
        except TypeError:  # unhashable values (lists)
            continue
        if hit > share:
            best, share = col, hit
    if best is not None and share >= 0.5:
        return (f" (its {str(best)!r} column has one row per ID and {share:.0%} of them are rated IDs: pass "
                f"{option}={str(best)!r})")
    name = closest_name(key, map(str, table.columns))
    if name is not None and name in table.columns and not table[name].duplicated().any():
        return f" (did you mean {name!r}?; pass {option}={name!r})"
    return (f" (name the column that holds the {role[:-1]} IDs with {option}='COLUMN'; columns are "
            f"{list(table.columns)[:10]})")


def _side_table(table: pd.DataFrame | None, key: str, role: str, *, ids: pd.Series) -> pd.DataFrame | None:
    """The metadata table indexed by ID, checked: one row per ID (which row would hold the titles and
    features?), IDs of the ratings' type, and rows at all (a warning when it covers no rated ID)."""
    if table is None:
        return None
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"{role} must be a DataFrame with a {key!r} column, got {type(table).__name__}")
    if key not in table.columns and table.index.name != key:
        raise ColumnError(f"the {role} table needs a {key!r} column (or index) to match the ratings"
                          f"{_id_column_hint(table, key, role, ids)}")
    own = table[key] if key in table.columns else table.index.to_series()
    repeated = own[own.duplicated()]
    if len(repeated):
        raise DataError(f"the {role} table has {repeated.nunique():,} {key!r} value(s) on several rows (e.g. "
                        f"{_plain(repeated.iloc[0])!r}); it needs one row per ID: drop or merge the repeats")
    numbers = ids.dtype.kind in "iu"
    if len(own) and numbers != (own.dtype.kind in "iu"):
        kind = {"f": "decimal numbers (a missing ID?)", "i": "whole numbers", "u": "whole numbers"}.get(
            own.dtype.kind, "text")
        raise DataError(f"the {role} table's IDs are {kind} (e.g. {_plain(own.iloc[0])!r}) where the ratings' are "
                        f"{'whole numbers' if numbers else 'text'}: give both the same type (e.g. read both as "
                        "text, or strip leading zeros)")
    covered = int(pd.Index(pd.unique(ids)).isin(own).sum())
    if not len(own):
        warnings.warn(f"the {role} table has no rows: no titles or side features come from it", DataWarning,
                      stacklevel=caller_level())
    elif covered == 0:
        warnings.warn(f"the {role} table ({len(own):,} rows) holds none of the rated IDs: no titles or side features "
                      f"come from it (is {key!r} its ID column?)", DataWarning, stacklevel=caller_level())
    return table.set_index(key) if key in table.columns else table


def _declared(columns: Sequence[str] | None, info: pd.DataFrame | None, side: Literal["user", "item"]
              ) -> tuple[str, ...] | None:
    """Declared feature columns, checked against the side's table."""
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    cols = tuple(columns)
    check_feature_columns(info, cols, side)
    return cols
