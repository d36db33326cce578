"""The evaluation baselines' building blocks: each bounded-memory path equals the plain formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cflearn
import cflearn.evaluation._baselines as B
from cflearn.callbacks import ReleaseMemory


@pytest.fixture(scope="module")
def rows():
    """Skewed interactions: 300 users x 200 items, a few items far more popular than the rest."""
    rng = np.random.default_rng(0)
    users = rng.integers(1, 301, 6000)
    items = (rng.pareto(1.0, 6000) * 10).astype(np.int64) % 200 + 1
    pairs = np.unique(np.stack([users, items], 1), axis=0)
    return pairs[:, 0], pairs[:, 1]


@pytest.fixture(scope="module")
def X(rows):
    return B.interactions(*rows, 301, 201)


def _dense_ease(G: torch.Tensor, lam: float) -> torch.Tensor:
    P = torch.linalg.inv(G.double() + lam * torch.eye(len(G), dtype=torch.float64))
    out = -P / P.diagonal()
    return out.fill_diagonal_(0.0)


def test_gram_in_column_blocks_equals_the_one_shot_product(X):
    Xc, keep = B._kept(X)
    assert 10 < len(keep) < X.shape[1] - 1  # rare items are left out
    full = torch.from_numpy((Xc.T @ Xc).toarray())
    for width in (7, 64, 10_000):
        assert torch.equal(B.gram(Xc, width=width), full)


def test_ease_weights_in_place_equal_the_inverse_formula(X):
    Xc, _ = B._kept(X)
    G = B.gram(Xc)
    expected = _dense_ease(G, 30.0)
    kept = B._ease_weights(G, 30.0)  # G untouched
    torch.testing.assert_close(kept.double(), expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(G, B.gram(Xc))
    own = G.clone()
    in_place = B._ease_weights(own, 30.0, overwrite=True)
    assert in_place.data_ptr() == own.data_ptr()  # one k x k matrix: the Gram matrix's own memory
    torch.testing.assert_close(in_place, kept)


def test_ease_is_unchanged_when_gram_and_lambda_scale_together(X):
    """The rule behind choosing lambda on a sample of users and scaling it by their share."""
    G = B.gram(B._kept(X)[0])
    torch.testing.assert_close(B._ease_weights(G * 4, 120.0), B._ease_weights(G, 30.0), rtol=1e-3, atol=1e-5)


def test_knn_weights_in_blocks_equal_the_dense_top_k(X):
    G = B.gram(B._kept(X)[0])
    norm = G.diagonal().clamp(min=1e-12).sqrt()
    S = G / norm[:, None] / norm[None, :]
    S.fill_diagonal_(0.0)
    top = S.topk(5, dim=0)
    expected = torch.zeros_like(S).scatter_(0, top.indices, top.values)
    for width in (3, 1024):
        got = torch.from_numpy(B._knn_weights(G, 5, width=width).toarray())
        torch.testing.assert_close(got, expected)
        assert int((got != 0).sum(0).max()) <= 5  # k neighbours per item


def test_item_models_from_rows_score_like_the_matrix_versions(rows, X):
    ease, knn = B.item_models(*rows, 301, 201, 30.0, k=5)
    users = torch.tensor([1, 17, 250])
    torch.testing.assert_close(ease.scores(users), B.ease(X, 30.0).scores(users), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(knn.scores(users), B.item_knn(X, k=5).scores(users))
    s = ease.scores(users)
    assert s.shape == (3, 201) and torch.isinf(s[:, 0]).all()  # the unknown item is never scored


def test_lambda_on_a_user_sample_is_a_grid_value_and_seeded(rows, monkeypatch):
    users, items = rows
    relevant = np.ones(len(users), bool)
    full = B.choose_ease_lambda(users, items, relevant, 301, 201)
    monkeypatch.setattr(B, "LAMBDA_SAMPLE", 150)  # half the users: the sampled path
    calls = []
    weights = B._ease_weights
    monkeypatch.setattr(B, "_ease_weights", lambda G, lam, **kw: calls.append(lam) or weights(G, lam, **kw))
    sampled = B.choose_ease_lambda(users, items, relevant, 301, 201)
    assert full in B.EASE_LAMBDAS and sampled in B.EASE_LAMBDAS
    assert calls == pytest.approx([lam * 150 / 300 for lam in B.EASE_LAMBDAS])  # each scaled by the share
    assert B.choose_ease_lambda(users, items, relevant, 301, 201) == sampled


def test_lambda_is_chosen_on_the_most_frequent_items_and_the_solution_covers_them_all(rows, monkeypatch):
    users, items = rows
    relevant = np.ones(len(users), bool)
    sizes = []
    weights = B._ease_weights
    monkeypatch.setattr(B, "_ease_weights", lambda G, lam, **kw: sizes.append(len(G)) or weights(G, lam, **kw))
    monkeypatch.setattr(B, "LAMBDA_ITEMS", 20)
    keep, W, _, lam = B.ease_solution(users, items, relevant, 301, 201, min_count=3)
    assert sizes[:-1] == [20] * len(B.EASE_LAMBDAS)  # each candidate: the 20 most frequent items
    assert sizes[-1] == len(keep) == len(W) > 20  # the solution: every covered item
    counts = np.bincount(items, minlength=201)
    assert lam in B.EASE_LAMBDAS and counts[keep].min() >= 3


def test_release_memory_callback_trims_every_n_batches_without_changing_training(synth_data, monkeypatch):
    import cflearn.callbacks as C

    calls = []
    monkeypatch.setattr(C, "release_memory", lambda collect=True: calls.append(collect))
    plain = cflearn.collab_learner(synth_data, "fast", epochs=2, progress=False, seed=3)
    cflearn.fit(plain)
    trimmed = cflearn.collab_learner(synth_data, "fast", epochs=2, progress=False, seed=3, cbs=[ReleaseMemory(every=2)])
    cflearn.fit(trimmed)
    batches = 2 * len(trimmed.dls.train)
    assert len(calls) >= batches // 2 + 2 and not any(calls)  # every 2nd batch and each epoch; no gc pauses
    for a, b in zip(plain.model.parameters(), trimmed.model.parameters()):
        assert torch.equal(a, b)
