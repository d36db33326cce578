"""The layout keeps serving apart from training: only the modules that build learners import the
factory, and loading a model or answering with it does not pull in the trainer; and no module
imports one that imports it back, deferred (in-function) imports included."""

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cflearn"
BUILDERS = {"_learner", "_fit", "cli", "__init__", "_feature_trust", "_select", "_fitrun"}  # + runs, the check


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
    importers = {p.stem for p in PACKAGE.rglob("*.py") if {"_learner", "_factory"} & _imports(p)}
    assert importers <= BUILDERS, importers - BUILDERS


def test_load_and_predict_do_not_import_the_trainer():
    code = ("import sys, cflearn\n"
            "from cflearn.serve import _export, _predict, _recommend\nfrom cflearn.evaluation import _evaluate\n"
            "cflearn.load; cflearn.predict; cflearn.recommend\n"
            "print(sorted(m for m in ('cflearn.train._learner', 'cflearn.train._factory', 'fastai.learner')\n"
            "             if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def _module_name(path: Path) -> str:
    parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each cflearn module -> the cflearn modules it imports anywhere in its code (at the top, in a
    function, in a method), but not under ``if TYPE_CHECKING:`` (never run)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        guards = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
        unrun = {id(n) for node in guards for stmt in node.body for n in ast.walk(stmt)}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(tree):
            if id(node) in unrun or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files:  # cflearn.x.y (a name in module x) -> cflearn.x
                    target = target.rpartition(".")[0]
                if target.startswith("cflearn") and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    fit, select, learner = "cflearn.train._fit", "cflearn.train._select", "cflearn.train._learner"
    assert select in graph[learner] and fit in graph[select]  # the second deferred
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"an import cycle: {' -> '.join(e.args[1])}") from None


def test_the_cycle_check_sees_a_cycle_through_a_deferred_import():
    graph = import_graph()
    graph["cflearn.train._fit"].add("cflearn.train._learner")  # as a `from ._learner import ...` in a function would
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        assert {"cflearn.train._learner", "cflearn.train._fit"} <= set(e.args[1])
    else:
        raise AssertionError("the cycle was not found")


def _stage_table() -> dict[str, set[str]]:
    """docs/architecture.md's stage table: folder (``""`` for the top) -> the module names its row gives."""
    import re

    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (re.fullmatch(r"`\w+/`", cells[0]) or cells[0] == "(top)"):
            rows[cells[0].strip("`/") if cells[0] != "(top)" else ""] = set(re.findall(r"`(\w+)`", cells[1]))
    return rows


def test_the_architecture_page_names_every_module_of_every_folder():
    rows = _stage_table()
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert set(rows) == folders | {""}, set(rows) ^ (folders | {""})
    for folder, named in rows.items():
        here = {p.stem for p in (PACKAGE / folder).glob("*.py")} - {"__main__"}
        top_private = {p.stem for p in PACKAGE.glob("_*.py")} - {"__init__", "__main__"}
        must = top_private if folder == "" else here - {"__init__"}
        assert must <= named, (folder, must - named)  # every module of the folder is on the page
        private = {n for n in named if n.startswith("_")}  # (other names there are classes and functions)
        exists = here if folder else top_private | {"__init__"}
        assert private <= exists, (folder, private - exists)  # and every private module named there exists


def test_loading_and_answering_from_a_file_imports_no_fastai(tmp_path):
    """A saved model is rebuilt from its kind's model class without importing the kinds' modules (they import
    fastai's training side): loading, predicting and recommending leave fastai out of the process."""
    import warnings

    import cflearn

    ds = cflearn.datasets.synthetic(n_users=60, n_items=40, density=0.3, seed=0)
    data = cflearn.from_df(ds, seed=0)
    paths = []
    for preset in ("fast", "dual", "rank"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learn = cflearn.fit(cflearn.collab_learner(data, preset, epochs=1, progress=False))
        paths.append(str(cflearn.save(learn, tmp_path / f"{preset}.safetensors")))
    code = ("import sys, cflearn\n"
            f"for path in {paths!r}:\n"
            "    m = cflearn.load(path)\n"
            "    cflearn.recommend(m, m.users.ids[1], n=3); cflearn.predict(m, [m.users.ids[1]], [m.items.ids[1]])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'fastai' or m == 'cflearn.train._learner'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
