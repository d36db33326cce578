"""Exercises of lesson 3 (embedding sizes and models): fastai's size rule, a neural-network
model, and what a model's size costs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._question import Question, Wrong, diagnose, known, per_row, require_init, squash, squash_mistakes

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
        sizes = (1, 2, 10, 50, 671, 9066, 100_000, 1_000_000)
        got = {n: self.call(f"emb_sz({n})", fn, n) for n in sizes}
        bad = [n for n in sizes if got[n] != _rule(n)]
        if not bad:
            return "the same sizes as fastai's emb_sz_rule (9,066 movies -> 263 factors; never more than 600)."
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
        return "with known weights, forward matches Linear -> ReLU -> Linear -> sigmoid into y_range" + (note or ".")

    def _check(self, cls: type, lo: float, hi: float, n_act: int) -> str:
        call = f"CollabNN((7, 4), (5, 3), y_range=({lo}, {hi}), n_act={n_act})"
        torch.manual_seed(0)
        model = self.call(call, cls, (7, 4), (5, 3), y_range=(lo, hi), n_act=n_act)
        require_init(model, "CollabNN")
        if not isinstance(model, nn.Module):
            raise Wrong(f"{call} is a {type(model).__name__}; CollabNN should be an nn.Module")
        embs = {tuple(m.weight.shape): m for m in model.modules() if isinstance(m, nn.Embedding)}
        if not {(7, 4), (5, 3)} <= set(embs):
            raise Wrong(f"{call} needs nn.Embedding(7, 4) for the users and nn.Embedding(5, 3) for the items; it has "
                        f"{sorted(embs)}")
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if len(linears) < 2:
            raise Wrong(f"{call} has {len(linears)} nn.Linear layer(s); the network is Linear -> ReLU -> Linear")
        # the layers by what they take and give (a student may define the output layer first)
        first = next((m for m in linears if m.in_features == 7), None) or \
            next((m for m in linears if m.out_features != 1), linears[0])
        last = next((m for m in linears if m.out_features == 1 and m is not first), linears[-1])
        if first.in_features != 7:
            raise Wrong(f"the first nn.Linear takes {first.in_features} inputs; it sees both embeddings side by side: "
                        "4 + 3 = 7")
        if first.out_features != n_act:
            raise Wrong(f"with n_act={n_act} the first nn.Linear gives {first.out_features} activations: use the "
                        "n_act it is given")
        if len(linears) > 2 or last.in_features != n_act or last.out_features != 1:
            raise Wrong(f"after the first layer comes one nn.Linear(n_act, 1); {call} has "
                        f"{[(m.in_features, m.out_features) for m in linears]}")
        model.eval()  # dropout, if any, is off when the model predicts
        U, V = known((7, 4), 0.0), known((5, 3), 1.0)
        W1, b1, W2, b2 = known((n_act, 7), 0.5), known((n_act,), -0.5), known((1, n_act), 0.0), known((1,), 0.3)
        users, items = torch.tensor([0, 1, 6, 2, 5]), torch.tensor([4, 0, 1, 1, 3])
        with torch.no_grad():
            embs[(7, 4)].weight.copy_(U)
            embs[(5, 3)].weight.copy_(V)
            for layer, w, b in ((first, W1, b1), (last, W2, b2)):
                layer.weight.copy_(w)
                if layer.bias is not None:
                    layer.bias.copy_(b)
            widths: list[int] = []
            hook = first.register_forward_pre_hook(lambda _, args: widths.append(int(args[0].shape[-1])))
            try:
                raw = self.call("forward", model, users, items)
            except Wrong:
                if widths and widths[0] != 7:
                    raise Wrong(f"the first layer got {widths[0]} numbers per row, not 4 (the user's vector) + 3 (the "
                                "item's): concatenate the user's and the item's vectors") from None
                raise
            finally:
                hook.remove()
            out, note = per_row(raw, len(users))
        B1 = b1 if first.bias is not None else torch.zeros_like(b1)
        B2 = b2 if last.bias is not None else torch.zeros_like(b2)

        def net(x: torch.Tensor, act: Any = torch.relu) -> torch.Tensor:
            return (act(x @ W1.T + B1) @ W2.T + B2)[:, 0]

        x = torch.cat([U[users], V[items]], dim=1)
        z = net(x)
        if torch.allclose(out, squash(net(torch.cat([V[items], U[users]], dim=1)), lo, hi), atol=1e-4):
            return note  # the item's vector first: the same model with its inputs in another order
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
        return note


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
        for nu, ni, nf in ((671, 9066, 50), (10, 3, 2)):
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
        return "(users + items) x (factors + 1): 496,587 numbers for MovieLens-small at 50 factors."


QUESTIONS: tuple[type[Question], ...] = (EmbSize, CollabNNModel, DotBiasParams)
"""The questions of exercise 3, in order: q1 to q3."""
