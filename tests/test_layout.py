"""The layout keeps serving apart from training: only the modules that build learners import the
factory, and loading a model or answering with it does not pull in the trainer."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cflearn"
BUILDERS = {"_learner", "cli", "__init__", "_feature_trust", "_select", "_fitrun"}  # + runs, the feature check


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[-1])
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[-1] for a in node.names)
    return names


def test_only_builders_import_the_factory():
    importers = {p.stem for p in PACKAGE.rglob("*.py") if "_learner" in _imports(p)}
    assert importers <= BUILDERS, importers - BUILDERS


def test_load_and_predict_do_not_import_the_trainer():
    code = ("import sys, cflearn\n"
            "from cflearn import _export, _predict, _recommend, _evaluate\n"
            "cflearn.load; cflearn.predict; cflearn.recommend\n"
            "print(sorted(m for m in ('cflearn._learner', 'fastai.learner') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
