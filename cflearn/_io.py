"""Atomic file writes: a temporary file in the same folder, fsync, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json", "json_default"]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the whole new one.

    Raises:
        WriteError: ``path`` is a folder, or the file cannot be written (its message names why);
            an ``OSError`` too, so callers that handle those keep working.
    """
    from ._errors import WriteError, printable

    path = Path(path)
    if path.is_dir():
        raise WriteError(f"{printable(path)} is a folder; give a file name (e.g. {printable(path / 'file')})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_error(path: Path, e: OSError) -> OSError:
    """A :class:`cflearn.WriteError` saying why ``path`` could not be written (keeping the OS error's fields)."""
    from ._errors import WriteError, printable

    err = WriteError(f"cannot write {printable(path)}: {e.strerror or e}")
    err.errno, err.strerror, err.filename = e.errno, e.strerror, str(path)
    return err


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=json_default) + "\n").encode())


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars, tuples and paths."""
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
