"""Yamux header: constants pinned by byte examples of go-yamux's own frames (spec.md, "Framing")."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p.errors import RemoteProtocolError
from p2p.mux.yamux_frame import (
    Flag,
    FrameType,
    GoAwayCode,
    Header,
    YamuxProtocolError,
    decode_header,
    encode_header,
)

# (description, hex as go emits it, type, flags, stream id, length)
GO_FRAMES = [
    ("open stream 1", "00 01 0001 00000001 00000000", 1, 0x1, 1, 0),
    ("accept stream 1", "00 01 0002 00000001 00000000", 1, 0x2, 1, 0),
    ("data on stream 1, 5 bytes", "00 00 0000 00000001 00000005", 0, 0x0, 1, 5),
    ("half-close stream 3", "00 01 0004 00000003 00000000", 1, 0x4, 3, 0),
    ("reset stream 2", "00 01 0008 00000002 00000000", 1, 0x8, 2, 0),
    ("ping request 0", "00 02 0001 00000000 00000000", 2, 0x1, 0, 0),
    ("ping reply 7", "00 02 0002 00000000 00000007", 2, 0x2, 0, 7),
    ("GoAway normal", "00 03 0000 00000000 00000000", 3, 0x0, 0, 0),
    ("GoAway protocol error", "00 03 0000 00000000 00000001", 3, 0x0, 0, 1),
    ("GoAway internal error", "00 03 0000 00000000 00000002", 3, 0x0, 0, 2),
]


@pytest.mark.parametrize("name,hexstr,ftype,flags,sid,length", GO_FRAMES, ids=[f[0] for f in GO_FRAMES])
def test_header_vectors(name, hexstr, ftype, flags, sid, length):
    wire = bytes.fromhex(hexstr.replace(" ", ""))
    assert len(wire) == 12
    assert encode_header(ftype, flags, sid, length) == wire
    assert decode_header(wire) == Header(ftype, flags, sid, length)


def test_constants_match_spec_numbers():
    # Numbers from the spec table, not from the module: type codes, flag bits, GoAway codes.
    assert [FrameType.DATA, FrameType.WINDOW_UPDATE, FrameType.PING, FrameType.GO_AWAY] == [0, 1, 2, 3]
    assert [Flag.SYN, Flag.ACK, Flag.FIN, Flag.RST] == [1, 2, 4, 8]
    assert [GoAwayCode.NORMAL, GoAwayCode.PROTOCOL_ERROR, GoAwayCode.INTERNAL_ERROR] == [0, 1, 2]


def test_max_values_round_trip():
    wire = bytes.fromhex("00 01 000f ffffffff ffffffff".replace(" ", ""))
    assert encode_header(1, 0xF, 0xFFFFFFFF, 0xFFFFFFFF) == wire
    assert decode_header(wire) == Header(1, 0xF, 0xFFFFFFFF, 0xFFFFFFFF)


@pytest.mark.parametrize("hexstr", [
    "01 00 0000 00000001 00000000",  # version 1
    "ff 02 0001 00000000 00000000",  # version 255
    "00 04 0000 00000000 00000000",  # type 4
    "00 ff 0000 00000000 00000000",  # type 255
    "00 00 0000 0000",               # truncated
])
def test_bad_headers_are_protocol_errors(hexstr):
    with pytest.raises(YamuxProtocolError) as info:
        decode_header(bytes.fromhex(hexstr.replace(" ", "")))
    assert isinstance(info.value, RemoteProtocolError)


@given(st.binary(max_size=24))
def test_decode_header_only_raises_protocol_error(data):
    try:
        hdr = decode_header(data)
    except YamuxProtocolError:
        return
    assert data[0] == 0 and data[1] <= 3
    assert encode_header(*hdr) == data[:12]
