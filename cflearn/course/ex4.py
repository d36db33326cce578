"""Exercises of lesson 4 (hybrid and cold start): a title's year, genres as features, content-based
neighbours, and recommendations for a new user from their metadata."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..data._features import title_year
from ._differential import agree, ranked_labels
from ._question import Question, Wrong, id_list, plain

__all__ = ["ReleaseYear", "GenreMatrix", "ContentSimilar", "NewUser", "QUESTIONS"]

_TITLES = ["Heat (1995)", "Blade Runner 2049 (2017)", "(500) Days of Summer (2009)", "Les Misérables (1935) ",
           "Babylon 5", "1984 (1984)", "Woodstock (1969) (1970)", "Fawlty Towers (1975-1979)", "2001: A Space Odyssey"]


class ReleaseYear(Question):
    title = "the release year in a title"
    names = ("release_year",)
    hint_text = ("Look for four digits in brackets at the very end of the title (spaces after them allowed), not "
                 "anywhere in it.")
    hint_more = (r"A regular expression anchored at the end: `re.search(r'\((\d{4})\)\s*$', title)`; return "
                 "`int(match.group(1))`, or `None` when there is no match.")
    wrong = (
        (r'r"\((\d{4})\)\s*$"', r'r"(\d{4})"', "2049"),
        ("int(match.group(1))", "match.group(1)", "a number"),
        (r'r"\((\d{4})\)\s*$"', r'r"\((\d{4})\)$"', "space"),
    )

    def verify(self) -> str:
        fn = self.answer("release_year")
        for title in _TITLES:
            got = plain(self.call(f"release_year({title!r})", fn, title))
            year = title_year(pd.Series([title])).iloc[0]
            want = None if pd.isna(year) else int(year)
            if isinstance(got, str):
                raise Wrong(f"release_year({title!r}) returned the text {got!r}; return a number (int)")
            if got == want:
                continue
            if want is None:
                raise Wrong(f"{title!r} has no year in brackets at its end; return None")
            if title == "Blade Runner 2049 (2017)" and got == 2049:
                raise Wrong("for 'Blade Runner 2049 (2017)' you found 2049, part of the name; the year is the one "
                            "in brackets at the end of the title")
            if title.endswith(" ") and got is None:
                raise Wrong(f"{title!r} ends with a space after the year; allow trailing spaces (`\\s*$`)")
            if want is None and got is not None and "-" in title:
                raise Wrong(f"{title!r} ends with a range of years, not one release year: return None (match four "
                            "digits right after an opening bracket)")
            if title.startswith("Woodstock") and got == 1969:
                raise Wrong(f"for {title!r} you found the first year in brackets; the release year is the one at the "
                            "end of the title (anchor the pattern with `$`)")
            raise Wrong(f"release_year({title!r}) should be {want!r}, got {got!r}")
        agree("release_year", fn, _year_reference, _title_inputs(), _same_year, names=("title",))
        return "the year in brackets at the end of each title, as cflearn's year feature reads it."


def _genres() -> pd.Series:
    return pd.Series(["Action|Comedy", "Drama", "(no genres listed)", "Comedy|Drama|Romance", "Action"],
                     index=pd.Index([10, 20, 30, 40, 50], name="movieId"), name="genres")


class GenreMatrix(Question):
    title = "genres as a multi-hot matrix"
    names = ("genre_matrix",)
    hint_text = ("pandas can split a text column on a separator into 0/1 columns in one call; then remove what is "
                 "not a genre (a table may not have it).")
    hint_more = ("`genres.str.get_dummies(sep='|')` splits each movie's genres into 0/1 columns; then drop the "
                 "'(no genres listed)' column (`errors='ignore'`: not every table has one).")
    wrong = (
        ("    return onehot.drop(columns=\"(no genres listed)\", errors=\"ignore\")", "    return onehot",
         "not a genre"),
        ("onehot = genres.str.get_dummies(sep=\"|\")", "onehot = pd.get_dummies(genres).astype(int)", "several"),
    )

    def verify(self) -> str:
        fn = self.answer("genre_matrix")
        self._check(fn, _genres())
        self._check(fn, pd.Series(["Sci-Fi|Film-Noir", "Drama|Sci-Fi", "Children"], index=pd.Index(["a", "b", "c"]),
                                  name="genres"))
        agree("genre_matrix", fn, _genre_reference, _genre_inputs(), _same_matrix, names=("genres",))
        return "one 0/1 column per genre; a movie without genres is all zeros."

    def _check(self, fn: Any, genres: pd.Series) -> None:
        call = f"genre_matrix({genres.tolist()})"
        got = self.call(call, fn, genres.copy())
        if not isinstance(got, pd.DataFrame):
            raise Wrong(f"{call} returned {type(got).__name__}; return a DataFrame (one row per movie, one "
                        "column per genre)")
        if len(got) != len(genres) and len(got.columns) == len(genres):
            raise Wrong(f"{call} has one column per movie: one row per movie, one column per genre (not transposed)")
        if any("|" in str(c) for c in got.columns):
            raise Wrong(f"a column is named {next(str(c) for c in got.columns if '|' in str(c))!r}: each movie has "
                        "several genres; split on '|' so that each genre is one column")
        if "(no genres listed)" in got.columns:
            raise Wrong("'(no genres listed)' is not a genre: drop that column (such a movie has no genre at all)")
        want = genres.str.get_dummies(sep="|").drop(columns="(no genres listed)", errors="ignore")
        if sorted(map(str, got.columns)) != sorted(want.columns):
            raise Wrong(f"for {call} the columns should be the genres {sorted(want.columns)}, got "
                        f"{sorted(map(str, got.columns))}")
        if list(got.index) != list(want.index):
            raise Wrong(f"{call}: keep one row per movie, in the order and with the index of `genres` "
                        f"({list(want.index)}), got rows {list(got.index)}")
        values = got[want.columns].to_numpy(dtype=float)
        if not np.array_equal(values, want.to_numpy(dtype=float)):
            raise Wrong(f"{call}: each cell should be 1 where the movie has the genre and 0 elsewhere")
        _integer_cells(got)


def _onehot() -> pd.DataFrame:
    """Genre rows whose cosine ranking differs from the dot product's, Jaccard's, Pearson's and the
    Euclidean distance's for some query; items 101 and 102 are equal, so an item need not rank first
    among its own neighbours."""
    rows = {101: "A", 102: "A", 103: "A|B", 104: "A|B|C|D", 105: "A|B|E|F|G", 106: "C", 107: "A|C|D|E|F|G",
            108: "B|C", 109: "D|E"}
    return pd.Series(rows).str.get_dummies(sep="|")


_CONTENT_QUERIES = ((101, 3), (102, 3), (104, 4), (108, 2))


class ContentSimilar(Question):
    title = "content-based neighbours"
    names = ("content_similar",)
    hint_text = ("Cosine similarity: the dot product divided by both vectors' lengths. Keep the item labels "
                 "(not positions), and leave the item out by its label.")
    hint_more = ("`m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))`; put it in a Series indexed by "
                 "`onehot.index`, `.drop(item)`, then `nlargest(n)` and return the index as a list.")
    wrong = (
        ("    sims = pd.Series(sims, index=onehot.index).drop(item)", "    sims = pd.Series(sims, index=onehot.index)",
         "itself"),
        (" / (np.linalg.norm(m, axis=1) * np.linalg.norm(v) + 1e-12)", "", "cosine"),
        (".nlargest(n)", ".nsmallest(n)", "least"),
    )

    def verify(self) -> str:
        fn = self.answer("content_similar")
        onehot = _onehot()
        m = onehot.to_numpy(float)
        for item, n in _CONTENT_QUERIES:
            call = f"content_similar({item}, onehot, {n})"
            got = self.call(call, fn, item, onehot.copy(), n)
            got = id_list(got, f"{call} returned {got!r}; return a list of item IDs")
            v = onehot.loc[item].to_numpy(float)
            cos = pd.Series(m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v)), index=onehot.index).drop(item)
            want = cos.nlargest(n).round(9).tolist()
            if item in got:
                raise Wrong(f"{call} lists item {item} itself; leave it out by its label (it need not come first: "
                            "another item can have the same genres)")
            if len(got) != n or len(set(got)) != n:
                raise Wrong(f"{call} returned {got}; it should list {n} different item IDs")
            if not set(got) <= set(onehot.index):
                raise Wrong(f"{call} returned {got}; return labels of onehot's index ({list(onehot.index)}), not "
                            "positions")
            mine = [round(float(cos[i]), 9) for i in got]
            if mine == want:
                continue
            if sorted(mine, reverse=True) == want:
                raise Wrong(f"{call} returned the right items in the wrong order: best first")
            inter = m @ v
            rivals = {"the largest dot products, which favour movies with many genres: divide by both vectors' "
                      "lengths (cosine similarity)": pd.Series(inter, index=onehot.index),
                      "Jaccard similarity (shared genres over all genres of the two); the question asks for the "
                      "cosine similarity": pd.Series(inter / (m.sum(1) + v.sum() - inter), index=onehot.index),
                      "the dot product over the genre counts (L1 lengths); cosine divides by the Euclidean "
                      "lengths, `np.linalg.norm`": pd.Series(inter / (m.sum(1) * v.sum()), index=onehot.index),
                      "Euclidean distance, which favours movies with few genres; use the cosine similarity":
                          -pd.Series(np.linalg.norm(m - v, axis=1), index=onehot.index),
                      "Pearson correlation, not the cosine similarity": pd.Series(
                          [np.corrcoef(row, v)[0, 1] if row.std() > 0 else -2.0 for row in m], index=onehot.index)}
            for words, score in rivals.items():
                score = score.drop(item)
                if sorted(score[got].round(9), reverse=True) == score.nlargest(n).round(9).tolist():
                    raise Wrong(f"{call} returned {got}: these rank by {words}")
            if set(got) == set(cos.nsmallest(n).index):
                raise Wrong(f"{call} gives the least similar items; recommend the most similar, best first")
            raise Wrong(f"{call} returned {got} (cosine similarities {mine}); the best are {want}, best first")
        agree("content_similar", fn, _content_reference, _content_inputs(), _same_neighbours,
              names=("item", "onehot", "n"))
        return "the most similar items by cosine similarity of their genres, best first."


class NewUser(Question):
    title = "recommendations for a new user from their metadata"
    names = ("new_user_recs",)
    hint_text = "A new user has no ID the model knows, only their features: cflearn.recommend takes both."
    hint_more = ("`cflearn.recommend(learn, None, n=5, features={'group': 'g1'})`: no user ID, and the features "
                 "by name.")
    wrong = (
        ("new_user_recs = cflearn.recommend(learn, None, n=5, features={\"group\": \"g1\"})",
         "new_user_recs = cflearn.recommend(learn, 10**6, n=5)", "popular"),
        ("features={\"group\": \"g1\"}", "features={\"group\": \"g2\"}", "g1"),
        ("n=5,", "n=10,", "5"),
    )

    def verify(self) -> str:
        from ..serve._recommend import recommend

        recs = self.answer("new_user_recs")
        learn = self.answers.learner("learn")
        if learn is None:
            raise Wrong("the setup cell's `learn` is gone; run the notebook from the top")
        want = recommend(learn, None, n=5, features={"group": "g1"})
        if not isinstance(recs, pd.DataFrame):
            items = id_list(recs, f"new_user_recs is {type(recs).__name__}; store what cflearn.recommend returns (a "
                                  "DataFrame) or its list of item IDs")
            if items == [plain(v) for v in want["item"]]:
                return "the items scored from the new user's features (keep the DataFrame to see the fallback column)."
            raise Wrong(f"new_user_recs holds {items}: not the 5 items cflearn.recommend scores from the features "
                        "{'group': 'g1'}, best first; pass features=... and user=None")
        if "item" not in recs.columns:
            raise Wrong("new_user_recs has no `item` column; store what cflearn.recommend returns")
        fallback = recs["fallback"] if "fallback" in recs.columns else pd.Series([""] * len(recs))
        if (fallback == "popular").any():
            raise Wrong("these are the most popular items, the fallback for a user the model does not know; pass the "
                        "new user's metadata with features=... (and user=None)")
        if len(recs) != 5:
            raise Wrong(f"new_user_recs has {len(recs)} rows; recommend 5 items (n=5)")
        said = str(want["fallback"].iloc[0])  # "user features", or "user features + popular (50%)"
        if not (fallback == said).all():
            raise Wrong("these recommendations were not scored from the user's features; use features=...")
        if recs["item"].tolist() != want["item"].tolist():
            if sorted(recs["item"].tolist(), key=str) == sorted(want["item"].tolist(), key=str):
                raise Wrong("the right items in another order: keep cflearn.recommend's order (best first)")
            raise Wrong("these are recommendations for another user; the new user is in group 'g1'")
        return "scored from the new user's features: users like them, not the average user."


# -- generated inputs: what each question's words allow -------------------------------------------------------------
def _title_inputs() -> Any:
    from hypothesis import strategies as st

    names = st.sampled_from(["Heat", "Blade Runner 2049", "(500) Days of Summer", "1984", "Woodstock (1969)",
                             "Babylon 5", "Les Misérables", "Se7en", "2001: A Space Odyssey"])
    ends = st.sampled_from([" (1995)", "", " (2017)", " (1975-1979)", " (199)", " (19955)", " [1995]", " 1999",
                            " (1995) (2006)", "(2001)", " (1933a)"])
    return st.tuples(st.builds(lambda a, b, c: a + b + c, names, ends, st.sampled_from(["", " ", "   "])))


def _year_reference(title: str) -> int | None:
    year = title_year(pd.Series([title])).iloc[0]
    return None if pd.isna(year) else int(year)


def _same_year(got: Any, want: int | None, args: tuple[Any, ...]) -> str | None:
    if want is None:
        return None if got is None else f"your release_year gives {got!r} where the title has no release year: None"
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        return f"your release_year gives {got!r} ({type(got).__name__}); the year is an int, {want}"
    return None if got == want else f"your release_year gives {got!r}; the year in brackets at the end is {want}"


_GENRES = ["Action", "Comedy", "Sci-Fi", "Film-Noir", "Children", "Drama"]


def _labels(n: int) -> Any:
    """Index labels as a data set may have them: unsorted, with gaps, numbers or text."""
    from hypothesis import strategies as st

    ints = st.lists(st.integers(1, 999), min_size=n, max_size=n, unique=True)
    return st.one_of(ints, ints.map(lambda v: [f"m{i}" for i in v]))


def _genre_inputs() -> Any:
    from hypothesis import strategies as st

    movie = st.one_of(st.lists(st.sampled_from(_GENRES), min_size=1, max_size=4, unique=True).map("|".join),
                      st.just("(no genres listed)"))

    @st.composite
    def series(draw: Any) -> pd.Series:
        rows = draw(st.lists(movie, min_size=1, max_size=7))
        return pd.Series(rows, index=draw(_labels(len(rows))), name="genres")

    return st.tuples(series())


def _genre_reference(genres: pd.Series) -> pd.DataFrame:
    return genres.str.get_dummies(sep="|").drop(columns="(no genres listed)", errors="ignore")


def _integer_cells(got: pd.DataFrame) -> None:
    odd = [c for c in got.columns if not (pd.api.types.is_integer_dtype(got[c]) or pd.api.types.is_bool_dtype(got[c]))]
    if odd:
        raise Wrong(f"the column {odd[0]!r} holds {got[odd[0]].dtype} values; the matrix holds 0/1 (integers, or "
                    "True/False), not floats or text: `.astype(int)`")


def _same_matrix(got: Any, want: pd.DataFrame, args: tuple[Any, ...]) -> str | None:
    if not isinstance(got, pd.DataFrame):
        return f"your genre_matrix returned {type(got).__name__}, not a DataFrame"
    if sorted(map(str, got.columns)) != sorted(want.columns):
        return (f"your genre_matrix has the columns {sorted(map(str, got.columns))}; the genres are "
                f"{sorted(want.columns)}")
    if not got.index.equals(want.index):
        return f"your genre_matrix has the rows {list(got.index)}; keep genres' index {list(want.index)}, in its order"
    if not np.array_equal(got[want.columns].to_numpy(dtype=float), want.to_numpy(dtype=float)):
        return "your genre_matrix has a cell that is not 1 where the movie has the genre and 0 elsewhere"
    _integer_cells(got)
    return None


def _content_inputs() -> Any:
    from hypothesis import strategies as st

    @st.composite
    def cases(draw: Any) -> tuple[Any, pd.DataFrame, int]:
        k = draw(st.integers(1, 5))
        row = st.lists(st.integers(0, 1), min_size=k, max_size=k).filter(any)  # every movie has a genre
        rows = draw(st.lists(row, min_size=2, max_size=8))
        labels = draw(_labels(len(rows)))
        onehot = pd.DataFrame(rows, index=labels, columns=_GENRES[:k])
        return draw(st.sampled_from(labels)), onehot, draw(st.integers(1, len(rows) - 1))

    return cases()


def _cosines(item: Any, onehot: pd.DataFrame) -> pd.Series:
    m, v = onehot.to_numpy(float), onehot.loc[item].to_numpy(float)
    return pd.Series(m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v)), index=onehot.index).drop(item)


def _content_reference(item: Any, onehot: pd.DataFrame, n: int) -> list[Any]:
    return _cosines(item, onehot).nlargest(n).index.tolist()


def _same_neighbours(got: Any, want: list[Any], args: tuple[Any, ...]) -> str | None:
    item, onehot, n = args
    ids = ranked_labels(got, "content_similar", onehot.index, n, "labels of onehot's index")
    if item in ids:
        return f"your content_similar lists the item {item!r} itself"
    cos = _cosines(item, onehot)
    mine, best = [round(float(cos[i]), 9) for i in ids], [round(float(cos[i]), 9) for i in want]
    if mine != best:
        return (f"your content_similar returned {ids} with cosine similarities {mine}; the most similar, best first, "
                f"have {best} (e.g. {want}; tied items may come in any order)")
    return None


QUESTIONS: tuple[type[Question], ...] = (ReleaseYear, GenreMatrix, ContentSimilar, NewUser)
"""The questions of exercise 4, in order: q1 to q4."""
