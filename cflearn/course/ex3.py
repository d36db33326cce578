"""Exercises of lesson 3 (embedding sizes and models): fastai's size rule, a neural-network
model, and what a model's size costs."""

from __future__ import annotations

import torch
from torch import nn

from ._question import Question, Wrong, require_init

__all__ = ["EmbSize", "CollabNNModel", "DotBiasParams", "QUESTIONS"]


def _cats(n: int) -> str:
    return f"{n:,} categor{'y' if n == 1 else 'ies'}"


def _rule(n: int) -> int:
    return min(600, round(1.6 * n**0.56))  # fastai.tabular.model.emb_sz_rule


class EmbSize(Question):
    title = "fastai's rule of thumb for embedding sizes"
    names = ("emb_sz",)
    hint_text = "fastai's `emb_sz_rule`: `min(600, round(1.6 * n_cat ** 0.56))`."
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
    hint_text = ("`torch.cat([users_vectors, items_vectors], dim=1)` puts them side by side, so the first "
                 "`nn.Linear` takes `user_sz[1] + item_sz[1]` inputs; its last layer gives 1 number: take `[:, 0]` "
                 "and squash it into y_range with a sigmoid.")
    wrong = (
        ("return torch.sigmoid(x[:, 0]) * (hi - lo) + lo", "return torch.sigmoid(x) * (hi - lo) + lo", "[:, 0]"),
        ("return torch.sigmoid(x[:, 0]) * (hi - lo) + lo", "return x[:, 0]", "y_range"),
        ("nn.Linear(user_sz[1] + item_sz[1], n_act)", "nn.Linear(user_sz[1], n_act)", "side by side"),
        ("torch.cat([self.user_factors(users), self.item_factors(items)], dim=1)",
         "torch.cat([self.user_factors(users), self.user_factors(users)], dim=1)", "item"),
    )

    def verify(self) -> str:
        cls = self.answer("CollabNN")
        lo, hi = 0.5, 5.5
        torch.manual_seed(0)
        model = self.call("CollabNN((7, 4), (5, 3), y_range=(0.5, 5.5), n_act=8)", cls, (7, 4), (5, 3),
                          y_range=(lo, hi), n_act=8)
        require_init(model, "CollabNN")
        shapes = {tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Embedding)}
        if not {(7, 4), (5, 3)} <= shapes:
            raise Wrong(f"CollabNN((7, 4), (5, 3)) needs nn.Embedding(7, 4) and nn.Embedding(5, 3); it has "
                        f"{sorted(shapes)}")
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise Wrong("there is no nn.Linear layer: the network needs at least one")
        if linears[0].in_features != 7:
            raise Wrong(f"the first nn.Linear takes {linears[0].in_features} inputs; it sees both embeddings side "
                        "by side: 4 + 3 = 7")
        users, items = torch.tensor([0, 1, 6, 2]), torch.tensor([4, 0, 1, 1])
        widths: list[int] = []
        hook = linears[0].register_forward_pre_hook(lambda _, args: widths.append(int(args[0].shape[-1])))
        try:
            out = self.call("forward", model, users, items)
        except Wrong:
            if widths and widths[0] != 7:
                raise Wrong(f"the first layer got {widths[0]} numbers per row, not 4 (the user's vector) + 3 (the "
                            "item's): concatenate the user's and the item's vectors") from None
            raise
        finally:
            hook.remove()
        if not isinstance(out, torch.Tensor):
            raise Wrong(f"forward returned a {type(out).__name__}; return a tensor")
        if tuple(out.shape) != (4,):
            tip = ": the last layer gives shape (batch, 1); take `[:, 0]`" if tuple(out.shape) == (4, 1) else ""
            raise Wrong(f"forward returned shape {tuple(out.shape)}; a rating per row needs shape (4,){tip}")
        if not bool(((out > lo) & (out < hi)).all()):
            raise Wrong(f"outputs such as {float(out.detach()[0]):.3f} fall outside y_range ({lo}, {hi}): squash "
                        "with `torch.sigmoid(x) * (hi - lo) + lo`")
        model.zero_grad()
        out.sum().backward()
        used = {shape: m.weight.grad is not None and bool(m.weight.grad.abs().sum() > 0)
                for m in model.modules() if isinstance(m, nn.Embedding) for shape in [tuple(m.weight.shape)]}
        if not used.get((5, 3), False):
            raise Wrong("the prediction does not depend on the item embedding: concatenate the user's and the "
                        "item's vectors")
        if not used.get((7, 4), False):
            raise Wrong("the prediction does not depend on the user embedding: concatenate the user's and the "
                        "item's vectors")
        return "embeddings side by side, a small network, one rating per row within y_range."


class DotBiasParams(Question):
    title = "the parameters of a dot-product model with biases"
    names = ("dot_bias_params",)
    hint_text = "Each user and each item has n_factors numbers for its vector plus 1 bias."
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
