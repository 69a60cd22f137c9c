"""Load scenario: many connections and thousands of concurrent streams held open, memory reported.

`python -m bench.load [--connections 200] [--streams 5000] [--hold 60]` starts an echo server in a
child process (so each side's memory is measured apart), dials it from `--connections` client Hosts
in this process (each its own peer, so each its own connection), opens `--streams` streams spread
over them, and holds them all open for `--hold` seconds while every stream echoes a few bytes every
`--interval` seconds. At the end every stream echoes once more (latency measured) and closes.
Prints a table, and the JSON result with --json. Exit status 1 if any stream failed.

Every wait is bounded: set-up steps by --timeout, each echo by --echo-timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from p2p.config import HostConfig
from p2p.host import Host, NetStream
from p2p.identity import PeerId

PROTOCOL = "/bench/load-echo/1.0.0"
ROOT = Path(__file__).resolve().parent.parent
ECHO = b"ping-load\n"


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def fd_count(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def server_config(connections: int, streams: int) -> HostConfig:
    per_conn = -(-streams // max(connections, 1))
    return HostConfig(max_connections=connections + 64, max_connections_per_ip=connections + 64,
                      max_pending_inbound=connections + 64, max_pending_inbound_per_ip=connections + 64,
                      max_inbound_streams_per_conn=max(per_conn + 16, 64))


# ---- server (child process) ---------------------------------------------------------------------


async def echo(stream: NetStream) -> None:
    try:
        while True:
            data = await stream.receive(65536)
            await stream.send(data)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def serve(connections: int, streams: int) -> None:
    raise_fd_limit(connections * 2 + 256)
    async with Host(None, server_config(connections, streams)) as host:
        host.set_stream_handler(PROTOCOL, echo)
        await host.listen("/ip4/127.0.0.1/tcp/0")
        print(json.dumps({"addr": host.p2p_addrs()[0], "pid": os.getpid()}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # run until the parent closes our stdin


# ---- clients (this process) ---------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    connections: int
    streams: int
    hold_s: float
    connect_s: float = 0.0
    open_s: float = 0.0
    echoes: int = 0
    failures: int = 0
    first_error: str = ""
    final_p50_ms: float = 0.0
    final_p99_ms: float = 0.0
    rss_mib: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    server_fds: dict[str, int] = dataclasses.field(default_factory=dict)
    server_kib_per_stream: float = 0.0
    client_kib_per_stream: float = 0.0


async def _echo_once(stream: NetStream, reader: BufferedByteReceiveStream, timeout: float) -> float:
    started = time.perf_counter()
    with anyio.fail_after(timeout):
        await stream.send(ECHO)
        line = await reader.receive_exactly(len(ECHO))
    if line != ECHO:
        raise RuntimeError(f"echo mismatch: {line!r}")
    return time.perf_counter() - started


async def run_load(connections: int = 200, streams: int = 5000, hold: float = 60.0, *,
                   interval: float = 5.0, timeout: float = 60.0, echo_timeout: float = 30.0,
                   log: Any = None) -> Result:
    """Run the scenario; returns the measurements (never raises for a failed stream: it counts)."""
    say = log or (lambda msg: None)
    raise_fd_limit(connections * 2 + 256)
    res = Result(connections, streams, hold)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = await anyio.open_process(
        [sys.executable, "-m", "bench.load", "--serve", "--connections", str(connections),
         "--streams", str(streams)], env=env, cwd=ROOT, stderr=None)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        with anyio.fail_after(timeout):
            info = json.loads(await BufferedByteReceiveStream(proc.stdout).receive_until(b"\n", 1 << 16))
        server_pid, addr = info["pid"], info["addr"]
        peer = PeerId.from_string(addr.rsplit("/p2p/", 1)[1])

        def sample(label: str) -> None:
            res.rss_mib[label] = {"client": round(rss_mib(), 1), "server": round(rss_mib(server_pid), 1)}
            res.server_fds[label] = fd_count(server_pid)
            say(f"{label:>14}: client {res.rss_mib[label]['client']:.0f} MiB, server "
                f"{res.rss_mib[label]['server']:.0f} MiB, server fds {res.server_fds[label]}")

        sample("baseline")
        cfg = HostConfig(max_inbound_streams_per_conn=64)
        async with contextlib.AsyncExitStack() as stack:
            hosts = [await stack.enter_async_context(Host(None, cfg)) for _ in range(connections)]
            started = time.monotonic()
            limit = anyio.Semaphore(32)  # dial concurrency: inbound upgrades are bounded per IP

            async def dial(host: Host) -> None:
                async with limit:
                    await host.connect(addr, timeout=timeout)

            with anyio.fail_after(timeout * 2):
                async with anyio.create_task_group() as tg:
                    for h in hosts:
                        tg.start_soon(dial, h)
            res.connect_s = time.monotonic() - started
            sample("connected")

            opened = anyio.Event()
            done = anyio.Event()
            count = {"open": 0}
            latencies: list[float] = []

            def fail(exc: BaseException) -> None:
                res.failures += 1
                res.first_error = res.first_error or f"{type(exc).__name__}: {exc}"

            async def one_stream(host: Host) -> None:
                try:
                    async with limit:
                        stream = await host.new_stream(peer, [PROTOCOL], timeout=timeout)
                    reader = BufferedByteReceiveStream(stream)
                    await _echo_once(stream, reader, echo_timeout)
                    res.echoes += 1
                except Exception as exc:  # counted, reported: a load test must not stop at one
                    fail(exc)
                    count["open"] += 1
                    if count["open"] == streams:
                        opened.set()
                    return
                count["open"] += 1
                if count["open"] == streams:
                    opened.set()
                try:
                    while not done.is_set():
                        with anyio.move_on_after(interval):
                            await done.wait()
                        latency = await _echo_once(stream, reader, echo_timeout)
                        res.echoes += 1
                        if done.is_set():
                            latencies.append(latency)
                    await stream.send_eof()
                except Exception as exc:
                    fail(exc)
                finally:
                    with anyio.CancelScope(shield=True):
                        await stream.aclose()

            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(streams):
                    tg.start_soon(one_stream, hosts[i % connections])
                with anyio.fail_after(timeout * 2):
                    await opened.wait()
                res.open_s = time.monotonic() - started
                sample("streams open")
                await anyio.sleep(hold)  # the scenario's hold time, not a wait for an event
                sample("end of hold")
                done.set()
            latencies.sort()
            if latencies:
                res.final_p50_ms = round(latencies[len(latencies) // 2] * 1000, 2)
                res.final_p99_ms = round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2)
        with anyio.move_on_after(10):  # the server notices the closes asynchronously
            while fd_count(server_pid) > res.server_fds["baseline"] + 2:
                await anyio.sleep(0.05)
        sample("closed")
        base, full = res.rss_mib["baseline"], res.rss_mib["end of hold"]
        res.server_kib_per_stream = round((full["server"] - base["server"]) * 1024 / max(streams, 1), 2)
        res.client_kib_per_stream = round((full["client"] - base["client"]) * 1024 / max(streams, 1), 2)
    finally:
        with anyio.CancelScope(shield=True):
            await proc.stdin.aclose()
            with anyio.move_on_after(15):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
            await proc.aclose()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--streams", type=int, default=5000)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds all streams stay open")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between a stream's echoes")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--echo-timeout", type=float, default=30.0)
    ap.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line too")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    if args.serve:
        anyio.run(serve, args.connections, args.streams, backend=args.backend)
        return 0

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    res = anyio.run(lambda: run_load(args.connections, args.streams, args.hold, interval=args.interval,
                                     timeout=args.timeout, echo_timeout=args.echo_timeout, log=say),
                    backend=args.backend)
    print(f"load: {res.connections} connections, {res.streams} streams held {res.hold_s:g} s: "
          f"connect {res.connect_s:.1f} s, open {res.open_s:.1f} s, {res.echoes} echoes, "
          f"{res.failures} failures; final echo p50 {res.final_p50_ms} ms p99 {res.final_p99_ms} ms; "
          f"server {res.server_kib_per_stream} KiB/stream, client {res.client_kib_per_stream} KiB/stream")
    for label, mem in res.rss_mib.items():
        print(f"  {label:>14}: RSS client {mem['client']:.1f} MiB, server {mem['server']:.1f} MiB, "
              f"server fds {res.server_fds[label]}")
    if res.first_error:
        print(f"  first error: {res.first_error}")
    if args.json:
        print(json.dumps(dataclasses.asdict(res)))
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())
