"""The gradebook ``cflearn course --check`` writes: a row per student, notebook and question
(``grades.csv``) and a row per student (``grades-totals.csv``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from .._errors import ConfigError, printable
from .._io import atomic_write_bytes
from ._question import Result

__all__ = ["GradeBook", "HEADER", "TOTALS_HEADER"]

HEADER = ("student", "notebook", "question", "status", "message")
TOTALS_HEADER = ("student", "passed", "questions", "not_graded")


class GradeBook:
    """Rows collected while grading, written at the end (atomically; never over a file that is
    not a gradebook).

    Args:
        path: where ``grades.csv`` goes; the totals go beside it as ``<stem>-totals.csv``.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.totals_path = path, path.with_name(f"{path.stem}-totals.csv")
        for target, header in ((self.path, HEADER), (self.totals_path, TOTALS_HEADER)):
            _writable(target, header)
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.totals: dict[str, list[int]] = {}

    def add(self, student: str, notebook: Path, results: Sequence[Result] | None, note: str = "") -> None:
        """Record one notebook: its results, or ``None`` and why it was not graded."""
        total = self.totals.setdefault(student, [0, 0, 0])
        if results is None:
            self.rows.append((student, str(notebook), "", "not graded", note))
            total[2] += 1
            return
        for r in results:
            self.rows.append((student, str(notebook), r.question, r.status, r.message))
            total[0] += r.passed
            total[1] += 1

    def write(self) -> tuple[Path, Path]:
        """Write both files; returns their paths."""
        atomic_write_bytes(self.path, _csv(HEADER, self.rows))
        atomic_write_bytes(self.totals_path, _csv(TOTALS_HEADER, [(s, *t) for s, t in sorted(self.totals.items())]))
        return self.path, self.totals_path


def _writable(target: Path, header: Sequence[str]) -> None:
    if target.is_dir():
        raise ConfigError(f"--grades: {printable(target)} is a folder; give a file name (e.g. grades.csv)")
    if target.exists():
        with open(target, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
        if first != ",".join(header):
            raise ConfigError(f"--grades: {printable(target)} exists and is not a cflearn gradebook; "
                              "choose another file (it is never overwritten)")


def _cell(value: object) -> object:
    """A value safe in a spreadsheet: text that would start a formula gets a leading quote."""
    return f"'{value}" if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue().encode("utf-8")
