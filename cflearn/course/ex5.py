"""Exercises of lesson 5 (evaluation): RMSE, precision@k, a time split, recommending unseen items."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import metrics
from ._differential import agree, ranked_labels
from ._question import Question, Wrong, close, id_list, number, plain

__all__ = ["Rmse", "PrecisionAtK", "TimeSplit", "RecommendUnseen", "QUESTIONS"]


class Rmse(Question):
    title = "root mean squared error"
    names = ("rmse",)
    hint_text = "Read the name backwards: the error, squared, its mean, then the root."
    hint_more = "Square each error, take the mean, then the square root: `np.sqrt(np.mean((p - t) ** 2))`."
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
            raise Wrong(f"rmse({np.asarray(pred, float).tolist()}, {np.asarray(target, float).tolist()}) should be "
                        f"{want:.4g}, got {got:.4g}")
        agree("rmse", fn, metrics.rmse, _rmse_inputs(), _same_number("rmse"), names=("pred", "target"))
        return "the same as cflearn.metrics.rmse, also on generated lists and arrays."


# Relevant items exactly at position k and k + 1, a list shorter than k, an empty list, a user with no
# relevant item, and a user whose relevant items outnumber k.
_RECS = [["a", "b", "c", "d"], ["e", "f"], ["g", "h", "i"], ["a", "b", "x"], ["c", "d", "e", "f"], [],
         ["p", "q", "r", "s", "t"], ["u", "v", "w"]]
_REL = [{"b", "d", "i"}, {"f"}, set(), {"a", "b"}, {"z"}, {"a"}, {"p", "q", "r", "s", "t", "y"}, {"w"}]


def _precision_variants(k: int) -> dict[str, float]:
    """What common mistakes compute on the tricky example (one value per mistake)."""
    rows: dict[str, list[float]] = {"shorter": [], "recall": [], "untruncated": [], "zero": [], "k-1": [], "k+1": [],
                                    "hit": []}
    for recs, rel in zip(_RECS, _REL):
        hits = sum(r in rel for r in recs[:k])
        if not rel:
            rows["zero"].append(0.0)
            continue
        rows["shorter"].append(hits / max(len(recs[:k]), 1))
        rows["recall"].append(hits / len(rel))
        rows["untruncated"].append(sum(r in rel for r in recs) / k)
        rows["zero"].append(hits / k)
        rows["k-1"].append(sum(r in rel for r in recs[:k - 1]) / k)
        rows["k+1"].append(sum(r in rel for r in recs[:k + 1]) / k)
        rows["hit"].append(float(hits > 0))
    return {name: float(np.mean(v)) for name, v in rows.items()}


class PrecisionAtK(Question):
    title = "precision@k over users"
    names = ("precision_at_k",)
    hint_text = "Per user: how many of the first k recommended are relevant, out of k. Then a mean."
    hint_more = ("Per user: the relevant items among `recs[:k]`, divided by k (even when the list is "
                 "shorter). Skip users with no relevant item; average the rest.")
    wrong = (
        ("for r in recs[:k]) / k)", "for r in recs[:k]) / len(recs[:k]))", "k slots"),
        ("for r in recs[:k]) / k)", "for r in recs[:k]) / len(rel))", "recall"),
        ("        if rel:\n            scores", "        if True:\n            scores", "no relevant item"),
        ("for r in recs[:k]) / k)", "for r in recs) / k)", "first k"),
    )

    def verify(self) -> str:
        fn = self.answer("precision_at_k")
        for k in (3, 2, 1, 4):
            self._check(fn, k)
        agree("precision_at_k", fn, metrics.precision_at_k, _precision_inputs(), _same_number("precision_at_k"),
              names=("recommended", "relevant", "k"))
        return "the same as cflearn.metrics.precision_at_k, short lists and users without relevant items included."

    def _check(self, fn: Any, k: int) -> None:
        try:
            got = self.call(f"precision_at_k(recommended, relevant, {k})", fn, [list(r) for r in _RECS],
                            [set(r) for r in _REL], k)
        except Wrong as e:
            if "ZeroDivisionError" in str(e):
                raise Wrong("a user with an empty list made your answer divide by zero: an empty or short list still "
                            "has k slots, so divide the hits by k") from None
            raise
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise Wrong(f"precision_at_k returned {got!r}; return one number (the mean over users)") from None
        want = metrics.precision_at_k(_RECS, _REL, k)
        if close(got, want):
            return
        v = _precision_variants(k)
        n_scored = sum(bool(r) for r in _REL)
        messages = {
            "shorter": "a list shorter than k still has k slots: divide the hits by k, not by the list's length",
            "recall": "dividing by the number of relevant items gives recall@k; precision divides by k",
            "zero": "a user with no relevant item cannot be scored: skip them (cflearn's empty='skip') instead of "
                    "counting 0",
            "untruncated": "only the first k recommendations count: cut each list at k",
            "k-1": f"with k={k} your answer counts the first {k - 1} recommendations only: `recs[:k]` holds k items",
            "k+1": f"with k={k} your answer counts {k + 1} recommendations: `recs[:k]` holds k items",
            "hit": "this counts a user as 1 when any of the first k is relevant (the hit rate); precision counts the "
                   "relevant items among them and divides by k",
        }
        for name, words in messages.items():
            if close(got, v[name]):
                raise Wrong(words)
        if close(got, want * n_scored):
            raise Wrong("this is the sum over users; precision@k is their mean")
        raise Wrong(f"on a small example with k={k} the answer is {want:.4f}, got {got:.4f}")


def _ratings() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 200
    return pd.DataFrame({"user": rng.integers(1, 20, n), "item": rng.integers(1, 30, n),
                         "rating": rng.integers(1, 6, n).astype(float),
                         "timestamp": rng.permutation(np.arange(10**9, 10**9 + n * 1000, 1000))})


class TimeSplit(Question):
    title = "a time split: validate on the latest ratings"
    names = ("split_by_time",)
    hint_text = "Order the rows by time, then cut once: everything after the cut is the validation set."
    hint_more = ("Sort by timestamp (`df.sort_values('timestamp')`); the last `round(len(df) * valid_frac)` rows "
                 "are the validation set, the rest train. Cut at a position (`cut = len(df) - n_valid`): "
                 "`iloc[-0:]` is every row, not none.")
    wrong = (
        ("ordered = df.sort_values(\"timestamp\")", "ordered = df.sample(frac=1, random_state=0)", "older"),
        ("ordered = df.sort_values(\"timestamp\")", "ordered = df.sort_values(\"timestamp\", ascending=False)",
         "latest"),
        ("n_valid = round(len(df) * valid_frac)", "n_valid = round(len(df) * (1 - valid_frac))", "20%"),
    )

    def verify(self) -> str:
        fn = self.answer("split_by_time")
        for frac in (0.2, 0.5, 0.0, 1.0):
            self._check(fn, _ratings(), frac)
        agree("split_by_time", fn, _split_reference, _time_inputs(), _same_split, names=("df", "valid_frac"))
        return "every validation rating is newer than every training rating (also for valid_frac 0 and 1)."

    def _check(self, fn: Any, df: pd.DataFrame, frac: float) -> None:
        call = f"split_by_time(df, {frac})"
        out = self.call(call, fn, df.copy(), frac)
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(p, pd.DataFrame) for p in out)):
            raise Wrong(f"{call} returned {type(out).__name__}; return two DataFrames: (train, valid)")
        train, valid = out
        key = ["user", "item", "rating", "timestamp"]

        def rows(t: pd.DataFrame) -> list[tuple[Any, ...]]:
            if not set(key) <= set(t.columns):
                raise Wrong(f"{call}: train and valid should keep the columns of df ({key})")
            return sorted(map(tuple, t[key].itertuples(index=False)))

        want_valid = round(frac * len(df))
        if sorted(rows(train) + rows(valid)) != rows(df):
            raise Wrong(f"{call}: train ({len(train)} rows) and valid ({len(valid)}) should split the {len(df)} rows "
                        "of df: each row in exactly one of them, unchanged")
        if abs(len(valid) - frac * len(df)) > 1:
            if abs(len(train) - frac * len(df)) <= 1 and frac != 0.5:  # at 0.5 the sizes cannot tell
                raise Wrong(f"{call}: valid has {len(valid)} rows and train {len(train)}: valid is the latest "
                            f"{frac:.0%} of the rows (valid_frac, not 1 - valid_frac), returned second: (train, valid)")
            tip = " (with n_valid = 0, `iloc[:-0]` is empty and `iloc[-0:]` every row: cut at len(df) - n_valid)" \
                if frac == 0 else ""
            raise Wrong(f"{call}: valid has {len(valid)} of {len(df)} rows; it should hold {want_valid}{tip}")
        if len(train) and len(valid) and valid["timestamp"].min() < train["timestamp"].max():
            if valid["timestamp"].max() <= train["timestamp"].min():
                raise Wrong(f"{call}: valid holds the oldest ratings; a time split validates on the latest ones (the "
                            "future the model must predict)")
            raise Wrong(f"{call}: valid holds ratings older than train's newest: sort by timestamp (the whole table, "
                        "not each user) before cutting")


def _scores() -> tuple[pd.Series, set[Any]]:
    scores = pd.Series([4.8, 4.9, 3.0, 4.8, 2.0, 4.5, 4.8, 1.0], index=[11, 12, 13, 14, 15, 16, 17, 18])
    return scores, {12, 16}


def _untied() -> tuple[pd.Series, set[Any]]:
    scores = pd.Series([0.3, 2.2, 4.1, 3.7, 1.5, 4.4, 0.9, 2.8], index=[105, 101, 108, 103, 102, 107, 106, 104])
    return scores, {107, 106}


class RecommendUnseen(Question):
    title = "top-n unseen items"
    names = ("recommend_unseen",)
    hint_text = "Leave out what the user has seen first, then take the best n; the IDs are the Series' index."
    hint_more = ("Drop the seen items (`scores.drop(list(seen))` or a boolean mask), then `nlargest(n)`; return "
                 "the item IDs (the index), best first.")
    wrong = (
        ("scores.drop(list(seen), errors=\"ignore\")", "scores", "already rated"),
        (".nlargest(n)", ".nsmallest(n)", "lowest"),
        ("return top.index.tolist()", "return top.tolist()", "item IDs"),
    )

    def verify(self) -> str:
        fn = self.answer("recommend_unseen")
        for (scores, seen), n in ((_scores(), 3), (_untied(), 3), (_untied(), 1)):
            self._check(fn, scores, seen, n)
        agree("recommend_unseen", fn, _unseen_reference, _unseen_inputs(), _same_unseen, names=("scores", "seen", "n"))
        return "the best unseen items, best first (ties may come in any order)."

    def _check(self, fn: Any, scores: pd.Series, seen: set[Any], n: int) -> None:
        got = self.call(f"recommend_unseen(scores, seen, {n})", fn, scores.copy(), set(seen), n)
        got = id_list(got, f"recommend_unseen returned {got!r}; return a list of item IDs")
        if got and all(isinstance(v, float) for v in got) and set(got) <= set(scores.tolist()):
            raise Wrong("these are scores; return the item IDs (the Series' index) of the best items")
        if set(got) & seen:
            raise Wrong(f"the list has items the user already rated ({sorted(set(got) & seen)}); leave the seen "
                        "items out")
        if len(got) != n or len(set(got)) != n or not set(got) <= set(scores.index):
            raise Wrong(f"recommend_unseen(scores, seen, {n}) returned {got}; it should list {n} different item IDs")
        unseen = scores.drop(list(seen))
        vals = [float(unseen[i]) for i in got]
        if vals != sorted(vals, reverse=True) or max(unseen.drop(got), default=-math.inf) > min(vals):
            if set(got) == set(unseen.nsmallest(n).index):
                raise Wrong("these are the lowest-scored items; recommend the highest, best first")
            if max(unseen.drop(got), default=-math.inf) <= min(vals):
                raise Wrong(f"recommend_unseen(scores, seen, {n}) returned the right items in the wrong order (scores "
                            f"{vals}): best first")
            raise Wrong(f"{got} are not the {n} best unseen items in order (scores {vals})")


# -- generated inputs: what each question's words allow -------------------------------------------------------------
def _same_number(call: str) -> Any:
    def compare(got: Any, want: float, args: tuple[Any, ...]) -> str | None:
        value = number(got, call)
        if close(value, want, 1e-6):
            return None
        return f"your {call} gives {value:.6g} where the reference gives {want:.6g}"
    return compare


def _rmse_inputs() -> Any:
    from hypothesis import strategies as st

    half = st.integers(-6, 20).map(lambda k: k / 2)  # ratings and predictions, some outside any rating scale
    form = st.sampled_from([list, np.array])
    return st.integers(1, 8).flatmap(lambda n: st.tuples(
        st.builds(lambda f, v: f(v), form, st.lists(half, min_size=n, max_size=n)),
        st.builds(lambda f, v: f(v), form, st.lists(half, min_size=n, max_size=n))))


def _precision_inputs() -> Any:
    from hypothesis import strategies as st

    def users(items: list[Any]) -> Any:
        item = st.sampled_from(items)
        user = st.tuples(st.lists(item, unique=True, max_size=6), st.sets(item, max_size=4))
        return st.lists(user, min_size=1, max_size=6).filter(lambda us: any(rel for _, rel in us))

    alphabets: list[list[Any]] = [list("abcdefg"), [101, 7, 55, 3, 42, 9, 18]]
    return st.tuples(st.sampled_from(alphabets).flatmap(users), st.integers(1, 6)).map(
        lambda t: ([list(recs) for recs, _ in t[0]], [set(rel) for _, rel in t[0]], t[1]))


# timestamps of 6, 8, 9 and 10 digits: as text, "1000000000" sorts before "999999999"
_STAMPS = [999_999_999, 1_000_000_000, 86_400, 99_999_999, 964_982_703, 1_100_000_000, 1_537_799_250, 100_000_000]


def _time_inputs() -> Any:
    from hypothesis import strategies as st

    @st.composite
    def tables(draw: Any) -> pd.DataFrame:
        row = st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from([10, 20, 30]),
                        st.sampled_from([0.5, 1.0, 3.0, 4.5, 5.0]), st.sampled_from(_STAMPS))
        rows = draw(st.lists(row, min_size=1, max_size=12))  # duplicate rows and repeated timestamps included
        index = draw(st.lists(st.integers(0, 999), min_size=len(rows), max_size=len(rows), unique=True))  # gaps
        return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"], index=pd.Index(index, dtype="int64"))

    return st.tuples(tables(), st.sampled_from([0.5, 0.0, 1.0, 0.2, 0.25, 0.1, 0.8, 1 / 3]))


def _split_reference(df: pd.DataFrame, valid_frac: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    ordered = df.sort_values("timestamp", kind="stable")
    cut = len(df) - round(len(df) * valid_frac)
    return ordered.iloc[:cut], ordered.iloc[cut:]


def _same_split(got: Any, want: Any, args: tuple[Any, ...]) -> str | None:
    df, frac = args
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(p, pd.DataFrame) for p in got)):
        return f"your split_by_time returned {type(got).__name__}, not two DataFrames (train, valid)"
    train, valid = got
    cols = list(df.columns)
    for name, part in (("train", train), ("valid", valid)):
        if sorted(map(str, part.columns)) != sorted(cols):
            return f"{name} has the columns {list(part.columns)}; keep df's columns {cols}"
        changed = [c for c in cols if part[c].dtype != df[c].dtype]
        if changed:
            return (f"{name}'s column {changed[0]!r} is {part[changed[0]].dtype}, not {df[changed[0]].dtype} as in df: "
                    "return the rows unchanged")

    def rows(t: pd.DataFrame) -> list[tuple[Any, ...]]:
        return sorted(map(tuple, t[cols].itertuples(index=False)))

    if sorted(rows(train) + rows(valid)) != rows(df):
        return (f"train ({len(train)} rows) and valid ({len(valid)}) do not split the {len(df)} rows of df: each row "
                "belongs in exactly one of them, unchanged (duplicate rows too)")
    if abs(len(valid) - frac * len(df)) >= 1:
        return (f"with valid_frac={frac:g} valid has {len(valid)} of {len(df)} rows; it should hold {len(want[1])}: "
                "the latest valid_frac of the rows, counted in rows")
    if len(train) and len(valid) and valid["timestamp"].min() < train["timestamp"].max():
        return (f"valid holds a row with timestamp {plain(valid['timestamp'].min())}, older than train's newest "
                f"({plain(train['timestamp'].max())}): sort by the timestamps as numbers, then cut")
    return None


def _unseen_inputs() -> Any:
    from hypothesis import strategies as st

    @st.composite
    def cases(draw: Any) -> tuple[pd.Series, set[Any], int]:
        ids = draw(st.lists(st.integers(1, 500), min_size=1, max_size=9, unique=True))  # unsorted, with gaps
        if draw(st.booleans()):
            ids = [f"m{i}" for i in ids]
        values = draw(st.lists(st.sampled_from([3.5, 4.0, -1.0, 0.0, 2.5, 4.9, 5.5]), min_size=len(ids),
                               max_size=len(ids)))  # ties, and scores outside any rating scale
        seen = draw(st.sets(st.sampled_from(ids), max_size=len(ids) - 1))
        n = draw(st.integers(1, len(ids) - len(seen)))
        return pd.Series(values, index=ids, dtype=float), seen, n

    return cases()


def _unseen_reference(scores: pd.Series, seen: set[Any], n: int) -> list[Any]:
    return scores.drop(list(seen)).nlargest(n).index.tolist()


def _same_unseen(got: Any, want: list[Any], args: tuple[Any, ...]) -> str | None:
    scores, seen, n = args
    ids = ranked_labels(got, "recommend_unseen", scores.index, n, "the item IDs of scores' index")
    if set(ids) & seen:
        return (f"your recommend_unseen returned {ids}, which has items the user already rated "
                f"({sorted(set(ids) & seen, key=str)})")
    mine, best = [float(scores[i]) for i in ids], [float(scores[i]) for i in want]
    if mine != best:
        return (f"your recommend_unseen returned {ids} with scores {mine}; the best unseen items, best first, have "
                f"the scores {best} (e.g. {want}; tied items may come in any order)")
    return None


QUESTIONS: tuple[type[Question], ...] = (Rmse, PrecisionAtK, TimeSplit, RecommendUnseen)
"""The questions of exercise 5, in order: q1 to q4."""
