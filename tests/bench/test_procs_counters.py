"""The bench's per-process CPU and machine idle counters (Linux /proc and /sys)."""

from __future__ import annotations

import os
import time

import anyio

from bench.peer_common import RequestRun
from bench.procs import cpu_seconds, idle_entries


def test_cpu_seconds_counts_this_process_cpu() -> None:
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.05  # clock ticks of 10 ms


def test_idle_entries_is_a_count_that_never_goes_back() -> None:
    first = idle_entries()
    time.sleep(0.05)
    second = idle_entries()
    if first is None:  # no cpuidle on this machine: the rows are left out
        assert second is None
    else:
        assert isinstance(first, int) and second is not None and second >= first


def test_request_run_reports_its_cpu_time() -> None:
    """A dialer's result says how much CPU its run took (`cpu_s`): the harness divides it by the
    requests for the dialer's CPU per request."""
    run = RequestRun({"count": 2, "budget_s": 10.0})

    async def busy(_i: int) -> None:
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass

    async def main() -> None:
        await run.worker(busy)

    anyio.run(main)
    result = run.result()
    assert result["count"] == 2
    assert 0.1 <= result["cpu_s"] < result["seconds"] + 0.05
