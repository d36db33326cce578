import pytest
from matplotlib.figure import Figure

import cflearn


def test_single_run_has_raw_smoothed_valid_and_metric(trained):
    fig = cflearn.plot_loss(trained)
    assert isinstance(fig, Figure)
    ax, ax2 = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["train (per batch)", "train (smoothed)", "valid"]
    raw, smooth, valid = ax.get_lines()
    hist = trained.loss_history
    assert len(raw.get_xdata()) == len(hist.train_losses)
    assert list(valid.get_ydata()) == hist.valid_losses
    assert raw.get_xdata()[-1] == pytest.approx(len(hist.epoch_ends))  # x axis in epochs
    # the smoothed curve is less bumpy than the raw one
    import numpy as np

    assert np.abs(np.diff(smooth.get_ydata())).sum() < np.abs(np.diff(raw.get_ydata())).sum()
    assert ax.get_xlabel() == "epoch" and "loss" in ax.get_ylabel()
    assert [line.get_label() for line in ax2.get_lines()] == ["rmse"]


def test_overlay_of_runs(synth_data):
    runs = []
    for wd in (0.0, 0.5):
        learn = cflearn.collab_learner(synth_data, epochs=2, bs=512, wd=wd, progress=False)
        cflearn.fit(learn)
        runs.append(learn)
    fig = cflearn.plot_loss(runs, labels=["wd 0", "wd 0.5"], title="compare")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["wd 0: train (smoothed)", "wd 0: valid", "wd 0.5: train (smoothed)", "wd 0.5: valid"]
    assert fig._suptitle.get_text() == "compare"
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders headless


def test_plot_errors(synth_data):
    learn = cflearn.collab_learner(synth_data, progress=False)
    with pytest.raises(cflearn.ConfigError, match="train first"):
        cflearn.plot_loss(learn)
    with pytest.raises(cflearn.ConfigError, match="labels"):
        cflearn.plot_loss([learn.loss_history], labels=["a", "b"])
