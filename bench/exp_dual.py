"""Scratch: joint rating + ranking models on ml-latest-small (plain torch loop).

The experiment that shaped preset ``dual`` (see ``cflearn/kinds/_dual.py``). Unlike the benchmarks, it builds
its own training loop from cflearn's internal ranking targets (``cflearn.kinds._ranking.rank_targets``) on
purpose: it is a record of how the design was explored, not a measurement of the public library.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import cflearn
from cflearn.metrics import relevance_level
from cflearn.kinds._ranking import rank_targets
from cflearn.models import csr_rows

torch.set_num_threads(2)


def csr(users, items, vals, n):
    order = np.lexsort((items, users))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=n))])
    return (torch.from_numpy(indptr.astype(np.int64)), torch.from_numpy(items[order].astype(np.int64)),
            torch.from_numpy(vals[order].astype(np.float32)))


class Dual(nn.Module):
    def __init__(self, n_users, n_items, k, hist, y_range, share="full", dropout=0.5, seed=0, free_user=True):
        super().__init__()
        self.share, self.dropout, self.y_range, self.free_user = share, dropout, y_range, free_user
        g = torch.Generator().manual_seed(seed)
        def emb(n, d, std=0.01):
            e = nn.Embedding(n, d)
            with torch.no_grad():
                e.weight.normal_(0, std, generator=g)
            return e
        self.i_in, self.q = emb(n_items, k), emb(n_items, k)
        self.c = emb(n_items, 1, 0.0)
        self.p, self.bu, self.bi = emb(n_users, k), emb(n_users, 1, 0.0), emb(n_items, 1, 0.0)
        if share in ("pair", "user"):
            self.q_r = emb(n_items, k)
        if share == "user":
            self.W = nn.Linear(k, k, bias=False)
            with torch.no_grad():
                self.W.weight.zero_()
        self.hist = hist
        self.gamma = nn.Parameter(torch.zeros(()))
        self.gen = torch.Generator().manual_seed(seed + 1)

    def encode(self, users):
        indptr, items, w = self.hist
        pos, offsets, lens = csr_rows(indptr, users)
        it, ww = items[pos], w[pos]
        if self.training and self.dropout > 0:
            keep = torch.rand(len(it), generator=self.gen) >= self.dropout
            ww = ww * keep.float() / (1 - self.dropout)
        total = torch.zeros(len(users)).index_add(0, torch.repeat_interleave(torch.arange(len(users)), lens), w[pos])
        h = F.embedding_bag(it, self.i_in.weight, offsets, mode="sum", per_sample_weights=ww)
        return torch.tanh(h / total.clamp(min=1e-6)[:, None])

    def rating(self, users, items, h_rows=None, which=None):
        lo, hi = self.y_range
        if self.share == "pair":
            u = self.p(users)
            q = self.q_r(items)
        elif self.share == "user":
            u = self.p(users) + self.W(h_rows)
            q = self.q_r(items)
        elif self.share == "mf":  # both heads from p (no encoder)
            u = self.p(users)
            q = self.q(items)
        else:
            u = (self.p(users) if self.free_user else 0) + h_rows
            q = self.q(items)
        raw = (u * q).sum(1) + self.bu(users)[:, 0] + self.bi(items)[:, 0]
        return torch.sigmoid(raw) * (hi - lo) + lo, u, q

    def rating_matrix(self, users, items):
        lo, hi = self.y_range
        q = self.q_r.weight[items] if self.share == "pair" else self.q.weight[items]
        raw = self.p(users) @ q.T + self.bi.weight[items, 0][None]
        return torch.sigmoid(raw + self.bu(users)) * (hi - lo) + lo

    def user_rank_vec(self, users):
        if self.share == "mf":
            return self.p(users)
        return self.encode(users)


def train(data, args, share, k, epochs, lr, alpha, dropout, row_l2, bias_l2, bs, seed=0, free_user=True, verbose=False):
    torch.manual_seed(seed)
    n_users, n_items = len(data.users), len(data.items)
    history, targets = rank_targets(data, 0.0, relevance_level(data.scale))
    hist = (history.indptr, history.items, history.weights)
    tr = data.codes[data.train_idx]
    vals = data.values[data.train_idx].astype(np.float32)
    r_indptr, r_items, r_vals = csr(tr[:, 0].astype(np.int64), tr[:, 1].astype(np.int64), vals, n_users)
    lo, hi = data.scale
    model = Dual(n_users, n_items, k, hist, (lo - 0.5, hi + 0.5), share, dropout, seed, free_user)
    # targeted items: liked by some training user
    t_end = int(targets.indptr[n_users])
    liked = torch.zeros(n_items, dtype=torch.bool)
    liked[targets.items[:t_end][targets.weights[:t_end] > 0]] = True
    liked[0] = False
    counts = torch.bincount(torch.from_numpy(tr[:, 1].astype(np.int64)), minlength=n_items)
    liked &= counts >= args.min_count
    targeted = torch.nonzero(liked).view(-1)
    where = torch.full((n_items,), -1, dtype=torch.long)
    where[targeted] = torch.arange(len(targeted))
    r_u_all, r_i_all = torch.from_numpy(tr[:, 0].astype(np.int64)), torch.from_numpy(tr[:, 1].astype(np.int64))
    r_v_all = torch.from_numpy(vals)
    lens = targets.indptr[1:n_users + 1] - targets.indptr[:n_users]
    rlens = r_indptr[1:] - r_indptr[:-1]
    train_users = torch.nonzero((lens > 0) | (rlens > 0)).view(-1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.0)
    steps = epochs * math.ceil(len(train_users) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25,
                                                div_factor=25, final_div_factor=1e5, base_momentum=0.85,
                                                max_momentum=0.95, cycle_momentum=True)
    g = torch.Generator().manual_seed(seed + 2)
    t0 = time.process_time()
    for ep in range(epochs):
        model.train()
        perm = train_users[torch.randperm(len(train_users), generator=g)]
        rperm = torch.randperm(len(r_u_all), generator=g)
        tot_r = tot_k = 0.0
        for s in range(0, len(perm), bs):
            users = perm[s:s + bs]
            loss = 0.0
            h = model.user_rank_vec(users) if share != "pair" or True else None
            if alpha < 1e9:  # ranking head
                pos, _, ln = csr_rows(targets.indptr, users)
                which = torch.repeat_interleave(torch.arange(len(users)), ln)
                items, w = targets.items[pos], targets.weights[pos]
                cols = where[items]
                w = w * (cols >= 0).float()
                cols = cols.clamp(min=0)
                weight, bias = F.embedding(targeted, model.q.weight), F.embedding(targeted, model.c.weight)
                logits = torch.addmm(bias[:, 0], h, weight.T)
                if args.couple:
                    logits = logits + model.gamma * model.rating_matrix(users, targeted).detach()
                target = torch.zeros_like(logits).index_put_((which, cols), w, accumulate=True)
                lk = -(target * F.log_softmax(logits, 1)).sum() / len(users)
                loss = loss + lk
                tot_k += float(lk)
            if alpha > 0:
                if args.indep:
                    nb = math.ceil(len(perm) / bs)
                    j = s // bs
                    sel = rperm[j * len(rperm) // nb:(j + 1) * len(rperm) // nb]
                    uu, it, y = r_u_all[sel], r_i_all[sel], r_v_all[sel]
                    which = None
                    if share == "user":
                        un, inv = torch.unique(uu, return_inverse=True)
                        h_r = model.encode(un)[inv]
                else:
                    pos, _, ln = csr_rows(r_indptr, users)
                    which = torch.repeat_interleave(torch.arange(len(users)), ln)
                    it, y = r_items[pos], r_vals[pos]
                    uu = users[which]
                pred, u, q = model.rating(uu, it, h_r if share == "user" else h[which] if share not in ("pair", "mf") else None)
                mse = (pred - y).pow(2)
                lr_ = mse.sum() / len(users) if not args.indep else mse.mean() * args.mse_scale
                pen = (row_l2 * u.pow(2).sum(1) + args.q_l2 * q.pow(2).sum(1) + bias_l2 * (model.bu(uu)[:, 0].pow(2) + model.bi(it)[:, 0].pow(2)))
                pen = pen.sum() / len(users) if not args.indep else pen.mean() * args.mse_scale
                loss = loss + alpha * (lr_ + pen)
                tot_r += float(mse.mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if verbose:
            print(f"  ep {ep} rank {tot_k:.1f} mse {tot_r / max(1, math.ceil(len(perm) / bs)):.3f}", flush=True)
    cpu = time.process_time() - t0
    return model, cpu, targeted


@torch.no_grad()
def evaluate(data, model, targeted, ref):
    from ranking import score
    model.eval()
    n_users = len(data.users)
    # cold rows: average of trained rows for p, bu, bi, q? (user row 0 = mean of trained)
    va = data.codes[data.valid_idx].astype(np.int64)
    y = data.values[data.valid_idx]
    # rating
    users = torch.from_numpy(va[:, 0]); items = torch.from_numpy(va[:, 1])
    if model.share in ("pair", "mf"):
        hrows = None
    elif model.share == "user":
        hall = model.encode(torch.arange(n_users)); hall[0] = hall[1:].mean(0)
        hrows = hall[users]
    else:
        hall = model.encode(torch.arange(n_users))
        hrows = hall[users]
    # cold: replace row 0 params by means
    for emb in [model.p, model.bu, model.bi, model.q] + ([model.q_r] if model.share in ("pair", "user") else []):
        emb.weight[0] = emb.weight[1:].mean(0)
    pred, _, _ = model.rating(users, items, hrows)
    pred = pred.clamp(*data.scale).numpy()
    rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
    # ranking: untargeted items get vector 0 and lowest bias
    other = torch.ones(len(data.items), dtype=torch.bool); other[targeted] = False; other[0] = False
    Q = model.q.weight.clone(); c = model.c.weight[:, 0].clone()
    Q[other] = 0; c[other] = c[targeted].min()
    if model.share == "mf":
        H = model.p.weight
    else:
        H = model.encode(torch.arange(n_users))
    if args_global.couple:
        R = model.rating_matrix(torch.arange(n_users), torch.arange(len(data.items)))
        R[:, other] = 0
        print("gamma", float(model.gamma))
        scorer = lambda rows: (H[rows] @ Q.T + c[None] + model.gamma * R[rows]).double()
    else:
        scorer = lambda rows: (H[rows] @ Q.T + c[None]).double()
    m = score(data, ref.cf, scorer)
    return rmse, m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--share", default="full")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--row-l2", type=float, default=0.15)
    ap.add_argument("--bias-l2", type=float, default=0.02)
    ap.add_argument("--q-l2", type=float, default=0.15)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--indep", action="store_true")
    ap.add_argument("--min-count", type=int, default=1)
    ap.add_argument("--couple", action="store_true")
    ap.add_argument("--mse-scale", type=float, default=100.0)
    ap.add_argument("--no-free-user", action="store_true")
    ap.add_argument("--split", default="random")
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    global args_global
    args_global = args
    ml = cflearn.datasets.movielens("ml-latest-small")
    data = cflearn.from_df(ml, seed=42) if args.split == "random" else cflearn.from_df(ml, split="leave_last", n_last=5)
    ref = cflearn.collab_learner(data, "fast", epochs=1, progress=False)
    cflearn.fit(ref)
    model, cpu, targeted = train(data, args, args.share, args.k, args.epochs, args.lr, args.alpha, args.dropout,
                                 args.row_l2, args.bias_l2, args.bs, free_user=not args.no_free_user, verbose=args.v)
    rmse, m = evaluate(data, model, targeted, ref)
    print(f"{vars(args)} | RMSE {rmse:.4f} NDCG@10 {m['ndcg@10']:.4f} recall@10 {m['recall@10']:.4f} "
          f"cov {m['coverage']:.3f} cpu {cpu:.1f}s", flush=True)


if __name__ == "__main__":
    main()
