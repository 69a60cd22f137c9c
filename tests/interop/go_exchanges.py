"""Exchanges with the go test peer that the TCP and QUIC interop matrices both run.

Each takes a host of ours and an address, so test_interop_go.py (TCP + Noise + yamux) and
test_interop_quic.py (QUIC v1 + TLS) differ only in how the connection is made and in what each
transport checks of its own (muxer negotiation, observed address shape, go's error text).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from gopeer import GoPeerError, run_gopeer
from p2p.errors import ConnectionClosed, StreamReset
from p2p.host import Host
from p2p.identity import PeerId, PrivateKey
from p2p.protocols.echo import echo_roundtrip

ECHO = "/echo/1.0.0"
KEY_TYPES = ["ed25519", "secp256k1", "ecdsa", "rsa"]


async def go(gopeer_bin: Path, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    """One `gopeer <command>` run in a worker thread, so our host keeps serving meanwhile."""
    return await anyio.to_thread.run_sync(
        lambda: run_gopeer(*args, timeout=timeout, binary=gopeer_bin))


async def echo_32_concurrent_streams(host: Host, pid: PeerId) -> None:
    """32 streams of 128 KiB echoed at once: each comes back whole and on its own stream."""
    payloads = [os.urandom(128 * 1024) for _ in range(32)]
    results: list[bytes | None] = [None] * 32

    async def one(i: int) -> None:
        results[i] = await echo_roundtrip(host, pid, payloads[i])

    async with anyio.create_task_group() as tg:
        for i in range(32):
            tg.start_soon(one, i)
    assert results == payloads


async def ping_halfclose_reset(host: Host, pid: PeerId) -> None:
    """Ping; half-close from our side; a reset from go's side and from ours; the connection
    survives all of it."""
    assert len(await host.ping(pid, 3)) == 3
    # half-close from our side: go reads to EOF, then answers on the same stream
    s = await host.new_stream(pid, ["/test/halfclose/1.0.0"])
    await s.send(b"z" * 12345)
    await s.send_eof()
    assert await s.receive_until_eof(1000) == b"got 12345 bytes"
    # reset from go's side: our read fails with a remote reset
    s = await host.new_stream(pid, ["/test/reset/1.0.0"])
    await s.send(b"x")
    with pytest.raises(StreamReset) as info:
        while True:
            await s.receive(100)
    assert info.value.remote
    # reset from our side: go's echo handler sees it, the connection survives
    s = await host.new_stream(pid, [ECHO])
    await s.send(b"abc")
    assert await s.receive_exactly(3) == b"abc"
    await s.reset()
    assert len(await host.ping(pid)) == 1
    assert host.connection(pid) is not None


async def go_identifies_us(gopeer_bin: Path, host: Host, addr: str, theirs: str) -> str:
    """Go echoes through us and identifies us with a `theirs` key; returns the observed address
    go reports, for the caller's transport-specific check."""
    res = await go(gopeer_bin, "echo", addr, "--size", "100000", "--key-type", theirs)
    assert res["ok"] is True and res["bytes"] == 100000
    # go identified us: our protocols and our key are what it stored
    ident = await go(gopeer_bin, "identify", addr, "--key-type", theirs)
    assert ident["peer_id"] == str(host.peer_id)
    assert ECHO in ident["protocols"] and "/ipfs/ping/1.0.0" in ident["protocols"]
    assert ident["public_key_hex"] == host.identity.public_key.to_protobuf().hex()
    observed: str = ident["observed_addr"]
    return observed


async def go_echoes_pings_halfcloses_resets(gopeer_bin: Path, host: Host, addr: str,
                                            big_echo_timeout: float) -> None:
    """Go dials us: echo of 1 MiB, 64 MiB and 32 streams, ping, half-close, and a reset of one
    of our echo streams that our handler sees."""
    reset_seen = anyio.Event()
    ended_by: list[BaseException] = []

    async def victim(stream: Any) -> None:
        # echo, then see the stream killed: go resets it and exits at once; over TCP go dials
        # with SO_LINGER=0, so the TCP RST may overtake the yamux RST (both kill the stream).
        try:
            while True:
                await stream.send(await stream.receive(100))
        except (StreamReset, ConnectionClosed) as exc:
            ended_by.append(exc)
            reset_seen.set()

    async def halfclose(stream: Any) -> None:
        data = await stream.receive_until_eof(1 << 24)
        await stream.send(f"got {len(data)} bytes".encode())
        await stream.aclose()

    host.set_stream_handler("/test/halfclose/1.0.0", halfclose)
    res = await go(gopeer_bin, "echo", addr, "--size", str(1 << 20))
    assert res["ok"] and res["bytes"] == 1 << 20
    res = await go(gopeer_bin, "echo", addr, "--size", str(64 << 20),
                   "--timeout", str(int(big_echo_timeout)), timeout=big_echo_timeout + 20)
    assert res["ok"] and res["bytes"] == 64 << 20
    res = await go(gopeer_bin, "echo", addr, "--size", "65536", "--streams", "32")
    assert res["ok"] and res["bytes"] == 32 * 65536
    res = await go(gopeer_bin, "ping", addr, "--count", "3")
    assert len(res["rtt_ms"]) == 3 and res["peer_id"] == str(host.peer_id)
    res = await go(gopeer_bin, "halfclose", addr, "--size", "5000")
    assert res["reply"] == "got 5000 bytes"
    # go resets an echo stream of ours after reading the echo back: with the plain echo handler,
    # then with one that reports how its stream ended
    res = await go(gopeer_bin, "reset", addr)
    assert res["echoed"] == "reset me" and res["reset"] is True
    host.set_stream_handler(ECHO, victim)
    res = await go(gopeer_bin, "reset", addr)
    assert res["echoed"] == "reset me" and res["reset"] is True
    with anyio.fail_after(10):
        await reset_seen.wait()
    # go's reset reaches us as a remote reset unless its exit closed the connection first
    assert not isinstance(ended_by[0], StreamReset) or ended_by[0].remote


async def go_dials_a_wrong_peer_id(gopeer_bin: Path, addr: str) -> tuple[PeerId, str]:
    """Go pings our address under another peer ID and fails (exit 1): returns the ID it was
    given and go's error text, whose wording each transport's security layer decides."""
    wrong = PeerId.from_public_key(PrivateKey.generate().public_key)
    bad = addr.rsplit("/p2p/", 1)[0] + f"/p2p/{wrong}"
    with pytest.raises(GoPeerError) as info:
        await go(gopeer_bin, "ping", bad)
    assert info.value.returncode == 1
    error: str = info.value.result["error"]
    return wrong, error
