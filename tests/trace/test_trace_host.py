"""Tracing a real Host over loopback TCP (both backends), and what tracing costs when it is off."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from p2p.host import Host
from p2p.protocols.echo import ECHO, echo_roundtrip, echo_handler
from p2p.security.noise import NoiseTransport
from p2p.trace import Tracer

pytestmark = pytest.mark.anyio

TRACE_DIR = str(Path(__file__).resolve().parents[2] / "p2p" / "trace")


def find(records, **match):
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


async def exchange(client_trace=None, server_trace=None) -> tuple[Host, Host]:
    """Connect, identify, ping twice and echo 100 KiB; return the (closed) hosts."""
    async with Host(trace=server_trace) as server:
        server.set_stream_handler(ECHO, echo_handler)
        await server.listen("/ip4/127.0.0.1/tcp/0")
        async with Host(trace=client_trace) as client:
            peer = await client.connect(server.p2p_addrs()[0])
            await client.identify(peer, timeout=10)
            await client.ping(peer, 2)
            payload = bytes(range(256)) * 400
            assert await echo_roundtrip(client, peer, payload) == payload
    return client, server


async def test_a_traced_dial_records_every_layer():
    tracer = Tracer()
    await exchange(client_trace=tracer)
    records = tracer.records
    assert {r["conn"] for r in records} == {"c1"}
    opened = records[0]
    assert (opened["layer"], opened["event"], opened["direction"]) == ("tcp", "open", "outbound")
    assert opened["remote"].startswith("/ip4/127.0.0.1/tcp/")
    agreed = find(records, layer="multistream", event="agreed", stream=None)
    assert [r["protocol"] for r in agreed] == ["/noise"]
    hs = find(records, layer="noise", event="handshake")
    assert [(r["dir"], r["message"], r.get("identity_key_type")) for r in hs] == [
        ("out", 1, None), ("in", 2, "Ed25519"), ("out", 3, "Ed25519")]
    assert hs[1]["stream_muxers"] == ["/yamux/1.0.0"]
    frames = find(records, layer="noise", event="frame")
    assert all(f["ciphertext_length"] == f["plaintext_length"] + 16 for f in frames)
    yamux = find(records, layer="yamux", event="frame")
    assert {f["type"] for f in yamux} >= {"data", "window_update", "ping", "go_away"}
    assert all(set(f["flags"]) <= {"SYN", "ACK", "FIN", "RST"} for f in yamux)
    protocols = {r["protocol"] for r in find(records, layer="multistream", event="agreed")
                 if r["stream"] is not None}
    assert protocols == {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO}
    idents = find(records, layer="identify", event="message")
    assert {r["dir"] for r in idents} == {"in", "out"}  # we asked and were asked
    assert all(r["public_key_type"] == "Ed25519" for r in idents)
    pongs = find(records, layer="ping", event="pong")
    assert len(pongs) == 2 and all(p["matches"] and p["dir"] == "in" for p in pongs)
    echoed = find(records, layer="app", protocol=ECHO)
    assert sum(r["length"] for r in echoed if r["dir"] == "out") == 102400
    assert sum(r["length"] for r in echoed if r["dir"] == "in") == 102400
    assert records[-1]["layer"] == "tcp" and records[-1]["event"] == "close"
    # the sizes add up: every byte the tcp records saw after the handshake is a noise frame
    tcp_out = sum(r["length"] for r in find(records, layer="tcp", event="data", dir="out"))
    hs_out = sum(r["length"] for r in hs if r["dir"] == "out")
    ms_out = sum(r["length"] for r in find(records, layer="multistream", stream=None, dir="out"))
    wire_out = sum(f["wire_length"] for f in frames if f["dir"] == "out")
    assert tcp_out == ms_out + hs_out + wire_out


async def test_the_listening_side_traces_inbound_connections():
    tracer = Tracer()
    await exchange(server_trace=tracer)
    records = tracer.records
    assert records[0]["direction"] == "inbound"
    hs = find(records, layer="noise", event="handshake")
    assert [(r["dir"], r["message"]) for r in hs] == [("in", 1), ("out", 2), ("in", 3)]
    ms = find(records, layer="multistream", stream=None, event="message")
    assert [r["kind"] for r in ms if r["dir"] == "in"] == ["header", "proposal"]
    assert [r["kind"] for r in ms if r["dir"] == "out"] == ["header", "accept"]  # header at once
    assert find(records, layer="ping", event="ping", dir="in")


async def test_tracing_off_leaves_the_plain_objects_and_runs_no_trace_code():
    calls: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(TRACE_DIR):
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        async with Host() as server:
            server.set_stream_handler(ECHO, echo_handler)
            await server.listen("/ip4/127.0.0.1/tcp/0")
            async with Host() as client:
                peer = await client.connect(server.p2p_addrs()[0])
                await client.identify(peer, timeout=10)
                conn = client.connection(peer)
                noise = conn.muxed.secure
                assert type(noise._transport) is NoiseTransport
                raw = noise.conn.inner
                assert type(raw).__module__ != "p2p.trace.hooks"
                await client.ping(peer, 3)
                payload = b"x" * 300_000
                assert await echo_roundtrip(client, peer, payload) == payload
    finally:
        sys.setprofile(None)
    assert calls == []
    # ...and the same probe does see the tracing code when tracing is on (it can fail)
    sys.setprofile(profile)
    try:
        await exchange(client_trace=Tracer())
    finally:
        sys.setprofile(None)
    assert "emit" in calls and "decrypt_frames" in calls
