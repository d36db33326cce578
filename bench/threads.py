"""Training threads on an idle and a busy machine: cflearn's rule against fixed counts.

Each fit runs in a fresh process on ml-latest-small's seeded split: with cflearn's rule (``cflearn.fit``'s
``threads=None``: torch and BLAS get the cores free when training starts), or with ``threads=N`` (both pools
fixed at N; N = the cores is what torch and OpenBLAS do by default). "Busy" is one busy loop per core
(``--loops``: as many as you say), started two seconds before the fit. The table gives the median fit wall
time and each one over the idle machine's time with the rule.

    python bench/threads.py [--record] [--repeats 3] [--presets dual fast book] [--loops N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table  # noqa: E402

FIT = """
import sys, time, warnings
warnings.simplefilter("ignore")
import torch
import cflearn
threads = sys.argv[2]  # "rule", "N" (cflearn.fit(threads=N)) or "torch:N" (torch.set_num_threads(N) only)
if threads.startswith("torch:"):
    torch.set_num_threads(int(threads[6:]))
data = cflearn.from_df(cflearn.datasets.movielens("ml-latest-small"), seed=42)
learn = cflearn.collab_learner(data, sys.argv[1], progress=False, **({"epochs": 1} if sys.argv[1] == "book" else {}))
t = time.perf_counter()
cflearn.fit(learn, threads=int(threads) if threads.isdigit() else None)
print(time.perf_counter() - t, learn.cf.fit_threads.n)
"""


def fit_seconds(preset: str, threads: str, env: dict[str, str] | None = None) -> tuple[float, int]:
    """One fit in a fresh process: its seconds and the threads it trained with. ``threads``: ``"rule"``,
    ``"N"`` or ``"torch:N"`` (the FIT script's). ``env``: variables set for it (the
    caller's OMP_NUM_THREADS and MKL_NUM_THREADS are left out)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", FIT, preset, threads], capture_output=True, text=True, check=True,
                         env={**clean, **(env or {})})
    seconds, used = out.stdout.split()[-2:]
    return float(seconds), int(used)


def busy(cores: int) -> list[subprocess.Popen[bytes]]:
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    time.sleep(2)
    return loops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["dual", "fast", "book"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loops", type=int, default=0, help="busy loops on the busy machine (default: one a core)")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    loops_n = args.loops or cores
    settings = ["rule", *map(str, range(1, cores + 1))]
    rows = []
    for preset in args.presets:
        times: dict[tuple[str, str], float] = {}
        used: dict[str, int] = {}
        for machine in ("idle", "busy"):
            for threads in settings:
                runs = []
                for _ in range(args.repeats):
                    loops = busy(loops_n) if machine == "busy" else []
                    try:
                        seconds, n = fit_seconds(preset, threads)
                    finally:
                        for loop in loops:
                            loop.kill()
                    runs.append(seconds)
                    if threads == "rule":
                        used[machine] = n
                times[machine, threads] = statistics.median(runs)
                print(preset, machine, threads, f"{times[machine, threads]:.1f} s", flush=True)
        base = times["idle", "rule"]
        for machine in ("idle", "busy"):
            rows.append([preset, machine] + [f"{times[machine, t]:.1f} s ({times[machine, t] / base:.2f}x)"
                                              for t in settings] + [str(used[machine])])
    header = ["preset", "machine", "cflearn's rule", *(f"{t} thread{'s' if t != '1' else ''}" for t in settings[1:]),
              "threads the rule chose"]
    table = markdown_table(header, rows)
    print(table)
    if args.record:
        append_results("Training threads on an idle and a busy machine", table,
                       f"Median of {args.repeats} fits in fresh processes; busy = {loops_n} busy loops on {cores} "
                       "cores, started 2 s before each fit; ratios over the idle machine with the rule; N threads: "
                       f"torch and BLAS both at N ({cores}: their defaults).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
