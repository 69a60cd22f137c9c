"""Our stack against js-libp2p 2.9.0 (npm, Node 20), in both directions.

Covered: every identity key type js supports (Ed25519, secp256k1, RSA) on either side, echo with
half-close and several streams, ping both ways, identify both ways, the clean refusal of an ECDSA
identity (js has none, and fails the handshake on a remote one), and js's connection monitor: it
pings every connection and aborts it when a ping goes unanswered, so we must answer promptly
while a bulk transfer saturates another stream (its interval is lowered so this takes seconds).
"""

from __future__ import annotations

import hashlib
import os
import time

import anyio
import pytest

from p2p.protocols.echo import echo_roundtrip
from p2p.errors import ConnectionClosed, DialError
from p2p.config import HostConfig
from p2p.host import Host, NetStream
from p2p.identity import KeyType, PeerId, PrivateKey, PublicKey, parse_key_type
from p2p.mux.yamux import YamuxConfig
from ourside import ECHO, call, echo_streams_and_ping, our_host, serve_ours
from peerproc import PeerProcessError

pytestmark = pytest.mark.anyio

JS_KEY_TYPES = ["ed25519", "secp256k1", "rsa"]
PING = "/ipfs/ping/1.0.0"


# ---- js dials us -----------------------------------------------------------------------------


@pytest.mark.parametrize("ours", JS_KEY_TYPES)
@pytest.mark.parametrize("theirs", JS_KEY_TYPES)
async def test_js_dials_us_key_types(js_peers, ours, theirs):
    js = js_peers(theirs)
    with anyio.fail_after(60):
        async with our_host(ours) as host:
            addr = await serve_ours(host)
            res = await call(js, cmd="echo", addr=addr, size=100_000)
            assert res["ok"] is True and res["bytes"] == 100_000
            conn = host.connection(PeerId.from_string(js.peer_id))
            assert conn is not None and conn.direction == "inbound"
            assert conn.public_key.key_type == parse_key_type(theirs)


async def test_js_dials_us_streams_ping_identify(js_peers):
    js = js_peers("ed25519")
    with anyio.fail_after(60):
        async with our_host("secp256k1") as host:
            addr = await serve_ours(host)
            res = await call(js, cmd="echo", addr=addr, size=256 * 1024, streams=8)
            assert res["ok"] is True and res["bytes"] == 8 * 256 * 1024
            res = await call(js, cmd="echo", addr=addr, size=2 << 20)
            assert res["ok"] is True
            res = await call(js, cmd="ping", addr=addr, count=3)
            assert len(res["rtt_ms"]) == 3 and all(0 <= r < 5000 for r in res["rtt_ms"])
            # js identified us: what its peer store holds is what our identify said
            res = await call(js, cmd="peer", peer_id=str(host.peer_id))
            assert set(res["protocols"]) == set(host.protocols)
            assert res["agent"] == host.config.agent_version
            assert [c["status"] for c in res["connections"]] == ["open"]


# ---- we dial js ------------------------------------------------------------------------------


@pytest.mark.parametrize("ours", JS_KEY_TYPES)
@pytest.mark.parametrize("theirs", JS_KEY_TYPES)
async def test_we_dial_js_key_types(js_peers, ours, theirs):
    js = js_peers(theirs)
    with anyio.fail_after(60):
        async with our_host(ours) as host:
            pid = await host.connect(js.addr)
            assert str(pid) == js.peer_id
            payload = os.urandom(100_000)
            assert await echo_roundtrip(host, pid, payload) == payload
            assert host.connection(pid).public_key.key_type == parse_key_type(theirs)


async def test_we_dial_js_streams_ping_identify(js_peers):
    js = js_peers("rsa")
    with anyio.fail_after(60):
        async with our_host("ed25519") as host:
            pid = await host.connect(js.addr)
            await echo_streams_and_ping(host, pid)
            info = await host.identify(pid)
            assert {ECHO, PING, "/ipfs/id/1.0.0"} <= set(info.protocols)
            assert info.agent_version.startswith("libp2p/") or "js" in info.agent_version
            assert PeerId.from_public_key(PublicKey.from_protobuf(info.public_key)) == pid


async def test_ecdsa_identity_refused_cleanly(js_peers):
    """js has no ECDSA identity keys and refuses a remote one, promptly, in both directions."""
    js = js_peers("ed25519")
    with anyio.fail_after(30):
        async with our_host("ecdsa") as host:
            # As XX initiator we are done after sending message 3; js checks our key in it and
            # drops the connection, so the failure shows on connect or on the first stream.
            with pytest.raises((DialError, ConnectionClosed)):
                pid = await host.connect(js.addr)
                stream = await host.new_stream(pid, [ECHO])
                await stream.send(b"x")
                await stream.send_eof()
                await stream.receive_until_eof(10)
            # As responder our message 2 carries the key: js's dial fails.
            addr = await serve_ours(host)
            with pytest.raises(PeerProcessError) as info:
                await call(js, cmd="echo", addr=addr, size=10, timeout=20)
            assert "error" in info.value.result
            assert host.connected_peers() == []


# ---- js's connection monitor while a stream is saturated -------------------------------------

# js allows one outbound ping stream at a time (ping service default) and the monitor aborts the
# connection when it cannot open one: every interval it opens a ping stream, and once that stream's
# protocol is negotiated, the previous one must be gone (js drops it once it has read the echo and
# sent its FIN); a ping unanswered for 5 s aborts it too. With a 1 s interval (10x stricter than
# js's default) every ping must be done within about 1 s.
#
# A ping's bytes, our echo and js's FIN each queue behind the bulk data in flight on the
# connection, which yamux bounds by the bulk stream's receive window: auto-tuned, that grows to
# 16 MiB each way (js's default and ours), so on a loaded machine (6-9 MB/s each way) a ping took up
# to 2.5 s and js aborted the connection, however promptly we answered. Both ends cap the window at
# yamux's initial 256 KiB here, so what a ping waits behind is at most 2 x 256 KiB (about 80 ms at
# 6.5 MB/s), and the 1 s bound measures our stack again: our own part of each ping, from its bytes
# read to the echo written, and the whole ping stream at our end.
MONITOR_INTERVAL_MS = 1000
MONITOR_TIMEOUT_MS = 5000
BULK_SECONDS = 4.0
WINDOW = 256 * 1024  # yamux's initial stream window, kept fixed (no auto-tuning) at both ends


class _TimedPingStream:
    """The stream our ping service serves, noting when each ping is read and its echo written."""

    def __init__(self, stream: NetStream) -> None:
        self.stream = stream
        self.read_at: list[float] = []
        self.answers: list[float] = []  # seconds from a ping read to its echo written

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self.stream.receive(max_bytes)
        self.read_at.append(time.monotonic())
        return data

    async def receive_exactly(self, n: int) -> bytes:
        return await self.stream.receive_exactly(n)

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)
        self.answers.append(time.monotonic() - self.read_at[-1])

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def reset(self) -> None:
        await self.stream.reset()


@pytest.mark.parametrize("direction", ["we-dial", "js-dials"])
async def test_js_connection_monitor_answered_under_bulk(js_peers, direction):
    js = js_peers("ed25519", monitor_interval_ms=MONITOR_INTERVAL_MS,
                  monitor_timeout_ms=MONITOR_TIMEOUT_MS, max_stream_window=WINDOW)
    served: list[tuple[float, float, float]] = []  # handler start, end, longest answer
    with anyio.fail_after(60):
        config = HostConfig(yamux=YamuxConfig(max_stream_window=WINDOW))
        async with Host(PrivateKey.generate(KeyType.Ed25519), config) as host:

            async def counted_ping(stream: NetStream) -> None:
                started = time.monotonic()
                timed = _TimedPingStream(stream)
                await host.ping_service.serve(timed)
                served.append((started, time.monotonic(), max(timed.answers, default=float("inf"))))

            host.set_stream_handler(PING, counted_ping)
            if direction == "we-dial":
                pid = await host.connect(js.addr)
            else:
                addr = await serve_ours(host)
                await call(js, cmd="echo", addr=addr, size=10)
                pid = PeerId.from_string(js.peer_id)
            conn = host.connection(pid)

            # Echo through js as fast as we can for BULK_SECONDS: both directions of one stream
            # stay saturated while the monitor's pings arrive on their own streams.
            stream = await host.new_stream(pid, [ECHO])
            chunk = os.urandom(1 << 16)
            sent, echoed = hashlib.sha256(), hashlib.sha256()
            counts = [0, 0]

            async def reader() -> None:
                while True:
                    try:
                        data = await stream.receive(1 << 16)
                    except anyio.EndOfStream:
                        return
                    echoed.update(data)
                    counts[1] += len(data)

            bulk_start = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                while time.monotonic() - bulk_start < BULK_SECONDS:
                    await stream.send(chunk)
                    sent.update(chunk)
                    counts[0] += len(chunk)
                await stream.send_eof()
            bulk_end = time.monotonic()
            await stream.aclose()

            assert counts[0] == counts[1] and sent.digest() == echoed.digest()
            assert host.connection(pid) is conn and not conn.is_closed
            res = await call(js, cmd="peer", peer_id=str(host.peer_id))
            assert [c["status"] for c in res["connections"]] == ["open"]
    during = [(s, e, a) for s, e, a in served if bulk_start <= s <= bulk_end]
    # about BULK_SECONDS / interval pings land during the transfer; demand half of them
    assert len(during) >= int(BULK_SECONDS * 1000 / MONITOR_INTERVAL_MS / 2), (served, bulk_start)
    slowest_answer = max(a for _, _, a in during)
    longest = max(e - s for s, e, _ in during)
    assert slowest_answer < MONITOR_INTERVAL_MS / 1000, f"slowest echo took {slowest_answer:.2f} s"
    assert longest < MONITOR_INTERVAL_MS / 1000, f"slowest monitor ping took {longest:.2f} s"
    print(f"{direction}: {counts[0] / (bulk_end - bulk_start) / 1e6:.1f} MB/s each way, "
          f"{len(during)} monitor pings during the bulk, slowest echo {slowest_answer * 1000:.0f} ms, "
          f"longest ping stream at our end {longest * 1000:.0f} ms")
