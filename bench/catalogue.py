"""Fit cost against the catalogue's size: the default, ``rank``, EASE and ALS on synthetic ratings.

Synthetic rated data (``cflearn.datasets.synthetic``, power-law popularity, seed 0) with 1k, 10k, 60k and
200k items, 20 ratings per item on average and half as many users as items (at least 1,000); 5% held out.
Each (size, contender) runs in its own subprocess, one torch/BLAS thread, so that its peak memory is its
own: fit CPU seconds (``time.process_time``) and the peak resident memory of the fit above the process's
before it (MB). "EASE (evaluate's)" is the suite's bar (``cflearn.evaluate``'s: the 8,000 most rated items
with 3 ratings, lambda chosen from 4 on a 10% slice over the 1,000 most rated); "EASE" is the full model over
every item with 3 ratings and one fixed lambda (800): a dense items x items float32 matrix, factorised in place
(O(items^3) CPU, 4 x items^2 bytes). It is run while three such matrices fit in 80% of the free memory and its estimated
CPU stays under ``--ease-max-s``; beyond, the table gives the estimate (cubic from the largest EASE run).

The default and ``rank`` sample 2,048 items per step above 20,000 items; their "(full softmax)" rows score
every item at every step (``negatives=0``) for the comparison, up to ``--full-max-items``.

``--ratings N`` holds the data at N ratings from N / 40 users at every size, so that what grows with the catalogue
is the catalogue alone (the note gives the model's weights: the tables grow with it, the step's work should not).

    python bench/catalogue.py [--sizes 1000 10000 60000 200000] [--contenders ...] [--ratings N] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402

CONTENDERS = ("dual", "dual (full softmax)", "rank", "rank (full softmax)", "EASE", "EASE (evaluate's)", "ALS")
FULL = " (full softmax)"


def shape(n_items: int) -> tuple[int, int, int]:
    """(users, items, ratings) of the data of one size: 20 ratings per item and half as many users as items, or
    with ``--ratings N`` (``CATALOGUE_RATINGS``) N ratings from N / 40 users whatever the catalogue."""
    fixed = int(os.environ.get("CATALOGUE_RATINGS", "0"))
    if fixed:
        return max(1000, fixed // 40), n_items, fixed
    n_users = max(1000, n_items // 2)
    return n_users, n_items, 20 * n_items


def one(n_items: int, contender: str) -> dict[str, float | str]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from suite import Measured, evaluate

    import cflearn
    from cflearn.data._data import relevance_level
    from cflearn.evaluation._baselines import ease, interactions
    from cflearn.kinds._dual import choose_head

    n_users, n_items, n = shape(n_items)
    ds = cflearn.datasets.synthetic(n_users, n_items, density=n / (n_users * n_items), popularity=1.0, seed=0)
    data = cflearn.from_df(ds, valid_pct=0.05, seed=0)
    tr = data.codes[data.train_idx]
    out: dict[str, float | str] = {"ratings": float(len(data.train_idx))}
    ref = cflearn.collab_learner(data, "fast", epochs=1, progress=False)  # evaluate's vocabularies and seen lists
    cflearn.fit(ref)  # (and the process's one-time costs, outside the measured fit)
    with Measured() as m:
        if contender.removesuffix(FULL) in ("dual", "rank"):
            full: dict[str, Any] = {"negatives": 0} if contender.endswith(FULL) else {}  # every item, every step
            preset = contender.removesuffix(FULL)
            if full and preset == "dual" and choose_head(data, cflearn.PRESETS["dual"], {}) != "learned":
                return {"ratings": out["ratings"], "skipped": 1.0, "why": "the default's head here is EASE"}
            learn = cflearn.collab_learner(data, preset, progress=False, seed=0, **full)
            cflearn.fit(learn)
            model: object = learn.cf
            p = learn.cf.preset
            head = f"{p.rank_head} head, " if preset == "dual" else ""
            sampled = f"{p.negatives} sampled items" if p.negatives else "full softmax"
            how = "rating head as 'fast'" if p.rank_head == "item_item" else f"{sampled}, {p.optimizer}"
            weights = sum(t.numel() * t.element_size() for t in learn.model.state_dict().values()) / 2**20
            out["note"] = f"{head}{learn.cf.epochs_run} epochs, {how}; weights {weights:,.0f} MB"
        elif contender == "EASE":
            rel = data.values[data.train_idx] >= relevance_level(data.scale)
            X = interactions(tr[rel, 0], tr[rel, 1], len(data.users), len(data.items))
            k = int(np.count_nonzero(np.asarray(X.sum(0)).ravel() >= 3))
            prev = os.environ.get("EASE_PREV")  # "items,cpu" of the largest EASE run so far
            est = float(prev.split(",")[1]) * (k / float(prev.split(",")[0])) ** 3 if prev else 0.0
            need_gb = 3 * 4 * k**2 / 2**30  # the Gram matrix, its factor in place, the scores' working copies
            free_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") / 2**30
            if need_gb > 0.8 * free_gb or est > float(os.environ.get("EASE_MAX_S", "600")):
                return {"ratings": out["ratings"], "skipped": 1.0, "items": float(k), "est": est, "gb": need_gb,
                        "free": free_gb}
            fitted = ease(X, 800.0, min_count=3, max_items=10**9)
            model = fitted.scores
            out["note"] = f"{k:,} items, lambda 800"
            out["items"] = float(k)
        elif contender == "EASE (evaluate's)":  # bench/suite.py's bar: <= 8,000 most rated items, lambda chosen
            from suite import _ease

            model, note = _ease(data)
            out["note"] = f"{note}, items with >= 3 ratings, at most 8,000"
        else:
            from implicit.als import AlternatingLeastSquares

            X = interactions(tr[:, 0], tr[:, 1], len(data.users), len(data.items))
            als = AlternatingLeastSquares(factors=64, regularization=1.0, alpha=10.0, random_state=0, num_threads=1)
            als.fit(X, show_progress=False)
            U, V = (torch.from_numpy(np.asarray(a)).double() for a in (als.user_factors, als.item_factors))
            model = lambda rows: U[rows] @ V.T  # noqa: E731
            out["note"] = "64 factors, reg 1, alpha 10"
    out.update(cpu=m.cpu, mb=m.mb, ndcg=evaluate(data, ref.cf, model)["ndcg@10"])  # type: ignore[arg-type]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", type=int, default=[1000, 10000, 60000, 200000])
    ap.add_argument("--contenders", nargs="*", default=list(CONTENDERS), choices=CONTENDERS)
    ap.add_argument("--ease-max-s", type=float, default=600.0, help="skip EASE where its estimate is longer")
    ap.add_argument("--full-max-items", type=int, default=60000,
                    help="run the full-softmax contenders up to this many items (beyond: an estimate)")
    ap.add_argument("--ratings", type=int, default=0,
                    help="the same number of ratings (from ratings / 40 users) at every size (default: 20 per item)")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
        return
    if args.ratings:
        os.environ["CATALOGUE_RATINGS"] = str(args.ratings)
    grows = 1 if args.ratings else 2  # the full softmax's CPU: users x items per epoch
    rows, ease_prev, full_prev = [], "", dict[str, tuple[int, float]]()
    for size in args.sizes:
        n_users, _, n = shape(size)
        for contender in args.contenders:
            if contender.endswith(FULL) and size > args.full_max_items:  # steps x items: quadratic in the size here
                prev = full_prev.get(contender)
                est = f"~{prev[1] * (size / prev[0]) ** grows:,.0f} (est.)" if prev else "-"
                why = "users and the items each step scores both" if grows == 2 else "the items each step scores"
                rows.append([f"{size:,}", f"{n_users:,}", f"{n:,}", contender, est, "-", "-",
                             f"not run: above --full-max-items {args.full_max_items:,} (CPU estimated as "
                             f"items{'^2' if grows == 2 else ''} from the largest run: {why} grow)"])
                print(" | ".join(rows[-1]), flush=True)
                continue
            env = {**os.environ, "EASE_PREV": ease_prev, "EASE_MAX_S": str(args.ease_max_s)}
            proc = subprocess.run([sys.executable, __file__, "--one", str(size), contender], capture_output=True,
                                  text=True, env=env)
            if proc.returncode != 0:
                rows.append([f"{size:,}", f"{n_users:,}", f"{n:,}", contender, "-", "-", "-",
                             f"failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:80]}"])
            elif (r := json.loads(proc.stdout.strip().splitlines()[-1])).get("why"):
                rows.append([f"{size:,}", f"{n_users:,}", f"{int(r['ratings']):,}", contender, "-", "-", "-",
                             f"not run: {r['why']}"])
            elif r.get("skipped"):
                why = (f"its matrices need ~{r['gb']:.0f} GB, {r['free']:.0f} GB free" if r["gb"] > 0.8 * r["free"]
                       else f"over --ease-max-s {args.ease_max_s:g}")
                rows.append([f"{size:,}", f"{n_users:,}", f"{int(r['ratings']):,}", contender,
                             f"~{r['est']:,.0f} (est.)", f"~{r['gb'] * 1024:,.0f} (est.)", "-",
                             f"not run ({int(r['items']):,} items): {why}; CPU estimated as items^3"])
            else:
                if contender == "EASE":
                    ease_prev = f"{r['items']},{r['cpu']}"
                if contender.endswith(FULL):
                    full_prev[contender] = (size, float(r["cpu"]))
                rows.append([f"{size:,}", f"{n_users:,}", f"{int(r['ratings']):,}", contender, f"{r['cpu']:.1f}",
                             f"{r['mb']:.0f}", f"{r['ndcg']:.4f}", str(r["note"])])
            print(" | ".join(rows[-1]), flush=True)
    header = ["items", "users", "training ratings", "contender", "fit CPU s", "peak MB", "NDCG@10", "note"]
    table = markdown_table(header, rows)
    print(table)
    if args.record:
        append_results("Fit cost against the catalogue's size (synthetic ratings)", table,
                       f"Command: `python bench/catalogue.py --sizes {' '.join(map(str, args.sizes))}"
                       f"{f' --ratings {args.ratings}' if args.ratings else ''}`. One "
                       "torch/BLAS thread, each cell in its own process. EASE: the full model (every item with 3 "
                       "ratings, lambda 800, one Cholesky inverse); ALS: implicit's, 64 factors, 15 iterations.")


if __name__ == "__main__":
    main()
