"""The bench's per-process CPU and machine idle counters (Linux /proc and /sys)."""

from __future__ import annotations

import os
import time

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
