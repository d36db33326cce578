"""``cflearn.fit``: the preset's feature check, when it still has one to run, then training.

The check trains (candidate models on an inner split of the training rows), so building a learner
never runs it: :func:`cflearn.collab_learner` leaves it pending, and the first :func:`fit` runs it
(:func:`cflearn.train._select.choose`) and rebuilds the learner with the choice before training it
(:func:`cflearn.train._learner.train`)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from fastai.learner import Learner

from .._errors import ConfigWarning, caller_level
from ..serve._collab import as_collab
from ._distributed import is_main
from ._learner import _Pending, _weigh_new_users, collab_learner, train
from ._select import choose

__all__ = ["fit"]


def fit(learn: Learner, epochs: int | None = None, lr: float | None = None, wd: float | None = None, *,
        keep_best: bool = False, patience: int | None = None, interrupt: Literal["keep", "raise"] = "keep",
        **kwargs: Any) -> Learner:
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
        **kwargs: passed to ``fit_one_cycle``.

    Returns:
        The same learner, trained; ``learn.cf.fit_seconds`` holds the wall time.
    """
    _choose_now(learn)
    return train(learn, epochs, lr, wd, keep_best=keep_best, patience=patience, interrupt=interrupt, **kwargs)


def _choose_now(learn: Learner) -> None:
    """Run the feature check the learner's preset asks for (once, before its first :func:`fit`), and
    rebuild the learner with the choice when it differs from what was built."""
    pending: _Pending | None = getattr(learn, "cf_choice", None)
    learn.cf_choice = None
    cf = as_collab(learn)
    if pending is None or cf.data is None:
        return
    if cf.trained:
        warnings.warn(f"preset {cf.preset.name!r} checks its side features before training, and this learner has "
                      "trained already (learn.fit_one_cycle?), with all of them; call cflearn.select_features(data, "
                      "preset) before collab_learner to train with the check's choice", ConfigWarning,
                      stacklevel=caller_level())
        return
    p = choose(cf.data, cf.preset, pending.given, seed=pending.seed, device=pending.device,
               say=print if pending.progress and is_main() else None)
    if p == cf.preset:  # the features built are the ones chosen: record the choice
        cf.preset = p
        _weigh_new_users(learn.model, p)
        return
    extra = [cb for cb in learn.cbs if id(cb) not in pending.own_cbs]  # yours, given or added since
    new = collab_learner(cf.data, p, y_range=pending.y_range, device=pending.device, seed=pending.seed,
                         progress=pending.progress, cbs=extra, **pending.given, **pending.learner_kwargs)
    learn.__dict__.update(new.__dict__)  # the same Learner object, rebuilt: callers keep their reference
    for cb in learn.cbs:
        cb.learn = learn
    loss = getattr(learn.loss_func, "rank", learn.loss_func)
    if hasattr(loss, "learn"):
        loss.learn = learn
