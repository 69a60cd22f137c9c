"""The trace of a fixed in-memory exchange, read back as JSON lines: every layer, every field."""

from __future__ import annotations

import io
import json

from exchange import KEY_A, KEY_B, PEER_A, PEER_B, PING_PAYLOAD, FakeClock, run_exchange
from hypothesis import given
from hypothesis import strategies as st

from p2p.mux.yamux_frame import encode_header
from p2p.trace import JsonLinesWriter, Tracer
from p2p.trace.dissect import Scope, StreamDissector, YamuxDissector

FIXED_KEYS = ("t", "conn", "stream", "dir", "layer", "event")


def jsonl_records() -> list[dict]:
    out = io.StringIO()
    run_exchange(Tracer(JsonLinesWriter(out), clock=FakeClock()))
    lines = out.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def find(records, **match):
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def test_every_line_is_json_with_the_six_keys():
    records = jsonl_records()
    assert len(records) > 60
    for r in records:
        assert list(r)[:6] == list(FIXED_KEYS)
        assert r["conn"] == "c1"
        assert r["dir"] in ("in", "out", None)
        assert isinstance(r["t"], float)
    times = [r["t"] for r in records]
    assert times == sorted(times)
    assert {r["layer"] for r in records} == {
        "tcp", "multistream", "noise", "yamux", "ping", "identify", "worker"}


def test_tcp_and_security_negotiation():
    records = jsonl_records()
    assert records[0] == {"t": records[0]["t"], "conn": "c1", "stream": None, "dir": None,
                          "layer": "tcp", "event": "open", "direction": "outbound",
                          "local": "/ip4/127.0.0.1/tcp/50000", "remote": "/ip4/127.0.0.1/tcp/4001"}
    first = records[1]
    assert (first["layer"], first["event"], first["dir"], first["length"]) == ("tcp", "data", "out", 28)
    assert first["hex"] == ("13" + b"/multistream/1.0.0\n".hex() + "07" + b"/noise\n".hex())
    ms = find(records, layer="multistream", stream=None, event="message")
    assert [(r["dir"], r["text"], r["kind"]) for r in ms] == [
        ("out", "/multistream/1.0.0", "header"), ("out", "/noise", "proposal"),
        ("in", "/multistream/1.0.0", "header"), ("in", "/noise", "accept")]
    assert ms[1]["length"] == 8 and ms[1]["hex"] == "072f6e6f6973650a"
    assert find(records, layer="multistream", event="agreed", stream=None)[0]["protocol"] == "/noise"


def test_noise_handshake_messages_and_payloads():
    records = jsonl_records()
    hs = find(records, layer="noise", event="handshake")
    assert [(r["dir"], r["message"]) for r in hs] == [("out", 1), ("in", 2), ("out", 3)]
    m1, m2, m3 = hs
    # msg1: the initiator's ephemeral key in clear (X25519 public key of 0x12 * 32)
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    e_a = X25519PrivateKey.from_private_bytes(b"\x12" * 32).public_key().public_bytes_raw()
    e_b = X25519PrivateKey.from_private_bytes(b"\x22" * 32).public_key().public_bytes_raw()
    assert m1["ephemeral_key"] == e_a.hex() and m1["length"] == 34 and m1["payload_length"] == 0
    assert "identity_key_type" not in m1
    # msg2: responder's ephemeral, its static key encrypted (32 + 16 tag), its payload decrypted
    assert m2["ephemeral_key"] == e_b.hex()
    assert len(bytes.fromhex(m2["encrypted_static_key"])) == 48
    assert m2["identity_key_type"] == "Ed25519"
    assert m2["identity_key"] == KEY_B.public_key.raw().hex()
    assert m2["peer_id"] == str(PEER_B)
    assert len(bytes.fromhex(m2["identity_sig"])) == 64
    assert m2["stream_muxers"] == ["/yamux/1.0.0"] and m2["has_extensions"] is True
    assert m2["encrypted_payload_length"] == m2["payload_length"] + 16
    assert m2["length"] == 2 + 32 + 48 + m2["encrypted_payload_length"]
    # msg3: our own static key and payload
    assert "ephemeral_key" not in m3
    assert m3["identity_key"] == KEY_A.public_key.raw().hex() and m3["peer_id"] == str(PEER_A)
    assert m3["length"] == 2 + 48 + m3["encrypted_payload_length"]
    done = find(records, layer="noise", event="handshake_complete")
    assert done == [{**done[0], "dir": None, "remote_peer": str(PEER_B),
                     "early_muxer": "/yamux/1.0.0"}]


def test_noise_frames_show_what_encryption_adds():
    records = jsonl_records()
    frames = find(records, layer="noise", event="frame")
    assert frames
    for f in frames:
        assert f["ciphertext_length"] == f["plaintext_length"] + 16
        assert f["wire_length"] == f["ciphertext_length"] + 2
    # every frame is followed on the wire by a tcp record of (at least) its size
    tcp_out = [r["length"] for r in find(records, layer="tcp", event="data", dir="out")]
    frames_out = [f["wire_length"] for f in frames if f["dir"] == "out"]
    assert frames_out == tcp_out[3:]  # after the negotiation, msg1 and msg3


def test_yamux_frames_decoded():
    records = jsonl_records()
    frames = find(records, layer="yamux", event="frame")
    opening = frames[0]
    # the SYN travels on the request's data frame: header 20 + proposal 18 + 32 bytes
    assert (opening["dir"], opening["type"], opening["flags"], opening["stream"],
            opening["stream_id"], opening["length"]) == ("out", "data", ["SYN"], 1, 1, 20 + 18 + 32)
    assert opening["hex"] == "000000010000000100000046"
    answer = frames[1]  # and the ACK on the answer's
    assert (answer["dir"], answer["type"], answer["flags"], answer["length"]) == (
        "in", "data", ["ACK"], 20 + 18 + 32)
    acks = [f for f in frames if f["flags"] == ["ACK"]]
    assert [(f["dir"], f["stream"]) for f in acks] == [("in", 1), ("in", 3), ("in", 5)]
    fins = [(f["dir"], f["stream"]) for f in frames if "FIN" in f["flags"]]
    assert fins == [("out", 1), ("in", 1), ("in", 3)]
    goaway = frames[-1]
    assert (goaway["type"], goaway["stream"], goaway["stream_id"], goaway["code"]) == (
        "go_away", None, 0, "normal")


def test_streams_negotiation_and_protocols():
    records = jsonl_records()
    for sid, proto in ((1, "/ipfs/ping/1.0.0"), (3, "/ipfs/id/1.0.0"), (5, "/masa/worker/1")):
        ms = find(records, layer="multistream", stream=sid, event="message")
        assert [(r["dir"], r["kind"]) for r in ms] == [
            ("out", "header"), ("out", "proposal"), ("in", "header"), ("in", "accept")]
        assert {r["text"] for r in ms} == {"/multistream/1.0.0", proto}
    ping, pong = find(records, layer="ping")
    assert (ping["dir"], ping["event"], ping["stream"], ping["payload"]) == (
        "out", "ping", 1, PING_PAYLOAD.hex())
    assert (pong["dir"], pong["event"], pong["matches"]) == ("in", "pong", True)
    assert pong["rtt_ms"] > 0
    # the lazy ping is reported as it crossed, before the listener's answer came back
    order = [r["event"] for r in records if r["stream"] == 1 and r["layer"] in ("ping", "multistream")]
    assert order.index("ping") < order.index("agreed")
    (ident,) = find(records, layer="identify")
    assert ident["dir"] == "in" and ident["stream"] == 3
    assert ident["public_key_type"] == "Ed25519" and ident["peer_id"] == str(PEER_B)
    assert ident["agent_version"] == "fixed/1.0" and ident["protocol_version"] == "ipfs/0.1.0"
    assert ident["listen_addrs"] == ["/ip4/127.0.0.1/tcp/4001"]
    assert ident["observed_addr"] == "/ip4/127.0.0.1/tcp/50000"
    assert ident["protocols"] == ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"]
    req, resp = find(records, layer="worker")
    assert (req["dir"], req["role"], req["json"], req["prefix"]) == (
        "out", "request", {"type": "test", "data": "hello"}, "00000021")
    assert (resp["dir"], resp["role"], resp["json"]) == ("in", "response", {"data": "HELLO", "error": ""})


def test_records_are_the_same_on_every_run():
    assert jsonl_records() == jsonl_records()


# ---- the dissectors on their own ---------------------------------------------------------------


def ms(text: str) -> bytes:
    body = text.encode() + b"\n"
    return bytes([len(body)]) + body


def test_na_then_second_proposal_then_data_split_byte_by_byte():
    tracer = Tracer(clock=FakeClock())
    stream = StreamDissector(Scope(tracer, "c1", 7), opener_dir="in")  # the peer opened it
    inbound = ms("/multistream/1.0.0") + ms("/nope/1") + b""
    for i in range(len(inbound)):
        stream.feed("in", inbound[i : i + 1])
    stream.feed("out", ms("/multistream/1.0.0") + ms("na"))
    stream.feed("in", ms("/ipfs/ping/1.0.0") + PING_PAYLOAD[:10])
    stream.feed("in", PING_PAYLOAD[10:])
    stream.feed("out", ms("/ipfs/ping/1.0.0") + PING_PAYLOAD)
    kinds = [(r["dir"], r.get("kind") or r["event"]) for r in tracer.records]
    assert kinds == [("in", "header"), ("in", "proposal"), ("out", "header"), ("out", "na"),
                     ("in", "proposal"), ("in", "ping"), ("out", "accept"), (None, "agreed"),
                     ("out", "pong")]
    assert all(r["stream"] == 7 for r in tracer.records)


def test_unknown_protocol_is_opaque_data():
    tracer = Tracer(clock=FakeClock())
    stream = StreamDissector(Scope(tracer, "c1", 1), opener_dir="out")
    stream.feed("out", ms("/multistream/1.0.0") + ms("/echo/1.0.0") + b"hello")
    stream.feed("in", ms("/multistream/1.0.0") + ms("/echo/1.0.0") + b"hello")
    data = find(tracer.records, layer="app")
    assert [(r["dir"], r["protocol"], r["length"], r["hex"]) for r in data] == [
        ("out", "/echo/1.0.0", 5, b"hello".hex()), ("in", "/echo/1.0.0", 5, b"hello".hex())]


def test_yamux_payload_split_across_feeds_and_rst():
    tracer = Tracer(clock=FakeClock())
    ymx = YamuxDissector(Scope(tracer, "c9"), lambda sid, d: StreamDissector(
        Scope(tracer, "c9", sid), d))
    payload = ms("/multistream/1.0.0") + ms("/x/1") + b"abc"
    wire = encode_header(0, 0x1, 2, len(payload)) + payload + encode_header(1, 0x8, 2, 0)
    for i in range(0, len(wire), 5):
        ymx.feed("in", wire[i : i + 5])
    frames = find(tracer.records, layer="yamux")
    assert [(f["type"], f["flags"], f["stream"], f["length"]) for f in frames] == [
        ("data", ["SYN"], 2, len(payload)), ("window_update", ["RST"], 2, 0)]
    assert ymx.streams == {}
    proposal = find(tracer.records, layer="multistream", kind="proposal")[0]
    assert (proposal["stream"], proposal["dir"], proposal["text"]) == (2, "in", "/x/1")


def test_bad_yamux_version_is_reported_not_raised():
    tracer = Tracer(clock=FakeClock())
    ymx = YamuxDissector(Scope(tracer, "c1"), lambda sid, d: StreamDissector(Scope(tracer, "c1", sid), d))
    ymx.feed("in", b"\x01" + b"\x00" * 11 + b"more")
    assert [r["event"] for r in tracer.records] == ["undecodable"]


@given(st.lists(st.tuples(st.sampled_from(["in", "out"]), st.binary(max_size=64)), max_size=20))
def test_dissectors_never_raise_on_garbage(chunks):
    tracer = Tracer(clock=FakeClock(), max_hex=8)
    ymx = YamuxDissector(Scope(tracer, "c1"), lambda sid, d: StreamDissector(Scope(tracer, "c1", sid), d))
    stream = StreamDissector(Scope(tracer, "c1", 1), "out")
    for dir, data in chunks:
        ymx.feed(dir, data)
        stream.feed(dir, data)
    for r in tracer.records:
        json.dumps(r)


@given(st.sampled_from(["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/masa/worker/1", "/other",
                        "/ipfs/kad/1.0.0", "/meshsub/1.1.0"]),
       st.lists(st.tuples(st.sampled_from(["in", "out"]), st.binary(max_size=80)), max_size=12))
def test_protocol_decoders_never_raise_on_garbage(protocol, chunks):
    from p2p.trace.protocols import json_frames

    tracer = Tracer(clock=FakeClock(), max_hex=8)
    tracer.register_protocol("/masa/worker/1", json_frames("worker"))
    stream = StreamDissector(Scope(tracer, "c1", 1), "out")
    stream.feed("out", ms("/multistream/1.0.0") + ms(protocol))
    stream.feed("in", ms("/multistream/1.0.0") + ms(protocol))
    for dir, data in chunks:
        stream.feed(dir, data)
        stream.end(dir)
    for r in tracer.records:
        json.dumps(r)


def test_json_documents_to_eof_and_json_lines():
    from p2p.trace.protocols import json_documents

    tracer = Tracer(clock=FakeClock())
    tracer.register_protocol("/doc/1", json_documents("membership"))
    tracer.register_protocol("/lines/1", json_documents("membership", lines=True))
    doc = StreamDissector(Scope(tracer, "c1", 1), "out")
    doc.feed("out", ms("/multistream/1.0.0") + ms("/doc/1") + b'{"peerId": ')
    doc.feed("out", b'"x", "isStaked": true}')
    assert find(tracer.records, layer="membership") == []  # a document ends at the FIN
    doc.end("out")
    (message,) = find(tracer.records, layer="membership")
    assert (message["dir"], message["event"], message["protocol"], message["json"]) == (
        "out", "message", "/doc/1", {"peerId": "x", "isStaked": True})
    lines = StreamDissector(Scope(tracer, "c1", 2), "in")
    lines.feed("in", ms("/multistream/1.0.0") + ms("/lines/1") + b'{"page": 0}\n{"pa')
    lines.feed("in", b'ge": 1}\nnot json\n')
    lines.end("in")
    got = [(r["event"], r.get("json"), r.get("text")) for r in find(tracer.records, stream=2,
                                                                     layer="membership")]
    assert got == [("line", {"page": 0}, None), ("line", {"page": 1}, None),
                   ("line", None, "not json")]


def test_kad_and_pubsub_rpcs_decoded():
    from p2p import varint
    from p2p.kad.messages import Message, MessageType, PeerEntry
    from p2p.pubsub.rpc import RPC, PubMessage, SubOpts

    tracer = Tracer(clock=FakeClock())
    kad = StreamDissector(Scope(tracer, "c1", 1), "out")
    request = Message(MessageType.FIND_NODE, key=PEER_B.to_bytes()).encode()
    peer = PeerEntry(PEER_A.to_bytes(), [bytes.fromhex("047f000001060fa1")])
    response = Message(MessageType.FIND_NODE, closer_peers=[peer]).encode()
    kad.feed("out", ms("/multistream/1.0.0") + ms("/masa/kad/1.0.0") + varint.encode(len(request)) + request)
    kad.feed("in", ms("/multistream/1.0.0") + ms("/masa/kad/1.0.0") + varint.encode(len(response))
             + response)
    req, resp = find(tracer.records, layer="kad")
    assert (req["dir"], req["role"], req["type"], req["key"]) == (
        "out", "request", "FIND_NODE", PEER_B.to_bytes().hex())
    assert (resp["role"], resp["closer_peers"]) == (
        "response", [{"id": str(PEER_A), "addrs": ["/ip4/127.0.0.1/tcp/4001"]}])
    sub = StreamDissector(Scope(tracer, "c1", 3), "in")
    rpc = RPC(subscriptions=[SubOpts(True, "blocks")],
              publish=[PubMessage(from_peer=PEER_B.to_bytes(), data=b"hi", seqno=b"\x01",
                                  topic="blocks")]).encode()
    sub.feed("in", ms("/multistream/1.0.0") + ms("/meshsub/1.1.0") + varint.encode(len(rpc)) + rpc)
    (got,) = find(tracer.records, layer="pubsub")
    assert got["subscriptions"] == [{"subscribe": True, "topic": "blocks"}]
    assert got["publish"] == [{"topic": "blocks", "from": str(PEER_B), "seqno": "01",
                               "data_length": 2, "data": "hi", "signed": False}]
