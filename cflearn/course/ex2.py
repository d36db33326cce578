"""Exercises of lesson 2 (interpretation): learned biases, similar items by cosine, a PCA map."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._question import Question, Wrong, id_list, plain

__all__ = ["TopBiases", "MostSimilar", "Pca2", "QUESTIONS"]


def _learner(q: Question) -> Any:
    learn = q.namespace.get("learn")
    if learn is None or not hasattr(learn, "cf"):
        raise Wrong("`learn` is no longer the learner the setup cell trained; run the setup cell again")
    return learn


class TopBiases(Question):
    title = "the items with the largest learned bias"
    names = ("top_biased",)
    hint_text = ("`learn.model.i_bias.weight[:, 0]` holds one bias per item row (row 0 is the unknown item). "
                 "`argsort(descending=True)` orders the rows; `data.items.decode(rows)` turns rows into item IDs.")
    wrong = (
        ("descending=True", "descending=False", "lowest"),
        ("", "top_biased = data.train.groupby('item').rating.mean().nlargest(5).index.tolist()", "mean rating"),
        ("top_biased = data.items.decode(rows.numpy()).tolist()", "top_biased = rows.tolist()", "row numbers"),
    )

    def verify(self) -> str:
        learn = _learner(self)
        got = self.answer("top_biased")
        got = id_list(got, f"`top_biased` is a {type(got).__name__}; make it a list of 5 item IDs")
        cf = learn.cf
        bias = learn.model.i_bias.weight.detach()[:, 0].clone()
        bias[0] = -torch.inf  # the unknown item is not a film
        rows = bias.argsort(descending=True)
        ids = list(cf.items.decode(rows.numpy()))
        if len(got) != 5:
            raise Wrong(f"`top_biased` has {len(got)} items; list the 5 with the largest bias")
        if got == ids[:5]:
            return "these 5 items have the largest learned bias: liked beyond what their factors explain."
        if got == ids[::-1][:5] or got == ids[-6:-1][::-1] or set(got) <= set(ids[-6:]):
            raise Wrong("these are the items with the lowest bias; sort with descending=True")
        if all(isinstance(v, (int, np.integer)) for v in got) and [int(v) for v in got] == rows[:5].tolist():
            raise Wrong("these are row numbers of the embedding, not item IDs: decode them with data.items.decode")
        data = self.namespace.get("data")
        if data is not None:
            means = data.train.groupby(data.item)[data.rating].mean().nlargest(5).index.tolist()
            if got == [plain(v) for v in means]:
                raise Wrong("these are the highest mean ratings; the question asks for the learned bias "
                            "(learn.model.i_bias), which discounts who rated the item")
        raise Wrong("these are not the 5 items with the largest learned bias (learn.model.i_bias)")


_PLANTED = torch.tensor([[1.0, 0.0, 0.0], [10.0, 1.0, 0.0], [0.9, 0.1, 0.0], [-0.1, 3.0, 0.0], [0.5, 0.5, 0.0],
                         [-1.0, 0.0, 0.0], [0.1, 0.0, 8.0], [0.2, 0.0, 0.1]])  # no ties; dot and cosine disagree


class MostSimilar(Question):
    title = "the most similar items by cosine similarity"
    names = ("most_similar",)
    hint_text = ("`torch.nn.CosineSimilarity(dim=1)(factors, factors[i][None])` gives one similarity per row; "
                 "sort descending and leave out row i itself.")
    wrong = (
        ("sims = nn.CosineSimilarity(dim=1)(factors, factors[i][None])", "sims = factors @ factors[i]", "cosine"),
        ("order = [j for j in order if j != i]", "order = order", "itself"),
        ("descending=True", "descending=False", "least similar"),
    )

    def verify(self) -> str:
        fn = self.answer("most_similar")
        got = self.call("most_similar(factors, 0, 3)", fn, _PLANTED.clone(), 0, 3)
        try:
            got = [int(v) for v in (got.tolist() if hasattr(got, "tolist") else list(got))]
        except (TypeError, ValueError):
            raise Wrong(f"most_similar returned {got!r}; return a list of row numbers") from None
        sims = torch.nn.functional.cosine_similarity(_PLANTED, _PLANTED[0][None], dim=1)
        order = [j for j in sims.argsort(descending=True).tolist() if j != 0]
        if got == order[:3]:
            return "rows ranked by cosine similarity, the row itself left out."
        if 0 in got:
            raise Wrong("row i itself is in the list: every vector is most similar to itself; leave it out")
        if len(got) != 3:
            raise Wrong(f"most_similar(factors, 0, 3) returned {len(got)} rows; return n of them")
        dots = [j for j in (_PLANTED @ _PLANTED[0]).argsort(descending=True).tolist() if j != 0]
        if got == dots[:3]:
            raise Wrong("this ranks by the dot product, where long vectors win whatever their direction; use the "
                        "cosine similarity (divide by the norms)")
        if got == order[::-1][:3]:
            raise Wrong("these are the least similar rows; sort descending")
        raise Wrong(f"on a known matrix the 3 most similar rows to row 0 are {order[:3]}, not {got}")


class Pca2(Question):
    title = "a 2-D map of the item factors (PCA)"
    names = ("pca2",)
    hint_text = ("Center each column (subtract its mean), then `torch.linalg.svd(x, full_matrices=False)`: "
                 "the coordinates on the first two components are `U[:, :2] * S[:2]` (or `x @ Vh[:2].T`).")
    wrong = (
        ("x = factors - factors.mean(0)", "x = factors", "center"),
        ("return x @ Vh[:2].T", "return Vh[:2]", "shape"),
        ("return x @ Vh[:2].T", "return x @ Vh[-2:].T", "first two"),
    )

    def verify(self) -> str:
        fn = self.answer("pca2")
        g = torch.Generator().manual_seed(0)
        factors = torch.randn(40, 6, generator=g) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.2, 0.1]) + 4.0
        got = self.call("pca2(factors)", fn, factors.clone())
        got = torch.as_tensor(np.asarray(got.detach() if hasattr(got, "detach") else got, dtype=np.float32))
        x = factors - factors.mean(0)
        _, _, Vh = torch.linalg.svd(x, full_matrices=False)
        expected = x @ Vh[:2].T
        if got.shape != expected.shape:
            raise Wrong(f"pca2 returned shape {tuple(got.shape)}; it should give 2 coordinates per item, shape "
                        f"{tuple(expected.shape)} (project the centered factors onto the components)")
        if all(torch.allclose(got[:, k].abs(), expected[:, k].abs(), atol=1e-3) for k in range(2)):
            return "the first two principal components (their signs are arbitrary)."
        _, _, Vr = torch.linalg.svd(factors, full_matrices=False)
        raw = factors @ Vr[:2].T
        if all(torch.allclose(got[:, k].abs(), raw[:, k].abs(), atol=1e-3) for k in range(2)):
            raise Wrong("the factors were not centered: the first component then points at their mean; center each "
                        "column first")
        last = x @ Vh[-2:].T
        if any(torch.allclose(got[:, k].abs(), last[:, j].abs(), atol=1e-3) for k in range(2) for j in range(2)):
            raise Wrong("these are the last components (the least variance); take the first two")
        raise Wrong("these are not the coordinates on the first two principal components of the centered factors")


QUESTIONS: tuple[type[Question], ...] = (TopBiases, MostSimilar, Pca2)
"""The questions of exercise 2, in order: q1 to q3."""
