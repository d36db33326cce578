"""``cflearn course``: hand out the course's notebooks, or grade filled-in exercises."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import positive_int, shown

NAME = "course"
SUMMARY = "hand out the course's notebooks, or grade filled-in exercises"
ORDER = 70


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``course`` command's arguments."""
    crs = sub.add_parser("course", help="hand out the course's notebooks, or grade filled-in exercises",
                         description="`cflearn course DIR` writes the lessons and the exercises (solutions replaced "
                                     "by ____) into DIR and puts MovieLens ml-latest-small where the notebooks find "
                                     "it. `cflearn course --check NOTEBOOK ...` runs each filled-in exercise "
                                     "notebook (or every notebook in a folder) and prints a score table.")
    crs.add_argument("dest", nargs="?", metavar="DIR", help="folder for a student's copy of the course")
    crs.add_argument("--check", nargs="+", metavar="NOTEBOOK", help="grade these exercise notebooks (or folders)")
    crs.add_argument("--force", action="store_true", help="write into DIR even if it already holds files")
    crs.add_argument("--timeout", type=positive_int, default=600,
                     help="seconds a notebook cell may run (default: 600); a cell that runs longer is stopped and "
                          "the rest of the notebook still runs")
    crs.add_argument("--time-limit", type=positive_int, default=1800,
                     help="seconds a whole notebook may run (default: 1800); cells past it are not run, and the "
                          "questions answered before it are still checked")
    crs.add_argument("--max-output", type=float, default=5.0, metavar="MB",
                     help="megabytes of output a cell may print (default: 5); beyond it the output is cut and the "
                          "cell stopped")
    crs.add_argument("--grades", default="grades.csv", metavar="FILE",
                     help="the gradebook to write when grading (default: grades.csv here): a row per student, "
                          "notebook and question; per-student totals go to FILE's name + '-totals.csv'")
    return crs


def run(args: argparse.Namespace) -> int:
    """Run ``cflearn course``; the exit code."""
    from .._errors import ConfigError, DataError
    from ..course import copy_course, grade
    from ..course._grade import read_submission
    from ..course._gradebook import GradeBook

    if (args.dest is None) == (args.check is None):
        raise ConfigError("give either DIR (hand out the course) or --check NOTEBOOK ... (grade), not both")
    if args.dest is not None:
        written, data = copy_course(args.dest, force=args.force)
        lessons = sum(1 for p in written if p.parent.name != "exercises")
        print(f"wrote {lessons} lessons and {len(written) - lessons} exercises to {shown(args.dest)}; its README.md "
              f"is the syllabus; start with {shown(written[0].name)} (jupyter lab {shown(args.dest)})")
        print(shown(data))
        return 0
    if not 0 < args.max_output < float("inf"):
        raise ConfigError(f"--max-output takes a number of megabytes above 0, got {args.max_output}")
    found = [found for given in map(Path, args.check) for found in _submissions(given)]
    if not found:
        raise ConfigError(f"no notebooks in {', '.join(map(shown, args.check))}")
    read: list[tuple[Path, dict[str, Any] | None, str]] = []
    for path in found:  # every submission read before any runs: none can delete another
        try:
            read.append((path, read_submission(path), ""))
        except DataError as e:
            read.append((path, None, str(e)))
    book = GradeBook(Path(args.grades))
    failed = 0
    students = _students([(path, notebook) for path, notebook, _ in read])
    for (path, notebook, error), student in zip(read, students):
        try:
            if notebook is None:
                raise DataError(error)
            graded = grade(path, notebook=notebook, timeout=args.timeout, time_limit=args.time_limit,
                           max_output=int(args.max_output * 2**20))
        except (DataError, OSError) as e:  # one broken submission does not stop the grading of the others
            failed += 1
            print(f"{shown(path)}: not graded: {shown(e)}")
            book.add(student, path, None, str(e))
            continue
        results = graded.results
        passed = sum(r.passed for r in results)
        failed += passed < len(results)
        print(f"{shown(path)}: {passed}/{len(results)} passed")
        width = max(len(r.question) for r in results) if results else 2
        for r in results:
            print(f"  {r.question:<{width}}  {'passed' if r.passed else r.status:<12}  {shown(r.message)}")
        for note in graded.notes:
            print(f"  note: {shown(note)}")
        book.add(student, path, results, "; ".join(graded.notes))
    grades, totals = book.write()
    print(f"wrote {shown(grades)} and {shown(totals)}")
    return 0 if not failed else 3


def _submissions(given: Path) -> list[Path]:
    """The notebooks to grade: ``given`` itself, or the notebooks in that folder and in its
    sub-folders (one level down: ``submissions/alice/ex03.ipynb``)."""
    from .._errors import ConfigError

    if given.is_file():
        return [given]
    if not given.is_dir():
        raise ConfigError(f"no notebook {shown(given)}")
    own = [p for p in sorted(given.glob("*.ipynb")) if not p.name.startswith(".")]
    return own + [p for d in sorted(given.iterdir()) if d.is_dir() and not d.name.startswith(".")
                  for p in sorted(d.glob("*.ipynb")) if not p.name.startswith(".")]


def _students(notebooks: list[tuple[Path, dict[str, Any] | None]]) -> list[str]:
    """Each notebook's student: the name of the folder holding it (``alice/ex03.ipynb``), or the
    file's own name when its folder holds two answers to the same exercise (``alice.ipynb``,
    ``bob.ipynb``)."""
    from .._errors import DataError
    from ..course._grade import lesson_of

    def lesson(notebook: dict[str, Any] | None) -> int | None:
        try:
            return lesson_of(notebook, "") if notebook is not None else None
        except DataError:
            return None

    lessons = [lesson(nb) for _, nb in notebooks]
    shared: set[Path] = set()
    for folder in {p.parent.resolve() for p, _ in notebooks}:
        here = [les for (p, _), les in zip(notebooks, lessons) if p.parent.resolve() == folder and les is not None]
        if len(here) > len(set(here)):
            shared.add(folder)
    return [p.stem if p.parent.resolve() in shared else p.parent.resolve().name
            for p, _ in notebooks]
