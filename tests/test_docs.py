"""The documentation: every public name has a reference entry, the guide's code runs, the site
builds with warnings as errors and opens in a headless browser without errors or broken links."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cflearn

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MODULES = ("baselines", "callbacks", "course", "datasets", "interpret", "kinds", "metrics", "models", "optim")
PAGES = sorted([DOCS / "index.md", *(DOCS / "guide").glob("*.md")])


def _entries() -> set[str]:
    return {m.group(1) for page in (DOCS / "reference").glob("*.md")
            for m in re.finditer(r"^::: (cflearn[\w.]*)$", page.read_text(), re.M)}


def test_every_public_name_has_a_reference_entry():
    public = {f"cflearn.{n}" for n in cflearn.__all__ if n not in MODULES and n != "__version__"}
    for name in MODULES:
        public |= {f"cflearn.{name}.{n}" for n in importlib.import_module(f"cflearn.{name}").__all__}
    entries = _entries()
    assert public - entries == set(), "public names without a reference entry"
    assert entries - public == set(), "reference entries for names that are not public"


def test_the_changelog_names_the_version():
    newest = re.search(r"^## (\S+)", (DOCS / "changelog.md").read_text(), re.M)
    assert newest and newest.group(1) == cflearn.__version__
    out = subprocess.run([sys.executable, "-m", "cflearn", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"cflearn {cflearn.__version__}"


def _blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", page.read_text(), re.M | re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.stem)
def test_the_guides_code_runs(page, tmp_path, monkeypatch):
    """Each page's Python blocks, in order, in one namespace (as a reader pastes them)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for k, code in enumerate(_blocks(page)):
        exec(compile(code, f"{page.name}[{k}]", "exec"), namespace)  # noqa: S102


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built with warnings as errors (lessons rendered without running them: `make docs`
    runs them)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "CFLEARN_DOCS_EXECUTE": "0", "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-3000:]
    return out


def test_the_site_has_every_page_and_reference_entry(site):
    for page in ("index.html", "guide/presets.html", "reference/cflearn.html", "lessons/00_from_scratch.html",
                 "bad-inputs.html", "changelog.html", "benchmarks.html"):
        assert (site / page).is_file(), page
    reference = "".join(p.read_text() for p in (site / "reference").glob("*.html"))
    for entry in sorted(_entries()):
        assert f'id="{entry}"' in reference, entry


def test_the_site_opens_in_a_browser_without_errors(site, tmp_path):
    """Home, a guide page, collab_learner's reference and a lesson: no console errors, every link
    to a page of the site leads to a file that is there; screenshots of two pages."""
    from tests.browser import Page, chromium

    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium (.ci/run installs it): apt-get install chromium")
        pytest.skip("Chromium is not installed here: apt-get install chromium (make test installs it when it can)")
    pages = ["index.html", "guide/ratings-and-lists.html", "reference/cflearn.html", "lessons/01_quickstart.html"]
    with Page(binary) as browser:
        for page in pages:
            browser.open((site / page).as_uri())
            links = browser.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
            local = {link.split("#")[0] for link in links if link.startswith("file://")}
            broken = sorted(link for link in local if not Path(link[len("file://"):]).exists())
            assert broken == [], (page, broken)
            assert len(local) > 10, (page, local)  # the navigation is there
            if page == "reference/cflearn.html":
                assert browser.evaluate("!!document.getElementById('cflearn.collab_learner')")
            if page in ("index.html", "reference/cflearn.html"):
                shot = browser.screenshot(tmp_path / f"{Path(page).stem}.png")
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, page
        assert browser.errors() == []
