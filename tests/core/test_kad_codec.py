"""Kad messages from bytes go writes (go-libp2p-kad-dht v0.26.1 pb types, via `godht vectors`;
the interop suite checks these vectors are still what go produces)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr

from p2p import delimited
from p2p.kad.messages import (Connectedness, KadDecodeError, Message, MessageType, PeerEntry,
                              Record)

VEC = {k: bytes.fromhex(v) for k, v in
       json.loads((Path(__file__).parent / "godht_vectors.json").read_text()).items()}
PID = VEC["peer_id"]
ADDR = Multiaddr("/ip4/127.0.0.1/tcp/4001").to_bytes()
ADDR6 = Multiaddr("/ip6/::1/tcp/4002").to_bytes()
PROV_KEY = b"\x12\x20" + hashlib.sha256(b"/masa/oracle_protocol/v0.8.4").digest()


def test_ping():
    assert VEC["kad_ping"] == bytes.fromhex("08055001")
    assert Message(MessageType.PING).encode() == VEC["kad_ping"]
    msg = Message.decode(VEC["kad_ping"])
    assert msg.type is MessageType.PING and msg.cluster_level == 0 and msg.cluster_level_raw == 1


def test_find_node_request_and_reply():
    assert Message(MessageType.FIND_NODE, key=PID).encode() == VEC["kad_find_node"]
    reply = Message(MessageType.FIND_NODE,
                    closer_peers=[PeerEntry(PID, [ADDR, ADDR6], Connectedness.CONNECTED)])
    assert reply.encode() == VEC["kad_find_node_reply"]
    back = Message.decode(VEC["kad_find_node_reply"])
    assert back.closer_peers == reply.closer_peers and back.key == b""


def test_provider_messages():
    add = Message(MessageType.ADD_PROVIDER, key=PROV_KEY, provider_peers=[PeerEntry(PID, [ADDR])])
    assert add.encode() == VEC["kad_add_provider"]
    got = Message(MessageType.GET_PROVIDERS, key=PROV_KEY, provider_peers=[PeerEntry(PID, [ADDR])])
    assert got.encode() == VEC["kad_get_providers_reply"]
    assert Message.decode(VEC["kad_add_provider"]).provider_peers[0].id == PID


def test_put_value_record_and_zero_type():
    key = VEC["kad_put_value"][2:2 + VEC["kad_put_value"][1]]
    assert key.startswith(b"/db/")
    msg = Message(MessageType.PUT_VALUE, key=key,
                  record=Record(key, b'{"peerId":"x"}', "2026-11-29T08:05:26.878244335Z"))
    assert msg.encode() == VEC["kad_put_value"]  # type 0 is omitted, as gogo omits zero enums
    back = Message.decode(VEC["kad_put_value"])
    assert back.type is MessageType.PUT_VALUE and back.record == msg.record


def test_empty_peer_id_is_written():
    msg = Message(MessageType.FIND_NODE, closer_peers=[PeerEntry(b"")])
    assert msg.encode() == VEC["kad_empty_peer"]


def test_too_many_peers_is_an_error():
    entry = PeerEntry(PID, [ADDR]).encode()
    body = Message(MessageType.FIND_NODE).encode() + b"".join(
        b"\x42" + bytes([len(entry)]) + entry for _ in range(300))
    with pytest.raises(KadDecodeError, match="more than 256 peers"):
        Message.decode(body)
    assert len(Message.decode(body, max_peers=300).closer_peers) == 300


@pytest.mark.parametrize("data, why", [
    (b"\x08\x09", "unknown kad message type"),
    (b"\x12\x05ab", "truncated"),
    (b"\x0a\x01a", "expected varint"),
    (b"\x08", "truncated"),
    (b"\x12" + bytes([0x81, 0x02]) + bytes(257), "kad key of"),
    (b"\x42\x04\x12\x02\x00\x00", None),  # a peer with a 2-byte "address": decodes; dialing skips it
])
def test_malformed(data, why):
    if why is None:
        Message.decode(data)
        return
    with pytest.raises(KadDecodeError, match=why):
        Message.decode(data)


def test_too_many_addresses():
    entry = b"".join(b"\x12" + bytes([len(ADDR)]) + ADDR for _ in range(33))
    body = b"\x42" + bytes([len(entry) & 0x7F | 0x80, len(entry) >> 7]) + entry
    with pytest.raises(KadDecodeError, match="addresses"):
        Message.decode(body)


@given(st.binary(max_size=300))
def test_decode_never_raises_anything_else(data):
    try:
        Message.decode(data)
    except KadDecodeError:
        pass


@given(st.sampled_from(list(MessageType)), st.binary(max_size=64),
       st.lists(st.tuples(st.binary(max_size=40), st.lists(st.binary(max_size=20), max_size=3)),
                max_size=5))
def test_roundtrip(mtype, key, peers):
    msg = Message(mtype, key=key, closer_peers=[PeerEntry(i, list(a)) for i, a in peers])
    assert Message.decode(msg.encode()) == msg


def test_delimited_reader_bounds_and_splits():
    r = delimited.DelimitedReader(10)
    framed = delimited.encode(b"abc") + delimited.encode(b"")
    out = []
    for i in range(len(framed)):
        out += r.feed(framed[i:i + 1])
    assert out == [b"abc", b""]
    with pytest.raises(delimited.FrameTooLarge):
        delimited.DelimitedReader(10).feed(b"\x0b")
    assert delimited.DelimitedReader(10, skip_empty=True).feed(b"\x00\x01x") == [b"x"]


def test_cluster_level_is_an_int32_as_go_keeps_it():
    """A hostile clusterLevelRaw (any 10-byte varint) decodes to go's int32 and re-encodes (go
    echoes PING and PUT_VALUE requests as they are): found by the kad_message fuzz target."""
    msg = Message.decode(b"\x50" + b"\xff" * 8 + b"\x95\x04")
    assert -(1 << 31) <= msg.cluster_level_raw < 1 << 31 and msg.cluster_level >= 0
    assert Message.decode(msg.encode()) == msg
    neg = Message.decode(b"\x50" + b"\xff" * 9 + b"\x01")  # -1 as go writes an int32
    assert neg.cluster_level_raw == -1 and neg.cluster_level == 0
    assert neg.encode() == b"\x50" + b"\xff" * 9 + b"\x01"
