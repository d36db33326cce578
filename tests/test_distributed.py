"""Data-parallel training on this CPU with gloo and 2 processes (torchrun), as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import cflearn

RUN = [sys.executable, "-m", "cflearn"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def _fit_args(csv: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", str(csv), "--user", "userId", "--item", "movieId", "--rating", "rating", "--seed", "42",
            "--preset", "fast", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    """A synthetic ratings file of MovieLens's column names (2,000 users x 1,000 items, 5% dense)."""
    big = cflearn.datasets.synthetic(n_users=2000, n_items=1000, density=0.05, seed=1)
    csv = tmp_path_factory.mktemp("ratings") / "ratings.csv"
    big.ratings.rename(columns={"user": "userId", "item": "movieId"}).to_csv(csv, index=False)
    return csv


@pytest.mark.parametrize("preset", ["dual", "rank"])
def test_two_processes_reach_the_single_process_rmse_and_ndcg_and_write_once(ratings_csv, tmp_path, preset):
    """The default (a rating head and EASE here) and rank (a learned ranking head, its users sharded) were refused
    under torchrun; fast's run is the script test's below."""
    def fit(out: str, *extra: str) -> subprocess.CompletedProcess:
        args = _fit_args(ratings_csv, tmp_path / out, *extra)
        args[args.index("fast")] = preset
        return subprocess.run([*RUN, *args], capture_output=True, text=True, timeout=600)

    one, two = fit("one"), fit("two", "--nproc", "2")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m2["processes"] == 2 and m1["processes"] == 1
    if preset == "dual":
        assert abs(m2["rmse"] - m1["rmse"]) < 0.01, (m1["rmse"], m2["rmse"])
    assert abs(m2["ndcg@10"] / m1["ndcg@10"] - 1) < 0.03, (m1["ndcg@10"], m2["ndcg@10"])
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [".cflearn-run", "loss.png", "metrics.json",
                                                                     "model.safetensors", "report.html"]
    said, last = two.stdout, f"epoch {m2['epochs_run']:>3}/{m2['epochs']}"
    assert said.count("CollabData:") == 1 and said.count("training: ") == 1, said  # rank 0 alone speaks
    assert said.count(last) == 1 and said.count("wrote ") == 1 and "x 2 processes (bs " in said, said


SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys
    import torch, torch.distributed as dist
    import cflearn

    out = sys.argv[1]
    ds = cflearn.datasets.synthetic(n_users=300, n_items=200, density=0.1, seed=0)
    data = cflearn.from_df(ds, valid_pct=0.2, seed=42)
    digests = {}
    for preset, how in (("fast", {}), ("best", {}), ("fast_nn", {}), ("dual", {}), ("dual", {"rank_head": "learned"}),
                        ("rank", {})):
        learn = cflearn.collab_learner(data, preset, epochs=3, progress=False, **how)   # notices torchrun's group
        preset = preset + "".join(how.values())
        cflearn.fit(learn)
        h = hashlib.sha256()
        for k, v in sorted(learn.model.state_dict().items()):
            h.update(k.encode()); h.update(v.detach().cpu().numpy().tobytes())
        digests[preset] = [h.hexdigest(), learn.recorder.values[-1][-1], type(learn.model).__name__]
        cflearn.save(learn, f"{out}/{preset}-rank{dist.get_rank()}.safetensors")
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, digests)
    rank = dist.get_rank()
    if rank == 0:
        json.dump({"world": dist.get_world_size(), "ranks": gathered}, open(f"{out}/digests.json", "w"))
    from cflearn.train._distributed import leave
    leave()  # what cflearn does at exit: no thread of the group may outlive it (they aborted ranks at exit)
    threads = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    json.dump(threads, open(f"{out}/threads-rank{rank}.json", "w"))
""")


def test_a_script_under_torchrun_ends_with_identical_weights_on_every_rank(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([*TORCHRUN, str(script), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "digests.json").read_text())
    assert result["world"] == 2
    rank0, rank1 = result["ranks"]
    for preset in ("fast", "best", "fast_nn", "dual", "duallearned", "rank"):
        assert rank0[preset] == rank1[preset], preset  # same weights (and the same validation loss)
        assert (tmp_path / f"{preset}-rank0.safetensors").is_file()
        assert not (tmp_path / f"{preset}-rank1.safetensors").exists()  # only rank 0 writes
    assert rank0["best"][2] == "HybridDotBias" and rank0["fast_nn"][2] == "NN"
    for r in (0, 1):  # DDP's import of torch._dynamo used to keep the group (and its gloo threads) alive
        threads = json.loads((tmp_path / f"threads-rank{r}.json").read_text())
        assert threads and not [t for t in threads if "gloo" in t], threads
    # each rank's share of a step is half of the one-process batch: one process gives the same run
    ds = cflearn.datasets.synthetic(n_users=300, n_items=200, density=0.1, seed=0)
    learn = cflearn.collab_learner(cflearn.from_df(ds, valid_pct=0.2, seed=42), "fast", epochs=3, progress=False)
    cflearn.fit(learn)
    assert rank0["fast"][1] == pytest.approx(learn.recorder.values[-1][-1], abs=1e-4)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _local_rank(pid: int) -> str | None:
    try:
        env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"LOCAL_RANK="):
            return item.split(b"=", 1)[1].decode()
    return None


def test_a_killed_rank_ends_the_run_with_one_clear_error(synth, tmp_path):
    big = cflearn.datasets.synthetic(n_users=2000, n_items=1000, density=0.05, seed=1)
    csv = tmp_path / "ratings.csv"
    big.ratings.rename(columns={"user": "userId", "item": "movieId"}).to_csv(csv, index=False)
    out = tmp_path / "run"
    proc = subprocess.Popen([*RUN, *_fit_args(csv, out, "--nproc", "2", "--epochs", "400")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until training is under way
        if "epoch   3/400" in line:
            break
    victim = next(p for p in _descendants(proc.pid) if _local_rank(p) == "1")
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 1
    assert took < 60, took  # never a hang
    assert err.strip().count("\n") == 0, err  # one line
    assert err.startswith("cflearn: error: training process 1 of 2 was killed by signal 9"), err
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_bad_input_under_two_processes_is_one_line(ml_path, tmp_path):
    csv = ml_path / "ml-latest-small" / "ratings.csv"
    args = _fit_args(csv, tmp_path / "run", "--nproc", "2")
    args[args.index("userId")] = "userid"
    proc = subprocess.run([*RUN, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("cflearn: error: no user column 'userid' in the table (did you mean 'userId'?); "
                                   "columns are ['userId', 'movieId', 'rating', 'timestamp']")
    assert not (tmp_path / "run").exists()


def _running(pids: list[int]) -> list[int]:
    """The processes of ``pids`` that still run (zombies, gone but not reaped, do not count)."""
    alive = []
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_a_signalled_nproc_run_leaves_no_process_and_no_run(ratings_csv, tmp_path):
    """Ctrl-C, SIGTERM or SIGKILL to `cflearn fit --nproc 2` used to leave torchrun and its workers
    running, and they wrote the whole run into --out later. The three runs go at once."""
    runs = {}
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        out = tmp_path / sig.name / "run"
        proc = subprocess.Popen([*RUN, *_fit_args(ratings_csv, out, "--nproc", "2", "--epochs", "400")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs[sig] = (proc, code, out)
    families = {}
    for sig, (proc, _, _) in runs.items():
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until training is under way
            if "epoch   3/400" in line:
                break
        families[sig] = _descendants(proc.pid)
        assert len(_running(families[sig])) >= 3  # torchrun and its two workers
        proc.send_signal(sig)
    for sig, (proc, code, _) in runs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == code, (sig, err)
        if sig != signal.SIGKILL:
            assert err.strip() == ("cflearn: interrupted; the 2 training processes were stopped and nothing was "
                                   "written (an earlier run in --out is untouched)"), err
    t0 = time.monotonic()
    family = [pid for pids in families.values() for pid in pids]
    while _running(family) and time.monotonic() - t0 < 60:
        time.sleep(0.2)
    assert not _running(family), "processes left running"
    time.sleep(2)
    for sig, (_, _, out) in runs.items():  # nothing written, then or later
        assert not out.exists() and not list(out.parent.glob(".run.tmp-*")), sig


def test_nproc_is_bounded_by_the_cores_and_refused_for_presets_on_fastais_loaders(tmp_path, capsys):
    from cflearn.cli import main

    assert main(_fit_args(tmp_path / "r.csv", tmp_path / "run", "--nproc", "999", "--device", "cpu")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--nproc 999 is more than the" in err and "CPU core(s)" in err
    args = _fit_args(tmp_path / "r.csv", tmp_path / "run", "--nproc", "2")
    args[args.index("fast")] = "book"  # fastai's own loaders: one process, said before any process starts
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "preset 'book' uses fastai's own loaders" in err and "(dual, rank," in err
