"""Exercises of lesson 2 (interpretation): learned biases, similar items by cosine, a PCA map."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ._differential import agree
from ._question import Question, Wrong, id_list, plain

__all__ = ["TopBiases", "MostSimilar", "Pca2", "QUESTIONS"]


def _learner(q: Question) -> Any:
    """The notebook's ``learn``, saved there and loaded here (a :class:`cflearn.CollabModel`)."""
    from ._remote import Raised

    try:
        learn = q.answers.learner("learn")
    except Raised as e:
        raise Wrong(f"`learn` is no longer the learner the setup cell trained ({e.kind}: {e}); run the setup cell "
                    "again") from None
    if learn is None:
        raise Wrong("`learn` is no longer the learner the setup cell trained; run the setup cell again")
    return learn


class TopBiases(Question):
    title = "the items with the largest learned bias"
    names = ("top_biased",)
    hint_text = ("Sort the item rows by their bias, largest first, skip row 0 (the unknown item), then turn rows "
                 "into IDs.")
    hint_more = ("`learn.model.i_bias.weight[:, 0]` holds one bias per item row (row 0 is the unknown item). "
                 "`argsort(descending=True)` orders the rows; `data.items.decode(rows)` turns rows into item IDs.")
    wrong = (
        ("descending=True", "descending=False", "lowest"),
        ("", "top_biased = data.train.groupby('item').rating.mean().nlargest(5).index.tolist()", "mean rating"),
        ("top_biased = data.items.decode(rows.numpy()).tolist()", "top_biased = rows.tolist()", "row numbers"),
        ("argsort(descending=True)", "abs().argsort(descending=True)", "absolute"),
    )

    def verify(self) -> str:
        learn = _learner(self)
        got = self.answer("top_biased")
        got = id_list(got, f"`top_biased` is a {type(got).__name__}; make it a list of 5 item IDs")
        cf = learn
        raw = learn.model.i_bias.weight.detach()[:, 0].clone()
        bias = raw.clone()
        bias[0] = -torch.inf  # the unknown item is not a film
        rows = bias.argsort(descending=True)
        ids = [plain(v) for v in cf.items.decode(rows.numpy())]
        if got == ids[:5]:
            return ("these 5 items have the largest learned bias, largest first: liked beyond what their factors "
                    "explain.")
        if len(got) != 5:
            raise Wrong(f"`top_biased` has {len(got)} items; list the 5 with the largest bias")
        if got == ids[:5][::-1]:
            raise Wrong("the right 5 items, but smallest first: list them largest first")
        if sorted(got, key=str) == sorted(ids[:5], key=str):
            raise Wrong("the right 5 items in the wrong order: largest bias first")
        mag = raw.abs()
        mag[0] = -torch.inf
        if got == [plain(v) for v in cf.items.decode(mag.argsort(descending=True)[:5].numpy())] or \
                set(got) <= set(ids[::-1][:6]):
            raise Wrong("these items have the lowest (most negative) biases, which are also the largest in absolute "
                        "value: the planted flops. Sort the biases themselves, largest first (descending=True)")
        if all(isinstance(v, (int, np.integer)) for v in got) and [int(v) for v in got] == rows[:5].tolist():
            raise Wrong("these are row numbers of the embedding, not item IDs: decode them with data.items.decode")
        if set(got) & set(ids) and all(g in ids for g in got):
            shifted = [plain(v) for v in cf.items.decode((rows[:5] - 1).clamp(min=0).numpy())]
            if got == shifted:
                raise Wrong("each ID is the one of the row before: rows of `weight[1:]` start at row 1, so add 1 "
                            "before decoding (or sort the whole column with row 0 set aside)")
        if cf.item_means is not None:  # the training ratings' means, as data.train.groupby(...).mean() has them
            by_item = pd.Series(cf.item_means[1:].numpy(), index=cf.items.decode(np.arange(1, len(cf.items))))
            means = by_item.dropna().sort_index().nlargest(5).index.tolist()
            if got == [plain(v) for v in means]:
                raise Wrong("these are the highest mean ratings; the question asks for the learned bias "
                            "(learn.model.i_bias), which discounts who rated the item")
        raise Wrong(f"these are not the 5 items with the largest learned bias (learn.model.i_bias), largest first: "
                    f"the first should be {ids[0]!r}, its bias {float(bias[rows[0]]):.3f}")


# Rows chosen so that cosine similarity disagrees with the dot product, Pearson correlation, Euclidean
# distance and |cosine|; rows 0 and 1 are equal, so a row need not come first in its own ranking.
_PLANTED = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [10.0, 1.0, 0.0], [0.9, 0.1, 0.0], [-1.0, 0.0, 0.0],
                         [0.5, 0.5, 0.0], [0.1, 0.0, 8.0], [0.2, 0.0, 0.1], [5.0, 4.0, 4.0]])
_QUERIES = ((0, 3), (1, 3), (6, 2), (3, 4))


def _cosine(factors: torch.Tensor, i: int) -> torch.Tensor:
    f = factors.double()
    return (f @ f[i]) / (f.norm(dim=1) * f[i].norm())


class MostSimilar(Question):
    title = "the most similar items by cosine similarity"
    names = ("most_similar",)
    hint_text = ("Cosine similarity compares directions, not lengths: the dot product divided by both vectors' "
                 "lengths. Every row is most similar to itself.")
    hint_more = ("`torch.nn.CosineSimilarity(dim=1)(factors, factors[i][None])` gives one similarity per row; "
                 "sort descending and leave out row i itself (by its number, not by its position in the order).")
    wrong = (
        ("sims = nn.CosineSimilarity(dim=1)(factors, factors[i][None])", "sims = factors @ factors[i]", "dot product"),
        ("order = [j for j in order if j != i]", "order = order", "itself"),
        ("descending=True", "descending=False", "least similar"),
    )

    def verify(self) -> str:
        fn = self.answer("most_similar")
        for i, n in _QUERIES:
            got = self.call(f"most_similar(factors, {i}, {n})", fn, _PLANTED.clone(), i, n)
            try:
                got = [int(v) for v in (got.tolist() if hasattr(got, "tolist") else list(got))]
            except (TypeError, ValueError):
                raise Wrong(f"most_similar returned {got!r}; return a list of row numbers") from None
            sims = _cosine(_PLANTED, i)
            best = sims[[j for j in range(len(sims)) if j != i]].sort(descending=True).values[:n]
            mine = sims[got] if got and all(0 <= j < len(sims) for j in got) else None
            if len(got) == n and i not in got and len(set(got)) == n and mine is not None and \
                    torch.allclose(mine, best, atol=1e-9):
                continue
            where = f"on a known matrix, most_similar(factors, {i}, {n})"
            if i in got:
                raise Wrong(f"{where} lists row {i} itself: every vector is most similar to itself; leave row i "
                            "out by its number (it need not come first: another row can have the same direction)")
            if len(got) != n or len(set(got)) != n:
                raise Wrong(f"{where} returned {got}; return n = {n} different rows")
            if mine is None:
                raise Wrong(f"{where} returned {got}, which are not all rows of `factors`")
            f = _PLANTED.double()
            rival = {"dot product, where long vectors win whatever their direction": f @ f[i],
                     "absolute cosine, which counts opposite directions as similar": sims.abs(),
                     "Pearson correlation (centering each row), not the cosine similarity": _cosine(
                         _PLANTED - _PLANTED.mean(1, keepdim=True), i),
                     "the dot product over the L1 lengths (sums of absolute values); cosine divides by the "
                     "Euclidean lengths, `.norm()`": (f @ f[i]) / (f.abs().sum(1) * f[i].abs().sum()),
                     "Euclidean distance, which mixes up length and direction": -(f - f[i]).norm(dim=1)}
            for words, score in rival.items():
                others = [j for j in score.argsort(descending=True).tolist() if j != i]
                top = score[others[:n]]
                if torch.allclose(score[got], top, atol=1e-9) and not torch.allclose(mine, best, atol=1e-9):
                    raise Wrong(f"{where} ranks the rows by {words}: divide the dot product by both vectors' lengths")
            if torch.allclose(mine, sims[[j for j in range(len(sims)) if j != i]].sort().values[:n], atol=1e-9):
                raise Wrong(f"{where} gives the least similar rows; sort descending")
            if sorted(mine.tolist(), reverse=True) == sorted(best.tolist(), reverse=True):
                raise Wrong(f"{where} returned the right rows in the wrong order: most similar first "
                            f"(their cosines: {[round(float(v), 4) for v in mine]})")
            want = [j for j in sims.argsort(descending=True).tolist() if j != i][:n]
            raise Wrong(f"{where} should return rows with cosines {[round(float(v), 4) for v in best]} (e.g. {want}); "
                        f"got {got} with cosines {[round(float(v), 4) for v in mine]}")
        agree("most_similar", fn, _similar_reference, _similar_inputs(), _same_similar, names=("factors", "i", "n"))
        return "rows ranked by cosine similarity, the row itself left out (also when another row ties with it)."


class Pca2(Question):
    title = "a 2-D map of the item factors (PCA)"
    names = ("pca2",)
    hint_text = ("PCA finds the directions in which the centered rows spread the most; an SVD of the centered "
                 "matrix gives them, largest first.")
    hint_more = ("Center each column (subtract its mean), then `torch.linalg.svd(x, full_matrices=False)`: "
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
        tol = 1e-3 * float(expected.abs().max())  # as on generated inputs: 0.1% of the map's extent

        def same(a: torch.Tensor, b: torch.Tensor) -> bool:  # equal up to the sign of the whole column
            return bool(torch.allclose(a, b, atol=tol, rtol=0) or torch.allclose(a, -b, atol=tol, rtol=0))

        if all(same(got[:, k], expected[:, k]) for k in range(2)):
            agree("pca2", fn, _pca_reference, _pca_inputs(), _same_pca, names=("factors",), examples=60)
            return "the first two principal components (each column's sign is arbitrary)."
        if all(same(got[:, k], expected[:, 1 - k]) for k in range(2)):
            raise Wrong("the two columns are swapped: the first column is the first component (the most variance)")
        if all(torch.allclose(got[:, k].abs(), expected[:, k].abs(), atol=tol, rtol=0) for k in range(2)):
            raise Wrong("the coordinates' signs change from row to row: only a whole column may flip its sign; do not "
                        "take absolute values")
        U, S, _ = torch.linalg.svd(x, full_matrices=False)
        if all(same(got[:, k], U[:, k]) for k in range(2)):
            raise Wrong("these are U's columns, the coordinates divided by each component's spread; multiply by S "
                        "(`U[:, :2] * S[:2]`) or project: `x @ Vh[:2].T`")
        xs = x / factors.std(0)
        _, _, Vs = torch.linalg.svd(xs, full_matrices=False)
        if all(same(got[:, k], (xs @ Vs[:2].T)[:, k]) for k in range(2)):
            raise Wrong("the columns were scaled to unit variance: only center them (subtract each column's mean)")
        _, _, Vr = torch.linalg.svd(factors, full_matrices=False)
        raw = factors @ Vr[:2].T
        if all(same(got[:, k], raw[:, k]) for k in range(2)):
            raise Wrong("the factors were not centered: the first component then points at their mean; center each "
                        "column first")
        last = x @ Vh[-2:].T
        if any(same(got[:, k], last[:, j]) for k in range(2) for j in range(2)):
            raise Wrong("these are the last components (the least variance); take the first two")
        raise Wrong(f"on known factors (40 x 6), row 0 should be at {_pair(expected[0])} (up to each column's sign); "
                    f"got {_pair(got[0])}: project the centered factors onto the first two rows of Vh")


def _pair(row: torch.Tensor) -> str:
    return f"({float(row[0]):.3f}, {float(row[1]):.3f})"


# -- generated inputs: what each question's words allow -------------------------------------------------------------
def _similar_inputs() -> Any:
    from hypothesis import strategies as st

    @st.composite
    def cases(draw: Any) -> tuple[torch.Tensor, int, int]:
        dims = draw(st.integers(1, 4))
        row = st.lists(st.integers(-3, 3), min_size=dims, max_size=dims).filter(any)  # no zero vector: no direction
        factors = torch.tensor(draw(st.lists(row, min_size=2, max_size=8)), dtype=torch.float32)
        return factors, draw(st.integers(0, len(factors) - 1)), draw(st.integers(1, len(factors) - 1))

    return cases()


def _similar_reference(factors: torch.Tensor, i: int, n: int) -> list[int]:
    sims = _cosine(factors, i)
    sims[i] = -torch.inf
    return sims.argsort(descending=True, stable=True)[:n].tolist()


def _rows(got: Any, call: str) -> list[int]:
    """A student's row numbers as ints; :class:`Wrong` for floats, text or anything else."""
    values = got.tolist() if isinstance(got, (torch.Tensor, np.ndarray)) else got
    try:
        values = [v.item() if isinstance(v, (torch.Tensor, np.generic)) else v for v in values]
    except TypeError:
        raise Wrong(f"your {call} returned {got!r}, not a list of row numbers") from None
    odd = next((v for v in values if isinstance(v, bool) or not isinstance(v, int)), None)
    if odd is not None:
        raise Wrong(f"your {call} returned {values}: a row number is an int, not {type(odd).__name__}")
    return list(values)


def _same_similar(got: Any, want: list[int], args: tuple[Any, ...]) -> str | None:
    factors, i, n = args
    rows = _rows(got, "most_similar")
    if len(rows) != n or len(set(rows)) != n or not all(0 <= j < len(factors) for j in rows):
        return f"your most_similar returned {rows}; it should list {n} different rows of factors"
    if i in rows:
        return f"your most_similar lists row {i} itself"
    sims = _cosine(factors, i)
    mine, best = sims[rows], sims[want]
    if not torch.allclose(mine, best, atol=1e-6):
        return (f"your most_similar returned {rows} with cosines {[round(float(v), 4) for v in mine]}; the most "
                f"similar rows, best first, have {[round(float(v), 4) for v in best]} (e.g. {want}; tied rows may "
                "come in any order)")
    return None


def _pca_inputs() -> Any:
    from hypothesis import strategies as st

    def spread_out(args: tuple[torch.Tensor]) -> bool:  # two clear first components: their directions are defined
        s = torch.linalg.svdvals(args[0].double() - args[0].double().mean(0))
        return bool(s[1] > 1e-3 * s[0] and s[0] > 1.3 * s[1] and (len(s) < 3 or s[1] > 1.3 * s[2]))

    @st.composite
    def cases(draw: Any) -> tuple[torch.Tensor]:
        rows, dims, seed = draw(st.integers(3, 12)), draw(st.integers(2, 6)), draw(st.integers(0, 999))
        g = torch.Generator().manual_seed(seed)
        scale = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25, 0.1])[:dims]
        return (torch.randn(rows, dims, generator=g) * scale + draw(st.sampled_from([0.0, 3.0, -5.0])),)

    return cases().filter(spread_out)


def _pca_reference(factors: torch.Tensor) -> torch.Tensor:
    x = factors.double() - factors.double().mean(0)
    return x @ torch.linalg.svd(x, full_matrices=False)[2][:2].T


def _same_pca(got: Any, want: torch.Tensor, args: tuple[Any, ...]) -> str | None:
    if isinstance(got, np.ndarray) and np.issubdtype(got.dtype, np.floating):
        got = torch.from_numpy(got)  # what sklearn's PCA gives: the same numbers
    if not isinstance(got, torch.Tensor) or not got.is_floating_point():
        kind = f"{type(got).__name__}" + (f" of {got.dtype}" if hasattr(got, "dtype") else "")
        return f"your pca2 returned {kind}: return a tensor of floats"
    if tuple(got.shape) != tuple(want.shape):
        return f"your pca2 returned shape {tuple(got.shape)}; it should be {tuple(want.shape)}, 2 coordinates per row"
    g = got.detach().double()
    extent = float(want.abs().max())

    def near(tol: float, k: int) -> bool:
        return bool(torch.allclose(g[:, k], want[:, k], atol=tol, rtol=0)
                    or torch.allclose(g[:, k], -want[:, k], atol=tol, rtol=0))

    for k in range(2):
        if not near(1e-3 * extent, k):
            tip = ("; close, but not exact: an approximate method (a randomized SVD such as torch.pca_lowrank with a "
                   "small q) does not give the principal components exactly, torch.linalg.svd does"
                   if all(near(0.05 * extent, j) for j in range(2)) else "")
            return (f"your pca2's column {k} is {[round(float(v), 3) for v in g[:3, k]]}... where the principal "
                    f"component gives {[round(float(v), 3) for v in want[:3, k]]}... (up to its sign){tip}")
    return None


QUESTIONS: tuple[type[Question], ...] = (TopBiases, MostSimilar, Pca2)
"""The questions of exercise 2, in order: q1 to q3."""
