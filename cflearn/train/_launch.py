"""Several training processes from one command: ``cflearn fit --nproc N`` starts ``torchrun`` and owns it.

Nothing here imports torch, so the command line decides quickly whether it runs under torchrun
(:func:`torchrun_env`) and starts it (:func:`launch`). The launcher starts ``torchrun`` in a
session of its own, forwards Ctrl-C (SIGINT), SIGTERM and SIGHUP to it, waits until every process
has gone (SIGKILL after a grace period) and exits 130 / 143 with one line; ``torchrun`` dies with
the launcher (``PR_SET_PDEATHSIG``), and each worker watches the launcher (:func:`watch_launcher`),
so a launcher killed outright (SIGKILL) leaves no process behind, and nothing is committed after it
died.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import ConfigError, ConfigWarning

__all__ = ["TorchrunEnv", "torchrun_env", "launch", "max_processes", "watch_launcher", "launcher_alive",
           "without_nproc", "LAUNCHER_VAR"]

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The variables torchrun sets for every process it starts; all of them mean "started by torchrun"."""
LAUNCHER_VAR = "CFLEARN_LAUNCHER_PID"
"""Set by :func:`launch` for the workers: the launcher they watch."""
GRACE_S = 10.0
"""Seconds the launcher waits after forwarding a signal before it kills what is left."""


@dataclass(frozen=True)
class TorchrunEnv:
    """This process's place in a torchrun job."""

    rank: int
    world: int
    local_rank: int


_warned: set[str] = set()


def torchrun_env() -> TorchrunEnv | None:
    """The torchrun job this process belongs to, from torchrun's whole set of variables
    (:data:`TORCHRUN_VARS`), or ``None``: one process. A partial set (``RANK=1`` left in a shell) is
    one process, with a warning, unless it holds a ``WORLD_SIZE`` above 1 or not a number (fastai reads
    that variable itself and would gather across processes that do not exist): that, and values that
    are not numbers in a whole set, are a :class:`ConfigError`."""
    present = [v for v in TORCHRUN_VARS if os.environ.get(v, "").strip()]
    if not present:
        return None
    if len(present) < len(TORCHRUN_VARS):
        missing = [v for v in TORCHRUN_VARS if v not in present]
        world = os.environ.get("WORLD_SIZE", "").strip()
        if world and not (world.isdigit() and int(world) <= 1):  # fastai reads it and would gather from peers
            raise ConfigError(f"the environment sets WORLD_SIZE={world!r} but not {', '.join(missing)}: not a "
                              "torchrun job, yet fastai would train as one; unset WORLD_SIZE, or start several "
                              "processes with --nproc N or torchrun")
        key = ",".join(present)
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"the environment sets {', '.join(present)} but not {', '.join(missing)}; torchrun sets "
                          "all of them, so this runs as one process (unset them, or start several processes with "
                          "--nproc N or torchrun)", ConfigWarning, stacklevel=2)
        return None
    values = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        text = os.environ[name].strip()
        if not re.fullmatch(r"\d+", text):
            raise ConfigError(f"{name}={text!r} in the environment is not a whole number; torchrun sets it (start "
                              "with torchrun or --nproc N, or unset the torchrun variables)")
        values[name] = int(text)
    if values["WORLD_SIZE"] < 1 or not values["RANK"] < values["WORLD_SIZE"]:
        raise ConfigError(f"RANK={values['RANK']} does not fit WORLD_SIZE={values['WORLD_SIZE']} in the "
                          "environment; torchrun sets RANK from 0 to WORLD_SIZE - 1")
    if not 0 < values["MASTER_PORT"] < 65536:
        raise ConfigError(f"MASTER_PORT={values['MASTER_PORT']} in the environment is not a port (1-65535)")
    return TorchrunEnv(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def max_processes(device: str | None) -> tuple[int, str]:
    """How many training processes this machine can take: one per GPU on CUDA, else one per CPU core."""
    if device is None or device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count(), "GPU(s)"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return cores, "CPU core(s)"


def without_nproc(argv: Sequence[str]) -> list[str]:
    """The command line without ``--nproc N`` (what each worker runs)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: deliver SIGTERM to this process (torchrun) when its parent (the launcher) dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``cflearn <argv>`` under torchrun with ``nproc`` processes and own them until they are gone.

    Returns:
        0 on success; 1 when a process failed (one line says which); 130 / 143 after Ctrl-C /
        SIGTERM (the processes were stopped; nothing is written after the signal).
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "--monitor-interval=0.5", "-m", "cflearn", *argv]
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads),
           LAUNCHER_VAR: str(os.getpid())}
    got: list[int] = []
    linux = sys.platform.startswith("linux")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
                            preexec_fn=_die_with_parent if linux else None)

    def forward(signum: int, _frame: object) -> None:
        got.append(signum)
        _signal_group(proc.pid, signal.SIGTERM if signum == signal.SIGHUP else signum)
        timer = threading.Timer(GRACE_S, _signal_group, (proc.pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in handled}
    try:
        _, err = proc.communicate()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if got:
        _signal_group(proc.pid, signal.SIGKILL)  # whatever is left of the launched session
        ours = [line for line in err.splitlines() if line.startswith("cflearn: interrupted;")]
        done = ours[0] if ours and "already written" in ours[0] else (
            f"cflearn: interrupted; the {nproc} training processes were stopped and nothing was written (an earlier "
            "run in --out is untouched)")
        print(done, file=sys.stderr)
        return 130 if got[0] == signal.SIGINT else 143
    if proc.returncode == 0:
        sys.stderr.write("".join(line for line in err.splitlines(keepends=True) if not _torchrun_noise(line)))
        return 0
    ours = [line for line in err.splitlines() if line.startswith("cflearn: error:")]
    if ours:
        print(ours[0], file=sys.stderr)
        return 1
    cause = err.rpartition("Root Cause")[2]  # torchrun's summary: the first process that failed
    who = re.search(r"\brank\s*:\s*(\d+)", cause)
    code = re.search(r"\bexitcode\s*:\s*(-?\d+)", cause)
    if who and code:
        status = int(code.group(1))
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        print(f"cflearn: error: training process {who.group(1)} of {nproc} {how}; the run was stopped and no "
              "outputs were written", file=sys.stderr)
    else:
        print(f"cflearn: error: distributed training failed (torchrun exit status {proc.returncode}); no outputs "
              "were written", file=sys.stderr)
    return 1


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _torchrun_noise(line: str) -> bool:
    return "OMP_NUM_THREADS" in line or line.startswith("*****") or line.startswith("W") and "torch.distributed" in line


def launcher_alive() -> bool:
    """``False`` when this worker was started by :func:`launch` and the launcher is gone (or a zombie)."""
    pid = int(os.environ.get(LAUNCHER_VAR, "0") or 0)
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def watch_launcher(interval: float = 0.25) -> None:
    """In a worker started by :func:`launch`: end this process (exit 143) as soon as the launcher or
    torchrun is gone, so that a launcher killed with SIGKILL leaves nothing running and nothing written."""
    if not os.environ.get(LAUNCHER_VAR):
        return
    parent = os.getppid()  # torchrun

    def watch() -> None:
        while launcher_alive() and os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)  # the command's handler cleans up (its temporary folder) ...
        time.sleep(GRACE_S / 2)
        from ..runs._runs import remove_unfinished

        remove_unfinished()  # ... unless the main thread is stuck in a collective with a peer that is gone
        os._exit(143)

    threading.Thread(target=watch, name="cflearn-launcher-watch", daemon=True).start()
