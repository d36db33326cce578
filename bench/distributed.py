"""Data-parallel training: 1 vs N processes (torchrun, gloo on CPU) on the 5M and 20M synthetic sets.

Same data as bench/scale.py (160k users x 60k items, power-law popularity), same seed, preset
`fast`. Each configuration runs in its own `torchrun` (1 or N processes); every process generates
the same data, trains, and reports its seconds per epoch and peak RSS; rank 0 reports the
validation RMSE. One process runs twice: with the preset's optimizer (LazyAdamW on sparse
gradients at this size) and with dense AdamW, which is what the tables use under DDP, so that
the N-process rows have a like-for-like baseline. Appends the table to bench/RESULTS.md.

    python bench/distributed.py [--sizes 5,20] [--nproc 1,2] [--epochs 1] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table, synthetic_split  # noqa: E402


def child(millions: float, epochs: int, out: str, optimizer: str | None) -> None:
    """One process of a run (under torchrun): generate, train, report to out/rank<r>.json."""
    import torch.distributed as dist

    import cflearn

    data, prep = synthetic_split(millions)
    learn = cflearn.collab_learner(data, "fast", epochs=epochs, progress=False,
                                   **({"optimizer": optimizer} if optimizer else {}))
    cflearn.fit(learn)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    rmse = learn.loss_history.metric_values["rmse"][-1]
    result = {"rank": rank, "world": world, "n_train": len(data.train_idx), "prep_s": prep,
              "fit_s": learn.cf.fit_seconds, "epochs": epochs, "valid_rmse": rmse,
              "optimizer": learn.cf.preset.optimizer, "bs": learn.cf.preset.bs,
              "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
              "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5,20", help="millions of ratings, comma-separated")
    ap.add_argument("--nproc", default="1,2", help="process counts, comma-separated")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--optimizer", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.epochs, args.out, args.optimizer)
        return 0
    cores = os.cpu_count() or 1
    rows = []
    for size in [float(s) for s in args.sizes.split(",")]:
        configs = [(k, opt) for k in [int(k) for k in args.nproc.split(",")]
                   for opt in ([None, "adamw"] if k == 1 else [None])]
        for nproc, optimizer in configs:
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                       __file__, "--child", str(size), "--epochs", str(args.epochs), "--out", out,
                       *(["--optimizer", optimizer] if optimizer else [])]
                env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // nproc))}
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return 1
                ranks = [json.loads(p.read_text()) for p in sorted(Path(out).glob("rank*.json"))]
            r0 = ranks[0]
            per_epoch = max(r["fit_s"] for r in ranks) / r0["epochs"]
            rows.append([f"{r0['n_train'] / 0.95 / 1e6:.0f}M", str(nproc), f"{r0['threads']}", f"{per_epoch:.1f}",
                         f"{r0['n_train'] / per_epoch:,.0f}", f"{max(r['peak_rss_gb'] for r in ranks):.2f}",
                         f"{r0['valid_rmse']:.4f}", f"{r0['prep_s']:.0f}", f"{wall:.0f}",
                         f"{r0['optimizer']}, bs {r0['bs']} ({r0['bs'] // nproc} per process)"])
            print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["ratings", "processes", "threads each", "s / epoch", "ratings / s", "peak RSS GB / process",
                            "valid RMSE", "data prep s", "wall s", "optimizer"], rows)
    print(table)
    if not args.no_record:
        append_results(f"distributed: 1 vs N processes (torchrun, gloo, CPU), preset fast, {args.epochs} epoch(s)",
                       table, "s / epoch: the slowest rank's training plus its validation (every rank validates on "
                       "all the held-out 5%). Peak RSS: the largest process (each holds the data and full tables). "
                       "wall s: the whole torchrun, data generation in every process included.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
