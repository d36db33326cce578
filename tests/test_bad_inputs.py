"""The bad-input catalog (docs/bad-inputs.md): each row through the Python API and the CLI."""

import os
from pathlib import Path

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
    ("no header row (FilmTrust's shape)", b"1050,215,3\n1050,216,2\n1051,215,4\n", [], cflearn.ColumnError,
     r"no user column 'userId' in the table \(the first row looks like data, not column names: .*--no-header"),
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
    "duplicates with error policy":
        r"e.g. user 1 rated item 1 more than once; pass --duplicates mean or --duplicates last",
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


# -- round three: model contents, side tables at the command line, fold-in inputs, targets, messages --------------
def _fit_small(tmp_path, *extra):
    """The CLI's argument list for a small synthetic ratings file (written once per test)."""
    src = tmp_path / "r.csv"
    if not src.exists():
        cflearn.datasets.synthetic(n_users=60, n_items=40, density=0.3, seed=0).ratings.to_csv(src, index=False)
    return ["fit", str(src), "--user", "user", "--item", "item", "--rating", "rating", "--epochs", "1", *extra]


def _one_line(capsys, code, expected_code=1):
    err = capsys.readouterr().err
    assert code == expected_code and err.count("\n") == 1 and err.startswith("cflearn: error: "), err
    return err


@pytest.mark.parametrize("field, value, message", [
    ("y_range", [float("nan"), float("nan")], "y_range must be two finite numbers"),
    ("y_range", [5.5, 0.5], "low < high"),
    ("y_range", None, "y_range is missing"),
])
def test_tampered_model_contents_are_refused(trained, tmp_path, field, value, message):
    import json
    import struct

    from cflearn.serve._file import header_digest as _header_digest

    path = cflearn.save(trained, tmp_path / "m.safetensors")
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["cflearn"])
    meta["model"][field] = value
    meta["header_digest"] = _header_digest(meta)  # as a forger who knows the format would: the checks must stand
    blob = json.dumps(dict(header, __metadata__={"cflearn": json.dumps(meta)})).encode()
    blob += b" " * (-len(blob) % 8)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n:])
    with pytest.raises(cflearn.ModelFileError, match=message):
        cflearn.load(bad)
    for top, value2, message2 in (("scale", [5, 1], "reversed"), ("preset", "fast", "JSON object")):
        meta2 = json.loads(header["__metadata__"]["cflearn"])
        meta2[top] = value2
        meta2["header_digest"] = _header_digest(meta2)
        blob = json.dumps(dict(header, __metadata__={"cflearn": json.dumps(meta2)})).encode()
        blob += b" " * (-len(blob) % 8)
        bad.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n:])
        with pytest.raises(cflearn.ModelFileError, match=message2):
            cflearn.load(bad)


def test_side_tables_at_the_command_line_are_checked_like_the_api(tmp_path, capsys):
    (tmp_path / "dup.csv").write_text("item,title\n1,A\n1,B\n2,C\n")
    err = _one_line(capsys, main(_fit_small(tmp_path, "--items", str(tmp_path / "dup.csv"), "--out",
                                            str(tmp_path / "o1"))))
    assert "one row per ID" in err
    (tmp_path / "zero.csv").write_text("item,title\n001,A\n002,B\n")
    err = _one_line(capsys, main(_fit_small(tmp_path, "--items", str(tmp_path / "zero.csv"), "--out",
                                            str(tmp_path / "o2"))))
    assert "IDs are text (e.g. '001') where the ratings' are whole numbers" in err
    (tmp_path / "empty.csv").write_text("item,title\n")
    assert main(_fit_small(tmp_path, "--items", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "o3"))) == 0
    assert capsys.readouterr().err == "cflearn: warning: the items table has no rows: no titles or side features " \
                                      "come from it\n"
    with pytest.raises(cflearn.DataError, match="one row per ID"):
        cflearn.from_df(cflearn.datasets.synthetic(n_users=20, n_items=10, seed=0).ratings,
                        items=pd.DataFrame({"item": [1, 1], "title": ["a", "b"]}))


def test_fold_in_and_feature_inputs_that_are_not_what_they_should_be(trained):
    item = trained.cf.items.ids[1]
    for value, message in ((1e39, "outside the model's rating scale"), (10**400, "finite numbers"),
                           (float("nan"), "finite numbers"), ("4", "finite numbers")):
        with pytest.raises(cflearn.DataError, match=message):
            cflearn.fold_in(trained, {item: value})
    with pytest.raises(cflearn.ColumnError, match="item and rating columns"):
        cflearn.fold_in(trained, pd.DataFrame({"item": [item]}))
    with pytest.raises(cflearn.ConfigError, match="steps must be a positive integer"):
        cflearn.fold_in(trained, {item: 4.0}, steps=-5)


@pytest.fixture(scope="module")
def with_users():
    ds = cflearn.datasets.synthetic(n_users=200, n_items=100, density=0.1, seed=0)
    users = ds.users.assign(age=np.random.default_rng(0).integers(18, 70, len(ds.users)))
    data = cflearn.from_df(ds.ratings, "user", "item", "rating", users=users, user_features=["age", "group"],
                           item_features=[])
    learn = cflearn.collab_learner(data, "best", epochs=1, select_features=False, progress=False)
    return cflearn.fit(learn)


@pytest.mark.parametrize("value", ["now", "thirty", 1e999, [25, 30]])
def test_a_new_users_number_that_is_not_a_number_counts_as_missing_and_says_so(with_users, value):
    with pytest.warns(cflearn.DataWarning, match=r"not numbers \(or ISO dates\) count as missing: age="):
        odd = cflearn.cold_user(with_users, {"age": value, "group": "g1"})
    missing = cflearn.cold_user(with_users, {"group": "g1"})
    torch_close = np.allclose(odd.vector.numpy(), missing.vector.numpy(), atol=1e-6)
    assert torch_close and odd.bias == pytest.approx(missing.bias, abs=1e-6)
    dated = cflearn.cold_user(with_users, {"age": "1995-07-01", "group": "g1"})  # an ISO date: its year
    assert not np.allclose(dated.vector.numpy(), missing.vector.numpy())


def test_a_key_given_twice_to_features_is_one_line(tmp_path, capsys, with_users):
    path = cflearn.save(with_users, tmp_path / "m.safetensors")
    err = _one_line(capsys, main(["recommend", str(path), "--features", "age=25", "age=30"]))
    assert "'age' twice" in err


def test_a_peer_that_never_joins_is_one_line(tmp_path, capsys, monkeypatch):
    import torch.distributed as dist

    from cflearn.train import _distributed

    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29917"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(_distributed, "TIMEOUT_S", 2)
    err = _one_line(capsys, main(_fit_small(tmp_path, "--preset", "fast", "--out", str(tmp_path / "o"))))
    assert "could not join the other 1 training process(es) at 127.0.0.1:29917 within 2 s" in err
    assert not dist.is_initialized() and not (tmp_path / "o").exists()


def test_nproc_is_not_ignored_when_part_of_torchruns_environment_is_set(tmp_path, capsys, monkeypatch):
    """LOCAL_RANK=0 left in a shell used to make `--nproc 2` train one process."""
    from cflearn.train import _launch

    started = []
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(_launch, "launch", lambda n, argv: started.append((n, argv)) or 0)
    assert main(_fit_small(tmp_path, "--preset", "fast", "--nproc", "2", "--device", "cpu", "--out",
                           str(tmp_path / "o"))) == 0
    assert started and started[0][0] == 2 and "--nproc" not in started[0][1]
    assert "cflearn: warning: the environment sets LOCAL_RANK but not RANK" in capsys.readouterr().err


def test_report_and_save_targets_and_hand_edited_metrics(trained, tmp_path, capsys):
    import json

    out = tmp_path / "run"
    assert main(_fit_small(tmp_path, "--out", str(out))) == 0
    capsys.readouterr()
    err = _one_line(capsys, main(["report", str(out), "--out", str(out)]))  # a folder where a file goes
    assert "is a folder; give a file name" in err
    good = json.loads((out / "metrics.json").read_text())
    for edit in ({"evaluation": "lots"}, {"evaluation": {"methods": [1, 2]}}, {"data_summary": 7},
                 {"samples": {"users": [{"user": 1}]}}, {"evaluation": {"methods": {"m": 5}}}):
        (out / "metrics.json").write_text(json.dumps(good | edit))
        code = main(["report", str(out)])
        err = capsys.readouterr().err
        assert code in (0, 1) and "Traceback" not in err and err.count("\n") <= 1, (edit, err)
    (out / "metrics.json").write_text("[" * 50_000 + "]" * 50_000)
    err = _one_line(capsys, main(["report", str(out)]))
    assert "not readable JSON" in err or "not as `cflearn fit` writes it" in err
    with pytest.raises(cflearn.WriteError, match="is a folder"):
        cflearn.save(trained, tmp_path)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if not os.access(readonly, os.W_OK):  # root writes anywhere
            with pytest.raises(cflearn.WriteError, match="Permission denied"):
                cflearn.save(trained, readonly / "m.safetensors")
    finally:
        readonly.chmod(0o700)
    with pytest.raises(cflearn.WriteError):
        cflearn.save(trained, "/proc/cflearn-model.safetensors")


def test_interactions_with_a_timestamp_and_no_rating_column(tmp_path, capsys):
    ds = cflearn.datasets.synthetic(n_users=60, n_items=40, density=0.3, implicit=True, seed=0)
    ds.ratings[["user", "item", "timestamp"]].to_csv(tmp_path / "clicks.csv", index=False)
    assert main(["fit", str(tmp_path / "clicks.csv"), "--user", "user", "--item", "item", "--timestamp", "timestamp",
                 "--split", "time", "--preset", "rank", "--epochs", "1", "--out", str(tmp_path / "o")]) == 0
    assert "interactions (implicit)" in capsys.readouterr().out
    data = cflearn.from_df(ds.ratings[["user", "item", "timestamp"]], "user", "item", timestamp="timestamp")
    assert data.implicit


def test_messages_that_say_what_is_wrong(tmp_path, capsys):
    import zipfile

    ratings = cflearn.datasets.synthetic(n_users=60, n_items=40, density=0.3, seed=0).ratings
    with pytest.raises(cflearn.DataError, match="holds out no validation rows from 7"):
        data = cflearn.from_df(ratings, valid_pct=1e-6, split="time", timestamp="timestamp")
        cflearn.collab_learner(data, progress=False)
    with pytest.raises(cflearn.DataError, match="not a regular file"):
        cflearn.read_ratings("/dev/null")
    ratings.to_parquet(tmp_path / "r.parquet")
    with zipfile.ZipFile(tmp_path / "r.zip", "w") as z:
        z.write(tmp_path / "r.parquet", "r.parquet")
    with pytest.raises(cflearn.DataError, match="zip holding a Parquet file: unzip it"):
        cflearn.read_ratings(tmp_path / "r.zip")
    (tmp_path / "brackets.csv").write_text("[user],[item],[rating]\n1,2,4\n2,3,5\n")
    assert list(cflearn.read_ratings(tmp_path / "brackets.csv").columns) == ["[user]", "[item]", "[rating]"]
    with pytest.raises(SystemExit):
        main(["course", "--check", str(tmp_path / "x.ipynb"), "--timeout", "0"])
    assert "is not at least 1" in capsys.readouterr().err
    err = _one_line(capsys, main(_fit_small(tmp_path, "--sep", "\\N", "--out", str(tmp_path / "o"))))
    assert "is not a separator" in err
    section = "§".join
    (tmp_path / "sect.csv").write_text("\n".join(section(map(str, r)) for r in
                                                 [("u", "i", "r"), *ratings[["user", "item", "rating"]].values]))
    assert main(["fit", str(tmp_path / "sect.csv"), "--user", "u", "--item", "i", "--rating", "r", "--sep", "§",
                 "--epochs", "1", "--out", str(tmp_path / "o5")]) == 0


def test_side_options_without_their_table_a_ratings_folder_and_a_link_loop_are_one_line(tmp_path, capsys):
    """Options that would be ignored, a folder or a device as the ratings file, and --out inside a
    loop of symbolic links: each one line, exit 1, nothing written (each failed before its fix)."""
    for option, table in (("--items-id", "--items"), ("--items-title", "--items"), ("--users-id", "--users")):
        err = _one_line(capsys, main(_fit_small(tmp_path, option, "col", "--out", str(tmp_path / "o"))))
        assert f"{option} col names a column of the {table} table, but no {table} FILE was given" in err
    for src, kind in ((tmp_path, "a folder"), (Path("/dev/null"), "a device, pipe or socket")):
        err = _one_line(capsys, main(["fit", str(src), "--user", "user", "--item", "item", "--out",
                                      str(tmp_path / "o")]))
        assert f"is not a regular file ({kind})" in err and "not found" not in err
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for out in (tmp_path / "loop1", tmp_path / "loop1" / "run"):
        err = _one_line(capsys, main(_fit_small(tmp_path, "--out", str(out))))
        assert "is a loop of symbolic links; give a real folder" in err
    assert not (tmp_path / "o").exists()


def test_select_features_refuses_a_bad_seed_before_any_work(monkeypatch):
    import cflearn.train._select as S

    data = cflearn.from_df(cflearn.datasets.synthetic(n_users=30, n_items=20, density=0.3, seed=0))
    monkeypatch.setattr(S, "get_preset", lambda *a: pytest.fail("the check started with a bad seed"))
    for seed in (-1, 2**64, "abc", 1.5, True):
        with pytest.raises(cflearn.ConfigError, match=r"seed must be an integer from 0 to 2\*\*63 - 1"):
            cflearn.select_features(data, "best", seed=seed)


def test_users_id_with_user_features_at_the_command_line(tmp_path, capsys):
    """`--users users.csv --users-id uid --user-features group` ended in a KeyError traceback."""
    syn = cflearn.datasets.synthetic(n_users=60, n_items=40, density=0.3, seed=0)
    syn.users.rename(columns={"user": "uid"}).to_csv(tmp_path / "users.csv", index=False)
    code = main(_fit_small(tmp_path, "--preset", "best", "--users", str(tmp_path / "users.csv"), "--users-id", "uid",
                           "--user-features", "group", "--out", str(tmp_path / "o")))
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err, captured.err
    model = cflearn.load(tmp_path / "o" / "model.safetensors")
    assert model.preset.user_features == ("group",) and model.preset.new_user_features
    assert model.preset.feature_selection  # the check ran on the table keyed uid, not skipped


def test_a_misspelt_column_is_refused_before_torch_loads(tmp_path):
    """A refused fit cost 4.5 s of CPU: torch and fastai loaded before the columns were checked."""
    import subprocess
    import sys

    args = _fit_small(tmp_path, "--out", str(tmp_path / "o"))
    args[args.index("--user") + 1] = "usr"
    code = ("import sys\nfrom cflearn.cli import main\ncode = main(sys.argv[1:])\n"
            "print(code, 'torch' in sys.modules, 'fastai' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["1", "False", "False"], (proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "no user column 'usr' in the table (did you mean 'user'?)" in proc.stderr
