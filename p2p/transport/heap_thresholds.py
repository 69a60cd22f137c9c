"""glibc's heap thresholds set once where its own rule leaves them by chance, for bulk buffers.

Every QUIC datagram we build or read passes through several buffers of its size (64 KiB to a
loopback peer: the packet, its payload, the AEAD's output, the datagram), each allocated and
freed within the datagram's handling; a TCP stream reading in bulk takes a 512 KiB block per
read (`aio_stream`). glibc's malloc gives the top of its heap back to the kernel
(brk) whenever a free leaves more than its trim threshold there, and takes it back, faulting every
page in again, at the next allocation. Both thresholds are dynamic: the trim threshold is 128 KiB
until the process frees a block that was large enough to be mmapped, which raises the mmap
threshold to that block's size and the trim threshold to twice it. Whether and when that happens
depends on what ran before, so the same code either kept its heap (~7-10k page faults for a
process sending 256 MiB, start-up included) or trimmed and regrew it thousands of times (~60k to
145k, 0.2-0.3 s of system CPU: the sender +40 %), from one run to the next: the QUIC bulk row went
from 1.52x go-quic to 0.80x and back with unrelated changes to the heap's layout (and TCP's
512 KiB reads alone cost echo over one stream a quarter of its throughput: 87 page faults per MiB
instead of 18).

`pin_heap_thresholds` sets the two thresholds to where glibc's rule puts them after a 2 MiB block
(mmap 2 MiB, trim 4 MiB) before the first QUIC socket opens or a TCP stream first reads in
bulk, so a process keeps up to 4 MiB of
freed heap instead of returning and refaulting it per datagram (go's runtime returns memory in
the background, minutes later). It does nothing off glibc, or when the process chose its own
(`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, or either in `GLIBC_TUNABLES`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "pin_heap_thresholds"]

#: Blocks under this come from the heap (glibc's dynamic rule: the largest mmapped block freed).
MMAP_THRESHOLD = 2 << 20
#: Free memory at the top of the heap is returned to the kernel only above this (the rule: 2x).
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
_M_TRIM_THRESHOLD = -1  # mallopt(3) parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_CHOSEN_BY_PROCESS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_pinned: bool | None = None  # once per process: whether the thresholds are ours


def _glibc() -> Any:
    """The C library's handle if it is glibc, else None."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
    except (ValueError, OSError, AttributeError):  # no such name: not glibc
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def _chosen_by_process(environ: Mapping[str, str]) -> bool:
    tunables = environ.get("GLIBC_TUNABLES", "")
    return (any(name in environ for name in _CHOSEN_BY_PROCESS)
            or "malloc.mmap_threshold" in tunables or "malloc.trim_threshold" in tunables)


def pin_heap_thresholds(libc: Any = None, environ: Mapping[str, str] | None = None) -> bool:
    """Set glibc's mmap and trim thresholds (see the module), once per process; whether they
    are set. `libc` and `environ` are for tests (default: the process's C library, os.environ)."""
    global _pinned
    if _pinned is not None and libc is None and environ is None:
        return _pinned
    env = os.environ if environ is None else environ
    if _chosen_by_process(env):
        pinned = False
    else:
        lib = _glibc() if libc is None else libc
        pinned = (lib is not None
                  and lib.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                  and lib.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    if libc is None and environ is None:
        _pinned = pinned
    return pinned
