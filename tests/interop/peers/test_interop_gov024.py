"""Our stack against go-libp2p v0.24.2 (PyPI ``libp2p-go``, cgo), in both directions.

v0.24.2 differs from the primary go peer (v0.36.3) where it matters on the wire: its dialer
proposes `/libp2p/simultaneous-connect` before `/noise` (we must answer `na`, never echo it), and it
negotiates stream protocols lazily once identify told it we support them (protocol line and first
data in one write). Covered: that exchange byte for byte through a recording relay, every key type
on either side, echo both ways (several streams), ping both ways, identify of go, lazy versus
round-trip negotiation. go runs as a long-lived subprocess per key type (see gov024.py).
"""

from __future__ import annotations

import os

import anyio
import pytest

from p2p.protocols.echo import echo_handler, echo_roundtrip
from p2p.host import NetStream
from p2p.identity import PeerId, parse_key_type
from ourside import ECHO, call, echo_streams_and_ping, our_host, serve_ours
from recorder import serve_recorder
from multistream_vectors import HEADER, NA, NOISE, SIMOPEN  # go-multistream v0.3.3's simultaneous open

pytestmark = pytest.mark.anyio

KEY_TYPES = ["ed25519", "secp256k1", "ecdsa", "rsa"]


# ---- go v0.24.2 dials us ---------------------------------------------------------------------


async def test_gov024_dialer_simultaneous_connect_answered_na(gov024_peers):
    """go proposes simopen between header and /noise; we answer `na` then echo /noise."""
    go = gov024_peers("ed25519")
    with anyio.fail_after(60):
        async with our_host() as host, anyio.create_task_group() as tg:
            await serve_ours(host)
            port, rec = await serve_recorder(tg, host.listen_addrs()[0].value_for_protocol("tcp"))
            via = f"/ip4/127.0.0.1/tcp/{port}/p2p/{host.peer_id}"
            res = await call(go, cmd="echo", addr=via, size=50_000, streams=2)
            assert res["ok"] is True and res["bytes"] == 100_000
            assert res["peer_id"] == str(host.peer_id)
            tg.cancel_scope.cancel()
    assert rec.connections == 1
    # go -> us: all three proposals in its first write, simopen in the middle
    assert bytes(rec.to_listener[: len(HEADER + SIMOPEN + NOISE)]) == HEADER + SIMOPEN + NOISE
    # us -> go: our header, `na` for simopen, the /noise echo, then Noise message 2 (never simopen)
    assert bytes(rec.to_dialer[: len(HEADER + NA + NOISE)]) == HEADER + NA + NOISE
    assert b"simultaneous-connect" not in bytes(rec.to_dialer)
    assert b"select:" not in bytes(rec.to_listener)  # go never entered the tie-break exchange


@pytest.mark.parametrize("ours", KEY_TYPES)
@pytest.mark.parametrize("theirs", KEY_TYPES)
async def test_gov024_dials_us_all_key_types(gov024_peers, ours, theirs):
    go = gov024_peers(theirs)
    with anyio.fail_after(60):
        async with our_host(ours) as host:
            addr = await serve_ours(host)
            res = await call(go, cmd="echo", addr=addr, size=100_000)
            assert res["ok"] is True and res["bytes"] == 100_000
            assert res["peer_id"] == str(host.peer_id)
            conn = host.connection(PeerId.from_string(go.peer_id))
            assert conn is not None and conn.direction == "inbound"
            assert conn.public_key.key_type == parse_key_type(theirs)


async def test_gov024_dials_us_streams_and_ping(gov024_peers):
    go = gov024_peers("secp256k1")
    with anyio.fail_after(60):
        async with our_host("rsa") as host:
            addr = await serve_ours(host)
            res = await call(go, cmd="echo", addr=addr, size=256 * 1024, streams=8)
            assert res["ok"] is True and res["bytes"] == 8 * 256 * 1024
            res = await call(go, cmd="echo", addr=addr, size=2 << 20)
            assert res["ok"] is True and res["bytes"] == 2 << 20
            res = await call(go, cmd="ping", addr=addr, count=3)
            assert res["peer_id"] == str(host.peer_id)
            assert len(res["rtt_ms"]) == 3 and all(0 < r < 5000 for r in res["rtt_ms"])


async def test_gov024_negotiates_lazily_after_identify(gov024_peers, monkeypatch):
    """A protocol identify announced is proposed lazily (proposal and data in one write); one
    go has not been told of costs it a round trip (it waits for our echo before writing). Our
    host pushes a handler registered later to its peers (as go does): the push is turned off
    here, so that go has not heard of the late one."""
    go = gov024_peers("ed25519")
    first_read_buffered: dict[str, int] = {}

    def recording(proto: str):
        async def handler(stream: NetStream) -> None:
            # Bytes already buffered when negotiation ends came in the proposal's own write.
            first_read_buffered[proto] = stream.buffered
            await echo_handler(stream)
        return handler

    with anyio.fail_after(60):
        async with our_host() as host:
            host.set_stream_handler("/test/announced/1.0.0", recording("/test/announced/1.0.0"))
            addr = await serve_ours(host)
            res = await call(go, cmd="echo", addr=addr, size=1000, proto="/test/announced/1.0.0")
            assert res["ok"] is True
            monkeypatch.setattr(host.identify_service, "push_soon", lambda: None)
            host.set_stream_handler("/test/late/1.0.0", recording("/test/late/1.0.0"))
            res = await call(go, cmd="echo", addr=addr, size=1000, proto="/test/late/1.0.0")
            assert res["ok"] is True
    assert first_read_buffered["/test/announced/1.0.0"] == 1000
    assert first_read_buffered["/test/late/1.0.0"] == 0


# ---- we dial go v0.24.2 ----------------------------------------------------------------------


@pytest.mark.parametrize("ours", KEY_TYPES)
@pytest.mark.parametrize("theirs", KEY_TYPES)
async def test_we_dial_gov024_all_key_types(gov024_peers, ours, theirs):
    go = gov024_peers(theirs)
    with anyio.fail_after(60):
        async with our_host(ours) as host:
            pid = await host.connect(go.addr)
            assert str(pid) == go.peer_id
            payload = os.urandom(100_000)
            assert await echo_roundtrip(host, pid, payload) == payload
            info = await host.identify(pid)
            assert ECHO in info.protocols and "/ipfs/id/1.0.0" in info.protocols
            assert "/ipfs/ping/1.0.0" in info.protocols
            assert host.connection(pid).public_key.key_type == parse_key_type(theirs)


async def test_we_dial_gov024_echo_streams_ping(gov024_peers):
    go = gov024_peers("ed25519")
    with anyio.fail_after(60):
        async with our_host("secp256k1") as host:
            pid = await host.connect(go.addr)
            await echo_streams_and_ping(host, pid)
