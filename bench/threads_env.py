"""What makes the default's fit slow on a busy machine: torch's threads, BLAS's threads, or both.

Each fit of the default preset runs in a fresh process on ml-latest-small's seeded split, on an idle machine
and with two busy loops (one a core, started two seconds before the fit), with: torch's and BLAS's default
threads; ``torch.set_num_threads(1)``; ``OPENBLAS_NUM_THREADS=1`` (numpy's and scipy's OpenBLAS, which solves
the default's EASE head); ``OMP_NUM_THREADS=1`` (both: torch's OpenMP and, as a fallback, OpenBLAS);
cflearn's rule (``cflearn.fit``'s default: both pools get the cores free when training starts; a variable set
above turns it off). It prints
the median fit wall time of ``--repeats`` fits and each over the idle machine's default. The fit and the
busy loops are ``bench/threads.py``'s.

    python bench/threads_env.py [--repeats 3] [--record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table  # noqa: E402
from threads import busy, fit_seconds  # noqa: E402

_CORES = str(len(os.sched_getaffinity(0)))
SETTINGS = [("defaults", _CORES, {}), ("torch.set_num_threads(1)", "torch:1", {}),
            ("OPENBLAS_NUM_THREADS=1", "rule", {"OPENBLAS_NUM_THREADS": "1"}),
            ("OMP_NUM_THREADS=1", "rule", {"OMP_NUM_THREADS": "1"}), ("cflearn's rule", "rule", {})]


def fit(threads: str, env: dict[str, str], machine: str) -> float:
    """One fit of the default in a fresh process (``bench/threads.py``'s), with two busy loops when busy."""
    loops = busy(2) if machine == "busy" else []
    try:
        return fit_seconds("dual", threads, env)[0]
    finally:
        for loop in loops:
            loop.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    rows, idle = [], 0.0
    for machine in ("idle", "busy"):
        for name, threads, env in SETTINGS:
            s = statistics.median(fit(threads, env, machine) for _ in range(args.repeats))
            idle = idle or s
            rows.append([machine, name, f"{s:.2f}", f"{s / idle:.2f}x"])
            print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["machine", "threads", "fit s (median)", "vs idle, defaults"], rows)
    print(table)
    if args.record:
        append_results("Threads on a busy machine: torch's, BLAS's, or both (preset dual, ml-latest-small)", table,
                       f"Median of {args.repeats} fits, each in a fresh process; busy = 2 busy loops on 2 cores.")


if __name__ == "__main__":
    main()
