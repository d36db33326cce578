"""Exercises of lesson 4 (hybrid and cold start): a title's year, genres as features, content-based
neighbours, and recommendations for a new user from their metadata."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._features import title_year
from ._question import Question, Wrong, id_list, plain

__all__ = ["ReleaseYear", "GenreMatrix", "ContentSimilar", "NewUser", "QUESTIONS"]

_TITLES = ["Heat (1995)", "Blade Runner 2049 (2017)", "(500) Days of Summer (2009)", "Les Misérables (1935) ",
           "Babylon 5", "1984 (1984)"]


class ReleaseYear(Question):
    title = "the release year in a title"
    names = ("release_year",)
    hint_text = (r"A regular expression anchored at the end: `re.search(r'\((\d{4})\)\s*$', title)`; return "
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
            raise Wrong(f"release_year({title!r}) should be {want!r}, got {got!r}")
        return "the year in brackets at the end of each title, as cflearn's year feature reads it."


def _genres() -> pd.Series:
    return pd.Series(["Action|Comedy", "Drama", "(no genres listed)", "Comedy|Drama|Romance", "Action"],
                     index=pd.Index([10, 20, 30, 40, 50], name="movieId"), name="genres")


class GenreMatrix(Question):
    title = "genres as a multi-hot matrix"
    names = ("genre_matrix",)
    hint_text = ("`genres.str.get_dummies(sep='|')` splits each movie's genres into 0/1 columns; then drop the "
                 "'(no genres listed)' column (`errors='ignore'`).")
    wrong = (
        ("    return onehot.drop(columns=\"(no genres listed)\", errors=\"ignore\")", "    return onehot",
         "not a genre"),
        ("onehot = genres.str.get_dummies(sep=\"|\")", "onehot = pd.get_dummies(genres).astype(int)", "several"),
    )

    def verify(self) -> str:
        fn = self.answer("genre_matrix")
        genres = _genres()
        got = self.call("genre_matrix(genres)", fn, genres.copy())
        if not isinstance(got, pd.DataFrame):
            raise Wrong(f"genre_matrix returned {type(got).__name__}; return a DataFrame (one row per movie, one "
                        "column per genre)")
        if any("|" in str(c) for c in got.columns):
            raise Wrong(f"a column is named {next(str(c) for c in got.columns if '|' in str(c))!r}: each movie has "
                        "several genres; split on '|' so that each genre is one column")
        if "(no genres listed)" in got.columns:
            raise Wrong("'(no genres listed)' is not a genre: drop that column (such a movie has no genre at all)")
        want = genres.str.get_dummies(sep="|").drop(columns="(no genres listed)")
        if sorted(map(str, got.columns)) != sorted(want.columns):
            raise Wrong(f"the columns should be the genres {sorted(want.columns)}, got {sorted(map(str, got.columns))}")
        if list(got.index) != list(want.index):
            raise Wrong("keep one row per movie, in the order and with the index of `genres`")
        values = got[want.columns].to_numpy(dtype=float)
        if not np.array_equal(values, want.to_numpy(dtype=float)):
            raise Wrong("each cell should be 1 where the movie has the genre and 0 elsewhere")
        return "one 0/1 column per genre; a movie without genres is all zeros."


def _onehot() -> pd.DataFrame:
    rows = {1: "Action", 2: "Action", 3: "Action|Comedy", 4: "Action|Comedy|Drama|Romance|Thriller",
            5: "Drama|Romance", 6: "Comedy", 7: "Action|Thriller"}
    return pd.Series(rows).str.get_dummies(sep="|")


class ContentSimilar(Question):
    title = "content-based neighbours"
    names = ("content_similar",)
    hint_text = ("Cosine similarity: `m @ v / (norm of each row * norm of v)`; put it in a Series indexed by "
                 "item, drop the item itself, then `nlargest(n)` and return the index as a list.")
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
        got = self.call("content_similar(1, onehot, 3)", fn, 1, onehot.copy(), 3)
        got = id_list(got, f"content_similar returned {got!r}; return a list of item IDs")
        if 1 in got:
            raise Wrong("the list holds the item itself (its similarity is 1); leave it out")
        if len(got) != 3 or not set(got) <= set(onehot.index):
            raise Wrong(f"content_similar(1, onehot, 3) returned {got}; it should list 3 other item IDs")
        v = m[0]
        cos = pd.Series(m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v)), index=onehot.index).drop(1)
        dot = pd.Series(m @ v, index=onehot.index).drop(1)
        want = sorted(cos.nlargest(3).round(9).tolist(), reverse=True)
        mine = [round(float(cos[i]), 9) for i in got]
        if mine == want:
            return "the most similar items by cosine similarity of their genres, best first."
        if set(got) == set(cos.nsmallest(3).index):
            raise Wrong("these are the least similar items; recommend the most similar, best first")
        if sorted(dot[got].tolist(), reverse=True) == sorted(dot.nlargest(3).tolist(), reverse=True):
            raise Wrong(f"{got} have the largest dot products, which favour movies with many genres (item 4 has "
                        "five); divide by both vectors' lengths (cosine similarity)")
        raise Wrong(f"{got} are not the 3 most similar items in order (cosine similarities {mine}, best {want})")


class NewUser(Question):
    title = "recommendations for a new user from their metadata"
    names = ("new_user_recs",)
    hint_text = ("`cflearn.recommend(learn, None, n=5, features={'group': 'g1'})`: a new user has no ID the "
                 "model knows, only their features.")
    wrong = (
        ("new_user_recs = cflearn.recommend(learn, None, n=5, features={\"group\": \"g1\"})",
         "new_user_recs = cflearn.recommend(learn, 10**6, n=5)", "popular"),
        ("features={\"group\": \"g1\"}", "features={\"group\": \"g2\"}", "g1"),
        ("n=5,", "n=10,", "5"),
    )

    def verify(self) -> str:
        from .._recommend import recommend

        recs = self.answer("new_user_recs")
        learn: Any = self.namespace.get("learn")
        if learn is None:
            raise Wrong("the setup cell's `learn` is gone; run the notebook from the top")
        if not isinstance(recs, pd.DataFrame) or "item" not in recs.columns:
            raise Wrong(f"new_user_recs is {type(recs).__name__}; it should be what cflearn.recommend returns (a "
                        "DataFrame)")
        fallback = recs["fallback"] if "fallback" in recs.columns else pd.Series([""] * len(recs))
        if (fallback == "popular").any():
            raise Wrong("these are the most popular items, the fallback for a user the model does not know; pass the "
                        "new user's metadata with features=... (and user=None)")
        if len(recs) != 5:
            raise Wrong(f"new_user_recs has {len(recs)} rows; recommend 5 items (n=5)")
        if not (fallback == "user features").all():
            raise Wrong("these recommendations were not scored from the user's features; use features=...")
        want = recommend(learn, None, n=5, features={"group": "g1"})
        if recs["item"].tolist() != want["item"].tolist():
            raise Wrong("these are recommendations for another user; the new user is in group 'g1'")
        return "scored from the new user's features: users like them, not the average user."


QUESTIONS: tuple[type[Question], ...] = (ReleaseYear, GenreMatrix, ContentSimilar, NewUser)
"""The questions of exercise 4, in order: q1 to q4."""
