"""What every command shares: one-line errors and warnings, SIGTERM as Ctrl-C, terminal-safe text."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

__all__ = ["shown", "cli_words", "coerce_id", "positive_int", "version", "terminated", "cflearn_warnings"]


def positive_int(text: str) -> int:
    """An argument that must be a whole number of at least 1 (argparse reports the rest)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def version() -> str:
    from .. import __version__

    return __version__


class terminated:
    """While a command runs in the main thread, SIGTERM interrupts it as Ctrl-C does (the run's temporary
    folder is removed, one line is printed); the list it yields is non-empty once SIGTERM came."""

    def __enter__(self) -> list[int]:
        import signal
        import threading

        self.got: list[int] = []
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            def stop(signum: int, _frame: object) -> None:
                self.got.append(signum)
                if len(self.got) == 1:  # once: a second SIGTERM (torchrun's and the launcher watch's) must
                    raise KeyboardInterrupt  # not break into the clean-up the first one started

            self._previous = signal.signal(signal.SIGTERM, stop)
        return self.got

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class cflearn_warnings:
    """While a command runs, cflearn's warnings print as one escaped line (``cflearn: warning: ...``) and
    other libraries' warnings (torch's deprecations) are not shown: stderr carries cflearn's words only."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("default")
        warnings.showwarning = self._show

    def __exit__(self, *exc: Any) -> None:
        self._catch.__exit__(*exc)

    @staticmethod
    def _show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        from .._errors import CflearnWarning

        if issubclass(category, CflearnWarning):
            print(f"cflearn: warning: {shown(message)}", file=sys.stderr)


def shown(value: Any) -> str:
    """Text safe for a terminal (:func:`cflearn._errors.printable`)."""
    from .._errors import printable

    return printable(value)


_OPTIONS = ("preset", "epochs", "valid_pct", "seed", "sep", "encoding", "decimal", "duplicates", "weight",
            "threshold", "item_features", "user_features", "item_id", "item_title", "user_id", "device")


_OPTION = re.compile(r"\b(" + "|".join(_OPTIONS) + r")=('([^']*)'|\(([^)]*)\)|[^\s,;)]+)")


def cli_words(message: str) -> str:
    """An API error in the command line's words: ``preset='rank'`` -> ``--preset rank``, ``implicit=True``
    -> ``--implicit``, ``rating_range=(1, 5)`` -> ``--rating-range 1 5``."""
    def flag(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(3) if m.group(3) is not None else m.group(2)
        flag_name = {"item_id": "items-id", "item_title": "items-title", "user_id": "users-id"}.get(
            name, name.replace("_", "-"))
        return f"--{flag_name} {value}"

    message = re.sub(r"cflearn\.from_df\(\.\.\., (user|item)s=\.\.\., \1_features=\[\.\.\.\]\)",
                     r"--\1s FILE --\1-features COLS", message)  # the API's way to declare side features
    message = _OPTION.sub(flag, message)
    message = re.sub(r"\brating_range=\(([^,)]+),\s*([^)]+)\)", r"--rating-range \1 \2", message)
    return message.replace("implicit=True", "--implicit")


def coerce_id(text: str, vocab: Any) -> Any:
    """A command-line ID as the vocabulary's type (``'31'`` -> ``31`` when IDs are integers)."""
    if text in vocab or vocab.ids.dtype.kind not in "iu":
        return text
    try:
        return int(text)
    except ValueError:
        return text  # predict/recommend say that the IDs are ints
