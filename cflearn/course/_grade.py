"""Grading submissions in isolation.

Each submission is read and checked for shape here (a malformed file is one line), copied into a
private folder, and run by a worker process in a session of its own (``python -m
cflearn.course._grade``), which starts a Jupyter kernel (its own process group) in an empty
folder. The worker runs the student's cells with a time limit per cell and per notebook and a
limit on output. Then it checks the answers itself: the checks run in the worker, never in the
kernel, and reach the notebook only through requests that the kernel answers with values over a
narrow channel (:mod:`._wire`: JSON and arrays, never pickles): look an answer up, call it with
these inputs, build a model and run it with these weights, save the learner (loaded here without
unpickling). The worker hands the results back with a secret only it and the grader know. A worker
that dies, a kernel that hangs, or a notebook past its limits costs that submission's points and a
line saying why, never the grading of the others.

Where bubblewrap is installed, the kernel runs in a sandbox (:mod:`cflearn.course._sandbox`): the
file system read-only but for its run folder, no network, its own process namespace (nothing it
starts outlives it, and it cannot see or signal the worker or the grader), uid 65534, limits on
CPU, memory and file size. The course guide's "What grading protects against" says what is and is not
stopped.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import DataError
from .._io import atomic_write_bytes
from ._placeholder import is_placeholder
from ._question import Result

__all__ = ["Grading", "grade", "check_notebook", "read_submission", "lesson_of", "MAX_BYTES"]

MAX_BYTES = 50 * 2**20
"""The largest notebook file the grader reads."""
_CELL_TYPES = ("code", "markdown", "raw")
_SETUP = re.compile(r"cflearn\.course\.exercise\(\s*(\d+)")
_CHECK_SECONDS = 300  # checking the answers, beyond the notebook's own limit


@dataclass(frozen=True)
class Grading:
    """One submission's grading: a result per question and what happened on the way (``notes``:
    a cell stopped at its time limit, output cut at its limit, the worker killed...)."""

    results: list[Result]
    notes: list[str] = field(default_factory=list)


def read_submission(path: str | Path) -> dict[str, Any]:
    """A submission's notebook as a clean nbformat-4 dict (sources only: outputs, attachments and
    metadata dropped), or a one-line :class:`DataError` saying what is wrong with the file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise DataError(f"{path.name} is {path.stat().st_size / 2**20:.0f} MB, over the grader's "
                            f"{MAX_BYTES // 2**20} MB for a notebook; clear its outputs and submit again")
        nb = json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise DataError(f"{path.name} is JSON nested too deeply to be a notebook") from None
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read notebook {path.name}: {type(e).__name__}: {e}") from None
    if not isinstance(nb, dict):
        raise DataError(f"{path.name} is not a notebook: its JSON is a {type(nb).__name__}, not an object")
    if "nbformat" not in nb or "cells" not in nb:
        raise DataError(f"{path.name} is not a notebook: it has no {'nbformat' if 'nbformat' not in nb else 'cells'} "
                        "field")
    if nb.get("nbformat") != 4:
        raise DataError(f"{path.name} has nbformat {nb.get('nbformat')!r}; the grader reads nbformat 4 notebooks "
                        "(save it again from Jupyter)")
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise DataError(f"{path.name}: 'cells' is {type(cells).__name__}, not a list of cells")
    clean = []
    for k, cell in enumerate(cells, start=1):
        source = cell.get("source") if isinstance(cell, dict) else None
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(cell, dict) or cell.get("cell_type") not in _CELL_TYPES or not isinstance(source, str):
            raise DataError(f"{path.name}: cell {k} is not a notebook cell (a cell_type of {', '.join(_CELL_TYPES)} "
                            "and a source of text)")
        clean.append({"cell_type": cell["cell_type"], "id": f"cell-{k}", "metadata": {}, "source": source,
                      **({"outputs": [], "execution_count": None} if cell["cell_type"] == "code" else {})})
    return {"nbformat": 4, "nbformat_minor": 5, "cells": clean,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}


def lesson_of(notebook: dict[str, Any], name: str) -> int:
    """The lesson whose questions a notebook answers, from its setup cell
    (``cflearn.course.exercise(N, globals())``)."""
    for cell in notebook["cells"]:
        m = _SETUP.search(cell["source"]) if cell["cell_type"] == "code" else None
        if m:
            return int(m.group(1))
    raise DataError(f"{name} never binds its questions: its setup cell (cflearn.course.exercise(...)) is missing")


def grade(path: str | Path, *, timeout: int = 600, time_limit: int = 1800, max_output: int = 5 * 2**20,
          notebook: dict[str, Any] | None = None) -> Grading:
    """Run one submission in an isolated worker and check its answers.

    Args:
        path: the filled-in exercise notebook.
        notebook: its contents as :func:`read_submission` returned them, when read earlier (a
            grader reads every submission before running any, so none can delete another).
        timeout: seconds a cell may run; a cell that runs longer is interrupted and the rest runs.
        time_limit: seconds for the whole notebook; cells past it are not run, and the questions
            answered before it are still checked.
        max_output: bytes of output a cell may print; beyond it the output is dropped and the
            cell interrupted.

    Returns:
        A :class:`Grading`. A file that is not a notebook of an exercise raises a one-line
        :class:`DataError`; everything that happens while it runs is in the grading instead.
    """
    from importlib.util import find_spec

    from .._errors import CflearnError, ConfigError
    from ._exercises import questions

    if find_spec("nbclient") is None or find_spec("ipykernel") is None:
        raise ConfigError("grading runs notebooks with nbclient: pip install nbclient nbformat ipykernel")
    path = Path(path)
    notebook = read_submission(path) if notebook is None else notebook
    lesson = lesson_of(notebook, path.name)
    try:
        labels = [f"q{k}" for k in range(1, len(questions(lesson)) + 1)]
    except CflearnError as e:  # cflearn.course.exercise(7, ...): this submission's problem, not the grading's
        raise DataError(f"{path.name}: {e}") from None
    from ._sandbox import MISSING, bwrap

    sandboxed = bwrap() is not None
    graded = _run(path, notebook, lesson, labels, timeout, time_limit, max_output, sandboxed)
    return graded if sandboxed else Grading(graded.results, [*graded.notes, MISSING])


def check_notebook(path: str | Path, *, timeout: int = 600) -> list[Result]:
    """Run a filled-in exercise notebook top to bottom in an isolated worker and kernel (cells
    that fail, or run longer than ``timeout`` seconds and are stopped, do not stop it) and check
    every question from the worker (see :func:`grade`).

    Returns:
        One :class:`Result` per question (``question``, ``status``, ``message``).
    """
    return grade(path, timeout=timeout).results


def _run(path: Path, notebook: dict[str, Any], lesson: int, labels: list[str], timeout: int, time_limit: int,
         max_output: int, sandboxed: bool) -> Grading:
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="cflearn-grade-") as tmp:
        work = Path(tmp)
        (work / "run").mkdir()
        (work / "submission.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
        args = [sys.executable, "-m", "cflearn.course._grade", str(work), str(lesson), str(timeout), str(time_limit),
                str(max_output), str(int(sandboxed))]
        with open(work / "worker.log", "wb") as log:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True,
                                    env={**os.environ, "PYTHONWARNINGS": "ignore"})
            assert proc.stdin is not None
            proc.stdin.write(secret.encode() + b"\n")
            proc.stdin.close()
            try:
                code = proc.wait(timeout=time_limit + _CHECK_SECONDS + 60)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                for pid in (proc.pid, _read_pid(work / "kernel.pid")):
                    _kill_group(pid)
                proc.wait()
        outcome = _read_outcome(work / "outcome.json", secret) if code == 0 else None
    if outcome is None:
        why = (f"the notebook ran past the grader's limit of {time_limit + _CHECK_SECONDS + 60} s" if code is None
               else "the grading process's result could not be read" if code == 0
               else f"the notebook stopped its grading process ({_death(code)})")
        return Grading([Result(q, "incorrect", f"not checked: {why}") for q in labels])
    if outcome.get("unchecked"):
        why = str(outcome["unchecked"])
        return Grading([Result(q, "incorrect", f"not checked: {why}") for q in labels], list(outcome["notes"]))
    results = _results(outcome.get("results"), labels)
    if results is None:
        return Grading([Result(q, "incorrect", "not checked: the checks' results could not be read, or were not "
                                             f"one result for each of the exercise's questions ({', '.join(labels)})")
                        for q in labels])
    return Grading(results, [str(n) for n in outcome.get("notes", [])][:20])


_STATUSES = ("correct", "incorrect", "not answered")


def _results(raw: Any, labels: list[str]) -> list[Result] | None:
    """The results a worker handed back, only when they are exactly one per question of the
    exercise, in order, each with a known status: a count, a label or a status the exercise does
    not have is a forgery or a broken checker, and earns nothing."""
    if not isinstance(raw, list) or len(raw) != len(labels):
        return None
    out = []
    for r, label in zip(raw, labels):
        if not (isinstance(r, dict) and set(r) == {"question", "status", "message"} and r["question"] == label
                and r["status"] in _STATUSES and isinstance(r["message"], str)):
            return None
        out.append(Result(label, r["status"], r["message"][:2000]))
    return out


def _death(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _kill_group(pid: int | None) -> None:
    if pid is None or pid <= 1:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_outcome(path: Path, secret: str) -> dict[str, Any] | None:
    try:
        outcome = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return outcome if isinstance(outcome, dict) and outcome.get("secret") == secret else None


# -- the worker: runs in its own session, never in the grader's process -----------------------------

_SERVE = "__import__('cflearn.course._serve', fromlist=['serve']).serve(globals(), %r)"
_REQUEST_SECONDS = 60  # one request of the checks: a call of an answer, a model's forward...
_CHECK_OUTPUT = 64 * 2**20  # the bytes one request's cell may return (replies are values, not prints)


class _Kernel:
    """The checks' channel to the notebook's kernel: each request is a cell that asks the notebook's
    :class:`~cflearn.course._serve.Server`, and the reply is read from that cell's display data. The
    checks themselves run here, in the worker, out of the notebook's reach."""

    def __init__(self, client: Any, index: int, deadline: float) -> None:
        self.client, self.index, self.deadline = client, index, deadline
        self.broken: str | None = None

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        import nbformat
        from nbclient.exceptions import DeadKernelError

        from ._remote import ChannelDown
        from ._serve import MIME

        left = self.deadline - time.monotonic()
        if self.broken is None and left < 1:
            self.broken = f"checking the answers ran past {_CHECK_SECONDS} s"
        if self.broken is not None:
            raise ChannelDown(self.broken)
        cell = nbformat.v4.new_code_cell(_SERVE % json.dumps(request))
        client = self.client
        client.timeout = limit = max(1, int(min(_REQUEST_SECONDS, left)))
        client.cell_now, client.cell, client.limit = self.index, -1, _CHECK_OUTPUT
        try:
            client.execute_cell(cell, self.index, store_history=False)
        except DeadKernelError:
            self.broken = ("the kernel died while its answers were checked (the notebook killed it, or it ran out of "
                           "memory)")
            raise ChannelDown(self.broken) from None
        if self.index in client.stopped:
            client.stopped.discard(self.index)
            if not _idle(client):
                self.broken = f"an answer ran past {limit} s and could not be stopped"
                raise ChannelDown(self.broken)
            return {"raised": ["TimeoutError", f"it ran past {limit} s and was stopped by the grader"]}
        if self.index in client.flooded:
            client.flooded.discard(self.index)
            return {"raised": ["OverflowError", f"what it returned is over {_size(_CHECK_OUTPUT)}"]}
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get(MIME) if out.get("output_type") == "display_data" else None
            if isinstance(text, str):
                try:
                    reply = json.loads(text)
                except (ValueError, RecursionError):
                    break
                if isinstance(reply, dict):
                    return reply
                break
        return {"error": "the checking cell gave no reply (did the notebook break cflearn or its own kernel?)"}


def _work(work: Path, lesson: int, timeout: int, time_limit: int, max_output: int, secret: str,
          sandboxed: bool = False) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    class Client(NotebookClient):  # type: ignore[misc]
        """nbclient with an output limit per cell and a record of the cells it stopped."""

        printed: int
        limit: int
        cell: int
        cell_now: int
        flooded: set[int]
        stopped: set[int]

        def output(self, outs: Any, msg: Any, display_id: Any, cell_index: int) -> Any:
            if cell_index != self.cell:
                self.cell, self.printed = cell_index, 0
            self.printed += len(json.dumps(msg.get("content", {}), default=str))
            if self.printed > self.limit:
                if cell_index not in self.flooded:
                    self.flooded.add(cell_index)
                    _interrupt(self)
                return None
            return super().output(outs, msg, display_id, cell_index)

        async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> Any:
            self.stopped.add(self.cell_now)
            return await super()._async_handle_timeout(timeout, cell)

    # the checks and what they use, imported before the notebook runs (without a sandbox it could edit them on disk)
    import hypothesis.strategies  # noqa: F401

    from ..serve._export import load  # noqa: F401
    from ._exercises import questions
    from ._remote import Answers  # noqa: F401

    questions(lesson)
    nb = nbformat.from_dict(json.loads((work / "submission.ipynb").read_text(encoding="utf-8")))
    nb.cells.append(nbformat.v4.new_code_cell(""))  # where the checks' requests run, after the notebook's cells
    limit_index = len(nb.cells) - 1
    km = None
    if sandboxed:
        from ._sandbox import kernel_manager

        km = kernel_manager(work / "run", time_limit + _CHECK_SECONDS)
    client = Client(nb, km=km, timeout=timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
                    error_on_timeout={"ename": "Timeout", "evalue": "stopped by the grader", "traceback": []},
                    resources={"metadata": {"path": str(work / "run")}})
    client.printed, client.cell, client.flooded, client.stopped, client.limit = 0, -1, set(), set(), max_output
    notes: list[str] = []
    deadline = time.monotonic() + time_limit
    with client.setup_kernel():
        (work / "kernel.pid").write_text(str(_kernel_pid(client)))
        for index, cell in enumerate(nb.cells[:limit_index]):
            left = deadline - time.monotonic()
            if cell.cell_type != "code":
                continue
            if left < 1:
                notes.append(f"the notebook's time limit ({time_limit} s) ended before cell {index + 1}; "
                             "the cells from there on were not run")
                break
            client.timeout = max(1, int(min(timeout, left)))
            client.cell_now = index
            try:
                client.execute_cell(cell, index)
            except DeadKernelError:
                return {"unchecked": f"the kernel died in cell {index + 1} (the notebook killed it, or it ran out "
                                     "of memory)", "notes": notes}
            if index in client.flooded:
                notes.append(f"cell {index + 1} printed over {_size(max_output)}; its output was cut and the cell "
                             "stopped")
            if index in client.stopped:
                if not _idle(client):
                    return {"unchecked": f"cell {index + 1} ran past {client.timeout} s and could not be stopped",
                            "notes": notes}
                notes.append(f"cell {index + 1} ran past {client.timeout} s and was stopped")
        return _check(lesson, _Kernel(client, limit_index, time.monotonic() + _CHECK_SECONDS), work / "run", notes)


def _check(lesson: int, kernel: Any, run: Path, notes: list[str]) -> dict[str, Any]:
    """The answers checked here, asking the kernel for each value and call (never in the kernel)."""
    from ._exercises import questions
    from ._remote import Answers, ChannelDown

    answers = Answers(kernel, folder=run)
    try:
        bound = answers.get("q1")
    except ChannelDown as e:
        return {"unchecked": str(e), "notes": notes}
    if is_placeholder(bound):
        return {"unchecked": "the setup cell (cflearn.course.exercise(...)) did not run", "notes": notes}
    results = [cls(f"q{k}", answers, lesson).result() for k, cls in enumerate(questions(lesson), start=1)]
    return {"results": [r.__dict__ for r in results], "notes": notes}


def _size(n: int) -> str:
    return f"{n / 2**20:.3g} MB"


def _kernel_pid(client: Any) -> int:
    """The kernel's process ID, which is also its process group's (jupyter_client starts kernels
    in a session of their own)."""
    return int(client.km.provisioner.process.pid)


def _interrupt(client: Any) -> None:
    km = client.km
    if getattr(km, "sandboxed", False):  # a signal from outside its process namespace does not reach it
        try:
            km._connect_control_socket()
            km.session.send(km._control_socket, km.session.msg("interrupt_request", content={}))
        except Exception:  # noqa: BLE001  (a kernel already gone: the cell ends anyway)
            pass
        return
    try:
        os.killpg(_kernel_pid(client), signal.SIGINT)
    except (AttributeError, ProcessLookupError, PermissionError):
        pass


def _idle(client: Any) -> bool:
    """Whether the kernel answers a trivial cell within 15 s (a stopped cell did stop)."""
    import nbformat

    probe = nbformat.v4.new_code_cell("pass")
    before = set(client.stopped)
    saved, client.timeout = client.timeout, 15
    client.cell_now = -2
    client.execute_cell(probe, -2, store_history=False)
    client.timeout = saved
    return -2 not in client.stopped - before


def _main(argv: list[str]) -> int:
    work, lesson, timeout, time_limit, max_output, sandboxed = Path(argv[0]), *map(int, argv[1:6])
    secret = sys.stdin.readline().strip()
    warnings.simplefilter("ignore")
    try:
        outcome = _work(work, lesson, timeout, time_limit, max_output, secret, bool(sandboxed))
    except Exception as e:  # the kernel could not start, died...: a line for the table
        outcome = {"unchecked": f"the notebook could not be run to the end ({type(e).__name__}: {str(e)[:200]}; did "
                                "it break its kernel or Python's own modules?)"}
    outcome = {"notes": [], **outcome, "secret": secret}
    atomic_write_bytes(work / "outcome.json", json.dumps(outcome).encode())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
