"""Shared fixtures: tiny synthetic data with planted structure, and the MovieLens copy beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on a machine of two cores: one thread each (torch, BLAS and the
    # processes the tests start), as two threads each would fight over the cores on small batches
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

import cflearn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def ml_root() -> Path | None:
    """Folder holding ml-latest-small: $CFLEARN_DATA or ../shared/data."""
    for root in [*(Path(p) for p in os.environ.get("CFLEARN_DATA", "").split(os.pathsep) if p), SHARED]:
        if (root / "ml-latest-small" / "ratings.csv").is_file():
            return root
    return None


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache; never download (tests that download set their own server)."""
    monkeypatch.setenv("CFLEARN_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def synth():
    """300 users x 200 items, 10% dense, planted biases and rank-4 tastes."""
    return cflearn.datasets.synthetic(n_users=300, n_items=200, density=0.1, seed=0)


@pytest.fixture(scope="session")
def synth_data(synth):
    return cflearn.from_df(synth, valid_pct=0.2, seed=42)


@pytest.fixture(scope="session")
def trained(synth_data):
    """A small dot-product model trained on the synthetic data (a few seconds on CPU)."""
    learn = cflearn.collab_learner(synth_data, "fast", progress=False)
    cflearn.fit(learn)
    return learn


@pytest.fixture(scope="session")
def ml_path() -> Path:
    root = ml_root()
    if root is None:
        pytest.skip("ml-latest-small not found in $CFLEARN_DATA or ../shared/data (integration test)")
    return root


@pytest.fixture(scope="session")
def ml_data(ml_path):
    return cflearn.from_df(cflearn.datasets.movielens("ml-latest-small", path=ml_path), valid_pct=0.2, seed=42)
