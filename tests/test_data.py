import dataclasses
import inspect

import numpy as np
import pandas as pd
import pytest

import cflearn
from cflearn import ColumnError, ConfigError, DataError


def frame(**over):
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
                       "item": [10, 20, 10, 30, 20, 30, 10, 40, 30, 40],
                       "rating": [4.0, 3.0, 5.0, 2.0, 4.5, 3.5, 1.0, 2.5, 4.0, 5.0],
                       "ts": np.arange(10)})
    for k, v in over.items():
        df[k] = v
    return df


def test_summary_repr_counts_scale_sparsity_cold():
    data = cflearn.from_df(frame(), "user", "item", "rating", "ts", valid_pct=0.3, seed=0)
    text = repr(data)
    assert "10 ratings by 5 users of 4 items" in text
    assert "scale     1 to 5" in text
    assert "train 7 / valid 3" in text
    assert "cold" in text
    s = data.summary()
    assert s["density"] == pytest.approx(10 / 20)


def test_defaults_to_first_three_columns_like_fastai():
    data = cflearn.from_df(frame())
    assert (data.user, data.item, data.rating) == ("user", "item", "rating")


def test_input_frame_is_not_modified():
    df = frame(user=["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"])
    df.loc[9, "item"] = 10  # duplicate of row 8? no: user e rated 30 and 10
    before = df.copy()
    cflearn.from_df(df, duplicates="mean")
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize("bad, message", [
    ("usr", "did you mean 'user'"),
    ("Rating", "did you mean 'rating'"),
])
def test_misspelt_column_suggests_closest(bad, message):
    kwargs = {"user": "user", "item": "item", "rating": "rating"}
    kwargs["user" if bad == "usr" else "rating"] = bad
    with pytest.raises(ColumnError, match=message):
        cflearn.from_df(frame(), **kwargs)


def test_empty_table():
    with pytest.raises(DataError, match="empty"):
        cflearn.from_df(frame().iloc[:0])


def test_not_a_dataframe():
    with pytest.raises(DataError, match="DataFrame"):
        cflearn.from_df([[1, 2, 3]])


def test_too_few_columns_hints_separator():
    with pytest.raises(DataError, match="separator"):
        cflearn.from_df(pd.DataFrame({"user;item;rating": ["1;2;3"]}))


@pytest.mark.parametrize("values, message", [
    ([np.nan] + [3.0] * 9, "missing \\(NaN\\) ratings"),
    ([np.inf] + [3.0] * 9, "infinite"),
    (["x"] + ["3"] * 9, "non-numeric ratings \\(e.g. 'x'\\)"),
])
def test_bad_ratings(values, message):
    with pytest.raises(DataError, match=message):
        cflearn.from_df(frame(rating=values))


def test_numeric_strings_are_accepted():
    data = cflearn.from_df(frame(rating=[str(v) for v in frame()["rating"]]))
    assert data.ratings["rating"].dtype == np.float64


def test_missing_and_mixed_ids():
    with pytest.raises(DataError, match="missing IDs"):
        cflearn.from_df(frame(user=[1, None, 2, 2, 3, 3, 4, 4, 5, 5]))
    with pytest.raises(DataError, match="mixes number and str"):
        cflearn.from_df(frame(user=[1, "1", 2, 2, 3, 3, 4, 4, 5, 5]))


def test_float_ids_that_are_integers_become_ints():
    data = cflearn.from_df(frame(user=[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0]))
    assert data.ratings["user"].dtype == np.int64


def test_rating_range_declared():
    with pytest.raises(DataError, match="outside the declared range 1..4"):
        cflearn.from_df(frame(), rating_range=(1, 4))
    assert cflearn.from_df(frame(), rating_range=(0, 5)).scale == (0.0, 5.0)
    with pytest.raises(ConfigError):
        cflearn.from_df(frame(), rating_range=(5, 1))


def dup_frame():
    return pd.DataFrame({"u": [1, 1, 1, 2], "i": [7, 7, 8, 7], "r": [2.0, 4.0, 3.0, 5.0], "t": [3, 1, 2, 4]})


def test_duplicates_mean_is_default():
    data = cflearn.from_df(dup_frame(), "u", "i", "r", "t", valid_pct=0.0)
    assert data.n_duplicates == 1
    row = data.ratings[(data.ratings.u == 1) & (data.ratings.i == 7)]
    assert row.r.tolist() == [3.0] and row.t.tolist() == [3]


def test_duplicates_last_uses_timestamp():
    data = cflearn.from_df(dup_frame(), "u", "i", "r", "t", valid_pct=0.0, duplicates="last")
    row = data.ratings[(data.ratings.u == 1) & (data.ratings.i == 7)]
    assert row.r.tolist() == [2.0]  # t=3 is later than t=1
    no_ts = cflearn.from_df(dup_frame(), "u", "i", "r", valid_pct=0.0, duplicates="last")
    assert no_ts.ratings[(no_ts.ratings.u == 1) & (no_ts.ratings.i == 7)].r.tolist() == [4.0]


def test_duplicates_error():
    with pytest.raises(DataError, match="duplicate .* duplicates='mean'"):
        cflearn.from_df(dup_frame(), "u", "i", "r", duplicates="error")
    with pytest.raises(ConfigError):
        cflearn.from_df(dup_frame(), "u", "i", "r", duplicates="first")


def test_split_that_leaves_nothing():
    with pytest.raises(DataError, match="no training rows"):
        cflearn.from_df(frame().iloc[:1], valid_pct=0.9)


def test_encoded_tensors_and_cold_rows():
    df = frame()
    data = cflearn.from_df(df, valid_pct=0.3, seed=0)
    x, y = data.tensors("train")
    assert x.shape == (7, 2) and y.shape == (7,)
    xv, _ = data.tensors("valid")
    cold_rows = int(((xv[:, 0] == 0) | (xv[:, 1] == 0)).sum())
    assert data.cold["rows"] == cold_rows
    # decoding the encoded training rows gives the raw IDs back
    assert data.users.decode(x[:, 0].numpy()).tolist() == data.train["user"].tolist()


def test_side_tables(synth):
    data = cflearn.from_df(synth)
    assert data.item_info is not None and "genres" in data.item_info.columns
    with pytest.raises(ColumnError, match="items table"):
        cflearn.from_df(synth.ratings, items=pd.DataFrame({"movie": [1]}))


def test_read_ratings_formats(tmp_path):
    df = frame()
    df.to_csv(tmp_path / "r.csv", index=False)
    df.to_csv(tmp_path / "r.tsv", index=False, sep="\t")
    df.to_csv(tmp_path / "r.txt", index=False, sep=";")
    df.to_parquet(tmp_path / "r.parquet")
    df.to_csv(tmp_path / "nohead.csv", index=False, header=False)
    for name in ["r.csv", "r.tsv", "r.txt", "r.parquet"]:
        got = cflearn.read_ratings(tmp_path / name)
        assert list(got.columns) == list(df.columns), name
        assert len(got) == 10
    nohead = cflearn.read_ratings(tmp_path / "nohead.csv", header=None)
    assert list(nohead.columns) == [0, 1, 2, 3]
    data = cflearn.from_file(tmp_path / "r.tsv", user="user", item="item", rating="rating")
    assert len(data.ratings) == 10


def test_read_ratings_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        cflearn.read_ratings(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        cflearn.read_ratings(tmp_path / "empty.csv")
    (tmp_path / "latin.csv").write_bytes("user,item,rating\nJos\xe9,1,3\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8.*latin-1"):
        cflearn.read_ratings(tmp_path / "latin.csv")
    assert cflearn.read_ratings(tmp_path / "latin.csv", encoding="latin-1").user.tolist() == ["José"]


def test_a_side_table_keyed_otherwise_names_its_id_column_and_the_option():
    """A wines table keyed `id` got "(did you mean 'WineryID'?)", the winery's column; no word of --items-id."""
    import pandas as pd

    from cflearn.cli._common import cli_words as _cli_words

    ratings = pd.DataFrame({"WineID": [1, 2, 3, 4, 5, 6], "user": [1, 1, 2, 2, 3, 3], "rating": [4, 3, 5, 2, 4, 1.0]})
    wines = pd.DataFrame({"id": [1, 2, 3, 4, 5, 6, 7], "WineryID": [1, 1, 2, 2, 3, 3, 3], "WineName": list("abcdefg")})
    with pytest.raises(cflearn.ColumnError, match=r"its 'id' column has one row per ID and 86% of them are rated "
                                                  r"IDs: pass item_id='id'\)") as info:
        cflearn.from_df(ratings, "user", "WineID", "rating", items=wines)
    assert "pass --items-id id)" in _cli_words(str(info.value))
    with pytest.raises(cflearn.ColumnError) as info:  # no key column: no guess at the winery
        cflearn.from_df(ratings, "user", "WineID", "rating", items=wines.drop(columns="id"))
    assert "WineryID'?" not in str(info.value) and "with --items-id COLUMN;" in _cli_words(str(info.value))
    data = cflearn.from_df(ratings, "user", "WineID", "rating", items=wines, item_id="id")  # the fix it names
    assert data.item_info is not None and "WineName" in data.item_info.columns


def test_titles_come_from_a_column_that_looks_like_names_and_the_summary_says_how():
    """A wines table's `Vintages` (lists of years, all distinct) came first and became the titles; the
    name column (80% distinct) lost to the 90% rule; an empty `title` printed "None" as every name."""
    import pandas as pd

    ratings = cflearn.datasets.synthetic(n_users=30, n_items=50, density=0.3, seed=0).ratings
    ids = range(1, 51)
    wines = pd.DataFrame({"id": ids, "Vintages": [str([1990 + i, 2000 + i]) for i in ids], "Code": [f"{i:05d}" for i in
                          ids], "Country": ["France"] * 50, "WineName": [f"Wine {i % 40}" for i in ids]})
    data = cflearn.from_df(ratings, items=wines, item_id="id")
    assert data.titles_from == "WineName" and data.item_info["title"].iloc[0] == "Wine 1"
    assert "'WineName' column (a column named like names, holding mostly distinct text; item_title=" in repr(data)
    chosen = cflearn.from_df(ratings, items=wines, item_id="id", item_title="Country")
    assert "'Country' column (chosen with item_title= / --items-title)" in repr(chosen)  # not "the first text..."
    empty = pd.DataFrame({"item": ids, "title": [None] * 50, "kind": ["red"] * 50})
    data = cflearn.from_df(ratings, items=empty)
    assert data.titles_from is None and "title" not in data.item_info.columns
    named = cflearn.from_df(ratings, items=empty.assign(label=[f"Film {i}" for i in ids]))
    assert named.titles_from == "label" and "the 'title' column is empty" in repr(named)
    with pytest.raises(cflearn.DataError, match="the title column 'title' of the items table is empty"):
        cflearn.from_df(ratings, items=empty.assign(title=" "), item_title="title")


def test_a_data_spec_is_from_dfs_keywords_as_one_value():
    """``from_df(table, spec=DataSpec(...))`` reads the table as the same keywords do; a spec and keywords at
    once is refused, naming the keywords."""
    ds = cflearn.datasets.synthetic(n_users=60, n_items=40, density=0.3, seed=0)
    table = ds.ratings.rename(columns={"user": "who", "item": "what"})
    kw = dict(user="who", item="what", rating="rating", timestamp="timestamp", split="time", valid_pct=0.25)
    spec = cflearn.DataSpec(**kw)
    a, b = cflearn.from_df(table, **kw), cflearn.from_df(table, spec=spec)
    assert a.ratings.equals(b.ratings) and list(a.train_idx) == list(b.train_idx) and a.scale == b.scale
    assert (b.user, b.item, b.split, b.valid_pct) == ("who", "what", "time", 0.25)
    with pytest.raises(cflearn.ConfigError, match=r"keywords it holds, not both \(also given: seed, split\)"):
        cflearn.from_df(table, spec=spec, split="cold_users", seed=1)
    with pytest.raises(cflearn.ConfigError, match="also given: items"):
        cflearn.from_df(table, spec=spec, items=ds.items)
    # one set of defaults: from_df's keywords default to the spec's fields (else a spec would look "also given")
    defaults = {f.name: f.default for f in dataclasses.fields(cflearn.DataSpec)}
    keywords = {k: p.default for k, p in inspect.signature(cflearn.from_df).parameters.items() if k in defaults}
    assert keywords == defaults
