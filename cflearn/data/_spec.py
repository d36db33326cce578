"""What :func:`cflearn.from_df` reads from a table, as one value: its columns, its split, whether it
holds interactions, and its side tables (:class:`DataSpec`). ``from_df``'s keywords are its front door."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from ._splits import SplitName

__all__ = ["DataSpec", "Duplicates"]

Duplicates = Literal["mean", "sum", "last", "error"]


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """How to read a ratings table: each field is the :func:`cflearn.from_df` argument of its name.

    Attributes:
        user, item, rating, timestamp: the columns (``None``: fastai's first, second and third columns;
            no timestamp).
        valid_pct, seed, split, n_last: the validation split.
        duplicates: repeated (user, item) rows: ``"mean"``, ``"sum"``, ``"last"`` or ``"error"``.
        rating_range: the declared rating scale.
        implicit, threshold, weight: interactions instead of ratings.
        items, item_id, item_title, item_features: the items table, its ID and title columns and the
            side features declared on it.
        users, user_id, user_features: the users table, its ID column and its side features.

    ``cflearn.from_df(table, spec=spec)`` reads a table with it; :meth:`replace` gives a changed copy.
    """

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    timestamp: str | None = None
    valid_pct: float = 0.2
    seed: int | None = 42
    split: SplitName = "random"
    n_last: int = 1
    duplicates: Duplicates | None = None
    rating_range: tuple[float, float] | None = None
    implicit: bool | None = None
    threshold: float | None = None
    weight: str | None = None
    items: pd.DataFrame | None = dataclasses.field(default=None, compare=False, repr=False)
    item_id: str | None = None
    item_title: str | None = None
    item_features: Sequence[str] | None = None
    users: pd.DataFrame | None = dataclasses.field(default=None, compare=False, repr=False)
    user_id: str | None = None
    user_features: Sequence[str] | None = None

    def replace(self, **changes: Any) -> DataSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
