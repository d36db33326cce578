"""Answering from a saved model without torch or fastai: NumPy reads the file and scores with the models' formulas.

:func:`load_served` reads a model file (format 8 or later) into a :class:`Served`: the vocabularies, the tables
the model scores with (saved beside its weights, checked against them when torch loads the file) and the
training counts. :meth:`Served.predict` and :meth:`Served.recommend` answer as :func:`cflearn.predict` and
:func:`cflearn.recommend` do for raw user and item IDs, through the same formulas
(:mod:`cflearn._formula`) and the same labels (:mod:`cflearn.serve._answers`), so the answers agree
with torch's to float rounding. ``cflearn predict`` and ``cflearn recommend`` answer this way, starting in a
fraction of the time torch takes to import. New users (fold-in, user features), similar items and models
without tables (preset ``book_nn``, your own module) need :func:`cflearn.load`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._errors import check_count
from .._formula import blend_scores, item_item_scores, raw_scores, squash
from ..data._vocab import Vocab, encode_ids, item_titles
from ._answers import (
    allowed_items,
    chart_order,
    fallback_text,
    pair_lists,
    refuse_unknown_pairs,
    refuse_unknown_users,
    table_from_json,
    with_info,
)
from ._file import FORMAT_VERSION, KEY, digest, header_digest

__all__ = ["Served", "load_served"]

_PARTS = ("users", "user_bias", "items", "item_bias")


@dataclasses.dataclass(eq=False)
class Served:
    """A saved model as NumPy arrays: raw IDs in, raw IDs out, no torch (from :func:`load_served`).

    Attributes:
        users, items: vocabularies (index 0 = unknown ID).
        scale: ``(lowest, highest)`` rating of the training data.
        preset: the preset's name.
        score_kind, list_kind: what :meth:`predict`'s and :meth:`recommend`'s scores mean (as the model's
            :class:`cflearn.models.Contract` says).
        item_info: item metadata indexed by raw item ID (titles, genres), or ``None``.
        pairs, y_range: the tables a pair's score comes from (user vectors, user biases, item vectors, item
            biases; row 0 the unknown ID's) and the sigmoid range of its output (``None``: raw scores).
        lists: the tables that order top-N lists, or a closed-form (EASE) head's arrays (``hist_indptr``,
            ``hist_items``, ``keep``, ``weights``, ``floor``).
        mix: a blend's (preset ``rank``'s) two weights, EASE's and its learned head's (``pairs``, without the
            user bias), or ``None``; a pair's score is then its list's.
        seen_indptr, seen_items, item_counts: each user's training items (CSR) and each item's training count.
        trained_users, trained_items: a hybrid model's rows with training ratings (``None``: every row but 0).
        features_label: the ``fallback`` of a user known only from metadata.
    """

    users: Vocab
    items: Vocab
    scale: tuple[float, float]
    preset: str
    score_kind: str
    list_kind: str
    item_info: pd.DataFrame | None
    pairs: tuple[np.ndarray, ...]
    y_range: tuple[float, float] | None
    lists: tuple[np.ndarray, ...] | dict[str, np.ndarray]
    seen_indptr: np.ndarray
    seen_items: np.ndarray
    item_counts: np.ndarray
    trained_users: np.ndarray | None
    trained_items: np.ndarray | None
    features_label: str
    mix: tuple[float, float] | None = None

    def __repr__(self) -> str:
        return (f"Served(preset {self.preset!r}: {len(self.users) - 1:,} users x {len(self.items) - 1:,} items, "
                f"scores {self.score_kind}s, lists by {self.list_kind})")

    def _meta(self, trained: np.ndarray | None, codes: np.ndarray) -> np.ndarray:
        """Rows known only from metadata (a row but no training rating): scored by their features."""
        if trained is None:
            return np.zeros(len(codes), bool)
        return (codes > 0) & ~trained[codes]

    def predict(self, users: Any | Sequence[Any], items: Any | Sequence[Any], *, strict: bool = False,
                clip: bool = True) -> pd.DataFrame:
        """Scores of (user, item) pairs by raw ID, as :func:`cflearn.predict` gives them (unknown IDs scored as the
        average user or item, said in ``fallback``, or refused with ``strict``; ``attrs["score_kind"]`` says what
        ``score`` means; ``clip``: ratings clipped to the scale)."""
        users, items = pair_lists(users, items)
        u = encode_ids(self.users, users, "user")
        i = encode_ids(self.items, items, "item", titles=item_titles(self.item_info))
        if strict:
            refuse_unknown_pairs(users, items, u, i)
        if self.mix is not None:  # a blend: a pair's score is its list's, one list per user asked about
            scores = np.empty(len(u), np.float32)
            for user in np.unique(u):
                at = u == user
                scores[at] = self.list_scores(int(user))[i[at]]
        else:
            U, b_u, Q, b_i = self.pairs
            scores = squash(raw_scores(U[u], b_u[u], Q, b_i, i), self.y_range)
        if clip and self.score_kind == "rating":
            scores = np.clip(scores, *self.scale)
        fallback = fallback_text(u, i, user_meta=self._meta(self.trained_users, u),
                                 item_meta=self._meta(self.trained_items, i), user_label=self.features_label)
        frame = pd.DataFrame({"user": users, "item": items, "score": scores, "fallback": fallback})
        frame.attrs["score_kind"] = self.score_kind
        return frame

    def seen(self, user: int) -> np.ndarray:
        """Item indices the user (by index) rated in training."""
        if user <= 0 or user >= len(self.seen_indptr) - 1:
            return np.zeros(0, np.int64)
        return self.seen_items[self.seen_indptr[user]:self.seen_indptr[user + 1]]

    def list_scores(self, user: int) -> np.ndarray:
        """The scores that order a user's (by index) top-N list over every item."""
        if isinstance(self.lists, dict):  # an item-item (EASE) head: the user's item row times its weights
            hist = self.lists["hist_items"][self.lists["hist_indptr"][user]:self.lists["hist_indptr"][user + 1]]
            column = np.full(len(self.items), -1, np.int64)
            column[self.lists["keep"]] = np.arange(len(self.lists["keep"]))
            row = np.zeros((1, len(self.lists["keep"])), np.float32)
            col = column[hist]
            row[0, col[col >= 0]] = 1.0
            if self.mix is None:
                return item_item_scores(row, self.lists["weights"], self.lists["floor"], self.lists["keep"])[0]
            U, _, Q, b_i = self.pairs  # a blend: EASE's part and its learned head's (float32, as torch computes it)
            return blend_scores(row, self.lists["weights"], self.lists["floor"], self.lists["keep"], U[[user]], Q,
                                b_i, np.asarray(self.mix, np.float32))[0]
        U, b_u, Q, b_i = self.lists
        if self.list_kind == "rating":  # predicted ratings, clipped to the scale as predict gives them
            return np.clip(squash(raw_scores(U[[user]], b_u[[user]], Q, b_i), self.y_range)[0], *self.scale)
        return raw_scores(U[[user]], b_u[[user]], Q, b_i)[0]

    def recommend(self, user: Any, n: int = 10, *, exclude_seen: bool = True, candidates: Sequence[Any] | None = None,
                  min_ratings: int = 1, strict: bool = False) -> pd.DataFrame:
        """Top-``n`` items for a user by raw ID, best first, as :func:`cflearn.recommend` gives them, with its
        options (an unknown user gets the most popular items, ``fallback="popular"``, scored by their training
        counts, or is refused with ``strict``)."""
        check_count("n", n)
        u = int(encode_ids(self.users, [user], "user")[0])
        if strict and u == 0:
            refuse_unknown_users([user])
        codes = None if candidates is None else encode_ids(self.items, list(candidates), "item",
                                                           titles=item_titles(self.item_info))
        allowed = allowed_items(len(self.items), self.item_counts, codes, min_ratings)
        n_eff = min(int(n), int(allowed.sum()))
        if u == 0:
            top = chart_order(self.item_counts, allowed, n_eff)
            scores = self.item_counts[top].astype(np.float32)
            fallback = np.full(len(top), "popular", dtype=object)
        else:
            row = np.asarray(self.list_scores(u), np.float32).copy()
            row[~allowed] = -np.inf
            if exclude_seen:
                row[self.seen(u)] = -np.inf
            top = np.argsort(-row, kind="stable")[:n_eff]
            scores = row[top]
            fallback = np.repeat(fallback_text(np.array([u]), user_meta=self._meta(self.trained_users, np.array([u])),
                                               user_label=self.features_label), len(top))
        frame = pd.DataFrame({"rank": np.arange(1, len(top) + 1), "item": self.items.decode(top), "score": scores,
                              "fallback": fallback})
        if self.list_kind != self.score_kind and self.score_kind == "rating":  # two heads: the list, with ratings
            U, b_u, Q, b_i = self.pairs
            rated = squash(raw_scores(U[[u]], b_u[[u]], Q, b_i, top[None, :]), self.y_range)[0]
            frame.insert(3, "rating", np.clip(rated, *self.scale))
        frame.attrs["score_kind"] = self.list_kind
        frame = frame[np.isfinite(frame["score"].to_numpy())].reset_index(drop=True)
        return with_info(self.item_info, frame)


def load_served(path: str | Path) -> Served | None:
    """A model file read with NumPy for answering (:class:`Served`), or ``None`` where it needs
    :func:`cflearn.load`: a file of an older format, a model without tables, or anything the checks here do not
    pass (then :func:`cflearn.load` says what is wrong). Nothing is unpickled."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            header = f.metadata() or {}
            meta = json.loads(header[KEY])
            record = meta.get("serving")
            if meta.get("format") != "cflearn-model" or meta.get("format_version") != FORMAT_VERSION or \
                    not isinstance(record, dict):
                return None
            arrays = {k: f.get_tensor(k) for k in f.keys()}
        return _served(meta, record, arrays)
    except Exception:  # noqa: BLE001 - anything unexpected: cflearn.load reads the file and says what is wrong
        return None


def _csr_ok(indptr: np.ndarray, entries: np.ndarray, n_rows: int, lo: int, hi: int) -> bool:
    """Whether ``indptr`` offsets ``n_rows`` rows into ``entries``, every entry in ``[lo, hi)``."""
    return bool(len(indptr) == n_rows + 1 and indptr[0] == 0 and not (np.diff(indptr) < 0).any()
                and indptr[-1] == len(entries) and (entries.size == 0 or (entries.min() >= lo and entries.max() < hi)))


def _served(meta: dict[str, Any], record: dict[str, Any], arrays: dict[str, np.ndarray]) -> Served | None:
    """The checks of :func:`cflearn.load` that keep answers inside the arrays, then the :class:`Served`."""
    sums = meta.get("checksums")
    if meta.get("header_digest") != header_digest(meta) or not isinstance(sums, dict) or set(sums) != set(arrays) \
            or any(sums[k] != digest(a) for k, a in arrays.items()):
        return None
    users, items = (Vocab.from_arrays(str(meta[side]["kind"]), {k.split(".")[-1]: a for k, a in arrays.items()
                                                                if k.startswith(f"{KEY}.{side}.")})
                    for side in ("users", "items"))
    n_users, n_items = len(users), len(items)

    def table(names: dict[str, str]) -> tuple[np.ndarray, ...]:
        out = tuple(np.asarray(arrays[names[p]], np.float32) for p in _PARTS)
        U, b_u, Q, b_i = out[0], out[1].reshape(-1), out[2], out[3].reshape(-1)
        if U.shape[0] != n_users or len(b_u) != n_users or Q.shape[0] != n_items or len(b_i) != n_items or \
                U.shape[1] != Q.shape[1] or not all(np.isfinite(t).all() for t in (U, b_u, Q, b_i)):
            raise ValueError("the serving tables do not match the vocabularies")
        return U, b_u, Q, b_i

    pairs = table(record["pairs"])
    lists: tuple[np.ndarray, ...] | dict[str, np.ndarray]
    mix = None
    if "item_item" in record["lists"]:
        if "mix" in record["lists"]:
            mix = tuple(float(v) for v in np.asarray(arrays[record["lists"]["mix"]], np.float64).reshape(-1))
            if len(mix) != 2 or not all(math.isfinite(v) and v >= 0 for v in mix):
                return None
        lists = {k: arrays[v] for k, v in record["lists"]["item_item"].items()}
        indptr, hist, keep = (lists[k].astype(np.int64) for k in ("hist_indptr", "hist_items", "keep"))
        lists.update(hist_indptr=indptr, hist_items=hist, keep=keep)
        n_kept = len(keep)
        if not _csr_ok(indptr, hist, n_users, 0, n_items) or (keep.size and (keep.min() < 1 or keep.max() >= n_items)) \
                or lists["weights"].shape != (n_kept, n_kept) or lists["floor"].shape != (n_items,) \
                or not (np.isfinite(lists["weights"]).all() and np.isfinite(lists["floor"]).all()):
            return None
    else:
        lists = table(record["lists"]["tables"])
    indptr = arrays[f"{KEY}.seen_indptr"].astype(np.int64)
    seen = arrays[f"{KEY}.seen_items"].astype(np.int64)
    counts = arrays[f"{KEY}.item_counts"].astype(np.int64)
    if not _csr_ok(indptr, seen, n_users, 1, n_items) or len(counts) != n_items or \
            not np.array_equal(counts, np.bincount(seen, minlength=n_items)):
        return None
    trained: dict[str, np.ndarray | None] = {}
    for side, n in (("users", n_users), ("items", n_items)):
        name = record.get(f"trained_{side}")
        mask = None if name is None else np.asarray(arrays[name], bool)
        if mask is not None and mask.shape != (n,):
            return None
        trained[side] = mask
    scale = (float(meta["scale"][0]), float(meta["scale"][1]))
    y_range = None if record.get("y_range") is None else (float(record["y_range"][0]), float(record["y_range"][1]))
    if not all(math.isfinite(v) for v in scale) or scale[0] > scale[1]:
        return None
    item_info = table_from_json(meta.get("item_info"))
    return Served(users=users, items=items, scale=scale, preset=str((meta.get("preset") or {}).get("name", "")),
                  score_kind=str(record["score_kind"]), list_kind=str(record["list_kind"]), item_info=item_info,
                  pairs=pairs, y_range=y_range, lists=lists, seen_indptr=indptr, seen_items=seen,
                  item_counts=counts, trained_users=trained["users"], trained_items=trained["items"],
                  features_label=str(record.get("features_label", "user features")),
                  mix=None if mix is None else (mix[0], mix[1]))
