"""Reading a ratings file: its real format (whatever its name says), then column types by one rule.

The format is recognised from the first bytes: Parquet, Arrow/Feather, JSON, Excel, gzip / bz2 / xz
/ zstd / zip archives of a delimited file, UTF-16 or UTF-8 text (with or without a BOM).

Delimited text is read as text, then each column is typed by :func:`typed`: ``int64`` when every
value is a canonical integer (``7``, ``-3``; not ``007``, ``+7`` or ``7.0``), ``float64`` when every
value is a number and none is written like a code (``007``, ``+7``), text otherwise. So ``"007"``
and ``"7"`` stay two IDs, ``NA``, ``None`` and ``null`` are IDs like any other, and only an empty
field is missing. Large files go through pyarrow's CSV reader (compact Arrow strings, several
threads); only the columns asked for are read.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import zipfile
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd

from .._errors import ConfigError, DataError, first_line
from .._memory import release_arrow_memory

__all__ = ["read_ratings", "sniff_format", "typed", "CANONICAL_INT"]

CANONICAL_INT = r"-?(?:0|[1-9][0-9]*)"
"""The integers a text column may hold to be read as ``int64`` (no leading zeros or ``+``)."""
_NUMBER = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:inf|nan)"
_COMPRESSED = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_MAGIC = [(b"PAR1", "parquet"), (b"ARROW1", "arrow"), (b"FEA1", "feather"), (b"\x1f\x8b", "gzip"), (b"BZh", "bz2"),
          (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"PK\x03\x04", "zip"),
          (b"\xd0\xcf\x11\xe0", "xls"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"),
          (b"\xef\xbb\xbf", "utf-8-sig")]
_NAMES = {"parquet": "a Parquet file", "arrow": "an Arrow/Feather file", "feather": "an Arrow/Feather file",
          "gzip": "gzip-compressed", "bz2": "bz2-compressed", "xz": "xz-compressed", "zstd": "zstd-compressed",
          "zip": "a zip archive", "xlsx": "an Excel workbook (.xlsx)", "xls": "an old Excel workbook (.xls)",
          "json": "JSON", "binary": "not text (binary data)"}


def sniff_format(path: Path) -> str:
    """The file's real format from its first bytes: a key of ``_NAMES``, an encoding (``"utf-16"``,
    ``"utf-8-sig"``) or ``"text"``."""
    with open(path, "rb") as f:
        head = f.read(8192)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            if kind == "zip":
                try:
                    with zipfile.ZipFile(path) as z:
                        if any(n.startswith("xl/") for n in z.namelist()):
                            return "xlsx"
                        inner = _zipped_kind(z)
                        if inner is not None:
                            raise DataError(f"{path} is a zip holding {_NAMES[inner]}: unzip it and pass that file")
                except zipfile.BadZipFile:
                    return "binary"
            return kind
    if b"\x00" in head:
        return "binary"
    start = head.lstrip()
    if start[:1] == b"{" or (start[:1] == b"[" and start[1:].lstrip()[:1] in (b"{", b"[", b"]")):
        return "json"  # an object, or an array of records / rows (a header like "[user],[item]" is text)
    return "text"


def _zipped_kind(z: zipfile.ZipFile) -> str | None:
    """The binary format of a zip's single member (Parquet, Excel, ...), or ``None`` for text."""
    members = [n for n in z.namelist() if not n.endswith("/")]
    if len(members) != 1:
        return None
    with z.open(members[0]) as f:
        head = f.read(16)
    for magic, kind in _MAGIC:
        if head.startswith(magic) and kind in ("parquet", "arrow", "feather", "zip", "xls"):
            return "xlsx" if kind == "zip" else kind
    return None


def read_ratings(
    path: str | Path, *, sep: str | None = None, header: int | Literal["infer"] | None = "infer",
    columns: list[str] | None = None, decimal: str = ".", **read_kwargs: Any,
) -> pd.DataFrame:
    """Read a ratings table from a file, whatever its name says: delimited text (any separator,
    compressed or not), Parquet, Arrow/Feather, JSON or Excel. Never modifies it.

    Args:
        path: the file.
        sep: column separator of delimited text; ``None`` sniffs it (comma, tab, semicolon, pipe, spaces).
        header: row number of the header, or ``None`` when the file has none (columns are 0, 1, ...).
        columns: read only these columns (less memory on large files); ``None``: all.
        decimal: decimal mark of numbers in delimited text (``","`` for ``3,5``).
        **read_kwargs: passed on to :func:`pandas.read_csv` (e.g. ``encoding``).

    Raises:
        DataError: missing, empty, unreadable or garbled file (with what to do).
        ConfigError: unknown ``encoding`` or ``decimal``.
    """
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise DataError(f"{path} is not a regular file (a folder or a device); give a ratings file")
        raise DataError(f"ratings file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it needs a header line and one rating per line")
    if decimal not in (".", ","):
        raise ConfigError(f"decimal must be '.' or ',', got {decimal!r}")
    kind = sniff_format(path)
    if kind in ("parquet", "arrow", "feather", "json", "xlsx", "xls", "binary"):
        return _read_binary(path, kind, columns)
    if kind in ("utf-16", "utf-8-sig"):
        read_kwargs.setdefault("encoding", kind)
    if "encoding" in read_kwargs:
        import codecs

        try:
            codecs.lookup(str(read_kwargs["encoding"]))
        except LookupError:
            raise ConfigError(f"unknown encoding {read_kwargs['encoding']!r}; e.g. 'utf-8', 'latin-1' or "
                              "'utf-16'") from None
    compression = kind if kind in ("gzip", "bz2", "xz", "zstd", "zip") else None
    how = f" ({_NAMES[kind]})" if compression else ""
    encoding = str(read_kwargs.get("encoding", "utf-8"))
    if sep is None:
        sep = _sniff_sep(path, compression, encoding)
    if len(sep) == 1 and header == "infer":
        _check_fields(path, sep, compression, encoding, how)
    if columns is not None and not set(columns) <= set(_header(path, sep, header, compression, read_kwargs)):
        columns = None  # read every column: the caller names the missing one (and the closest name)
    frame = _read_text(path, sep, header, columns, compression, read_kwargs, how)
    if not isinstance(frame.index, pd.RangeIndex):
        extra = "; a decimal comma ('3,5') in a comma-separated file splits a number in two: use a decimal " \
                "point, or another separator" if sep == "," else ""
        raise DataError(f"{path}{how}: its rows have more fields than its header has names{extra}")
    out = {}
    for name in list(frame.columns):  # one column at a time: its text is freed once it is typed
        out[name] = typed(frame.pop(name), decimal)
    del frame
    release_arrow_memory()
    return pd.DataFrame(out)


def _read_text(path: Path, sep: str, header: int | Literal["infer"] | None, columns: list[str] | None,
               compression: str | None, read_kwargs: dict[str, Any], how: str) -> pd.DataFrame:
    opts: dict[str, Any] = {"sep": sep, "header": header, "dtype": str, "keep_default_na": False,
                            "na_values": [""], "compression": compression, **read_kwargs}
    if columns is not None:
        opts["usecols"] = columns
    if len(sep) > 1:
        opts.setdefault("engine", "python")  # a multi-character separator is a regex: say so (no ParserWarning)
    elif compression != "zip" and set(read_kwargs) <= {"encoding"}:
        try:  # pyarrow: compact strings, several threads; anything it refuses goes to pandas' own parser
            return pd.read_csv(path, **{**opts, "engine": "pyarrow"})
        except ImportError:
            pass
        except Exception:  # noqa: BLE001  (pandas' C parser below gives the precise message)
            opts.pop("usecols", None)  # with usecols it would drop the extra fields of a ragged row silently
    try:
        return pd.read_csv(path, **opts)
    except UnicodeDecodeError:
        raise DataError(f"{path}{how} is not UTF-8 text; pass encoding='latin-1' or "
                        "re-save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}{how} has no data; it needs a header line and one rating per line") from None
    except ImportError as e:
        raise DataError(f"{path} is {_NAMES.get(str(compression), 'compressed')}; reading it needs the "
                        f"{e.name} package (pip install {e.name}), or decompress it first") from None
    except Exception as e:  # pandas raises several types for a malformed table
        first = first_line(e)
        if "usecols" in first.lower() or "not in list" in first:
            raise DataError(f"{path}{how}: {first}") from None
        extra = ("; a decimal comma ('3,5') in a comma-separated file splits a number in two: use a decimal "
                 "point, or another separator" if sep == "," and "fields" in first else
                 "; check the separator (sep=..., CLI --sep)")
        raise DataError(f"could not parse {path}{how}: {first}{extra}") from None


def _header(path: Path, sep: str, header: int | Literal["infer"] | None, compression: str | None,
            read_kwargs: dict[str, Any]) -> list[Any]:
    """The column names (``0, 1, ...`` without a header); ``[]`` where even the header does not parse."""
    try:
        opts = {"engine": "python"} if len(sep) > 1 else {}
        head: pd.DataFrame = pd.read_csv(path, **{"sep": sep, "header": header, "nrows": 1, "dtype": str,
                                                  "compression": compression, **opts, **read_kwargs})
        return list(head.columns)
    except Exception:  # noqa: BLE001  (the full read reports it)
        return []


def _read_binary(path: Path, kind: str, columns: list[str] | None) -> pd.DataFrame:
    what = _NAMES[kind]
    if kind == "binary" or kind == "xls":
        raise DataError(f"{path} is {what}, not a ratings table; save it as CSV (or Parquet)")
    try:
        if kind == "parquet":
            return pd.read_parquet(path, columns=columns)
        if kind in ("arrow", "feather"):
            return pd.read_feather(path, columns=columns)
        if kind == "xlsx":
            frame = pd.read_excel(path)
        else:
            frame = _read_json(path)
    except ImportError as e:
        raise DataError(f"{path} is {what}; reading it needs the {e.name} package (pip install {e.name}), or save "
                        "it as CSV") from None
    except Exception as e:  # pyarrow, openpyxl and the JSON reader raise many types
        first = first_line(e)
        raise DataError(f"could not read {path} as {what}: {first}") from None
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        return frame if missing else frame[columns]  # from_df names a missing column
    return frame


def _read_json(path: Path) -> pd.DataFrame:
    with open(path, "rb") as f:
        first = f.read(1 << 16).lstrip()
    lines = first.startswith(b"{") and b"\n{" in first  # JSON Lines: one record per line
    frame = pd.read_json(path, lines=lines, dtype=False)
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise DataError(f"{path} is JSON but not a table: it needs a list of records (one object per rating)")
    return frame


def _open_text(path: Path, compression: str | None) -> IO[bytes]:
    if compression in _COMPRESSED:
        opener: Any = _COMPRESSED[compression]
        return opener(path, "rb")  # type: ignore[no-any-return]
    if compression == "zip":
        z = zipfile.ZipFile(path)
        names = [n for n in z.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise DataError(f"{path} is a zip archive of {len(names)} files; extract the ratings file first")
        return z.open(names[0])
    return open(path, "rb")


def _head(path: Path, compression: str | None, encoding: str) -> list[str]:
    """The first lines of the (decompressed) file, decoded leniently."""
    if compression == "zstd":
        return []  # no reader in the standard library (pandas reads the file)
    try:
        with _open_text(path, compression) as f:
            raw = f.read(64 * 1024)
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is {_NAMES.get(str(compression), 'compressed')} but damaged: {e}") from None
    try:
        text = raw.decode(encoding, errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    return text.lstrip("\ufeff").splitlines()[:200]


def _check_fields(path: Path, sep: str, compression: str | None, encoding: str, how: str) -> None:
    """Refuse a file whose first rows have more fields than its header (pandas would shift the columns,
    or drop the extra fields when only some columns are read)."""
    rows = [r for r in csv.reader(_head(path, compression, encoding)[:-1], delimiter=sep) if r]
    if len(rows) < 2:
        return
    width = len(rows[0])
    for n, row in enumerate(rows[1:], start=2):
        if len(row) > width:
            hint = ("; a decimal comma ('3,5') in a comma-separated file splits a number in two: use a decimal "
                    "point, or another separator" if sep == "," else "; check the separator (sep=..., CLI --sep)")
            raise DataError(f"{path}{how}: line {n} has {len(row)} fields but the header has {width} names{hint}")


def _sniff_sep(path: Path, compression: str | None = None, encoding: str = "utf-8") -> str:
    head = _head(path, compression, encoding)[:20]
    best, best_score = ",", 0
    for cand in (",", "\t", ";", "|"):
        counts = [line.count(cand) for line in head if line.strip()]
        if counts and min(counts) > 0 and len(set(counts)) == 1 and counts[0] > best_score:
            best, best_score = cand, counts[0]
    if best_score == 0 and head and len(head[0].split()) > 1:
        return r"\s+"
    return best


def typed(col: pd.Series, decimal: str = ".") -> pd.Series:
    """A text column typed by the module's rule: ``int64`` if every value is a canonical integer (Python
    ints beyond int64), ``float64`` if every value is a number and none looks like a code (``007``),
    else unchanged text. Empty = missing. Works on Arrow strings (pyarrow compute: no Python objects)."""
    if col.dtype.kind in "iufbmM":
        return col
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.chunked_array(pa.array(col.array, type=pa.string()))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return col  # not all strings (a JSON or Excel column of mixed objects): from_df checks the IDs
    if arr.null_count == len(arr):
        return col

    def every(pattern: str, text: Any = arr) -> bool:
        return bool(pc.all(pc.match_substring_regex(text, f"^(?:{pattern})$", ignore_case=True)).as_py())

    try:  # integers: Arrow parses them; canonical when printing them back gives the same text
        ints = pc.cast(arr, pa.int64())
        canonical = bool(pc.all(pc.equal(pc.binary_length(arr), pc.binary_length(pc.cast(ints, pa.string())))
                                ).as_py())
    except pa.ArrowInvalid:
        ints, canonical = None, False
    if ints is not None:
        if not canonical:
            return col  # integers written like codes ("007", "+7"): text
        if arr.null_count:
            return pd.Series(ints.to_numpy(zero_copy_only=False), index=col.index, name=col.name, dtype="float64")
        return pd.Series(ints.to_numpy(), index=col.index, name=col.name)
    if every(CANONICAL_INT):  # beyond int64: exact Python ints
        return pd.Series([None if v is None else int(v) for v in arr.to_pylist()], index=col.index, name=col.name,
                         dtype=object)
    numbers = pc.replace_substring(arr, ",", ".") if decimal == "," else arr
    try:
        values = pc.cast(numbers, pa.float64())
    except pa.ArrowInvalid:
        if not every(_NUMBER, numbers):
            return col
        values = pa.chunked_array([pa.array(pd.to_numeric(numbers.to_pandas(), errors="coerce"))])
    if bool(pc.any(pc.match_substring_regex(arr, r"^[-+]?0[0-9]|^\+")).as_py() or False):
        return col  # a number written like a code ("007", "+7") among them: text
    return pd.Series(values.to_numpy(zero_copy_only=False), index=col.index, name=col.name, dtype="float64")
