"""How many threads training uses: the cores free when it starts, for torch and BLAS together, unless you chose.

torch's default (one intra-op thread per core) and OpenBLAS's (numpy's and scipy's, which solve the default's
EASE head) assume an idle machine. On a machine busy with anything else, threads that wait for each other's
cores make every step slower: on this project's 2-core machine with two busy loops, the default's fit of
ml-latest-small took 3.8-4.3x its idle time with both pools at their defaults, 2.5-2.9x with torch capped
alone and 1.7-1.8x with both capped (``bench/threads_env.py``, ``bench/threads.py``). So while cflearn trains,
torch and BLAS both get the cores that are free now (sampled from ``/proc/stat`` over 0.1 s, this process's
own time left out), at least one and at most torch's default, and get their settings back afterwards.

The work's size does not enter: on every preset measured on an idle machine, one thread was slower than
two (``fast`` 1.10-1.16x, the default 1.07-1.08x), so fewer threads than free cores never paid.

Your choice stands: ``threads=N`` (:func:`cflearn.fit`, ``cflearn fit --threads N``) sets both pools; with
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` set, or ``torch.set_num_threads`` called
after cflearn was imported, nothing is changed. A fixed seed gives the same weights for the same thread count;
the default's EASE head is rounded differently by one BLAS thread and by two, so pass ``threads`` where runs on
machines under different loads must match to the bit.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import NamedTuple

import torch

from .._errors import ConfigError, check_count

__all__ = ["Threads", "free_cores", "threads_for", "training_threads"]

_DEFAULT = torch.get_num_threads()
"""torch's thread count when cflearn was imported: a different one later is the user's choice."""
_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_SAMPLE_S = 0.1
_active: list[Threads] = []  # the choice in force (nested blocks keep the outer one)


class Threads(NamedTuple):
    """The threads a training block runs with and why (for the run's summary)."""

    n: int
    reason: str

    def __str__(self) -> str:
        return f"{self.n} thread{'s' if self.n != 1 else ''} ({self.reason})"


def _cpu_times() -> tuple[float, float, int] | None:
    """(idle, total) jiffies of the machine's CPUs and their number, from ``/proc/stat``; ``None``
    where there is none."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
        fields = [float(v) for v in lines[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    if len(fields) < 5:
        return None
    n_cpus = sum(1 for line in lines[1:] if line.startswith("cpu"))
    return fields[3] + fields[4], sum(fields), max(1, n_cpus)  # idle + iowait


def _own_jiffies() -> float | None:
    """This process's CPU time (all its threads) in jiffies, from ``/proc/self/stat``."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return float(fields[11]) + float(fields[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores(sample: float = _SAMPLE_S) -> float | None:
    """How many of this process's cores other processes left idle over the next ``sample`` seconds
    (``None``: unknown, e.g. not Linux). This process's own threads (a BLAS pool still spinning) do
    not count as load."""
    first, own0 = _cpu_times(), _own_jiffies()
    if first is None or own0 is None:
        return None
    time.sleep(sample)
    second, own1 = _cpu_times(), _own_jiffies()
    if second is None or own1 is None or second[1] <= first[1]:
        return None
    per_cpu = (second[1] - first[1]) / second[2]  # jiffies that passed on each CPU
    busy = (second[1] - first[1]) - (second[0] - first[0]) - (own1 - own0)
    return max(0.0, min(float(_cores()), second[2] - max(0.0, busy) / per_cpu))


def threads_for(free: float | None, default: int | None = None) -> int:
    """The threads for training when ``free`` cores are idle: the free cores, rounded, at least one and at
    most torch's ``default`` (``None``: its count when cflearn was imported; all of them while nothing is
    known)."""
    default = _DEFAULT if default is None else default
    if free is None:
        return default
    return max(1, min(default, int(free + 0.5)))


def _user_choice() -> str | None:
    """What the user set that fixes the threads, or ``None``."""
    for name in _ENV:
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    if torch.get_num_threads() != _DEFAULT:
        return f"torch.set_num_threads({torch.get_num_threads()})"
    return None


@contextlib.contextmanager
def training_threads(threads: int | None = None) -> Iterator[Threads]:
    """torch's intra-op threads and BLAS's set for the block, then put back.

    Args:
        threads: that many for both pools; ``None``: :func:`threads_for` the cores free now, unless the
            user fixed them (an environment variable or ``torch.set_num_threads``), then left alone.

    Yields:
        The :class:`Threads` the block runs with. Inside another such block, the outer one's choice.
    """
    if _active:
        if threads is not None and threads != _active[-1].n:
            raise ConfigError(f"threads={threads} inside a block already training with {_active[-1]}: "
                              "give the threads once, to the outer call")
        yield _active[-1]
        return
    if threads is not None:
        choice = Threads(check_count("threads", threads), f"threads={threads}")
    elif (fixed := _user_choice()) is not None:
        choice = Threads(torch.get_num_threads(), f"your {fixed}")
    else:
        free = free_cores()
        n = threads_for(free)
        choice = Threads(n, "free cores unknown" if free is None else f"{free:.1f} of {_cores()} cores free")
    before = torch.get_num_threads()
    _active.append(choice)
    try:
        if choice.n == before and threads is None:  # nothing to change (the idle machine, or the user's setting)
            yield choice
            return
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(choice.n)
        with threadpool_limits(limits=choice.n, user_api="blas"):
            yield choice
    finally:
        _active.pop()
        torch.set_num_threads(before)
