"""Run folders that are all or nothing: a lock, a private temporary folder, one rename at the end.

``cflearn fit --out DIR`` (and ``cflearn demo``) hold ``.DIR.lock`` beside ``DIR`` while they run, so
a second run into the same folder fails at once. Every file of the run is written into a private
``.DIR.tmp-*`` folder next to ``DIR``; at the end the old run (if replaced) moves aside to
``.DIR.old-*``, the new folder takes its name, and the old one is deleted. Whatever kills the
process, ``DIR`` is the old run or the new one, never a mix; the next run removes what a dead run
left behind (restoring the old run if the kill fell between the two renames).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from ._errors import ConfigError
from ._io import _umask

__all__ = ["RunFolder", "COMMITTED"]

RUN_FILES = ("metrics.json", "loss.png", "model.safetensors", "report.html")
COMMITTED: list[Path] = []
"""Run folders this process has put in place (so that an interrupt message can say what was written)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class RunFolder:
    """Context manager: ``with RunFolder(out, force=...) as tmp:`` write into ``tmp``, then ``commit()``.

    Args:
        out: the run folder.
        force: replace a folder that holds files (as a unit).
        kind: ``"fit"`` or ``"demo"``; a demo replaces an earlier *demo* run without ``force``.
    """

    def __init__(self, out: str | Path, *, force: bool = False, kind: str = "fit"):
        self.out, self.force, self.kind = Path(out), force, kind
        self.lock = self.out.parent / f".{self.out.name}.lock"
        self.tmp: Path | None = None
        self._held = False

    def __enter__(self) -> Path:
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {self.out} is a file; give a folder")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the folder of --out {self.out}: {e.strerror or e}") from None
        self._acquire()
        try:
            self._recover()
            self._check_replaceable()
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-{os.getpid()}-", dir=self.out.parent))
            os.chmod(self.tmp, 0o777 & ~_umask())
        except BaseException:
            self._release()
            raise
        return self.tmp

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._release()

    def commit(self) -> None:
        """Put the finished run in place of ``out`` (the old run, if any, goes as a unit). Ctrl-C waits
        until both renames are done; :data:`COMMITTED` then names the folder."""
        assert self.tmp is not None
        masked = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
        if masked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            old = None
            if self.out.exists():
                old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
                os.rename(self.out, old)
            os.rename(self.tmp, self.out)
            self.tmp = None
            COMMITTED.append(self.out)
        finally:
            if masked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    # -- internals ------------------------------------------------------------------------------------
    def _acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid):
                    raise ConfigError(f"another cflearn run (process {pid}) is writing to {self.out}; wait for it or "
                                      "choose another --out") from None
                self.lock.unlink(missing_ok=True)  # a dead run's lock
                continue
            except OSError as e:
                raise ConfigError(f"cannot write beside --out {self.out}: {e.strerror or e}") from None
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self._held = True
            return
        raise ConfigError(f"could not take the lock {self.lock}; remove it if no cflearn run is writing there")

    def _release(self) -> None:
        if self._held:
            self.lock.unlink(missing_ok=True)
            self._held = False

    def _recover(self) -> None:
        """Remove what dead runs left: temporary folders; an old run moved aside goes back if ``out`` is gone."""
        parent, name = self.out.parent, self.out.name
        olds = sorted(parent.glob(f".{name}.old-*"))
        if olds and not self.out.exists():
            os.rename(olds[0], self.out)
            olds = olds[1:]
        for stale in [*parent.glob(f".{name}.tmp-*"), *olds]:
            shutil.rmtree(stale, ignore_errors=True)

    def _check_replaceable(self) -> None:
        if not self.out.exists() or not any(self.out.iterdir()) or self.force:
            return
        if self.kind == "demo" and _run_kind(self.out) == "demo":
            return
        what = "a `cflearn fit` run" if _run_kind(self.out) == "fit" else "files"
        raise ConfigError(f"--out {self.out} already holds {what}; choose a new folder or add --force to replace it")


def _run_kind(folder: Path) -> str | None:
    """``"demo"`` or ``"fit"`` for a cflearn run folder, else ``None``."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    names = {p.name for p in folder.iterdir()}
    if not names <= set(RUN_FILES):
        return None  # other files too: not only a run
    return "demo" if metrics.get("command") == "demo" else "fit"

