"""Train/validation splits, as row positions: random, by time, leave-last-n, cold users/items.

Every function returns ``(train_idx, valid_idx)``: sorted, disjoint int64 positions that
together cover every row once. Seeded functions give the same split for the same seed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from .._errors import ConfigError, DataError

__all__ = [
    "SplitName",
    "random_split",
    "time_split",
    "leave_last_n",
    "cold_split",
    "split_rows",
    "check_split",
]

SplitName = Literal["random", "time", "leave_last", "cold_users", "cold_items"]


def _check_pct(valid_pct: float) -> None:
    if not 0.0 <= valid_pct < 1.0:
        raise ConfigError(f"valid_pct must be in [0, 1), got {valid_pct!r}; e.g. valid_pct=0.2")


def _from_mask(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.flatnonzero(~valid).astype(np.int64), np.flatnonzero(valid).astype(np.int64)


def random_split(n: int, valid_pct: float = 0.2, seed: int | None = 42) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a random ``valid_pct`` of the rows (rounded; at least one row when ``valid_pct > 0``
    and there are two rows or more)."""
    _check_pct(valid_pct)
    n_valid = max(int(round(n * valid_pct)), 1 if valid_pct > 0 and n > 1 else 0)
    valid = np.zeros(n, dtype=bool)
    valid[np.random.default_rng(seed).permutation(n)[:n_valid]] = True
    return _from_mask(valid)


def time_split(timestamps: np.ndarray | pd.Series, valid_pct: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the latest ``valid_pct`` of the rows (a global cut in time; ties keep table order)."""
    _check_pct(valid_pct)
    ts = np.asarray(timestamps)
    n_valid = int(round(len(ts) * valid_pct))
    order = np.argsort(ts, kind="stable")
    valid = np.zeros(len(ts), dtype=bool)
    valid[order[len(ts) - n_valid :]] = True
    return _from_mask(valid)


def leave_last_n(
    users: np.ndarray | pd.Series, timestamps: np.ndarray | pd.Series, n: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out each user's ``n`` latest ratings; users with ``n`` or fewer ratings stay in train."""
    if n < 1:
        raise ConfigError(f"leave_last_n needs n >= 1, got {n}")
    frame = pd.DataFrame({"u": np.asarray(users), "t": np.asarray(timestamps)})
    frame["pos"] = np.arange(len(frame))
    frame = frame.sort_values(["u", "t", "pos"], kind="stable")
    rank_from_end = frame.groupby("u", sort=False).cumcount(ascending=False).to_numpy()
    count = frame.groupby("u", sort=False)["t"].transform("size").to_numpy()
    valid = np.zeros(len(frame), dtype=bool)
    valid[frame["pos"].to_numpy()] = (rank_from_end < n) & (count > n)
    return _from_mask(valid)


def cold_split(
    keys: np.ndarray | pd.Series, valid_pct: float = 0.2, seed: int | None = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole users (or items): a random ``valid_pct`` of the distinct ``keys``."""
    _check_pct(valid_pct)
    uniq, inverse = np.unique(pd.Series(keys).astype(str).to_numpy(), return_inverse=True)
    n_held = int(round(len(uniq) * valid_pct))
    held = np.zeros(len(uniq), dtype=bool)
    held[np.random.default_rng(seed).permutation(len(uniq))[:n_held]] = True
    return _from_mask(held[inverse])


def split_rows(
    frame: pd.DataFrame,
    how: SplitName,
    *,
    user: str,
    item: str,
    timestamp: str | None,
    valid_pct: float,
    seed: int | None,
    n_last: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch to one of the split functions by name (used by :func:`cflearn.from_df`)."""
    if how in ("time", "leave_last") and timestamp is None:
        raise ConfigError(f"split={how!r} needs a timestamp column: pass timestamp='your_time_column'")
    if how == "random":
        return random_split(len(frame), valid_pct, seed)
    if how == "time":
        return time_split(frame[timestamp], valid_pct)
    if how == "leave_last":
        return leave_last_n(frame[user], frame[timestamp], n_last)
    if how == "cold_users":
        return cold_split(frame[user], valid_pct, seed)
    if how == "cold_items":
        return cold_split(frame[item], valid_pct, seed)
    raise ConfigError(f"unknown split {how!r}; choose one of random, time, leave_last, cold_users, cold_items")


def check_split(train_idx: np.ndarray, n: int) -> None:
    """Raise a :class:`DataError` when a split leaves nothing to train on."""
    if len(train_idx) == 0:
        raise DataError(f"the split left no training rows out of {n}; lower valid_pct or add ratings")
