"""Exercises of lesson 0 (from scratch): encode IDs, a dot-product model, y_range, biases and a sigmoid."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ._differential import agree
from ._question import Question, Wrong, diagnose, known, per_row, plain, require_init, squash, squash_mistakes
from ._remote import Layer, Model
from ._training import trains_like

__all__ = ["EncodeIds", "EmbeddingDotModel", "PaddedRange", "DotBiasModel", "QUESTIONS"]


def setup_ratings() -> pd.DataFrame:
    """The table the exercise's setup cell loads (the checks build their own: what the notebook
    did to its copy does not change what the answers are checked against)."""
    from ..datasets import synthetic

    ratings = synthetic(60, 40, density=0.3, seed=0).ratings
    ratings["user"] = ratings.user * 7 + 100
    return ratings


def _ratings(q: Question) -> pd.DataFrame:
    return setup_ratings()


class EncodeIds(Question):
    title = "raw user IDs -> contiguous rows and back"
    names = ("user2idx", "idx2user")
    hint_text = "An embedding with n rows is indexed 0..n-1: number the distinct users in sorted order."
    hint_more = ("`sorted(ratings.user.unique())` lists each user once, in order; `enumerate` numbers them from 0. "
                 "The inverse goes from a row back to its ID: swap keys and values (or keep the sorted list).")
    wrong = (
        ("{u: i for", "{u: i + 1 for", "start at 0"),
        ("{i: u for u, i in", "{u: i for u, i in", "swap"),
        ("unique())", "unique()[:10])", "missing"),
        ("sorted(ratings.user.unique())", "ratings.user.unique()", "sorted"),
    )

    def verify(self) -> str:
        fwd, back = self.answer("user2idx"), self.answer("idx2user")
        if not isinstance(fwd, dict):
            raise Wrong(f"`user2idx` is a {type(fwd).__name__}; build a dict from each user ID to its row")
        users = set(_ratings(self)["user"].tolist())
        missing, extra = users - set(fwd), set(fwd) - users
        if missing:
            raise Wrong(f"{len(missing)} user IDs of `ratings` are missing from `user2idx` (e.g. "
                        f"{plain(min(missing))}); every user needs a row")
        if extra:
            raise Wrong(f"`user2idx` has {len(extra)} keys that are not users of `ratings` (e.g. "
                        f"{plain(min(extra, key=str))!r}); its keys are the user IDs as they are in `ratings`")
        odd = next((v for v in fwd.values() if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None)
        if odd is not None:
            raise Wrong(f"`user2idx` maps to {odd!r} ({type(odd).__name__}); a row number is an int (an embedding is "
                        "indexed 0, 1, 2, ...)")
        rows = sorted(plain(v) for v in fwd.values())
        if rows != list(range(len(users))):
            if rows and rows[0] == 1 and rows == list(range(1, len(users) + 1)):
                raise Wrong("the rows start at 1: an embedding with n rows is indexed 0..n-1, so start at 0 "
                            "(enumerate already does)")
            raise Wrong(f"the rows should be 0..{len(users) - 1}, each used once; got {len(set(rows))} distinct "
                        f"rows from {rows[0]} to {rows[-1]}")
        order = sorted(users)
        for i, u in enumerate(order):
            if plain(fwd[u]) != i:
                raise Wrong(f"user {plain(u)!r} is the {_nth(i + 1)} smallest ID but has row {plain(fwd[u])}: number "
                            "the users in sorted ID order (`sorted(ratings.user.unique())`)")
        if isinstance(back, dict) and set(back) == users and len(users) > 1:
            raise Wrong("`idx2user`'s keys are user IDs: it goes the other way, from a row back to its user ID (swap "
                        "user2idx's keys and values)")
        try:
            if len(back) != len(users):
                raise Wrong(f"`idx2user` has {len(back)} entries for {len(users)} users; one per row")
            for u, i in fwd.items():
                if plain(back[i]) == u and type(plain(back[i])) is not type(plain(u)):
                    raise Wrong(f"idx2user[user2idx[{plain(u)!r}]] is {plain(back[i])!r} "
                                f"({type(plain(back[i])).__name__}); the ID in `ratings` is {plain(u)!r} "
                                f"({type(plain(u)).__name__}): give the IDs back as they are")
                if plain(back[i]) != u:
                    raise Wrong(f"idx2user[user2idx[{plain(u)!r}]] is {plain(back[i])!r}, not {plain(u)!r}: idx2user "
                                "goes from a row back to its user ID (swap user2idx's keys and values)")
        except (KeyError, IndexError, TypeError) as e:
            raise Wrong(f"`idx2user` ({type(back).__name__}) cannot be read at every row 0..{len(users) - 1} "
                        f"({type(e).__name__}: {e}); make it a dict from row to user ID, or a list") from None
        return f"{len(users)} users map to rows 0..{len(users) - 1} in sorted ID order, and back."


def _nth(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _by_shape(model: Model, cls: str, shapes: dict[str, tuple[int, int]]) -> dict[str, Layer]:
    found = {e.shape: e for e in model.embeddings()}
    out = {}
    for what, shape in shapes.items():
        if shape not in found:
            have = ", ".join(f"nn.Embedding{s}" for s in found) or "none"
            raise Wrong(f"{cls}({', '.join(map(str, _ARGS[cls]))}) needs an nn.Embedding{shape} for the {what}; "
                        f"it has {have}")
        out[what] = found[shape]
    return out


_ARGS: dict[str, tuple[Any, ...]] = {"EmbeddingDot": (7, 5, 3), "DotBias": (7, 5, 3, (0.5, 5.5))}
_USERS, _ITEMS = torch.tensor([0, 1, 6, 2]), torch.tensor([4, 0, 1, 1])


class EmbeddingDotModel(Question):
    title = "EmbeddingDot: a dot product of embeddings"
    names = ("EmbeddingDot",)
    hint_text = ("A dot product multiplies two vectors number by number and adds the products up; do that for "
                 "every row of the batch at once.")
    hint_more = ("In __init__: two `nn.Embedding(rows, n_factors)`, then `.weight.data.uniform_(0, 0.05)` on each. "
                 "In forward: look up both, multiply elementwise, sum over the factors: `.sum(1)`.")
    wrong = (
        (").sum(1)", ")", "sum over the factors"),
        ("(self.user_factors(users) * self.movie_factors(movies)).sum(1)",
         "self.user_factors(users) @ self.movie_factors(movies).T", "elementwise"),
        ("uniform_(0, 0.05)", "normal_()", "small and positive"),
    )

    def verify(self) -> str:
        cls = self.answer("EmbeddingDot")
        model = require_init(self.call("EmbeddingDot(7, 5, 3)", cls, 7, 5, 3), "EmbeddingDot")
        emb = _by_shape(model, "EmbeddingDot", {"users": (7, 3), "movies": (5, 3)})
        for what, e in emb.items():
            lo, hi = float(e.weight.min()), float(e.weight.max())
            if lo < 0 or hi > 0.05:
                raise Wrong(f"the {what}' factors start in [{lo:.3f}, {hi:.3f}]; start them small and positive: "
                            "`.weight.data.uniform_(0, 0.05)`")
            if hi - lo < 0.01:  # 15 or more draws of uniform(0, 0.05) spread wider, all but never
                raise Wrong(f"the {what}' factors all start at about {lo:.3f}: start them at random, uniform in (0, "
                            "0.05) (`.weight.data.uniform_(0, 0.05)`); vectors that start equal get equal gradients "
                            "and stay alike")
        U, M = known((7, 3), 0.0), known((5, 3), 1.0)
        run = self.call("forward", model.run, {emb["users"].index: U, emb["movies"].index: M}, _USERS, _ITEMS)
        out, note = per_row(run.out, len(_USERS))
        expected = (U[_USERS] * M[_ITEMS]).sum(1)
        diagnose(out, expected, [
            ((U[_USERS] * M[_ITEMS]).mean(1), "forward averages the products over the factors; a dot product sums "
                                              "them: `.sum(1)`"),
            ((U[_USERS] * U[_ITEMS]).sum(1), "forward looks the movies up in the users' table: use "
                                             "`self.movie_factors(movies)`"),
            ((M[_USERS % 5] * M[_ITEMS]).sum(1), "forward looks the users up in the movies' table: use "
                                                 "`self.user_factors(users)`"),
        ], "with known weights, forward should return each user's and movie's dot product")
        agree("EmbeddingDot", lambda nu, nm, nf, *_: cls(nu, nm, nf), lambda *_: None, _model_inputs(False),
              _learns_like_dot, examples=40, describe=_batch)
        return "forward is the dot product of the user's and the movie's factors" + (note or ".")


class PaddedRange(Question):
    title = "y_range for a sigmoid"
    names = ("y_range",)
    hint_text = "A sigmoid approaches its ends but never reaches them."
    hint_more = ("Take the lowest and highest rating "
                 "and widen the range by about 0.5 on each side.")
    wrong = (
        ("", "y_range = (ratings.rating.min(), ratings.rating.max())", "never reaches"),
        ("", "y_range = (0, 10)", "wider"),
        ("", "y_range = (ratings.rating.max() + 0.5, ratings.rating.min() - 0.5)", "lowest first"),
    )

    def verify(self) -> str:
        value = self.answer("y_range")
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise Wrong(f"`y_range` is {value!r}; it should be a pair of numbers (low, high)") from None
        r = _ratings(self)["rating"]
        rmin, rmax = float(r.min()), float(r.max())
        if lo > hi:
            raise Wrong(f"y_range is ({lo:g}, {hi:g}): give the lowest first")
        if lo >= rmin or hi <= rmax:
            end = rmax if hi <= rmax else rmin
            raise Wrong(f"the ratings reach {end:g}, and a sigmoid never reaches the ends of its range: the model "
                        f"could never predict {end:g}. Pad the range by about 0.5 on each side")
        if lo > rmin - 0.1 or hi < rmax + 0.1:
            raise Wrong(f"({lo:g}, {hi:g}) leaves almost no room beyond the ratings ({rmin:g} to {rmax:g}): to "
                        f"predict {rmax:g} the sigmoid would have to reach {(rmax - lo) / (hi - lo):.3f}, which takes "
                        "huge inputs. Pad by about 0.5 on each side")
        if lo < rmin - 1 or hi > rmax + 1:
            raise Wrong(f"({lo:g}, {hi:g}) is much wider than the ratings ({rmin:g} to {rmax:g}): the model "
                        "wastes most of the sigmoid on ratings nobody gives. Pad by about 0.5")
        return f"({lo:g}, {hi:g}) covers the ratings {rmin:g} to {rmax:g} with room for the sigmoid's ends."


class DotBiasModel(Question):
    title = "DotBias: biases and a sigmoid into y_range"
    names = ("DotBias",)
    hint_text = ("The bias embeddings give shape (batch, 1); the dot product has shape (batch,). Add first, then "
                 "squash the sum once.")
    hint_more = ("Add `self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]` to the dot product, then "
                 "`torch.sigmoid(x) * (hi - lo) + lo` with `lo, hi = self.y_range`.")
    wrong = (
        ("return torch.sigmoid(raw) * (hi - lo) + lo", "return raw", "torch.sigmoid"),
        ("self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]",
         "self.user_bias(users) + self.movie_bias(movies)", "[:, 0]"),
        ("raw = dot + self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]", "raw = dot",
         "biases are not used"),
        ("torch.sigmoid(raw) * (hi - lo) + lo", "torch.sigmoid(raw)", "* (hi - lo) + lo"),
        ("self.y_range = y_range", "self.y_range = (0, 5.5)", "y_range it is given"),
    )

    def verify(self) -> str:
        cls = self.answer("DotBias")
        note = ""
        for lo, hi in ((-1.0, 3.0), (0.5, 5.5)):
            model = require_init(self.call(f"DotBias(7, 5, 3, y_range=({lo}, {hi}))", cls, 7, 5, 3,
                                           y_range=(lo, hi)), "DotBias")
            emb = _by_shape(model, "DotBias", {"user factors": (7, 3), "movie factors": (5, 3),
                                               "user biases": (7, 1), "movie biases": (5, 1)})
            U, M, bu, bm = known((7, 3), 0.0), known((5, 3), 1.0), known((7, 1), 2.0), known((5, 1), -1.0)
            weights = {emb[what].index: w for what, w in (("user factors", U), ("movie factors", M),
                                                          ("user biases", bu), ("movie biases", bm))}
            out, note = per_row(self.call("forward", model.run, weights, _USERS, _ITEMS).out, len(_USERS))
            u, m = _USERS, _ITEMS
            dot = (U[u] * M[m]).sum(1)
            b_u, b_m = bu[u, 0], bm[m, 0]
            raw = dot + b_u + b_m

            diagnose(out, squash(raw, lo, hi), [
                *squash_mistakes(raw, lo, hi, "forward"),
                (squash(dot, lo, hi), "the biases are not used: add `self.user_bias(users)[:, 0] + "
                                      "self.movie_bias(movies)[:, 0]` to the dot product"),
                (squash(dot + b_u, lo, hi), "only the user bias is added: the movie bias is missing"),
                (squash(dot + b_m, lo, hi), "only the movie bias is added: the user bias is missing"),
                (squash(dot, lo, hi) + b_u + b_m, "the biases are added after the sigmoid, so the output can leave "
                                                  "y_range: add them to the dot product, then squash the sum"),
                (squash(dot + bu[m % 7, 0] + b_m, lo, hi), "the user bias is looked up with the movies' indices: "
                                                           "`self.user_bias(users)`"),
                (squash(dot + b_u + bm[u % 5, 0], lo, hi), "the movie bias is looked up with the users' indices: "
                                                           "`self.movie_bias(movies)`"),
            ], f"with known weights and y_range=({lo}, {hi}), forward should return sigmoid(dot + user bias + "
               "movie bias) * (hi - lo) + lo")
        agree("DotBias", lambda nu, nm, nf, _u, _m, y: cls(nu, nm, nf, y_range=y), lambda *_: None,
              _model_inputs(True), _learns_like_dot, examples=40, describe=_batch)
        return "biases, dot product and the sigmoid into y_range are all there" + (note or ".")


# -- generated inputs: sizes and batches the question's words allow (a batch of one row included) ---------------------
def _model_inputs(bias: bool) -> Any:
    from hypothesis import strategies as st

    @st.composite
    def cases(draw: Any) -> tuple[Any, ...]:
        nu = draw(st.integers(2, 9))
        nm = draw(st.integers(2, 9).filter(lambda v: v != nu))  # distinct shapes tell the tables apart
        nf, rows = draw(st.integers(2, 5)), draw(st.integers(1, 6))
        users = torch.tensor(draw(st.lists(st.integers(0, nu - 1), min_size=rows, max_size=rows)))
        movies = torch.tensor(draw(st.lists(st.integers(0, nm - 1), min_size=rows, max_size=rows)))
        if not bias:
            return nu, nm, nf, users, movies
        return nu, nm, nf, users, movies, draw(st.sampled_from([(0.0, 5.5), (-1.0, 3.0), (0.5, 10.5)]))

    return cases()


def _batch(args: tuple[Any, ...]) -> str:
    nu, nm, nf, users, movies, *y = args
    made = f"DotBias({nu}, {nm}, {nf}, y_range={y[0]})" if y else f"EmbeddingDot({nu}, {nm}, {nf})"
    return f"{made} on users={users.tolist()}, movies={movies.tolist()}"


def _learns_like_dot(model: Any, _: None, args: tuple[Any, ...]) -> str | None:
    nu, nm, nf, users, movies, *y = args
    cls = "DotBias" if y else "EmbeddingDot"
    model = require_init(model, cls)
    shapes = {"user factors": (nu, nf), "movie factors": (nm, nf)}
    if y:
        shapes |= {"user biases": (nu, 1), "movie biases": (nm, 1)}
    found = {e.shape: e for e in model.embeddings()}
    missing = [f"nn.Embedding{s} for the {w}" for w, s in shapes.items() if s not in found]
    if missing:
        return f"{cls}{(nu, nm, nf, *y)} has no {missing[0]}"
    values = {w: known(s, float(k)) for k, (w, s) in enumerate(shapes.items())}
    tables = {w: (found[s], values[w]) for w, s in shapes.items()}

    def reference(t: dict[str, torch.Tensor]) -> torch.Tensor:
        out = (t["user factors"][users] * t["movie factors"][movies]).sum(1)
        if not y:
            return out
        return squash(out + t["user biases"][users, 0] + t["movie biases"][movies, 0], *y[0])

    return trains_like(model, tables, users, movies, reference, f"{cls}'s forward")


QUESTIONS: tuple[type[Question], ...] = (EncodeIds, EmbeddingDotModel, PaddedRange, DotBiasModel)
"""The questions of exercise 0, in order: q1 to q4."""
