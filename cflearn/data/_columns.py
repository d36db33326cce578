"""Finding the columns a ratings table's roles name (user, item, rating, weight, timestamp), with the
hint a misspelt or glued header needs. Pandas only: the command line checks a table with it before
torch loads."""

from __future__ import annotations

import pandas as pd

from .._errors import ColumnError, closest

__all__ = ["find_column"]

_ROLE_WORDS = {
    "user": ("user", "uid", "customer", "member", "reader", "person"),
    "item": ("item", "iid", "movie", "product", "book", "song", "track", "article"),
    "rating": ("rating", "score", "stars", "value", "grade", "label"),
    "timestamp": ("time", "date", "ts", "when"),
}


def find_column(df: pd.DataFrame, name: str | None, default_pos: int | None, role: str) -> str:
    """The column ``name`` of ``df`` for ``role`` (or the one at ``default_pos`` when ``name`` is
    ``None``); a :class:`ColumnError` with the closest name, a separator or header hint otherwise."""
    if name is None:
        return str(df.columns[default_pos or 0])
    if name not in df.columns:
        names = [str(c) for c in df.columns]
        hint = closest(str(name), names)
        glued = next((c for c in names if str(name) in c and any(sep in c for sep in ",;\t|")), None)
        if glued is not None:
            sep = next(sep for sep in ",;\t|" if sep in glued)
            hint = f" (wrong separator? the header reads {glued!r}: pass sep={sep!r})"
        elif len(names) > 1 and all(_is_number(c) for c in names):
            hint = (" (the first row looks like data, not column names: the file has no header row; use "
                    "`cflearn fit --no-header` with columns 0, 1, 2..., or read_ratings(path, header=None))")
        elif not hint:
            fits = [c for c in names if any(w in c.lower() for w in _ROLE_WORDS[role])]
            hint = f" (did you mean '{fits[0]}'?)" if fits else ""
        raise ColumnError(f"no {role} column {name!r} in the table{hint}; columns are {list(df.columns)}")
    return name


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
