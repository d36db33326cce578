"""Item side features: kinds of column, and best's data-driven choice to keep them."""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import cflearn
from cflearn.data._features import N_BUCKETS, side_features, title_year
from cflearn.data._vocab import Vocab


def test_title_year():
    years = title_year(pd.Series(["Heat (1995)", "Les Misérables (1935) ", "No year", None, "(1995) Odd"]))
    assert years.iloc[:2].tolist() == [1995, 1935] and years.iloc[2:].isna().all()


def test_kinds_of_column_and_unknown_values():
    n = 14
    info = pd.DataFrame({"genres": ["Drama|Comedy", "", None, "Action"] + ["Drama"] * (n - 4),
                         "runtime": [90.0, 120.0, np.nan] + [60.0 + 7 * k for k in range(n - 3)],
                         "released": pd.to_datetime(["1995-01-01", None]
                                                    + [f"{1960 + 3 * k}-06-01" for k in range(n - 2)]),
                         "studio": [1, 2, 1] + [3] * (n - 3)},
                        index=pd.Index(range(10, 10 + n), name="item"))
    items = Vocab(np.arange(10, 11 + n))  # the last item has no metadata
    f = side_features(info, ["genres", "runtime", "released", "studio"], items)
    per_item = [{f.names[j] for j, w in zip(row, ws) if w > 0} for row, ws in zip(f.idx.tolist(), f.weight.tolist())]
    row = {iid: per_item[int(items.encode([iid])[0])] for iid in [10, 11, 12, 10 + n]}
    assert per_item[0] == set()  # the unknown item: the average item, no features
    assert {"genres=Drama", "genres=Comedy", "studio=1"} <= row[10]  # a few numeric codes: categories
    assert {"genres=unknown", "released=unknown"} <= row[11] and "runtime=unknown" in row[12]
    assert row[10 + n] == {"genres=unknown", "runtime=unknown", "released=unknown", "studio=unknown"}
    for col in ("runtime", "released"):  # many distinct numbers (or years): quantile buckets, one per item
        buckets = {name for name in f.names if name.startswith(f"{col}=[")}
        assert 2 < len(buckets) <= N_BUCKETS and all(len(r & buckets) <= 1 for r in per_item), (col, buckets)
    np.testing.assert_allclose(f.weight.sum(1)[1:].numpy(), 1.0, rtol=1e-6)  # each item: the mean of its features


@pytest.fixture(scope="module")
def titled(synth):
    items = synth.items.copy()
    items["title"] = [f"Film number {i} ({1950 + i % 60})" for i in items["item"]]
    return cflearn.from_df(synth.ratings, "user", "item", "rating", items=items)


def test_year_from_the_title_and_unknown_columns(titled):
    items = titled.item_info.reset_index()
    data = cflearn.from_df(titled.ratings, "user", "item", "rating", items=items, item_features=["genres", "year"])
    learn = cflearn.collab_learner(data, "best", select_features=False, epochs=1, progress=False)
    assert type(learn.model).__name__ == "HybridDotBias"
    assert any(n.startswith("year=[") for n in learn.model.feature_names)
    with pytest.raises(cflearn.ColumnError, match="did you mean 'genres'"):
        cflearn.from_df(titled.ratings, "user", "item", "rating", items=items, item_features=["genre"])
    for door in (lambda: cflearn.collab_learner(titled, "best", item_features=("genres",), progress=False),
                 lambda: cflearn.select_features(titled, "best", user_features=("group",))):
        with pytest.raises(cflearn.ConfigError, match=r"takes no (item|user)_features=: declare side features once, "
                                                      r"on the data \(cflearn.from_df"):  # one door: the data
            door()


@pytest.fixture(scope="module")
def planted():
    return cflearn.datasets.synthetic(500, 300, density=0.06, seed=3)


def test_best_keeps_features_that_help(planted):
    data = cflearn.from_df(planted, seed=42)
    learn = cflearn.collab_learner(data, "best", progress=False)  # the check runs before the build
    sel = learn.cf.preset.feature_selection
    assert type(learn.model).__name__ == "HybridDotBias" and sel
    cflearn.fit(learn, epochs=1)
    assert learn.cf.preset.feature_selection == sel
    assert sel["kept"] and sel["features"] == ["genres"] and sel["inner_rmse_with"] < sel["inner_rmse_without"]
    assert type(learn.model).__name__ == "HybridDotBias" and learn.cf.preset.chosen is not None


def test_best_drops_features_that_do_not_help_and_says_so(planted, tmp_path):
    items = planted.items.copy()
    items["genres"] = items["genres"].sample(frac=1, random_state=0).to_numpy()  # no link to the ratings left
    data = cflearn.from_df(dataclasses.replace(planted, items=items), seed=42)
    mine_cb = cflearn.callbacks.EpochPrinter()
    with pytest.warns(UserWarning, match=r"did not help on an inner split .* training without them"):
        learn = cflearn.collab_learner(data, "best", progress=False, cbs=[mine_cb])  # checked, then built once
    assert type(learn.model).__name__ == "DotBias"  # before any training: lr_find and fit_one_cycle see it too
    cflearn.fit(learn, epochs=1)
    assert mine_cb in learn.cbs and all(cb.learn is learn for cb in learn.cbs)
    sel = learn.cf.preset.feature_selection
    assert not sel["kept"] and sel["inner_rmse_with"] > sel["inner_rmse_without"]
    assert type(learn.model).__name__ == "DotBias" and learn.cf.preset.bias_l2 == cflearn.PRESETS["fast"].bias_l2
    cflearn.save(learn, tmp_path / "m.safetensors")
    assert cflearn.load(tmp_path / "m.safetensors").preset.feature_selection == sel
    # the check as its own step: the settled preset builds the same model, and fit does not check again
    with pytest.warns(UserWarning, match="did not help"):
        settled = cflearn.select_features(data, "best")
    assert settled.item_features == () and settled.kind == "dot" and settled.chosen.report == sel
    again = cflearn.collab_learner(data, settled, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second check, no second warning
        cflearn.fit(again, epochs=1)
    for k, v in learn.model.state_dict().items():
        torch.testing.assert_close(v, again.model.state_dict()[k], rtol=0, atol=0)
    # select_features=False keeps the data's features without the check
    kept = cflearn.collab_learner(data, "best", select_features=False, progress=False)
    cflearn.fit(kept, epochs=1)
    assert type(kept.model).__name__ == "HybridDotBias" and not kept.cf.preset.feature_selection


def test_the_check_says_what_it_does_and_fastais_own_loop_trains_its_choice(planted, capsys):
    """The check ran in fit: fastai's fit_one_cycle trained every feature unchecked (with a warning), and lr_find
    probed a model the check could then replace. It now runs before the build, and says so with progress on."""
    items = planted.items.copy()
    items["genres"] = items["genres"].sample(frac=1, random_state=0).to_numpy()
    data = cflearn.from_df(dataclasses.replace(planted, items=items), seed=42)
    with pytest.warns(UserWarning, match="did not help"):
        learn = cflearn.collab_learner(data, "best")
    said = capsys.readouterr().out
    assert "checking the side features ('genres',)" in said and "keeping no side features" in said
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the preset's tuned lr: the note about lr=, not about features
        learn.fit_one_cycle(1, cflearn.PRESETS["fast"].lr)
    assert type(learn.model).__name__ == "DotBias" and learn.cf.preset.feature_selection["kept"] is False


def test_an_item_with_metadata_and_no_ratings_is_scored_by_its_features(planted):
    """Content-based: a new item that shares a genre with others sits among them."""
    genre = planted.items["genres"].iloc[0]
    new = pd.DataFrame({"item": [9001], "genres": [genre]})
    data = cflearn.from_df(planted.ratings, "user", "item", "rating",
                           items=pd.concat([planted.items, new], ignore_index=True), item_features=["genres"], seed=42)
    learn = cflearn.collab_learner(data, "best", select_features=False, progress=False)
    cflearn.fit(learn)
    sim = cflearn.similar_items(learn, 9001, n=5)
    assert (sim["genres"].str.split("|").map(lambda g: genre in g)).all(), sim
    out = cflearn.predict(learn, [planted.ratings["user"].iloc[0], -1, -1], [9001, 9001, 123456])
    assert out["fallback"].tolist() == ["item features", "average user, item features", "average user and item"]
    assert out["score"].between(*learn.cf.scale).all()
    assert 9001 in cflearn.recommend(learn, planted.ratings["user"].iloc[0], n=10**4, min_ratings=0)["item"].tolist()
    assert 9001 not in cflearn.recommend(learn, planted.ratings["user"].iloc[0], n=10**4)["item"].tolist()


def test_the_command_line_says_what_the_check_chose(planted, tmp_path, capsys):
    from cflearn.cli import main

    planted.ratings.to_csv(tmp_path / "ratings.csv", index=False)
    planted.items.to_csv(tmp_path / "items.csv", index=False)
    code = main(["fit", str(tmp_path / "ratings.csv"), "--user", "user", "--item", "item", "--rating", "rating",
                 "--items", str(tmp_path / "items.csv"), "--preset", "best", "--epochs", "1", "--out",
                 str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "preset 'best': checking the side features ('genres',) on an inner split" in out
    assert re.search(r"preset 'best': keeping (genres|no side features) \(inner RMSE genres: \d", out), out
    assert out.index("checking the side features") < out.index("training: preset 'best'")
