"""Scale: seconds per epoch, ratings per second and peak RSS on synthetic data of 1M, 5M and 20M ratings.

MovieLens-25M-like shape: 160k users, 60k items, power-law item popularity and user activity.
Each size runs in its own subprocess (so peak RSS is that size's: data generation, validation,
encoding and training together). Records the device. Appends the table to bench/RESULTS.md.

    python bench/scale.py [--sizes 1,5,20] [--epochs 2] [--preset fast] [--optimizer lazy] [--no-record]

A ranking preset (``--preset rank``) trains on synthetic *implicit* data of the same shape (interactions
that follow planted tastes); its last column is then the validation loss, not RMSE.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCALE_ITEMS as N_ITEMS  # noqa: E402
from common import SCALE_USERS as N_USERS  # noqa: E402
from common import append_results, markdown_table, synthetic_split  # noqa: E402

import cflearn  # noqa: E402


def one(millions: float, epochs: int, preset: str, optimizer: str | None) -> dict:
    data, prep = synthetic_split(millions, implicit=cflearn.PRESETS[preset].ranking)
    kwargs = {"optimizer": optimizer} if optimizer else {}
    learn = cflearn.collab_learner(data, preset, epochs=epochs, progress=False, **kwargs)
    cflearn.fit(learn)
    hist = learn.loss_history
    return {"ratings": len(data.ratings), "n_train": len(data.train_idx), "prep_s": prep,
            "fit_s": learn.cf.fit_seconds, "epochs": epochs,
            "valid_rmse": hist.metric_values.get("rmse", hist.valid_losses)[-1],
            "device": str(learn.cf.device), "optimizer": learn.cf.preset.optimizer, "bs": learn.cf.preset.bs,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,5,20", help="millions of ratings, comma-separated")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--optimizer", help="override the preset's optimizer (fastai, adamw, lazy)")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(one(args.child, args.epochs, args.preset, args.optimizer)))
        return 0
    rows, results = [], []
    for size in [float(s) for s in args.sizes.split(",")]:
        cmd = [sys.executable, __file__, "--child", str(size), "--epochs", str(args.epochs), "--preset", args.preset]
        if args.optimizer:
            cmd += ["--optimizer", args.optimizer]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        per_epoch = r["fit_s"] / r["epochs"]
        per_rating_us = 1e6 * per_epoch / r["n_train"]
        rows.append([f"{r['ratings'] / 1e6:.1f}M", f"{per_epoch:.1f}", f"{r['n_train'] / per_epoch:,.0f}",
                     f"{per_rating_us:.2f}", f"{r['peak_rss_gb']:.2f}", f"{r['valid_rmse']:.3f}", f"{r['prep_s']:.0f}",
                     r["device"], f"{r['optimizer']}, bs {r['bs']}"])
        print(" | ".join(rows[-1]), flush=True)
    base = 1e6 * results[0]["fit_s"] / results[0]["epochs"] / results[0]["n_train"]
    for row, r in zip(rows, results):
        row.insert(4, f"{(1e6 * r['fit_s'] / r['epochs'] / r['n_train']) / base:.2f}")
    table = markdown_table(["ratings", "s / epoch", "ratings / s", "µs / rating", "cost vs smallest", "peak RSS GB",
                            "valid loss" if cflearn.PRESETS[args.preset].ranking else "valid RMSE",
                            "data prep s", "device", "optimizer"], rows)
    print(table)
    if not args.no_record:
        append_results(f"scale: synthetic {N_USERS // 1000}k users x {N_ITEMS // 1000}k items, preset "
                       f"{args.preset}, {args.epochs} epochs", table,
                       "s / epoch: training plus the epoch's validation (5% of the ratings held out). Peak RSS is "
                       "the whole process: generating, validating, encoding and training.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
