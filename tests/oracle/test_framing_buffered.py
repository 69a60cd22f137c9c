"""read_message's no-wait path: a frame already buffered on the stream (it came with the stream's
first bytes) is returned without touching the stream below; a missing rest is still waited for."""

from __future__ import annotations

import anyio
import pytest

from oracle.framing import FrameTooLarge, TruncatedFrame, read_message
from p2p.streams import BufferedStream

pytestmark = pytest.mark.anyio

# 4-byte big-endian length, then the body (masa worker protocol framing).
FRAME = bytes.fromhex("00000005") + b"hello"


class NoRead:
    """A stream that must not be read."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise AssertionError("read_message waited although the frame was buffered")


class Parts:
    def __init__(self, *parts: bytes) -> None:
        self.parts = list(parts)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.parts:
            raise anyio.EndOfStream
        return self.parts.pop(0)


async def test_buffered_frame_returned_without_reading_and_rest_kept() -> None:
    stream = BufferedStream(NoRead(), FRAME + b"\x00\x00")  # type: ignore[arg-type]
    assert await read_message(stream, max_size=16, timeout=5) == b"hello"
    assert stream.buffered == 2


async def test_buffered_empty_frame() -> None:
    stream = BufferedStream(NoRead(), bytes(4))  # type: ignore[arg-type]
    assert await read_message(stream, max_size=16, timeout=5) == b""


async def test_buffered_header_over_the_limit() -> None:
    stream = BufferedStream(NoRead(), bytes.fromhex("00000011") + b"x")  # type: ignore[arg-type]
    with pytest.raises(FrameTooLarge):
        await read_message(stream, max_size=16, timeout=5)


async def test_buffered_header_body_still_coming() -> None:
    stream = BufferedStream(Parts(b"llo"), FRAME[:6])  # type: ignore[arg-type]
    assert await read_message(stream, max_size=16, timeout=5) == b"hello"


async def test_buffered_header_body_cut_short() -> None:
    stream = BufferedStream(Parts(b"l"), FRAME[:6])  # type: ignore[arg-type]
    with pytest.raises(TruncatedFrame):
        await read_message(stream, max_size=16, timeout=5)


async def test_buffered_frame_with_its_body_split_keeps_the_rest() -> None:
    """A frame whose start is buffered and whose body comes in reads: the bytes after it stay."""
    stream = BufferedStream(Parts(b"l", b"lo\x00\x00\x00"), FRAME[:6])  # type: ignore[arg-type]
    assert await read_message(stream, max_size=16, timeout=5) == b"hello"
    assert stream.take_buffered() == b"\x00\x00\x00"


@pytest.mark.parametrize("parts, rest", [
    ((FRAME,), b""),  # the usual answer: one read brings all of it
    ((FRAME + b"\x00\x00",), b"\x00\x00"),
    ((FRAME[:2], FRAME[2:7], FRAME[7:] + b"x"), b"x"),  # the length, then the body, cut anywhere
    ((FRAME[:4], FRAME[4:]), b""),
    ((bytes(4) + b"x",), b"x"),  # an empty body
])
async def test_deadline_bounded_read_waits_for_the_frame(parts: tuple[bytes, ...], rest: bytes) -> None:
    """timeout=None (the requester's read, bounded by its stream's deadline): nothing buffered
    yet, the frame arrives in reads cut anywhere; what follows it stays buffered."""
    stream = BufferedStream(Parts(*parts))  # type: ignore[arg-type]
    body = await read_message(stream, max_size=16, timeout=None)
    assert body == (b"" if parts[0].startswith(bytes(4)) else b"hello")
    assert stream.take_buffered() == rest


@pytest.mark.parametrize("parts", [(), (FRAME[:3],), (FRAME[:7],)])
async def test_deadline_bounded_read_cut_short(parts: tuple[bytes, ...]) -> None:
    stream = BufferedStream(Parts(*parts))  # type: ignore[arg-type]
    with pytest.raises(TruncatedFrame):
        await read_message(stream, max_size=16, timeout=None)


async def test_deadline_bounded_read_over_the_limit_reads_no_body() -> None:
    stream = BufferedStream(Parts(bytes.fromhex("00000011"), b"x" * 17))  # type: ignore[arg-type]
    with pytest.raises(FrameTooLarge):
        await read_message(stream, max_size=16, timeout=None)
    assert stream.inner.parts == [b"x" * 17]  # type: ignore[attr-defined]
