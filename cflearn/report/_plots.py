"""Loss plots: raw and smoothed training loss per batch, validation loss and metrics per epoch."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure as _MplFigure  # a bare Figure needs no display and no pyplot state

from .._errors import ConfigError
from ..callbacks import LossHistory

if TYPE_CHECKING:
    from fastai.learner import Learner

__all__ = ["plot_loss", "smooth", "literal_text", "Figure"]

F = TypeVar("F", bound=Callable[..., Any])


class Figure(_MplFigure):
    """A matplotlib ``Figure`` that shows itself in a notebook: as a cell's value it renders as a PNG
    in Jupyter and in ``jupyter nbconvert --execute`` whatever the backend (a bare ``Figure`` would
    show as ``<Figure size 900x700>`` without an inline backend). Nothing else changes: ``savefig``,
    axes and the rest are matplotlib's."""

    def _repr_png_(self) -> bytes:
        from io import BytesIO

        from matplotlib.backends.backend_agg import FigureCanvasAgg

        if self.canvas is None or not hasattr(self.canvas, "print_png"):
            FigureCanvasAgg(self)
        out = BytesIO()
        self.savefig(out, format="png", dpi=100)
        return out.getvalue()


def literal_text(fn: F) -> F:
    """Draw every text a figure function creates literally: a title or file name holding ``$...$`` or
    a backslash is shown as written, never parsed as matplotlib's math (which can fail to draw)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return fn(*args, **kwargs)
    return cast(F, wrapper)


def smooth(values: Sequence[float], window: int | None = None) -> np.ndarray:
    """Centred rolling mean; ``window`` defaults to the square root of the series' length."""
    series = np.asarray(values, dtype=float)
    if window is None:
        window = max(1, round(len(series) ** 0.5))
    return pd.Series(series).rolling(window, center=True, min_periods=1).mean().to_numpy()


def _history(learn: Learner | LossHistory) -> LossHistory:
    if isinstance(learn, LossHistory):
        return learn
    hist = getattr(learn, "loss_history", None)
    if not isinstance(hist, LossHistory):
        raise ConfigError("plot_loss needs a learner from cflearn.collab_learner (it records the losses)")
    if not hist.train_losses:
        raise ConfigError("nothing to plot yet: train first (cflearn.fit(learn) or learn.fit_one_cycle(...))")
    return hist


@literal_text
def plot_loss(
    learners: Learner | LossHistory | Sequence[Learner | LossHistory],
    labels: Sequence[str] | None = None,
    *,
    raw: bool | None = None,
    window: int | None = None,
    metrics: bool = True,
    log: bool = False,
    title: str | None = None,
) -> Figure:
    """Plot training and validation loss of one run, or overlay several runs.

    The x axis is in epochs. Training loss per batch is drawn raw (faint) and smoothed (solid),
    validation loss as one marker per epoch; metrics recorded per epoch (e.g. ``rmse``) get a
    second panel. The figure is returned, never shown, so it works headless.

    Args:
        learners: one trained learner (or its ``learn.loss_history``), or a list to overlay.
        labels: legend names of the runs (default "run 1", "run 2", ...).
        raw: draw the raw per-batch loss; default only for a single run.
        window: smoothing window in batches (default: the square root of the number of batches).
        metrics: add the metrics panel when there are metrics.
        log: logarithmic loss axis.
        title: figure title.

    Returns:
        matplotlib.figure.Figure
    """
    runs = list(learners) if isinstance(learners, (list, tuple)) else [learners]
    if not runs:
        raise ConfigError("plot_loss needs at least one learner")
    hists = [_history(r) for r in runs]
    labels = list(labels) if labels is not None else [f"run {k + 1}" for k in range(len(runs))]
    if len(labels) != len(hists):
        raise ConfigError(f"got {len(labels)} labels for {len(hists)} runs")
    raw = len(hists) == 1 if raw is None else raw
    metric_names = sorted({m for h in hists for m in h.metric_values}) if metrics else []
    ncols = 2 if metric_names else 1
    fig = Figure(figsize=(6.5 * ncols, 4.2), layout="constrained")
    ax = fig.add_subplot(1, ncols, 1)
    ax2 = fig.add_subplot(1, ncols, 2) if metric_names else None
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    single = len(hists) == 1
    for k, (h, label) in enumerate(zip(hists, labels)):
        c = colours[k % len(colours)]
        n_ep = len(h.epoch_ends)
        per_epoch = np.diff([0, *h.epoch_ends])
        # fractional epoch of every batch, robust to epochs of different lengths
        x: np.ndarray = np.concatenate([e + (np.arange(n) + 1) / n for e, n in enumerate(per_epoch) if n]) \
            if n_ep else np.zeros(0)
        prefix = "" if single else f"{label}: "
        if raw:
            ax.plot(x, h.train_losses, color=c, alpha=0.25, lw=0.8, label=f"{prefix}train (per batch)")
        ax.plot(x, smooth(h.train_losses, window), color=c, lw=2, label=f"{prefix}train (smoothed)")
        ax.plot(np.arange(1, n_ep + 1), h.valid_losses, color=c if not single else "C1", ls="--", marker="o",
                label=f"{prefix}valid")
        for name in metric_names:
            if ax2 is not None and name in h.metric_values:
                ax2.plot(np.arange(1, n_ep + 1), h.metric_values[name], marker="o", color=c,
                         ls="-" if metric_names.index(name) == 0 else ":", label=f"{prefix}{name}")
    ax.set_xlabel("epoch")
    names = {getattr(getattr(r, "loss_func", None), "label", "MSE") for r in runs}
    ax.set_ylabel(f"loss ({names.pop()})" if len(names) == 1 else "loss")
    if log:
        ax.set_yscale("log")
    ax.set_title("training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if ax2 is not None:
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("validation metric")
        ax2.set_title("validation metrics")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig
