"""The fast data path as real fastai loaders: encoded tensors built once, batches as tensor slices.

:class:`TensorLoader` is a fastai ``DataLoader`` whose iteration gathers each batch from tensors
already on the training device (no per-batch pandas, collation or workers). Everything else is
fastai's: ``new``, ``one_batch``, ``get_preds``, plus ``decode_batch`` / ``show_batch`` /
``show_results`` that show raw IDs (and titles where known). :class:`CollabLoaders` adds
``test_dl`` for raw IDs or a DataFrame, encoded through the model's vocabularies.
:func:`pair_loaders` picks the loaders of ``(user, item)`` pairs: these, or fastai's own
``CollabDataLoaders`` recipe (the course's presets).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from types import MethodType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.data.transforms import CategoryMap

from .._errors import ConfigError
from ._vocab import Vocab, encode_ids, item_titles

if TYPE_CHECKING:
    from ..kinds._presets import Preset
    from ._data import CollabData

__all__ = ["Decoder", "TensorDataset", "TensorLoader", "CollabLoaders", "fast_loaders", "pair_loaders"]


class Decoder:
    """Turns encoded rows back into raw IDs (and titles) for display.

    Args:
        user, item, rating: the training table's column names.
        users, items: the vocabularies.
        titles: item titles by raw ID, when the data has them.
    """

    def __init__(self, user: str, item: str, rating: str, users: Vocab, items: Vocab,
                 titles: pd.Series | None = None):
        self.user, self.item, self.rating = user, item, rating
        self.users, self.items, self.titles = users, items, titles

    @classmethod
    def of(cls, data: CollabData, users: Vocab | None = None, items: Vocab | None = None) -> Decoder:
        """The decoder of ``data``'s columns and titles, with its vocabularies or the model's own (a hybrid's)."""
        return cls(data.user, data.item, data.rating, data.users if users is None else users,
                   data.items if items is None else items, item_titles(data.item_info))

    def frame(self, x: torch.Tensor, **columns: Any) -> pd.DataFrame:
        """Raw user and item IDs of ``(n, 2)`` indices (plus ``title`` when known, then ``columns``)."""
        codes = x.detach().cpu().numpy()
        out = pd.DataFrame({self.user: self.users.decode(codes[:, 0]), self.item: self.items.decode(codes[:, 1])})
        if self.titles is not None:
            out["title"] = self.titles.reindex(out[self.item].to_numpy()).to_numpy()
        for name, values in columns.items():
            out[name] = values.detach().cpu().float().numpy().reshape(-1) if torch.is_tensor(values) else values
        return out


class TensorDataset:
    """``(x, y)`` tensors as a dataset (``y`` may be ``None`` for a test set without labels)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return (self.x[i],) if self.y is None else (self.x[i], self.y[i])

    def new_empty(self) -> TensorDataset:
        raise ConfigError("learn.export() pickles the learner, which cflearn's fast loaders do not support; save "
                          "the model with cflearn.save(learn, 'model.safetensors') (safe: loading never unpickles)")


class TensorLoader(DataLoader):
    """A fastai ``DataLoader`` over ``(x, y)`` tensors that yields slices of them.

    Each epoch, a shuffled loader draws one permutation (from its own seeded generator) and
    gathers each batch's rows from it; an unshuffled one yields slices. No copy of the table per
    epoch (20M ratings train in a few GB).

    Args:
        dataset: a :class:`TensorDataset`: ``(n, 2)`` (user, item) indices (int32 or int64; batches
            are int64) and ``(n,)`` float32 ratings (or ``None``: batches are ``(x,)``).
        bs: batch size.
        shuffle: reshuffle every epoch.
        drop_last: drop a last, smaller batch.
        seed: seed of the shuffling generator (``None``: drawn from torch's global generator).
        decoder: turns batches back into raw IDs for ``show_batch`` / ``learn.predict``.
        shard: ``(rank, world)`` for distributed training: a shuffled loader yields this rank's
            share of each epoch's permutation (the same permutation on every rank, cut to a
            multiple of ``world`` so that every rank takes the same number of steps).
        **kwargs: fastai ``DataLoader`` arguments (``device``, ...).
    """

    n_inp = 1

    def __init__(self, dataset: TensorDataset | None = None, bs: int = 64, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None, decoder: Decoder | None = None,
                 shard: tuple[int, int] = (0, 1), **kwargs: Any):
        kwargs.pop("num_workers", None)  # tensors on the device: no worker processes
        super().__init__(dataset, bs=int(bs), shuffle=shuffle, drop_last=drop_last, num_workers=0, **kwargs)
        self.seed, self.decoder, self.shard = seed, decoder, shard
        self._gen = torch.Generator(device="cpu")
        self._gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))

    def _rows(self) -> int:
        """Rows this loader yields per epoch (this rank's share when sharded)."""
        n, world = len(self.dataset), self.shard[1]
        return n // world if self.shuffle and world > 1 else n

    def __len__(self) -> int:
        n = self._rows()
        return n // self.bs if self.drop_last else math.ceil(n / self.bs)

    def get_idxs(self) -> torch.Tensor | range:
        """This epoch's row order: a fresh permutation (shuffled) or ``range(n)``.

        fastai's ``get_preds`` pins it (``new(get_idxs=...)``) to put predictions back in dataset
        order; iteration follows it.
        """
        n = len(self.dataset)
        if self.shuffle:
            perm = torch.randperm(n, generator=self._gen, dtype=torch.int32 if n < 2**31 else torch.int64)
            rank, world = self.shard
            return perm[: n - n % world][rank::world] if world > 1 else perm
        return range(n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        ds, bs = self.dataset, self.bs
        x, y = ds.x, ds.y
        order = self.get_idxs()
        if isinstance(order, range) and order == range(len(x)):  # in order: plain slices, no gather
            for b in range(len(self)):
                sl = slice(b * bs, (b + 1) * bs)
                yield (x[sl].long(),) if y is None else (x[sl].long(), y[sl])
            return
        perm = torch.as_tensor(order).to(x.device)
        for b in range(len(self)):
            idx = perm[b * bs:(b + 1) * bs]
            yield (x[idx].long(),) if y is None else (x[idx].long(), y[idx])

    def to(self, device: Any) -> TensorLoader:
        """Move the tensors to ``device`` (in place, like fastai's loaders)."""
        super().to(device)
        ds = self.dataset
        if ds is not None and self.device is not None:
            ds.x = ds.x.to(self.device)
            ds.y = ds.y.to(self.device) if ds.y is not None else None
        return self

    def new(self, dataset: TensorDataset | None = None, cls: type | None = None, **kwargs: Any) -> TensorLoader:
        """A loader over the same (or another) dataset with some settings changed (fastai's ``new``)."""
        kwargs.setdefault("seed", self.seed)
        kwargs.setdefault("decoder", self.decoder)
        kwargs.setdefault("shard", self.shard)
        return super().new(dataset, cls, **kwargs)

    def one_batch(self) -> tuple[torch.Tensor, ...]:
        """The first batch (in this loader's order), without advancing its shuffling generator, so
        looking at a batch (``show_batch``) does not change what training sees."""
        state = self._gen.get_state()
        try:
            return next(iter(self))
        finally:
            self._gen.set_state(state)

    # -- showing -------------------------------------------------------------------------------
    def _decoder(self) -> Decoder:
        if self.decoder is None:
            raise ConfigError("this loader has no vocabularies to show raw IDs; build it with cflearn.collab_learner")
        return self.decoder

    def decode_batch(self, b: Sequence[torch.Tensor], max_n: int = 9, full: bool = True) -> list[tuple[Any, ...]]:
        """Samples of a batch ``(x, y...)`` in raw terms: ``(row with raw IDs, rating...)`` each."""
        x = b[0][:max_n]
        rows = self._decoder().frame(x)
        rest = [t[:max_n].detach().cpu().float().reshape(len(x), -1)[:, 0].tolist() for t in b[1:]]
        return [(rows.iloc[k],) + tuple(r[k] for r in rest) for k in range(len(x))]

    def show_batch(self, b: Sequence[torch.Tensor] | None = None, max_n: int = 9, ctxs: Any = None,
                   show: bool = True, unique: bool = False, **kwargs: Any) -> pd.DataFrame | None:
        """``max_n`` rows of a batch with raw IDs (and titles): displayed, or returned with ``show=False``."""
        b = self.one_batch() if b is None else b
        d = self._decoder()
        extra = {d.rating: b[1][:max_n]} if len(b) > 1 else {}
        return _show(d.frame(b[0][:max_n], **extra), show)

    def show_results(self, b: Sequence[torch.Tensor], out: Any, max_n: int = 9, ctxs: Any = None, show: bool = True,
                     **kwargs: Any) -> pd.DataFrame | None:
        """Like :meth:`show_batch` with the model's predictions ``out`` in a ``score`` column."""
        d = self._decoder()
        preds = out[0] if isinstance(out, (tuple, list)) else out
        extra = {d.rating: b[1][:max_n]} if len(b) > 1 else {}
        return _show(d.frame(b[0][:max_n], **extra, score=preds[:max_n]), show)


def _show(frame: pd.DataFrame, show: bool) -> pd.DataFrame | None:
    if not show:
        return frame
    try:
        from IPython.display import display

        display(frame)
    except ImportError:  # pragma: no cover - IPython comes with fastai
        print(frame.to_string())
    return None


class CollabLoaders(DataLoaders):
    """fastai ``DataLoaders`` of two :class:`TensorLoader` s with the vocabularies attached.

    ``classes`` maps the user and item column names to fastai ``CategoryMap`` s (``'#na#'`` at 0,
    ``o2i`` for raw -> index), as fastai's ``CollabDataLoaders`` do.
    """

    def __init__(self, *loaders: TensorLoader, decoder: Decoder, **kwargs: Any):
        super().__init__(*loaders, **kwargs)
        self.decoder = decoder
        self.classes = {decoder.user: _category_map(decoder.users), decoder.item: _category_map(decoder.items)}
        self.cat_names = [decoder.user, decoder.item]
        self.y_names = [decoder.rating]

    def test_dl(self, test_items: Any, rm_type_tfms: Any = None, with_labels: bool = False,
                **kwargs: Any) -> TensorLoader:
        """A loader over new (user, item) pairs given by raw ID, encoded with the training vocabularies.

        Args:
            test_items: a DataFrame with the training table's user and item columns (and its rating
                column: used as labels with ``with_labels=True``), or a list of rows, each
                ``(user, item)``, ``(user, item, rating)``, a dict or a pandas row.
            rm_type_tfms: ignored (fastai's argument; there are no type transforms here).
            with_labels: take ratings from the rows as targets.
            **kwargs: loader settings (``bs``...).

        Unknown IDs map to row 0 (the average user/item, as :func:`cflearn.predict`); an ID of the
        wrong type (``'31'`` where item IDs are ints) raises :class:`cflearn.UnknownIDError`.
        """
        d = self.decoder
        frame = _as_frame(test_items, d)
        users = encode_ids(d.users, frame[d.user].tolist(), "user")
        items = encode_ids(d.items, frame[d.item].tolist(), "item", titles=d.titles)
        x = torch.from_numpy(np.stack([users, items], axis=1))
        y = None
        if with_labels:
            if d.rating not in frame.columns:
                raise ConfigError(f"with_labels=True needs a {d.rating!r} column in the test items")
            y = torch.as_tensor(frame[d.rating].to_numpy(dtype=np.float32))
        kwargs.pop("num_workers", None)
        valid = self.valid
        return valid.new(TensorDataset(x, y), shuffle=False, drop_last=False, **kwargs).to(valid.device)

    def new_empty(self) -> DataLoaders:
        """fastai's ``learn.export()`` calls this: cflearn's models are saved with :func:`cflearn.save`."""
        return self.train.dataset.new_empty()


def _category_map(vocab: Vocab) -> CategoryMap:
    return CategoryMap(vocab.ids, sort=False, add_na=True)


def _as_frame(items: Any, d: Decoder) -> pd.DataFrame:
    """Test items as a DataFrame with the user/item(/rating) column names."""
    if isinstance(items, pd.DataFrame):
        frame = items
    else:
        rows = list(items)
        if not rows:
            raise ConfigError("test_dl needs at least one (user, item) row")
        if all(isinstance(r, (pd.Series, Mapping)) for r in rows):
            frame = pd.DataFrame([dict(r) for r in rows])
        elif all(isinstance(r, (list, tuple)) and len(r) in (2, 3) for r in rows):
            names = [d.user, d.item, d.rating][: len(rows[0])]
            frame = pd.DataFrame([list(r) for r in rows], columns=names, dtype=object)
        else:
            raise ConfigError("test_dl takes a DataFrame or a list of rows, each (user, item), (user, item, "
                              f"rating), a dict or a pandas row; got {type(rows[0]).__name__} rows")
    missing = [c for c in (d.user, d.item) if c not in frame.columns]
    if missing:
        raise ConfigError(f"the test items need the training columns {d.user!r} and {d.item!r}; missing "
                          f"{missing}, got {list(frame.columns)}")
    return frame


def fast_loaders(x_train: torch.Tensor, y_train: torch.Tensor, x_valid: torch.Tensor, y_valid: torch.Tensor,
                 *, bs: int, decoder: Decoder, device: torch.device | str, seed: int | None = None,
                 valid_bs: int | None = None, shard: tuple[int, int] = (0, 1)) -> CollabLoaders:
    """:class:`CollabLoaders` of a shuffled training and an ordered validation :class:`TensorLoader`.

    With ``shard=(rank, world)`` the training loader yields this rank's share of every epoch with
    a per-rank batch of ``bs // world`` (a step of all ranks sees ``bs`` rows, as one process);
    validation is not sharded (every rank validates on all of it).
    """
    rank_bs = max(1, bs // shard[1])
    train = TensorLoader(TensorDataset(x_train, y_train), bs=rank_bs, shuffle=True,
                         drop_last=len(x_train) // shard[1] > rank_bs, seed=seed, decoder=decoder, shard=shard)
    valid = TensorLoader(TensorDataset(x_valid, y_valid), bs=valid_bs or max(bs, 65536), seed=seed, decoder=decoder)
    return CollabLoaders(train, valid, decoder=decoder, device=torch.device(device))


def pair_loaders(data: CollabData, p: Preset, *, device: torch.device, seed: int | None,
                 shard: tuple[int, int] = (0, 1)) -> Any:
    """Loaders of ``(user, item)`` pairs and ratings: fastai's ``CollabDataLoaders`` recipe
    (``p.loader == "fastai"``, the course's) or cflearn's tensor loaders."""
    if p.loader == "fastai":
        dls = _fastai_loaders(data, p.bs, device, seed)
        for col, vocab in ((data.user, data.users), (data.item, data.items)):  # fastai's Categorify: same layout
            if list(dls.classes[col]) != vocab.itos:
                raise ConfigError(f"fastai laid out the {col!r} IDs differently from cflearn; use preset "
                                  "'fast' (loader='fast') for this table")
        return dls
    decoder = Decoder.of(data)
    return fast_loaders(*data.tensors("train"), *data.tensors("valid"), bs=p.bs, device=device, seed=seed,
                        decoder=decoder, shard=shard)


def _fastai_loaders(data: CollabData, bs: int, device: torch.device, seed: int | None) -> Any:
    """fastai's ``CollabDataLoaders.from_df`` recipe, on cflearn's split (for the course presets).

    fastai's tabular training loader draws each epoch from numpy's global generator (with
    replacement); with a seed, it draws from its own seeded generator, and building the loaders
    leaves the global state as it was.
    """
    from fastai.collab import TabularCollab  # the trainer's tabular stack: only the course's presets need it
    from fastai.data.block import TransformBlock
    from fastai.tabular.core import Categorify

    frame = data.ratings[[data.user, data.item, data.rating]]
    state = np.random.get_state()
    try:
        with warnings.catch_warnings():  # fastai turns pandas' read-only (copy-on-write) arrays into tensors
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
            to = TabularCollab(frame, [Categorify], [data.user, data.item], y_names=[data.rating],
                               y_block=TransformBlock(), splits=(list(data.train_idx), list(data.valid_idx)))
            dls = to.dataloaders(bs=bs, device=device)
    finally:
        np.random.set_state(state)
    if seed is not None:
        train = dls.train
        train.cf_random = np.random.RandomState(seed)
        train.get_idxs = MethodType(_seeded_idxs, train)  # a method: fastai's `new` does not copy it
    return dls


def _seeded_idxs(self: Any) -> list[int]:
    """fastai's ``TabWeightedDL.get_idxs`` drawing from the loader's own seeded generator."""
    if self.n == 0 or not self.shuffle:
        return list(type(self).get_idxs(self))
    return list(self.cf_random.choice(self.n, self.n, p=self.wgts))
