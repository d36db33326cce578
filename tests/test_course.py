"""The course's self-checking exercises: every question's reference answer passes, its typical
wrong answers fail with their specific message, the placeholder says "not answered yet", and
nothing a student writes makes a checker raise."""

from __future__ import annotations

import csv
import functools
import json
import re
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
    readme = (dest / "README.md").read_text()  # the syllabus: every lesson and exercise, links that resolve
    links = re.findall(r"\]\(([^)]+\.ipynb)\)", readme)
    assert sorted(links) == sorted([*lessons, *(f"exercises/{e}" for e in exercises)])
    assert all((dest / link).is_file() for link in links) and "q1.check()" in readme
    handed = (dest / "exercises" / "ex03_embeddings_and_models.ipynb").read_text()
    assert "BEGIN SOLUTION" not in handed and "____" in handed
    from cflearn.cli import main  # the quick error paths in this process

    assert main(["course", str(dest)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds files" in err
    (dest / "my notes.md").write_text("mine")
    (dest / "README.md").write_text("my own syllabus")
    assert main(["course", str(dest), "--force"]) == 0  # a handout cflearn wrote: its notebooks are replaced
    assert (dest / "my notes.md").read_text() == "mine"
    assert (dest / "README.md").read_text() == "my own syllabus"  # a README it did not write is kept
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
                           str(M.exercise_path(3)), cwd=tmp_path)
    assert code == 3, out  # not every submission passed
    assert "ex03_embeddings_and_models.ipynb: 0/3 passed" in out and "not answered" in out
    assert f"{M.exercise_path(3)}: 3/3 passed" in out
    broken = tmp_path / "broken.ipynb"  # a submission whose setup cell was deleted: reported, not fatal
    broken.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "print(1)", "metadata": {},
                                             "outputs": [], "execution_count": None}], "metadata": {},
                                  "nbformat": 4, "nbformat_minor": 5}))
    code, out, _ = run_cli("course", "--check", str(broken), cwd=tmp_path)
    assert code == 3 and "broken.ipynb: not graded" in out and "setup cell" in out
    assert main(["course"]) == 1
    err = capsys.readouterr().err
    assert "either DIR" in err and err.count("\n") == 1


def _with_cells(notebook, *sources):
    """``notebook`` with code cells inserted in order right after its setup cell, and the number
    (1-based) of the first of them."""
    nb = json.loads(json.dumps(notebook))
    at = next(k for k, c in enumerate(nb["cells"]) if "cflearn.course.exercise(" in "".join(c["source"])) + 1
    nb["cells"][at:at] = [{"cell_type": "code", "source": src, "metadata": {}, "outputs": [], "execution_count": None}
                          for src in sources]
    return nb, at + 1


def test_grading_is_isolated_from_what_a_submission_does(tmp_path, capsys):
    """A notebook that forges its grades, loops, floods its output, deletes another submission or
    kills its grader costs its own points only; malformed files are one line each; stderr is empty."""
    from cflearn.cli import main

    solved = json.loads(M.exercise_path(3).read_text())
    blank = M.student_version(solved)
    subs = tmp_path / "subs"
    mallory, first = _with_cells(
        blank, "import cflearn.course._question as Q\n"
               "Q.Question.result = lambda self: Q.Result(self.label, 'correct', 'forged')\n"
               "import cflearn.course.ex3 as E\nE.QUESTIONS[0].verify = lambda self: 'forged'",
        "while True:\n    print('x' * 5000)",
        f"import shutil\nshutil.rmtree({str(subs / 'zoe')!r})",
        "import io, sys\nsys.stdout = io.StringIO()\nprint = open = enumerate = None")
    for student, nb in {
        # a blank notebook whose cells patch the checkers, flood, delete a classmate's work and break print
        "mallory": mallory,
        "zoe": solved,
        "killer": _with_cells(solved, "import os\nos.kill(os.getppid(), 9)")[0],
    }.items():
        (subs / student).mkdir(parents=True)
        (subs / student / "ex03.ipynb").write_text(json.dumps(nb))
    bad = {"cells_dict.ipynb": json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": {"a": 1}}),
           "top_list.ipynb": "[1, 2]", "v99.ipynb": json.dumps({"nbformat": 99, "cells": []}),
           "deep.ipynb": "[" * 100_000 + "]" * 100_000, "empty.ipynb": "{}", "bad_cell.ipynb": json.dumps(
               {"nbformat": 4, "cells": [{"cell_type": "code", "source": 3}]}),
           "lesson7.ipynb": json.dumps({"nbformat": 4, "cells": [
               {"cell_type": "code", "source": "q1, = cflearn.course.exercise(7, globals())"}]})}
    for name, text in bad.items():
        (subs / name).write_text(text)
    grades = tmp_path / "book" / "grades.csv"
    grades.parent.mkdir()
    # a generous cell limit: on a busy machine a setup cell (importing torch) must never be the one stopped
    code = main(["course", "--check", str(subs), "--timeout", "300", "--max-output", "0.05", "--grades", str(grades)])
    out, err = capsys.readouterr()
    assert code == 3 and err == "", err
    assert f"{subs / 'mallory' / 'ex03.ipynb'}: 0/3 passed" in out and "forged" not in out
    assert out.count("not answered") == 3  # the checkers ran afresh: the blank answers are blank
    assert f"cell {first + 1} printed over 0.05 MB; its output was cut" in out
    assert f"{subs / 'zoe' / 'ex03.ipynb'}: 3/3 passed" in out, out  # read before mallory deleted it
    assert not (subs / "zoe").exists()
    assert out.count("not checked: the notebook stopped its grading process (killed by SIGKILL)") == 3
    for name, words in {"cells_dict": "not a list of cells", "top_list": "its JSON is a list",
                        "v99": "nbformat 99", "deep": "nested too deeply", "empty": "no nbformat field",
                        "bad_cell": "cell 1 is not a notebook cell", "lesson7": "no exercise for lesson 7"}.items():
        assert f"{subs / name}.ipynb: not graded: {name}.ipynb" in out and words in out, name
    assert len(out.splitlines()) == 3 * 4 + 1 + len(bad) + 1  # three tables, mallory's note, a line a bad file
    rows = list(csv.DictReader(grades.open()))
    assert {(r["student"], r["question"], r["status"]) for r in rows if r["student"] == "zoe"} == {
        ("zoe", f"q{k}", "correct") for k in (1, 2, 3)}
    assert sum(r["status"] == "not graded" for r in rows) == len(bad)
    totals = {r["student"]: r for r in csv.DictReader((tmp_path / "book" / "grades-totals.csv").open())}
    assert (totals["zoe"]["passed"], totals["zoe"]["questions"]) == ("3", "3")
    assert (totals["mallory"]["passed"], totals["killer"]["passed"]) == ("0", "0")
    assert totals["subs"]["not_graded"] == str(len(bad))
    # a cell that loops is stopped at --timeout, and the notebook goes on (whatever else a busy machine stopped)
    looper, at = _with_cells(blank, "while True:\n    pass")
    (tmp_path / "loop.ipynb").write_text(json.dumps(looper))
    assert main(["course", "--check", str(tmp_path / "loop.ipynb"), "--timeout", "10", "--grades", str(grades)]) == 3
    out = capsys.readouterr().out
    assert f"cell {at} ran past 10 s and was stopped" in out and out.count("\n  q") == 3, out
    # the gradebook is rewritten on the next grading, but a file that is not a gradebook is never overwritten
    (tmp_path / "notes.csv").write_text("my notes\n")
    assert main(["course", "--check", str(subs / "empty.ipynb"), "--grades", str(tmp_path / "notes.csv")]) == 1
    assert "not a cflearn gradebook" in capsys.readouterr().err
    assert (tmp_path / "notes.csv").read_text() == "my notes\n"
