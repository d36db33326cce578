"""The run report: one self-contained HTML file, every data string escaped, checked in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct

import pytest

import cflearn
from cflearn import DataSpec
from cflearn.cli import main
from cflearn.cli._training import train_and_write as _train_and_write
from cflearn.runs._fitrun import RunSpec

from .browser import Page, chromium

EVIL = "<script>alert(1)</script> & \"quotes\" <img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def run_dir(synth, tmp_path_factory):
    """A `cflearn fit`-style run on synthetic data whose most-rated item has a hostile title."""
    items = synth.items.copy()
    items["title"] = [f"Film {i} ({1950 + i % 60})" for i in items["item"]]
    top = synth.ratings["item"].value_counts().index[0]
    items.loc[items["item"] == top, "title"] = EVIL
    ds = cflearn.datasets.Dataset(name="hostile", ratings=synth.ratings, columns=synth.columns, items=items)
    out = tmp_path_factory.mktemp("run") / "run"
    spec = RunSpec(DataSpec(seed=42, valid_pct=0.2), preset="fast", epochs=3, source="hostile")
    assert _train_and_write(ds, out, spec) == 0
    return out


def test_fit_writes_a_self_contained_report(run_dir):
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert (run_dir / "report.html").stat().st_size < 400_000
    assert "<script" not in page.lower()  # no JavaScript at all, and the title did not become a tag
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot; &lt;img src=x" in page
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # nothing from the network
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 2  # loss plot and factor map, inline
    for heading in ("Data", "Preset and settings", "Training", "Evaluation on the validation rows", "Learned biases",
                    "Factor map", "Recommendations for three users", "Similar items"):
        assert f"<h2>{heading}</h2>" in page
    assert "<tr class='model'>" in page and "★" in page
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["samples"]["users"]) == 3 and metrics["data_summary"]["ratings"] > 0


def test_report_command_rebuilds_it_from_the_run_folder(run_dir, tmp_path, capsys):
    out = tmp_path / "again.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    a = (run_dir / "report.html").read_text(encoding="utf-8")
    b = out.read_text(encoding="utf-8")
    strip = lambda s: re.sub(r"written [0-9-]+ [0-9:]+ UTC", "", s)  # noqa: E731
    assert strip(a) == strip(b)
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # follows the umask, not 0600
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no metrics.json: it is not a `cflearn fit` run folder" in err


def test_a_model_without_tables_gets_a_report_too(synth, tmp_path):
    out = tmp_path / "nn"
    spec = RunSpec(DataSpec(seed=1, valid_pct=0.2), preset="fast_nn", epochs=1, source="synthetic")
    assert _train_and_write(synth, out, spec) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "needs a model with user/item factor tables" in page and "<table id='evaluation'" in page


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_report_in_a_real_browser(run_dir, tmp_path):
    """Headless Chromium loads the page: no console errors, every image decoded, the evaluation table there."""
    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium (.ci/run installs it): apt-get install chromium")
        pytest.skip("Chromium is not installed here: apt-get install chromium (make test installs it when it can)")
    with Page(binary) as page:
        page.open((run_dir / "report.html").resolve().as_uri())
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        rows = page.evaluate("document.querySelectorAll('#evaluation tr').length")
        scripts = page.evaluate("document.scripts.length")
        text = page.evaluate("document.body.innerText")
        shot = page.screenshot(tmp_path / "report.png")
        errors = page.errors()
    assert errors == []
    assert len(images) == 2 and all(ok and w > 0 and h > 0 for ok, w, h in images), images
    assert rows == 7  # header, the model and five baselines
    assert scripts == 0 and "<script>alert(1)</script>" in text  # shown as text, never run
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 800 and height > 2000  # the whole page
    keep = os.environ.get("CFLEARN_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_the_training_table_names_the_loss_and_the_kept_epoch():
    """The default's combined loss was shown as 'final validation loss (MSE) 10.28' where the MSE was 0.22, and
    with --keep-best the last epoch's loss stood beside the kept weights."""
    from cflearn.report._report import _training

    dual = _training({"loss": "MSE + 1 x cross-entropy per user", "valid_loss": 10.28, "rmse": 0.47,
                      "kept_epoch": 4, "epochs_run": 7}, None)
    assert "validation loss of the kept weights (epoch 4) (MSE + 1 x cross-entropy per user)" in dual
    assert "(MSE)" not in dual and "final validation loss" not in dual
    fast = _training({"valid_loss": 0.22, "rmse": 0.47, "kept_epoch": 7, "epochs_run": 7}, None)  # an older run
    assert "final validation loss (MSE)" in fast


def test_a_report_on_play_counts_says_interactions_and_shows_whole_numbers(tmp_path):
    """Play counts were 'ratings' shown as 1.983e+04 under 'their top-rated', and the global mean's
    random lists took the coverage star."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    plays = pd.DataFrame({"user": rng.integers(1, 80, 2500), "artist": rng.integers(1, 120, 2500),
                          "plays": (rng.pareto(1.2, 2500) * 60 + 1).astype(int) + 19_000 * (rng.random(2500) < 0.1)})
    plays = plays.drop_duplicates(["user", "artist"])
    src = tmp_path / "plays.csv"
    plays.to_csv(src, index=False)
    out = tmp_path / "run"
    assert main(["fit", str(src), "--user", "user", "--item", "artist", "--weight", "plays", "--epochs", "2",
                 "--out", str(out)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"user \S+ \(\d[\d,]* interactions\)", text) and "their heaviest, by plays" in text
    assert not re.search(r"\(\d[\d,]* ratings\)", text) and "top-rated" not in text and "n_interactions" in text
    assert "did not rate" not in text and "had no interaction with in training" in text
    assert not re.search(r"\de\+\d", text)  # whole numbers as they are
    assert re.search(r"\b19,\d{3}\b", text)  # the heavy plays, with a thousands separator
    chance = re.search(r"<tr class=''><td>global mean</td>(.*?)</tr>", page).group(1)
    assert "★" not in chance  # random lists cover the catalogue by chance: no star
