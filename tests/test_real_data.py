"""Data from other domains at the command line: counts, metadata tables keyed and named their own way,
list literals, metadata without the columns a preset expects. Small tables of the real sets' shapes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import cflearn
from cflearn.cli import main


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """A music set's shape: users' play counts per artist; an artists table keyed by `id`, named in `name`."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("music")
    n = 4000
    plays = pd.DataFrame({"userID": rng.integers(1, 200, n), "artistID": rng.integers(1, 150, n),
                          "weight": np.maximum(1, np.round(rng.lognormal(5, 1.5, n))).astype(int)})
    plays = plays.drop_duplicates(["userID", "artistID"])
    plays.to_csv(folder / "user_artists.csv", index=False)
    artists = pd.DataFrame({"id": np.arange(1, 150), "name": [f"Band \x1b[31m{k}" if k == 7 else f"Band {k}"
                                                               for k in range(1, 150)],
                            "url": [f"http://x/{k}" for k in range(1, 150)]})
    artists.to_csv(folder / "artists.csv", index=False)
    return folder


def test_play_counts_as_ratings_are_refused_with_the_fix(music, tmp_path, capsys):
    code = main(["fit", str(music / "user_artists.csv"), "--user", "userID", "--item", "artistID", "--rating",
                 "weight", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "looks like counts" in err and "--weight weight" in err
    assert not (tmp_path / "run").exists()


def test_an_items_table_keyed_and_named_its_own_way(music, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["fit", str(music / "user_artists.csv"), "--user", "userID", "--item", "artistID", "--weight",
                 "weight", "--items", str(music / "artists.csv"), "--items-id", "id", "--epochs", "2",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "titles    from the items table's 'name' column" in captured.out  # the rule's choice, said
    assert "the ranking head alone" in captured.out and "interactions" in captured.out.split("valid NDCG@10")[1]
    assert "RMSE" not in captured.out and "scale" not in captured.out  # no words for ratings
    capsys.readouterr()
    assert main(["recommend", str(out / "model.safetensors"), "--user", "5", "-n", "3"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("Band ") == 3 and "\x1b" not in shown  # names, escaped
    report = (out / "report.html").read_text()
    assert "Band " in report
    # the ID column must exist: one line naming the option
    assert main(["fit", str(music / "user_artists.csv"), "--user", "userID", "--item", "artistID", "--weight",
                 "weight", "--items", str(music / "artists.csv"), "--out", str(tmp_path / "r2")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'artistID' column" in err
    # an explicit title column wins
    data = cflearn.from_df(pd.read_csv(music / "user_artists.csv"), "userID", "artistID", weight="weight",
                           items=pd.read_csv(music / "artists.csv"), item_id="id", item_title="url")
    assert data.titles_from == "url" and data.item_info["title"].iloc[0] == "http://x/1"


@pytest.fixture(scope="module")
def wines(tmp_path_factory):
    """A wine-ratings set's shape: half stars, a wines table with categories and list literals, no genres."""
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("wine")
    n_wines = 120
    kinds = rng.choice(["Red", "White", "Rose"], n_wines)
    foods = [["Beef", "Pork"], ["Rich Fish", "Shellfish"], ["Pork", "Rich Fish"]]
    table = pd.DataFrame({"WineID": np.arange(1, n_wines + 1), "WineName": [f"Wine {k}" for k in range(n_wines)],
                          "Type": kinds, "Harmonize": [str(foods[k % 3]) for k in range(n_wines)]})
    table.to_csv(folder / "wines.csv", index=False)
    rows = [(u, w, float(np.clip(np.round(2 * (3.5 + (0.8 if kinds[w - 1] == "Red" else -0.3) * (u % 2 * 2 - 1)
                                                + rng.normal(0, 0.5))) / 2, 1, 5)))
            for u in range(1, 301) for w in rng.choice(np.arange(1, n_wines + 1), 25, replace=False)]
    pd.DataFrame(rows, columns=["UserID", "WineID", "Rating"]).to_csv(folder / "ratings.csv", index=False)
    return folder


def test_list_literals_are_multi_valued_features(wines):
    data = cflearn.from_df(pd.read_csv(wines / "ratings.csv"), "UserID", "WineID", "Rating",
                           items=pd.read_csv(wines / "wines.csv"), item_features=["Type", "Harmonize"])
    learn = cflearn.collab_learner(data, "best", epochs=1, select_features=False, progress=False)
    names = learn.model.feature_names
    assert {"Harmonize=Pork", "Harmonize=Rich Fish", "Harmonize=Beef", "Type=Red"} <= set(names)
    assert not any("[" in n for n in names)
    assert data.titles_from == "WineName"


def test_best_without_the_columns_it_expects_says_so_in_one_line_each(wines, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["fit", str(wines / "ratings.csv"), "--user", "UserID", "--item", "WineID", "--rating", "Rating",
                 "--preset", "best", "--items", str(wines / "wines.csv"), "--epochs", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert all(line.startswith("cflearn: warning: ") for line in captured.err.splitlines())
    assert "genres" in captured.err and ".py:" not in captured.err  # what best looked for; no source path
    assert "no side features to use, so the plain dot-product model (as preset 'fast')" in captured.out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["preset"] == "best"


def test_named_item_features_go_through_bests_check(wines, tmp_path, capsys):
    """`--item-features` used to skip best's inner-split check; now they are declared on the data and checked."""
    out = tmp_path / "run"
    code = main(["fit", str(wines / "ratings.csv"), "--user", "UserID", "--item", "WineID", "--rating", "Rating",
                 "--preset", "best", "--items", str(wines / "wines.csv"), "--item-features", "Type,Harmonize",
                 "--epochs", "3", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    model = cflearn.load(out / "model.safetensors")
    selection = model.preset.feature_selection
    assert selection["features"] == ["Type", "Harmonize"] and "none" in selection["inner_rmse"]
    if not selection["kept"]:  # dropped: said, with the inner-split numbers
        assert "did not help on an inner split" in captured.err and "none:" in captured.err
