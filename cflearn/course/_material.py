"""The course's notebooks: where they are, the student version of an exercise (solutions
replaced by ``____``), handing them out, and grading a filled-in notebook."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from .._errors import ConfigError, DataError
from .._io import atomic_write_bytes

__all__ = ["material_dir", "exercise_path", "lesson_version", "KEY", "syllabus", "answer_cells", "solutions",
           "strip_solutions", "setup_code", "student_version", "copy_course", "BEGIN", "END",
           "HANDOUT_MARKER"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_ASSIGN = re.compile(r"^(\s*)([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=(?!=)")
HANDOUT_MARKER = ".cflearn-course"
"""The file a handout written by :func:`copy_course` holds (``--force`` replaces notebooks only there)."""


def material_dir() -> Path:
    """The folder of the lessons (``*.ipynb``) with the exercises' sources in ``exercises/``: the
    checkout's ``notebooks/`` (an editable install) or ``share/cflearn/notebooks`` under the
    environment's prefix or the user's base (a wheel's data files)."""
    import site

    for folder in (Path(__file__).resolve().parents[2] / "notebooks",
                   *(Path(base) / "share/cflearn/notebooks" for base in (sys.prefix, site.USER_BASE) if base)):
        if (folder / "exercises").is_dir():
            return folder
    raise ConfigError("the course notebooks are not installed here; install cflearn from its repository "
                      "(pip install -e .) or a wheel built from it")


def _stub(lines: list[str]) -> list[str]:
    """The student's lines for a solution block: ``name = ____`` for each assignment and
    ``return ____`` for a return at the block's indentation; ``____`` when there is neither."""
    code = [ln for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not code:
        return []
    indent = min(len(ln) - len(ln.lstrip()) for ln in code)
    pad = " " * indent
    out = []
    for ln in code:
        if len(ln) - len(ln.lstrip()) != indent:
            continue
        m = _ASSIGN.match(ln)
        if m and not ln.lstrip().startswith(("class ", "def ")):
            out.append(f"{pad}{m.group(2)} = ____\n")
        elif ln.lstrip().startswith("return"):
            out.append(f"{pad}return ____\n")
    return out or [f"{pad}____\n"]


def strip_solutions(source: str) -> str:
    """A code cell's source with each solution block replaced by its stub (see :func:`student_version`)."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    block: list[str] | None = None
    for ln in lines:
        if ln.strip() == BEGIN:
            if block is not None:
                raise DataError(f"nested {BEGIN!r}")
            block = []
        elif ln.strip() == END:
            if block is None:
                raise DataError(f"{END!r} without {BEGIN!r}")
            out += _stub(block)
            block = None
        elif block is not None:
            block.append(ln)
        else:
            out.append(ln)
    if block is not None:
        raise DataError(f"{BEGIN!r} without {END!r}")
    return "".join(out).rstrip("\n")


def _text(cell: dict[str, Any]) -> str:
    """A notebook cell's source as one string (nbformat stores a string or a list of lines)."""
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def student_version(notebook: dict[str, Any]) -> dict[str, Any]:
    """A copy of an exercise notebook (nbformat 4 JSON) with every solution block replaced by
    ``____`` stubs and outputs cleared: the notebook a student gets."""
    nb = json.loads(json.dumps(notebook))
    for cell in nb["cells"]:
        src = _text(cell)
        if cell["cell_type"] == "code":
            cell["source"] = strip_solutions(src)
            cell["outputs"], cell["execution_count"] = [], None
        elif BEGIN in src:
            raise DataError(f"solution markers belong in code cells: {src[:60]!r}")
    return nb


KEY = "## Instructor's key"
"""The heading of a lesson's markdown cell of questionnaire answers, blanked in the handout."""
_KEY_NOTE = (f"{KEY}\n\nNot in the student handout: your instructor has the answers (the lessons in "
             "`notebooks/` of cflearn's repository keep them).")


def lesson_version(notebook: dict[str, Any]) -> dict[str, Any]:
    """A copy of a lesson notebook as a student gets it: the instructor's key to its questionnaire
    (the markdown cell that starts with ``## Instructor's key``) replaced by a note."""
    nb = json.loads(json.dumps(notebook))
    for cell in nb["cells"]:
        src = _text(cell)
        if cell["cell_type"] == "markdown" and src.lstrip().startswith(KEY):
            cell["source"] = _KEY_NOTE
    return nb


def exercise_path(lesson: int) -> Path:
    """The source (with solutions) of lesson ``lesson``'s exercise notebook."""
    found = sorted((material_dir() / "exercises").glob(f"ex{lesson:02d}_*.ipynb"))
    if not found:
        raise ConfigError(f"no exercise notebook for lesson {lesson} in {material_dir() / 'exercises'}")
    return found[0]


def _code_cells(notebook: dict[str, Any]) -> list[str]:
    return [_text(c) for c in notebook["cells"] if c["cell_type"] == "code"]


def answer_cells(lesson: int) -> dict[str, list[str]]:
    """Each question's answer cells (``{"q1": [source, ...]}``, with the solution markers): the
    cells holding solution blocks between the previous question's ``check()`` and its own."""
    out: dict[str, list[str]] = {}
    pending: list[str] = []
    for src in _code_cells(_read(exercise_path(lesson))):
        if BEGIN in src:
            pending.append(src)
        m = re.search(r"\b(q\d+)\.check\(\)", src)
        if m and pending:
            out[m.group(1)], pending = pending, []
    return out


def solutions(lesson: int) -> dict[str, str]:
    """Each question's reference solution (``{"q1": code, ...}``): its answer cells without the markers."""
    return {q: "\n\n".join("".join(ln for ln in src.splitlines(keepends=True) if ln.strip() not in (BEGIN, END))
                            for src in cells) for q, cells in answer_cells(lesson).items()}


def setup_code(lesson: int) -> str:
    """The exercise notebook's setup cell (the one that binds the questions)."""
    for src in _code_cells(_read(exercise_path(lesson))):
        if "cflearn.course.exercise(" in src:
            return src
    raise DataError(f"{exercise_path(lesson).name} has no setup cell calling cflearn.course.exercise(...)")


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read notebook {path}: {e}") from None


_README_TITLE = "# Collaborative filtering with cflearn: the course"


def _title(notebook: Path) -> str:
    """A notebook's first heading, without the ``#``."""
    for cell in _read(notebook)["cells"]:
        src = _text(cell)
        for line in src.splitlines():
            if cell["cell_type"] == "markdown" and line.startswith("# "):
                return line[2:].strip()
    return notebook.stem


def syllabus(src: Path | None = None) -> str:
    """The handout's README: the lessons in order with their exercises, how to open the notebooks
    and how to check answers."""
    src = material_dir() if src is None else src
    exercises = {p.name[2:4]: p.name for p in (src / "exercises").glob("ex*.ipynb")}
    rows = [f"| {k} | [{_title(p)}]({p.name}) | "
            + (f"[{exercises[p.name[:2]]}](exercises/{exercises[p.name[:2]]})" if p.name[:2] in exercises else "-")
            + " |" for k, p in enumerate(sorted(src.glob("*.ipynb")))]
    return "\n".join([
        _README_TITLE, "",
        "Six lessons, from a model written by hand in PyTorch to fastai's `collab_learner` and cflearn's",
        "presets, content features and cold start. Take them in order; each says at the top what you will",
        "learn and how long it takes, and each runs top to bottom on a laptop CPU.", "",
        "| # | lesson | exercise |", "|---|---|---|", *rows, "",
        "## Opening the notebooks", "",
        "```bash",
        'pip install "cflearn[course]"     # cflearn with Jupyter Lab (once)',
        "jupyter lab                      # in this folder; start with the first lesson",
        "```", "",
        "The lessons read MovieLens ml-latest-small, which `cflearn course` put in cflearn's cache",
        "(or `$CFLEARN_DATA`); without it they download it once.", "",
        "## Checking your answers", "",
        "Each exercise starts with a setup cell that binds its questions `q1`, `q2`, ... Replace each",
        "`____` with your answer, run the cell, then:", "",
        "- `q1.check()`: correct, or what is wrong;",
        "- `q1.hint()`: a nudge; `q1.hint(2)`: a closer hint;",
        "- `q1.solution()`: the answer (try first!).", "",
        "Each lesson ends with a questionnaire: answer it in your own words before the exercise.", "",
        "Your instructor grades a filled-in exercise with `cflearn course --check NOTEBOOK`, which runs it",
        "top to bottom in a fresh kernel: make sure it runs that way before you hand it in.", ""])


def copy_course(dest: str | Path, *, force: bool = False) -> tuple[list[Path], str]:
    """Hand out the course: the lessons, the student version of every exercise and a README (the
    syllabus, :func:`syllabus`) into ``dest``, and MovieLens ml-latest-small into cflearn's cache,
    where the notebooks find it.

    Args:
        dest: a new or empty folder. ``force`` writes into a folder with files: in a handout that
            ``cflearn course`` wrote (it holds :data:`HANDOUT_MARKER`) the course's notebooks are
            replaced and other files kept; elsewhere only when no notebook of the course is there.
            The course's own sources (the checkout's ``notebooks/``) are never a destination.

    Returns:
        The notebooks written, and a line saying where the data is (or why it is missing).
    """
    from .._errors import CflearnError, printable
    from ..datasets import cache_dir, movielens

    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{printable(dest)} is a file; give a folder for the course")
    src = material_dir()
    there, source = dest.resolve(), src.resolve()
    if there == source or source in there.parents or there in source.parents:
        raise ConfigError(f"{printable(dest)} holds the course's own sources ({printable(src)}), which a handout "
                          "would overwrite with the students' copies; choose a new folder")
    names = [p.relative_to(src) for p in (*sorted(src.glob("*.ipynb")), *sorted((src / "exercises").glob("*.ipynb")))]
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise ConfigError(f"{printable(dest)} already holds files; choose an empty folder or pass --force")
        clash = [str(n) for n in names if (dest / n).exists()]
        if clash and not (dest / HANDOUT_MARKER).is_file():
            raise ConfigError(f"{printable(dest)} holds {printable(clash[0])}, which cflearn did not hand out there "
                              f"(no {HANDOUT_MARKER}); --force replaces only a handout's notebooks: "
                              "choose a new folder")
    written = []
    atomic_write_bytes(dest / HANDOUT_MARKER, b'{"written_by": "cflearn course"}\n')
    for lesson in sorted(src.glob("*.ipynb")):
        written.append(dest / lesson.name)
        text = json.dumps(lesson_version(_read(lesson)), indent=1, ensure_ascii=False) + "\n"
        atomic_write_bytes(written[-1], text.encode())
    for ex in sorted((src / "exercises").glob("*.ipynb")):
        written.append(dest / "exercises" / ex.name)
        text = json.dumps(student_version(_read(ex)), indent=1, ensure_ascii=False) + "\n"
        atomic_write_bytes(written[-1], text.encode())
    readme = dest / "README.md"
    if not readme.exists() or readme.read_text(encoding="utf-8", errors="replace").startswith(_README_TITLE):
        atomic_write_bytes(readme, syllabus(src).encode())  # never over a README of the user's own
    cached = cache_dir() / "ml-latest-small"
    try:
        found = movielens("ml-latest-small")  # from $CFLEARN_DATA, the cache, or a verified download
    except CflearnError as e:
        return written, (f"MovieLens ml-latest-small is not here yet ({e}); the lessons download it on first use, "
                         "or set CFLEARN_DATA to a folder that holds it")
    if found.path is not None and not cached.exists():  # copied aside, then renamed: never a half copy
        part = cached.with_name(f".{cached.name}.part-{os.getpid()}")
        shutil.copytree(found.path, part)
        try:
            os.replace(part, cached)
        except OSError:  # another process put it there first
            shutil.rmtree(part, ignore_errors=True)
    return written, f"MovieLens ml-latest-small is in {cached if cached.exists() else found.path}"
