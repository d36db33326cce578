"""Vocabularies: raw user/item IDs <-> contiguous indices, both ways."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Vocab", "UNKNOWN", "encode_ids", "find_titles", "item_titles"]

UNKNOWN = "#na#"
"""Placeholder at index 0 of every vocabulary, as in fastai: unknown IDs map to row 0."""


class Vocab:
    """Sorted raw IDs with index 0 reserved for unknown IDs (fastai's ``#na#`` convention).

    Args:
        ids: the raw IDs seen in training (any hashable type of one kind; duplicates ignored).
            They are sorted, so the layout matches fastai's ``Categorify`` on the same IDs.
    """

    def __init__(self, ids: Sequence[Any] | np.ndarray | pd.Index):
        index = pd.Index(pd.Series(ids).unique()) if len(ids) else pd.Index([], dtype=object)
        try:
            index = index.sort_values()
        except TypeError:  # incomparable types: keep a stable, deterministic order
            index = pd.Index(sorted(index, key=lambda v: (type(v).__name__, str(v))))
        self._index = _wide(index)

    # -- raw -> index -------------------------------------------------------------------------
    def encode(self, raw: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
        """Indices (int64) of ``raw`` IDs; unknown IDs map to 0."""
        if not isinstance(raw, (pd.Series, pd.Index, np.ndarray)):
            raw = pd.Series(list(raw))  # not np.asarray: numpy's fixed-width strings drop trailing NULs
        pos = self._index.get_indexer(pd.Index(raw))
        return (pos + 1).astype(np.int64)  # -1 (missing) becomes 0

    def known(self, raw: Sequence[Any] | np.ndarray | pd.Series) -> np.ndarray:
        """Boolean mask: which of ``raw`` are in the vocabulary."""
        return self.encode(raw) > 0

    # -- index -> raw -------------------------------------------------------------------------
    def decode(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Raw IDs of indices ``idx`` (index 0 decodes to ``'#na#'``)."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"vocabulary index out of range 0..{len(self) - 1}")
        out = self._index.to_numpy()[np.clip(idx - 1, 0, None)] if len(self._index) else np.array([], object)
        if (idx == 0).any():
            out = out.astype(object)
            out[idx == 0] = UNKNOWN
        return out

    @property
    def ids(self) -> pd.Index:
        """The known raw IDs in index order (index ``i`` of the model is ``ids[i - 1]``)."""
        return self._index

    @property
    def itos(self) -> list[Any]:
        """fastai-style list: ``['#na#', id_1, id_2, ...]``."""
        return [UNKNOWN, *self._index.tolist()]

    def __len__(self) -> int:
        return len(self._index) + 1

    def __contains__(self, raw: Any) -> bool:
        return raw in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._index.equals(other._index)

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self._index[:5].tolist()))
        more = ", ..." if len(self._index) > 5 else ""
        return f"Vocab({len(self._index)} ids: [{head}{more}])"

    # -- JSON ---------------------------------------------------------------------------------
    def to_list(self) -> list[Any]:
        """Known raw IDs as plain Python values (JSON-ready)."""
        return [v.item() if isinstance(v, np.generic) else v for v in self._index.tolist()]

    def to_arrays(self) -> tuple[str, dict[str, np.ndarray]]:
        """The IDs as arrays for a model file (no size limit, unlike JSON in its header): ``("int",
        {"ids": int64})`` or ``("uint", {"ids": uint64 as int64 bits})``, or for text ``("str", {"bytes":
        UTF-8 of all IDs, "offsets": where each starts})``. :meth:`from_arrays` inverts it."""
        kind = self._index.dtype.kind
        if kind in "iu" and len(self._index):
            return ("int" if kind == "i" else "uint"), {"ids": self._index.to_numpy().view(np.int64).copy()}
        raw = self._index.tolist()
        text_kind = "str" if all(isinstance(v, str) for v in raw) else "bigint"  # ints beyond 64 bits: as text
        if text_kind == "bigint" and not all(isinstance(v, (int, np.integer)) for v in raw):
            raise ValueError("vocabulary IDs must be all integers or all strings to be saved")
        encoded = [str(v).encode("utf-8", "surrogatepass") for v in raw]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return text_kind, {"bytes": np.frombuffer(b"".join(encoded), np.uint8).copy(), "offsets": offsets}

    @classmethod
    def from_arrays(cls, kind: str, arrays: dict[str, np.ndarray]) -> Vocab:
        """Rebuild from :meth:`to_arrays` (``ValueError`` for damaged arrays)."""
        if kind in ("int", "uint"):
            ids = np.asarray(arrays["ids"], np.int64)
            return cls.from_list(ids.view(np.uint64).tolist() if kind == "uint" else ids.tolist())
        if kind not in ("str", "bigint"):
            raise ValueError(f"unknown vocabulary kind {kind!r}")
        blob, offsets = bytes(np.asarray(arrays["bytes"], np.uint8)), np.asarray(arrays["offsets"], np.int64)
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(blob) or (
                np.diff(offsets) < 0).any():
            raise ValueError("vocabulary offsets do not match its bytes")
        bounds = offsets.tolist()
        texts = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds[:-1], bounds[1:])]
        if kind == "bigint":
            return cls.from_list([int(t) for t in texts])
        vocab = cls.from_list(texts)
        vocab._index = pd.Index(texts, dtype=object) if texts else pd.Index([], dtype=object)
        return vocab

    @classmethod
    def from_list(cls, ids: list[Any]) -> Vocab:
        """Rebuild from :meth:`to_list` without re-sorting (the saved order is the model's)."""
        vocab = cls.__new__(cls)
        vocab._index = _wide(pd.Index(ids)) if ids else pd.Index([], dtype=object)
        if not vocab._index.is_unique:
            raise ValueError("vocabulary IDs are not unique")
        return vocab


def item_titles(info: pd.DataFrame | None) -> pd.Series | None:
    """The ``title`` column of an item metadata table (indexed by raw item ID), or ``None``."""
    return info["title"] if info is not None and "title" in info.columns else None


def find_titles(titles: pd.Series, text: str, n: int = 5) -> pd.Series:
    """Titles (indexed by raw ID) matching ``text``: exact (ignoring case), else containing it, else
    the closest spellings; at most ``n``."""
    folded = titles.astype(str).str.casefold()
    query = text.casefold().strip()
    exact = titles[folded == query]
    if len(exact):
        return exact
    bare = titles[folded.map(_bare_title) == _bare_title(query)]  # "toy story" is "Toy Story (1995)"
    if len(bare):
        return bare.head(n)
    contains = titles[folded.str.contains(query, regex=False)]
    if len(contains):
        return contains.head(n)
    close = difflib.get_close_matches(query, folded.tolist(), n=n, cutoff=0.6)
    return titles[folded.isin(close)].head(n)


def _bare_title(title: str) -> str:
    """A title without its year and leading article: "Matrix, The (1999)" and "the matrix" -> "matrix"."""
    title = re.sub(r"\s*\(\d{4}\)\s*$", "", title.strip())
    title = re.sub(r", (the|a|an)$", "", title)
    return re.sub(r"^(the|a|an) ", "", title)


def _wide(index: pd.Index) -> pd.Index:
    """Integer IDs as int64 (uint64 only beyond its range), so a vocabulary decodes to the same dtype
    whether it was built from an int16 column or loaded from a file."""
    kind = index.dtype.kind
    if kind == "i" or (kind == "u" and (len(index) == 0 or index.max() < 2**63)):
        return index.astype(np.int64)
    return index


def _kind(value: Any) -> str | None:
    """``"int"``, ``"str"`` or ``None`` (another type) for an ID value."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (str, np.str_)):
        return "str"
    return None


def encode_ids(vocab: Vocab, raw: Sequence[Any], role: str, *, titles: pd.Series | None = None) -> np.ndarray:
    """:meth:`Vocab.encode` that refuses an ID of the wrong type instead of treating it as unknown.

    ``'31'`` where the IDs are ints (or ``31`` where they are strings) is a mistake, not a new
    user or item: it raises :class:`cflearn.UnknownIDError` naming the fix; a string that is an
    item's title gets its ID suggested (``titles``: titles by raw item ID).
    """
    from .._errors import UnknownIDError

    series = pd.Series(list(raw), dtype=object)
    kinds = {k for k in (_kind(v) for v in vocab.ids[:1000].tolist()) if k is not None}
    want = kinds.pop() if len(kinds) == 1 else None
    fine = {"int": "integer", "str": "string"}
    if want is not None and pd.api.types.infer_dtype(series, skipna=True) != fine[want]:
        bad = next((v for v in series if _kind(v) not in (want, None)), None)
        if bad is not None:
            hint = f"pass {int(bad)!r}" if want == "int" and str(bad).strip().lstrip("-").isdigit() else \
                f"pass {str(bad)!r}" if want == "str" else "pass an ID"
            if titles is not None and want == "int" and isinstance(bad, str):
                found = find_titles(titles, bad, n=3)
                ids = [v.item() if hasattr(v, "item") else v for v in found.index]
                if len(found) == 1 and str(found.iloc[0]).casefold() == bad.casefold().strip():
                    hint = f"it is the title of item {ids[0]!r}: pass {ids[0]!r}"
                elif len(found):
                    hint = "titles like it: " + "; ".join(f"{t!r} (item {i!r})" for i, t in zip(ids, found))
            raise UnknownIDError(f"{role} {bad!r} is a {'string' if want == 'int' else 'number'}, but the {role} IDs "
                                 f"are {'ints' if want == 'int' else 'strings'}: {hint}")
    return vocab.encode(series)
