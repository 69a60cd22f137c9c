"""Freed answers go back to the system: the worker process's malloc setting (glibc only).

A worker holds large answers (a 4.7 MB answer for 1 MiB of `<`; up to the answer budget, 64 MiB,
while requesters do not read) and must give that memory back once they are gone. glibc maps a
block of at least its mmap threshold on its own and unmaps it when freed, but raises that threshold
to the size of each mapped block freed (up to 32 MiB): after one large buffer is freed, blocks of
answer size come from the heap, where freed memory stays in the process's RSS (measured: 48 unread
answers left +65..80 MiB after their streams were gone). A fixed threshold turns that adjustment
off, so every block from 1 MiB up is its own mapping, returned when freed; smaller ones (pieces of
an answer being built, frames) are reused from the heap.
"""

from __future__ import annotations

import ctypes
import logging

__all__ = ["return_large_blocks"]

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc malloc.h


def return_large_blocks(threshold: int = 1 << 20) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes for this process (see the module
    docstring); False, changing nothing, where the C library is not glibc."""
    try:
        # The process's own symbols, where the C library's are: no library search (find_library
        # runs `ldconfig -p`, a subprocess, ~0.35 s at start-up on a loaded machine).
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
    return done
