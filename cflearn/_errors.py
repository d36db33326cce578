"""The exceptions cflearn raises: one small hierarchy, one-line messages that say what to fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from types import FrameType

__all__ = [
    "caller_level",
    "first_line",
    "CflearnError",
    "DataError",
    "ColumnError",
    "UnknownIDError",
    "ConfigError",
    "TrainingError",
    "ModelFileError",
    "DownloadError",
    "WriteError",
    "closest",
    "closest_name",
    "check_count",
    "check_number",
    "printable",
    "CflearnWarning",
    "DataWarning",
    "ConfigWarning",
]


class CflearnError(Exception):
    """Base class of every error cflearn raises on purpose (catch this one).

    ``str(error)`` is always the one-line message it was raised with, even after a framework
    (fastai's callback loop) rewrites ``args`` to prepend where it happened.
    """

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DataError(CflearnError, ValueError):
    """The ratings table (or a file holding it) cannot be used as it is."""


class ColumnError(DataError, KeyError):
    """A column named by the caller is not in the table."""


class UnknownIDError(CflearnError, KeyError):
    """A user or item ID was not seen in training and the caller asked for strictness."""


class ConfigError(CflearnError, ValueError):
    """An option (preset name, hyper-parameter, path) is not valid."""


class TrainingError(CflearnError, RuntimeError):
    """Training went wrong in a way that needs the user's attention (e.g. a NaN loss)."""


class ModelFileError(CflearnError, ValueError):
    """A saved model file is missing, truncated, tampered with or from a newer format."""


class DownloadError(CflearnError, OSError):
    """A dataset could not be downloaded or did not pass its checks."""


class WriteError(CflearnError, OSError):
    """A file could not be written: a full disk, a read-only folder, a folder where a file should go.
    What was there before is untouched (cflearn writes atomically)."""


class CflearnWarning(UserWarning):
    """Base class of every warning cflearn gives (filter this one)."""


class DataWarning(CflearnWarning):
    """Something in the data was dropped, guessed or is unusual (e.g. a feature value never seen)."""


class ConfigWarning(CflearnWarning):
    """A setting will probably not do what was meant (e.g. side features a preset does not use)."""


def printable(value: object) -> str:
    """``str(value)`` safe for a terminal: control characters (ESC, newlines, ...) are escaped, so an ID,
    title or file name from the data can neither forge a line nor send terminal commands."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside cflearn: the user's own call,
    however deep in cflearn the warning is raised (a hard-coded depth pointed into cflearn when a path
    changed). Call it as ``warnings.warn(..., stacklevel=caller_level())``."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    wrappers = (os.path.join("torch", "utils", "_contextlib.py"), os.sep + "contextlib.py")  # decorators between

    def ours(f: FrameType) -> bool:
        name = os.path.abspath(f.f_code.co_filename)
        return name.startswith(package) or name.endswith(wrappers)

    frame, level = sys._getframe(1), 1  # the function that warns is level 1
    while frame.f_back is not None and ours(frame):
        frame, level = frame.f_back, level + 1
    return level


def check_count(name: str, value: object) -> int:
    """``value`` as an int if it is a positive integer, else a :class:`ConfigError` naming ``name``."""
    import numbers

    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or int(value) < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_seed(seed: object) -> int | None:
    """``seed`` if it is ``None`` or an integer in ``[0, 2**63)`` (what torch and numpy both take), else a
    :class:`ConfigError`."""
    import numbers

    if seed is None:
        return None
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= int(seed) < 2**63:
        raise ConfigError(f"seed must be an integer from 0 to 2**63 - 1 (or None), got {seed!r}")
    return int(seed)


def check_fraction(name: str, value: object) -> float:
    """``value`` as a float if it is a number in ``[0, 1)`` (a share, e.g. dropout), else a
    :class:`ConfigError` naming ``name``."""
    import numbers

    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= float(value) < 1:
        raise ConfigError(f"{name} must be in [0, 1) (a number), got {value!r}")
    return float(value)


def check_number(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite number ``>= 0`` (``> 0`` with ``positive``), else a
    :class:`ConfigError` naming ``name``."""
    import math
    import numbers

    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)) and (
        float(value) > 0 if positive else float(value) >= 0)
    if not ok:
        raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'} number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def closest_name(name: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` closest to ``name`` (the same name in another case first), or ``None``."""
    choices = [str(c) for c in choices]
    lower = {c.lower(): c for c in choices}
    if name.lower() in lower:
        return lower[name.lower()]
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return match[0] if match else None


def closest(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest of ``choices`` to ``name``, or ''."""
    match = closest_name(name, choices)
    return f" (did you mean '{match}'?)" if match is not None else ""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): pandas and pyarrow
    messages run over several lines, and cflearn's errors are one line."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
