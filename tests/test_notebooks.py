"""The course notebooks are product: each runs top to bottom, and is stored without outputs."""

import json
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


def test_each_lesson_has_a_questionnaire_with_its_key_and_further_research():
    from cflearn.course._material import KEY, lesson_version

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        text = {c.source.splitlines()[0]: c.source for c in nb.cells if c.cell_type == "markdown" and c.source}
        questions = re.findall(r"^\d+\. ", text["## Questionnaire"], re.M)
        answers = re.findall(r"^\d+\. ", text[KEY], re.M)
        assert 8 <= len(questions) <= 15 and len(answers) == len(questions), path.name
        assert len(re.findall(r"^\d+\. ", text["## Further research"], re.M)) >= 2, path.name
        handout = lesson_version(json.loads(path.read_text()))
        keys = [c for c in handout["cells"] if "".join(c["source"]).startswith(KEY)]
        assert len(keys) == 1 and not re.search(r"^\d+\. ", "".join(keys[0]["source"]), re.M), path.name


# What the prose says about the numbers its cells compute, checked in the kernel after the lesson ran.
PROSE = {
    "00_from_scratch.ipynb": [
        # "what should hold is the order: biases and a padded sigmoid help most"
        'assert results["+ biases, sigmoid y_range, Adam"] < results["EmbeddingDot, Adam"]',
        # weight decay: none memorises, too much stops learning (the preset's own 0.15 between)
        "assert decay[0.15] < decay[0.0] and decay[0.15] < decay[1.0], decay",
        # the toy latent factors: the sci-fi fan likes The Last Skywalker, not Casablanca
        "assert (user * last_skywalker).sum() > 0 > (user * casablanca).sum()",
    ],
    "03_embeddings_and_models.ipynb": [
        # "fastai's rule ... several times the dot product's parameters"; "32 + 32 ... about half"
        "assert sizes.loc[\"NN, fastai's rule\", \"x dot product's size\"] > 2.5, sizes",
        "assert 0.4 < sizes.loc['NN, 32 + 32', \"x dot product's size\"] < 0.6, sizes",
    ],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, ml_path, monkeypatch, tmp_path):
    monkeypatch.setenv("CFLEARN_DATA", str(ml_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("CFLEARN_COURSE_EPOCHS", "1")  # lesson 0: one fastai epoch in the suite (documented)
    nb = nbformat.read(path, as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(check) for check in PROSE.get(path.name, [])]
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # a cell whose value is one of cflearn's figures, or that shows a figure, has an image output
    figure = re.compile(r"^((cflearn\.)?(interpret\.)?(plot_loss|factor_map)\(.*\)|plt\.show\(\)|.*\.plot_loss\(\).*)$")
    for cell in nb.cells:
        lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
        plots = lines and (figure.match(lines[-1]) or any("lr_find()" in ln for ln in lines))  # lr_find draws its plot
        if cell.cell_type == "code" and plots:
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
