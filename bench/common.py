"""Shared helpers of the benchmarks: the seeded split, timing, machine description, results file."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import cflearn

RESULTS = Path(__file__).with_name("RESULTS.md")


def movielens_split(seed: int = 42) -> cflearn.CollabData:
    """ml-latest-small with cflearn's seeded 80/20 random split (every contender trains on it)."""
    return cflearn.from_df(cflearn.datasets.movielens("ml-latest-small"), valid_pct=0.2, seed=seed)


SCALE_USERS, SCALE_ITEMS = 160_000, 60_000
"""The scale benchmarks' MovieLens-25M-like shape."""


def synthetic_split(millions: float, implicit: bool = False) -> tuple[cflearn.CollabData, float]:
    """The scale benchmarks' data: ``millions`` synthetic ratings (or interactions: ``implicit``; power-law
    popularity, seed 0), 5% held out; and the seconds it took to generate and encode them."""
    t0 = time.perf_counter()
    n = int(millions * 1_000_000)
    ds = cflearn.datasets.synthetic(SCALE_USERS, SCALE_ITEMS, density=n / (SCALE_USERS * SCALE_ITEMS), popularity=1.0,
                                    implicit=implicit, seed=0)
    data = cflearn.from_df(ds, valid_pct=0.05, seed=0)
    return data, time.perf_counter() - t0


def rmse_mae(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    err = np.asarray(pred, float) - np.asarray(target, float)
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node() or 'host'}: {os.cpu_count()} CPUs ({cpu}), {dev}; Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), cflearn {cflearn.__version__}")


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return "?"


def append_results(title: str, table: str, notes: str = "") -> None:
    """Append one section (the command, machine, date, table) to bench/RESULTS.md."""
    cmd = "python " + " ".join([str(Path(sys.argv[0]).as_posix())] + sys.argv[1:])
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"\n## {title} ({stamp}, commit {git_rev()})\n\nCommand: `{cmd}`  \nMachine: {machine()}\n\n"
               f"{table}\n" + (f"\n{notes}\n" if notes else ""))
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in bench/; newest last.\n")
    with RESULTS.open("a") as f:
        f.write(section)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
