"""glibc's allocator tuned for full-resolution activations: keep large freed blocks in the heap instead of an
mmap / munmap and page faults for every tensor (a fifth of a full-resolution conv's time on the CPU:
docs/performance.md)."""

from __future__ import annotations

import contextlib
import functools

__all__ = ["keep_freed_memory", "malloc_tuning", "trim_heap", "trim_if_tuned"]


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_depth = 0


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, Windows, musl): nothing to tune
        return None


def keep_freed_memory() -> bool:
    """glibc only: serve big tensors from the heap and keep large freed blocks there (no per-tensor mmap /
    munmap and page faults). The thresholds stay raised for the process: glibc's default is a *dynamic*
    threshold that mallopt cannot restore, and fixing it back at 128 KiB made every later tensor an mmap
    (docs/performance.md). Returns False where there is no glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    return True


def trim_heap() -> bool:
    """glibc only: return the heap's free memory to the system now (malloc_trim). False where there is no
    glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@contextlib.contextmanager
def malloc_tuning():
    """:func:`keep_freed_memory` for the duration of the block (re-entrant), :func:`trim_heap` at its end."""
    global _malloc_depth
    _malloc_depth += 1
    if _malloc_depth == 1:
        keep_freed_memory()
    try:
        yield
    finally:
        _malloc_depth -= 1
        if _malloc_depth == 0:
            trim_heap()


def trim_if_tuned() -> None:
    """Inside :func:`malloc_tuning` only: return the freed memory now (between two large phases of work)."""
    if _malloc_depth:
        trim_heap()
