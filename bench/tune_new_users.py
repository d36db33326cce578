"""How far a new user's list should lean on the popularity chart: chosen on training users held out as new.

Only the training side of ``bench/new_users.py``'s cold-users split is used (its evaluation users never
are): a further 10% of the training users (``--seed``, 7) is held out as inner new users, the preset trains on the
rest, and each inner user with at least k + 10 rows gives their first k (by time; file order without
timestamps) and is scored on the rest, as in the bench. For each blend of the model's list with the chart
(rank-based: ``(1 - w) / (K + model rank) + w / (K + chart rank)``, ``w = c / (c + k)``) the table gives
NDCG@10 / the chart's, per data set and k.

    python bench/tune_new_users.py [--sets ml filmtrust foursquare synthetic synthetic-implicit] [--preset dual]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402
from new_users import frame as shared_frame  # noqa: E402
from new_users import held_out, train  # noqa: E402
from suite import _synthetic  # noqa: E402

import cflearn  # noqa: E402
from cflearn.serve._collab import as_collab  # noqa: E402
from cflearn.serve._scoring import item_mask, score_matrix  # noqa: E402
from cflearn.metrics import ndcg_at_k, relevance_level  # noqa: E402

KS = (1, 3, 5, 10, 20)
CS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 1e9)
RRF = (10, 60)


def frame(name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    if name.startswith("synthetic"):
        df = _synthetic(name == "synthetic-implicit")
        cols = {"user": "user", "item": "item", "timestamp": "order"}
        cols.update({"weight": "count"} if "count" in df else {"rating": "rating"})
        return df, cols
    return shared_frame(name)


def ranks(scores: torch.Tensor) -> torch.Tensor:
    """0 for the best score of each row, 1 for the next (ties in index order)."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    out = torch.empty_like(order)
    out.scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order).contiguous())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="*", default=["ml", "filmtrust", "foursquare", "synthetic", "synthetic-implicit"])
    ap.add_argument("--preset", default="dual")
    ap.add_argument("--c", nargs="*", type=float, default=list(CS), help="chart weights c to try")
    ap.add_argument("--K", nargs="*", type=int, default=list(RRF), help="rank offsets K to try")
    ap.add_argument("--seed", type=int, default=7, help="seeds which training users are held out as new")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: list[list[str]] = []
    for name in args.sets:
        df, cols = frame(name)
        u, i, t = cols["user"], cols["item"], cols["timestamp"]
        df = df[~held_out(df, u)]  # the bench's evaluation users: never seen here
        is_inner = held_out(df, u, args.seed)
        base = df[~is_inner]
        cf = as_collab(train(base, cols, args.preset))  # type: ignore[arg-type]
        learn = cf
        allowed = item_mask(cf, None, 1)
        assert cf.item_counts is not None
        chart = torch.where(allowed, cf.item_counts.double(), torch.tensor(-1.0, dtype=torch.float64))
        implicit = "rating" not in cols
        scale = (0.0, 1.0) if implicit else (float(df[cols["rating"]].min()), float(df[cols["rating"]].max()))
        level = relevance_level(scale)
        test = df[is_inner].sort_values([u, t], kind="stable")
        known = set(base[i])
        for k in KS:
            model_rows, truth, given_idx = [], [], []
            for _user, g in test.groupby(u, sort=True):
                if len(g) < k + 10:
                    continue
                rest = g.iloc[k:]
                rel = rest if implicit else rest[rest[cols["rating"]] >= level]
                first = g.iloc[:k]
                first = first[first[i].isin(known)]
                if len(rel) == 0 or len(first) == 0:
                    continue
                values = np.ones(len(first)) if implicit else first[cols["rating"]].to_numpy()
                f = cflearn.fold_in(learn, dict(zip(first[i], values)))
                vec, bias = f.list_row()
                model_rows.append(score_matrix(cf, torch.zeros(1, dtype=torch.long), vectors=vec, bias=bias)[0])
                truth.append(set(rel[i]))
                given_idx.append(f.items)
            if not model_rows:
                continue
            S = torch.stack(model_rows).double()
            P = chart.expand_as(S).clone()
            for r, gi in enumerate(given_idx):
                S[r, gi] = -torch.inf
                P[r, gi] = -torch.inf
            S[:, ~allowed] = -torch.inf
            P[:, ~allowed] = -torch.inf
            rs, rp = ranks(S).double(), ranks(P).double()
            pop_lists = [cf.items.decode(torch.argsort(P[r], descending=True, stable=True)[:10].numpy())
                         for r in range(len(P))]
            base_ndcg = ndcg_at_k(pop_lists, truth, 10)
            cells = []
            for K in args.K:
                for c in args.c:
                    w = c / (c + k)
                    B = (1 - w) / (K + rs) + w / (K + rp)
                    B[~torch.isfinite(S)] = -torch.inf
                    lists = [cf.items.decode(torch.argsort(B[r], descending=True, stable=True)[:10].numpy())
                             for r in range(len(B))]
                    cells.append(ndcg_at_k(lists, truth, 10) / base_ndcg if base_ndcg else float("nan"))
            rows.append([name, str(k), str(len(truth)), f"{base_ndcg:.4f}", *(f"{x:.3f}" for x in cells)])
            print(" | ".join(rows[-1]), flush=True)
    header = ["data", "k", "users", "chart NDCG@10", *(f"K{K} c={c:g}" for K in args.K for c in args.c)]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
