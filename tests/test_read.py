"""Reading files: the real format whatever the name says, and one rule for column types."""

import bz2
import gzip
import lzma
import warnings
import zipfile

import pandas as pd
import pytest

import cflearn
from cflearn.cli import main

TEXT = "user,item,rating,when\n007,NA,4,12/31/2019\n7,None,3.5,01/05/2020\n8,null,5,2020-03-01T10:00:00\n"


def _frames(tmp_path):
    """The same table in every format cflearn reads, each named ``.csv``."""
    blob = TEXT.encode()
    writers = {"gzip": gzip.compress(blob), "bz2": bz2.compress(blob), "xz": lzma.compress(blob),
               "utf-16": TEXT.encode("utf-16"), "utf-8 BOM": b"\xef\xbb\xbf" + blob}
    for name, data in writers.items():
        (tmp_path / f"{name}.csv").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "zip.csv", "w") as z:
        z.writestr("ratings.csv", TEXT)
    return [tmp_path / f"{name}.csv" for name in [*writers, "zip"]]


def test_every_text_container_reads_the_same_table(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text(TEXT)
    want = cflearn.read_ratings(plain)
    assert want["user"].tolist() == ["007", "7", "8"]  # "007" is not 7: IDs are text unless canonical integers
    assert want["item"].tolist() == ["NA", "None", "null"]  # valid IDs, not missing values
    assert want["rating"].tolist() == [4.0, 3.5, 5.0]
    for path in _frames(tmp_path):
        got = cflearn.read_ratings(path)
        pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=path.name)
        assert path.read_bytes() != b""  # untouched


def test_binary_formats_named_csv(tmp_path):
    frame = pd.DataFrame({"user": [1, 2, 3, 3], "item": [10, 20, 30, 10], "rating": [1.0, 2.0, 3.0, 4.0]})
    frame.to_parquet(tmp_path / "parquet.csv")
    frame.to_feather(tmp_path / "feather.csv")
    frame.to_json(tmp_path / "json.csv", orient="records")
    frame.to_json(tmp_path / "jsonl.csv", orient="records", lines=True)
    for name in ("parquet", "feather", "json", "jsonl"):
        got = cflearn.read_ratings(tmp_path / f"{name}.csv")
        pd.testing.assert_frame_equal(got, frame, check_dtype=False, obj=name)
        data = cflearn.from_df(got, "user", "item", "rating", seed=0)
        assert len(data.ratings) == 4
    with zipfile.ZipFile(tmp_path / "book.csv", "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(cflearn.DataError, match=r"an Excel workbook \(\.xlsx\)"):
        cflearn.read_ratings(tmp_path / "book.csv")


def test_id_columns_follow_one_rule_without_dtype_warnings(tmp_path):
    rows = "".join(f"{u},{u % 7},4\n" for u in range(2000)) + "abc,x,3\n"
    path = tmp_path / "mixed.csv"
    path.write_text("user,item,rating\n" + rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = cflearn.read_ratings(path)
    assert frame["user"].map(type).eq(str).all() and frame["user"].iloc[0] == "0"  # one type: text
    ints = tmp_path / "ints.csv"
    ints.write_text("user,item,rating\n" + "".join(f"{u},{i},{(u + i) % 5 + 1}\n" for u in range(1, 30)
                                                   for i in range(1, 8)))
    data = cflearn.from_file(ints, seed=0)
    assert data.ratings["user"].dtype.kind == "i"
    learn = cflearn.collab_learner(data, epochs=1, progress=False)
    cflearn.fit(learn)
    assert len(cflearn.predict(learn, [1, 2], [3, 4])) == 2  # int IDs stay ints


def test_codes_and_na_strings_are_distinct_ids(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n" + "".join(f"{u},{i},{(k % 5) + 1}\n" for k, (u, i) in enumerate(
        (u, i) for u in ("007", "7", "NA", "None") for i in ("null", "1", "01", "x"))))
    data = cflearn.from_file(path, seed=0, valid_pct=0.25)
    assert set(data.ratings["user"]) == {"007", "7", "NA", "None"}
    assert set(data.ratings["item"]) == {"null", "1", "01", "x"}


def test_date_timestamps_sort_by_time_not_text(tmp_path):
    # month-first dates: as text "01/..." < "12/..."; as time 2019-12-31 is earlier
    path = tmp_path / "r.csv"
    days = ["12/31/2019", "01/05/2020", "02/10/2020", "03/01/2020"]
    path.write_text("user,item,rating,when\n" + "".join(f"{u},{i},{(u + i) % 5 + 1},{days[i]}\n"
                                                         for u in range(10) for i in range(4)))
    data = cflearn.from_file(path, user="user", item="item", rating="rating", timestamp="when", split="time",
                             valid_pct=0.25)
    latest = data.ratings.iloc[data.valid_idx]["item"]
    assert set(latest) == {3}  # the March ratings are the latest quarter
    assert data.ratings["when"].min() == pd.Timestamp("2019-12-31", tz="UTC").timestamp()


def test_timestamps_that_are_not_dates_are_one_clear_error(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,when\n1,2,3,yesterday\n1,3,4,2020-01-01\n2,3,4,2020-01-02\n")
    with pytest.raises(cflearn.DataError, match=r"1 timestamps that are neither numbers nor dates \(e.g. 'yester"):
        cflearn.from_file(path, timestamp="when", split="time")
    # epochs that a few bad values turned into text are epochs: counted and cited are the bad ones only
    rows = [f"{u},{i},4,{835355790 + 60 * (u * 10 + i)}" for u in range(1, 11) for i in range(1, 11)]
    rows[:7] = [r.rsplit(",", 1)[0] + ",yesterday" for r in rows[:7]]
    path.write_text("user,item,rating,when\n" + "\n".join(rows) + "\n")
    with pytest.raises(cflearn.DataError, match=r"has 7 timestamps that are neither numbers nor dates \(e.g. "
                                                r"'yesterday'\); fix them"):
        cflearn.from_file(path, timestamp="when", split="time")
    path.write_text("user,item,rating,when\n" + "\n".join(rows[7:] + ["1,1,3,2020-01-01T00:00:00"]) + "\n")
    data = cflearn.from_file(path, timestamp="when", split="time")  # numbers and a date in one text column
    assert data.ratings["when"].max() == pd.Timestamp("2020-01-01", tz="UTC").timestamp()


def test_decimal_comma_when_asked(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user;item;rating\n" + "".join(f"{u};{i};{(u + i) % 5},5\n" for u in range(1, 20)
                                                   for i in range(1, 6)))
    data = cflearn.from_file(path, decimal=",", seed=0)
    assert sorted(set(data.values)) == [0.5, 1.5, 2.5, 3.5, 4.5]
    out = tmp_path / "out"
    assert main(["fit", str(path), "--user", "user", "--item", "item", "--rating", "rating", "--decimal", ",",
                 "--epochs", "1", "--out", str(out)]) == 0
    with pytest.raises(cflearn.ConfigError, match="decimal must be"):
        cflearn.read_ratings(path, decimal=";")


def test_only_the_named_columns_are_read(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,comment\n1,2,3,nice\n1,3,4,meh\n")
    assert list(cflearn.read_ratings(path, columns=["user", "item", "rating"]).columns) == ["user", "item", "rating"]
    # a misspelt name reads everything, so that the error can name the closest column
    assert len(cflearn.read_ratings(path, columns=["usr", "item"]).columns) == 4
