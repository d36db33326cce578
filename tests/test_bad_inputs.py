"""The bad-input catalog (docs/bad-inputs.md): each row through the Python API and the CLI."""

import numpy as np
import pandas as pd
import pytest

import cflearn
from cflearn.cli import main

GOOD = "userId,movieId,rating\n" + "".join(f"{u},{i},{(u * i) % 5 + 1}\n" for u in range(1, 21) for i in range(1, 11))


def _rows(n=200, seed=0, **cols):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"userId": rng.integers(1, 30, n), "movieId": rng.integers(1, 40, n),
                       "rating": rng.integers(1, 6, n).astype(float)})
    for k, v in cols.items():
        df[k] = v
    return df


CATALOG = [
    # name, file bytes, extra CLI args, exception type, message pattern
    ("empty file", b"", [], cflearn.DataError, r"is empty; it needs a header line"),
    ("header only", b"userId,movieId,rating\n", [], cflearn.DataError, r"table is empty \(a header but no rows\?\)"),
    ("misspelt column", GOOD.replace("userId", "userid").encode(), [], cflearn.ColumnError,
     r"no user column 'userId'.*did you mean 'userid'"),
    ("missing column", GOOD.replace("rating", "stars").encode(), [], cflearn.ColumnError,
     r"no rating column 'rating'.*did you mean 'stars'"),
    ("wrong separator", GOOD.replace(",", ";").encode(), ["--sep", ","], cflearn.ColumnError,
     r"wrong separator\? the header reads 'userId;movieId;rating': pass sep=';'"),
    ("NaN ratings", (GOOD + "3,99,\n").encode(), [], cflearn.DataError, r"1 missing \(NaN\) ratings.*dropna"),
    ("infinite ratings", (GOOD + "3,99,inf\n").encode(), [], cflearn.DataError, r"1 infinite ratings"),
    ("non-numeric ratings", (GOOD + "3,99,five\n").encode(), [], cflearn.DataError,
     r"1 non-numeric ratings \(e.g. 'five'\)"),
    ("missing IDs", (GOOD + ",99,3\n").encode(), [], cflearn.DataError, r"column 'userId' has 1 missing IDs"),
    ("non-UTF-8 bytes", (GOOD + "3,99,4\n").encode() + "J\xe9r\xf4me,1,3\n".encode("latin-1"), [],
     cflearn.DataError, r"not UTF-8 text; pass encoding='latin-1' or re-save"),
    ("duplicates with error policy", (GOOD + "1,1,5\n").encode(), ["--duplicates", "error"], cflearn.DataError,
     r"1 duplicate \(user, item\) rows, e.g. user 1 rated item 1 more.*duplicates='mean' or duplicates='last'"),
    ("single rating", b"userId,movieId,rating\n1,1,4\n", [], cflearn.DataError, r"too few to hold out validation"),
    ("decimal comma, comma-separated (first rows)", b"userId,movieId,rating\n1,2,3,5\n" + GOOD.encode()[22:], [],
     cflearn.DataError, r"line 2 has 4 fields but the header has 3 names; a decimal comma"),
    ("decimal comma, comma-separated (later row)", (GOOD + "3,99,3,5\n").encode(), [], cflearn.DataError,
     r"Expected 3 fields in line 202, saw 4; a decimal comma"),
    ("decimal comma, semicolon-separated", (GOOD.replace(",", ";") + "3;99;3,5\n").encode(), [], cflearn.DataError,
     r"ratings with a decimal comma \(e.g. '3,5'\); pass decimal=',' or write"),
    ("ratings beyond float32", (GOOD + "3,99,1e39\n").encode(), [], cflearn.DataError,
     r"1 ratings beyond float32's range"),
    ("binary file named .csv", bytes(range(256)) * 8, [], cflearn.DataError, r"is not text \(binary data\)"),
]


CLI_WORDS = {
    "wrong separator": r"the header reads 'userId;movieId;rating': pass --sep ;\)",
    "non-UTF-8 bytes": r"not UTF-8 text; pass --encoding latin-1 or re-save",
    "duplicates with error policy": r"e.g. user 1 rated item 1 more than once; pass --duplicates mean or --duplicates last",
    "decimal comma, semicolon-separated": r"decimal comma \(e.g. '3,5'\); pass --decimal , or write",
}
"""The command line says `--sep ;` where the API says `sep=';'`."""


@pytest.mark.parametrize("name, blob, cli_args, exc, pattern", CATALOG, ids=[c[0] for c in CATALOG])
def test_catalog_python_api(tmp_path, name, blob, cli_args, exc, pattern):
    path = tmp_path / "ratings.csv"
    path.write_bytes(blob)
    kwargs = {"duplicates": "error"} if "--duplicates" in cli_args else {}
    sep = cli_args[cli_args.index("--sep") + 1] if "--sep" in cli_args else None
    with pytest.raises(exc, match=pattern) as info:
        data = cflearn.from_file(path, sep=sep, user="userId", item="movieId", rating="rating", **kwargs)
        cflearn.collab_learner(data, progress=False)
    assert type(info.value) is exc
    assert "\n" not in str(info.value)  # one line
    assert path.read_bytes() == blob  # never modified


@pytest.mark.parametrize("name, blob, cli_args, exc, pattern", CATALOG, ids=[c[0] for c in CATALOG])
def test_catalog_cli(tmp_path, capsys, name, blob, cli_args, exc, pattern):
    path = tmp_path / "ratings.csv"
    path.write_bytes(blob)
    code = main(["fit", str(path), "--user", "userId", "--item", "movieId", "--rating", "rating", "--epochs", "1",
                 "--out", str(tmp_path / "out"), *cli_args])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("cflearn: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    import re

    assert re.search(CLI_WORDS.get(name, pattern), err), err  # the command line's words for the same fix
    assert not (tmp_path / "out").exists()
    assert path.read_bytes() == blob


def test_declared_scale_and_mixed_ids():
    with pytest.raises(cflearn.DataError, match=r"2 ratings outside the declared range 1..5 \(e.g. 0, 7\)"):
        cflearn.from_df(_rows(rating=[0.0, 7.0] + [3.0] * 198), rating_range=(1, 5))
    mixed = _rows()
    mixed["userId"] = mixed["userId"].astype(object)
    mixed.loc[0, "userId"] = "7"
    with pytest.raises(cflearn.DataError, match=r"mixes number and str IDs.*astype\(str\)"):
        cflearn.from_df(mixed)


@pytest.mark.parametrize("name, frame", [
    ("single user", _rows(userId=1)),
    ("single item", _rows(movieId=1)),
    ("every user rates once", _rows(userId=np.arange(200))),
    ("IDs beyond int64", _rows(userId=[2**64 + int(k) for k in np.random.default_rng(1).integers(0, 30, 200)])),
    ("1-10 scale", _rows(rating=np.random.default_rng(2).integers(1, 11, 200).astype(float))),
    ("0-1 scale", _rows(rating=np.random.default_rng(3).random(200))),
    ("binary", _rows(rating=np.random.default_rng(4).integers(0, 2, 200).astype(float))),
])
def test_edge_tables_train_save_and_load(tmp_path, name, frame):
    data = cflearn.from_df(frame, "userId", "movieId", "rating")
    learn = cflearn.collab_learner(data, epochs=2, progress=False)
    cflearn.fit(learn)
    lo, hi = data.scale
    assert learn.model.y_range[0] < lo and learn.model.y_range[1] > hi
    model = cflearn.load(cflearn.save(learn, tmp_path / "m.safetensors"))
    users, items = frame["userId"].tolist()[:5], frame["movieId"].tolist()[:5]
    a, b = cflearn.predict(learn, users, items), cflearn.predict(model, users, items)
    assert a.equals(b) and a.score.between(lo, hi).all()
    if name == "every user rates once":
        assert data.cold["user_rows"] == len(data.valid_idx)


@pytest.mark.parametrize("name, rating", [("1-10 scale", "1-10"), ("binary", "binary")])
def test_edge_scales_through_the_cli(tmp_path, name, rating):
    rng = np.random.default_rng(0)
    values = rng.integers(1, 11, 300) if rating == "1-10" else rng.integers(0, 2, 300)
    pd.DataFrame({"u": rng.integers(1, 40, 300), "i": rng.integers(1, 50, 300), "r": values}).to_csv(
        tmp_path / "r.csv", index=False)
    assert main(["fit", str(tmp_path / "r.csv"), "--user", "u", "--item", "i", "--rating", "r", "--epochs", "1",
                 "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "model.safetensors").is_file()
