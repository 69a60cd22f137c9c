"""`return_large_blocks` (oracle/memory.py): glibc accepts the fixed mmap threshold, with no
library search (find_library runs `ldconfig -p` in a subprocess)."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from oracle.memory import return_large_blocks


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_glibc_takes_the_threshold_without_a_library_search(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_search(name: str) -> str:
        raise AssertionError(f"find_library({name!r}) called")

    monkeypatch.setattr(ctypes.util, "find_library", no_search)
    assert return_large_blocks() is True
