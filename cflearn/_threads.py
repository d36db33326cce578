"""How many threads training asks of torch: no more than the machine has free, unless you chose.

torch's default (one intra-op thread per core) assumes the machine is idle. On a machine that is
busy with anything else, threads that wait for each other's cores make a small-batch step many
times slower (on this project's 2-core machine with two busy loops, the default's fit of
ml-latest-small took 4.5x its idle time with torch's 2 threads, 3.0x with one: ``bench/threads.py``).
So while cflearn trains, torch gets the cores that are free now (sampled from ``/proc/stat`` over
50 ms), at least one and at most its default, and gets its own setting back after.
Where ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set, or ``torch.set_num_threads`` was called
after cflearn was imported, your choice stands. On this machine one thread and two give the same
weights (the same seed trains the same model whatever the load).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

__all__ = ["free_cores", "training_threads", "threads_for"]

_DEFAULT = torch.get_num_threads()
"""torch's thread count when cflearn was imported: a different one later is the user's choice."""


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs, from ``/proc/stat``; ``None`` where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return idle, sum(fields[:8])


def free_cores(sample: float = 0.05) -> float | None:
    """How many of this process's cores were idle over the last ``sample`` seconds (``None``:
    unknown, e.g. not Linux)."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(sample)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    idle = (second[0] - first[0]) / (second[1] - first[1])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return idle * cores


def _user_chose() -> bool:
    return any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")) or \
        torch.get_num_threads() != _DEFAULT


def threads_for(free: float | None, default: int = _DEFAULT) -> int:
    """The intra-op threads for training when ``free`` cores are idle: the free cores, rounded, at
    least one and at most torch's default (all of them while nothing is known)."""
    if free is None:
        return default
    return max(1, min(default, int(free + 0.5)))


@contextlib.contextmanager
def training_threads() -> Iterator[int]:
    """torch's intra-op threads set to :func:`threads_for` the cores free now, for the block, then
    put back; left alone where the user chose them. Yields the count trained with."""
    if _user_chose():
        yield torch.get_num_threads()
        return
    before = torch.get_num_threads()
    n = threads_for(free_cores())
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
