"""Unsigned LEB128 varints as go-varint v0.0.7 reads them (multiformats unsigned-varint spec).

go rejects non-minimal encodings (`80 00`) and anything over 9 bytes (values < 2**63); so do we,
because accepting them would let two byte strings name the same length.
"""

from __future__ import annotations

from p2p.errors import DecodeError

MAX_VARINT_LEN = 9
MAX_VALUE = (1 << 63) - 1


class VarintError(DecodeError):
    """Malformed varint: non-minimal, too long or overflowing."""


def encode(value: int) -> bytes:
    if value < 0 or value > MAX_VALUE:
        raise ValueError(f"varint out of range: {value}")
    return leb128(value)


def leb128(value: int) -> bytes:
    """The 7-bit groups of a non-negative `value`, low first (no range check: callers bound it,
    63 bits here, 64 for protobuf's varints)."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int] | None:
    """Decode a varint at `offset`; return (value, offset_after) or None if more bytes are needed.

    Raises VarintError for non-minimal or over-long encodings as soon as they are visible.
    """
    value = 0
    shift = 0
    end = len(buf)
    i = offset
    while i < end:
        b = buf[i]
        i += 1
        if i - offset > MAX_VARINT_LEN:
            raise VarintError("varint longer than 9 bytes")
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 and i - offset > 1:
                raise VarintError("non-minimal varint")
            return value, i
        shift += 7
    if end - offset >= MAX_VARINT_LEN:
        raise VarintError("varint longer than 9 bytes")
    return None


def decode_exact(buf: bytes) -> int:
    """Decode a buffer that holds exactly one varint."""
    res = decode(buf)
    if res is None or res[1] != len(buf):
        raise VarintError("not exactly one varint")
    return res[0]
