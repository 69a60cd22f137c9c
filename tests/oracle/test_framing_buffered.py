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
