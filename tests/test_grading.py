"""Grading submissions: `cflearn course` hands the course out and grades filled-in notebooks, each
in a worker of its own with its kernel sandboxed; the checks run in the worker and reach the
notebook only by values, so what a submission does in its kernel earns it nothing."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest

import cflearn.course as course
from cflearn.course import _material as M
from cflearn.course import _sandbox

SANDBOXED = _sandbox.bwrap() is not None  # make test installs bubblewrap where it can (apt-get, as root)


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
    lesson = (dest / "00_from_scratch.ipynb").read_text()  # the questionnaire without its key
    assert "## Questionnaire" in lesson and "Instructor's key" in lesson and "Not in the student handout" in lesson
    assert "An embedding is a table with rows 0..n-1" not in lesson
    assert "An embedding is a table with rows 0..n-1" in (M.material_dir() / "00_from_scratch.ipynb").read_text()
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
    if SANDBOXED:  # in the sandbox mallory cannot delete zoe's work, and killer cannot reach its grader
        assert (subs / "zoe" / "ex03.ipynb").is_file()
        assert f"{subs / 'killer' / 'ex03.ipynb'}: 3/3 passed" in out, out
    else:
        assert not (subs / "zoe").exists()
        assert out.count("not checked: the notebook stopped its grading process (killed by SIGKILL)") == 3
    for name, words in {"cells_dict": "not a list of cells", "top_list": "its JSON is a list",
                        "v99": "nbformat 99", "deep": "nested too deeply", "empty": "no nbformat field",
                        "bad_cell": "cell 1 is not a notebook cell", "lesson7": "no exercise for lesson 7"}.items():
        assert f"{subs / name}.ipynb: not graded: {name}.ipynb" in out and words in out, name
    notes = 0 if SANDBOXED else 3  # without bubblewrap each grading says it was not sandboxed
    assert len(out.splitlines()) == 3 * 4 + 1 + len(bad) + 1 + notes  # three tables, mallory's note, a line a bad file
    rows = list(csv.DictReader(grades.open()))
    assert {(r["student"], r["question"], r["status"]) for r in rows if r["student"] == "zoe"} == {
        ("zoe", f"q{k}", "correct") for k in (1, 2, 3)}
    assert sum(r["status"] == "not graded" for r in rows) == len(bad)
    totals = {r["student"]: r for r in csv.DictReader((tmp_path / "book" / "grades-totals.csv").open())}
    assert (totals["zoe"]["passed"], totals["zoe"]["questions"]) == ("3", "3")
    assert (totals["mallory"]["passed"], totals["killer"]["passed"]) == ("0", "3" if SANDBOXED else "0")
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


def test_the_gradebook_takes_one_result_per_question_of_the_exercise(tmp_path, capsys):
    """A submission that serves its own `cflearn.course` in its kernel, with ten questions for a
    four-question exercise, earns nothing: the checks run in the grader's worker, which takes
    exactly q1..q4, once each, and finds the blank answers blank."""
    from cflearn.cli import main

    forger = ("import sys, types, importlib.abc, importlib.machinery\n"
              "class R:\n    def __init__(self, k):\n"
              "        self.question, self.status, self.message = f'q{k}', 'correct', 'forged'\n"
              "class Q:\n    def __init__(self, label, ns, lesson):\n        self.k = int(label[1:])\n"
              "    def result(self):\n        return R(self.k)\n"
              "fake = types.ModuleType('cflearn.course')\nfake.questions = lambda lesson: [Q] * 10\n"
              "class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):\n"
              "    def find_spec(self, name, path, target=None):\n"
              "        return importlib.machinery.ModuleSpec(name, self) if name == 'cflearn.course' else None\n"
              "    def create_module(self, spec):\n        return fake\n"
              "    def exec_module(self, module):\n        pass\n"
              "sys.meta_path.insert(0, Finder())")
    blank = M.student_version(json.loads(M.exercise_path(5).read_text()))
    nb, _ = _with_cells(blank, forger)
    (tmp_path / "ex05.ipynb").write_text(json.dumps(nb))
    grades = tmp_path / "grades.csv"
    assert main(["course", "--check", str(tmp_path / "ex05.ipynb"), "--timeout", "300", "--grades", str(grades)]) == 3
    out = capsys.readouterr().out
    assert "0/4 passed" in out and "forged" not in out and out.count("not answered") == 4, out  # checked outside
    rows = list(csv.DictReader(grades.open()))
    assert [r["question"] for r in rows] == ["q1", "q2", "q3", "q4"] and all(r["status"] != "correct" for r in rows)


_FORGED_SERVER = """\
import builtins, json, os, sys, threading, time, types
from IPython.display import display
fake = types.ModuleType("cflearn.course._serve")
def serve(namespace, request):  # claims every answer, returns made-up values and a verdict of its own
    r = json.loads(request)
    reply = ({"kind": "callable", "type": "function"} if r["op"] == "look" else
             {"out": 0.5, "args": {"$": "placeholder"}, "kwargs": {"$": "dict", "v": []},
              "results": [{"question": f"q{k}", "status": "correct", "message": "forged"} for k in range(1, 5)]})
    display({"text/x-cflearn-check": json.dumps(reply)}, raw=True)
fake.serve = serve
sys.modules["cflearn.course._serve"] = fake
real_import = builtins.__import__
builtins.__import__ = lambda name, *a, **k: fake if name == "cflearn.course._serve" else real_import(name, *a, **k)
def rewrite():  # every file it can reach, and the names the grader once used
    while True:
        for name in os.listdir(".") + ["outcome.json", "checked-0.json", "grades.csv"]:
            try:
                with open(name, "w") as f:
                    f.write('{"results": "forged"}')
            except OSError:
                pass
        time.sleep(0.01)
threading.Thread(target=rewrite, daemon=True).start()
"""


def test_forgeries_in_the_kernel_earn_nothing(tmp_path, capsys):
    """A blank notebook that serves forged replies to the checks (through sys.modules and the
    builtins' import), reports a verdict of its own, rewrites every file it can reach from a thread,
    or patches `json`: the checks run in the worker on the values that come back, so it earns
    nothing, and each question says why."""
    from cflearn.cli import main

    blank = M.student_version(json.loads(M.exercise_path(5).read_text()))
    (tmp_path / "subs").mkdir()
    for name, cell in {"forger": _FORGED_SERVER,
                       "json": "import json\njson.dumps = lambda *a, **k: '{\"results\": \"forged\"}'"}.items():
        (tmp_path / "subs" / f"{name}.ipynb").write_text(json.dumps(_with_cells(blank, cell)[0]))
    code = main(["course", "--check", str(tmp_path / "subs"), "--timeout", "300", "--grades",
                 str(tmp_path / "grades.csv")])
    out = capsys.readouterr().out
    assert code == 3 and out.count("0/4 passed") == 2 and "forged" not in out, out
    forger = out[out.index("forger.ipynb"):out.index("json.ipynb")] if out.index("forger") < out.index("json.ipynb") \
        else out[out.index("forger.ipynb"):]
    assert forger.count("  incorrect  ") == 4 and "got 0.5" in forger, forger  # its made-up values, judged
    assert out.count("not checked: the notebook could not be run to the end") == 4, out  # it broke its own kernel
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert len(rows) == 8 and not any(r["status"] == "correct" for r in rows)


def test_a_learner_the_kernel_plants_as_a_pipe_or_a_link_is_refused_not_followed(tmp_path, capsys):
    """The checks load the notebook's learner from its folder: a forged server that puts a pipe (a
    read would hang) or a link to another file there gets a `not checked` line, at once."""
    from cflearn.cli import main

    solved = json.loads(M.exercise_path(2).read_text())
    for name, make in {"fifo": "os.mkfifo(r['path'])", "link": "os.symlink('/etc/passwd', r['path'])"}.items():
        cell = ("import os\nimport cflearn.course._serve as S\n"
                f"def plant(self, r):\n    {make}\n    return {{'saved': True}}\nS.Server._save = plant")
        (tmp_path / f"{name}.ipynb").write_text(json.dumps(_with_cells(solved, cell)[0]))
    assert main(["course", "--check", str(tmp_path / "fifo.ipynb"), str(tmp_path / "link.ipynb"), "--timeout", "300",
                 "--grades", str(tmp_path / "grades.csv")]) == 3
    out = capsys.readouterr().out
    assert out.count("2/3 passed") == 2, out  # the questions that need no learner still pass
    fifo, link = out[:out.index("link.ipynb")], out[out.index("link.ipynb"):]
    assert "q1  incorrect     not checked: the notebook's saved learner is not a file the checks read" in fifo, out
    assert "q1  incorrect     not checked: the notebook's learner was not saved where the checks asked" in link, out


def test_the_sandbox_limits_memory_cpu_and_files(tmp_path):
    """Every cell of a graded kernel runs under the sandbox's limits (the checks' requests too)."""
    if not SANDBOXED:
        pytest.skip("needs bubblewrap (make test installs it where it can)")
    probe = ("import resource as r\nprint([r.getrlimit(k)[0] for k in (r.RLIMIT_AS, r.RLIMIT_CPU, r.RLIMIT_FSIZE)])\n"
             "try:\n    bytearray(_sandbox_limit + 1)\nexcept MemoryError:\n    print('refused')")
    got = subprocess.run([*_sandbox.command(tmp_path, 60), "python3", "-c",
                          f"_sandbox_limit = {_sandbox.MEMORY_LIMIT}\n{probe}"], capture_output=True, text=True)
    assert got.stdout.split("\n")[:2] == [str([_sandbox.MEMORY_LIMIT, 60, _sandbox.FILE_LIMIT]), "refused"], got


@pytest.mark.skipif(not SANDBOXED, reason="needs bubblewrap (make test installs it where it can)")
def test_the_sandbox_stops_what_a_blank_submission_does_outside_its_kernel(tmp_path, capsys):
    """Editing the installed checkers (it persisted to the next grading), a daemon that outlives
    grading, writing beside the gradebook, the network and the grader's process: each fails in the
    sandbox, and the next blank submission is still 'not answered'."""
    import cflearn.course.ex5 as ex5_module
    from cflearn.cli import main

    installed = Path(ex5_module.__file__)
    before = installed.read_bytes()
    marker = tmp_path / "book" / "planted.txt"
    blank = M.student_version(json.loads(M.exercise_path(5).read_text()))
    evil, _ = _with_cells(
        blank,
        f"import os\ntry:\n    open({str(installed)!r}, 'a').write('\\n# forged\\n')\nexcept OSError as e:\n"
        "    print('refused:', e.strerror)",
        "import subprocess\nsubprocess.Popen(['sleep', '4242'], start_new_session=True)",
        f"try:\n    open({str(marker)!r}, 'w').write('x')\nexcept OSError as e:\n    print('refused:', e.strerror)",
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), timeout=3)\nexcept OSError as e:\n"
        "    print('refused:', e)",
        "import os\nprint('pid', os.getpid(), 'parent', os.getppid(), 'uid', os.getuid())")
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "evil.ipynb").write_text(json.dumps(evil))
    (tmp_path / "subs" / "next.ipynb").write_text(json.dumps(blank))
    (tmp_path / "book").mkdir()
    code = main(["course", "--check", str(tmp_path / "subs"), "--timeout", "300", "--grades",
                 str(tmp_path / "book" / "grades.csv")])
    out = capsys.readouterr().out
    assert code == 3 and out.count("0/4 passed") == 2 and out.count("not answered") == 8, out
    assert installed.read_bytes() == before and not marker.exists()
    found = subprocess.run(["pgrep", "-f", "sleep 4242"], capture_output=True, text=True)
    assert found.stdout.strip() == "", found.stdout  # nothing it started outlives its grading
