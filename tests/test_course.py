"""The course's self-checking exercises: every question's reference answer passes, its typical
wrong answers fail with their specific message, the placeholder says "not answered yet", and
nothing a student writes makes a checker raise."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

import cflearn
import cflearn.course as course
from cflearn.course import _material as M

CASES = [(lesson, f"q{k}") for lesson in course.EXERCISES for k in range(1, len(course.questions(lesson)) + 1)]


@functools.cache
def _setup(lesson: int) -> dict[str, Any]:
    ns: dict[str, Any] = {}
    exec(M.setup_code(lesson), ns)  # the notebook's own setup cell (it may train a model: once per lesson)
    return ns


def _namespace(lesson: int) -> dict[str, Any]:
    """A fresh notebook namespace after the setup cell, its questions bound to it."""
    ns = dict(_setup(lesson))
    for k, q in enumerate(course.exercise(lesson, ns), start=1):
        ns[f"q{k}"] = q
    return ns


def _answer(ns: dict[str, Any], cells: list[str]) -> None:
    for src in cells:
        exec(src, ns)


def _result(ns: dict[str, Any], label: str) -> course.Result:
    return ns[label].result()


@pytest.mark.parametrize("lesson,label", CASES, ids=[f"ex{a}-{b}" for a, b in CASES])
def test_question_feedback(lesson, label, capsys):
    cells = M.answer_cells(lesson)[label]
    ns = _namespace(lesson)
    assert _result(ns, label).status == "not answered"  # nothing run yet
    _answer(ns, [M.strip_solutions(src) for src in cells])  # the student's cell as handed out
    unanswered = _result(ns, label)
    assert unanswered.status == "not answered" and "____" in unanswered.message
    _answer(ns, cells)
    right = _result(ns, label)
    assert right.status == "correct", right.message
    cls = course.questions(lesson)[int(label[1:]) - 1]
    assert len(cls.wrong) >= 2, f"{cls.__name__}: at least two typical wrong answers"
    for old, new, words in cls.wrong:
        ns = _namespace(lesson)
        wrong_cells = [src.replace(old, new) for src in cells] if old else [new]
        assert not old or any(old in src for src in cells), f"{cls.__name__}: {old!r} is not in the solution"
        _answer(ns, wrong_cells)
        got = _result(ns, label)
        assert got.status == "incorrect" and words in got.message, (old, new, got)
    ns[label].check()
    ns[label].hint()
    ns[label].solution()
    out = capsys.readouterr().out
    assert f"{label} - Incorrect" in out and f"{label} - Hint: {cls.hint_text}" in out
    assert M.solutions(lesson)[label].strip().splitlines()[0] in out and "### BEGIN" not in out


def test_a_student_bug_is_a_message_not_a_traceback():
    ns = _namespace(0)
    exec("class EmbeddingDot:\n    def __init__(self, *a):\n        raise KeyError('oops')\n", ns)
    got = ns["q2"].result()
    assert got.status == "incorrect" and "raised KeyError" in got.message
    exec("y_range = 'high'", ns)
    assert "pair of numbers" in ns["q3"].result().message


def test_stub_rules():
    src = ("x = 1\n### BEGIN SOLUTION\na, b = f(1,\n    2)\nprint(a)\nreturn a + b\n### END SOLUTION\n"
           "    ### BEGIN SOLUTION\n    g(2)\n    ### END SOLUTION\n")
    assert M.strip_solutions(src) == "x = 1\na, b = ____\nreturn ____\n    ____"
    with pytest.raises(cflearn.DataError, match="without"):
        M.strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_student_version_has_no_solutions_and_no_outputs():
    src = json.loads(M.exercise_path(0).read_text())
    student = M.student_version(src)
    text = json.dumps(student)
    assert "BEGIN SOLUTION" not in text and "uniform_(0, 0.05)" not in text and "____" in text
    assert len(student["cells"]) == len(src["cells"]) and "BEGIN SOLUTION" in json.dumps(src)


def test_unknown_lesson_is_a_config_error():
    with pytest.raises(cflearn.ConfigError, match="exercises exist for lessons 0, 2, 3, 4, 5"):
        course.exercise(1, {})


def test_cli_hands_out_the_course_and_grades_submissions(tmp_path, ml_path, capsys):
    from tests.test_cli import run_cli

    dest = tmp_path / "student"
    code, out, err = run_cli("course", str(dest), env={"CFLEARN_DATA": str(ml_path)})
    assert code == 0, err
    lessons = sorted(p.name for p in dest.glob("*.ipynb"))
    exercises = sorted(p.name for p in (dest / "exercises").glob("*.ipynb"))
    assert "00_from_scratch.ipynb" in lessons and len(exercises) == len(course.EXERCISES)
    assert f"wrote {len(lessons)} lessons and {len(exercises)} exercises" in out and "ml-latest-small is in" in out
    handed = (dest / "exercises" / "ex03_embeddings_and_models.ipynb").read_text()
    assert "BEGIN SOLUTION" not in handed and "____" in handed
    from cflearn.cli import main  # the quick error paths in this process

    assert main(["course", str(dest)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds files" in err
    (dest / "my notes.md").write_text("mine")
    assert main(["course", str(dest), "--force"]) == 0  # a handout cflearn wrote: its notebooks are replaced
    assert (dest / "my notes.md").read_text() == "mine"
    # --force never overwrites the course's own sources, nor notebooks that cflearn did not hand out
    sources = {p: p.read_bytes() for p in M.material_dir().rglob("*.ipynb")}
    other = tmp_path / "other"
    other.mkdir()
    (other / "00_from_scratch.ipynb").write_text("my own notebook")
    capsys.readouterr()
    for target, why in [(M.material_dir(), "own sources"), (M.material_dir() / "exercises", "own sources"),
                        (M.material_dir().parent, "own sources"), (other, "did not hand out")]:
        assert main(["course", str(target), "--force"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err, err
    assert all(p.read_bytes() == b for p, b in sources.items())
    assert (other / "00_from_scratch.ipynb").read_text() == "my own notebook"
    # a student's untouched notebook and the instructor's solutions, graded in one call
    code, out, _ = run_cli("course", "--check", str(dest / "exercises" / "ex03_embeddings_and_models.ipynb"),
                           str(M.exercise_path(3)))
    assert code == 3, out  # not every submission passed
    assert "ex03_embeddings_and_models.ipynb: 0/3 passed" in out and "not answered" in out
    assert f"{M.exercise_path(3)}: 3/3 passed" in out
    broken = tmp_path / "broken.ipynb"  # a submission whose setup cell was deleted: reported, not fatal
    broken.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "print(1)", "metadata": {},
                                             "outputs": [], "execution_count": None}], "metadata": {},
                                  "nbformat": 4, "nbformat_minor": 5}))
    code, out, _ = run_cli("course", "--check", str(broken))
    assert code == 3 and "broken.ipynb: not graded" in out and "setup cell" in out
    assert main(["course"]) == 1
    err = capsys.readouterr().err
    assert "either DIR" in err and err.count("\n") == 1
