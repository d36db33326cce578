"""The prior a folded-in user starts from: what the trained users look like, and how noisy a rating is.

Fold-in fits a new user's vector ``u`` and bias ``b`` to a few ratings against the frozen item
factors. With five ratings and ``n_factors + 1`` unknowns the fit needs a prior: this module
gives the empirical-Bayes one (the trained users' mean and covariance, the rating noise), so the
fit is the posterior mode::

    sum_r (y_r - pred_r)^2 / noise + (b - mean_b)^2 / var_b + (u - mean_u)' cov_u^-1 (u - mean_u)

With no ratings it is the average trained user; the more ratings, the less the prior counts.

A new user's *list* has a prior too: the popularity chart (what a user with no ratings gets). With
``m`` ratings that inform the list, :func:`lean_on_chart` blends the model's ranking with the chart's,
the chart weighing ``c / (c + m)`` (:data:`CHART_PRIOR`), so the list starts from the chart and moves
away from it as evidence grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ._scoring import score_pairs

if TYPE_CHECKING:
    from ._collab import CollabModel

__all__ = ["UserPrior", "user_prior", "rating_noise", "posterior_mode", "chart_weight", "lean_on_chart",
           "TRAIN_TO_HELD_OUT", "MIN_HELD_OUT", "CHART_PRIOR", "CHART_OFFSET"]

TRAIN_TO_HELD_OUT = 2.0
"""Held-out MSE over training MSE, used when no held-out ratings of known users exist (measured
on ml-latest-small with ``fast``: 0.75 / 0.376 = 2.0)."""
MIN_HELD_OUT = 20
"""Held-out ratings of known users needed to measure the noise on them."""
_TRAIN_SAMPLE = 200_000
CHART_PRIOR = 12.0
"""How many ratings the popularity chart is worth in a new user's list: with ``m`` ratings that inform
the list the chart weighs ``CHART_PRIOR / (CHART_PRIOR + m)``. Chosen on training users held out as
new users of every suite data set (``bench/tune_new_users.py``, table in ``bench/RESULTS.md``)."""
CHART_OFFSET = 10
"""``K`` of the rank blend ``(1 - w) / (K + model rank) + w / (K + chart rank)``: how much more the top
of each ranking counts than its tail."""


def posterior_mode(output: Callable[[torch.Tensor], torch.Tensor], items: torch.Tensor, item_bias: torch.Tensor,
                   y: torch.Tensor, start: tuple[torch.Tensor, float], prior: UserPrior, *, strength: float = 1.0,
                   steps: int = 100) -> tuple[torch.Tensor, float]:
    """The new user's vector and bias that minimise ``sum (y - output(items @ u + b + item_bias))^2 / noise``
    plus ``strength`` times the prior's quadratic (see the module): Gauss-Newton steps (the exact Hessian of
    the prior, the Gauss-Newton one of the ratings) with a backtracking line search, from ``start``, at most
    ``steps`` of them; it stops once a step no longer moves the answer. The problem has ``n_factors + 1``
    unknowns, so a step is one small linear solve: about a millisecond for a user."""
    X = torch.cat([items.double(), torch.ones(len(items), 1, dtype=torch.float64)], 1)
    y, c = y.double(), item_bias.double().reshape(-1)
    f = X.shape[1] - 1
    m = torch.cat([prior.mean.double().reshape(-1), torch.tensor([prior.bias_mean], dtype=torch.float64)])
    P = torch.zeros(f + 1, f + 1, dtype=torch.float64)
    P[:f, :f] = prior.precision.double()
    P[f, f] = 1.0 / prior.bias_var
    P *= float(strength)
    x = torch.cat([start[0].double().reshape(-1), torch.tensor([float(start[1])], dtype=torch.float64)])

    def loss(at: torch.Tensor) -> torch.Tensor:
        r = output(X @ at + c) - y
        d = at - m
        return r @ r / prior.noise + d @ P @ d

    ridge = 1e-9 * (1.0 + float(P.diagonal().abs().max()))
    current = loss(x)
    for _ in range(int(steps)):
        z = (X @ x + c).requires_grad_(True)
        out = output(z)
        (slope,) = torch.autograd.grad(out.sum(), z)
        J = slope.detach()[:, None] * X
        r = out.detach() - y
        grad = J.T @ r / prior.noise + P @ (x - m)
        H = J.T @ J / prior.noise + P + ridge * torch.eye(f + 1, dtype=torch.float64)
        step = torch.linalg.solve(H, -grad)
        t, slope_along = 1.0, float(grad @ step)
        while t > 1e-6:
            trial = loss(x + t * step)
            if trial <= current + 1e-4 * t * slope_along:
                break
            t /= 2
        else:
            break  # no step lowers the loss: x is the minimum to working precision
        x, current = x + t * step, trial
        if float((t * step).abs().max()) <= 1e-7 * (1.0 + float(x.abs().max())):
            break
    return x[:f].float(), float(x[f])


def chart_weight(m: int, prior: float = CHART_PRIOR) -> float:
    """The chart's weight in the list of a new user with ``m`` ratings that inform the list (1 with none)."""
    if m <= 0:
        return 1.0
    return float(prior) / (float(prior) + m)


def lean_on_chart(scores: torch.Tensor, counts: torch.Tensor, weight: float,
                  masked: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A new user's list scores: the model's ranking (``scores``, one row over the items) blended with the
    popularity chart (``counts``: training rows per item, most first, ties by index as the unknown-user
    list orders them), the chart weighing ``weight``. Both are blended by rank, so that the model's
    scale does not matter; ``masked`` items (not recommendable, or seen) rank nowhere and score ``-inf``.
    ``dtype``: of the result (float64 keeps blends that float32 rounds together apart, for listing them)."""
    masked = torch.zeros(len(scores), dtype=torch.bool) if masked is None else masked
    if weight <= 0.0:
        return scores.masked_fill(masked, -torch.inf)
    out = torch.zeros(len(scores), dtype=torch.float64)
    for share, values in ((1.0 - weight, scores.double()), (weight, counts.double())):
        if share <= 0.0:
            continue
        values = torch.where(masked, torch.tensor(-torch.inf, dtype=torch.float64), values)
        order = torch.argsort(values, descending=True, stable=True)
        rank = torch.empty(len(values), dtype=torch.float64)
        rank[order] = torch.arange(len(values), dtype=torch.float64)
        out += share / (CHART_OFFSET + rank)
    out[masked] = -torch.inf
    return out.to(dtype)


@dataclass(frozen=True)
class UserPrior:
    """Mean and spread of the trained users' vectors and biases, and the rating noise."""

    mean: torch.Tensor
    precision: torch.Tensor
    bias_mean: float
    bias_var: float
    noise: float


def rating_noise(cf: CollabModel) -> float:
    """The squared error to expect on a rating the model has not seen, for a known user.

    The MSE on the validation ratings whose user and item were trained (at least
    :data:`MIN_HELD_OUT` of them); else :data:`TRAIN_TO_HELD_OUT` times the training MSE (a seeded
    sample of training rows); a model loaded from a file uses the value saved with it, and a file
    saved before cflearn recorded it gets the held-out MSE of ml-latest-small scaled to its
    rating range. Cached on the model until it trains again.
    """
    if cf.fold_noise is not None:
        return cf.fold_noise
    data = cf.data
    lo, hi = cf.scale
    if data is None or cf.implicit:
        return max(1e-6, 0.75 * ((hi - lo) / 4.5) ** 2)
    valid = data.valid_idx[(data.codes[data.valid_idx] > 0).all(axis=1)]  # user and item trained
    if len(valid) >= MIN_HELD_OUT:
        rows, factor = valid, 1.0
    else:
        rows, factor = data.train_idx, TRAIN_TO_HELD_OUT
        if len(rows) > _TRAIN_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(rows, _TRAIN_SAMPLE, replace=False))
    frame = data.ratings  # encoded with the model's own vocabularies (a hybrid model's extend the data's)
    users = cf.users.encode(frame[data.user].to_numpy()[rows])
    items = cf.items.encode(frame[data.item].to_numpy()[rows])
    pred = score_pairs(cf, users, items)
    floor = max(1e-6, (0.01 * (hi - lo)) ** 2)  # a model that fits perfectly still leaves the prior a say
    cf.fold_noise = max(floor, float(np.mean((pred - data.values[rows]) ** 2) * factor))
    return cf.fold_noise


def user_prior(cf: CollabModel, users: torch.Tensor, bias: torch.Tensor,
               trained: torch.Tensor | slice = slice(1, None)) -> UserPrior:
    """The empirical prior from the trained users' rows (``users``, ``bias``; by default every row
    but row 0, the unknown user), with a small ridge so that the covariance is invertible."""
    if isinstance(trained, torch.Tensor):
        trained = trained.cpu()
    U, b = users[trained].double(), bias.reshape(-1)[trained].double()
    if len(U) < 2:  # one trained user: no spread to learn from; a unit prior around them
        return UserPrior(users[0].float(), torch.eye(users.shape[1]), float(bias.reshape(-1)[0]), 1.0,
                         rating_noise(cf))
    cov = torch.cov(U.T).reshape(U.shape[1], U.shape[1])
    cov += torch.eye(len(cov), dtype=cov.dtype) * max(1e-6, 1e-3 * float(cov.diagonal().mean()))
    return UserPrior(U.mean(0).float(), torch.linalg.inv(cov).float(), float(b.mean()),
                     max(float(b.var()), 1e-6), rating_noise(cf))
