"""The prior a folded-in user starts from: what the trained users look like, and how noisy a rating is.

Fold-in fits a new user's vector ``u`` and bias ``b`` to a few ratings against the frozen item
factors. With five ratings and ``n_factors + 1`` unknowns the fit needs a prior: this module
gives the empirical-Bayes one (the trained users' mean and covariance, the rating noise), so the
fit is the posterior mode::

    sum_r (y_r - pred_r)^2 / noise + (b - mean_b)^2 / var_b + (u - mean_u)' cov_u^-1 (u - mean_u)

With no ratings it is the average trained user; the more ratings, the less the prior counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ._scoring import score_pairs

if TYPE_CHECKING:
    from ._collab import CollabModel

__all__ = ["UserPrior", "user_prior", "rating_noise", "TRAIN_TO_HELD_OUT", "MIN_HELD_OUT"]

TRAIN_TO_HELD_OUT = 2.0
"""Held-out MSE over training MSE, used when no held-out ratings of known users exist (measured
on ml-latest-small with ``fast``: 0.75 / 0.376 = 2.0)."""
MIN_HELD_OUT = 20
"""Held-out ratings of known users needed to measure the noise on them."""
_TRAIN_SAMPLE = 200_000


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
