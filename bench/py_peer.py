"""The py-libp2p 0.8.1 bench peer (Noise + yamux only), run with the bench's own venv python.

Same role contract as every bench peer (see peer_common.py). py-libp2p is trio-based. Two of its
shipped defaults would measure sleeps rather than the stack, so they are set the way a careful user
would: `max_connections_per_peer=1` (otherwise every dial waits a 250 ms happy-eyeballs head start).
The ~200 ms sleep on disconnect cannot be configured away and stays in the handshake figures: until
`disconnect` returns, a new `connect` would reuse the closing connection instead of handshaking.
py-libp2p has no masa worker protocol: the harness marks that scenario n/a.
"""

from __future__ import annotations

import logging
import sys
import time

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import Yamux

from peer_common import (ECHO, SINK, RequestRun, emit, hold_phases, listener_chunk, parse_args,
                         repeat_within, send_all, split_evenly, throughput_result,
                         wait_for_go_ahead)

CHUNK = 64 * 1024
#: The echo listener's read size (the harness sets BENCH_CHUNK to the dialer's chunk).
ECHO_CHUNK = listener_chunk(CHUNK)


def make_host(max_conns: int = 1024):
    kp = create_new_key_pair()
    noise = NoiseTransport(kp, noise_privkey=create_x25519_key_pair().private_key)
    cfg = ConnectionConfig(max_connections_per_peer=1, max_connections=max_conns)
    return new_host(
        key_pair=kp,
        sec_opt={NOISE_ID: noise},
        muxer_opt={"/yamux/1.0.0": Yamux},
        connection_config=cfg,
    )


async def read_some(stream, n: int) -> bytes:
    """One read; b"" at end of stream (py-libp2p raises or returns empty, by version)."""
    try:
        return await stream.read(n)
    except EOFError:
        return b""


async def read_exactly(stream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = await read_some(stream, n - len(buf))
        if not data:
            raise EOFError(f"stream ended after {len(buf)} of {n} bytes")
        buf += data
    return bytes(buf)


async def read_to_eof(stream, limit: int) -> bytes:
    buf = bytearray()
    while True:
        data = await read_some(stream, CHUNK)
        if not data:
            return bytes(buf)
        buf += data
        if len(buf) > limit:
            raise ValueError("reply too long")


# ---- listener ----------------------------------------------------------------------------------


async def handle_echo(stream) -> None:
    try:
        while data := await read_some(stream, ECHO_CHUNK):
            await stream.write(data)
        await stream.close()
    except Exception:
        await stream.reset()


async def handle_sink(stream) -> None:
    try:
        total = 0
        while data := await read_some(stream, CHUNK):
            total += len(data)
        await stream.write(total.to_bytes(8, "big"))
        await stream.close()
    except Exception:
        await stream.reset()


async def listen() -> None:
    host = make_host()
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        host.set_stream_handler(ECHO, handle_echo)
        host.set_stream_handler(SINK, handle_sink)
        emit({"addr": str(host.get_addrs()[0])})
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
    # py-libp2p leaves background work behind on close: do not wait for it.
    sys.stdout.flush()


# ---- dialer scenarios --------------------------------------------------------------------------


async def echo_once(host, peer, payload: bytes) -> None:
    stream = await host.new_stream(peer, [ECHO])
    try:
        await stream.write(payload)
        await stream.close_write()
        got = await read_to_eof(stream, len(payload))
        if got != payload:
            raise ValueError("echo mismatch")
    except BaseException:
        await stream.reset()
        raise
    await stream.close()


async def bulk(host, peer, p: dict) -> dict:
    size, chunk = p["size"], p.get("chunk", 256 * 1024)
    block = bytes(chunk)
    start = time.perf_counter()
    stream = await host.new_stream(peer, [SINK])
    await send_all(stream.write, block, size)
    await stream.close_write()
    count = int.from_bytes(await read_exactly(stream, 8), "big")
    seconds = time.perf_counter() - start
    if count != size:
        raise ValueError(f"sink counted {count} of {size} bytes")
    return throughput_result(size, seconds)


async def echo(host, peer, p: dict) -> dict:
    """`streams` echo streams at once, each writing its share while a reader takes the echo."""
    chunk = p.get("chunk", CHUNK)
    block = bytes(chunk)
    shares = split_evenly(p["size"], p.get("streams", 1))

    async def one(share: int) -> None:
        stream = await host.new_stream(peer, [ECHO])
        got = 0

        async def reader() -> None:
            nonlocal got
            while data := await read_some(stream, chunk):
                got += len(data)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await send_all(stream.write, block, share)
                await stream.close_write()
        except BaseException:
            await stream.reset()
            raise
        await stream.close()
        if got != share:
            raise ValueError(f"echo returned {got} of {share} bytes")

    start = time.perf_counter()
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            for share in shares:
                nursery.start_soon(one, share)
    return throughput_result(sum(shares), time.perf_counter() - start)


async def handshakes(host, info, p: dict) -> dict:
    payload = b"p" * 32

    async def one() -> None:
        await host.connect(info)
        await echo_once(host, info.peer_id, payload)
        await host.disconnect(info.peer_id)

    return await repeat_within(one, p["count"], p.get("budget_s", 10.0))


async def request_response(host, peer, p: dict) -> dict:
    payload = b"r" * p.get("size", 1024)

    async def one(_i: int) -> None:
        with trio.fail_after(30):
            await echo_once(host, peer, payload)

    run = RequestRun(p)
    async with trio.open_nursery() as nursery:
        for _ in range(run.concurrency):
            nursery.start_soon(run.worker, one)
    return run.result()


async def hold_connections(info, p: dict) -> dict:
    """One host per connection (a host keeps one connection per peer): warm-up, then count more."""
    count = p["count"]
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        ready = trio.Semaphore(0)

        async def one() -> None:
            h = make_host()
            async with h.run([]):
                await h.connect(info)
                await echo_once(h, info.peer_id, b"x")
                ready.release()
                await stop.wait()
            await trio.sleep(0)

        async def open_one() -> None:
            nursery.start_soon(one)
            await ready.acquire()

        result = await hold_phases(open_one, count, _go_ahead)
        stop.set()
        nursery.cancel_scope.cancel()
    return result


async def _go_ahead() -> None:
    await trio.to_thread.run_sync(wait_for_go_ahead)


# py-libp2p's yamux blocks the opening of stream 257 on a connection (a fixed semaphore of 256).
PY_YAMUX_STREAM_CAP = 250


async def hold_streams(host, peer, p: dict) -> dict:
    """Like every peer's, but at most PY_YAMUX_STREAM_CAP streams: the harness divides by the
    count announced in the ready phase."""
    count = min(p["count"], PY_YAMUX_STREAM_CAP)
    streams = []

    async def open_one() -> None:
        with trio.fail_after(30):
            s = await host.new_stream(peer, [ECHO])
            await s.write(b"x")
            await read_exactly(s, 1)
        streams.append(s)

    result = await hold_phases(open_one, count, _go_ahead)
    for s in streams:
        await s.reset()
    return result


async def dial(scenario: str, addr: str, p: dict) -> dict:
    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    if scenario == "conns":
        return await hold_connections(info, p)
    host = make_host()
    async with host.run([]):
        if scenario == "handshakes":
            return await handshakes(host, info, p)
        await host.connect(info)
        if scenario == "bulk":
            return await bulk(host, info.peer_id, p)
        if scenario == "echo":
            return await echo(host, info.peer_id, p)
        if scenario == "rr":
            return await request_response(host, info.peer_id, p)
        if scenario == "streams":
            return await hold_streams(host, info.peer_id, p)
    raise ValueError(f"py-libp2p has no scenario {scenario!r}")


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    try:
        if args.role == "listen":
            trio.run(listen)
        else:
            emit(trio.run(dial, args.scenario, args.addr, args.params))
    except BaseException as exc:  # one JSON line, whatever happened
        if isinstance(exc, KeyboardInterrupt):
            raise
        emit({"error": f"{type(exc).__name__}: {exc}"})
        sys.stdout.flush()
        import os

        os._exit(1)
    sys.stdout.flush()
    import os

    os._exit(0)  # py-libp2p may leave non-daemon threads behind


if __name__ == "__main__":
    main()
