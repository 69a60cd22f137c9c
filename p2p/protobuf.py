"""Just enough protocol buffers for libp2p's small messages (keys, Noise payload, identify).

Wire types 0 (varint) and 2 (length-delimited) are all these messages use; 1 and 5 (fixed64/32) are
skipped correctly so that unknown fields from newer peers never break decoding. Field numbers come
from the .proto files named in each caller.
"""

from __future__ import annotations

from collections.abc import Iterator

from p2p.errors import DecodeError, LocalProtocolError
from p2p.varint import leb128

WT_VARINT = 0
WT_FIXED64 = 1
WT_LEN = 2
WT_FIXED32 = 5

MAX_UINT64 = (1 << 64) - 1
MAX_VARINT_LEN = 10  # 64 bits in 7-bit groups; go's decoders read no further


class VarintRangeError(LocalProtocolError, ValueError):
    """We were asked to encode a varint outside uint64 (negative, or >= 2**64).

    Signed fields (int32/int64) must be passed as go writes them: two's complement mod 2**64.
    """


class VarintOverflowError(DecodeError):
    """A peer sent a protobuf varint longer than 10 bytes (go's gogo decoders: ErrIntOverflow)."""


def _uvarint(value: int) -> bytes:
    # Unlike p2p.varint (multiformats lengths, <= 63 bits), protobuf varints carry full uint64s
    # (kad's clusterLevelRaw as go writes a negative int32, pubsub's backoff).
    if value < 0 or value > MAX_UINT64:
        raise VarintRangeError(f"protobuf varint out of uint64 range: {value}")
    return leb128(value)


def field_bytes(number: int, value: bytes | bytearray | memoryview) -> bytes:
    return _uvarint(number << 3 | WT_LEN) + _uvarint(len(value)) + bytes(value)


def field_str(number: int, value: str) -> bytes:
    return field_bytes(number, value.encode())


def field_varint(number: int, value: int) -> bytes:
    return _uvarint(number << 3 | WT_VARINT) + _uvarint(value)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    # Protobuf encoders are not required to be minimal (go accepts `80 00`); like go's decoders we
    # read at most 10 bytes (an 11th is an overflow error).
    value = 0
    shift = 0
    end = len(buf)
    start = pos
    while True:
        if pos >= end:
            raise DecodeError("truncated protobuf varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            # gogo-generated decoders (kad-dht v0.26.1's, pubsub v0.12.0's) keep the low 64 bits
            # of a 10-byte varint and drop the rest (google.golang.org/protobuf's protowire refuses it)
            return value & MAX_UINT64, pos
        if pos - start >= MAX_VARINT_LEN:
            raise VarintOverflowError("protobuf varint too long (over 10 bytes)")
        shift += 7


def iter_fields(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field_number, wire_type, value) with value an int (varint/fixed) or bytes (len)."""
    buf = bytes(buf)
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wtype = key >> 3, key & 7
        if number == 0:
            raise DecodeError("protobuf field number 0")
        if wtype == WT_VARINT:
            value, pos = _read_varint(buf, pos)
            yield number, wtype, value
        elif wtype == WT_LEN:
            length, pos = _read_varint(buf, pos)
            if length > end - pos:
                raise DecodeError("truncated protobuf field")
            yield number, wtype, buf[pos : pos + length]
            pos += length
        elif wtype == WT_FIXED64:
            if pos + 8 > end:
                raise DecodeError("truncated protobuf fixed64")
            yield number, wtype, int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wtype == WT_FIXED32:
            if pos + 4 > end:
                raise DecodeError("truncated protobuf fixed32")
            yield number, wtype, int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise DecodeError(f"unsupported protobuf wire type {wtype}")


def expect_bytes(wtype: int, value: int | bytes, name: str) -> bytes:
    if wtype != WT_LEN or not isinstance(value, bytes):
        raise DecodeError(f"protobuf field {name}: expected bytes")
    return value


def expect_varint(wtype: int, value: int | bytes, name: str) -> int:
    if wtype != WT_VARINT or not isinstance(value, int):
        raise DecodeError(f"protobuf field {name}: expected varint")
    return value
