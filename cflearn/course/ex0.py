"""Exercises of lesson 0 (from scratch): encode IDs, a dot-product model, y_range, biases and a sigmoid."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from ._question import Question, Wrong, plain, require_init

__all__ = ["EncodeIds", "EmbeddingDotModel", "PaddedRange", "DotBiasModel", "QUESTIONS"]


def _ratings(q: Question) -> pd.DataFrame:
    ratings = q.namespace.get("ratings")
    if not isinstance(ratings, pd.DataFrame) or not {"user", "item", "rating"} <= set(ratings.columns):
        raise Wrong("`ratings` is no longer the table the setup cell loaded; run the setup cell again")
    return ratings


class EncodeIds(Question):
    title = "raw user IDs -> contiguous rows and back"
    names = ("user2idx", "idx2user")
    hint_text = ("`sorted(ratings.user.unique())` lists each user once; `enumerate` numbers them from 0. "
                 "The inverse swaps keys and values.")
    wrong = (
        ("{u: i for", "{u: i + 1 for", "start at 0"),
        ("{i: u for u, i in", "{u: i for u, i in", "swap"),
        ("unique())", "unique()[:10])", "missing"),
    )

    def verify(self) -> str:
        fwd, back = self.answer("user2idx"), self.answer("idx2user")
        for name, value in (("user2idx", fwd), ("idx2user", back)):
            if not isinstance(value, dict):
                raise Wrong(f"`{name}` is a {type(value).__name__}; build a dict")
        users = set(_ratings(self)["user"].tolist())
        missing, extra = users - set(fwd), set(fwd) - users
        if missing:
            raise Wrong(f"{len(missing)} user IDs of `ratings` are missing from `user2idx` (e.g. "
                        f"{plain(min(missing))}); every user needs a row")
        if extra:
            raise Wrong(f"`user2idx` has {len(extra)} keys that are not users of `ratings` (e.g. "
                        f"{plain(min(extra, key=str))!r})")
        rows = sorted(fwd.values())
        if rows != list(range(len(users))):
            if rows and rows[0] == 1 and rows == list(range(1, len(users) + 1)):
                raise Wrong("the rows start at 1: an embedding with n rows is indexed 0..n-1, so start at 0 "
                            "(enumerate already does)")
            raise Wrong(f"the rows should be 0..{len(users) - 1}, each used once; got {len(set(rows))} distinct "
                        f"rows from {rows[0]} to {rows[-1]}")
        for u, i in fwd.items():
            if back.get(i, object()) != u:
                raise Wrong(f"idx2user[user2idx[{plain(u)!r}]] is {plain(back.get(i))!r}, not {plain(u)!r}: build "
                            "idx2user by swapping user2idx's keys and values")
        return f"{len(users)} users map to rows 0..{len(users) - 1} and back."


def _embeddings(model: nn.Module) -> list[nn.Embedding]:
    return [m for m in model.modules() if isinstance(m, nn.Embedding)]


def _by_shape(model: nn.Module, cls: str, shapes: dict[str, tuple[int, int]]) -> dict[str, nn.Embedding]:
    found = {tuple(e.weight.shape): e for e in _embeddings(model)}
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


def _known(shape: tuple[int, int], offset: float) -> torch.Tensor:
    return (torch.arange(shape[0] * shape[1], dtype=torch.float32).view(shape) % 7 - 3 + offset) / 10


def _shape_advice(out: torch.Tensor, n: int) -> str:
    if out.shape == (n, n):
        return ("; a matrix product pairs every user with every movie. Multiply elementwise, "
                "`(u * m)`, then `.sum(1)`")
    if out.dim() == 2 and out.shape[0] == n:
        return ": did you forget `.sum(1)`?"
    return ""


class EmbeddingDotModel(Question):
    title = "EmbeddingDot: a dot product of embeddings"
    names = ("EmbeddingDot",)
    hint_text = ("In __init__: two `nn.Embedding(rows, n_factors)`, then `.weight.data.uniform_(0, 0.05)` on each. "
                 "In forward: look up both, multiply elementwise, sum over the factors: `.sum(1)`.")
    wrong = (
        (").sum(1)", ")", "did you forget `.sum(1)`"),
        ("(self.user_factors(users) * self.movie_factors(movies)).sum(1)",
         "self.user_factors(users) @ self.movie_factors(movies).T", "elementwise"),
        ("uniform_(0, 0.05)", "normal_()", "small and positive"),
    )

    def verify(self) -> str:
        cls = self.answer("EmbeddingDot")
        model = self.call("EmbeddingDot(7, 5, 3)", cls, 7, 5, 3)
        require_init(model, "EmbeddingDot")
        emb = _by_shape(model, "EmbeddingDot", {"users": (7, 3), "movies": (5, 3)})
        for what, e in emb.items():
            lo, hi = float(e.weight.detach().min()), float(e.weight.detach().max())
            if lo < 0 or hi > 0.05:
                raise Wrong(f"the {what}' factors start in [{lo:.3f}, {hi:.3f}]; start them small and positive: "
                            "`.weight.data.uniform_(0, 0.05)`")
        U, M = _known((7, 3), 0.0), _known((5, 3), 1.0)
        with torch.no_grad():
            emb["users"].weight.copy_(U)
            emb["movies"].weight.copy_(M)
            out = self.call("forward", model, _USERS, _ITEMS)
        if not isinstance(out, torch.Tensor):
            raise Wrong(f"forward returned a {type(out).__name__}; return a tensor")
        expected = (U[_USERS] * M[_ITEMS]).sum(1)
        if out.shape != expected.shape:
            raise Wrong(f"forward returned shape {tuple(out.shape)}; a rating per row needs shape "
                        f"{tuple(expected.shape)}{_shape_advice(out, len(expected))}")
        if not torch.allclose(out.detach().float(), expected, atol=1e-5):
            raise Wrong("forward's predictions differ from the dot product of each user's and movie's factors "
                        "(with known weights); check which embedding looks up users and which movies")
        return "forward is the dot product of the user's and the movie's factors."


class PaddedRange(Question):
    title = "y_range for a sigmoid"
    names = ("y_range",)
    hint_text = ("A sigmoid approaches its ends but never reaches them. Take the lowest and highest rating "
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
        if lo < rmin - 1 or hi > rmax + 1:
            raise Wrong(f"({lo:g}, {hi:g}) is much wider than the ratings ({rmin:g} to {rmax:g}): the model "
                        "wastes most of the sigmoid on ratings nobody gives. Pad by about 0.5")
        return f"({lo:g}, {hi:g}) covers the ratings {rmin:g} to {rmax:g} with room for the sigmoid's ends."


class DotBiasModel(Question):
    title = "DotBias: biases and a sigmoid into y_range"
    names = ("DotBias",)
    hint_text = ("Add `self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]` to the dot product (an "
                 "nn.Embedding(n, 1) gives shape (batch, 1)), then `torch.sigmoid(x) * (hi - lo) + lo`.")
    wrong = (
        ("return torch.sigmoid(raw) * (hi - lo) + lo", "return raw", "torch.sigmoid"),
        ("self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]",
         "self.user_bias(users) + self.movie_bias(movies)", "[:, 0]"),
        ("raw = dot + self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]", "raw = dot",
         "biases are not used"),
        ("torch.sigmoid(raw) * (hi - lo) + lo", "torch.sigmoid(raw)", "* (hi - lo) + lo"),
    )

    def verify(self) -> str:
        cls = self.answer("DotBias")
        lo, hi = 0.5, 5.5
        model = self.call("DotBias(7, 5, 3, y_range=(0.5, 5.5))", cls, 7, 5, 3, y_range=(lo, hi))
        require_init(model, "DotBias")
        emb = _by_shape(model, "DotBias", {"user factors": (7, 3), "movie factors": (5, 3), "user biases": (7, 1),
                                           "movie biases": (5, 1)})
        U, M, bu, bm = _known((7, 3), 0.0), _known((5, 3), 1.0), _known((7, 1), 2.0), _known((5, 1), -1.0)
        with torch.no_grad():
            for what, w in (("user factors", U), ("movie factors", M), ("user biases", bu), ("movie biases", bm)):
                emb[what].weight.copy_(w)
            out = self.call("forward", model, _USERS, _ITEMS)
        if not isinstance(out, torch.Tensor):
            raise Wrong(f"forward returned a {type(out).__name__}; return a tensor")
        dot = (U[_USERS] * M[_ITEMS]).sum(1)
        raw = dot + bu[_USERS, 0] + bm[_ITEMS, 0]
        expected = torch.sigmoid(raw) * (hi - lo) + lo
        n = len(expected)
        if out.shape != expected.shape:
            advice = (": the bias embeddings give shape (batch, 1); take `[:, 0]` before adding" if out.shape == (n, n)
                      else _shape_advice(out, n))
            raise Wrong(f"forward returned shape {tuple(out.shape)}; a rating per row needs shape ({n},){advice}")
        out = out.detach().float()
        if torch.allclose(out, expected, atol=1e-5):
            return "biases, dot product and the sigmoid into y_range are all there."
        if torch.allclose(out, raw, atol=1e-5):
            raise Wrong("forward returns the raw sum, which can fall outside y_range: squash it with "
                        "`torch.sigmoid(x) * (hi - lo) + lo`")
        if torch.allclose(out, torch.sigmoid(raw), atol=1e-5):
            raise Wrong("the outputs lie in (0, 1): scale the sigmoid into y_range with `* (hi - lo) + lo`")
        if torch.allclose(out, torch.sigmoid(dot) * (hi - lo) + lo, atol=1e-5):
            raise Wrong("the biases are not used: add `self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]` "
                        "to the dot product")
        raise Wrong("with known weights, forward differs from sigmoid(dot + user bias + movie bias) scaled into "
                    "y_range; compare your forward with the hint")


QUESTIONS: tuple[type[Question], ...] = (EncodeIds, EmbeddingDotModel, PaddedRange, DotBiasModel)
"""The questions of exercise 0, in order: q1 to q4."""
