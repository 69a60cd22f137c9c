"""What every bench peer shares: the role contract, protocol IDs and result helpers.

Standard library only: the py-libp2p peer imports this module from its own virtual environment
(as `peer_common`, run as a script beside it), ours as `bench.peer_common`.

The contract, the same for every stack (ours, py-libp2p, go):

    <peer> listen
        Serves the bench protocols on 127.0.0.1 (port 0), prints one JSON line
        {"addr": "/ip4/127.0.0.1/tcp/N/p2p/<id>"} once listening, and serves until stdin closes.
    <peer> dial <scenario> --addr ADDR --params JSON
        Runs one scenario against ADDR and prints one JSON result line (or {"error": ...}, exit 1).
        Memory scenarios (conns, streams) first print {"phase": "warm"} and {"phase": "ready"},
        each time waiting for a line on stdin, so the harness can read the listener's RSS in
        between without any sleeps.
        The echo scenario ({"size", "streams", "chunk"}) opens `streams` echo streams and on each
        writes its share of `size` in `chunk`-byte writes while reading the echo back in
        `chunk`-byte reads (both directions at once), half-closes, checks the byte count at EOF.

Protocols served by a listener:
    /bench/echo/1.0.0   echo every byte until EOF, then close (reads of BENCH_CHUNK bytes when set).
    /bench/sink/1.0.0   read until EOF, then answer the byte count (8 bytes, big endian), close.
    /masa/worker_protocol/v0.8.4   masa's worker protocol with the "test" handler (ours and go).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

ECHO = "/bench/echo/1.0.0"
SINK = "/bench/sink/1.0.0"
WORKER = "/masa/worker_protocol/v0.8.4"
SCENARIOS = ("bulk", "echo", "handshakes", "rr", "worker", "conns", "streams")


def listener_chunk(default: int) -> int:
    """The echo listener's read size: the harness sets BENCH_CHUNK to the dialer's chunk."""
    import os

    return int(os.environ.get("BENCH_CHUNK") or default)


def split_evenly(size: int, streams: int) -> list[int]:
    """`size` bytes over `streams` streams (the first ones carry the remainder)."""
    base, extra = divmod(size, streams)
    return [base + (i < extra) for i in range(streams)]


def throughput_result(total: int, seconds: float) -> dict:
    """The bulk and echo scenarios' result: payload bytes sent (for echo, each also came back)
    per second."""
    return {"bytes": total, "seconds": round(seconds, 6), "mb_per_s": round(total / seconds / 1e6, 3)}


async def send_all(send: Callable[[bytes], Awaitable[object]], block: bytes | memoryview,
                   total: int) -> None:
    """Send `total` bytes with `send`, `len(block)` at a time (the last write cut short): how the
    bulk and echo scenarios write, on every Python peer."""
    chunk = len(block)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        await send(block if n == chunk else block[:n])
        sent += n


async def repeat_within(one: Callable[[], Awaitable[object]], count: int, budget_s: float) -> dict:
    """`await one()` one after the other, `count` times or until `budget_s` has passed (the
    handshakes scenario); the result is how many were done and how fast. No async library is
    used here, so the asyncio and trio peers share it."""
    done = 0
    start = time.perf_counter()
    while done < count and time.perf_counter() - start < budget_s:
        await one()
        done += 1
    seconds = time.perf_counter() - start
    return {"count": done, "seconds": round(seconds, 6), "per_s": round(done / seconds, 3)}


class RequestRun:
    """The request/response scenarios' bookkeeping: `count` requests shared by the peer's
    `concurrency` tasks, each running `worker(one)`, none issued after `budget_s`; a failed
    request is counted (the first error kept) and its time left out of the latencies. The
    result also gives this process's CPU time over the run (`cpu_s`, all threads, user +
    system), so the harness can tell the dialer's CPU per request from the listener's.

    The peer starts the tasks in its own task group (asyncio or trio); nothing here waits."""

    def __init__(self, p: dict) -> None:
        self.count: int = p["count"]
        self.concurrency: int = p.get("concurrency", 1)
        self.budget_s: float = p.get("budget_s", 10.0)
        self.latencies: list[float] = []
        self.failures = 0
        self.first_error: list[str] = []
        self.issued = 0
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()

    async def worker(self, one: Callable[[int], Awaitable[object]]) -> None:
        while self.issued < self.count and time.perf_counter() - self.start < self.budget_s:
            self.issued += 1
            t0 = time.perf_counter()
            try:
                await one(self.issued)
            except Exception as exc:
                self.failures += 1
                if not self.first_error:
                    self.first_error.append(f"{type(exc).__name__}: {exc}")
                continue
            self.latencies.append(time.perf_counter() - t0)

    def result(self) -> dict:
        cpu_s = time.process_time() - self.cpu_start
        result = latency_result(self.latencies, self.failures, time.perf_counter() - self.start,
                                self.first_error)
        result["cpu_s"] = round(cpu_s, 6)
        return result


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_for_go_ahead() -> None:
    """Block until the harness writes a line (or closes stdin): it reads RSS meanwhile."""
    sys.stdin.readline()


async def hold_phases(open_one: Callable[[], Awaitable[object]], count: int,
                      go_ahead: Callable[[], Awaitable[object]]) -> dict:
    """The memory scenarios (conns, streams): open one (warm-up: code paths and caches), print
    the warm phase and wait for the harness's go-ahead (`go_ahead()`: `wait_for_go_ahead` in a
    thread of the peer's async library), open `count` more, print the ready phase, wait again;
    whatever `open_one` opened is still held when this returns."""
    await open_one()
    emit({"phase": "warm"})
    await go_ahead()
    for _ in range(count):
        await open_one()
    emit({"phase": "ready", "count": count})
    await go_ahead()
    return {"ok": True, "count": count}


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (q in [0, 100])."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def latency_result(latencies: list[float], failures: int, seconds: float,
                   first_error: Sequence[str] = ()) -> dict:
    """Requests per second and p50/p99 in milliseconds (and what the first failure said)."""
    lat = sorted(latencies)
    p50 = percentile(lat, 50)
    p99 = percentile(lat, 99)
    return {
        "count": len(lat),
        "failures": failures,
        "seconds": round(seconds, 6),
        "per_s": round(len(lat) / seconds, 3) if seconds > 0 else None,
        "p50_ms": round(p50 * 1000, 3) if p50 is not None else None,
        "p99_ms": round(p99 * 1000, 3) if p99 is not None else None,
        "first_error": first_error[0] if first_error else None,
    }


def work_request_frame(i: int, payload: bytes) -> bytes:
    """A WorkRequest as a Go node writes it: 4-byte big-endian length, then Go-style JSON."""
    import base64

    body = json.dumps(
        {"workType": "test", "requestId": f"bench-{i}", "data": base64.b64encode(payload).decode()},
        separators=(",", ":"),
    ).encode()
    return len(body).to_bytes(4, "big") + body


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="bench peer (see bench/peer_common.py for the contract)")
    sub = p.add_subparsers(dest="role", required=True)
    sub.add_parser("listen")
    d = sub.add_parser("dial")
    d.add_argument("scenario", choices=SCENARIOS)
    d.add_argument("--addr", required=True)
    d.add_argument("--params", default="{}", type=json.loads)
    return p.parse_args(argv)
