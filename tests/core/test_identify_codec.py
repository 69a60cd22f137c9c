"""identify message bytes, from the field layout of go-libp2p's identify.proto (hand-assembled)."""

import pytest
from hypothesis import given, strategies as st

from p2p.protocols.identify import IdentifyError, IdentifyInfo, decode_messages, encode_messages

ED25519_PUB = bytes.fromhex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
ADDR = bytes.fromhex("047f000001060fa1")  # /ip4/127.0.0.1/tcp/4001 (binary multiaddr: 04 ip4, 06 tcp)

EXPECTED = bytes.fromhex(
    "0a24" + ED25519_PUB.hex()
    + "1208" + ADDR.hex()
    + "1a0e" + b"/ipfs/id/1.0.0".hex()
    + "2208" + ADDR.hex()
    + "2a0a" + b"ipfs/0.1.0".hex()
    + "3201" + b"x".hex()
)


def sample() -> IdentifyInfo:
    return IdentifyInfo(public_key=ED25519_PUB, listen_addrs=[ADDR], protocols=["/ipfs/id/1.0.0"],
                        observed_addr=ADDR, protocol_version="ipfs/0.1.0", agent_version="x")


def test_encode_known_bytes():
    assert sample().encode() == EXPECTED
    # one delimited message: uvarint length (0x58 = 88) then the body
    assert encode_messages(sample()) == bytes([len(EXPECTED)]) + EXPECTED


def test_decode_merges_messages_like_protobuf():
    second = bytes.fromhex("1a10") + b"/ipfs/ping/1.0.0" + bytes.fromhex("3201") + b"y"
    data = bytes([len(EXPECTED)]) + EXPECTED + bytes([len(second)]) + second
    info = decode_messages(data)
    assert info.protocols == ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"]  # repeated fields append
    assert info.agent_version == "y"  # scalars overwrite
    assert [str(a) for a in info.multiaddrs()] == ["/ip4/127.0.0.1/tcp/4001"]
    assert str(info.observed_multiaddr()) == "/ip4/127.0.0.1/tcp/4001"


def test_unknown_and_delta_fields_ignored():
    body = bytes.fromhex("3a00") + bytes.fromhex("5003") + bytes.fromhex("3201") + b"z"  # field 7 msg, field 10 varint
    assert decode_messages(bytes([len(body)]) + body).agent_version == "z"


def test_limits():
    big = b"\x32" + b"\x80\x40" + b"a" * 8192  # agentVersion of 8192 bytes: message of 8195
    with pytest.raises(IdentifyError):
        decode_messages(b"\x83\x40" + big)
    one = bytes.fromhex("3201") + b"a"
    assert decode_messages((b"\x03" + one) * 9).agent_version == "a"
    with pytest.raises(IdentifyError):
        decode_messages((b"\x03" + one) * 10)
    with pytest.raises(IdentifyError):
        decode_messages(b"\x05" + one)  # truncated


def test_large_record_split_in_two_messages():
    info = sample()
    info.signed_peer_record = b"r" * 3000
    data = encode_messages(info)
    back = decode_messages(data)
    assert back.signed_peer_record == b"r" * 3000 and back.protocols == ["/ipfs/id/1.0.0"]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_typed_error_or_result(data):
    try:
        info = decode_messages(data)
    except IdentifyError:
        return
    info.multiaddrs()
    info.observed_multiaddr()
