"""The package works where it is installed: a wheel built from the sdist, installed into a fresh
venv outside the repository, runs the demo offline, hands out the course and imports every public
name, with no access to the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import cflearn

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_works_outside_the_repository(tmp_path):
    dist = tmp_path / "dist"
    # the sdist first, then the wheel from the sdist (as `python -m build` does): both must be complete
    build = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(dist.glob("cflearn-*.whl"))
    assert next(dist.glob("cflearn-*.tar.gz")).is_file()
    assert wheel.name.startswith(f"cflearn-{cflearn.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("data/share/cflearn/notebooks/exercises/ex03_embeddings_and_models.ipynb") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                              "--no-index", "--disable-pip-version-check", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    # the dependencies (torch, fastai, ...) come from this environment's site-packages, added as a
    # plain path: its .pth files (the checkout's editable install among them) are not run
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CFLEARN", "PYTHON"))}
    env |= {"HOME": str(home), "CFLEARN_CACHE": str(home / "cache"), "MPLBACKEND": "Agg",
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=home, timeout=600)

    probe = ("import importlib, json, cflearn\n"
             "missing = [n for n in cflearn.__all__ if getattr(cflearn, n, None) is None]\n"
             "for m in ('callbacks', 'course', 'datasets', 'interpret', 'metrics', 'models', 'optim'):\n"
             "    mod = importlib.import_module('cflearn.' + m)\n"
             "    missing += [f'{m}.{n}' for n in mod.__all__ if getattr(mod, n, None) is None]\n"
             "print(json.dumps([cflearn.__file__, cflearn.__version__, missing]))")
    where = run(str(python), "-c", probe)  # every public name of the package and of its public modules
    assert where.returncode == 0, where.stderr
    path, version, missing = json.loads(where.stdout)
    assert Path(path).is_relative_to(venv) and version == cflearn.__version__ and missing == []

    assert run(str(venv / "bin" / "cflearn"), "--version").stdout.strip() == f"cflearn {cflearn.__version__}"
    demo = run(str(venv / "bin" / "cflearn"), "demo", "--offline", "--epochs", "1", "--out", str(home / "demo"))
    assert demo.returncode == 0, demo.stderr
    assert "synthetic" in demo.stdout.lower() and (home / "demo" / "report.html").is_file()
    course = run(str(venv / "bin" / "cflearn"), "course", str(home / "handout"))
    assert course.returncode == 0, course.stderr
    assert (home / "handout" / "00_from_scratch.ipynb").is_file()
    assert "BEGIN SOLUTION" not in (home / "handout" / "exercises" / "ex03_embeddings_and_models.ipynb").read_text()
