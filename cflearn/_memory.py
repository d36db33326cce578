"""Hand freed memory back to the system between the steps of a long run (large files)."""

from __future__ import annotations

import ctypes
import gc

__all__ = ["release_memory", "release_arrow_memory"]


def release_arrow_memory() -> None:
    """Hand the memory of freed Arrow buffers back to the system (Arrow's pool keeps it otherwise)."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass


def release_memory(collect: bool = True) -> None:
    """Collect garbage (with ``collect``) and return freed heap to the system.

    glibc's ``malloc`` keeps freed small and mid-sized blocks (training batches, per-chunk
    scores) for reuse, so a process's resident memory only grows from step to step;
    ``malloc_trim`` gives it back (about 1 GB after one epoch on 25M ratings). A no-op
    elsewhere (macOS, Windows, musl).
    """
    if collect:
        gc.collect()
    release_arrow_memory()
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process already runs on
    except (OSError, AttributeError, TypeError):
        return
    trim(0)
