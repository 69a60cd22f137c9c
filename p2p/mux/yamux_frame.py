"""Yamux wire constants and the 12-byte frame header (go-yamux `const.go`).

Header layout (https://github.com/hashicorp/yamux/blob/master/spec.md, "Framing"; all big-endian):

    version:u8 | type:u8 | flags:u16 | stream_id:u32 | length:u32

`length` means the payload size for Data frames, the window delta for WindowUpdate, the opaque value
for Ping and the error code for GoAway. Only Data frames carry a payload.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from p2p.errors import RemoteProtocolError

PROTOCOL_ID = "/yamux/1.0.0"
VERSION = 0
HEADER_SIZE = 12

#: Every stream starts with this window in each direction; go assumes it for its peer
#: (yamux spec, "Flow Control").
INITIAL_STREAM_WINDOW = 256 * 1024
MAX_UINT32 = 0xFFFFFFFF

_HEADER = struct.Struct(">BBHII")


class FrameType(enum.IntEnum):
    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class Flag(enum.IntFlag):
    SYN = 0x0001
    ACK = 0x0002
    FIN = 0x0004
    RST = 0x0008


class GoAwayCode(enum.IntEnum):
    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


# Plain ints for the hot paths (IntEnum/IntFlag arithmetic is several times slower).
DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 0x1, 0x2, 0x4, 0x8


class YamuxProtocolError(RemoteProtocolError):
    """The peer broke a yamux rule; the session is over (a GoAway(1) has been queued)."""


class Header(NamedTuple):
    type: int
    flags: int
    stream_id: int
    length: int


def encode_header(frame_type: int, flags: int, stream_id: int, length: int) -> bytes:
    """Pack one header; arguments out of range are our own bug, so struct.error is fine here."""
    return _HEADER.pack(VERSION, frame_type, flags, stream_id, length)


def decode_header(buf: bytes | bytearray | memoryview, offset: int = 0) -> Header:
    """Parse the 12 bytes at `offset`; a bad version or type is the peer's fault."""
    if len(buf) - offset < HEADER_SIZE:
        raise YamuxProtocolError(f"truncated yamux header ({len(buf) - offset} bytes)")
    version, frame_type, flags, stream_id, length = _HEADER.unpack_from(buf, offset)
    if version != VERSION:
        raise YamuxProtocolError(f"unsupported yamux version {version}")
    if frame_type > GO_AWAY:
        raise YamuxProtocolError(f"unknown yamux frame type {frame_type}")
    return Header(frame_type, flags, stream_id, length)


unpack_header_from = _HEADER.unpack_from  # raw fast path for the core's parser
pack_header = _HEADER.pack  # ... and for its data frames: (VERSION, type, flags, stream_id, length)
