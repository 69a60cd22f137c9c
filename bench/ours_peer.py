"""Our stack's bench peer: `python -m bench.ours_peer listen|dial ...` (contract in peer_common).

Built only on the public Host API, as an application would use it. The listener's HostConfig lifts
the per-IP and per-connection stream limits, because every bench dialer comes from 127.0.0.1 and the
memory scenarios hold 200 connections and 1,000 streams on purpose. `BENCH_UVLOOP=1` runs asyncio
with uvloop (the harness's --uvloop).
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import replace

import anyio

from bench.peer_common import (ECHO, SINK, RequestRun, emit, hold_phases, listener_chunk,
                               parse_args, repeat_within, send_all, split_evenly,
                               throughput_result, wait_for_go_ahead)
from p2p.config import HostConfig
from p2p.host import Host, NetStream
from p2p.identity import PeerId
from p2p.protocols.echo import make_echo_handler

CHUNK = 256 * 1024
#: Every request of the request/response scenarios is bounded by this (seconds).
REQUEST_TIMEOUT = 30.0
# BENCH_TRANSPORT=quic: the listener serves QUIC v1 instead of TCP (the dialer follows its address).
LISTEN_ADDR = ("/ip4/127.0.0.1/udp/0/quic-v1" if os.environ.get("BENCH_TRANSPORT") == "quic"
               else "/ip4/127.0.0.1/tcp/0")
LISTENER_CONFIG = replace(HostConfig(), max_connections=4096, max_connections_per_ip=4096,
                          max_pending_inbound=256, max_inbound_streams_per_conn=4096)


# ---- listener ----------------------------------------------------------------------------------


async def handle_sink(stream: NetStream) -> None:
    total = 0
    while True:
        try:
            total += len(await stream.receive(CHUNK))
        except anyio.EndOfStream:
            break
    await stream.send(total.to_bytes(8, "big"))
    await stream.aclose()


async def listen() -> None:
    from oracle.gating import WorkerPolicy
    from oracle.handlers import handle_test
    from oracle.manager import WorkHandlerManager
    from oracle.protocol import WorkerProtocol

    async with Host(config=LISTENER_CONFIG) as host:
        host.set_stream_handler(ECHO, make_echo_handler(listener_chunk(CHUNK)))
        host.set_stream_handler(SINK, handle_sink)
        manager = WorkHandlerManager()
        manager.add_handler("test", handle_test)
        # The default policy admits 4 requests per peer at once; the bench sends 64 on purpose.
        WorkerProtocol(manager, WorkerPolicy.open(max_concurrent_per_peer=256,
                                                  max_concurrent_total=256)).register(host)
        await host.listen(LISTEN_ADDR)
        emit({"addr": host.p2p_addrs()[0]})
        await anyio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        await host.close()


# ---- dialer scenarios --------------------------------------------------------------------------


async def echo_once(host: Host, peer: PeerId, payload: bytes) -> None:
    stream = await host.new_stream(peer, [ECHO])
    # The request's only wait is reading the echo: bounded by the stream's read deadline (one
    # loop timer, as a go client would SetReadDeadline) rather than a cancel scope per request,
    # which costs more than the stack's own work here (anyio 4.16's fail_after: -15% req/s).
    # Its clock is the stream's (as go's time.Now()): anyio.current_time() looks up the running
    # loop, a getpid system call per request on Python 3.11's asyncio, and 5 Python calls.
    stream.set_read_deadline(stream.current_time() + REQUEST_TIMEOUT)
    try:
        await stream.send(payload)
        await stream.send_eof()
        got = await stream.receive_until_eof(len(payload))
        if got != payload:
            raise ValueError("echo mismatch")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.reset()
        raise
    await stream.aclose()


async def bulk(host: Host, peer: PeerId, p: dict) -> dict:
    size, chunk = p["size"], p.get("chunk", CHUNK)
    block = bytes(chunk)
    start = time.perf_counter()
    stream = await host.new_stream(peer, [SINK])
    await send_all(stream.send, block, size)
    await stream.send_eof()
    count = int.from_bytes(await stream.receive_exactly(8), "big")
    seconds = time.perf_counter() - start
    await stream.aclose()
    if count != size:
        raise ValueError(f"sink counted {count} of {size} bytes")
    return throughput_result(size, seconds)


async def echo(host: Host, peer: PeerId, p: dict) -> dict:
    """`streams` echo streams at once, each writing its share while a reader takes the echo."""
    chunk = p.get("chunk", CHUNK)
    block = memoryview(bytes(chunk))
    shares = split_evenly(p["size"], p.get("streams", 1))

    async def one(share: int) -> None:
        stream = await host.new_stream(peer, [ECHO])
        stream.set_read_deadline(anyio.current_time() + REQUEST_TIMEOUT * 10)
        got = 0

        async def reader() -> None:
            nonlocal got
            while True:
                try:
                    got += len(await stream.receive(chunk))
                except anyio.EndOfStream:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await send_all(stream.send, block, share)
            await stream.send_eof()
        await stream.aclose()
        if got != share:
            raise ValueError(f"echo returned {got} of {share} bytes")

    start, cpu_start = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        for share in shares:
            tg.start_soon(one, share)
    result = throughput_result(sum(shares), time.perf_counter() - start)
    # this process's CPU time over the run (user + system): wall minus this is time spent waiting
    result["cpu_s"] = round(time.process_time() - cpu_start, 6)
    return result


async def handshakes(host: Host, addr: str, p: dict) -> dict:
    """Sequential connect + stream + 32-byte ping-pong + close, each on a brand-new connection."""
    payload = b"p" * 32

    async def one() -> None:
        peer = await host.connect(addr)
        await echo_once(host, peer, payload)
        conn = host.connection(peer)
        if conn is not None:
            await conn.muxed.close()

    return await repeat_within(one, p["count"], p.get("budget_s", 10.0))


async def run_requests(one, p: dict) -> dict:
    """`count` calls of `one()` by `concurrency` workers, within `budget_s`: rate and latencies.

    `one` bounds each request itself (the echo with a read deadline, the worker protocol with
    its own timeouts); the whole run is bounded too, like the go peer's one context."""
    run = RequestRun(p)
    with anyio.fail_after(run.budget_s + 2 * REQUEST_TIMEOUT):
        async with anyio.create_task_group() as tg:
            for _ in range(run.concurrency):
                tg.start_soon(run.worker, one)
    return run.result()


async def worker_requests(host: Host, peer: PeerId, p: dict) -> dict:
    from oracle.messages import WorkRequest
    from oracle.protocol import send_work_to_worker

    payload = b"w" * p.get("size", 64)

    async def one(i: int) -> None:
        resp = await send_work_to_worker(host, peer, WorkRequest("test", f"bench-{i}", payload))
        if resp.error:
            raise RuntimeError(resp.error)

    return await run_requests(one, p)


async def hold_connections(addr: str, p: dict) -> dict:
    """One host per connection (a host keeps one connection per peer): warm-up, then `count`."""
    async with AsyncExitStack() as stack:

        async def open_one() -> None:
            host = await stack.enter_async_context(Host())
            await echo_once(host, await host.connect(addr), b"x")

        return await hold_phases(open_one, p["count"], _go_ahead)


async def hold_streams(host: Host, peer: PeerId, p: dict) -> dict:
    streams = []

    async def open_one() -> None:
        s = await host.new_stream(peer, [ECHO])
        await s.send(b"x")
        await s.receive_exactly(1)
        streams.append(s)

    result = await hold_phases(open_one, p["count"], _go_ahead)
    for s in streams:
        await s.reset()
    return result


async def _go_ahead() -> None:
    await anyio.to_thread.run_sync(wait_for_go_ahead)


async def dial(scenario: str, addr: str, p: dict) -> dict:
    if scenario == "conns":
        return await hold_connections(addr, p)
    async with Host() as host:
        if scenario == "handshakes":
            return await handshakes(host, addr, p)
        peer = await host.connect(addr)
        if scenario == "bulk":
            return await bulk(host, peer, p)
        if scenario == "echo":
            return await echo(host, peer, p)
        if scenario == "rr":
            payload = b"r" * p.get("size", 1024)
            return await run_requests(lambda _i: echo_once(host, peer, payload), p)
        if scenario == "worker":
            return await worker_requests(host, peer, p)
        if scenario == "streams":
            return await hold_streams(host, peer, p)
    raise ValueError(f"unknown scenario {scenario!r}")


def main() -> None:
    args = parse_args()
    options = {"use_uvloop": True} if os.environ.get("BENCH_UVLOOP") == "1" else {}
    try:
        if args.role == "listen":
            anyio.run(listen, backend_options=options)
        else:
            emit(anyio.run(dial, args.scenario, args.addr, args.params, backend_options=options))
    except Exception as exc:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        emit({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
