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
from scipy.linalg.lapack import spotrf, spotri

from ..metrics import ndcg_at_k

__all__ = ["bias_baseline", "ItemModel", "ease", "ease_solution", "item_knn", "item_models", "gram",
           "choose_ease_lambda", "chunk_rows", "MIN_COUNT", "MAX_ITEMS", "LAMBDA_USERS", "LAMBDA_SAMPLE",
           "LAMBDA_ITEMS"]

MIN_COUNT = 3
"""Items need this many training interactions to be scored by EASE and item-kNN."""
MAX_ITEMS = 8000
"""At most this many (most frequent) items enter EASE and item-kNN: a Cholesky of 8,000 x 8,000 takes seconds."""
EASE_LAMBDAS = (50.0, 200.0, 800.0, 3200.0)
"""Candidates for EASE's regularisation."""
LAMBDA_USERS = 5000
"""At most this many users of the held-out slice (a seeded sample) score EASE's candidate lambdas."""
LAMBDA_SAMPLE = 20_000
"""EASE's lambda is chosen on the rows of at most this many users (a seeded sample; see :func:`choose_ease_lambda`)."""
LAMBDA_ITEMS = 1000
"""EASE's lambda is chosen on at most this many (most frequent) items: on every data set of ``bench/suite.py``, both
protocols, outer and inner training rows, and on synthetic catalogues of 10,000 and 60,000 items, the same lambda as
on all the items, at 0.11-0.68x the CPU (0.11-0.20x where the choice took 2-4 s; ``bench/ease_lambda.py``)."""


def bias_baseline(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
                  reg_u: float = 15.0, reg_i: float = 10.0, n_iter: int = 10) -> tuple[float, np.ndarray, np.ndarray]:
    """Regularised user and item biases by alternating least squares (Surprise's ``BaselineOnly``).

    Returns ``(mean, user biases, item biases)``; index 0 (unknown) keeps bias 0.
    """
    mu = float(ratings.mean(dtype=np.float64))
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
        Xk: binary ``(n_users, len(keep))`` training matrix over the covered items (CSR).
        keep: the items the matrix covers (the rest score ``-inf``).
        n_items: the catalogue size (columns of the scores).
        B: ``(len(keep), len(keep))`` item-item weights: a dense tensor (EASE) or a sparse
            matrix (item-kNN's ``k`` neighbours per item).
    """

    def __init__(self, Xk: sp.csr_matrix, keep: np.ndarray, n_items: int, B: torch.Tensor | sp.csr_matrix):
        self.Xk, self.keep, self.n_items, self.B = Xk, keep, n_items, B

    def scores(self, rows: torch.Tensor) -> torch.Tensor:
        """``(len(rows), n_items)`` scores of users (by index)."""
        out = torch.full((len(rows), self.n_items), -torch.inf, dtype=torch.float64)
        x = self.Xk[rows.numpy()]  # sparse: the cost follows the users' interactions, not the catalogue
        if isinstance(self.B, torch.Tensor):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                xt = torch.sparse_csr_tensor(torch.from_numpy(x.indptr).long(), torch.from_numpy(x.indices).long(),
                                             torch.from_numpy(x.data).float(), size=x.shape)
            part = xt @ self.B
        else:
            part = torch.from_numpy((x @ self.B).toarray())
        out[:, torch.from_numpy(self.keep)] = part.double()
        return out


def interactions(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """The binary user x item matrix of (user index, item index) rows."""
    X = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    X.data[:] = 1.0  # duplicates count once
    return X


def _keep(counts: np.ndarray, min_count: int, max_items: int) -> np.ndarray:
    """The items item models cover: at least ``min_count`` interactions, the ``max_items`` most frequent."""
    counts = counts.copy()
    counts[0] = 0  # the unknown row
    keep = np.flatnonzero(counts >= min_count)
    if len(keep) > max_items:
        keep = np.sort(keep[np.argsort(-counts[keep], kind="stable")[:max_items]])
    return keep


def _kept(X: sp.csr_matrix, min_count: int = MIN_COUNT, max_items: int = MAX_ITEMS) -> tuple[sp.csc_matrix,
                                                                                                 np.ndarray]:
    """The columns of ``X`` that item models cover (CSC), and their indices."""
    keep = _keep(np.asarray(X.sum(0)).ravel(), min_count, max_items)
    return X[:, keep].tocsc(), keep


def gram(Xc: sp.csc_matrix, width: int = 1024) -> torch.Tensor:
    """``Xc'Xc``, dense float32, one block of ``width`` columns at a time: each block's sparse
    product is at most ``k x width`` entries, so memory stays bounded on large data."""
    Xc = Xc.tocsc()
    XT = Xc.T  # CSR, sharing Xc's arrays
    k = Xc.shape[1]
    G = np.zeros((k, k), np.float32)
    for a in range(0, k, width):
        G[:, a:a + width] = (XT @ Xc[:, a:a + width]).toarray()
    return torch.from_numpy(G)


def _ease_weights(G: torch.Tensor, lam: float, *, overwrite: bool = False) -> torch.Tensor:
    """EASE's ``B = -P / diag(P)`` (zero diagonal), ``P = (G + lam I)^-1``, by LAPACK's Cholesky
    factorisation and inverse in place: one ``k x k`` matrix (``G``'s own with ``overwrite``)."""
    A = (G if overwrite else G.clone()).numpy()
    if A.shape[0] == 0:  # no item is covered: an empty model (it ranks nothing)
        return torch.zeros(0, 0)
    A[np.diag_indices_from(A)] += lam
    # A is symmetric, so its transpose (Fortran order, no copy) is the same matrix: LAPACK works in place
    c, info = spotrf(A.T, lower=1, clean=0, overwrite_a=1)
    if info == 0:
        c, info = spotri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise ValueError(f"EASE's matrix is not positive definite (LAPACK info {info}); use a larger lambda")
    P = c.T  # the inverse is in P's upper triangle: mirror it into the lower one, a block of rows at a time
    k, step = P.shape[0], 512
    for a in range(0, k, step):
        b = min(k, a + step)
        P[b:, a:b] = P[a:b, b:].T
        block = P[a:b, a:b]
        block[np.tril_indices(b - a, -1)] = block.T[np.tril_indices(b - a, -1)]
    B = torch.from_numpy(P)
    B.div_(-B.diagonal().clone())
    B.fill_diagonal_(0.0)
    return B


def _knn_weights(G: torch.Tensor, k: int, width: int = 1024) -> sp.csr_matrix:
    """Item-kNN's weights from the Gram matrix (left unchanged): cosine similarities, each item
    (column) keeping its ``k`` most similar items; one block of columns at a time."""
    n = G.shape[0]
    if n == 0:  # no item is covered: an empty model (it ranks nothing)
        return sp.csr_matrix((0, 0), dtype=np.float32)
    norm = G.diagonal().clamp(min=1e-12).sqrt()
    rows, cols, vals = [], [], []
    for a in range(0, n, width):
        b = min(n, a + width)
        S = G[:, a:b] / norm[:, None] / norm[None, a:b]
        S[torch.arange(a, b), torch.arange(b - a)] = 0.0  # an item is not its own neighbour
        top = S.topk(min(k, n), dim=0)
        rows.append(top.indices.flatten())
        cols.append(torch.arange(a, b).repeat(top.indices.shape[0]))
        vals.append(top.values.flatten())
    return sp.csr_matrix((torch.cat(vals).numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())), shape=(n, n))


def item_models(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, lam: float, k: int = 20, *,
                min_count: int = MIN_COUNT, max_items: int = MAX_ITEMS) -> tuple[ItemModel, ItemModel]:
    """EASE (regularisation ``lam``) and item-kNN (``k`` neighbours) from training rows (distinct
    (user index, item index) pairs), over the items with at least ``min_count`` of them (at most
    ``max_items`` items), sharing one interaction matrix and one Gram matrix: on large data the
    full user x item matrix is never built."""
    keep = _keep(np.bincount(items, minlength=n_items), min_count, max_items)
    column = np.full(n_items, -1, np.int64)
    column[keep] = np.arange(len(keep))
    col = column[items]
    rows = col >= 0
    Xc = sp.csc_matrix((np.ones(int(rows.sum()), np.float32), (users[rows], col[rows])),
                       shape=(n_users, len(keep)))
    del col, rows
    G = gram(Xc)
    Xk = Xc.tocsr()
    del Xc
    knn = ItemModel(Xk, keep, n_items, _knn_weights(G, k))
    return ItemModel(Xk, keep, n_items, _ease_weights(G, lam, overwrite=True)), knn


def ease(X: sp.csr_matrix, lam: float, *, min_count: int = MIN_COUNT, max_items: int = MAX_ITEMS) -> ItemModel:
    """EASE with regularisation ``lam`` on the binary matrix ``X`` (over the items with at least
    ``min_count`` interactions, at most ``max_items`` of them)."""
    Xc, keep = _kept(X, min_count, max_items)
    return ItemModel(Xc.tocsr(), keep, X.shape[1], _ease_weights(gram(Xc), lam, overwrite=True))


def ease_solution(users: np.ndarray, items: np.ndarray, relevant: np.ndarray, n_users: int, n_items: int, *,
                  min_count: int, seed: int = 0, max_items: int = MAX_ITEMS) -> tuple[torch.Tensor, torch.Tensor,
                                                                                      torch.Tensor, float]:
    """EASE as a model's ranking head: ``(keep, B, floor, lambda)`` from training rows (encoded, one per
    distinct pair; ``relevant``: which rows count when held out), ``lambda`` chosen by
    :func:`choose_ease_lambda` (seeded), over the items with at least ``min_count`` rows; ``floor`` is added
    to every score: the other items rank below every covered one, by their number of rows, and covered
    items get a tie-break by popularity (``1e-6`` x their share of the most rows: a user whose row is empty
    gets the popular items)."""
    lam = choose_ease_lambda(users, items, relevant, n_users, n_items, seed=seed, min_count=min_count,
                             max_items=max_items)
    model = ease(interactions(users, items, n_users, n_items), lam, min_count=min_count, max_items=max_items)
    counts = np.bincount(items, minlength=n_items).astype(np.float64)
    share = counts / (counts.max(initial=0) + 1.0)
    covered = np.zeros(n_items, bool)
    covered[model.keep] = True
    floor = torch.from_numpy(np.where(covered, 1e-6 * share, -1000.0 + share)).float()
    assert isinstance(model.B, torch.Tensor)
    return torch.from_numpy(model.keep), model.B, floor, float(lam)


def item_knn(X: sp.csr_matrix, k: int = 20) -> ItemModel:
    """Item-kNN: cosine similarities of items' user sets, each item keeping its ``k`` nearest
    neighbours; a user's score for an item is the sum of its similarities to the user's items."""
    Xc, keep = _kept(X)
    return ItemModel(Xc.tocsr(), keep, X.shape[1], _knn_weights(gram(Xc), k))


def choose_ease_lambda(users: np.ndarray, items: np.ndarray, relevant: np.ndarray, n_users: int, n_items: int,
                       *, seed: int = 0, n: int = 10, min_count: int = MIN_COUNT, max_items: int = MAX_ITEMS) -> float:
    """EASE's ``lambda`` chosen by NDCG@``n`` on a seeded 10% slice of the training rows, over the
    :data:`LAMBDA_ITEMS` most frequent items (each candidate inverts a matrix of their size).

    On large data the choice is made on the rows of a seeded sample of :data:`LAMBDA_SAMPLE`
    users, each candidate scaled by the sample's share of the users: EASE's weights are unchanged
    when the Gram matrix and ``lambda`` are scaled together, and a sample's Gram matrix is the
    full one scaled by that share (in expectation).

    Args:
        users: encoded training rows' user indices.
        items: their item indices.
        relevant: bool per row: whether the row counts as relevant when held out.
        n_users: rows of the interaction matrix.
        n_items: its columns.
        seed: seeds the held-out slice (and the user sample).
        n: the list length of the NDCG that decides.
        min_count: items need this many interactions (see :func:`ease`).
        max_items: at most this many of the most frequent items (see :func:`ease`).
    """
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(np.bincount(users, minlength=n_users))
    share = 1.0
    if len(active) > LAMBDA_SAMPLE:  # bounded time and memory on large data
        picked = np.zeros(n_users, bool)
        picked[rng.choice(active, LAMBDA_SAMPLE, replace=False)] = True
        rows = picked[users]
        users, items, relevant = users[rows], items[rows], relevant[rows]
        share = LAMBDA_SAMPLE / len(active)
    held = rng.random(len(users)) < 0.1
    X = interactions(users[~held], items[~held], n_users, n_items)
    rel_rows = held & relevant
    by_user: dict[int, set[int]] = {}
    for u, i in zip(users[rel_rows].tolist(), items[rel_rows].tolist()):
        by_user.setdefault(u, set()).add(i)
    if not by_user:
        return EASE_LAMBDAS[1]
    scored = np.array(sorted(by_user))
    if len(scored) > LAMBDA_USERS:  # a seeded sample bounds the cost of scoring
        scored = np.sort(rng.choice(scored, LAMBDA_USERS, replace=False))
    uidx = torch.from_numpy(scored)
    Xc, keep = _kept(X, min_count, min(max_items, LAMBDA_ITEMS))
    G = gram(Xc)
    Xk = Xc.tocsr()
    del Xc
    best, best_score = EASE_LAMBDAS[1], -1.0
    for lam in EASE_LAMBDAS:
        model = ItemModel(Xk, keep, n_items, _ease_weights(G, lam * share))
        top = _top(model.scores, X, uidx, n)
        del model
        score = ndcg_at_k(top, [by_user[int(u)] for u in uidx], n)
        if score > best_score:
            best, best_score = lam, score
    return best


def chunk_rows(n_items: int, cap: int = 1024) -> int:
    """Users scored at once so that a chunk of float64 scores stays near 128 MB (ranking it takes
    about as much again)."""
    return max(1, min(cap, 2**24 // max(1, n_items)))


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
