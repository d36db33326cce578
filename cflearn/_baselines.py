"""The baselines :func:`cflearn.evaluate` puts beside a model: biases, EASE and item-kNN.

EASE (Steck 2019, "Embarrassingly Shallow Autoencoders") is the closed-form item-item model
``B = I - P / diag(P)``, ``P = (X'X + lambda I)^-1`` over the binary user x item matrix ``X``,
often the strongest simple top-N model on MovieLens; its ``lambda`` is chosen on a held-out
slice of the training rows. Item-kNN is cosine similarity between items' user sets, each item
keeping its ``k`` nearest neighbours (as LensKit's ``ItemKNN`` on implicit data). Both work on
the items with at least ``MIN_COUNT`` training interactions (at most ``MAX_ITEMS`` of the most
frequent), so their cost is bounded: items rarer than that are not recommended by them (on
MovieLens this changes EASE's NDCG@10 by less than 0.001).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from .metrics import ndcg_at_k

__all__ = ["bias_baseline", "ItemModel", "ease", "item_knn", "choose_ease_lambda", "chunk_rows", "MIN_COUNT",
           "MAX_ITEMS"]

MIN_COUNT = 3
"""Items need this many training interactions to be scored by EASE and item-kNN."""
MAX_ITEMS = 8000
"""At most this many (most frequent) items enter EASE and item-kNN: a Cholesky of 8,000 x 8,000 takes seconds."""
EASE_LAMBDAS = (50.0, 200.0, 800.0, 3200.0)
"""Candidates for EASE's regularisation."""
LAMBDA_USERS = 5000
"""At most this many users of the held-out slice (a seeded sample) score EASE's candidate lambdas."""


def bias_baseline(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
                  reg_u: float = 15.0, reg_i: float = 10.0, n_iter: int = 10) -> tuple[float, np.ndarray, np.ndarray]:
    """Regularised user and item biases by alternating least squares (Surprise's ``BaselineOnly``).

    Returns ``(mean, user biases, item biases)``; index 0 (unknown) keeps bias 0.
    """
    mu = float(ratings.mean())
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    n_u = np.bincount(users, minlength=n_users) + reg_u
    n_i = np.bincount(items, minlength=n_items) + reg_i
    for _ in range(n_iter):
        bi = np.bincount(items, weights=ratings - mu - bu[users], minlength=n_items) / n_i
        bu = np.bincount(users, weights=ratings - mu - bi[items], minlength=n_users) / n_u
    bu[0] = bi[0] = 0.0
    return mu, bu, bi


class ItemModel:
    """An item-item model: a user's scores are their interaction row times an item x item matrix.

    Attributes:
        X: binary ``(n_users, n_items)`` training matrix (CSR).
        keep: the items the matrix covers (the rest score ``-inf``).
        B: ``(len(keep), len(keep))`` item-item weights.
    """

    def __init__(self, X: sp.csr_matrix, keep: np.ndarray, B: torch.Tensor):
        self.X, self.keep, self.B = X, keep, B
        self._Xk = X[:, keep].tocsr()

    def scores(self, rows: torch.Tensor) -> torch.Tensor:
        """``(len(rows), n_items)`` scores of users (by index)."""
        out = torch.full((len(rows), self.X.shape[1]), -torch.inf, dtype=torch.float64)
        x = self._Xk[rows.numpy()]  # sparse: the cost follows the users' interactions, not the catalogue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            xt = torch.sparse_csr_tensor(torch.from_numpy(x.indptr).long(), torch.from_numpy(x.indices).long(),
                                         torch.from_numpy(x.data).float(), size=x.shape)
        out[:, torch.from_numpy(self.keep)] = (xt @ self.B).double()
        return out


def interactions(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """The binary user x item matrix of (user index, item index) rows."""
    X = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    X.data[:] = 1.0  # duplicates count once
    return X


def _kept(X: sp.csr_matrix, min_count: int = MIN_COUNT, max_items: int = MAX_ITEMS) -> np.ndarray:
    counts = np.asarray(X.sum(0)).ravel()
    counts[0] = 0  # the unknown row
    keep = np.flatnonzero(counts >= min_count)
    if len(keep) > max_items:
        keep = np.sort(keep[np.argsort(-counts[keep], kind="stable")[:max_items]])
    return keep


def _gram(X: sp.csr_matrix, keep: np.ndarray, budget: int = 20_000_000) -> torch.Tensor:
    """``X'X`` over the kept items, dense float32, summed over chunks of users whose sparse product
    stays under ``budget`` entries (a user with ``m`` items adds ``m^2``): bounded memory on large data."""
    Xk = X[:, keep].tocsr()
    k = len(keep)
    G = torch.zeros(k * k)
    work = np.cumsum(np.diff(Xk.indptr).astype(np.int64) ** 2)
    cuts = np.searchsorted(work, np.arange(budget, int(work[-1]) if len(work) else 0, budget), side="right")
    edges = np.unique(np.concatenate([[0], cuts, [Xk.shape[0]]]))
    for start, end in zip(edges[:-1].tolist(), edges[1:].tolist()):
        part = Xk[start:end]
        prod = (part.T @ part).tocoo()
        G.index_add_(0, torch.from_numpy(prod.row.astype(np.int64) * k + prod.col),
                     torch.from_numpy(prod.data.astype(np.float32)))
    return G.view(k, k)


def _ease_weights(G: torch.Tensor, lam: float) -> torch.Tensor:
    A = G.clone()
    A.diagonal().add_(lam)
    L = torch.linalg.cholesky(A)
    del A
    B = torch.cholesky_inverse(L)  # P; then B = -P / diag(P) in place (one k x k matrix at a time)
    del L
    B.div_(-B.diagonal().clone())
    B.fill_diagonal_(0.0)
    return B


def ease(X: sp.csr_matrix, lam: float, *, min_count: int = MIN_COUNT, max_items: int = MAX_ITEMS) -> ItemModel:
    """EASE with regularisation ``lam`` on the binary matrix ``X`` (over the items with at least
    ``min_count`` interactions, at most ``max_items`` of them)."""
    keep = _kept(X, min_count, max_items)
    return ItemModel(X, keep, _ease_weights(_gram(X, keep), lam))


def item_knn(X: sp.csr_matrix, k: int = 20) -> ItemModel:
    """Item-kNN: cosine similarities of items' user sets, each item keeping its ``k`` nearest
    neighbours; a user's score for an item is the sum of its similarities to the user's items."""
    keep = _kept(X)
    G = _gram(X, keep)
    norm = G.diagonal().clamp(min=1e-12).sqrt()
    S = G / norm[:, None] / norm[None, :]
    S.fill_diagonal_(0.0)
    if S.shape[0] > k:
        top = S.topk(k, dim=0)  # neighbours of each target item (column): the k most similar items
        S = torch.zeros_like(S).scatter_(0, top.indices, top.values)
    return ItemModel(X, keep, S)


def choose_ease_lambda(users: np.ndarray, items: np.ndarray, relevant: np.ndarray, n_users: int, n_items: int,
                       *, seed: int = 0, n: int = 10, min_count: int = MIN_COUNT, max_items: int = MAX_ITEMS) -> float:
    """EASE's ``lambda`` chosen by NDCG@``n`` on a seeded 10% slice of the training rows.

    Args:
        users, items: encoded training rows.
        relevant: bool per row: whether the row counts as relevant when held out.
        n_users, n_items: matrix shape.
        seed, n, min_count, max_items: the slice's seed, the list length, the items (see :func:`ease`).
    """
    rng = np.random.default_rng(seed)
    held = rng.random(len(users)) < 0.1
    X = interactions(users[~held], items[~held], n_users, n_items)
    rel_rows = held & relevant
    by_user: dict[int, set[int]] = {}
    for u, i in zip(users[rel_rows].tolist(), items[rel_rows].tolist()):
        by_user.setdefault(u, set()).add(i)
    if not by_user:
        return EASE_LAMBDAS[1]
    users = np.array(sorted(by_user))
    if len(users) > LAMBDA_USERS:  # a seeded sample bounds the cost on large data
        users = np.sort(rng.choice(users, LAMBDA_USERS, replace=False))
    uidx = torch.from_numpy(users)
    keep = _kept(X, min_count, max_items)
    G = _gram(X, keep)
    best, best_score = EASE_LAMBDAS[1], -1.0
    for lam in EASE_LAMBDAS:
        model = ItemModel(X, keep, _ease_weights(G, lam))
        top = _top(model.scores, X, uidx, n)
        score = ndcg_at_k(top, [by_user[int(u)] for u in uidx], n)
        if score > best_score:
            best, best_score = lam, score
    return best


def chunk_rows(n_items: int, cap: int = 1024) -> int:
    """Users scored at once so that a chunk of float64 scores stays near 256 MB."""
    return max(1, min(cap, 2**25 // max(1, n_items)))


def _top(score_rows: Callable[[torch.Tensor], torch.Tensor], X: sp.csr_matrix, uidx: torch.Tensor,
         n: int) -> list[list[int]]:
    """Top-``n`` unseen items per user (for choosing lambda), scoring users in chunks."""
    out: list[list[int]] = []
    step = chunk_rows(X.shape[1])
    for s in range(0, len(uidx), step):
        rows = uidx[s:s + step]
        scores = score_rows(rows)
        seen = X[rows.numpy()].tocoo()
        scores[torch.from_numpy(seen.row).long(), torch.from_numpy(seen.col).long()] = -torch.inf
        top = scores.topk(min(n, scores.shape[1]), dim=1)
        out += [[i for i, v in zip(idx, val) if v > -np.inf] for idx, val in zip(top.indices.tolist(),
                                                                                top.values.tolist())]
    return out
