"""fastai callbacks cflearn adds to its learners: cold rows, row L2, loss history, NaN guard, notes."""

from __future__ import annotations

import math
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException, _events
from fastai.callback.schedule import LRFinder
from fastai.callback.tracker import EarlyStoppingCallback, TrackerCallback
from torch import nn

from ._errors import ConfigWarning, TrainingError
from ._memory import release_memory
from .models import contract
from .train._distributed import ddp, is_main, sync_buffers, unwrap, world

if TYPE_CHECKING:
    from .kinds._presets import Preset

__all__ = ["ColdRows", "RowL2", "LossHistory", "NaNGuard", "KeepBest", "StopAfterWarmUp", "EpochPrinter", "PresetNote",
           "ReleaseMemory", "DDPTrainer",
           "state_copy", "StateCopies", "fill_cold_rows"]


def _skip(self: Callback) -> None:
    """An event this callback does not handle."""


class _Callback(Callback):
    """A fastai ``Callback`` that answers fastai's per-event lookups directly.

    fastai asks every callback for every event (about a dozen per batch) and for ``training``;
    on a plain ``Callback`` a missing event falls through fastcore's attribute delegation to the
    learner, which costs more than the work of a small model's batch. Here every event exists
    (as a no-op unless overridden) and ``training`` is a plain property.

    fastai's ``validate`` and ``get_preds`` fire ``before_fit``/``after_epoch``/``after_fit``
    around a validation pass; :meth:`trained_epoch` tells a real training epoch from those.
    """

    _trained = False

    @property
    def training(self) -> bool:
        return self.learn.training

    def before_train(self) -> None:
        self._trained = True

    def trained_epoch(self) -> bool:
        """In ``after_epoch``: did this epoch train? (Resets the flag for the next epoch.)"""
        trained, self._trained = self._trained, False
        return trained


for _event in _events:
    if _event not in vars(_Callback):
        setattr(_Callback, _event, _skip)


class ColdRows(_Callback):
    """Set the rows training never reaches to the mean of the trained rows.

    fastai maps users/items unseen in training to row 0 (``#na#``), which training never touches;
    hybrid models also have rows for items known only from their features. With this callback
    they are predicted as an average user / item (plus, for hybrid items, their features) instead
    of from random initial weights. It runs before each validation and after fitting, so
    validation losses already include it.
    """

    order = 5

    def before_validate(self) -> None:
        self._fill()

    def after_fit(self) -> None:
        self._fill()

    def _fill(self) -> None:
        if not fill_cold_rows(self.learn.model):
            _note_once(self, "ColdRows", "your model has no user/item tables cflearn knows (Contract.embeddings), so "
                       "unknown IDs keep their untrained rows")


def _note_once(cb: Callback, name: str, why: str) -> None:
    """Warn once per callback that it does not apply to the learner's model."""
    if not getattr(cb, "_noted", False):
        cb._noted = True
        warnings.warn(f"{name} skipped: {why}", ConfigWarning, stacklevel=2)


@torch.no_grad()
def fill_cold_rows(model: nn.Module) -> bool:
    """Rows no training rating reaches (row 0, and rows known only from side features) := mean of
    the trained rows (for a hybrid model's row without features, plus the trained rows' mean
    feature part). Returns ``False`` when the model has no tables to fill."""
    spec = contract(model)
    tables = spec.embeddings()
    for (col, name), table in tables.items():
        trained = spec.trained_rows(col)
        w = table.weight
        if w.shape[0] < 2 or (isinstance(trained, torch.Tensor) and not trained.any()):
            continue
        cold = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
        cold[trained] = False
        w[cold] = w[trained].mean(0)
        shift = getattr(spec, "featureless_shift", None)  # a hybrid side: the unknown row is the average row,
        shifted = shift(col, name) if shift is not None else None  # features included; a row known from its
        if shifted is not None:  # features keeps them on the mean
            featureless, mean_features = shifted
            w[cold & featureless.to(w.device)] += mean_features.to(w)
    return bool(tables)


class RowL2(_Callback):
    """Add an L2 penalty on the embedding rows a batch looks up to the loss that is minimised.

    The penalty is ``l2 * mean(|p_u|^2 + |q_i|^2) + bias_l2 * mean(b_u^2 + b_i^2)`` over the
    batch's ratings: classic matrix-factorisation regularisation, per rating. Unlike fastai's
    weight decay, which shrinks every row at every step, it penalises only the rows a batch uses,
    so rows are regularised in proportion to how often they are rated. The recorded loss
    (``learn.loss``) stays the plain MSE.
    """

    order = 1

    def __init__(self, l2: float, bias_l2: float = 0.0):
        self.l2, self.bias_l2 = float(l2), float(bias_l2)

    def after_loss(self) -> None:
        if not self.learn.training:
            return
        rows = getattr(unwrap(self.learn.model), "last_rows", None)
        if rows is not None:  # DotBias kept its lookups
            u, i, bu, bi = rows
            penalty = self.l2 * (u.pow(2).sum(1) + i.pow(2).sum(1)).mean()
            if self.bias_l2:
                penalty = penalty + self.bias_l2 * (bu.pow(2) + bi.pow(2)).mean()
        else:
            tables = contract(self.learn.model).embeddings()
            if not tables:
                _note_once(self, "RowL2", "your model has no user/item tables cflearn knows (Contract.embeddings); "
                           "regularise it with weight decay instead (wd=...)")
                return
            x = self.learn.xb[0]
            penalty = 0.0
            for (col, name), table in tables.items():
                weight = self.bias_l2 if "bias" in name else self.l2
                if weight:
                    penalty = penalty + weight * table.weight[x[:, col]].pow(2).sum(-1).mean()
        self.learn.loss_grad = self.learn.loss_grad + penalty


def _finding_lr(learn) -> bool:
    return any(isinstance(cb, LRFinder) for cb in learn.cbs)


class LossHistory(_Callback):
    """Keep the raw training loss of every batch and the validation loss/metrics of every epoch.

    fastai's recorder keeps only a smoothed training loss; :func:`cflearn.plot_loss` reads this.
    It is reset at the start of each ``fit`` (not by ``lr_find``).

    Attributes:
        train_losses: raw training loss per batch.
        epoch_ends: number of batches done at the end of each epoch.
        valid_losses: validation loss per epoch.
        metric_values: metric name -> value per epoch.
    """

    order = 60  # after the Recorder (50), whose log it reads

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.train_losses: list[float] = []
        self.epoch_ends: list[int] = []
        self.valid_losses: list[float] = []
        self.metric_values: dict[str, list[float]] = {}
        self._pending: list[torch.Tensor] = []

    def before_fit(self) -> None:
        self.active, self._fresh = not _finding_lr(self.learn), True

    def before_train(self) -> None:
        super().before_train()
        if self.active and self._fresh:  # the first training epoch of a fit (not a validate())
            self._reset()
            self._fresh = False

    def after_batch(self) -> None:
        if self.active and self.learn.training:
            self._pending.append(self.learn.loss.detach())

    def after_epoch(self) -> None:
        if not (self.trained_epoch() and self.active):
            return
        cf = getattr(self.learn, "cf", None)
        if cf is not None:
            cf.trained = True
            cf.fold_noise = cf.fold_prior = cf.fold_lists = None  # the weights changed: fold-in measures them again
        if self._pending:
            self.train_losses.extend(torch.stack(self._pending).float().cpu().tolist())
            self._pending = []
        self.epoch_ends.append(len(self.train_losses))
        names, log = self.learn.recorder.metric_names, self.learn.recorder.log
        values = dict(zip(names, log))
        v = values.get("valid_loss")
        self.valid_losses.append(float(v) if v is not None else math.nan)
        for name in names[3:-1]:
            value = values.get(name)
            self.metric_values.setdefault(name, []).append(float(value) if value is not None else math.nan)


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's weights (cheap for embedding models: a few MB); the weights of
    the module inside a DDP wrapper, so the keys are always the model's own."""
    return {k: v.detach().clone() for k, v in unwrap(model).state_dict().items()}


class StateCopies:
    """Copies of a model's weights taken again and again (each epoch): a tensor unchanged since the last copy
    (the same storage, not written since: its version counter) is not copied again but shared with it. An
    item-item head's matrix, solved once before training, is then copied once, not every epoch."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[torch.Tensor, tuple[Any, ...], torch.Tensor]] = {}

    def take(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """A detached copy of ``model``'s weights, as :func:`state_copy`."""
        out, last = {}, {}
        for k, v in unwrap(model).state_dict().items():
            try:
                version: int | None = v._version
            except RuntimeError:  # an inference-mode tensor keeps no version: always copied
                version = None
            stamp = (v.data_ptr(), version, v.shape, v.stride(), v.dtype, v.device)
            seen = self._last.get(k)
            # the live tensor is held until the next copy, so its storage (and address) cannot be reused meanwhile
            copy = seen[2] if seen is not None and version is not None and seen[1] == stamp else v.detach().clone()
            out[k], last[k] = copy, (v, stamp, copy)
        self._last = last
        return out


class NaNGuard(_Callback):
    """Stop training with a :class:`TrainingError` as soon as the loss is NaN or infinite.

    The weights are put back to the last epoch that ended with a finite loss, so the learner stays
    usable (and saveable) after the error.
    """

    order = 2

    def before_fit(self) -> None:
        self.copies = StateCopies()
        self.good = self.copies.take(self.learn.model)
        self.good_epoch = 0

    def after_batch(self) -> None:
        if self.training and not torch.isfinite(self.learn.loss).item():
            unwrap(self.learn.model).load_state_dict(self.good)
            lr = self.learn.opt.hypers[-1].get("lr", float("nan")) if self.learn.opt else float("nan")
            raise TrainingError(
                f"the training loss became {float(self.learn.loss)} at epoch {self.epoch + 1}, batch "
                f"{self.iter + 1} (learning rate {lr:.2g}); the weights were put back to the last good epoch. "
                "Lower the learning rate (try a tenth), or check the ratings for extreme values")

    def after_epoch(self) -> None:
        if self.trained_epoch():
            self.good = self.copies.take(self.learn.model)
            self.good_epoch = self.epoch + 1


HEAD_METRICS = {"rating.": "rmse", "ranking.": "ranking_loss"}
"""A two-headed model's heads (their weights' prefix) and the validation metric each is judged by."""


def _metric(learn: Any, name: str) -> float | None:
    """This epoch's value of a recorded column (``valid_loss``, ``rmse``, ...), or ``None``."""
    names, log = list(learn.recorder.metric_names), list(learn.recorder.log)
    if name not in names or names.index(name) >= len(log):
        return None
    value = log[names.index(name)]
    return None if value is None else float(value)


def head_metrics(learn: Any) -> dict[str, str] | None:
    """``{weights prefix: metric}`` when each head of the model is judged by its own validation metric (a
    two-headed model with a learned ranking head records ``rmse`` and ``ranking_loss``), else ``None``."""
    names = set(learn.recorder.metric_names)
    keys = unwrap(learn.model).state_dict().keys()
    if all(m in names for m in HEAD_METRICS.values()) and all(any(k.startswith(p) for k in keys)
                                                               for p in HEAD_METRICS):
        return dict(HEAD_METRICS)
    return None


class KeepBest(_Callback):
    """Keep the weights of the epoch with the lowest validation loss and load them after fitting.

    A two-headed model with a learned ranking head (whose validation loss mixes the rating head's MSE with
    the ranking loss) keeps each head's best epoch by its own metric: the rating head's by validation RMSE,
    the ranking head's by its validation ranking loss, so each head ends at least as good as at the last
    epoch on what it is for. The copies stay in memory (no file, no pickle). ``best_epoch`` (1-based) and
    ``best_loss`` say which epoch won (the latest of the heads' epochs); ``head_epochs`` gives each head's.
    """

    order = 65  # after the Recorder has the epoch's validation loss
    best: dict[str, torch.Tensor] | None = None

    def before_fit(self) -> None:
        self.best_loss, self.best_epoch, self.best = float("inf"), 0, None
        self.copies = StateCopies()
        self.heads = head_metrics(self.learn)
        self.head_best = {prefix: float("inf") for prefix in self.heads or {}}
        self.head_epochs: dict[str, int] = {}
        self.head_states: dict[str, dict[str, torch.Tensor]] = {}

    def after_epoch(self) -> None:
        if not self.trained_epoch():
            return
        if self.heads:
            for prefix, metric in self.heads.items():
                value = _metric(self.learn, metric)
                if value is not None and value < self.head_best[prefix]:
                    self.head_best[prefix], self.head_epochs[prefix.rstrip(".")] = value, self.epoch + 1
                    self.head_states[prefix] = {k: v.detach().clone() for k, v in
                                                unwrap(self.learn.model).state_dict().items() if k.startswith(prefix)}
            if self.head_states:
                self.best_epoch = max(self.head_epochs.values())
                self.best = {}  # marks that something is kept; the heads' copies are in head_states
            return
        loss = _metric(self.learn, "valid_loss")
        if loss is not None and loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, self.epoch + 1
            self.best = self.copies.take(self.learn.model)

    def after_fit(self) -> None:
        model = unwrap(self.learn.model)
        if self.heads and self.head_states:
            state = state_copy(model)
            for kept in self.head_states.values():
                state.update(kept)
            model.load_state_dict(state)
        elif self.best:
            model.load_state_dict(self.best)


class StopAfterWarmUp(EarlyStoppingCallback):
    """fastai's ``EarlyStoppingCallback`` (stop after ``patience`` epochs without a lower validation loss)
    that never stops inside the one-cycle schedule's warm-up (its first ``warm_epochs``), where the loss
    of a rising learning rate says little: it stopped the default after 7 of 40 epochs. A two-headed model
    with a learned ranking head waits while either head still improves on its own metric (validation RMSE,
    validation ranking loss), not on the mixed loss."""

    order = 80  # last at an epoch's end: the epoch it stops at is printed, recorded and judged by KeepBest
    heads: dict[str, str] | None = None  # set by before_fit: the heads' own metrics, where a model has two

    def __init__(self, warm_epochs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warm_epochs = int(warm_epochs)

    def before_fit(self) -> None:
        super().before_fit()
        self.heads = head_metrics(self.learn)
        self.head_best = {metric: float("inf") for metric in (self.heads or {}).values()}

    def after_epoch(self) -> None:
        if self.heads:
            improved = False
            for metric in self.head_best:
                value = _metric(self.learn, metric)
                if value is not None and value < self.head_best[metric] - self.min_delta:
                    self.head_best[metric], improved = value, True
            self.new_best = improved
        else:
            TrackerCallback.after_epoch(self)  # the best so far
        if self.new_best or self.epoch + 1 <= self.warm_epochs:  # the wait starts after the warm-up
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            if is_main():  # epochs counted from 1, as the lines printed for them (fastai's message counts from 0)
                what = "lower validation RMSE or ranking loss" if self.heads else "lower validation loss"
                print(f"no {what} since epoch {self.epoch + 1 - self.wait}: stopped after epoch "
                      f"{self.epoch + 1}")
            raise CancelFitException()


class EpochPrinter(_Callback):
    """Print one plain line per epoch (for the command line, where fastai's bars are noisy).

    Args:
        stream: where to print (default stdout).
        bar: start each line with a text progress bar of the epochs done.
    """

    order = 70

    def __init__(self, stream: TextIO | None = None, bar: bool = False) -> None:
        self.stream, self.bar = stream, bar

    def before_fit(self) -> None:
        self.active = not _finding_lr(self.learn)
        self._t0 = time.perf_counter()

    def after_epoch(self) -> None:
        if not (self.trained_epoch() and self.active):
            return
        values = dict(zip(self.learn.recorder.metric_names, self.learn.recorder.log))
        done, total = self.epoch + 1, self.n_epoch
        parts = [f"[{'#' * round(20 * done / total):<20}]"] if self.bar else []
        parts.append(f"epoch {done:>3}/{total}")
        for name in self.learn.recorder.metric_names[1:-1]:
            if values.get(name) is not None:
                parts.append(f"{name} {float(values[name]):.4f}")
        parts.append(f"{time.perf_counter() - self._t0:.1f}s")
        if not is_main():
            return
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


class ReleaseMemory(_Callback):
    """Return freed heap to the system every ``every`` training batches and after each epoch.

    On large data glibc keeps the freed batches of a training epoch (about 1 GB over one epoch
    of 25M ratings), so a process's resident memory grows until the epoch ends;
    :func:`cflearn._memory.release_memory` gives it back (well under a millisecond a call).
    ``cflearn fit`` uses it.
    """

    order = 90

    def __init__(self, every: int = 256) -> None:
        self.every, self._n = every, 0

    def after_batch(self) -> None:
        if self.training:
            self._n += 1
            if self._n % self.every == 0:
                release_memory(collect=False)

    def after_epoch(self) -> None:
        release_memory(collect=False)


class PresetNote(_Callback):
    """Say once when a fit outside :func:`cflearn.fit` uses other settings than the preset was tuned with.

    The book's ``learn.fit_one_cycle(5, 5e-3, wd=0.1)`` on the ``fast`` preset (tuned for lr 3e-2,
    wd 0 and row L2) gives a worse model than ``cflearn.fit(learn)``; this names the preset's settings.

    Args:
        preset: the preset as trained (``learn.cf.preset``).
    """

    order = 0

    def __init__(self, preset: Preset):
        self.preset, self.noted, self.in_cflearn_fit, self._check = preset, False, False, False

    def before_fit(self) -> None:
        self._check = not (self.noted or self.in_cflearn_fit or _finding_lr(self.learn))

    def before_train(self) -> None:  # a real training epoch (validate/get_preds fire before_fit too)
        super().before_train()
        if not self._check:
            return
        self._check = False
        p = self.preset
        opt = self.learn.opt
        wd = float(opt.hypers[-1].get("wd", 0.0)) if opt is not None and opt.hypers else 0.0
        lr = _scheduled_lr_max(self.learn)
        off = []
        if not math.isclose(wd, p.wd, rel_tol=0.01, abs_tol=1e-12):
            off.append(f"wd={wd:g}")
        if lr is not None and not math.isclose(lr, p.lr, rel_tol=0.05):
            off.append(f"lr={lr:g}")
        if not off:
            return
        self.noted = True
        warnings.warn(
            f"preset {p.name!r} is tuned for lr={p.lr:g}, wd={p.wd:g}, {p.epochs} epochs"
            + (f", row_l2={p.row_l2:g}" if p.row_l2 else "")
            + f"; this fit uses {', '.join(off)}, which usually gives a worse model. Train with cflearn.fit(learn) "
            f"(or learn.fit_one_cycle({p.epochs}, {p.lr:g}, wd={p.wd:g})); for the book's own recipe "
            "use preset='book'", ConfigWarning, stacklevel=2)


def _scheduled_lr_max(learn: Any) -> float | None:
    """The largest learning rate of a running ``ParamScheduler`` (``fit_one_cycle``), else the optimizer's."""
    for cb in learn.cbs:
        sched = getattr(cb, "scheds", {}).get("lr") if hasattr(cb, "scheds") else None
        if sched is not None:
            return float(max(np.max(np.asarray(sched(p / 100), dtype=float)) for p in range(100)))
    opt = learn.opt
    return float(opt.hypers[-1]["lr"]) if opt is not None and opt.hypers and "lr" in opt.hypers[-1] else None


class DDPTrainer(_Callback):
    """Wrap ``learn.model`` in ``DistributedDataParallel`` for each real fit (not ``lr_find``), unwrap after.

    fastai's own ``DistributedTrainer`` fails on collab models (it asks the model for ``device``);
    this one only wraps the model (each rank's training shard is the loader's). Buffers (BatchNorm
    statistics, feature tables) are copied from rank 0 before each validation and after the fit,
    so every rank validates, and ends, with identical weights.
    """

    order = -5  # before the other callbacks see the model

    def before_fit(self) -> None:
        self._wrapped = world() > 1 and not _finding_lr(self.learn) and not isinstance(
            self.learn.model, torch.nn.parallel.DistributedDataParallel)
        if self._wrapped:
            self.learn.model = ddp(self.learn.model)

    def before_validate(self) -> None:
        if getattr(self, "_wrapped", False):  # only inside a fit: every rank is here
            sync_buffers(self.learn.model)

    def after_fit(self) -> None:
        if getattr(self, "_wrapped", False):
            self.learn.model = unwrap(self.learn.model)
            sync_buffers(self.learn.model)
            self._wrapped = False
