"""Choose a list-making default on inner splits of the *training* rows of every suite data set.

Each suite set (bench/suite.py: ml-latest-small, FilmTrust, Foursquare, synthetic ratings, synthetic
implicit) under each protocol: the evaluation split's training rows are split again by the same protocol
(random: 10% held out, seed 1; last 5: each user's last 5 of their training rows); candidates train on the
inner training rows and are scored by NDCG@10 (``cflearn.evaluate``'s protocol) on the inner held-out rows,
against EASE fitted the same way. The evaluation split is never looked at.

    python bench/tune_suite.py --preset rank --candidates '[{}, {"step_budget": 1000}]' [--record]

A candidate may hold ``"user_scale": s``, which is not a preset field: the learned ranking head's user vectors
are multiplied by ``s`` (the softmax's inverse temperature), by patching :class:`cflearn.models.Ranker`, to try
the idea before it is built. A candidate may hold ``"ease_lambda": x``: an EASE head the candidate solves uses
``lambda = x`` instead of choosing it on a slice of the training rows (by patching
:func:`cflearn.evaluation._baselines.choose_ease_lambda`; the EASE compared against still chooses its own).
A candidate may hold ``"recency": k``: each training row's target weight times ``2 ** (-k * p)``, ``p`` the row's
place among its user's rows by time (0: the latest, 1: the earliest), by patching
:func:`cflearn.kinds._ranking.target_weights`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402
from suite import LABELS, _ease, data_set, evaluate  # noqa: E402

import cflearn  # noqa: E402

INNER_PCT = 0.1


def inner(data: cflearn.CollabData) -> cflearn.CollabData:
    """The inner split of the outer training rows, by the outer split's protocol."""
    train = data.train
    kw: dict[str, object] = dict(user=data.user, item=data.item, timestamp=data.timestamp)
    if data.implicit:
        kw["weight"] = "count" if "count" in train else None
    else:
        kw["rating"] = data.rating
    if data.split == "leave_last":
        return cflearn.from_df(train, split="leave_last", n_last=5, **kw)  # type: ignore[arg-type]
    return cflearn.from_df(train, seed=1, valid_pct=INNER_PCT, **kw)  # type: ignore[arg-type]


@contextlib.contextmanager
def patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """``owner.name`` is ``replacement`` inside the block (``None``: left as it is)."""
    plain = getattr(owner, name)
    if replacement is not None:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, plain)


def ease_lambda(lam: float | None) -> contextlib.AbstractContextManager[None]:
    """EASE heads solved inside the block use ``lam`` (``None``: chosen on a slice, as the library does)."""
    from cflearn.evaluation import _baselines

    return patched(_baselines, "choose_ease_lambda", None if lam is None else (lambda *a, **k: float(lam)))


def recency(k: float) -> contextlib.AbstractContextManager[None]:
    """Ranking targets weighted towards each user's latest rows inside the block (0: unchanged)."""
    import pandas as pd

    from cflearn.kinds import _ranking

    plain = _ranking.target_weights

    def weights(data: cflearn.CollabData, idx: np.ndarray, below_weight: float, relevance: float) -> np.ndarray:
        w = plain(data, idx, below_weight, relevance)
        if data.timestamp is None or idx is not data.train_idx:
            return w
        rows = data.ratings.iloc[idx]
        t = pd.to_numeric(rows[data.timestamp], errors="coerce")
        late = t.groupby(rows[data.user].to_numpy()).rank(method="first", ascending=False).to_numpy() - 1
        n = rows.groupby(data.user)[data.user].transform("size").to_numpy()
        p = np.where(n > 1, late / np.maximum(n - 1, 1), 0.0)
        return (w * 2.0 ** (-k * p)).astype(np.float32)

    return patched(_ranking, "target_weights", weights if k else None)


def user_scale(scale: float) -> contextlib.AbstractContextManager[None]:
    """The learned ranking head's user vectors times ``scale`` inside the block (1: unchanged)."""
    from cflearn.models import Ranker

    plain = Ranker.user_vectors
    return patched(Ranker, "user_vectors", None if scale == 1.0 else (lambda self, users: plain(self, users) * scale))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="rank")
    ap.add_argument("--candidates", default="[{}]", help="JSON list of preset changes")
    ap.add_argument("--sets", nargs="*", default=list(LABELS), choices=list(LABELS))
    ap.add_argument("--protocols", nargs="*", default=["random", "last5"], choices=["random", "last5"])
    ap.add_argument("--seeds", default="0", help="model seeds, comma-separated: each cell is their mean")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    candidates = json.loads(args.candidates)
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    columns, rows = [], {json.dumps(c): [] for c in candidates}
    cpu: dict[str, list[float]] = {json.dumps(c): [] for c in candidates}
    for name in args.sets:
        for protocol in args.protocols:
            d = inner(data_set(name, protocol))
            t = time.process_time()
            scorer, _ = _ease(d)
            ease_cpu = time.process_time() - t
            fitted = cflearn.collab_learner(d, "rank" if d.implicit else "fast", epochs=1, progress=False)
            cflearn.fit(fitted)
            ref = fitted.cf  # evaluate's reference for a scorer (its vocabularies)
            ease_ndcg = evaluate(d, ref, scorer)["ndcg@10"]
            columns.append(f"{LABELS[name]} {protocol}")
            for cand in candidates:
                key, got, secs = json.dumps(cand), [], []
                change = dict(cand)
                scale = float(change.pop("user_scale", 1.0))
                lam = change.pop("ease_lambda", None)
                k = float(change.pop("recency", 0.0))
                for seed in seeds:
                    with user_scale(scale), ease_lambda(lam), recency(k):
                        learn = cflearn.collab_learner(d, args.preset, progress=False, seed=seed, **change)
                        t = time.process_time()
                        cflearn.fit(learn)
                        secs.append(time.process_time() - t)
                        got.append(evaluate(d, ref, learn.cf)["ndcg@10"])
                rows[key].append(float(np.mean(got)) / ease_ndcg)
                cpu[key].append(float(np.mean(secs)) / ease_cpu)
                print(f"{columns[-1]:45s} {key:40s} NDCG/EASE {rows[key][-1]:.3f}  CPU/EASE {cpu[key][-1]:.2f} "
                      f"(EASE {ease_ndcg:.4f}, {ease_cpu:.1f} s)", flush=True)
    header = [f"change from preset {args.preset!r}", *columns, "min", "mean CPU / EASE"]
    table_rows = []
    for key, vals in rows.items():
        label = ", ".join(f"{k}={v}" for k, v in json.loads(key).items()) or "(preset)"
        table_rows.append([label, *(f"{v:.3f}x" for v in vals), f"{min(vals):.3f}x", f"{np.mean(cpu[key]):.2f}x"])
    table = markdown_table(header, table_rows)
    print(table)
    if args.record:
        append_results(f"preset {args.preset!r}: inner-split NDCG@10 / EASE's on every suite set", table,
                       f"Command: `python bench/tune_suite.py --preset {args.preset} --candidates '{args.candidates}'"
                       f" --seeds {args.seeds}`. Inner splits of the training rows only (random 10% seed 1, or each "
                       "user's last 5); EASE fitted on the same inner rows. One torch thread.")


if __name__ == "__main__":
    main()
