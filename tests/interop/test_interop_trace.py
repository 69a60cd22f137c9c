"""The wire trace of dials to and from real go-libp2p v0.36.3, checked as parsed JSON lines.

Every layer must appear with its fields decoded from what go actually sent: go's multistream
answers, its Noise payload (identity key type as the key protobuf names it, signature, muxers),
its yamux frames (go opens streams with a window update + SYN and pings at once), its identify
message, and its worker answer.
"""

from __future__ import annotations

import io
import json

import anyio
import pytest

from gopeer import GoPeer, run_gopeer
from oracle.node import NodeConfig, OracleNode
from p2p.host import Host
from p2p.identity import KeyType, PrivateKey
from p2p.trace import JsonLinesWriter, Tracer

pytestmark = pytest.mark.anyio

WORKER = "/masa/worker_protocol/v0.8.4"


def find(records, **match):
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def parsed(out: io.StringIO) -> list[dict]:
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    for r in records:
        assert list(r)[:6] == ["t", "conn", "stream", "dir", "layer", "event"]
    return records


async def test_trace_of_a_dial_to_go_from_tcp_to_the_worker_answer(start_gopeer):
    go: GoPeer = start_gopeer("--worker", "--key-type", "secp256k1")
    out = io.StringIO()
    with anyio.fail_after(60):
        async with OracleNode(PrivateKey.generate(KeyType.Ed25519), NodeConfig(), handlers={},
                              trace=Tracer(JsonLinesWriter(out))) as node:
            peer = await node.connect(go.addr)
            # a plain go-libp2p worker announces no masa node data: name it as the worker
            node.directory.add_worker(peer)
            response = await node.submit("test", b"hello go")
    assert response.error == "" and response.worker_peer_id == go.peer_id
    records = parsed(out)

    # tcp
    assert (records[0]["layer"], records[0]["event"], records[0]["direction"]) == (
        "tcp", "open", "outbound")
    assert records[0]["remote"] == go.addr.split("/p2p/")[0]
    # multistream-select for security: go (noise-first) echoes /noise
    ms = find(records, layer="multistream", stream=None, event="message")
    assert [(r["dir"], r["kind"], r["text"]) for r in ms] == [
        ("out", "header", "/multistream/1.0.0"), ("out", "proposal", "/noise"),
        ("in", "header", "/multistream/1.0.0"), ("in", "accept", "/noise")]
    # noise: go's msg2 carries its secp256k1 identity, signature and muxers
    m1, m2, m3 = find(records, layer="noise", event="handshake")
    assert (m1["dir"], m1["message"], len(bytes.fromhex(m1["ephemeral_key"]))) == ("out", 1, 32)
    assert (m2["dir"], m2["identity_key_type"], m2["peer_id"]) == ("in", "Secp256k1", go.peer_id)
    assert len(bytes.fromhex(m2["identity_key"])) == 33  # a compressed secp256k1 point
    assert bytes.fromhex(m2["identity_sig"])[0] == 0x30  # DER-encoded ECDSA signature
    assert len(bytes.fromhex(m2["encrypted_static_key"])) == 48
    assert m2["has_extensions"] and "/yamux/1.0.0" in m2["stream_muxers"]
    assert m2["encrypted_payload_length"] == m2["payload_length"] + 16
    assert (m3["dir"], m3["identity_key_type"]) == ("out", "Ed25519")
    (done,) = find(records, layer="noise", event="handshake_complete")
    assert done["dir"] is None and done["early_muxer"] == "/yamux/1.0.0"
    frames = find(records, layer="noise", event="frame")
    assert {f["dir"] for f in frames} == {"in", "out"}
    assert all(f["ciphertext_length"] - f["plaintext_length"] == 16 for f in frames)
    # yamux: go opens its own identify stream (even ID) with a window update + SYN, and pings
    yamux = find(records, layer="yamux", event="frame")
    go_opens = [f for f in yamux if f["dir"] == "in" and "SYN" in f["flags"] and f["stream"]]
    assert go_opens and all(f["stream"] % 2 == 0 and f["type"] == "window_update"
                            for f in go_opens)
    assert find(records, layer="yamux", type="ping", dir="in")
    assert all(isinstance(f["length"], int) for f in yamux)
    # identify both ways; go's says what it serves
    (from_go,) = find(records, layer="identify", dir="in")
    assert from_go["peer_id"] == go.peer_id and from_go["public_key_type"] == "Secp256k1"
    assert WORKER in from_go["protocols"] and from_go["agent_version"].startswith("gopeer")
    assert find(records, layer="identify", dir="out")
    # the worker stream: negotiated, one request frame out, go's answer in
    worker_stream = find(records, layer="multistream", event="agreed", protocol=WORKER)[0]["stream"]
    request, answer = find(records, layer="worker", stream=worker_stream)
    assert (request["dir"], request["role"], request["json"]["workType"]) == ("out", "request", "test")
    assert int(request["prefix"], 16) == request["length"]
    assert (answer["dir"], answer["role"]) == ("in", "response")
    assert answer["json"]["workerPeerId"] == go.peer_id
    assert records[-1]["layer"] == "tcp" and records[-1]["event"] == "close"


@pytest.mark.parametrize("key_type,name", [("ed25519", "Ed25519"), ("ecdsa", "ECDSA"),
                                           ("rsa", "RSA")])
async def test_go_identity_key_types_and_a_muxer_chosen_by_multistream(start_gopeer, key_type,
                                                                        name):
    go: GoPeer = start_gopeer("--key-type", key_type, "--no-early-muxer")
    out = io.StringIO()
    with anyio.fail_after(60):
        async with Host(trace=Tracer(JsonLinesWriter(out))) as host:
            peer = await host.connect(go.addr)
            await host.identify(peer, timeout=20)
            await host.ping(peer, 1)
    records = parsed(out)
    (m2,) = find(records, layer="noise", event="handshake", message=2)
    assert m2["identity_key_type"] == name and m2["stream_muxers"] == []
    assert find(records, layer="noise", event="handshake_complete")[0]["early_muxer"] is None
    # no muxer in the handshake: multistream chooses yamux inside Noise (still the connection)
    agreed = [r["protocol"] for r in find(records, layer="multistream", event="agreed", stream=None)]
    assert agreed == ["/noise", "/yamux/1.0.0"]
    pong = find(records, layer="ping", event="pong")
    assert pong and pong[0]["matches"] is True


async def test_go_dialing_us_tls_first_is_answered_na_then_noise(start_gopeer, gopeer_bin):
    out = io.StringIO()
    with anyio.fail_after(60):
        async with Host(PrivateKey.generate(KeyType.Secp256k1),
                        trace=Tracer(JsonLinesWriter(out))) as host:
            await host.listen("/ip4/127.0.0.1/tcp/0")
            result = await anyio.to_thread.run_sync(lambda: run_gopeer(
                "ping", host.p2p_addrs()[0], "--count", "2", "--security", "tls-first",
                timeout=60, binary=gopeer_bin))
    assert len(result["rtt_ms"]) == 2
    records = parsed(out)
    assert records[0]["direction"] == "inbound"
    ms = find(records, layer="multistream", stream=None, event="message")
    kinds = [(r["dir"], r["kind"], r["text"]) for r in ms]
    assert ("in", "proposal", "/tls/1.0.0") in kinds and ("out", "na", "na") in kinds
    assert kinds.index(("out", "na", "na")) < kinds.index(("in", "proposal", "/noise"))
    assert ("out", "accept", "/noise") in kinds
    hs = find(records, layer="noise", event="handshake")
    assert [(r["dir"], r["message"]) for r in hs] == [("in", 1), ("out", 2), ("in", 3)]
    assert hs[2]["identity_key_type"] == "Ed25519"  # gopeer's default key type
    (done,) = find(records, layer="noise", event="handshake_complete")
    assert done["remote_peer"] == hs[2]["peer_id"]
    pings = find(records, layer="ping", event="ping", dir="in")
    pongs = find(records, layer="ping", event="pong", dir="out")
    # go's ping loop may send one more ping before it stops: that one can meet a closed connection
    assert len(pongs) >= 2 and len(pings) - len(pongs) in (0, 1)
    assert all(p["matches"] for p in pongs)
