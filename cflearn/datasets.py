"""Datasets: MovieLens releases (local folder, cache or verified download) and a synthetic generator."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ._errors import ConfigError, DataError, DownloadError, closest, first_line

__all__ = ["Dataset", "Release", "RELEASES", "movielens", "synthetic", "cache_dir"]

STD_COLUMNS = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
ML1M_OCCUPATIONS = ["other", "academic/educator", "artist", "clerical/admin", "college/grad student",
                    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
                    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist", "self-employed",
                    "technician/engineer", "tradesman/craftsman", "unemployed", "writer"]
"""ml-1m's occupation codes 0-20 (its README)."""
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western"]


@dataclasses.dataclass(eq=False)
class Dataset:
    """A ratings table with its column names and optional side tables.

    Pass it straight to :func:`cflearn.from_df`: the column names and item/user tables come along.

    Attributes:
        name: e.g. ``"ml-latest-small"`` or ``"synthetic"``.
        ratings: one row per rating.
        columns: ``{"user": ..., "item": ..., "rating": ..., "timestamp": ...}`` column names.
        items: item metadata (e.g. ``movieId, title, genres``) or ``None``.
        users: user attributes or ``None``.
        truth: for synthetic data, the planted parameters (biases, factors, genre/attribute links).
        path: folder the files were read from.
    """

    name: str
    ratings: pd.DataFrame
    columns: dict[str, str | None]
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    truth: dict[str, np.ndarray] | None = None
    path: Path | None = None

    def __repr__(self) -> str:
        r, c = self.ratings, self.columns
        side = ", ".join(n for n, t in (("items", self.items), ("users", self.users)) if t is not None) or "none"
        return (f"Dataset({self.name!r}: {len(r):,} ratings, {r[c['user']].nunique():,} users, "
                f"{r[c['item']].nunique():,} items; side tables: {side}"
                + (f"; from {self.path}" if self.path else "") + ")")


@dataclasses.dataclass(frozen=True)
class Release:
    """An official GroupLens release: where to get it and how to check it."""

    name: str
    url: str
    size: int
    sha256: str
    layout: Literal["latest", "100k", "1m"]
    rows: tuple[int, ...] = ()
    """Rating counts of the published versions (a local copy with another count is damaged)."""


# sizes and SHA-256 of the official zips (agreeing with TensorFlow Datasets' recorded checksums)
RELEASES: dict[str, Release] = {
    r.name: r
    for r in [
        Release("ml-latest-small", "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip", 978202,
                "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", "latest", (100_836, 100_004)),
        Release("ml-100k", "https://files.grouplens.org/datasets/movielens/ml-100k.zip", 4924029,
                "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", "100k", (100_000,)),
        Release("ml-1m", "https://files.grouplens.org/datasets/movielens/ml-1m.zip", 5917549,
                "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", "1m", (1_000_209,)),
    ]
}
_MARKER = {"latest": "ratings.csv", "100k": "u.data", "1m": "ratings.dat"}


def cache_dir() -> Path:
    """``$CFLEARN_CACHE``, else ``$XDG_CACHE_HOME/cflearn``, else ``~/.cache/cflearn``."""
    if os.environ.get("CFLEARN_CACHE"):
        return Path(os.environ["CFLEARN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cflearn"


def _find(root: Path, rel: Release) -> Path | None:
    for cand in (root / rel.name, root):
        if (cand / _MARKER[rel.layout]).is_file():
            return cand
    return None


def movielens(name: str = "ml-latest-small", path: str | Path | None = None, *, download: bool = True,
              timeout: float = 30.0) -> Dataset:
    """Load a MovieLens release: ratings, plus titles and genres of the movies.

    Looks for the unzipped release folder in ``path``, then ``$CFLEARN_DATA``, then the cache
    (:func:`cache_dir`); each may hold the folder itself or a parent of it. Otherwise downloads the
    official zip, checks its size and SHA-256, and unpacks it into the cache atomically.

    Args:
        name: ``"ml-latest-small"``, ``"ml-100k"`` or ``"ml-1m"``.
        path: folder to look in first; if given and the data is not there, that is an error.
        download: allow the download.
        timeout: network timeout in seconds.

    Returns:
        Dataset: ``ratings`` with columns ``userId, movieId, rating, timestamp`` for every release,
        and ``items`` with ``movieId, title, genres`` (genres joined by ``|``), plus ``tags`` (each
        movie's distinct tags, lower case, joined by ``|``) on ml-latest-small and ``release_date``
        on ml-100k. ml-100k and ml-1m also give ``users``: ``userId, age, gender, occupation,
        zip`` (ml-1m's age is its bucket's lower bound: 1, 18, 25, 35, 45, 50, 56).

    Raises:
        ConfigError: unknown release name.
        DataError: not found where ``path`` says.
        DownloadError: offline, or the download failed its size/checksum/zip checks.
    """
    if name not in RELEASES:
        raise ConfigError(f"unknown MovieLens release {name!r}{closest(name, RELEASES)}; "
                          f"choose one of {', '.join(RELEASES)}")
    rel = RELEASES[name]
    if path is not None:
        folder = _find(Path(path), rel)
        if folder is None:
            raise DataError(f"no {name} in {path} (looked for {_MARKER[rel.layout]} there and in {name}/)")
        return _read(folder, rel)
    roots = [Path(p) for p in os.environ.get("CFLEARN_DATA", "").split(os.pathsep) if p] + [cache_dir()]
    for root in roots:
        folder = _find(root, rel)
        if folder is not None:
            return _read(folder, rel)
    if not download:
        raise DataError(f"{name} not found in {', '.join(map(str, roots))} and download=False")
    return _read(fetch(rel, cache_dir(), timeout=timeout), rel)


def fetch(rel: Release, dest: Path, *, timeout: float = 30.0) -> Path:
    """Download ``rel`` into ``dest``, verify it, unpack it atomically; return the release folder."""
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp_zip = tempfile.mkstemp(prefix=f".{rel.name}.", suffix=".zip.part", dir=dest)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{rel.name}.", dir=dest))
    try:
        digest, size = hashlib.sha256(), 0
        try:
            with urllib.request.urlopen(rel.url, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
                while chunk := resp.read(1 << 16):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                    if size > rel.size:
                        break
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(f"could not download {rel.name} from {rel.url} ({reason}); offline? Put the unzipped "
                                f"{rel.name} folder in a directory and set CFLEARN_DATA to it, or pass path=") from None
        if size != rel.size:
            raise DownloadError(f"download of {rel.name} is {'truncated' if size < rel.size else 'too large'}: "
                                f"{size:,} bytes, expected {rel.size:,}; try again later")
        if digest.hexdigest() != rel.sha256:
            raise DownloadError(f"download of {rel.name} failed its SHA-256 check (corrupted or altered): got "
                                f"{digest.hexdigest()[:16]}..., expected {rel.sha256[:16]}...; nothing was kept")
        try:
            with zipfile.ZipFile(tmp_zip) as z:
                if z.testzip() is not None:
                    raise zipfile.BadZipFile("CRC error")
                z.extractall(tmp_dir)
        except zipfile.BadZipFile as e:
            raise DownloadError(f"the {rel.name} zip is damaged ({e}); nothing was kept") from None
        folder = _find(tmp_dir, rel)
        if folder is None:
            raise DownloadError(f"the {rel.name} zip does not hold {_MARKER[rel.layout]}; nothing was kept")
        final = dest / rel.name
        if final.exists():
            shutil.rmtree(final)
        os.replace(folder, final)
        return final
    finally:
        Path(tmp_zip).unlink(missing_ok=True)
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _read(folder: Path, rel: Release) -> Dataset:
    """The release in ``folder``, checked: a copy that does not parse, lacks columns or has another
    number of ratings than the published versions is a ``DataError`` (never a half-read table)."""
    damaged = (f"; delete {folder} (cflearn downloads a fresh copy) or point CFLEARN_DATA / path= at a complete "
               f"{rel.name} folder")
    try:
        ds = _parse(folder, rel)
    except (OSError, ValueError, KeyError, IndexError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as e:
        first = first_line(e)
        raise DataError(f"{folder} holds a damaged {rel.name} copy ({first}){damaged}") from None
    ratings = ds.ratings
    numeric = all(ratings[c].dtype.kind in "iuf" for c in ratings.columns)
    if not numeric or not np.isfinite(ratings.to_numpy(dtype=float)).all():
        raise DataError(f"{folder} holds a damaged {rel.name} copy (non-numeric or missing values){damaged}")
    if rel.rows and len(ratings) not in rel.rows:
        expected = " or ".join(f"{n:,}" for n in rel.rows)
        raise DataError(f"{folder} holds a damaged {rel.name} copy ({len(ratings):,} ratings, the release has "
                        f"{expected}){damaged}")
    return ds


def _parse(folder: Path, rel: Release) -> Dataset:
    cols = list(STD_COLUMNS.values())
    users = None
    if rel.layout == "latest":
        ratings = pd.read_csv(folder / "ratings.csv")
        items = pd.read_csv(folder / "movies.csv") if (folder / "movies.csv").is_file() else None
        if items is not None and (folder / "tags.csv").is_file():
            items = items.merge(_tags(pd.read_csv(folder / "tags.csv")), on="movieId", how="left")
    elif rel.layout == "100k":
        ratings = pd.read_csv(folder / "u.data", sep="\t", header=None, names=cols)
        items = None
        if (folder / "u.item").is_file():
            raw = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1")
            flags = raw.iloc[:, 5:5 + len(ML100K_GENRES)].to_numpy(dtype=bool)
            genres = ["|".join(g for g, f in zip(ML100K_GENRES, row) if f) or "(no genres listed)" for row in flags]
            items = pd.DataFrame({"movieId": raw[0], "title": raw[1], "genres": genres,
                                  "release_date": pd.to_datetime(raw[2], format="%d-%b-%Y", errors="coerce")})
        if (folder / "u.user").is_file():
            users = pd.read_csv(folder / "u.user", sep="|", header=None, encoding="latin-1", dtype={4: str},
                                names=["userId", "age", "gender", "occupation", "zip"])
    else:
        ratings = pd.read_csv(folder / "ratings.dat", sep="::", header=None, names=cols, engine="python")
        items = None
        if (folder / "movies.dat").is_file():
            items = pd.read_csv(folder / "movies.dat", sep="::", header=None, names=["movieId", "title", "genres"],
                                engine="python", encoding="latin-1")
        if (folder / "users.dat").is_file():
            users = pd.read_csv(folder / "users.dat", sep="::", header=None, engine="python", encoding="latin-1",
                                names=["userId", "gender", "age", "occupation", "zip"], dtype={"zip": str})
            users["occupation"] = users["occupation"].map(dict(enumerate(ML1M_OCCUPATIONS))).fillna("other")
    return Dataset(rel.name, ratings[cols], dict(STD_COLUMNS), items=items, users=users, path=folder)


def _tags(tags: pd.DataFrame) -> pd.DataFrame:
    """Each movie's distinct tags (lower case, ``|`` between them), as a multi-valued ``tags`` column."""
    text = tags["tag"].astype(str).str.strip().str.lower().str.replace("|", "/", regex=False)
    per = pd.DataFrame({"movieId": tags["movieId"], "tag": text})
    per = per[per["tag"] != ""].drop_duplicates()
    return per.groupby("movieId")["tag"].agg(lambda t: "|".join(sorted(t))).rename("tags").reset_index()


def synthetic(
    n_users: int = 300,
    n_items: int = 200,
    *,
    n_factors: int = 4,
    density: float = 0.1,
    scale: tuple[float, float] = (1.0, 5.0),
    step: float | None = 0.5,
    noise: float = 0.3,
    n_genres: int = 6,
    popularity: float = 0.8,
    id_type: Literal["int", "str"] = "int",
    implicit: bool = False,
    taste: float = 3.0,
    seed: int = 0,
) -> Dataset:
    """A seeded MovieLens-like table with planted structure whose answer is known.

    Ratings are ``mean + user bias + item bias + <user taste, item factors> + noise``, rescaled to
    ``scale`` and rounded to ``step``. Item factors are driven by planted genres and user tastes by
    a planted user ``group``, so side features carry signal. Items are drawn with power-law
    popularity (``popularity`` is the exponent; 0 = uniform), users with power-law activity.

    Args:
        n_users: number of users.
        n_items: number of items.
        n_factors: rank of the planted tastes.
        density: fraction of (user, item) pairs rated (0 < density <= 1).
        scale: lowest and highest rating, e.g. ``(1, 5)``, ``(1, 10)``, ``(0, 1)``.
        step: rating granularity (``0.5`` for half stars, ``1`` for binary on (0, 1)); ``None`` keeps
            continuous values.
        noise: standard deviation of the noise, in units of a 1-5 scale.
        n_genres: number of planted genres.
        popularity: power-law exponent of item popularity.
        id_type: ``"int"`` IDs (1, 2, ...) or ``"str"`` IDs (``"u1"``, ``"i1"``, ...).
        implicit: interactions instead of ratings: no rating column, and a drawn (user, item)
            pair is kept with probability ``sigmoid(taste * z)`` where ``z`` is the user's
            standardised affinity for the item, so what users interact with follows their tastes.
        taste: strength of that preference (0: interactions follow popularity only).
        seed: same seed, same table.

    Returns:
        Dataset with ``ratings`` (user, item, rating, timestamp), ``items`` (item, genres),
        ``users`` (user, group) and ``truth`` (the planted parameters, indexed by ID order).
    """
    if not 0 < density <= 1:
        raise ConfigError(f"density must be in (0, 1], got {density}")
    if n_users < 1 or n_items < 1 or n_factors < 1 or n_genres < 1:
        raise ConfigError("n_users, n_items, n_factors and n_genres must be at least 1")
    lo, hi = map(float, scale)
    if not lo < hi:
        raise ConfigError(f"scale must be (low, high) with low < high, got {scale}")
    rng = np.random.default_rng(seed)
    k = n_factors
    genre_vecs = rng.normal(0, 1, (n_genres, k))
    item_genre = rng.integers(0, n_genres, n_items)
    second = np.where(rng.random(n_items) < 0.3, rng.integers(0, n_genres, n_items), -1)
    item_factors = genre_vecs[item_genre] + np.where(second[:, None] >= 0, 0.5 * genre_vecs[second], 0)
    item_factors = (item_factors + rng.normal(0, 0.4, (n_items, k))) / np.sqrt(k)
    n_groups = 3
    group_vecs = rng.normal(0, 1, (n_groups, k))
    user_group = rng.integers(0, n_groups, n_users)
    user_factors = (group_vecs[user_group] + rng.normal(0, 0.6, (n_users, k))) / np.sqrt(k)
    user_bias, item_bias = rng.normal(0, 0.35, n_users), rng.normal(0, 0.45, n_items)

    n_obs = max(1, int(round(density * n_users * n_items)))
    pop = (np.arange(1, n_items + 1) ** -popularity)[rng.permutation(n_items)]
    act = (np.arange(1, n_users + 1) ** -0.5)[rng.permutation(n_users)]
    seen = np.zeros(0, dtype=np.int64)
    aff_sd = float(np.sqrt((user_factors**2).sum(1).mean() * (item_factors**2).sum(1).mean() / k)) or 1.0
    rounds = 10_000 if implicit else 50 if density < 0.5 else 0
    for _ in range(rounds):  # weighted draws (dense tables of ratings are drawn uniformly)
        m = (min(4_000_000, 3 * (n_obs - len(seen))) if implicit else 2 * (n_obs - len(seen))) + 16
        pairs = rng.choice(n_users, m, p=act / act.sum()) * n_items + rng.choice(n_items, m, p=pop / pop.sum())
        if implicit:  # keep a pair with a probability that grows with the user's affinity for the item
            aff = np.einsum("ij,ij->i", user_factors[pairs // n_items], item_factors[pairs % n_items]) / aff_sd
            pairs = pairs[rng.random(m) < 1 / (1 + np.exp(-taste * aff))]
        seen = pd.unique(np.concatenate([seen, pairs]))
        if len(seen) >= n_obs:
            break
    if len(seen) < n_obs:
        rest = np.setdiff1d(np.arange(n_users * n_items), seen)
        seen = np.concatenate([seen, rng.permutation(rest)[: n_obs - len(seen)]])
    seen = seen[:n_obs]
    u, i = seen // n_items, seen % n_items
    z = user_bias[u] + item_bias[i] + (user_factors[u] * item_factors[i]).sum(1) + rng.normal(0, noise, n_obs)
    # z is centred near 0 with most mass in [-2.6, 1.4]: a 1-5 scale with a mean near 3.6, like MovieLens
    ratings = lo + (hi - lo) * (z + 2.6) / 4.0
    if step:
        ratings = lo + np.round((ratings - lo) / step) * step
    ratings = np.clip(ratings, lo, hi)
    ts = 1_000_000_000 + np.sort(rng.integers(0, 10**8, n_obs))[rng.permutation(n_obs)]
    uid = (np.array([f"u{j + 1}" for j in range(n_users)], dtype=object) if id_type == "str"
           else np.arange(1, n_users + 1))
    iid = (np.array([f"i{j + 1}" for j in range(n_items)], dtype=object) if id_type == "str"
           else np.arange(1, n_items + 1))
    genre_names = np.array([f"genre{g}" for g in range(n_genres)], dtype=object)
    genres = [genre_names[g] + (f"|{genre_names[s]}" if s >= 0 and s != g else "") for g, s in zip(item_genre, second)]
    table = pd.DataFrame({"user": uid[u], "item": iid[i], "rating": ratings, "timestamp": ts})
    return Dataset(
        "synthetic-implicit" if implicit else "synthetic",
        table.drop(columns=["rating"]) if implicit else table,
        {"user": "user", "item": "item", "rating": None if implicit else "rating", "timestamp": "timestamp"},
        items=pd.DataFrame({"item": iid, "genres": genres}),
        users=pd.DataFrame({"user": uid, "group": [f"g{g}" for g in user_group]}),
        truth={"user_ids": uid, "item_ids": iid, "user_bias": user_bias, "item_bias": item_bias,
               "user_factors": user_factors, "item_factors": item_factors, "item_genre": item_genre,
               "user_group": user_group},
    )
