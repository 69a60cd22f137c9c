"""The 4-byte big-endian length framing: known bytes, hostile prefixes, timeouts, properties."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.framing import (
    FrameDecoder,
    FrameError,
    FrameTimeout,
    FrameTooLarge,
    TruncatedFrame,
    encode_frame,
    read_message,
    write_message,
)
from p2p.streams import BufferedStream

from oracle_fakes import memory_stream_pair


def test_encode_frame_known_bytes() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    assert encode_frame(b"x" * 300)[:4] == b"\x00\x00\x01\x2c"


def test_decoder_byte_by_byte_and_batched() -> None:
    dec = FrameDecoder(max_size=100)
    wire = b"\x00\x00\x00\x02hi" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x03abc"
    out: list[bytes] = []
    for i in range(len(wire)):
        out += dec.receive_data(wire[i : i + 1])
    assert out == [b"hi", b"", b"abc"]
    dec.end_of_stream()
    assert FrameDecoder(100).receive_data(wire) == [b"hi", b"", b"abc"]


def test_four_gib_prefix_refused_at_once() -> None:
    dec = FrameDecoder(max_size=1 << 20)
    with pytest.raises(FrameTooLarge) as info:
        dec.receive_data(b"\xff\xff\xff\xff")
    assert info.value.size == 0xFFFFFFFF and info.value.limit == 1 << 20
    with pytest.raises(Exception):
        dec.receive_data(b"more")


def test_limit_is_inclusive() -> None:
    assert FrameDecoder(3).receive_data(b"\x00\x00\x00\x03abc") == [b"abc"]
    with pytest.raises(FrameTooLarge):
        FrameDecoder(3).receive_data(b"\x00\x00\x00\x04")


@pytest.mark.parametrize("wire", [b"\x00\x00", b"\x00\x00\x00\x05ab", b"\x00\x00\x00\x01a\x00"])
def test_truncated_at_end_of_stream(wire: bytes) -> None:
    dec = FrameDecoder(100)
    dec.receive_data(wire)
    with pytest.raises(TruncatedFrame):
        dec.end_of_stream()


@given(st.lists(st.binary(max_size=50), max_size=6), st.data())
@settings(max_examples=200)
def test_any_chunking_gives_the_same_frames(bodies: list[bytes], data: st.DataObject) -> None:
    wire = b"".join(encode_frame(b) for b in bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    dec = FrameDecoder(50)
    out: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(wire)]:
        out += dec.receive_data(wire[prev:cut])
        prev = cut
    assert out == bodies
    dec.end_of_stream()


@given(st.binary(max_size=200), st.integers(0, 64))
@settings(max_examples=300)
def test_decoder_on_random_bytes_only_raises_frame_errors(wire: bytes, limit: int) -> None:
    dec = FrameDecoder(limit)
    try:
        for body in dec.receive_data(wire):
            assert len(body) <= limit
        dec.end_of_stream()
    except FrameError:
        pass


# --- async helpers over an in-memory stream pair ----------------------------------------------------------


@pytest.mark.anyio
async def test_write_then_read_message() -> None:
    a, b = memory_stream_pair()
    await write_message(a, b'{"x":1}')
    await write_message(a, b"")
    reader = BufferedStream(b)
    assert await read_message(reader, max_size=100, timeout=5) == b'{"x":1}'
    assert await read_message(reader, max_size=100, timeout=5) == b""


@pytest.mark.anyio
async def test_read_message_refuses_huge_prefix_without_reading_the_body() -> None:
    a, b = memory_stream_pair()
    await a.send(b"\xff\xff\xff\xff")  # nothing follows: a reader that waited for the body would time out
    with pytest.raises(FrameTooLarge):
        await read_message(BufferedStream(b), max_size=1024, timeout=5)


@pytest.mark.anyio
async def test_read_message_truncated_body() -> None:
    a, b = memory_stream_pair()
    await a.send(b"\x00\x00\x00\x10short")
    await a.send_eof()
    with pytest.raises(TruncatedFrame):
        await read_message(BufferedStream(b), max_size=1024, timeout=5)


@pytest.mark.anyio
async def test_read_message_eof_before_header() -> None:
    a, b = memory_stream_pair()
    await a.send_eof()
    with pytest.raises(TruncatedFrame):
        await read_message(BufferedStream(b), max_size=1024, timeout=5)


@pytest.mark.anyio
async def test_never_writing_peer_times_out() -> None:
    _a, b = memory_stream_pair()
    with pytest.raises(FrameTimeout) as info:
        await read_message(BufferedStream(b), max_size=1024, timeout=0.05)
    assert isinstance(info.value, TimeoutError)


@pytest.mark.anyio
async def test_slow_body_times_out() -> None:
    a, b = memory_stream_pair()
    await a.send(b"\x00\x00\x00\x10part")
    with pytest.raises(FrameTimeout):
        await read_message(BufferedStream(b), max_size=1024, timeout=0.05)


@pytest.mark.anyio
async def test_plain_byte_stream_is_wrapped() -> None:
    a, b = memory_stream_pair()
    await write_message(a, b"hello")
    with anyio.fail_after(5):
        assert await read_message(b, max_size=10, timeout=5) == b"hello"
