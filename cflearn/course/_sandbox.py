"""The sandbox a submission's kernel runs in while it is graded, with bubblewrap (``bwrap``).

The kernel sees the whole file system read-only (the installed package, the course and the data
included) except its own run folder, has a private ``/tmp``, no network (its own network
namespace: only a loopback of its own), its own process namespace (it cannot see or signal the
grader, and every process it starts dies with it), runs as ``nobody`` (uid 65534) inside its user
namespace, and has limits on CPU time, memory (address space) and the size of a file it writes.
The grader talks to it over Unix sockets in the run folder and interrupts it with Jupyter's
interrupt message.

The checks do not run in the kernel (see :mod:`cflearn.course._grade`). What the sandbox does not
stop: the notebook can read what the grading user can read (the course's reference answers
included), and it decides what its answers return to the checks.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["bwrap", "kernel_manager", "MISSING", "FILE_LIMIT", "MEMORY_LIMIT"]

MISSING = ("not sandboxed: bubblewrap (bwrap) is not installed or cannot run here (apt-get install bubblewrap); "
           "the notebook could reach the grading user's files, the network and processes")
"""The note a grading gets when no sandbox can be made."""

FILE_LIMIT = 2**30
"""The largest file a graded notebook may write (bytes)."""

MEMORY_LIMIT = 8 * 2**30
"""The address space a graded notebook's kernel may map (bytes): past it an allocation fails with
``MemoryError`` in the cell that asked for it, instead of the machine running out of memory."""

_BOX = ("--unshare-all", "--die-with-parent", "--unshare-user", "--uid", "65534", "--gid", "65534",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp")


@functools.cache
def bwrap() -> str | None:
    """The path of a ``bwrap`` that can make the sandbox here, or ``None``."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        probe = subprocess.run([path, *_BOX, "true"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if probe.returncode == 0 else None


def command(run: Path, cpu_seconds: int) -> list[str]:
    """The prefix that runs a command in the sandbox, writable only in ``run``."""
    path = bwrap()
    if path is None:
        raise RuntimeError(MISSING)
    from ..datasets import cache_dir

    prlimit = shutil.which("prlimit")
    limits = [prlimit, f"--cpu={cpu_seconds}", f"--fsize={FILE_LIMIT}", f"--as={MEMORY_LIMIT}"] if prlimit else []
    return [path, *_BOX, "--bind", str(run), str(run), "--chdir", str(run), "--setenv", "HOME", str(run),
            "--setenv", "MPLCONFIGDIR", str(run), "--setenv", "TMPDIR", "/tmp",
            "--setenv", "CFLEARN_CACHE", str(cache_dir()),  # the grader's data, read-only (HOME is the run folder)
            "--setenv", "MALLOC_ARENA_MAX", "4",  # glibc's arenas per core would map much of the limit on big machines
            "--unsetenv", "JPY_PARENT_PID",  # its parent is the sandbox's init: the kernel must not take that as gone
            *limits]


def kernel_manager(run: Path, cpu_seconds: int) -> Any:
    """A Jupyter kernel manager whose kernel starts in the sandbox, talks over Unix sockets in
    ``run`` (the sandbox has no network), and is interrupted by message (a signal from outside the
    sandbox's process namespace does not reach it)."""
    from jupyter_client.manager import AsyncKernelManager

    class Sandboxed(AsyncKernelManager):  # type: ignore[misc]
        sandboxed = True

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return command(run, cpu_seconds) + list(super().format_kernel_cmd(extra_arguments))

    km = Sandboxed(kernel_name="python3", transport="ipc", ip=str(run / ".kernel"),
                   connection_file=str(run / ".kernel.json"))
    spec = km.kernel_spec
    if spec is not None:
        spec.interrupt_mode = "message"
    return km
