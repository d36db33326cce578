"""Large files: `cflearn fit` on a MovieLens-25M-sized ratings CSV, end to end, with its peak memory.

Writes a synthetic ratings CSV of ``--millions`` rows (default 25, the size of MovieLens 25M:
160k users x 60k items, power-law popularity, ``userId,movieId,rating,timestamp``), then runs, each
in its own process so that each peak RSS is its own:

- ``pandas.read_csv(path)`` with pandas' defaults (the reference a user would try first);
- cflearn's reader (``cflearn.read_ratings`` of the named columns) and ``from_df``;
- ``cflearn fit FILE ... --epochs 1`` end to end (read, encode, train, evaluate, write the run), in one
  process and, with ``--nproc N``, in N data-parallel processes too (``cflearn fit --nproc N``).

Prints the table (seconds, the largest process's peak RSS and, sampled every 0.2 s, the peak of all the
run's processes together; ratios to pandas' reader) and appends it to bench/RESULTS.md.

    python bench/load.py [--millions 25] [--keep DIR] [--nproc 2] [--fit-only] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCALE_ITEMS, SCALE_USERS, append_results, markdown_table  # noqa: E402

CHILD = {
    "pandas": "import pandas as pd, sys; df = pd.read_csv(sys.argv[1]); print(len(df))",
    "cflearn read": ("import cflearn, sys; df = cflearn.read_ratings(sys.argv[1], columns=['userId', 'movieId', "
                     "'rating', 'timestamp']); d = cflearn.from_df(df, 'userId', 'movieId', 'rating', 'timestamp', "
                     "valid_pct=0.05); print(len(d.ratings))"),
}


def write_csv(path: Path, millions: float) -> float:
    """Write the synthetic CSV (in a child process, so its memory is not counted); seconds."""
    code = (
        "import sys, numpy as np, pyarrow as pa, pyarrow.csv as pc, cflearn\n"
        f"n = int({millions} * 1_000_000)\n"
        f"ds = cflearn.datasets.synthetic({SCALE_USERS}, {SCALE_ITEMS}, density=n / ({SCALE_USERS} * {SCALE_ITEMS}), "
        "popularity=1.0, seed=0)\n"
        "r = ds.ratings\n"
        "ts = 789652009 + np.random.default_rng(0).integers(0, 10**9, len(r))\n"
        "t = pa.table({'userId': r['user'].to_numpy(), 'movieId': r['item'].to_numpy(), "
        "'rating': r['rating'].to_numpy(), 'timestamp': ts})\n"
        "pc.write_csv(t, sys.argv[1])\n"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    return time.perf_counter() - t0


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants now (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def measured(cmd: list[str], folder: Path) -> tuple[float, float, float, str]:
    """Run ``cmd``; its seconds, the peak RSS of its largest process (GiB), the peak of all its processes
    together (GiB, sampled every 0.2 s) and its stdout."""
    out_path, err_path = folder / "stdout.txt", folder / "stderr.txt"
    t0 = time.perf_counter()
    peak, done = [0], threading.Event()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], tree_rss(proc.pid))

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        watcher.join()
    secs = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        last = err_path.read_text().strip().splitlines()
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {last[-1] if last else ''}")
    largest = usage.ru_maxrss / 1024**2
    return secs, largest, max(peak[0] / 1024**3, largest), out_path.read_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--millions", type=float, default=25.0)
    ap.add_argument("--keep", help="folder for the CSV and the run (default: a temporary folder, removed)")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--nproc", type=int, default=1, help="also fit with --nproc N (N data-parallel processes)")
    ap.add_argument("--fit-only", action="store_true", help="skip the reading steps (pandas, cflearn's reader)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="cflearn-load-") if args.keep is None else None
    folder = Path(args.keep or tmp.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "ratings.csv"
    if not csv.exists():
        gen_s = write_csv(csv, args.millions)
        print(f"wrote {csv} ({csv.stat().st_size / 1e9:.2f} GB) in {gen_s:.0f} s", flush=True)
    rows = []
    results: dict[str, tuple[float, float, float]] = {}
    for name, code in ({} if args.fit_only else CHILD).items():
        secs, rss, total, _ = measured([sys.executable, "-c", code, str(csv)], folder)
        results[name] = (secs, rss, total)
        print(f"{name}: {secs:.1f} s, peak RSS {rss:.2f} GiB", flush=True)
    scores = {}
    for n in sorted({1, args.nproc}):
        run = folder / f"run{n}"
        extra = ["--nproc", str(n)] if n > 1 else []
        cmd = [sys.executable, "-m", "cflearn", "fit", str(csv), "--user", "userId", "--item", "movieId", "--rating",
               "rating", "--timestamp", "timestamp", "--epochs", "1", "--valid-pct", "0.05", "--out", str(run),
               "--force"]
        secs, rss, total, _ = measured(cmd + extra, folder)
        metrics = json.loads((run / "metrics.json").read_text())
        name = "cflearn fit (end to end)" + (f", {n} processes" if n > 1 else "")
        results[name] = (secs, rss, total)
        scores[n] = (f"valid RMSE {metrics['rmse']:.4f}" + (f", NDCG@10 {metrics['ndcg@10']:.4f}"
                                                           if metrics.get("ndcg@10") is not None else "")
                     + f", training {metrics['fit_seconds']:.0f} s")
        print(f"{name}: {secs:.1f} s, peak RSS {rss:.2f} GiB (all processes {total:.2f}), {scores[n]}", flush=True)
    ref_s, ref_rss, _ = results.get("pandas", results["cflearn fit (end to end)"])
    ref = "pandas.read_csv" if "pandas" in results else "one process"
    for name, (secs, rss, total) in results.items():
        rows.append([name, f"{secs:.1f}", f"{secs / ref_s:.2f}x", f"{rss:.2f}", f"{total:.2f}",
                     f"{rss / ref_rss:.2f}x"])
    header = ["step", "seconds", f"vs {ref}", "peak RSS GiB (largest process)", "peak RSS GiB (all processes)",
              f"vs {ref}"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_record:
        append_results(f"Large files: a {args.millions:g}M-row ratings CSV ({csv.stat().st_size / 1e9:.2f} GB), read "
                       "and fitted end to end", table,
                       f"Each step in its own process (tree). `cflearn fit` trains 1 epoch of its default preset "
                       f"`{metrics['preset']}` ({'; '.join(f'{n} process(es): {v}' for n, v in scores.items())}) and "
                       "includes reading, encoding, evaluation and writing the run.")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
