"""``cflearn.fit``: train a learner with its preset's one-cycle schedule; an interruption keeps the last
complete epoch."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Literal

from fastai.learner import Learner

from .._errors import ConfigError, check_count, check_number
from ..callbacks import KeepBest, NaNGuard, PresetNote, StopAfterWarmUp, fill_cold_rows
from ..serve._collab import as_collab
from ._distributed import unwrap
from ._threads import training_threads

__all__ = ["fit"]


def fit(learn: Learner, epochs: int | None = None, lr: float | None = None, wd: float | None = None, *,
        keep_best: bool = False, patience: int | None = None, interrupt: Literal["keep", "raise"] = "keep",
        threads: int | None = None, **kwargs: Any) -> Learner:
    """Train with the preset's one-cycle schedule (``learn.fit_one_cycle(epochs, lr, wd=wd)``).

    Interrupting (Ctrl-C, or the notebook's stop button) keeps the learner usable: the weights of
    the last completed epoch are put back, a message says so, and the learner is returned.

    Args:
        learn: from :func:`collab_learner`.
        epochs: epochs of the one-cycle schedule (overrides the preset's).
        lr: peak learning rate (overrides the preset's).
        wd: weight decay (overrides the preset's).
        keep_best: end with the weights of the epoch with the lowest validation loss (kept in
            memory by :class:`cflearn.callbacks.KeepBest`), not those of the last epoch; the default's
            learned heads each at their own best epoch (validation RMSE, validation ranking loss).
        patience: stop after this many epochs without a lower validation loss (fastai's
            ``EarlyStoppingCallback``, never inside the one-cycle warm-up: the first quarter of the
            epochs), keeping the best epoch's weights (implies ``keep_best``).
        interrupt: on Ctrl-C, after putting the last complete epoch's weights back, ``"keep"``
            returns the learner (notebooks), ``"raise"`` re-raises ``KeyboardInterrupt`` (scripts).
        threads: torch's and BLAS's threads while training; ``None``: the cores free when training starts
            (one on a busy machine), unless ``OMP_NUM_THREADS`` (or ``torch.set_num_threads``) fixed them
            (:mod:`cflearn.train._threads`). The same seed and thread count train the same weights.
        **kwargs: passed to ``fit_one_cycle``.

    Returns:
        The same learner, trained; ``learn.cf.fit_seconds`` holds the wall time, ``learn.cf.fit_threads``
        the threads it trained with and why.
    """
    cf = as_collab(learn)
    if cf.data is None:
        raise ConfigError("cflearn.fit trains a learner from cflearn.collab_learner (it reads the preset it was built "
                          "with); a loaded model is for predictions: build a new learner to train")
    preset = cf.preset
    epochs = check_count("epochs", preset.epochs if epochs is None else epochs)
    lr = check_number("lr", preset.lr if lr is None else lr, positive=True)
    if patience is not None:
        patience = check_count("patience", patience)
    keep = KeepBest() if keep_best or patience is not None else None
    warm = math.ceil(float(kwargs.get("pct_start", 0.25)) * epochs)  # fit_one_cycle's warm-up epochs
    stop = [StopAfterWarmUp(warm, monitor="valid_loss", patience=patience)] if patience is not None else []
    cbs = list(kwargs.pop("cbs", None) or []) + ([keep] if keep is not None else []) + stop
    notes = [cb for cb in learn.cbs if isinstance(cb, PresetNote)]
    for note in notes:
        note.in_cflearn_fit = True  # cflearn.fit chooses the preset's settings or the caller's on purpose
    t0 = time.perf_counter()
    try:
        with training_threads(threads) as cf.fit_threads:
            t0 = time.perf_counter()  # not the free-core sample
            learn.fit_one_cycle(epochs, lr, wd=preset.wd if wd is None else wd, cbs=cbs, **kwargs)
    except KeyboardInterrupt:
        guard = next((cb for cb in learn.cbs if isinstance(cb, NaNGuard)), None)
        if guard is None:  # the user removed the callback that keeps the last good weights
            raise
        learn.model = unwrap(learn.model)  # interrupted inside a distributed fit: no after_fit ran
        if hasattr(guard, "good"):  # else interrupted before the first step: the weights are untouched
            learn.model.load_state_dict(guard.good)
            fill_cold_rows(learn.model)
        learn.model.eval()
        epoch = getattr(guard, "good_epoch", 0)
        print(f"training interrupted: kept the weights after epoch {epoch} "
              f"({'the start' if epoch == 0 else 'the last complete epoch'})", file=sys.stderr)
        if interrupt == "raise":
            raise
    finally:
        for note in notes:
            note.in_cflearn_fit = False
    cf.fit_seconds = time.perf_counter() - t0
    cf.epochs_run = len(vars(learn.recorder).get("values") or [])  # none when interrupted before the first epoch
    cf.kept_epoch = keep.best_epoch if keep is not None and keep.best is not None else cf.epochs_run
    cf.kept_heads = dict(keep.head_epochs) if keep is not None and keep.head_epochs else None
    return learn
