"""Accuracy and speed on ml-latest-small: cflearn presets vs the fastbook recipe, Surprise and a bare loop.

Every contender trains on the same seeded 80/20 random split (cflearn.from_df, seed 42) in this one
invocation; each is repeated (--repeats, default 3) and the table shows medians. RMSE/MAE are on the
validation rows, with each tool's own default predictions (fastai: unclipped sigmoid output;
Surprise and cflearn: clipped to the rating scale). Cold rows (items unseen in training) count for
everyone. Appends the table to bench/RESULTS.md.

    python bench/run.py [--repeats 3] [--only fast,best,...] [--no-record]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, append_results, markdown_table, median, movielens_split, rmse_mae  # noqa: E402

import cflearn  # noqa: E402


def fastbook(data: cflearn.CollabData, bs: int, seed: int):
    """The fastbook chapter 8 recipe with raw fastai (CollabDataLoaders.from_df = TabularCollab + this split)."""
    from fastai.collab import TabularCollab, collab_learner
    from fastai.data.block import TransformBlock
    from fastai.tabular.core import Categorify

    torch.manual_seed(seed)
    with Timer() as t:
        to = TabularCollab(data.ratings[[data.user, data.item, data.rating]], [Categorify], [data.user, data.item],
                           y_names=[data.rating], y_block=TransformBlock(),
                           splits=(list(data.train_idx), list(data.valid_idx)))
        dls = to.dataloaders(bs=bs)
        learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(5, 5e-3, wd=0.1)
    with learn.no_bar():
        preds, targ = learn.get_preds()
    return preds.numpy().ravel(), targ.numpy().ravel(), t.seconds, 5


def surprise(data: cflearn.CollabData, algo: str, seed: int):
    from surprise import SVD, Dataset, Reader, SVDpp

    reader = Reader(rating_scale=data.scale)
    train = Dataset.load_from_df(data.train[[data.user, data.item, data.rating]], reader).build_full_trainset()
    model = (SVD if algo == "SVD" else SVDpp)(random_state=seed)
    with Timer() as t:
        model.fit(train)
    v = data.valid
    preds = np.array([model.predict(u, i).est for u, i in zip(v[data.user], v[data.item])])
    return preds, v[data.rating].to_numpy(), t.seconds, model.n_epochs


def bare_loop(data: cflearn.CollabData, seed: int):
    """A hand-written PyTorch loop with the fast preset's model and settings (no fastai, no callbacks):
    dense AdamW (what the "auto" optimizer picks on a table this size), one-cycle schedule, L2 on the
    looked-up rows, the fast preset's batch size, epochs and learning rate."""
    p = cflearn.PRESETS["fast"]
    bs = p.bs
    torch.manual_seed(seed)
    xt, yt = data.tensors("train")
    xv, yv = data.tensors("valid")
    nu, ni, k = len(data.users), len(data.items), p.n_factors
    emb = [torch.nn.Embedding(n, d) for n, d in [(nu, k), (ni, k), (nu, 1), (ni, 1)]]
    for e in emb:
        torch.nn.init.trunc_normal_(e.weight, std=0.01)
    P, Q, BP, BQ = emb
    lo, hi = cflearn.y_range_for(data.scale)
    opt = torch.optim.AdamW([e.weight for e in emb], lr=p.lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0, foreach=True)
    steps = len(xt) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=p.epochs * steps)
    gen = torch.Generator().manual_seed(seed)
    with Timer() as t:
        for _ in range(p.epochs):
            perm = torch.randperm(len(xt), generator=gen)
            x, y = xt[perm], yt[perm]
            for b in range(steps):
                xb, yb = x[b * bs:(b + 1) * bs], y[b * bs:(b + 1) * bs]
                u, i, bu, bi = P(xb[:, 0]), Q(xb[:, 1]), BP(xb[:, 0]).view(-1), BQ(xb[:, 1]).view(-1)
                pred = torch.sigmoid((u * i).sum(1) + bu + bi) * (hi - lo) + lo
                loss = (F.mse_loss(pred, yb) + p.row_l2 * (u.pow(2).sum(1) + i.pow(2).sum(1)).mean()
                        + p.bias_l2 * (bu.pow(2) + bi.pow(2)).mean())
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    with torch.no_grad():
        for e in emb:
            e.weight[0] = e.weight[1:].mean(0)
        u, i = xv[:, 0], xv[:, 1]
        pred = torch.sigmoid((P(u) * Q(i)).sum(1) + BP(u).view(-1) + BQ(i).view(-1)) * (hi - lo) + lo
    return pred.clamp(*data.scale).numpy(), yv.numpy(), t.seconds, p.epochs


def cflearn_preset(data: cflearn.CollabData, preset: str, seed: int):
    """Timed from collab_learner to the end of fit: best's inner split (two extra trainings) counts."""
    with Timer() as t:
        learn = cflearn.collab_learner(data, preset, seed=seed, progress=False)
        cflearn.fit(learn)
    v = data.valid
    preds = cflearn.predict(learn, v[data.user].tolist(), v[data.item].tolist())["score"].to_numpy()
    return preds, v[data.rating].to_numpy(), t.seconds, learn.cf.preset.epochs


CONTENDERS = {
    "fastbook recipe (raw fastai, bs 64)": lambda d, s: fastbook(d, 64, s),
    "fastbook recipe, bs 1024": lambda d, s: fastbook(d, 1024, s),
    "Surprise SVD (defaults)": lambda d, s: surprise(d, "SVD", s),
    "Surprise SVD++ (defaults)": lambda d, s: surprise(d, "SVDpp", s),
    f"bare PyTorch loop (fast preset's model, bs {cflearn.PRESETS['fast'].bs})": bare_loop,
    **{f"cflearn {p}": (lambda d, s, p=p: cflearn_preset(d, p, s)) for p, preset in cflearn.PRESETS.items()
       if not preset.ranking},  # ranking presets' scores are not ratings: bench/ranking.py measures their lists
}
FASTBOOK = "fastbook recipe (raw fastai, bs 64)"
BARE = f"bare PyTorch loop (fast preset's model, bs {cflearn.PRESETS['fast'].bs})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", help="comma-separated substrings of contender names")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = ap.parse_args()
    data = movielens_split()
    names = [n for n in CONTENDERS if not args.only or any(s in n for s in args.only.split(","))]
    for must in (FASTBOOK, BARE):  # the ratios need them
        if must not in names:
            names.insert(0, must)
    runs: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in names}
    for r in range(args.repeats):
        for name in names:
            try:
                pred, targ, secs, epochs = CONTENDERS[name](data, 42 + r)
            except ImportError as e:
                print(f"skip {name}: {e} (pip install -e '.[bench]')", file=sys.stderr)
                runs.pop(name, None)
                continue
            rm, ma = rmse_mae(pred, targ)
            runs[name].append((rm, ma, secs, secs / epochs))
            print(f"repeat {r + 1}/{args.repeats}  {name:<52} rmse {rm:.4f}  mae {ma:.4f}  {secs:7.2f}s", flush=True)
    med = {n: [median([x[j] for x in v]) for j in range(4)] for n, v in runs.items() if v}
    fb, bare = med[FASTBOOK][2], med[BARE][3]
    rows = []
    for n, (rm, ma, secs, per_epoch) in med.items():
        ratio = f"{secs / fb:.3f}" + (f" (1/{fb / secs:.0f})" if fb / secs >= 2 else "")
        rows.append([n, f"{rm:.4f}", f"{ma:.4f}", f"{secs:.2f}", ratio,
                     f"{per_epoch / bare:.2f}"])
    table = markdown_table(["contender", "valid RMSE", "valid MAE", "fit s", "time / fastbook", "epoch time / bare"],
                           rows)
    print()
    print(table)
    if not args.no_record:
        append_results(f"ml-latest-small, seeded 80/20 split, medians of {args.repeats}", table,
                       "fit s: training wall time (cflearn: collab_learner and fit, so its per-epoch validation and "
                       "best's inner split count). epoch time / bare: "
                       "seconds per epoch relative to the bare PyTorch loop at the fast preset's batch size.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
