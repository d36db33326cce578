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
        # lr_find: "the first few points rise ... then the curve is flat over most of the range ... only near
        # 1e-1 does the loss fall, a little, below that flat level; past its lowest point there the loss
        # explodes"; the valley before that point
        "flat, body = curve[(curve.index > 1e-5) & (curve.index < 1e-2)], curve[curve.index > 1e-5]\n"
        "assert curve.iloc[0] < curve.iloc[5] and flat.max() - flat.min() < 0.1, curve\n"
        "assert 1e-2 < body.idxmin() < 1 and flat.mean() - 0.3 < body.min() < flat.mean() - 0.02, curve\n"
        "assert curve.iloc[-1] > 1.2 * flat.mean() and suggestion.valley < body.idxmin(), (curve, suggestion)",
        # "The book trains with 5e-3, lower than the valley printed above"
        "assert suggestion.valley > 5e-3",
    ],
    "01_quickstart.ipynb": [
        # "Both fall steeply in the first two epochs; then the training loss keeps falling while the
        # validation loss levels off above it"; "RMSE, the square root of the validation loss"
        "h = learn.loss_history\nv = h.valid_losses\n"
        "assert len(v) >= 4 and v[1] < 0.7 * v[0] and abs(v[-1] / v[len(v) // 2] - 1) < 0.02, v",
        "import numpy as np\nt, ends = np.asarray(h.train_losses), h.epoch_ends\n"
        "first, mid, last = (t[a:b].mean() for a, b in [(0, ends[0]), (ends[len(ends) // 2 - 1], ends[len(ends) // 2]),"
        " (ends[-2], ends[-1])])\n"
        "assert t[ends[1] - 1] < 0.7 * first and last < mid and last < v[-1], (first, mid, last, v)",
        "assert abs(h.metric_values['rmse'][-1] ** 2 - v[-1]) < 1e-3",
    ],
    "02_interpretation.ipynb": [
        # "the five largest biases belong to movies rated at least 20 times, so min_ratings=20 removes none"
        "top = cflearn.interpret.biases(learn, n=5, min_ratings=20)\n"
        "assert top[top.end == 'highest'].item.tolist() == top_ids, (top, top_ids)\n"
        "assert all(n_ratings.get(i, 0) >= 20 for i in top_ids)",
        # "at least one of them was rated fewer than 20 times"
        "assert any(n_ratings.get(i, 0) < 20 for i in low_ids), low_ids",
        # "take them out of the book's list and what is left is similar_items' list, in the same order"
        "kept = [i for i in near_ids if n_ratings.get(i, 0) >= 20]\n"
        "sim = cflearn.similar_items(learn, lambs, n=5, min_ratings=20).item.tolist()\n"
        "assert kept and kept == sim[:len(kept)], (near_ids, sim)",
        # "Each movie is a vector of 64 factors"
        "assert learn.model.i_weight.weight.shape[1] == 64",
    ],
    "03_embeddings_and_models.ipynb": [
        # "fastai's rule ... several times the dot product's parameters"; "32 + 32 ... about half"
        "assert sizes.loc[\"NN, fastai's rule\", \"x dot product's size\"] > 2.5, sizes",
        "assert 0.4 < sizes.loc['NN, 32 + 32', \"x dot product's size\"] < 0.6, sizes",
        # exercise 3 quotes lesson 3's sizes: "8,416 movies -> 252 factors", 611 users
        "assert (n_users, n_movies) == (672, 8416) and emb_sz_rule(n_movies) == 252, (n_users, n_movies)",
    ],
    "05_evaluation.ipynb": [
        # "the best RMSE and the worst lists after chance: fewer hits than the most-popular chart, and
        # even than the user+item bias list"
        "t = table\nassert t.loc['model (fast)', 'rmse'] == t['rmse'].min(), t\n"
        "assert t.loc['global mean', 'ndcg@10'] < t.loc['model (fast)', 'ndcg@10'] < "
        "min(t.loc['most popular', 'ndcg@10'], t.loc['user+item bias', 'ndcg@10']), t",
        # "no RMSE ... at least as good as EASE ..., more than 1.5 times the most-popular chart's NDCG, while
        # showing more of the catalogue than EASE"
        "import pandas as pd\nr = t.loc['model (rank)']\n"
        "assert pd.isna(r['rmse']) and r['ndcg@10'] >= t.loc['EASE', 'ndcg@10'], t\n"
        "assert r['ndcg@10'] > 1.5 * t.loc['most popular', 'ndcg@10'] and r['coverage@10'] > t.loc['EASE', "
        "'coverage@10'], t",
        # "obscure films (each rated by fewer people than any of the ranking model's)"
        "assert tops['fast'].n_ratings.max() < tops['rank'].n_ratings.min(), tops",
        # "NDCG and recall drop for the model and every baseline above chance"
        "above = last_table.index.drop('global mean')\nfor col in ('ndcg@10', 'recall@10'):\n"
        "    assert (last_table.loc[above, col] < ranking_table.loc[above, col]).all(), (col, last_table, "
        "ranking_table)",
    ],
}
# Lessons whose prose is about what full training shows run with each preset's own epochs (their
# code takes about 30 s either way); the others train one epoch in the suite (documented in each).
FULL_TRAINING = {"01_quickstart.ipynb", "02_interpretation.ipynb", "05_evaluation.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, ml_path, monkeypatch, tmp_path):
    monkeypatch.setenv("CFLEARN_DATA", str(ml_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # a figure must show even where the environment sets no inline backend
    if path.name not in FULL_TRAINING:
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
