import dataclasses
import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest

import cflearn
from cflearn import datasets
from cflearn.datasets import Release


def _latest_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.5,101\n"
                                                  "2,10,5.0,102\n2,30,1.0,103\n")
        z.writestr("ml-latest-small/movies.csv", "movieId,title,genres\n10,A (1990),Drama\n20,B (1991),Comedy|Drama\n"
                                                 "30,C (1992),Horror\n")
    return buf.getvalue()


def _100k_zip() -> bytes:
    buf = io.BytesIO()
    flags = "|".join(["0"] * 19)
    drama = "|".join("1" if g == "Drama" else "0" for g in datasets.ML100K_GENRES)
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-100k/u.data", "1\t10\t4\t100\n2\t10\t5\t102\n2\t20\t2\t103\n")
        z.writestr("ml-100k/u.item", (f"10|Caf\xe9 (1995)|01-Jan-1995||http://x|{drama}\n"
                                      f"20|B (1996)|01-Jan-1996||http://y|{flags}\n").encode("latin-1"))
        z.writestr("ml-100k/u.user", "1|24|M|technician|85711\n2|53|F|other|01002\n")
    return buf.getvalue()


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 serving whatever bytes the test puts in `files`."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()


def _serve(server, monkeypatch, name, body, layout, served=None):
    """Register a release whose size and SHA-256 are those of `body`; serve `served` (default `body`)."""
    base, files = server
    files[f"/{name}.zip"] = body if served is None else served
    rel = Release(name, f"{base}/{name}.zip", len(body), hashlib.sha256(body).hexdigest(), layout)
    monkeypatch.setitem(datasets.RELEASES, name, rel)
    monkeypatch.delenv("CFLEARN_DATA", raising=False)
    return files


def test_download_verify_unpack_then_cache(server, monkeypatch, tmp_path):
    files = _serve(server, monkeypatch, "ml-latest-small", _latest_zip(), "latest")
    ds = cflearn.datasets.movielens("ml-latest-small")
    assert len(ds.ratings) == 4 and list(ds.ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert ds.items.title.tolist() == ["A (1990)", "B (1991)", "C (1992)"]
    cache = datasets.cache_dir()
    assert (cache / "ml-latest-small" / "ratings.csv").is_file()
    assert [p.name for p in cache.iterdir()] == ["ml-latest-small"]  # no temp files left
    files.clear()  # second call must not download
    assert len(cflearn.datasets.movielens("ml-latest-small").ratings) == 4


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:], "SHA-256"),
    (lambda b: b + b"extra", "too large"),
])
def test_bad_downloads_are_rejected_and_nothing_is_kept(server, monkeypatch, damage, message):
    good = _latest_zip()
    _serve(server, monkeypatch, "ml-latest-small", good, "latest", served=damage(good))
    with pytest.raises(cflearn.DownloadError, match=message):
        cflearn.datasets.movielens("ml-latest-small")
    assert list(datasets.cache_dir().iterdir()) == []


def test_zip_with_right_checksum_but_wrong_content(server, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("other/readme.txt", "hello")
    _serve(server, monkeypatch, "ml-latest-small", buf.getvalue(), "latest")
    with pytest.raises(cflearn.DownloadError, match="does not hold ratings.csv"):
        cflearn.datasets.movielens("ml-latest-small")


def test_offline_error_says_what_to_do(monkeypatch):
    rel = Release("ml-latest-small", "http://127.0.0.1:9/none.zip", 1, "0" * 64, "latest")
    monkeypatch.setitem(datasets.RELEASES, "ml-latest-small", rel)
    monkeypatch.delenv("CFLEARN_DATA", raising=False)
    with pytest.raises(cflearn.DownloadError, match="CFLEARN_DATA"):
        cflearn.datasets.movielens("ml-latest-small", timeout=5)
    with pytest.raises(cflearn.DataError, match="download=False"):
        cflearn.datasets.movielens("ml-latest-small", download=False)


def test_ml100k_layout_from_download(server, monkeypatch):
    _serve(server, monkeypatch, "ml-100k", _100k_zip(), "100k")
    ds = cflearn.datasets.movielens("ml-100k")
    assert ds.ratings.rating.tolist() == [4, 5, 2]
    assert ds.items.title.tolist() == ["Café (1995)", "B (1996)"]
    assert ds.items.genres.tolist() == ["Drama", "(no genres listed)"]
    assert ds.items.release_date.dt.year.tolist() == [1995, 1996]
    assert ds.users.to_dict("list") == {"userId": [1, 2], "age": [24, 53], "gender": ["M", "F"],
                                        "occupation": ["technician", "other"], "zip": ["85711", "01002"]}
    data = cflearn.from_df(ds, valid_pct=0.34, seed=0)
    assert data.user_info is not None and data.user_info.loc[2, "occupation"] == "other"


def test_ml1m_layout_users_and_movies(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::10::4::100\n2::10::5::101\n2::20::2::102\n")
    (folder / "movies.dat").write_bytes("10::Caf\xe9 (1995)::Drama|Comedy\n20::B (1996)::Action\n".encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    rel = datasets.RELEASES["ml-1m"]
    ds = datasets._read(folder, dataclasses.replace(rel, rows=()))
    assert ds.items.genres.tolist() == ["Drama|Comedy", "Action"] and ds.items.title[0] == "Café (1995)"
    assert ds.users.to_dict("list") == {"userId": [1, 2], "gender": ["F", "M"], "age": [1, 56],
                                        "occupation": ["K-12 student", "self-employed"], "zip": ["48067", "70072"]}


def test_latest_layout_aggregates_tags_per_movie(tmp_path, monkeypatch):
    _tiny_release(monkeypatch)
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n2,2,3.0,2\n")
    (folder / "movies.csv").write_text("movieId,title,genres\n1,A (1990),Drama\n2,B (1991),Comedy\n")
    (folder / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,Funny ,5\n2,1,funny,6\n2,1,a|b,7\n")
    ds = cflearn.datasets.movielens("ml-latest-small", path=folder)
    assert ds.items["tags"].tolist()[0] == "a/b|funny" and ds.items["tags"].isna().tolist() == [False, True]


def _tiny_release(monkeypatch):
    """ml-latest-small with no published row count, so that tiny test copies load."""
    rel = datasets.RELEASES["ml-latest-small"]
    monkeypatch.setitem(datasets.RELEASES, rel.name, dataclasses.replace(rel, rows=()))


@pytest.mark.parametrize("content, message", [
    ("", r"damaged ml-latest-small copy \(No columns to parse"),
    ("userId,movieId,rating,timestamp\n1,1,4.0,1\n2,1,3.0,2\n", r"2 ratings, the release has 100,836 or 100,004"),
    ("userId,movieId,rating,timestamp\n1,1,four,1\n", r"non-numeric or missing values"),
    ("\x00\x01garbage\n", r"damaged ml-latest-small copy"),
])
def test_damaged_local_copies_are_refused_with_what_to_do(tmp_path, monkeypatch, capsys, content, message):
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text(content)
    with pytest.raises(cflearn.DataError, match=message) as info:
        cflearn.datasets.movielens("ml-latest-small", path=tmp_path)
    assert "delete" in str(info.value) and "\n" not in str(info.value)
    # the demo says why and trains on synthetic data instead of crashing
    monkeypatch.setenv("CFLEARN_DATA", str(tmp_path))
    monkeypatch.setenv("CFLEARN_CACHE", str(tmp_path / "cache"))
    from cflearn.cli import main
    assert main(["demo", "--offline", "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "MovieLens is not available here" in out and "damaged ml-latest-small copy" in out and "SYNTHETIC" in out


def test_lookup_order_path_then_env(tmp_path, monkeypatch):
    _tiny_release(monkeypatch)
    a, b = tmp_path / "a" / "ml-latest-small", tmp_path / "b"
    a.mkdir(parents=True)
    b.mkdir()
    (a / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,1,1\n")
    (b / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,1,1\n2,2,2,2\n")
    monkeypatch.setenv("CFLEARN_DATA", str(tmp_path / "a"))
    assert len(cflearn.datasets.movielens("ml-latest-small").ratings) == 1  # env holds the release folder
    assert len(cflearn.datasets.movielens("ml-latest-small", path=b).ratings) == 2  # path is the folder itself
    with pytest.raises(cflearn.DataError, match="no ml-latest-small in"):
        cflearn.datasets.movielens("ml-latest-small", path=tmp_path)
    with pytest.raises(cflearn.ConfigError, match="did you mean 'ml-100k'"):
        cflearn.datasets.movielens("ml-100K")


def test_real_movielens_copy(ml_path):
    ds = cflearn.datasets.movielens("ml-latest-small", path=ml_path)
    assert len(ds.ratings) == 100_004 and ds.ratings.userId.nunique() == 671
    assert {"movieId", "title", "genres"} <= set(ds.items.columns)


def test_synthetic_is_seeded_and_planted():
    a = cflearn.datasets.synthetic(100, 80, density=0.2, seed=3)
    b = cflearn.datasets.synthetic(100, 80, density=0.2, seed=3)
    pd.testing.assert_frame_equal(a.ratings, b.ratings)
    assert not a.ratings.equals(cflearn.datasets.synthetic(100, 80, density=0.2, seed=4).ratings)
    r = a.ratings
    assert len(r) == 1600 and not r.duplicated(["user", "item"]).any()
    assert r.rating.between(1, 5).all() and (r.rating * 2 == (r.rating * 2).round()).all()
    # item means follow the planted item biases
    means = r.groupby("item").rating.mean()
    bias = pd.Series(a.truth["item_bias"], index=a.truth["item_ids"]).loc[means.index]
    assert np.corrcoef(means, bias)[0, 1] > 0.5
    # power-law popularity: the top 10% of items get far more than 10% of the ratings
    counts = r.item.value_counts()
    assert counts.iloc[: len(counts) // 10].sum() > 0.2 * len(r)


@pytest.mark.parametrize("scale, step", [((1, 10), 1), ((0, 1), None), ((0, 1), 1)])
def test_synthetic_scales(scale, step):
    r = cflearn.datasets.synthetic(60, 50, density=0.3, scale=scale, step=step, seed=1).ratings.rating
    assert r.min() >= scale[0] and r.max() <= scale[1]
    if step == 1 and scale == (0, 1):
        assert set(r.unique()) <= {0.0, 1.0}


def test_synthetic_dense_and_string_ids():
    ds = cflearn.datasets.synthetic(20, 10, density=1.0, id_type="str", seed=0)
    assert len(ds.ratings) == 200 and ds.ratings.user.str.startswith("u").all()
