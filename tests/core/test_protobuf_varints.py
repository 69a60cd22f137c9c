"""Protobuf varints as go-libp2p's gogo-generated decoders read them: up to 10 bytes, non-minimal
accepted, the low 64 bits kept (an 11th byte is an overflow error); written back in up to 10 bytes
(2**63 .. 2**64 - 1 need the 10th, which multiformats varints never use). A fuzz target found a
decoded field that could not be encoded again."""

from __future__ import annotations

import pytest

from p2p.errors import DecodeError, LocalProtocolError
from p2p.protobuf import (WT_VARINT, VarintOverflowError, VarintRangeError, field_varint,
                          iter_fields)

MAX_U64_FIELD_10 = bytes.fromhex("50" "ffffffffffffffffff01")  # field 10 = 2**64 - 1, 10 bytes


def test_largest_uint64_is_read_and_written_back() -> None:
    assert list(iter_fields(MAX_U64_FIELD_10)) == [(10, 0, 2**64 - 1)]
    assert field_varint(10, 2**64 - 1) == MAX_U64_FIELD_10
    assert field_varint(10, 2**63) == bytes.fromhex("50" "80808080808080808001")
    assert field_varint(10, 2**63 - 1) == bytes.fromhex("50" "ffffffffffffffff7f")  # 9 bytes
    with pytest.raises(ValueError):
        field_varint(10, 2**64)


def test_non_minimal_varint_is_accepted_as_go_does() -> None:
    assert list(iter_fields(bytes.fromhex("50" "8100"))) == [(10, 0, 1)]


@pytest.mark.parametrize("tail", ["02", "7f"])
def test_a_tenth_byte_above_one_keeps_the_low_64_bits_as_gogo(tail: str) -> None:
    [(number, wtype, value)] = iter_fields(bytes.fromhex("50" "ffffffffffffffffff" + tail))
    assert (number, wtype, value) == (10, 0, 2**64 - 1 if int(tail, 16) & 1 else 2**63 - 1)
    assert list(iter_fields(field_varint(10, value))) == [(10, 0, value)]  # and it writes back


def test_eleven_bytes_are_too_long() -> None:
    with pytest.raises(DecodeError, match="too long"):
        list(iter_fields(bytes.fromhex("50" "80808080808080808080" "01")))


# (value, bytes go's encoders write: gogo's encodeVarint and protowire.AppendVarint agree)
GO_VECTORS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (300, "ac02"),
    (2**63 - 1, "ffffffffffffffff7f"),
    (2**63, "80808080808080808001"),
    (2**64 - 1, "ffffffffffffffffff01"),
]


@pytest.mark.parametrize(("value", "wire"), GO_VECTORS)
def test_varint_field_matches_go_bytes_and_round_trips(value: int, wire: str) -> None:
    encoded = field_varint(3, value)
    assert encoded == b"\x18" + bytes.fromhex(wire)
    assert list(iter_fields(encoded)) == [(3, WT_VARINT, value)]


@pytest.mark.parametrize("value", [-1, -(2**63), 2**64, 2**70])
def test_encoding_outside_uint64_is_a_typed_error(value: int) -> None:
    with pytest.raises(VarintRangeError) as info:
        field_varint(1, value)
    assert isinstance(info.value, LocalProtocolError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("wire", ["ffffffffffffffffff8101", "8080808080808080808000"])
def test_over_ten_bytes_is_a_typed_error_as_value_length_or_key(wire: str) -> None:
    for prefix in (b"\x08", b"\x0a", b""):  # a varint field, a length, a field key
        with pytest.raises(VarintOverflowError):
            list(iter_fields(prefix + bytes.fromhex(wire)))
    assert issubclass(VarintOverflowError, DecodeError)


def test_truncated_varint_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        list(iter_fields(b"\x08\xff\xff"))


def test_pubsub_backoff_carries_a_full_uint64() -> None:
    """Prune.backoff is a uint64 in pubsub's rpc.proto: the whole range goes out and comes back."""
    from p2p.pubsub.rpc import RPC, Control, Prune

    rpc = RPC(control=Control(prune=[Prune("t", backoff=2**64 - 1)]))
    assert bytes.fromhex("ffffffffffffffffff01") in rpc.encode()
    assert RPC.decode(rpc.encode()) == rpc
