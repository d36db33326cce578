"""Run folders are all or nothing: a lock, a private temporary folder, one rename at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import cflearn
from cflearn._runs import RunFolder
from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory, synth):
    path = tmp_path_factory.mktemp("in") / "ratings.csv"
    synth.ratings.to_csv(path, index=False)
    return path


def fit_args(src, out, *extra):
    return ["fit", str(src), "--user", "user", "--item", "item", "--rating", "rating", "--out", str(out), *extra]


def start(args):
    return subprocess.Popen([sys.executable, "-m", "cflearn.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def test_a_second_run_into_the_same_folder_fails_at_once(ratings_csv, tmp_path):
    out = tmp_path / "run"
    first = start(fit_args(ratings_csv, out, "--epochs", "30"))
    wait_for(tmp_path / ".run.lock", first)
    t0 = time.time()
    code, _, stderr = run_cli(*fit_args(ratings_csv, out, "--epochs", "1"))
    assert code == 1 and "another cflearn run" in stderr and stderr.count("\n") == 1
    assert time.time() - t0 < 60  # at once: it did not train
    assert first.wait(timeout=600) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 30
    assert not (tmp_path / ".run.lock").exists() and not list(tmp_path.glob(".run.tmp-*"))


def test_sigkill_leaves_the_old_run_and_never_blocks_a_rerun(ratings_csv, tmp_path):
    out = tmp_path / "run"
    assert run_cli(*fit_args(ratings_csv, out, "--epochs", "1"))[0] == 0
    before = (out / "model.safetensors").read_bytes()
    victim = start(fit_args(ratings_csv, out, "--epochs", "30", "--force"))
    wait_for(tmp_path / ".run.lock", victim)
    time.sleep(1.0)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert (out / "model.safetensors").read_bytes() == before  # the old run, whole
    assert (tmp_path / ".run.lock").exists()  # the dead run's lock and temporary folder are left...
    code, _, stderr = run_cli(*fit_args(ratings_csv, out, "--epochs", "2", "--force"))
    assert code == 0, stderr  # ... and cleaned up by the next run
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_kill_between_the_two_renames_restores_the_old_run(tmp_path):
    out = tmp_path / "run"
    old = tmp_path / f".run.old-{2**22 + 7}"  # what a run killed after moving the old run aside leaves
    old.mkdir()
    (old / "metrics.json").write_text("{}")
    (tmp_path / ".run.tmp-1-x").mkdir()
    with RunFolder(out, force=True) as tmp:
        assert (out / "metrics.json").exists()  # the old run is back in place
        assert not (tmp_path / ".run.tmp-1-x").exists()
        assert tmp.parent == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_force_replaces_the_run_as_a_unit_and_demo_leaves_fit_runs_alone(ratings_csv, tmp_path):
    out = tmp_path / "run"
    assert run_cli(*fit_args(ratings_csv, out, "--epochs", "1"))[0] == 0
    (out / "extra.txt").write_text("old")
    code, _, stderr = run_cli(*fit_args(ratings_csv, out, "--epochs", "1"))
    assert code == 1 and "--force" in stderr
    env = {"CFLEARN_DATA": str(tmp_path / "nothing"), "CFLEARN_CACHE": str(tmp_path / "cache")}
    (out / "extra.txt").unlink()
    code, _, stderr = run_cli("demo", "--offline", "--epochs", "1", "--out", str(out), env=env)
    assert code == 1 and "already holds a `cflearn fit` run" in stderr
    (out / "extra.txt").write_text("old")
    assert run_cli(*fit_args(ratings_csv, out, "--epochs", "1", "--force"))[0] == 0
    assert not (out / "extra.txt").exists()  # replaced as a unit, not file by file


def test_output_names_a_file_and_files_follow_the_umask(ratings_csv, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    code, _, stderr = run_cli(*fit_args(ratings_csv, a_file, "--epochs", "1"))
    assert code == 1 and "is a file" in stderr and stderr.count("\n") == 1
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert run_cli(*fit_args(ratings_csv, out, "--epochs", "1"))[0] == 0
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == "0o755"
    assert oct((out / "model.safetensors").stat().st_mode & 0o777) == "0o644"
    with pytest.raises(cflearn.ConfigError, match="is a file"):
        RunFolder(a_file).__enter__()


def test_disk_full_after_training_is_one_line_and_keeps_the_old_run(ratings_csv, tmp_path, monkeypatch, capsys):
    import errno

    from cflearn import _export
    from cflearn.cli import main

    out = tmp_path / "run"
    assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 0
    before = (out / "metrics.json").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "model.safetensors"))

    monkeypatch.setattr(_export, "save", full)
    capsys.readouterr()
    assert main(fit_args(ratings_csv, out, "--epochs", "1", "--force")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "nothing was written there" in err
    assert (out / "metrics.json").read_bytes() == before  # the old run, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder, no lock


@pytest.mark.skipif(not hasattr(__import__("resource"), "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_file_size_limit_is_one_line(ratings_csv, tmp_path):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))  # the model file is larger

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "cflearn.cli", *fit_args(ratings_csv, out, "--epochs", "1")],
                          capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("cflearn: error: could not write the run") and proc.stderr.count("\n") == 1
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".run.*"))


def test_ctrl_c_during_training_says_truthfully_that_nothing_was_written(ratings_csv, tmp_path):
    out = tmp_path / "run"
    assert run_cli(*fit_args(ratings_csv, out, "--epochs", "1"))[0] == 0
    before = (out / "metrics.json").read_bytes()
    proc = start(fit_args(ratings_csv, out, "--epochs", "500", "--force"))
    line = ""
    while not line.startswith("["):  # the first epoch's progress line: training has started
        line = proc.stdout.readline()
        assert line or proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "cflearn: interrupted; nothing was written (an earlier run in --out is " \
                                           "untouched)", err
    assert "Traceback" not in err
    assert (out / "metrics.json").read_bytes() == before
    assert not list(tmp_path.glob(".run.*"))
