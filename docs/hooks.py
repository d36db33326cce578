"""MkDocs hook: the course's lessons as pages, rendered with their outputs, and its exercises as
students get them (solutions replaced by ``____``), so that each lesson's links lead somewhere.

The API reference's docstrings cross-reference in Sphinx's words (``:func:`cflearn.load```); the
hook drops the role, so the page shows the name as code, not the role's markup.

The lessons live in ``notebooks/`` without outputs (the test suite runs them). For the site each
is executed once (``nbclient``, in a temporary folder) and kept in ``build/lessons/`` keyed by the
SHA-256 of its source and of cflearn's code, so a rebuild re-runs the lessons only when one of
them changed. ``CFLEARN_DOCS_EXECUTE=0`` renders them without running (a quick build, as the docs
test does); ``CFLEARN_COURSE_EPOCHS`` is passed on (the lessons' own epochs otherwise).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "notebooks"
CACHE = ROOT / "build" / "lessons"
log = logging.getLogger("mkdocs.hooks.lessons")
INLINE = "module://matplotlib_inline.backend_inline"  # figures as image outputs, as in Jupyter
RECIPE = f"nbclient, MPLBACKEND={INLINE}"  # part of the cache key: a change here runs the lessons again
ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|obj|exc):(?=<code)")


def _executed(source: Path) -> Path:
    """The lesson with its outputs, from the cache or executed now."""
    code = b"".join(p.read_bytes() for p in sorted((ROOT / "cflearn").rglob("*.py")))  # the outputs come from it
    digest = hashlib.sha256(RECIPE.encode() + code + source.read_bytes()).hexdigest()[:16]
    out = CACHE / digest / source.name
    if out.is_file():
        return out
    import nbformat
    from nbclient import NotebookClient

    log.info("executing %s for the site (once per version of the lesson)", source.name)
    nb = nbformat.read(source, as_version=4)
    backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE  # the kernel inherits it (make exports Agg for the commands)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
    finally:
        if backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = backend
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part")
    part.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(part, out)
    return out


_stage: list[Path] = []


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files: Files, config: dict) -> Files:
    from cflearn.course import student_version
    from cflearn.course._material import lesson_version  # the questionnaire's key is not published

    execute = os.environ.get("CFLEARN_DOCS_EXECUTE", "1") != "0"
    stage = Path(tempfile.mkdtemp(prefix="cflearn-docs-"))  # this build's own copies: builds never share one
    _stage.append(stage)
    (stage / "lessons").mkdir()
    for source in sorted(LESSONS.glob("*.ipynb")):
        page = lesson_version(json.loads((_executed(source) if execute else source).read_text(encoding="utf-8")))
        (stage / "lessons" / source.name).write_text(json.dumps(page), encoding="utf-8")
        files.append(File(f"lessons/{source.name}", str(stage), config["site_dir"], config["use_directory_urls"]))
    (stage / "lessons" / "exercises").mkdir()
    for source in sorted((LESSONS / "exercises").glob("*.ipynb")):  # as a student gets them: no solutions
        handout = student_version(json.loads(source.read_text(encoding="utf-8")))
        (stage / "lessons" / "exercises" / source.name).write_text(json.dumps(handout), encoding="utf-8")
        files.append(File(f"lessons/exercises/{source.name}", str(stage), config["site_dir"],
                          config["use_directory_urls"]))
    return files


def on_post_build(config: dict) -> None:
    while _stage:
        shutil.rmtree(_stage.pop(), ignore_errors=True)


def on_page_content(html: str, **_: object) -> str:
    """Sphinx roles left in the rendered docstrings (``:func:<code>x</code>``) become plain code."""
    return ROLE.sub("", html)
