"""Run folders that are all or nothing, and that never take what cflearn did not write.

``cflearn fit --out DIR`` (and ``cflearn demo``) hold a lock on ``.DIR.lock`` beside ``DIR`` while
they run (``flock``: the kernel drops it when the process dies, so a dead run never blocks the
next), so a second run into the same folder fails at once. Every file of the run is written into a
private ``.DIR.tmp-*`` folder next to ``DIR``; at the end the old run (if replaced) moves aside to
``.DIR.old-*``, the new folder takes its name, and the old one is deleted file by file. Whatever
kills the process, ``DIR`` is the old run or the new one, never a mix; the next run removes what a
dead run left behind (restoring the old run if the kill fell between the two renames).

A run folder carries its own marker file (:data:`MARKER`). ``--force`` replaces a folder only when
it is a cflearn run holding nothing but the files cflearn wrote; it never replaces a folder that
holds other files, the input, the checkout, a home folder or the working directory
(:func:`check_target`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from .._errors import ConfigError, printable
from .._io import _umask, atomic_write_json

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: O_EXCL lock files (see _acquire)
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunFolder", "COMMITTED", "MARKER", "check_target", "owned_files", "signals_deferred",
           "remove_unfinished"]

MARKER = ".cflearn-run"
"""The file every run folder holds: JSON naming the command that wrote it."""
RUN_FILES = ("metrics.json", "loss.png", "model.safetensors", "report.html")
COMMITTED: list[Path] = []
"""Run folders this process has put in place (so that an interrupt message can say what was written)."""
_UNFINISHED: set[Path] = set()


def remove_unfinished() -> None:
    """Delete the private folders of this process's runs still under way (a worker about to end with
    ``os._exit`` because its launcher died while its main thread was stuck)."""
    for tmp in list(_UNFINISHED):
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block is done, then act on the first that came.

    Python runs signal handlers in the main thread whichever thread the kernel picked, so blocking
    the signals in the main thread (``pthread_sigmask``) does not hold them once another thread runs
    (a worker's launcher watch); swapping the handlers does. Outside the main thread it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[tuple[int, Any]] = []

    def hold(signum: int, frame: Any) -> None:
        got.append((signum, frame))

    # a handler installed outside Python (getsignal: None) could not be put back: that signal is left alone
    ours = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    previous: dict[int, Any] = {s: signal.signal(s, hold) for s in ours}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if got:
        signum, frame = got[0]
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def real_path(path: Path, what: str) -> Path:
    """``path`` with every link followed; a loop of symbolic links is a :class:`ConfigError`."""
    try:
        return path.resolve()
    except RuntimeError:  # Python < 3.13 reports a symlink loop so; later versions raise OSError(ELOOP)
        pass
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
    raise ConfigError(f"{what} {printable(path)} is a loop of symbolic links; give a real folder")


def check_target(out: str | Path, inputs: Iterable[str | Path | None] = (), *, what: str = "--out") -> Path:
    """Refuse, whatever ``--force`` says, an output folder whose replacement would take what is not a
    run: one that is or holds an input file, the cflearn checkout (or the installed package), a home
    folder, the working directory or the file system's root. Returns the resolved folder."""
    path = Path(out).expanduser()
    resolved = real_path(path, what)
    for src in inputs:
        if src is not None and _is_within(real_path(Path(src).expanduser(), "the input"), resolved):
            held = "is" if Path(src).expanduser().resolve() == resolved else "holds"
            raise ConfigError(f"{what} {printable(path)} {held} the input {printable(src)}; a run replaces its folder "
                              "as a unit, so choose a separate output folder")
    package = Path(__file__).resolve().parents[1]  # cflearn/ (this module is cflearn/runs/_runs.py)
    checkout = package.parent if (package.parent / "pyproject.toml").is_file() else package
    protected = {"the cflearn checkout": checkout, "your home folder": Path.home().resolve(),
                 "the working directory": Path.cwd().resolve(), "the file system's root": Path(resolved.anchor)}
    for name, folder in protected.items():
        if _is_within(folder, resolved):
            held = "is" if folder == resolved else "holds"
            raise ConfigError(f"{what} {printable(path)} {held} {name}; choose a new folder for the run (e.g. "
                              "runs/NAME)")
    return resolved


def owned_files(folder: Path) -> tuple[str | None, list[str]]:
    """``(kind, foreign)``: ``"fit"`` / ``"demo"`` when ``folder`` is a cflearn run (``None`` otherwise),
    and the names in it that cflearn did not write there (sorted; sub-folders count as foreign).

    A run folder holds :data:`MARKER`; one written before the marker existed is recognised by its
    ``metrics.json`` (with the ``command`` that wrote it) and holding only run files."""
    names = sorted(p.name for p in folder.iterdir())
    kind = None
    marker = _json_file(folder / MARKER)
    if marker is not None:
        kind = marker.get("command")
    else:
        metrics = _json_file(folder / "metrics.json")
        if metrics is not None and set(names) <= set(RUN_FILES) and "command" in metrics:
            kind = metrics["command"]
    if kind not in ("fit", "demo"):
        return None, names
    return str(kind), [n for n in names if n not in (*RUN_FILES, MARKER) or not (folder / n).is_file()]


def _json_file(path: Path) -> dict[str, Any] | None:
    """A JSON object from a regular file (not a link, a pipe or a device, which could hang a read), else ``None``."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20:
            return None
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _named(parent: Path, prefix: str) -> list[Path]:
    """The entries of ``parent`` whose names start with ``prefix`` (taken literally: a folder named
    ``runs/*`` matches nothing but itself, where ``glob`` would match every run)."""
    try:
        return [parent / n for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return []


def _pid_text(fd: int) -> bool:
    """Whether a lock file holds nothing or a process ID (digits)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 33).decode("ascii", "replace").strip()
    return text == "" or text.isdigit()


def _what(st: os.stat_result) -> str:
    if stat.S_ISFIFO(st.st_mode):
        return "a named pipe"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink != 1:
        return "a file with other names (a hard link)"
    return "a file with other contents"


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
        force: replace a cflearn run that is already there (as a unit).
        kind: ``"fit"`` or ``"demo"``; a demo replaces an earlier *demo* run without ``force``.
        inputs: files the run reads (``out`` must not hold them).
    """

    def __init__(self, out: str | Path, *, force: bool = False, kind: str = "fit",
                 inputs: Iterable[str | Path | None] = ()):
        given = Path(out).expanduser()
        # one real path: two spellings of a folder (a linked parent) take the same lock
        self.out = real_path(given.parent, "--out's folder") / given.name if given.name not in ("", ".", "..") \
            else real_path(given, "--out")
        self.shown = Path(out)  # as the user wrote it, in messages
        self.force, self.kind, self.inputs = force, kind, list(inputs)
        self.lock = self.out.parent / f".{self.out.name}.lock"
        self.tmp: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> Path:
        if self.out.is_symlink():
            target = printable(os.readlink(self.out))
            raise ConfigError(f"--out {printable(self.shown)} is a symbolic link (to {target}); give the real folder, "
                              "or a new one")
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {printable(self.shown)} is a file; give a folder")
        check_target(self.shown, self.inputs)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the folder of --out {printable(self.shown)}: {e.strerror or e}") from None
        self._acquire()
        try:
            self._recover()
            self._check_replaceable()
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-{os.getpid()}-", dir=self.out.parent))
            _UNFINISHED.add(self.tmp)
            os.chmod(self.tmp, 0o777 & ~_umask())
            atomic_write_json(self.tmp / MARKER, {"command": self.kind, "written_by": "cflearn"})
        except BaseException:
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                _UNFINISHED.discard(self.tmp)
            self._release()
            raise
        return self.tmp

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with signals_deferred():  # a second Ctrl-C / SIGTERM must not stop the clean-up half-way
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                _UNFINISHED.discard(self.tmp)
            self._release()

    def commit(self) -> None:
        """Put the finished run in place of ``out`` (the old run, if any, goes as a unit). Ctrl-C waits
        until both renames are done; :data:`COMMITTED` then names the folder.

        Raises:
            ConfigError: files that cflearn did not write appeared in ``out`` during the run (nothing
                is replaced then).
        """
        assert self.tmp is not None
        if self.out.exists():
            self._check_replaceable()  # someone may have put files there while the run trained
        with signals_deferred():
            old = None
            if self.out.exists():
                old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
                os.rename(self.out, old)
            os.rename(self.tmp, self.out)
            _UNFINISHED.discard(self.tmp)
            self.tmp = None
            COMMITTED.append(self.out)
        if old is not None:
            _remove_run(old)

    # -- internals ------------------------------------------------------------------------------------
    def _acquire(self) -> None:
        """Take the lock. With ``flock`` the lock file may stay or go: the lock is the kernel's, held
        while this process lives, and a file replaced under our feet is detected (inode check)."""
        if fcntl is None:  # pragma: no cover
            return self._acquire_exclusive()
        for _ in range(100):
            fd = self._open_lock()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f" (process {holder})" if holder and _alive(holder) else ""
                raise ConfigError(f"another cflearn run{who} is writing to {printable(self.shown)}; wait for it or "
                                  "choose another --out") from None
            try:
                same = os.stat(self.lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder before us removed the file as it left: take the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            return
        raise ConfigError(f"could not take the lock {printable(self.lock)}; remove it if no cflearn run is writing "
                          "there")

    def _open_lock(self) -> int:
        """The lock file, opened without following a link or blocking on a pipe; only a regular file with
        one name, empty or holding a process ID (what cflearn writes), is taken."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fix = f"it is not a cflearn lock: remove {printable(self.lock)} (or choose another --out)"
        try:
            fd = os.open(self.lock, flags, 0o644)
        except OSError as e:
            if os.path.islink(self.lock):
                raise ConfigError(f"{printable(self.lock)} is a symbolic link; {fix}") from None
            raise ConfigError(f"cannot write beside --out {printable(self.shown)}: {e.strerror or e}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > 32 or not _pid_text(fd):
            os.close(fd)
            raise ConfigError(f"{printable(self.lock)} is {_what(st)}; {fix}")
        return fd

    def _acquire_exclusive(self) -> None:  # pragma: no cover - platforms without flock
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise ConfigError(f"another cflearn run is writing to {printable(self.shown)} (or one died: remove "
                              f"{printable(self.lock)})") from None
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def _release(self) -> None:
        if self._fd is not None:
            self.lock.unlink(missing_ok=True)  # still holding the lock: nobody can be half-way in
            os.close(self._fd)
            self._fd = None

    def _recover(self) -> None:
        """Remove what dead runs left: temporary folders; an old run moved aside goes back if ``out`` is gone."""
        parent, name = self.out.parent, self.out.name
        olds = sorted(p for p in _named(parent, f".{name}.old-") if p.is_dir() and owned_files(p)[0] is not None)
        if olds and not self.out.exists():
            os.rename(olds[0], self.out)
            olds = olds[1:]
        for old in olds:
            _remove_run(old)
        for stale in _named(parent, f".{name}.tmp-"):
            if stale.is_dir() and (not any(stale.iterdir()) or (stale / MARKER).is_file()):
                shutil.rmtree(stale, ignore_errors=True)  # our own private folder (empty, or marked)

    def _check_replaceable(self) -> None:
        if not self.out.exists() or not any(self.out.iterdir()):
            return
        kind, foreign = owned_files(self.out)
        if kind is None or foreign:
            shown = ", ".join(printable(n) for n in foreign[:3])
            more = " ..." if len(foreign) > 3 else ""
            what = "files cflearn did not write" if kind is None else "a cflearn run and other files"
            raise ConfigError(f"--out {printable(self.shown)} holds {what} ({shown}{more}); choose a new folder "
                              "(--force replaces only a folder cflearn wrote)")
        if self.force or (self.kind == "demo" and kind == "demo"):
            return
        raise ConfigError(f"--out {printable(self.shown)} already holds a `cflearn {kind}` run; choose a new folder or "
                          "add --force to replace it")


def _read_pid(fd: int) -> int:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


def _remove_run(folder: Path) -> None:
    """Delete a run folder cflearn wrote, file by file: only its own files, then the folder if empty."""
    for name in (*RUN_FILES, MARKER):
        try:
            (folder / name).unlink()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            pass
    for stray in folder.glob(".*.tmp"):  # an atomic write that a kill interrupted
        stray.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # something else is in it: leave it
