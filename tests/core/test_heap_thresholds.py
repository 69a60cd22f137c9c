"""glibc's heap thresholds, set once a QUIC socket opens or a TCP stream first reads in bulk
(p2p/transport/heap_thresholds.py).

The property: once a process has opened a QUIC endpoint, buffers the size of a loopback datagram
freed at the top of the heap are not given back to the kernel and faulted in again each time
(without it, 256 MiB of QUIC bulk cost its sender ~60k-145k page faults instead of ~7.6k, at
random from run to run). Checked in a fresh process, where nothing else set the thresholds; and
the fallbacks: off glibc, a C library that refuses, or thresholds the process chose itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2p.transport import heap_thresholds
from p2p.transport.heap_thresholds import MMAP_THRESHOLD, TRIM_THRESHOLD, pin_heap_thresholds

TESTS = Path(__file__).resolve().parents[1]

# A fresh process opens a QUIC endpoint (as a listener does), then allocates thirty 100 KB
# buffers (written, so their pages are touched) and frees them, over and over, while small
# objects live on: the page faults this costs per cycle, and whether the thresholds were set.
# Whatever glibc's dynamic thresholds reached during start-up (here: well under 1.5 MiB), 3 MB
# freed at the top of the heap was trimmed and faulted in again every cycle (~730 pages).
_CHURN = r"""
import json, resource, sys
import anyio
sys.path.insert(0, sys.argv[1])
from quic_context import QuicTestContext
from p2p.identity import PrivateKey
from p2p.transport import heap_thresholds
from p2p.transport.quic import QuicTransport

CYCLES = 50

async def main():
    async with anyio.create_task_group() as tg:
        transport = QuicTransport(QuicTestContext(PrivateKey.generate(), tg.start_soon))
        await transport.listen("/ip4/127.0.0.1/udp/0/quic-v1", lambda conn: None)
        keep = []
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(CYCLES):
            blocks = [b"d" * 100_000 for _ in range(30)]
            keep.append(b"s" * 40)
            del blocks
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
        await transport.aclose()
        tg.cancel_scope.cancel()
    print(json.dumps({"pinned": heap_thresholds._pinned, "glibc": heap_thresholds._glibc() is not None,
                      "faults_per_cycle": faults / CYCLES}))

anyio.run(main)
"""


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("GLIBC_TUNABLES", None)
    return env


def test_a_process_with_a_quic_endpoint_keeps_its_heap_across_datagram_sized_buffers() -> None:
    out = subprocess.run([sys.executable, "-c", _CHURN, str(TESTS)], env=_clean_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["pinned"] is got["glibc"]
    if got["glibc"]:
        # kept: ~14 faults a cycle here; without the thresholds set, ~700 (3 MB trimmed)
        assert got["faults_per_cycle"] < 100, got


class FakeLibc:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answer


def test_glibc_gets_both_thresholds() -> None:
    libc = FakeLibc()
    assert pin_heap_thresholds(libc, environ={"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
    assert libc.calls == [(-3, MMAP_THRESHOLD), (-1, TRIM_THRESHOLD)]
    assert TRIM_THRESHOLD == 2 * MMAP_THRESHOLD  # where glibc's own rule would put it


@pytest.mark.parametrize("environ", [
    {"MALLOC_TRIM_THRESHOLD_": "131072"},
    {"MALLOC_MMAP_THRESHOLD_": "65536"},
    {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"},
    {"GLIBC_TUNABLES": "glibc.malloc.check=0:glibc.malloc.mmap_threshold=4096"},
])
def test_thresholds_the_process_chose_are_left_alone(environ: dict[str, str]) -> None:
    libc = FakeLibc()
    assert not pin_heap_thresholds(libc, environ=environ)
    assert libc.calls == []


def test_a_library_that_refuses_or_no_glibc_leaves_the_heap_as_it_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    refusing = FakeLibc(answer=0)
    assert not pin_heap_thresholds(refusing, environ={})
    assert refusing.calls == [(-3, MMAP_THRESHOLD)]  # the second is not tried
    find_glibc = heap_thresholds._glibc
    for confstr in (lambda name: "musl 1.2.4", lambda name: None):
        monkeypatch.setattr(os, "confstr", confstr)
        assert find_glibc() is None
    monkeypatch.undo()
    monkeypatch.setattr(heap_thresholds, "_glibc", lambda: None)
    monkeypatch.setattr(heap_thresholds, "_pinned", None)
    assert not pin_heap_thresholds()
    assert heap_thresholds._pinned is False  # decided once for the process
