"""Protobuf varints as go-libp2p's gogo-generated decoders read them: up to 10 bytes, non-minimal
accepted, the low 64 bits kept (an 11th byte is an overflow error); written back in up to 10 bytes
(2**63 .. 2**64 - 1 need the 10th, which multiformats varints never use). A fuzz target found a
decoded field that could not be encoded again."""

from __future__ import annotations

import pytest

from p2p.errors import DecodeError
from p2p.protobuf import field_varint, iter_fields

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
