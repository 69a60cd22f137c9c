"""The scenarios: sizes, how one measurement of one stack runs, and the metrics it yields.

Every scenario runs a fresh listener process and a dialer process on 127.0.0.1, both of the stack
under test. Rates come from the dialer (timed inside it, so interpreter start-up is excluded);
memory is the listener's RSS read from /proc between the dialer's phases; start-up is the wall
time from spawning a listener to its first JSON line (import + build a host + listen).
Counted scenarios also have a time budget, so a slow stack ends in bounded time: their rate is
requests done divided by the time taken.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import (PeerError, cpu_seconds, environ, idle_entries, rss_kib, run_dialer,
                         start_peer)
from bench.stacks import ROOT, Stack

SCENARIO_NAMES = ("bulk", "echo", "handshakes", "rr", "worker", "memory", "startup")


#: The read and write sizes a user would reasonably pick: each stack's echo is run with each, and
#: its best is its figure (every peer in its best configuration).
ECHO_CHUNKS = (64 << 10, 256 << 10, 1 << 20)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    higher_is_better: bool


METRICS = {m.name: m for m in (
    Metric("bulk", "MB/s", True),
    Metric("echo 1", "MB/s", True),
    Metric("echo 16", "MB/s", True),
    Metric("handshakes", "conn/s", True),
    Metric("rr seq", "req/s", True),
    Metric("rr seq p50", "ms", False),
    Metric("rr seq p99", "ms", False),
    Metric("rr seq listener cpu", "us/req", False),
    Metric("rr seq dialer cpu", "us/req", False),
    Metric("rr seq idle entries", "/req", False),
    Metric("rr 64", "req/s", True),
    Metric("rr 64 p50", "ms", False),
    Metric("rr 64 p99", "ms", False),
    Metric("rr 64 failures", "", False),
    Metric("worker seq", "req/s", True),
    Metric("worker seq p99", "ms", False),
    Metric("worker seq listener cpu", "us/req", False),
    Metric("worker seq dialer cpu", "us/req", False),
    Metric("worker seq idle entries", "/req", False),
    Metric("worker 64", "req/s", True),
    Metric("worker 64 p99", "ms", False),
    Metric("worker 64 failures", "", False),
    Metric("mem/conn", "KiB", False),
    Metric("mem/stream", "KiB", False),
    Metric("startup", "s", False),
)}


def sizes(quick: bool) -> dict:
    if quick:
        return {
            "bulk": {"size": 8 << 20},
            "echo 1": {"size": 2 << 20, "streams": 1},
            "echo 16": {"size": 2 << 20, "streams": 16},
            "echo chunks": (64 << 10, 256 << 10),
            "echo timeout": 30.0,
            "handshakes": {"count": 20, "budget_s": 2.0},
            "rr seq": {"count": 100, "concurrency": 1, "budget_s": 2.0, "size": 1024},
            "rr 64": {"count": 256, "concurrency": 64, "budget_s": 3.0, "size": 1024},
            "conns": {"count": 20},
            "streams": {"count": 100},
            "startup": 1,
            "timeout": 60.0,
        }
    return {
        "bulk": {"size": 256 << 20},
        "echo 1": {"size": 64 << 20, "streams": 1},
        "echo 16": {"size": 64 << 20, "streams": 16},
        "echo chunks": ECHO_CHUNKS,
        # A stack that stalls at one size (py-libp2p 0.8.1: 16 streams of 1 MiB writes) is
        # reported failed at that size after this, and its best of the others counts.
        "echo timeout": 120.0,
        "handshakes": {"count": 2000, "budget_s": 8.0},
        "rr seq": {"count": 20000, "concurrency": 1, "budget_s": 8.0, "size": 1024},
        "rr 64": {"count": 50000, "concurrency": 64, "budget_s": 8.0, "size": 1024},
        "conns": {"count": 200},
        "streams": {"count": 1000},
        "startup": 3,
        "timeout": 300.0,
    }


class Runner:
    """Runs one scenario for one stack; returns {metric name: value}."""

    def __init__(self, quick: bool, log_dir: Path) -> None:
        self.size = sizes(quick)
        self.log_dir = log_dir
        self.timeout = self.size["timeout"]
        self.errors: list[str] = []  # failures of part of a scenario (the rest was measured)
        #: Per echo measurement: stack, metric, chunk, MB/s (what the best was chosen from).
        self.echo_runs: list[dict] = []

    def _listener(self, stack: Stack, env: dict[str, str] | None = None):
        peer = start_peer(f"{stack.name}-listen", stack.listen_argv(), cwd=ROOT,
                          env=environ({**stack.env, **(env or {})}), log_dir=self.log_dir)
        try:
            hello = peer.next_json(60.0)
        except BaseException:
            peer.stop()
            raise
        return peer, hello, time.perf_counter() - peer.started

    def _dial(self, stack: Stack, scenario: str, hello: dict, params: dict, on_phase=None,
              timeout: float | None = None) -> dict:
        dialer = start_peer(f"{stack.name}-{scenario}", stack.dial_argv(
            scenario, hello["addr"], json.dumps(params)), cwd=ROOT, env=environ(stack.env),
            log_dir=self.log_dir)
        return run_dialer(dialer, timeout or self.timeout, on_phase)

    def run(self, stack: Stack, scenario: str) -> dict[str, float]:
        if scenario == "startup":
            return {"startup": self._startup(stack)}
        if scenario == "echo":
            return self._echo(stack)
        listener, hello, _ = self._listener(stack)
        try:
            return getattr(self, "_" + scenario)(stack, listener, hello)
        finally:
            listener.stop()

    def _startup(self, stack: Stack) -> float:
        times = []
        for _ in range(self.size["startup"]):
            listener, _hello, seconds = self._listener(stack)
            listener.stop()
            times.append(seconds)
        return statistics.median(times)

    def _bulk(self, stack: Stack, _listener, hello: dict) -> dict[str, float]:
        return {"bulk": self._dial(stack, "bulk", hello, self.size["bulk"])["mb_per_s"]}

    def _echo(self, stack: Stack) -> dict[str, float]:
        """One stream and 16 streams echoing at once, with each chunk size (the dialer's writes
        and reads and the listener's reads, through BENCH_CHUNK): the best per row counts.
        A fresh listener per chunk size; a failed size is reported and the others still count."""
        out: dict[str, float] = {}
        for chunk in self.size["echo chunks"]:
            try:
                listener, hello, _ = self._listener(stack, {"BENCH_CHUNK": str(chunk)})
            except PeerError as exc:
                self.errors.append(f"{stack.name} echo chunk {chunk}: {exc}")
                continue
            try:
                for metric in ("echo 1", "echo 16"):
                    try:
                        r = self._dial(stack, "echo", hello, {**self.size[metric], "chunk": chunk},
                                       timeout=self.size["echo timeout"])
                    except PeerError as exc:
                        self.errors.append(f"{stack.name} {metric} chunk {chunk}: {exc}")
                        continue
                    self.echo_runs.append({"stack": stack.name, "metric": metric, "chunk": chunk,
                                           "mb_per_s": r["mb_per_s"]})
                    out[metric] = max(out.get(metric, 0.0), r["mb_per_s"])
            finally:
                listener.stop()
        if not out:
            raise PeerError("; ".join(self.errors[-2:]) or "no echo measurement")
        return out

    def _handshakes(self, stack: Stack, _listener, hello: dict) -> dict[str, float]:
        return {"handshakes": self._dial(stack, "handshakes", hello, self.size["handshakes"])["per_s"]}

    def _requests(self, stack: Stack, listener, hello: dict, kind: str,
                  scenario: str) -> dict[str, float]:
        """Sequential and 64 in flight. The sequential row also gives, per request, the listener's
        CPU time (all its threads, from /proc), the dialer's (all its threads over its timed run,
        as the dialer reports it: `cpu_s`) and how often the machine's CPUs went idle (entered an
        idle state other than polling). Each side of a sequential exchange waits for the other on
        every request: on two CPUs with nothing else to run, each wait idles a CPU, which the
        other side's next message must wake with an interrupt (on a VM, a halted virtual CPU);
        on one CPU, or beside other work, the CPUs seldom idle. See bench/README.md."""
        out: dict[str, float] = {}
        for mode in ("seq", "64"):
            if mode == "seq":
                cpu, idle = cpu_seconds(listener.pid), idle_entries()
            r = self._dial(stack, scenario, hello, self.size[f"rr {mode}"])
            if mode == "seq" and r.get("count"):
                n = r["count"]
                out[f"{kind} seq listener cpu"] = round((cpu_seconds(listener.pid) - cpu) / n * 1e6, 1)
                if r.get("cpu_s") is not None:
                    out[f"{kind} seq dialer cpu"] = round(r["cpu_s"] / n * 1e6, 1)
                idle_now = idle_entries()
                if idle is not None and idle_now is not None:
                    out[f"{kind} seq idle entries"] = round((idle_now - idle) / n, 3)
            out[f"{kind} {mode}"] = r["per_s"]
            if kind == "rr":
                out[f"{kind} {mode} p50"] = r["p50_ms"]
            out[f"{kind} {mode} p99"] = r["p99_ms"]
            if mode == "64":
                out[f"{kind} {mode} failures"] = r["failures"]
        return out

    def _rr(self, stack: Stack, listener, hello: dict) -> dict[str, float]:
        return self._requests(stack, listener, hello, "rr", "rr")

    def _worker(self, stack: Stack, listener, hello: dict) -> dict[str, float]:
        return self._requests(stack, listener, hello, "worker", "worker")

    def _memory(self, stack: Stack, listener, hello: dict) -> dict[str, float]:
        """Listener RSS growth per connection, then per stream, each on a fresh listener
        (memory freed by the first would otherwise be reused by the second and hide its cost).
        A failed half is reported in `self.errors` and the other half still counts."""
        out: dict[str, float] = {}
        for scenario, metric in (("conns", "mem/conn"), ("streams", "mem/stream")):
            if scenario == "streams":
                listener.stop()
                listener, hello, _ = self._listener(stack)
            marks: dict[str, dict] = {}
            pid = listener.pid

            def mark(obj: dict) -> None:
                marks[obj["phase"]] = {"rss": rss_kib(pid), "count": obj.get("count")}

            try:
                self._dial(stack, scenario, hello, self.size[scenario], mark)
                if set(marks) != {"warm", "ready"}:
                    raise PeerError(f"dialer skipped a phase ({sorted(marks)})")
                count = marks["ready"]["count"] or self.size[scenario]["count"]
                out[metric] = round((marks["ready"]["rss"] - marks["warm"]["rss"]) / count, 2)
            except PeerError as exc:
                self.errors.append(f"{stack.name} {scenario}: {exc}")
            finally:
                if scenario == "streams":
                    listener.stop()
        if not out:
            raise PeerError("; ".join(self.errors[-2:]))
        return out
