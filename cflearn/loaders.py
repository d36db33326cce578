"""The fast data path: encoded tensors built once, batches as tensor slices, fastai-compatible."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from fastai.data.core import DataLoaders

__all__ = ["TensorLoader", "fast_loaders"]


class TensorLoader:
    """Batches ``(x, y)`` from two tensors already on the training device.

    Each epoch, a shuffled loader draws one permutation and gathers each batch's rows from it; an
    unshuffled one yields slices. No per-batch pandas, collation or worker processes, and no copy
    of the whole table per epoch (20M ratings train in a few GB).
    It implements the part of fastai's ``DataLoader`` interface that ``Learner`` uses
    (``len``, iteration, ``to``, ``new``, ``one_batch``, ``bs``, ``n``, ``device``).

    Args:
        x: ``(n, 2)`` (user, item) indices, int32 or int64 (batches are int64).
        y: ``(n,)`` float32 ratings.
        bs: batch size.
        shuffle: reshuffle every epoch.
        drop_last: drop a last, smaller batch.
        seed: seed of the shuffling generator (``None``: from torch's global generator).
    """

    n_inp = 1

    def __init__(self, x: torch.Tensor, y: torch.Tensor, bs: int = 64, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None):
        self.x, self.y, self.bs, self.shuffle, self.drop_last = x, y, int(bs), shuffle, drop_last
        self.seed = seed
        self._gen = torch.Generator(device="cpu")
        self._gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.x)

    @property
    def device(self) -> torch.device:
        """Device the tensors live on."""
        return self.x.device

    @property
    def dataset(self) -> TensorLoader:
        """fastai asks loaders for a dataset; the loader is its own."""
        return self

    def __len__(self) -> int:
        return self.n // self.bs if self.drop_last else math.ceil(self.n / self.bs)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y, bs = self.x, self.y, self.bs
        if self.shuffle:
            dtype = torch.int32 if self.n < 2**31 else torch.int64
            perm = torch.randperm(self.n, generator=self._gen, dtype=dtype).to(x.device)
            for b in range(len(self)):
                idx = perm[b * bs : (b + 1) * bs]
                yield x[idx].long(), y[idx]
        else:
            for b in range(len(self)):
                yield x[b * bs : (b + 1) * bs].long(), y[b * bs : (b + 1) * bs]

    def to(self, device: Any) -> TensorLoader:
        """Move the tensors to ``device`` (in place, like fastai's loaders)."""
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def new(self, shuffle: bool | None = None, drop_last: bool | None = None, bs: int | None = None,
            **_: Any) -> TensorLoader:
        """A loader over the same tensors with some settings changed (fastai's ``new``)."""
        return TensorLoader(self.x, self.y, bs or self.bs, self.shuffle if shuffle is None else shuffle,
                            self.drop_last if drop_last is None else drop_last, self.seed)

    def one_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first batch (unshuffled)."""
        return self.x[: self.bs].long(), self.y[: self.bs]


def fast_loaders(x_train: torch.Tensor, y_train: torch.Tensor, x_valid: torch.Tensor, y_valid: torch.Tensor,
                 *, bs: int, classes: dict[str, list[Any]], device: torch.device | str,
                 seed: int | None = None, valid_bs: int | None = None) -> DataLoaders:
    """fastai ``DataLoaders`` of two :class:`TensorLoader` s, with the ``classes`` and ``cat_names``
    that ``fastai.collab.collab_learner`` reads (so the same factory serves both data paths)."""
    train = TensorLoader(x_train, y_train, bs=bs, shuffle=True, drop_last=len(x_train) > bs, seed=seed)
    valid = TensorLoader(x_valid, y_valid, bs=valid_bs or max(bs, 65536), shuffle=False)
    dls = DataLoaders(train, valid, device=torch.device(device))
    dls.classes = classes
    dls.cat_names = list(classes)
    return dls
