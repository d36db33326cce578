"""Training's threads: the cores free when it starts, for torch and BLAS together, unless the user chose."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

import cflearn
from cflearn.train import _threads
from cflearn.train._threads import Threads, free_cores, threads_for, training_threads


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.fixture
def no_user_choice(monkeypatch):
    """No thread variable set and torch at the count cflearn saw at import (2: a machine of two cores)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    monkeypatch.setattr(_threads, "_DEFAULT", 2)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("free, default, expected", [(None, 2, 2), (0.0, 2, 1), (0.4, 2, 1), (1.0, 2, 1),
                                                     (1.6, 2, 2), (7.9, 4, 4), (2.6, 8, 3)])
def test_threads_are_the_free_cores_rounded_at_least_one_at_most_the_default(free, default, expected):
    assert threads_for(free, default) == expected


def test_free_cores_leave_out_this_process_own_time(monkeypatch):
    # two CPUs, 10 jiffies each pass: 12 of the 20 busy, 8 of them this process's (its BLAS threads spinning)
    stats = iter([(100.0, 200.0, 2), (108.0, 220.0, 2)])
    own = iter([50.0, 58.0])
    monkeypatch.setattr(_threads, "_cpu_times", lambda: next(stats))
    monkeypatch.setattr(_threads, "_own_jiffies", lambda: next(own))
    monkeypatch.setattr(_threads, "_cores", lambda: 2)
    monkeypatch.setattr(_threads.time, "sleep", lambda s: None)
    assert free_cores() == pytest.approx(1.6)  # others used 4 jiffies of 10 on one CPU: 0.4 cores
    monkeypatch.setattr(_threads, "_cpu_times", lambda: None)
    monkeypatch.setattr(_threads, "_own_jiffies", lambda: 0.0)
    assert free_cores() is None  # not Linux: unknown, and threads_for keeps the default


def test_a_busy_machine_gets_one_thread_for_torch_and_blas_then_both_back(no_user_choice, monkeypatch):
    monkeypatch.setattr(_threads, "free_cores", lambda: 0.3)
    monkeypatch.setattr(_threads, "_cores", lambda: 2)
    blas_before = _blas_threads()
    with training_threads() as chosen:
        assert chosen == Threads(1, "0.3 of 2 cores free")
        assert torch.get_num_threads() == 1 and _blas_threads() == {1}
    assert torch.get_num_threads() == 2 and _blas_threads() == blas_before


def test_an_idle_machine_keeps_the_defaults(no_user_choice, monkeypatch):
    monkeypatch.setattr(_threads, "free_cores", lambda: 2.0)
    with training_threads() as chosen:
        assert chosen.n == 2 and torch.get_num_threads() == 2


def test_the_user_choice_stands(no_user_choice, monkeypatch):
    monkeypatch.setattr(_threads, "free_cores", lambda: 0.0)  # busy, but the user said
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with training_threads() as chosen:
        assert chosen == Threads(2, "your OPENBLAS_NUM_THREADS=2") and torch.get_num_threads() == 2
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    torch.set_num_threads(3)
    with training_threads() as chosen:
        assert chosen == Threads(3, "your torch.set_num_threads(3)") and torch.get_num_threads() == 3
    with training_threads(1) as chosen:  # threads=N sets both pools, whatever else was set
        assert chosen == Threads(1, "threads=1") and torch.get_num_threads() == 1 and _blas_threads() == {1}
        with training_threads() as inner:  # a block inside keeps the outer choice (cflearn fit's inside the run's)
            assert inner == chosen
        with pytest.raises(cflearn.ConfigError, match="give the threads once"):
            with training_threads(2):
                pass
    assert torch.get_num_threads() == 3
    with pytest.raises(cflearn.ConfigError, match="threads must be a positive integer"):
        with training_threads(0):
            pass


def test_fit_records_the_threads_it_trained_with(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", epochs=1, progress=False)
    before = torch.get_num_threads()
    cflearn.fit(learn, threads=1)
    assert learn.cf.fit_threads == Threads(1, "threads=1") and torch.get_num_threads() == before
