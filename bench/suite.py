"""The suite bench: every list-making preset against EASE, ALS, item-kNN and most popular, on every data set
the project has (ml-latest-small, FilmTrust, Foursquare and two synthetic shapes), on two protocols.

Every change to a default shows this table before and after (``--record`` appends it to bench/RESULTS.md).

Protocols, the same for every contender:

- ``random``: a seeded random 80/20 split of the rows (seed 42);
- ``last 5``: each user's 5 latest rows held out (users with 5 or fewer stay in training). ml-latest-small
  has timestamps; FilmTrust, Foursquare and the synthetic sets have none, so there "latest" is the order of
  the rows in the file (Foursquare's file is LibRec's training file followed by its test file).

Lists are scored by ``cflearn.evaluate``'s protocol: relevant = rated at or above the relevance level (80% up
the scale: 4 of 5 stars, 3.5 of FilmTrust's 4) in validation, or any validation interaction on implicit data;
every unseen item with a training interaction is ranked; NDCG@10 and Recall@10. RMSE is the validation RMSE of
the rating head (rated data only). Fit CPU seconds are ``time.process_time`` around building and fitting
(torch, BLAS and implicit pinned to one thread, so that idle spinning does not count; a tiny fit first, so
that the process's one-time costs land on no contender); peak MB is the process's peak resident memory
during the fit above what it held before (Linux ``VmHWM`` after resetting it through
``/proc/self/clear_refs``, freed memory handed back first with ``malloc_trim``). EASE is
``cflearn.evaluate``'s baseline (items with >= 3 interactions, at
most 8,000; lambda chosen on a 10% slice of the training rows); ALS is the ``implicit`` package's
``AlternatingLeastSquares`` (15 iterations) on the binary matrix, its factors, regularization and alpha chosen
from four candidates on a 10% slice of the training rows (its defaults are far off on these sets: NDCG@10
0.017 on FilmTrust), when installed (``make bench`` installs it).

    python bench/suite.py [--record] [--sets ml filmtrust foursquare synthetic synthetic-implicit]
                          [--protocols random last5] [--contenders ...] [--seeds 1]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table  # noqa: E402

import cflearn  # noqa: E402
from cflearn.baselines import choose_ease_lambda, ease, interactions, item_knn  # noqa: E402
from cflearn.metrics import ndcg_at_k, relevance_level  # noqa: E402

Scorer = Callable[[torch.Tensor], torch.Tensor]
SHARED = Path(os.environ.get("CFLEARN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


# ---- data sets -------------------------------------------------------------------------------------------
def _filmtrust() -> pd.DataFrame:
    df = pd.read_csv(SHARED / "filmtrust" / "ratings.txt", sep=" ", header=None, names=["user", "item", "rating"])
    df["order"] = np.arange(len(df))
    return df


def _foursquare() -> pd.DataFrame:
    df = pd.read_csv(SHARED / "foursquare" / "checkins.txt", sep=" ", header=None, names=["user", "item", "count"])
    df["order"] = np.arange(len(df))
    return df


def _synthetic(implicit: bool) -> pd.DataFrame:
    if implicit:  # the Last.fm shape (bench/one_model.py): 1,892 users x 17,632 items, heavy-tailed counts
        ds = cflearn.datasets.synthetic(1892, 17632, density=92834 / (1892 * 17632), popularity=1.0, implicit=True,
                                        seed=0)
        df = ds.ratings[["user", "item"]].copy()
        df["count"] = np.maximum(1, np.round(np.random.default_rng(0).lognormal(5, 1.5, len(df)))).astype(int)
    else:  # planted tastes, 1,500 users x 2,000 items
        df = cflearn.datasets.synthetic(1500, 2000, density=0.03, seed=7).ratings[["user", "item", "rating"]].copy()
    df["order"] = np.arange(len(df))
    return df


def data_set(name: str, protocol: str) -> cflearn.CollabData:
    """One data set under one protocol (``random`` or ``last5``)."""
    split = {"split": "random", "seed": 42} if protocol == "random" else {"split": "leave_last", "n_last": 5}
    if name == "ml":
        return cflearn.from_df(cflearn.datasets.movielens("ml-latest-small"), **split)  # type: ignore[arg-type]
    frame = {"filmtrust": _filmtrust, "foursquare": _foursquare}.get(name)
    df = frame() if frame else _synthetic(name == "synthetic-implicit")
    if "count" in df:
        return cflearn.from_df(df, "user", "item", weight="count", timestamp="order", **split)  # type: ignore[arg-type]
    return cflearn.from_df(df, "user", "item", "rating", timestamp="order", **split)  # type: ignore[arg-type]


LABELS = {"ml": "ml-latest-small", "filmtrust": "FilmTrust", "foursquare": "Foursquare (implicit)",
          "synthetic": "synthetic ratings", "synthetic-implicit": "synthetic implicit (Last.fm shape)"}


# ---- measuring -------------------------------------------------------------------------------------------
class Measured:
    """CPU seconds and peak resident memory (MB above the start) of a block."""

    def __enter__(self) -> Measured:
        gc.collect()
        try:  # hand freed memory back to the system, so that the peak counts what this block allocates
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = _status("VmRSS")
        except OSError:
            self.base = float("nan")
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self.cpu
        self.mb = _status("VmHWM") - self.base if not math.isnan(self.base) else float("nan")


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _matrix(data: cflearn.CollabData) -> sp.csr_matrix:
    tr = data.codes[data.train_idx]
    return interactions(tr[:, 0], tr[:, 1], len(data.users), len(data.items))


def _ease(data: cflearn.CollabData) -> tuple[Scorer, str]:
    tr = data.codes[data.train_idx]
    rel = np.ones(len(tr), bool) if data.implicit else data.values[data.train_idx] >= relevance_level(data.scale)
    lam = choose_ease_lambda(tr[:, 0], tr[:, 1], rel, len(data.users), len(data.items))
    return ease(_matrix(data), lam).scores, f"lambda {lam:g}"


ALS_GRID = ((32, 1.0, 10.0), (64, 1.0, 10.0), (64, 0.1, 1.0), (128, 1.0, 40.0))
"""ALS's (factors, regularization, alpha) candidates; one is chosen on a 10% slice of the training rows."""


def _als(data: cflearn.CollabData) -> tuple[Scorer, str]:
    from implicit.als import AlternatingLeastSquares

    def fit(X: sp.csr_matrix, f: int, reg: float, alpha: float) -> Scorer:
        model = AlternatingLeastSquares(factors=f, regularization=reg, alpha=alpha, random_state=0, num_threads=1)
        model.fit(X, show_progress=False)
        U, V = (torch.from_numpy(np.asarray(m)).double() for m in (model.user_factors, model.item_factors))
        return lambda rows: U[rows] @ V.T

    tr = data.codes[data.train_idx]
    held = np.random.default_rng(0).random(len(tr)) < 0.1
    X = interactions(tr[~held, 0], tr[~held, 1], len(data.users), len(data.items))
    truth: dict[int, set[int]] = {}
    for u, i in tr[held].tolist():
        truth.setdefault(u, set()).add(i)
    users = torch.tensor(sorted(truth))
    best, best_score = ALS_GRID[0], -1.0
    for cand in ALS_GRID:
        scores = fit(X, *cand)(users)
        seen = X[users.numpy()].tocoo()
        scores[torch.from_numpy(seen.row).long(), torch.from_numpy(seen.col).long()] = -torch.inf
        scores[:, 0] = -torch.inf
        top = scores.topk(10, dim=1).indices.tolist()
        score = ndcg_at_k(top, [truth[int(u)] for u in users], 10)
        if score > best_score:
            best, best_score = cand, score
    return fit(_matrix(data), *best), "factors {}, reg {:g}, alpha {:g}".format(*best)


def _knn(data: cflearn.CollabData) -> tuple[Scorer, str]:
    return item_knn(_matrix(data)).scores, "k 20"


def _popular(data: cflearn.CollabData) -> tuple[Scorer, str]:
    counts = torch.from_numpy(np.asarray(_matrix(data).sum(0)).ravel()).double()
    return (lambda rows: counts.expand(len(rows), -1).clone()), ""


BASELINES: dict[str, Callable[[cflearn.CollabData], tuple[Scorer, str]]] = {
    "EASE": _ease, "ALS (implicit)": _als, "item-kNN": _knn, "most popular": _popular}
PRESETS = ("dual", "rank", "rank_bpr", "fast")


def evaluate(data: cflearn.CollabData, ref: cflearn.CollabModel, contender: Scorer | cflearn.CollabModel
             ) -> dict[str, float]:
    """NDCG@10, Recall@10 (and RMSE of a rating model) by ``cflearn.evaluate``'s protocol."""
    if isinstance(contender, cflearn.CollabModel):
        row = cflearn.evaluate(contender, data, n=10, baselines=False).iloc[0]
    else:
        row = cflearn.evaluate(ref, data, n=10, baselines=[("contender", lambda *_: contender)]).loc["contender"]
    return {str(k): float(v) for k, v in row.items()}


def run_one(data: cflearn.CollabData, ref: cflearn.CollabModel, name: str, seed: int) -> dict[str, float | str]:
    """Fit one contender and score it."""
    note = ""
    with Measured() as m:
        if name in BASELINES:
            contender: Scorer | cflearn.CollabModel
            contender, note = BASELINES[name](data)
        else:
            learn = cflearn.collab_learner(data, name, progress=False, seed=seed)
            cflearn.fit(learn)
            contender = learn.cf
    out: dict[str, float | str] = dict(evaluate(data, ref, contender))
    rated = isinstance(contender, cflearn.CollabModel) and contender.contract.score_kind == "rating"
    if isinstance(contender, cflearn.CollabModel) and not rated and name == "dual" and not data.implicit:
        rated = True  # dual's rmse column is its rating head's
    out["rmse_shown"] = float(out.get("rmse", float("nan"))) if rated else float("nan")
    out.update(cpu=m.cpu, mb=m.mb, note=note)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", action="store_true", help="append the tables to bench/RESULTS.md")
    ap.add_argument("--sets", nargs="*", default=list(LABELS), choices=list(LABELS))
    ap.add_argument("--protocols", nargs="*", default=["random", "last5"], choices=["random", "last5"])
    ap.add_argument("--contenders", nargs="*", default=[*PRESETS, *BASELINES])
    ap.add_argument("--seeds", type=int, default=1, help="model seeds averaged per cflearn preset")
    ap.add_argument("--title", default="", help="a few words on what this run is (before/after a change)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warm = cflearn.from_df(cflearn.datasets.synthetic(50, 40, seed=1))  # one-time costs (lazy imports, first
    for preset in ("dual", "rank"):                                       # fit) land on no contender
        cflearn.fit(cflearn.collab_learner(warm, preset, progress=False))
    header = ["protocol", "contender", "NDCG@10", "Recall@10", "RMSE", "fit CPU s", "peak MB", "vs EASE"]
    tables: list[str] = []
    summary: list[list[str]] = []
    for name in args.sets:
        rows: list[list[str]] = []
        for protocol in args.protocols:
            data = data_set(name, protocol)
            ref_learn = cflearn.collab_learner(data, "rank" if data.implicit else "fast", epochs=1, progress=False)
            cflearn.fit(ref_learn)  # the vocabularies and seen lists every contender is scored with
            results: dict[str, dict[str, float | str]] = {}
            for contender in args.contenders:
                if data.implicit and contender == "fast":
                    continue
                try:
                    runs = [run_one(data, ref_learn.cf, contender, seed)
                            for seed in (range(args.seeds) if contender in PRESETS else [0])]
                except ImportError as e:
                    print(f"{LABELS[name]} {protocol} | {contender}: not installed ({e.name})", flush=True)
                    continue
                res: dict[str, float | str] = {k: float(np.mean([float(r[k]) for r in runs]))
                                               for k in ("ndcg@10", "recall@10", "rmse_shown", "cpu", "mb")}
                res["note"] = runs[0]["note"]
                results[contender] = res
                print(f"{LABELS[name]} {protocol} | {contender}: NDCG@10 {res['ndcg@10']:.4f} recall "
                      f"{res['recall@10']:.4f} rmse {res['rmse_shown']:.4f} cpu {res['cpu']:.1f} s "
                      f"peak {res['mb']:.0f} MB", flush=True)
            bar = float(results["EASE"]["ndcg@10"]) if "EASE" in results else float("nan")
            for contender, res in results.items():
                rmse = float(res["rmse_shown"])
                ratio = float(res["ndcg@10"]) / bar
                label = contender + (f" ({res['note']})" if res["note"] else "") + (
                    " (default)" if contender == "dual" else "")
                rows.append([protocol, label, f"{float(res['ndcg@10']):.4f}", f"{float(res['recall@10']):.4f}",
                             "-" if math.isnan(rmse) else f"{rmse:.4f}", f"{float(res['cpu']):.1f}",
                             f"{float(res['mb']):.0f}", f"{ratio:.3f}x"])
                if contender == "dual":
                    fast = results.get("fast", {}).get("rmse_shown", float("nan"))
                    summary.append([LABELS[name], protocol, f"{ratio:.3f}x",
                                    "-" if math.isnan(rmse) else f"{rmse - float(fast):+.4f}",
                                    f"{float(res['cpu']) / float(results['EASE']['cpu']):.2f}x"
                                    if "EASE" in results else "-"])
        table = markdown_table(header, rows)
        tables.append(f"### {LABELS[name]}\n\n{table}")
        print(f"\n{LABELS[name]}\n{table}\n", flush=True)
    summ = markdown_table(["data", "protocol", "default NDCG@10 / EASE", "default RMSE - fast's", "default CPU / EASE"],
                          summary)
    print(summ)
    if args.record:
        append_results("Suite: every list-making preset vs EASE, ALS, item-kNN, most popular, on every data set"
                       + (f": {args.title}" if args.title else ""),
                       "The default against the bars:\n\n" + summ + "\n\n" + "\n\n".join(tables),
                       f"cflearn presets: the mean over {args.seeds} model seed(s); the split is the same. One "
                       "torch/BLAS thread; fit CPU s from time.process_time; peak MB: peak resident memory during the "
                       "fit above the process's before it. vs EASE: NDCG@10 / EASE's on the same split. See the "
                       "docstring of bench/suite.py for the protocols.")


if __name__ == "__main__":
    main()
