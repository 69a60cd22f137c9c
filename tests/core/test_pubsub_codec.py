"""Pubsub RPCs and message signatures from bytes go writes (go-libp2p-pubsub v0.12.0 pb types via
`godht vectors`, a fixed Ed25519 identity: its signatures are deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.pubsub.rpc import (RPC, Control, IHave, Prune, PubMessage, RpcDecodeError, SubOpts)
from p2p.pubsub.sign import SIGN_PREFIX, SignatureError, sign, signed_bytes, verify

VEC = {k: bytes.fromhex(v) for k, v in
       json.loads((Path(__file__).parent / "godht_vectors.json").read_text()).items()}
TOPIC = "/masa/gossip/v0.8.4"
SEQNO = bytes.fromhex("187c4a2b00000001")


def _key() -> PrivateKey:
    # the protobuf form of an Ed25519 private key: type 1, data = seed ‖ public key (go's layout)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = bytes(range(1, 33))
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    data = seed + pub
    return PrivateKey.from_protobuf(b"\x08\x01\x12" + bytes([len(data)]) + data)


def test_hello():
    assert VEC["pubsub_rpc_hello"] == bytes.fromhex("0a17080112132f6d6173612f676f737369702f76302e382e34")
    assert RPC(subscriptions=[SubOpts(True, TOPIC)]).encode() == VEC["pubsub_rpc_hello"]
    assert RPC.decode(VEC["pubsub_rpc_hello"]).subscriptions == [SubOpts(True, TOPIC)]


def test_signed_message_as_go_signs_it():
    key = _key()
    assert PeerId.from_public_key(key.public_key).to_bytes() == VEC["peer_id"]
    msg = PubMessage(data=b'{"peerId":"x"}', seqno=SEQNO, topic=TOPIC)
    sign(msg, key)
    assert signed_bytes(msg) == VEC["pubsub_signed_bytes"]
    assert signed_bytes(msg).startswith(SIGN_PREFIX)
    assert msg.key is None  # an Ed25519 ID inlines its key: go leaves `key` out
    rpc = RPC(subscriptions=[SubOpts(True, TOPIC), SubOpts(False, TOPIC)], publish=[msg])
    assert rpc.encode() == VEC["pubsub_rpc_publish"]  # same bytes, same (deterministic) signature
    back = RPC.decode(VEC["pubsub_rpc_publish"])
    assert verify(back.publish[0]) == PeerId(VEC["peer_id"])
    assert back.publish[0].id == VEC["peer_id"] + SEQNO


def test_control_message():
    mid = VEC["peer_id"] + SEQNO
    ctl = Control(ihave=[IHave(TOPIC, [mid])], iwant=[[mid]], graft=[TOPIC],
                  prune=[Prune(TOPIC, backoff=60)], idontwant=[[mid]])
    assert RPC(control=ctl).encode() == VEC["pubsub_rpc_control"]
    assert RPC.decode(VEC["pubsub_rpc_control"]).control == ctl


def test_idontwant_as_go_prevalidation_sends_it():
    """go's PreValidation: an RPC holding only ControlIDontWant{messageIDs} (control field 5),
    the IDs raw from ‖ seqno bytes."""
    ids = [VEC["peer_id"] + SEQNO, VEC["peer_id"] + SEQNO[:-1] + b"\x02"]
    rpc = RPC(control=Control(idontwant=[ids]))
    assert rpc.encode() == VEC["pubsub_rpc_idontwant"]
    assert VEC["pubsub_rpc_idontwant"][:3] == b"\x1a\x62\x2a"  # RPC.control, then field 5
    back = RPC.decode(VEC["pubsub_rpc_idontwant"])
    assert back.control is not None and back.control.idontwant == [ids] and not back.publish


@pytest.mark.parametrize("mutate", ["data", "seqno", "topic", "signature", "from", "nosig"])
def test_tampered_messages_fail_verification(mutate):
    key = PrivateKey.generate(KeyType.Secp256k1)
    msg = PubMessage(data=b"x", seqno=SEQNO, topic=TOPIC)
    sign(msg, key)
    verify(msg)
    if mutate == "data":
        msg.data = b"y"
    elif mutate == "seqno":
        msg.seqno = bytes(8)
    elif mutate == "topic":
        msg.topic = "other"
    elif mutate == "signature":
        msg.signature = bytes(len(msg.signature))
    elif mutate == "from":
        msg.from_peer = PeerId.from_public_key(PrivateKey.generate().public_key).to_bytes()
    else:
        msg.signature = None
    with pytest.raises(SignatureError):
        verify(msg)


def test_rsa_messages_carry_their_key():
    key = PrivateKey.generate(KeyType.RSA)
    msg = PubMessage(data=b"x", seqno=SEQNO, topic=TOPIC)
    sign(msg, key)
    assert msg.key == key.public_key.to_protobuf()
    verify(msg)
    msg.key = PrivateKey.generate(KeyType.RSA).public_key.to_protobuf()
    with pytest.raises(SignatureError, match="does not match"):
        verify(msg)


def test_bounds():
    many_ids = Control(iwant=[[b"x"] * 5001]).encode()
    with pytest.raises(RpcDecodeError, match="message IDs"):
        RPC.decode(b"\x1a" + _len(many_ids) + many_ids)
    with pytest.raises(RpcDecodeError, match="RPC of"):
        RPC.decode(bytes((1 << 20) + 1))
    with pytest.raises(RpcDecodeError):
        RPC.decode(b"\x0a\x03\x12\x01\xff")  # topic not UTF-8


def _len(b: bytes) -> bytes:
    from p2p import varint

    return varint.encode(len(b))


@given(st.binary(max_size=400))
def test_decode_never_raises_anything_else(data):
    try:
        RPC.decode(data)
    except RpcDecodeError:
        pass
