"""Training threads on an idle and a busy machine: cflearn's rule against torch's fixed counts.

Each fit runs in a fresh process on ml-latest-small's seeded split: with cflearn's rule (the cores
free when training starts, `cflearn._threads`), or with the threads fixed by `torch.set_num_threads`
(which the rule leaves alone). "Busy" is one busy loop per core, started two seconds before the fit.
The table gives the median fit wall time and each one over the idle machine's time with the rule.

    python bench/threads.py [--record] [--repeats 3] [--presets dual fast book]
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
threads = sys.argv[2]
if threads != "rule":
    torch.set_num_threads(int(threads))
data = cflearn.from_df(cflearn.datasets.movielens("ml-latest-small"), seed=42)
learn = cflearn.collab_learner(data, sys.argv[1], progress=False, **({"epochs": 1} if sys.argv[1] == "book" else {}))
t = time.perf_counter()
cflearn.fit(learn)
print(time.perf_counter() - t, learn.cf.threads)
"""


def fit_seconds(preset: str, threads: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", FIT, preset, threads], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
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
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    settings = ["rule", *map(str, range(1, cores + 1))]
    rows = []
    for preset in args.presets:
        times: dict[tuple[str, str], float] = {}
        used: dict[str, int] = {}
        for machine in ("idle", "busy"):
            for threads in settings:
                runs = []
                for _ in range(args.repeats):
                    loops = busy(cores) if machine == "busy" else []
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
                       f"Median of {args.repeats} fits in fresh processes; busy = {cores} busy loops (one a core), "
                       "started 2 s before each fit; ratios over the idle machine with the rule.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
