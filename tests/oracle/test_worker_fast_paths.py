"""The worker's no-wait step: a request frame taken whole from the stream's buffer
(`take_frame`), without a coroutine or a read."""

from __future__ import annotations

import pytest

from oracle.framing import FrameTooLarge, take_frame
from p2p.streams import BufferedStream

FRAME = bytes.fromhex("00000005") + b"hello"


class NoRead:
    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise AssertionError("take_frame never reads")


def _buffered(data: bytes) -> BufferedStream:
    return BufferedStream(NoRead(), data)  # type: ignore[arg-type]


def test_whole_frame_taken_and_what_follows_kept() -> None:
    stream = _buffered(FRAME + b"\x00\x00\x00")
    assert take_frame(stream, 16) == b"hello"
    assert stream.take_buffered() == b"\x00\x00\x00"


def test_exact_frame_and_empty_frame() -> None:
    assert take_frame(_buffered(FRAME), 5) == b"hello"
    stream = _buffered(bytes(4))
    assert take_frame(stream, 0) == b"" and stream.buffered == 0


@pytest.mark.parametrize("cut", range(len(FRAME)))
def test_part_of_a_frame_is_left_as_it_was(cut: int) -> None:
    stream = _buffered(FRAME[:cut])
    assert take_frame(stream, 16) is None
    assert stream.take_buffered() == FRAME[:cut]


def test_over_the_limit_as_soon_as_the_length_is_in() -> None:
    with pytest.raises(FrameTooLarge):
        take_frame(_buffered(FRAME[:4]), 4)
