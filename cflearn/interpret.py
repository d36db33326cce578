"""See the model: learned biases, a map of the factors, why a pair got its score, titles to IDs.

Every function takes a learner or a loaded model and reads the vectors the model really scores
with (:meth:`cflearn.models.Contract.tables`: hybrid items include their features), so the
answers are the model's, and a loaded model answers as the learner it was saved from. Models
without factor tables (NN, your own module) get a :class:`cflearn.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ._errors import ConfigError, UnknownIDError, check_count
from .data._vocab import find_titles, item_titles
from .models import Tables, contract, rating_head
from .report._plots import Figure, literal_text
from .serve._collab import CollabModel, as_collab
from .serve._scoring import encode_items, encode_users, eval_mode

if TYPE_CHECKING:
    from fastai.learner import Learner

__all__ = ["biases", "factor_coords", "factor_map", "explain", "Explanation", "title_to_id", "titles", "find_titles"]

Side = Literal["user", "item"]


def _tables(cf: CollabModel, what: str) -> Tables:
    cf.require_trained()
    with eval_mode(cf.model):
        tables = cf.contract.tables()
    if tables is None:
        raise ConfigError(f"{what} needs a model with user/item factor tables (presets fast, best, book); "
                          f"{type(cf.model).__name__} is scored by forward passes only")
    return Tables(*(t.detach().float().cpu() for t in tables))


def _side_stats(cf: CollabModel, side: Side) -> tuple[Any, np.ndarray, np.ndarray]:
    """(vocabulary, training ratings per row, mean training rating per row) of one side."""
    if side == "item":
        vocab, counts, means = cf.items, cf.item_counts, cf.item_means
    elif side == "user":
        vocab = cf.users
        counts = torch.diff(cf.seen_indptr) if cf.seen_indptr is not None else None
        means = cf.user_means
    else:
        raise ConfigError(f"side must be 'user' or 'item', got {side!r}")
    n = len(vocab)
    return (vocab, counts.numpy() if counts is not None else np.zeros(n, np.int64),
            means.numpy() if means is not None else np.full(n, np.nan))


def biases(learn: Learner | CollabModel, n: int = 10, *, side: Side = "item", min_ratings: int = 0) -> pd.DataFrame:
    """The ``n`` highest and ``n`` lowest learned biases, with raw IDs, titles, rating counts and means.

    A high bias with an ordinary mean rating is an item liked *beyond* what its ratings' average
    says once the raters' own leniency is accounted for (fastbook's "movies people like more than
    their average rating suggests").

    Args:
        learn: a trained learner or a loaded model with factor tables.
        n: rows from each end.
        side: ``"item"`` or ``"user"``.
        min_ratings: leave out rows with fewer training ratings (the noise of items rated once).

    Returns:
        DataFrame ``end ("highest"/"lowest"), <side>, (title), bias, n_ratings, mean_rating``.
    """
    cf = as_collab(learn)
    check_count("n", n)
    tables = _tables(cf, "biases")
    bias = (tables.item_bias if side == "item" else tables.user_bias).numpy()
    vocab, counts, means = _side_stats(cf, side)
    keep = np.flatnonzero((np.arange(len(vocab)) > 0) & (counts >= max(min_ratings, 1)))  # rows that trained
    order = keep[np.argsort(-bias[keep], kind="stable")]
    ends = [("highest", order[:n]), ("lowest", order[::-1][:n])]
    titles = item_titles(cf.item_info) if side == "item" else None
    frames = []
    for end, rows in ends:
        frame = pd.DataFrame({"end": end, side: vocab.decode(rows)})
        if titles is not None:
            frame["title"] = titles.reindex(frame[side].to_numpy()).to_numpy()
        frame["bias"], frame["n_ratings"], frame["mean_rating"] = bias[rows], counts[rows], means[rows]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def factor_coords(learn: Learner | CollabModel, n: int = 50, *, side: Side = "item") -> pd.DataFrame:
    """The ``n`` most-rated items (or users) placed by the first two principal components of their vectors.

    The PCA is computed on those rows' vectors (centred; ``torch.linalg.svd``), with each
    component's sign fixed so that its largest loading is positive: the same model gives the same map.

    Returns:
        DataFrame ``<side>, (title), n_ratings, pc1, pc2``; ``attrs["explained"]`` holds each
        component's share of the variance.
    """
    cf = as_collab(learn)
    check_count("n", n)
    tables = _tables(cf, "factor_coords")
    vectors = tables.items if side == "item" else tables.users
    vocab, counts, _ = _side_stats(cf, side)
    candidates = np.flatnonzero((np.arange(len(vocab)) > 0) & (counts > 0))
    rows = candidates[np.argsort(-counts[candidates], kind="stable")][:n]
    if len(rows) < 3:
        raise ConfigError(f"a factor map needs at least 3 {side}s with training ratings, got {len(rows)}")
    x = vectors[torch.from_numpy(rows)].double()
    x = x - x.mean(0)
    _, s, vt = torch.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    coords = (x @ (comps * signs).T).numpy()
    frame = pd.DataFrame({side: vocab.decode(rows)})
    titles = item_titles(cf.item_info) if side == "item" else None
    if titles is not None:
        frame["title"] = titles.reindex(frame[side].to_numpy()).to_numpy()
    frame["n_ratings"], frame["pc1"], frame["pc2"] = counts[rows], coords[:, 0], coords[:, 1]
    var = (s**2).numpy()
    frame.attrs["explained"] = (var[:2] / var.sum()).tolist() if var.sum() > 0 else [0.0, 0.0]
    return frame


@literal_text
def factor_map(learn: Learner | CollabModel, n: int = 50, *, side: Side = "item", labels: int = 25,
               title: str | None = None) -> Figure:
    """A scatter of :func:`factor_coords`, with at most ``labels`` readable, non-overlapping labels.

    Labels go to the most-rated and the most extreme points first; a label that would overlap
    one already drawn is left out. Returns the ``Figure`` (never shown: works headless).
    """
    frame = factor_coords(learn, n, side=side)
    fig = Figure(figsize=(9, 7), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    size = 12 + 60 * np.sqrt(frame["n_ratings"] / max(1, frame["n_ratings"].max()))
    ax.scatter(frame["pc1"], frame["pc2"], s=size, alpha=0.55, color="#4C72B0", edgecolor="white", linewidth=0.5)
    names = frame["title"] if "title" in frame.columns else frame[side].astype(str)
    names = names.fillna(frame[side].astype(str)).map(_short)
    reach = pd.Series(np.hypot(frame["pc1"] - frame["pc1"].mean(), frame["pc2"] - frame["pc2"].mean()))
    priority = np.argsort(-(frame["n_ratings"].rank(pct=True) + reach.rank(pct=True)).to_numpy(), kind="stable")
    canvas = FigureCanvasAgg(fig)  # a renderer to measure labels with (headless)
    fig.draw_without_rendering()  # lay the axes out, so label boxes are in their final place
    renderer = canvas.get_renderer()
    placed: list[Any] = []
    for k in priority:
        if len(placed) >= labels:
            break
        text = ax.annotate(names.iloc[k], (frame["pc1"].iloc[k], frame["pc2"].iloc[k]), xytext=(4, 3),
                           textcoords="offset points", fontsize=8, color="#222222")
        box = text.get_window_extent(renderer).expanded(1.05, 1.15)
        if any(box.overlaps(other) for other in placed) or not ax.bbox.contains(box.x0, box.y0):
            text.remove()
            continue
        placed.append(box)
    ev = frame.attrs["explained"]
    ax.set_xlabel(f"PC1 ({ev[0]:.0%} of the variance)")
    ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
    ax.axhline(0, color="#bbbbbb", lw=0.6, zorder=0)
    ax.axvline(0, color="#bbbbbb", lw=0.6, zorder=0)
    ax.set_title(title or f"The {len(frame)} most-rated {side}s by the first two principal components of their factors")
    return fig


def _short(name: str, width: int = 28) -> str:
    name = re.sub(r"\s*\(\d{4}\)\s*$", "", str(name))  # drop MovieLens' "(1995)"
    name = re.sub(r"^(.*), (The|A|An)$", r"\2 \1", name)  # "Matrix, The" -> "The Matrix"
    return name if len(name) <= width else name[: width - 1] + "…"


@dataclasses.dataclass
class Explanation:
    """Why a user got a score for an item: the raw score split into parts that add up to it.

    Attributes:
        user, item: the raw IDs.
        parts: DataFrame ``part, value``; the values sum to ``raw``.
        factors: the factors contributing most to the dot product (``factor, user, item, product``).
        raw: the model's raw score (before the output transform).
        score: the model's output (the predicted rating, unclipped).
    """

    user: Any
    item: Any
    parts: pd.DataFrame
    factors: pd.DataFrame
    raw: float
    score: float

    def __repr__(self) -> str:
        lines = [f"user {self.user!r}, item {self.item!r}: score {self.score:.3f} (raw {self.raw:+.3f} =)"]
        lines += [f"  {row.part:<40} {row.value:+.3f}" for row in self.parts.itertuples()]
        top = ", ".join(f"#{r.factor} {r.product:+.3f}" for r in self.factors.itertuples())
        return "\n".join(lines + [f"  largest factor products: {top}"])


def explain(learn: Learner | CollabModel, user: Any, item: Any, *, top: int = 3) -> Explanation:
    """Split the model's raw score of ``(user, item)`` into additive parts.

    Parts: ``global offset`` (the average trained user bias + average trained item bias),
    ``user bias`` and ``item bias`` relative to those averages, and ``dot product`` of the
    vectors (a hybrid user's whole vector and bias, features included); for a hybrid model the
    item's parts are split into its collaborative part and one
    part per side feature (the feature's share of the item's feature mean: its bias and its dot
    product with the user). They add up to the raw score; the output transform turns it into
    the prediction.

    Raises:
        UnknownIDError: an ID not in the model (an explanation needs trained rows).
    """
    cf = as_collab(learn)
    tables = _tables(cf, "explain")
    u = int(encode_users(cf, [user])[0])
    i = int(encode_items(cf, [item])[0])
    if u == 0 or i == 0:
        what = f"user {user!r}" if u == 0 else f"item {item!r}"
        raise UnknownIDError(f"{what} is not in the training data; an explanation needs a trained user and item")
    with eval_mode(cf.model):  # the parts are the model's own (a hybrid model's item side split by feature)
        rows, raw = contract(rating_head(cf.model)).explain(u, i)
        score = float(cf.contract.output(torch.tensor([raw]))[0])
    parts = pd.DataFrame(rows, columns=["part", "value"])
    pu, qi = tables.users[u], tables.items[i]
    prod = (pu * qi).numpy()
    best = np.argsort(-np.abs(prod), kind="stable")[:top]
    factors = pd.DataFrame({"factor": best, "user": pu.numpy()[best], "item": qi.numpy()[best], "product": prod[best]})
    return Explanation(user, item, parts, factors, raw, score)


def titles(learn: Learner | CollabModel, items: Iterable[Any], *, missing: str | None = None) -> list[str]:
    """The title of each raw item ID, looked up by ID (never by position in a table).

    Args:
        learn: a trained model whose item table has a ``title`` column.
        items: raw item IDs, e.g. ``learn.dls.classes["movieId"][rows]``.
        missing: what to give an ID without a title (such as ``"#na#"``, row 0's class, the
            unknown item); by default such an ID is an error.

    Raises:
        UnknownIDError: an ID has no title and ``missing`` is not given.
        ConfigError: the model has no item titles.
    """
    cf = as_collab(learn)
    table = item_titles(cf.item_info)
    if table is None:
        raise ConfigError("this model has no item titles: build the data with items=... holding a 'title' column")
    out = []
    for item in items:
        item = item.item() if hasattr(item, "item") else item
        title = table.get(item) if item in table.index else None
        if title is None or (isinstance(title, float) and np.isnan(title)):
            if missing is None:
                raise UnknownIDError(f"item {item!r} has no title; pass missing=... to show such IDs (row 0's "
                                     "'#na#' stands for the unknown item)")
            title = missing
        out.append(str(title))
    return out


def title_to_id(learn: Learner | CollabModel, title: str) -> Any:
    """The item ID of a title (exact, ignoring case; or the only title containing ``title``).

    Raises:
        UnknownIDError: no such title, or several match (the message lists them with their IDs).
        ConfigError: the model has no item titles.
    """
    cf = as_collab(learn)
    titles = item_titles(cf.item_info)
    if titles is None:
        raise ConfigError("this model has no item titles: build the data with items=... holding a 'title' column")
    found = find_titles(titles, title)
    if len(found) == 1 or (len(found) and found.astype(str).str.casefold().eq(title.casefold().strip()).all()):
        value = found.index[0]
        return value.item() if hasattr(value, "item") else value
    if len(found) == 0:
        raise UnknownIDError(f"no item titled {title!r}")
    options = "; ".join(f"{t!r} (item {i!r})" for i, t in found.items())
    raise UnknownIDError(f"{title!r} matches several titles: {options}; pass one of the IDs")
