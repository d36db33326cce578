"""Run folders are all or nothing: a lock, a private temporary folder, one rename at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cflearn
from cflearn.runs._runs import RunFolder
from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory, synth):
    path = tmp_path_factory.mktemp("in") / "ratings.csv"
    synth.ratings.to_csv(path, index=False)
    return path


def fit_args(src, out, *extra):
    return ["fit", str(src), "--user", "user", "--item", "item", "--rating", "rating", "--out", str(out), *extra]


def _as_in_a_terminal() -> None:
    """Ctrl-C as a command in a terminal gets it: a test run started in the background (``make test &``) ignores
    SIGINT, and a child would inherit that (POSIX), so the child restores the default before Python starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args):
    return subprocess.Popen([sys.executable, "-m", "cflearn.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_in_a_terminal)


def wait_for(path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def test_a_second_run_into_the_same_folder_fails_at_once(ratings_csv, tmp_path, capsys):
    from cflearn.cli import main

    out = tmp_path / "run"
    with RunFolder(out):  # another run holds the folder (the lock is per open file: the same process conflicts too)
        t0 = time.time()
        assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 1
        err = capsys.readouterr().err
        assert "another cflearn run (process" in err and err.count("\n") == 1
        assert time.time() - t0 < 30  # at once: it did not train
    assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 0  # released: the next run goes through
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    assert not (tmp_path / ".run.lock").exists() and not list(tmp_path.glob(".run.tmp-*"))


def test_sigkill_leaves_the_old_run_and_never_blocks_a_rerun(ratings_csv, tmp_path):
    from cflearn.cli import main

    out = tmp_path / "run"
    assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 0
    before = (out / "model.safetensors").read_bytes()
    victim = start(fit_args(ratings_csv, out, "--epochs", "30", "--force"))
    wait_for(tmp_path / ".run.lock", victim)
    time.sleep(1.0)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert (out / "model.safetensors").read_bytes() == before  # the old run, whole
    assert (tmp_path / ".run.lock").exists()  # the dead run's lock and temporary folder are left...
    assert main(fit_args(ratings_csv, out, "--epochs", "2", "--force")) == 0  # ... and cleaned up by the next run
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_kill_between_the_two_renames_restores_the_old_run(tmp_path):
    out = tmp_path / "run"
    old = tmp_path / f".run.old-{2**22 + 7}"  # what a run killed after moving the old run aside leaves
    old.mkdir()
    (old / "metrics.json").write_text("{}")
    (old / ".cflearn-run").write_text('{"command": "fit"}')
    (tmp_path / ".run.tmp-1-x").mkdir()
    with RunFolder(out, force=True) as tmp:
        assert (out / "metrics.json").exists()  # the old run is back in place
        assert not (tmp_path / ".run.tmp-1-x").exists()
        assert tmp.parent == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_force_replaces_the_run_as_a_unit_and_demo_leaves_fit_runs_alone(ratings_csv, tmp_path):
    from cflearn.cli import main

    out = tmp_path / "run"
    assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 0
    assert (out / ".cflearn-run").is_file()  # the run's own marker
    assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 1  # a run there: --force to replace it
    env = {"CFLEARN_DATA": str(tmp_path / "nothing"), "CFLEARN_CACHE": str(tmp_path / "cache")}
    code, _, stderr = run_cli("demo", "--offline", "--epochs", "1", "--out", str(out), env=env)
    assert code == 1 and "already holds a `cflearn fit` run" in stderr
    before = (out / "model.safetensors").read_bytes()
    assert main(fit_args(ratings_csv, out, "--epochs", "1", "--force", "--seed", "7")) == 0
    assert (out / "model.safetensors").read_bytes() != before  # replaced as a unit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def _user_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "backup").mkdir(exist_ok=True)
    (folder / "backup" / "old.csv").write_text("1,2,3")
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_force_never_deletes_what_cflearn_did_not_write(ratings_csv, tmp_path, capsys, monkeypatch):
    """The input, its folder, a grandparent of it, a folder of the user's files, a cflearn run to which
    the user added a file, the checkout, the home folder and the working directory: each --force is one
    line and exit 1, and every file survives."""
    from cflearn.cli import main

    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    src = data / "ratings.csv"
    src.write_bytes(ratings_csv.read_bytes())
    keep = _user_files(tmp_path / "project")
    keep[src] = src.read_bytes()
    run = tmp_path / "run"
    assert main(fit_args(src, run, "--epochs", "1")) == 0
    (run / "mine.txt").write_text("added by the user")
    keep[run / "mine.txt"] = b"added by the user"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    capsys.readouterr()
    targets = {data: "holds the input", tmp_path / "project": "holds the input", src: "is the input",
               tmp_path / "project" / "backup": "files cflearn did not write", run: "a cflearn run and other files",
               home: "home folder", work: "working directory", Path(cflearn.__file__).parents[1]: "cflearn checkout",
               Path(cflearn.__file__).parent: "files cflearn did not write"}
    for target, why in targets.items():
        assert main(fit_args(src, target, "--epochs", "1", "--force")) == 1, target
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err, (target, err)
    for path, content in keep.items():
        assert path.read_bytes() == content, path
    # --items inside --out is refused too
    assert main(fit_args(src, tmp_path / "elsewhere", "--items", str(tmp_path / "elsewhere" / "items.csv"))) == 1
    assert "holds the input" in capsys.readouterr().err


LOCKER = """
import multiprocessing as mp, sys, time
from cflearn.runs._runs import RunFolder

def take(out, start, results):
    while time.time() < start:
        pass
    try:
        with RunFolder(out, force=True):
            results.put(1)
            time.sleep(1.5)
    except Exception as e:
        results.put(0)

if __name__ == "__main__":
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    start = time.time() + 1.0
    procs = [ctx.Process(target=take, args=(sys.argv[1], start, results)) for _ in range(40)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    print(sum(got), len(got))
"""


@pytest.mark.parametrize("stale", [False, True])
def test_forty_simultaneous_lock_attempts_give_exactly_one_holder(tmp_path, stale):
    out = tmp_path / "run"
    if stale:  # a dead run's lock file, with the PID of a process long gone
        (tmp_path / ".run.lock").write_text("999999999")
    script = tmp_path / "locker.py"
    script.write_text(LOCKER)
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "40"], proc.stdout  # one holder, 39 refused at once


def test_rank_left_in_the_environment_is_one_process_with_the_lock(ratings_csv, tmp_path, monkeypatch, capsys):
    """RANK=1 without torchrun's other variables used to skip the lock and overwrite a run without --force."""
    from cflearn.cli import main

    out = tmp_path / "run"
    assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 0
    before = (out / "model.safetensors").read_bytes()
    monkeypatch.setenv("RANK", "1")
    capsys.readouterr()
    assert main(fit_args(ratings_csv, out, "--epochs", "1", "--seed", "3")) == 1
    err = capsys.readouterr().err
    assert "--force" in err and "RANK" in err  # a warning naming the stray variable, then the refusal
    assert (out / "model.safetensors").read_bytes() == before
    monkeypatch.setenv("WORLD_SIZE", "two")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert main(fit_args(ratings_csv, tmp_path / "other", "--epochs", "1")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "WORLD_SIZE='two'" in err
    # a partial set whose WORLD_SIZE fastai would act on (it gathers across processes that do not exist)
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name)
    for world in ("2", "two"):
        monkeypatch.setenv("WORLD_SIZE", world)
        assert main(fit_args(ratings_csv, tmp_path / "third", "--epochs", "1")) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"WORLD_SIZE={world!r} but not RANK, LOCAL_RANK" in err, err
        assert "unset WORLD_SIZE" in err and not (tmp_path / "third").exists()


def test_output_names_a_file_and_files_follow_the_umask(ratings_csv, tmp_path, capsys):
    from cflearn.cli import main

    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert main(fit_args(ratings_csv, a_file, "--epochs", "1")) == 1
    stderr = capsys.readouterr().err
    assert "is a file" in stderr and stderr.count("\n") == 1
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 0
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == "0o755"
    assert oct((out / "model.safetensors").stat().st_mode & 0o777) == "0o644"
    with pytest.raises(cflearn.ConfigError, match="is a file"):
        RunFolder(a_file).__enter__()


def test_disk_full_after_training_is_one_line_and_keeps_the_old_run(ratings_csv, tmp_path, monkeypatch, capsys):
    import errno

    from cflearn.cli import main
    from cflearn.serve import _export

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
    from cflearn.cli import main

    out = tmp_path / "run"
    assert main(fit_args(ratings_csv, out, "--epochs", "1")) == 0
    before = (out / "metrics.json").read_bytes()
    proc = start(fit_args(ratings_csv, out, "--epochs", "500", "--force"))
    line = ""
    while "epoch " not in line:  # the first epoch's line: training has started
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



class _Stopped(Exception):
    pass


def _stop(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


@pytest.mark.parametrize("during", ["commit", "clean-up"])
def test_a_signal_another_thread_takes_waits_until_the_run_folder_is_done(tmp_path, monkeypatch, during):
    """A torchrun worker has a second thread (the launcher watch). A SIGTERM the kernel gives that thread is
    still handled in the main thread, so blocking it in the main thread (as commit did) held nothing, and a
    second SIGTERM broke into the removal of the private folder and left it behind (a CI failure)."""
    import threading

    from cflearn.runs import _runs

    gate = threading.Event()
    other = threading.Thread(target=gate.wait)
    other.start()
    reached = []

    def signal_the_other_thread() -> None:
        assert other.ident is not None
        signal.pthread_kill(other.ident, signal.SIGTERM)
        gate.set()
        other.join()  # the thread ran the C-level handler before it ended
        for _ in range(1000):  # Python runs a pending handler between bytecodes: here, unless it is held
            pass
        reached.append(during)

    if during == "commit":
        class Hooked(list):
            def append(self, item):  # inside commit, after both renames
                super().append(item)
                signal_the_other_thread()

        monkeypatch.setattr(_runs, "COMMITTED", Hooked())
    else:
        real = _runs.shutil.rmtree

        def rmtree(path, **kw):
            signal_the_other_thread()
            real(path, **kw)

        monkeypatch.setattr(_runs.shutil, "rmtree", rmtree)
    previous = signal.signal(signal.SIGTERM, _stop)
    out = tmp_path / "run"
    try:
        with pytest.raises(_Stopped):
            run = RunFolder(out)
            with run as tmp:
                (tmp / "metrics.json").write_text("{}")
                if during == "commit":
                    run.commit()
    finally:
        signal.signal(signal.SIGTERM, previous)
        gate.set()
        other.join()
    assert reached == [during]  # the signal came inside and was acted on only after
    assert (out / "metrics.json").is_file() == (during == "commit")
    assert not list(tmp_path.glob(".run.tmp-*")) and not list(tmp_path.glob(".run.lock"))


def test_a_lock_that_is_a_link_a_pipe_or_another_file_is_refused_and_left_alone(tmp_path):
    """`.NAME.lock` as a symlink to a user's file was opened through the link, truncated and given a PID; a
    FIFO gave a traceback."""
    precious = tmp_path / "thesis.txt"
    precious.write_text("years of work\n")
    cases = {"link": lambda lock: lock.symlink_to(precious), "pipe": lambda lock: os.mkfifo(lock),
             "hard link": lambda lock: os.link(precious, lock), "text": lambda lock: lock.write_text("notes\n")}
    for what, make in cases.items():
        out = tmp_path / what.replace(" ", "_") / "run"
        out.parent.mkdir()
        lock = out.parent / ".run.lock"
        make(lock)
        with pytest.raises(cflearn.ConfigError, match=r"\.run\.lock is .*it is not a cflearn lock: remove"):
            with RunFolder(out):
                pass
        assert precious.read_text() == "years of work\n", what
        assert os.path.lexists(lock) and not out.exists(), what
    with RunFolder(tmp_path / "fine" / "run") as tmp:  # a lock cflearn left (a PID) is taken again
        assert tmp.is_dir()


def test_a_marker_that_is_a_pipe_does_not_hang_the_check(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / ".cflearn-run")
    os.mkfifo(out / "metrics.json")
    with pytest.raises(cflearn.ConfigError, match="holds files cflearn did not write"):
        with RunFolder(out, force=True):
            pass


def test_an_out_folder_with_glob_characters_touches_no_other_run(tmp_path):
    """`--out 'runs/*'` was a pattern to the clean-up of dead runs: it removed another live run's folder."""
    other = tmp_path / ".busy.tmp-1-abc"
    other.mkdir()
    (other / ".cflearn-run").write_text('{"command": "fit"}')
    with RunFolder(tmp_path / "*") as tmp:
        assert tmp.is_dir()
    assert (other / ".cflearn-run").is_file()


def test_an_out_link_is_refused_and_a_linked_parent_takes_the_same_lock(tmp_path):
    real = tmp_path / "runs"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    (real / "T").mkdir()
    (real / "L").symlink_to(real / "T", target_is_directory=True)
    with pytest.raises(cflearn.ConfigError, match="is a symbolic link"):
        with RunFolder(real / "L", force=True):
            pass
    with RunFolder(real / "run"):
        with pytest.raises(cflearn.ConfigError, match="another cflearn run"):
            with RunFolder(tmp_path / "alias" / "run"):
                pass
