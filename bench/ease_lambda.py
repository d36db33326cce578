"""EASE's lambda chosen on the most frequent items only, against the choice on every item EASE covers.

``cflearn.evaluation._baselines.choose_ease_lambda`` inverts one matrix per candidate lambda. This script
chooses lambda twice on the training rows of every suite set (bench/suite.py), both protocols, the outer
split's training rows and the inner split's (bench/tune_suite.py), and on two larger synthetic catalogues
(bench/catalogue.py's shapes, 10k and 60k items): over every covered item (at most ``MAX_ITEMS``), and over
the ``--items`` most frequent ones. It prints both lambdas and their CPU seconds (one thread).

    python bench/ease_lambda.py [--items 1000] [--no-large] [--record]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402
from suite import LABELS, data_set  # noqa: E402
from tune_suite import inner  # noqa: E402

import cflearn  # noqa: E402
from cflearn.evaluation import _baselines as B  # noqa: E402
from cflearn.kinds._ranking import relevance_level  # noqa: E402

LARGE = ((5000, 10_000, 200_000), (30_000, 60_000, 1_200_000))
"""Users, items, ratings of the larger synthetic catalogues (power-law popularity, seed 0)."""


def choose(data: cflearn.CollabData, items: int) -> tuple[float, float]:
    """Lambda chosen over at most ``items`` items (min_count 5, as the ranking heads do), and its CPU seconds."""
    rows = data.codes[data.train_idx].astype(np.int64)
    relevant = np.ones(len(rows), bool) if data.implicit else data.values[data.train_idx] >= relevance_level(
        data.scale)
    plain = B.LAMBDA_ITEMS
    B.LAMBDA_ITEMS = items
    try:
        t = time.process_time()
        lam = B.choose_ease_lambda(rows[:, 0], rows[:, 1], relevant, len(data.users), len(data.items), seed=0,
                                   min_count=5)
        return lam, time.process_time() - t
    finally:
        B.LAMBDA_ITEMS = plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=B.LAMBDA_ITEMS, help="the most frequent items the choice sees")
    ap.add_argument("--no-large", action="store_true", help="skip the 10k and 60k item synthetic catalogues")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases: list[tuple[str, cflearn.CollabData]] = []
    for name in LABELS:
        for protocol in ("random", "last5"):
            outer = data_set(name, protocol)
            cases += [(f"{LABELS[name]} {protocol} outer", outer), (f"{LABELS[name]} {protocol} inner", inner(outer))]
    if not args.no_large:
        for n_users, n_items, n in LARGE:
            ds = cflearn.datasets.synthetic(n_users, n_items, density=n / (n_users * n_items), popularity=1.0, seed=0)
            cases.append((f"synthetic ratings, {n_items:,} items", cflearn.from_df(ds, valid_pct=0.2, seed=42)))
    rows, same = [], 0
    for label, data in cases:
        full, t_full = choose(data, B.MAX_ITEMS)
        few, t_few = choose(data, args.items)
        same += full == few
        rows.append([label, f"{full:g}", f"{few:g}", f"{t_full:.1f}", f"{t_few:.1f}", f"{t_few / t_full:.2f}x"])
        print(" | ".join(rows[-1]), flush=True)
    header = ["training rows", "lambda, all covered items", f"lambda, {args.items} most frequent",
              "CPU s, all", f"CPU s, {args.items}", "CPU ratio"]
    table = markdown_table(header, rows)
    print(table)
    print(f"same lambda on {same} of {len(rows)}")
    if args.record:
        append_results(f"EASE's lambda chosen on the {args.items} most frequent items against all covered items",
                       table, f"Same lambda on {same} of {len(rows)}. One torch/BLAS thread; min_count 5 (the ranking "
                       "heads'); candidates " + ", ".join(f"{x:g}" for x in B.EASE_LAMBDAS) + ".")


if __name__ == "__main__":
    main()
