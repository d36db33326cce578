"""Exercises of lesson 3 (embedding sizes and models): fastai's size rule, a neural-network
model, and what a model's size costs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._differential import agree
from ._question import Question, Wrong, diagnose, known, per_row, require_init, squash, squash_mistakes
from ._remote import Layer, Model, Raised
from ._training import Table, trains_like

__all__ = ["EmbSize", "CollabNNModel", "DotBiasParams", "QUESTIONS"]


def _cats(n: int) -> str:
    return f"{n:,} categor{'y' if n == 1 else 'ies'}"


def _rule(n: int) -> int:
    return min(600, round(1.6 * n**0.56))  # fastai.tabular.model.emb_sz_rule


class EmbSize(Question):
    title = "fastai's rule of thumb for embedding sizes"
    names = ("emb_sz",)
    hint_text = "Three steps: the power, the rounding to a whole number, then the cap."
    hint_more = "fastai's `emb_sz_rule`: `min(600, round(1.6 * n_cat ** 0.56))`."
    wrong = (
        ("min(600, round(1.6 * n_cat ** 0.56))", "round(1.6 * n_cat ** 0.56)", "600"),
        ("min(600, round(1.6 * n_cat ** 0.56))", "min(600, int(1.6 * n_cat ** 0.56))", "round"),
        ("min(600, round(1.6 * n_cat ** 0.56))", "min(600, round(1.6 * n_cat ** 0.5))", "fastai's rule gives"),
    )

    def verify(self) -> str:
        fn = self.answer("emb_sz")
        sizes = (1, 2, 10, 50, 672, 8416, 100_000, 1_000_000)
        got = {n: self.call(f"emb_sz({n})", fn, n) for n in sizes}
        bad = [n for n in sizes if got[n] != _rule(n)]
        if not bad:
            agree("emb_sz", fn, _rule, _count_inputs(1), _same_int("emb_sz"), names=("n_cat",))
            return ("the same sizes as fastai's emb_sz_rule (lesson 3's 8,416 movies -> 252 factors; never more than "
                    "600).")
        if all(got[n] == round(1.6 * n**0.56) for n in sizes):
            n = bad[0]
            raise Wrong(f"for {n:,} categories your rule gives {got[n]:,}; fastai caps the size at 600")
        if all(got[n] == min(600, int(1.6 * n**0.56)) for n in sizes):
            n = bad[0]
            raise Wrong(f"for {_cats(n)} your rule gives {got[n]}: round to the nearest integer ({_rule(n)}) "
                        "instead of cutting the decimals")
        n = bad[0]
        raise Wrong(f"for {_cats(n)} fastai's rule gives {_rule(n)}, yours {got[n]!r}")


class CollabNNModel(Question):
    title = "CollabNN: embeddings side by side, then a small network"
    names = ("CollabNN",)
    hint_text = ("Concatenate the two looked-up vectors into one row of user_sz[1] + item_sz[1] numbers; a "
                 "Linear -> ReLU -> Linear network turns it into one number per row, which a sigmoid squashes "
                 "into y_range.")
    hint_more = ("`torch.cat([users_vectors, items_vectors], dim=1)` puts them side by side, so the first "
                 "`nn.Linear` takes `user_sz[1] + item_sz[1]` inputs and gives `n_act`; its last layer gives 1 "
                 "number: take `[:, 0]` and squash it with `torch.sigmoid(x) * (hi - lo) + lo`.")
    wrong = (
        ("return torch.sigmoid(x[:, 0]) * (hi - lo) + lo", "return x[:, 0]", "y_range"),
        ("nn.Linear(user_sz[1] + item_sz[1], n_act)", "nn.Linear(user_sz[1], n_act)", "side by side"),
        ("torch.cat([self.user_factors(users), self.item_factors(items)], dim=1)",
         "torch.cat([self.user_factors(users), self.user_factors(users)], dim=1)", "item"),
        ("nn.ReLU(), ", "", "ReLU"),
        ("self.y_range = y_range", "self.y_range = (0, 5.5)", "y_range it is given"),
    )

    def verify(self) -> str:
        cls = self.answer("CollabNN")
        note = ""
        for (lo, hi), n_act in (((-1.0, 3.0), 6), ((0.5, 5.5), 8)):
            note = self._check(cls, lo, hi, n_act)

        def built(user_sz: Any, item_sz: Any, y: Any, n_act: int, users: Any, items: Any) -> str | None:
            self._check(cls, y[0], y[1], n_act, user_sz, item_sz, users, items)
            return None

        agree("CollabNN", lambda *args: args, lambda *_: None, _nn_inputs(), lambda args, _, __: built(*args),
              examples=25, describe=lambda a: f"CollabNN({a[0]}, {a[1]}, y_range={a[2]}, n_act={a[3]}) on users="
                                              f"{a[4].tolist()}, items={a[5].tolist()}")
        return "with known weights, forward matches Linear -> ReLU -> Linear -> sigmoid into y_range" + (note or ".")

    def _check(self, cls: type, lo: float, hi: float, n_act: int, user_sz: tuple[int, int] = (7, 4),
               item_sz: tuple[int, int] = (5, 3), users: torch.Tensor | None = None,
               items: torch.Tensor | None = None) -> str:
        call = f"CollabNN({user_sz}, {item_sz}, y_range=({lo}, {hi}), n_act={n_act})"
        width = user_sz[1] + item_sz[1]
        model = require_init(self.call(call, cls, user_sz, item_sz, y_range=(lo, hi), n_act=n_act), "CollabNN")
        embs = {m.shape: m for m in model.embeddings()}
        if not {user_sz, item_sz} <= set(embs):
            raise Wrong(f"{call} needs nn.Embedding{user_sz} for the users and nn.Embedding{item_sz} for the items; "
                        f"it has {sorted(embs)}")
        linears = model.linears()
        if len(linears) < 2:
            raise Wrong(f"{call} has {len(linears)} nn.Linear layer(s); the network is Linear -> ReLU -> Linear")
        # the layers by what they take and give (a student may define the output layer first)
        first = next((m for m in linears if m.in_features == width), None) or \
            next((m for m in linears if m.out_features != 1), linears[0])
        last = next((m for m in linears if m.out_features == 1 and m is not first), linears[-1])
        if first.in_features != width:
            raise Wrong(f"the first nn.Linear takes {first.in_features} inputs; it sees both embeddings side by side: "
                        f"{user_sz[1]} + {item_sz[1]} = {width}")
        if first.out_features != n_act:
            raise Wrong(f"with n_act={n_act} the first nn.Linear gives {first.out_features} activations: use the "
                        "n_act it is given")
        if len(linears) > 2 or last.in_features != n_act or last.out_features != 1:
            raise Wrong(f"after the first layer comes one nn.Linear(n_act, 1); {call} has "
                        f"{[(m.in_features, m.out_features) for m in linears]}")
        U, V = known(user_sz, 0.0), known(item_sz, 1.0)
        W1, b1, W2, b2 = known((n_act, width), 0.5), known((n_act,), -0.5), known((1, n_act), 0.0), known((1,), 0.3)
        if users is None or items is None:
            users, items = torch.tensor([0, 1, 6, 2, 5]), torch.tensor([4, 0, 1, 1, 3])
        widths: list[int] = []

        def forward(*args: Any, **kwargs: Any) -> Any:
            try:
                return model.run(*args, **kwargs)
            except Raised as e:
                widths.extend(e.widths)
                raise

        weights = {embs[user_sz].index: U, embs[item_sz].index: V, first.index: (W1, b1), last.index: (W2, b2)}
        try:  # dropout, if any, is off when the model predicts (eval)
            run = self.call("forward", forward, weights, users, items, watch=first.index, eval=True)
        except Wrong:
            if widths and widths[0] != width:
                raise Wrong(f"the first layer got {widths[0]} numbers per row, not {user_sz[1]} (the user's "
                            f"vector) + {item_sz[1]} (the item's): concatenate the user's and the item's "
                            "vectors") from None
            raise
        out, note = per_row(run.out, len(users))
        B1 = b1 if first.has_bias else torch.zeros_like(b1)
        B2 = b2 if last.has_bias else torch.zeros_like(b2)

        def net(x: torch.Tensor, act: Any = torch.relu) -> torch.Tensor:
            return (act(x @ W1.T + B1) @ W2.T + B2)[:, 0]

        x = torch.cat([U[users], V[items]], dim=1)
        z = net(x)
        swapped = not torch.allclose(out, squash(z, lo, hi), atol=1e-4) and \
            torch.allclose(out, squash(net(torch.cat([V[items], U[users]], dim=1)), lo, hi), atol=1e-4)
        if swapped:  # the item's vector first: the same model with its inputs in another order
            return note + self._learns(model, embs, first, last, (U, V, W1, W2), (B1, B2), (lo, hi), users, items, call,
                                       swapped)
        where = f"with known weights, {call}"
        diagnose(out, squash(z, lo, hi), [
            (squash(net(x, lambda t: t), lo, hi), f"{where} has no ReLU between its layers: without it two Linear "
                                                  "layers are one Linear layer"),
            (squash(net(x, torch.tanh), lo, hi), f"{where} uses tanh between its layers; the question asks for a ReLU"),
            (squash(net(x, torch.sigmoid), lo, hi), f"{where} uses a sigmoid between its layers; the question asks "
                                                    "for a ReLU"),
            (squash(torch.relu(z), lo, hi), f"{where} applies a ReLU to the output before the sigmoid, so it never "
                                            "predicts below the middle of y_range: ReLU goes between the two Linear "
                                            "layers only"),
            *squash_mistakes(z, lo, hi, where),
        ], f"{where} should return sigmoid(Linear(ReLU(Linear([user vector, item vector])))) scaled into y_range")
        return note + self._learns(model, embs, first, last, (U, V, W1, W2), (B1, B2), (lo, hi), users, items, call,
                                   swapped)

    @staticmethod
    def _learns(model: Model, embs: dict[Any, Layer], first: Layer, last: Layer,
                weights: tuple[torch.Tensor, ...], biases: tuple[torch.Tensor, torch.Tensor],
                y: tuple[float, float], users: torch.Tensor, items: torch.Tensor, call: str, swapped: bool) -> str:
        """Wrong unless a loss's gradient reaches the embeddings and both layers as in the reference."""
        U, V, W1, W2 = weights
        tables: dict[str, Table] = {"user factors": (embs[tuple(U.shape)], U),
                                    "item factors": (embs[tuple(V.shape)], V), "first layer": (first, W1),
                                    "last layer": (last, W2)}

        def reference(item_first: bool) -> Any:
            def out(t: dict[str, torch.Tensor]) -> torch.Tensor:
                parts = [t["user factors"][users], t["item factors"][items]]
                x = torch.cat(parts[::-1] if item_first else parts, dim=1)
                hidden = torch.relu(x @ t["first layer"].T + biases[0])
                return squash((hidden @ t["last layer"].T + biases[1])[:, 0], *y)
            return out

        # the item's vector first is the same model; try that order too (both agree when every ReLU is off)
        problems = [trains_like(model, tables, users, items, reference(order), f"{call}'s forward", eval=True)
                    for order in (swapped, not swapped)]
        if all(problems):
            raise Wrong(problems[0])
        return ""


class DotBiasParams(Question):
    title = "the parameters of a dot-product model with biases"
    names = ("dot_bias_params",)
    hint_text = "Count what one user stores, what one item stores, then multiply by how many there are."
    hint_more = "Each user and each item has n_factors numbers for its vector plus 1 bias."
    wrong = (
        ("(n_users + n_items) * (n_factors + 1)", "(n_users + n_items) * n_factors", "bias"),
        ("(n_users + n_items) * (n_factors + 1)", "n_users * (n_factors + 1)", "items"),
        ("(n_users + n_items) * (n_factors + 1)", "n_users * n_items", "a vector"),
    )

    def verify(self) -> str:
        fn = self.answer("dot_bias_params")
        for nu, ni, nf in ((672, 8416, 50), (10, 3, 2)):
            got = self.call(f"dot_bias_params({nu}, {ni}, {nf})", fn, nu, ni, nf)
            want = (nu + ni) * (nf + 1)
            if got == want:
                continue
            if got == (nu + ni) * nf:
                raise Wrong(f"{got:,} counts the vectors but not the biases: each user and item also has 1 bias")
            if got in (nu * (nf + 1), ni * (nf + 1)):
                raise Wrong(f"{got:,} counts one side only: users and items both have vectors and biases")
            if got == nu * ni:
                raise Wrong(f"{got:,} is the number of (user, item) pairs; the model stores a vector and a bias per "
                            "user and per item, not a number per pair")
            raise Wrong(f"dot_bias_params({nu}, {ni}, {nf}) should be {want:,}, got {got!r}")
        agree("dot_bias_params", fn, lambda nu, ni, nf: (nu + ni) * (nf + 1), _count_inputs(3),
              _same_int("dot_bias_params"), names=("n_users", "n_items", "n_factors"))
        return "(users + items) x (factors + 1): 463,488 numbers for lesson 3's MovieLens-small at 50 factors."


# -- generated inputs -----------------------------------------------------------------------------------------------
def _count_inputs(k: int) -> Any:
    from hypothesis import strategies as st

    count = st.one_of(st.integers(1, 200), st.integers(1, 10**7))
    return st.tuples(*[count] * k)


def _nn_inputs() -> Any:
    from hypothesis import strategies as st

    @st.composite
    def cases(draw: Any) -> tuple[Any, ...]:
        user_sz = (draw(st.integers(2, 8)), draw(st.integers(1, 4)))
        item_sz = draw(st.tuples(st.integers(2, 8), st.integers(1, 4)).filter(lambda s: s != user_sz))
        n_act = draw(st.integers(2, 6).filter(lambda a: a != user_sz[1] + item_sz[1]))  # tells the layers apart
        rows = draw(st.integers(1, 5))
        users = torch.tensor(draw(st.lists(st.integers(0, user_sz[0] - 1), min_size=rows, max_size=rows)))
        items = torch.tensor(draw(st.lists(st.integers(0, item_sz[0] - 1), min_size=rows, max_size=rows)))
        return user_sz, item_sz, draw(st.sampled_from([(0.0, 5.5), (-1.0, 3.0)])), n_act, users, items

    return cases()


def _same_int(call: str) -> Any:
    def compare(got: Any, want: int, args: tuple[Any, ...]) -> str | None:
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            return f"your {call} gives {got!r} ({type(got).__name__}); a size is a whole number, an int ({want})"
        return None if got == want else f"your {call} gives {got}; it should be {want}"
    return compare


QUESTIONS: tuple[type[Question], ...] = (EmbSize, CollabNNModel, DotBiasParams)
"""The questions of exercise 3, in order: q1 to q3."""
