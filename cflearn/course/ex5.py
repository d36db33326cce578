"""Exercises of lesson 5 (evaluation): RMSE, precision@k, a time split, recommending unseen items."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import metrics
from ._question import Question, Wrong, close, id_list

__all__ = ["Rmse", "PrecisionAtK", "TimeSplit", "RecommendUnseen", "QUESTIONS"]


class Rmse(Question):
    title = "root mean squared error"
    names = ("rmse",)
    hint_text = "Square each error, take the mean, then the square root: `np.sqrt(np.mean((p - t) ** 2))`."
    wrong = (
        ("return np.sqrt(np.mean((p - t) ** 2))", "return np.mean((p - t) ** 2)", "square root"),
        ("return np.sqrt(np.mean((p - t) ** 2))", "return np.mean(np.abs(p - t))", "absolute"),
        ("return np.sqrt(np.mean((p - t) ** 2))", "return np.sqrt(np.sum((p - t) ** 2))", "mean"),
    )

    def verify(self) -> str:
        fn = self.answer("rmse")
        cases: list[tuple[Any, Any]] = [([3.5, 4.0, 2.0, 5.0], [4.0, 4.0, 1.0, 3.0]),
                                        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), (np.array([2.5]), np.array([4.5]))]
        for pred, target in cases:
            got = self.call("rmse(pred, target)", fn, pred, target)
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise Wrong(f"rmse returned {got!r}; return one number") from None
            want = metrics.rmse(pred, target)
            if close(got, want):
                continue
            err = np.asarray(pred, float) - np.asarray(target, float)
            if close(got, float(np.mean(err**2))):
                raise Wrong(f"{got:.4g} is the mean squared error (MSE); RMSE is its square root, {want:.4g}")
            if close(got, float(np.mean(np.abs(err)))):
                raise Wrong(f"{got:.4g} is the mean absolute error (MAE); RMSE squares the errors first")
            if close(got, float(np.sqrt(np.sum(err**2)))):
                raise Wrong(f"{got:.4g} grows with the number of ratings: take the mean of the squared errors, not "
                            "their sum")
            raise Wrong(f"rmse({list(np.asarray(pred))}, {list(np.asarray(target))}) should be {want:.4g}, "
                        f"got {got:.4g}")
        return "the same as cflearn.metrics.rmse."


_RECS = [["a", "b", "c", "d"], ["e", "f"], ["g", "h", "i"], ["a", "b", "x"], ["c", "d", "e", "f"]]
_REL = [{"b", "d", "i"}, {"f"}, set(), {"a", "b"}, {"z"}]


def _precision_variants(k: int) -> dict[str, float]:
    """What common mistakes compute on the tricky example (one value per mistake)."""
    rows: dict[str, list[float]] = {"shorter": [], "recall": [], "untruncated": [], "zero": []}
    for recs, rel in zip(_RECS, _REL):
        hits = sum(r in rel for r in recs[:k])
        if not rel:
            rows["zero"].append(0.0)
            continue
        rows["shorter"].append(hits / len(recs[:k]))
        rows["recall"].append(hits / len(rel))
        rows["untruncated"].append(sum(r in rel for r in recs) / k)
        rows["zero"].append(hits / k)
    return {name: float(np.mean(v)) for name, v in rows.items()}


class PrecisionAtK(Question):
    title = "precision@k over users"
    names = ("precision_at_k",)
    hint_text = ("Per user: the relevant items among the first k recommended, divided by k (even when the list is "
                 "shorter). Skip users with no relevant item; average the rest.")
    wrong = (
        ("for r in recs[:k]) / k)", "for r in recs[:k]) / len(recs[:k]))", "k slots"),
        ("for r in recs[:k]) / k)", "for r in recs[:k]) / len(rel))", "recall"),
        ("        if rel:\n            scores", "        if True:\n            scores", "no relevant item"),
        ("for r in recs[:k]) / k)", "for r in recs) / k)", "first k"),
    )

    def verify(self) -> str:
        fn = self.answer("precision_at_k")
        k = 3
        got = self.call("precision_at_k(recommended, relevant, 3)", fn, [list(r) for r in _RECS],
                        [set(r) for r in _REL], k)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise Wrong(f"precision_at_k returned {got!r}; return one number (the mean over users)") from None
        want = metrics.precision_at_k(_RECS, _REL, k)
        if close(got, want):
            return "the same as cflearn.metrics.precision_at_k, short lists and users without relevant items included."
        v = _precision_variants(k)
        if close(got, v["shorter"]):
            raise Wrong("a list shorter than k still has k slots: divide the hits by k, not by the list's length")
        if close(got, v["recall"]):
            raise Wrong("dividing by the number of relevant items gives recall@k; precision divides by k")
        if close(got, v["zero"]):
            raise Wrong("a user with no relevant item cannot be scored: skip them (cflearn's empty='skip') instead of "
                        "counting 0")
        if close(got, v["untruncated"]):
            raise Wrong("only the first k recommendations count: cut each list at k")
        raise Wrong(f"on a small example with k=3 the answer is {want:.4f}, got {got:.4f}")


def _ratings() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 200
    return pd.DataFrame({"user": rng.integers(1, 20, n), "item": rng.integers(1, 30, n),
                         "rating": rng.integers(1, 6, n).astype(float),
                         "timestamp": rng.permutation(np.arange(10**9, 10**9 + n * 1000, 1000))})


class TimeSplit(Question):
    title = "a time split: validate on the latest ratings"
    names = ("split_by_time",)
    hint_text = ("Sort by timestamp (`df.sort_values('timestamp')`); the last `round(len(df) * valid_frac)` rows "
                 "are the validation set, the rest train.")
    wrong = (
        ("ordered = df.sort_values(\"timestamp\")", "ordered = df.sample(frac=1, random_state=0)", "older"),
        ("ordered = df.sort_values(\"timestamp\")", "ordered = df.sort_values(\"timestamp\", ascending=False)",
         "latest"),
        ("n_valid = round(len(df) * valid_frac)", "n_valid = round(len(df) * (1 - valid_frac))", "20%"),
    )

    def verify(self) -> str:
        fn = self.answer("split_by_time")
        df = _ratings()
        out = self.call("split_by_time(df, 0.2)", fn, df.copy(), 0.2)
        if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(p, pd.DataFrame) for p in out)):
            raise Wrong(f"split_by_time returned {type(out).__name__}; return two DataFrames: (train, valid)")
        train, valid = out
        if len(train) + len(valid) != len(df) or set(train.index) & set(valid.index):
            raise Wrong(f"train ({len(train)} rows) and valid ({len(valid)}) should split the {len(df)} rows: each "
                        "row in exactly one of them")
        if abs(len(valid) - 0.2 * len(df)) > 1:
            raise Wrong(f"valid has {len(valid)} of {len(df)} rows; with valid_frac=0.2 it should hold 20% "
                        f"({round(0.2 * len(df))})")
        if valid["timestamp"].min() < train["timestamp"].max():
            if valid["timestamp"].max() <= train["timestamp"].min():
                raise Wrong("valid holds the oldest ratings; a time split validates on the latest ones (the "
                            "future the model must predict)")
            raise Wrong("valid holds ratings older than train's newest: sort by timestamp before cutting")
        return "every validation rating is newer than every training rating."


def _scores() -> tuple[pd.Series, set[Any]]:
    scores = pd.Series([4.8, 4.9, 3.0, 4.8, 2.0, 4.5, 4.8, 1.0], index=[11, 12, 13, 14, 15, 16, 17, 18])
    return scores, {12, 16}


class RecommendUnseen(Question):
    title = "top-n unseen items"
    names = ("recommend_unseen",)
    hint_text = ("Drop the seen items (`scores.drop(list(seen))` or a boolean mask), then `nlargest(n)`; return "
                 "the item IDs (the index), best first.")
    wrong = (
        ("scores.drop(list(seen), errors=\"ignore\")", "scores", "already rated"),
        (".nlargest(n)", ".nsmallest(n)", "lowest"),
        ("return top.index.tolist()", "return top.tolist()", "item IDs"),
    )

    def verify(self) -> str:
        fn = self.answer("recommend_unseen")
        scores, seen = _scores()
        got = self.call("recommend_unseen(scores, seen, 3)", fn, scores.copy(), set(seen), 3)
        got = id_list(got, f"recommend_unseen returned {got!r}; return a list of item IDs")
        if got and all(isinstance(v, float) for v in got) and set(got) <= set(scores.tolist()):
            raise Wrong("these are scores; return the item IDs (the Series' index) of the best items")
        if set(got) & seen:
            raise Wrong(f"the list has items the user already rated ({sorted(set(got) & seen)}); leave the seen "
                        "items out")
        if len(got) != 3 or len(set(got)) != 3 or not set(got) <= set(scores.index):
            raise Wrong(f"recommend_unseen(scores, seen, 3) returned {got}; it should list 3 different item IDs")
        unseen = scores.drop(list(seen))
        vals = [float(unseen[i]) for i in got]
        if vals != sorted(vals, reverse=True) or max(unseen.drop(got), default=-math.inf) > min(vals):
            if vals == sorted(unseen.nsmallest(3).tolist()) or set(got) == set(unseen.nsmallest(3).index):
                raise Wrong("these are the lowest-scored items; recommend the highest, best first")
            raise Wrong(f"{got} are not the 3 best unseen items in order (scores {vals})")
        return "the best unseen items, best first (ties may come in any order)."


QUESTIONS: tuple[type[Question], ...] = (Rmse, PrecisionAtK, TimeSplit, RecommendUnseen)
"""The questions of exercise 5, in order: q1 to q4."""
