"""The course notebooks are product: each runs top to bottom, and is stored without outputs."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_stripped_in_git(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"


def test_each_lesson_links_to_its_exercise_and_the_next_lesson():
    for k, path in enumerate(NOTEBOOKS):
        nb = nbformat.read(path, as_version=4)
        links = re.findall(r"\]\(([^)]+\.ipynb)\)", nb.cells[-1].source)
        assert all((path.parent / link).is_file() for link in links), (path.name, links)
        exercise = sorted(path.parent.glob(f"exercises/ex{path.name[:2]}_*.ipynb"))
        wanted = [f"exercises/{e.name}" for e in exercise] + [n.name for n in NOTEBOOKS[k + 1:k + 2]]
        assert links == wanted, (path.name, links)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, ml_path, monkeypatch, tmp_path):
    monkeypatch.setenv("CFLEARN_DATA", str(ml_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("CFLEARN_COURSE_EPOCHS", "1")  # lesson 0: one fastai epoch in the suite (documented)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # a cell whose value is one of cflearn's figures shows it as an image (a Figure renders itself)
    figure = re.compile(r"^(cflearn\.)?(interpret\.)?(plot_loss|factor_map)\(.*\)$")
    for cell in nb.cells:
        lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
        if cell.cell_type == "code" and lines and figure.match(lines[-1]):
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), (path.name, cell.source)


EXERCISES = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "exercises").glob("*.ipynb"))


def test_every_exercise_module_has_its_notebook():
    from cflearn.course import EXERCISES as LESSONS

    assert [p.name[:4] for p in EXERCISES] == [f"ex{n:02d}" for n in LESSONS]


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_outputs_are_stripped_in_git(path):
    test_outputs_are_stripped_in_git(path)


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_as_handed_out_runs_and_says_not_answered(path, ml_path, monkeypatch, tmp_path):
    import json

    from cflearn.course import student_version

    monkeypatch.setenv("CFLEARN_DATA", str(ml_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.reads(json.dumps(student_version(json.loads(path.read_text()))), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and c.source.strip().endswith(".check()")]
    assert len(checks) >= 3
    for cell in checks:
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "Not answered yet" in text and "Traceback" not in text, text


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_with_its_solutions_passes_every_check(path, ml_path, monkeypatch):
    from cflearn.course import check_notebook

    monkeypatch.setenv("CFLEARN_DATA", str(ml_path))
    results = check_notebook(path)
    assert len(results) >= 3 and all(r.passed for r in results), results
