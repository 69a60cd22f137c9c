"""The worker protocol's framing: a 4-byte big-endian length, then that many bytes of JSON.

masa's Go worker allocates whatever length the peer announces (up to 4 GiB) before reading; we check
the announced length against a limit before allocating or reading anything, so a hostile prefix
costs four bytes. `FrameDecoder` is the sans-IO core; `read_message`/`write_message` are the thin
async helpers over a NetStream-like object (`receive_exactly`, `send`).
"""

from __future__ import annotations

import struct
from typing import Protocol

import anyio

from p2p.errors import LocalProtocolError, RemoteProtocolError
from p2p.streams import BufferedStream, ByteStream

__all__ = [
    "DEFAULT_MAX_REQUEST_SIZE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "FrameDecoder",
    "FrameError",
    "FrameTimeout",
    "FrameTooLarge",
    "TruncatedFrame",
    "encode_frame",
    "frame_prefix",
    "read_message",
    "take_frame",
    "write_message",
]

HEADER_SIZE = 4
_LENGTH = struct.Struct(">I")
MAX_WIRE_SIZE = 2**32 - 1  # what a uint32 prefix can express
# Our choices: requests are small JSON documents (a query, a URL); responses may carry scraped
# data, bounded by go-libp2p's default per-stream memory limit (16 MiB, resource manager).
DEFAULT_MAX_REQUEST_SIZE = 1 << 20
DEFAULT_MAX_RESPONSE_SIZE = 16 << 20


class FrameError(RemoteProtocolError):
    """The peer's framing was unacceptable."""


class FrameTooLarge(FrameError):
    """The announced length exceeds our limit (refused before reading the body)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message of {size} bytes exceeds the limit of {limit} bytes")


class TruncatedFrame(FrameError):
    """The stream ended inside a frame."""


class FrameTimeout(FrameError, TimeoutError):
    """The peer did not deliver a whole frame in time."""


def encode_frame(body: bytes) -> bytes:
    """Length prefix + body; a body a uint32 cannot describe is our own error."""
    if len(body) > MAX_WIRE_SIZE:
        raise LocalProtocolError(f"message of {len(body)} bytes cannot be framed")
    return _LENGTH.pack(len(body)) + body


def frame_prefix(size: int) -> bytes:
    """The length prefix of a `size`-byte body (written before a body sent in pieces)."""
    if size > MAX_WIRE_SIZE:
        raise LocalProtocolError(f"message of {size} bytes cannot be framed")
    return _LENGTH.pack(size)


class FrameDecoder:
    """Sans-IO decoder: feed bytes with `receive_data`, get complete bodies back.

    Memory held is bounded by `max_size` + 4: a length over the limit raises FrameTooLarge the
    moment its four bytes are in, and the decoder is then unusable (the stream must be dropped).
    """

    def __init__(self, max_size: int = DEFAULT_MAX_REQUEST_SIZE) -> None:
        if not 0 <= max_size <= MAX_WIRE_SIZE:
            raise ValueError(f"max_size must be in 0..{MAX_WIRE_SIZE}")
        self.max_size = max_size
        self._buf = bytearray()
        self._length: int | None = None
        self._failed = False

    @property
    def bytes_needed(self) -> int:
        """How many more bytes complete the current header or body (a read size hint)."""
        if self._length is None:
            return HEADER_SIZE - len(self._buf)
        return self._length - len(self._buf)

    def receive_data(self, data: bytes) -> list[bytes]:
        if self._failed:
            raise LocalProtocolError("decoder already failed")
        out: list[bytes] = []
        view = memoryview(data)
        while view:
            take = min(self.bytes_needed, len(view))
            self._buf += view[:take]
            view = view[take:]
            if self.bytes_needed:
                continue
            if self._length is None:
                (length,) = struct.unpack(">I", self._buf)
                self._buf.clear()
                if length > self.max_size:
                    self._failed = True
                    raise FrameTooLarge(length, self.max_size)
                self._length = length
                if length:
                    continue
            out.append(bytes(self._buf))
            self._buf.clear()
            self._length = None
        return out

    def end_of_stream(self) -> None:
        """The peer closed: fine between frames, a TruncatedFrame inside one."""
        if self._buf or self._length is not None:
            have = len(self._buf)
            want = HEADER_SIZE if self._length is None else self._length
            part = "header" if self._length is None else "body"
            raise TruncatedFrame(f"stream ended after {have} of {want} {part} bytes")


class _ExactReader(Protocol):
    async def receive_exactly(self, n: int) -> bytes: ...


async def _read_exactly(stream: _ExactReader, n: int, what: str) -> bytes:
    try:
        return await stream.receive_exactly(n)
    except FrameError:
        raise
    except (anyio.EndOfStream, anyio.IncompleteRead, RemoteProtocolError) as exc:
        # BufferedStream reports EOF-inside-read as a plain RemoteProtocolError.
        raise TruncatedFrame(f"stream ended while reading the message {what}: {exc}") from None


async def _read_rest(reader: _ExactReader, length: int | None, max_size: int) -> bytes:
    """The frame's length (unless already read) and body."""
    if length is None:
        length = _checked_length(await _read_exactly(reader, HEADER_SIZE, "length"), max_size)
    return await _read_exactly(reader, length, "body") if length else b""


def take_frame(reader: BufferedStream, max_size: int) -> bytes | None:
    """The body of a frame already whole in `reader`'s buffer, taken without a wait (what
    follows it stays buffered); None, with nothing taken, when it is not all there yet.

    The usual request arrives with its stream's first bytes, so a worker has it buffered once the
    protocol is negotiated: no coroutine, no timeout scope. FrameTooLarge as soon as the length
    is buffered, as `read_message` raises it."""
    if reader.buffered < HEADER_SIZE:
        return None
    data = reader.take_buffered()
    end = HEADER_SIZE + _checked_length(data, max_size)
    if len(data) >= end:
        if len(data) > end:
            reader.unread(memoryview(data)[end:])
            return data[HEADER_SIZE:end]
        return data[HEADER_SIZE:]
    reader.unread(data)
    return None


async def read_message(
    stream: _ExactReader | ByteStream, *, max_size: int = DEFAULT_MAX_REQUEST_SIZE,
    timeout: float | None = 10.0,
) -> bytes:
    """Read one frame within `timeout` seconds; the length is checked before the body is read.

    Raises FrameTooLarge, TruncatedFrame, FrameTimeout (also a TimeoutError); stream errors such as
    StreamReset pass through. A stream without `receive_exactly` is wrapped in a BufferedStream.
    `timeout=None` is for a stream whose read deadline already bounds the wait (its TimeoutError
    passes through): no cancel scope of its own.
    """
    reader: _ExactReader = stream if hasattr(stream, "receive_exactly") else BufferedStream(stream)  # type: ignore[assignment]
    length: int | None = None
    if isinstance(reader, BufferedStream):
        # A frame that came whole with the stream's first bytes is taken without a wait, so
        # without a timeout scope; only a missing rest is waited for.
        body = take_frame(reader, max_size)
        if body is not None:
            return body
        if timeout is None:
            # The requester's wait for its answer (bounded by the stream's read deadline): the
            # read that brings the length brings a small answer's body with it.
            length = _checked_length(await _read_exactly(reader, HEADER_SIZE, "length"), max_size)
            if reader.buffered >= length:
                return _take(reader, length)
    if timeout is None:
        return await _read_rest(reader, length, max_size)
    try:
        with anyio.fail_after(timeout):
            return await _read_rest(reader, length, max_size)
    except TimeoutError as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameTimeout(f"no complete message within {timeout} s") from None


def _checked_length(header: bytes, max_size: int) -> int:
    """The body length a frame starting with `header` announces, refused over `max_size`."""
    (length,) = _LENGTH.unpack_from(header)
    if length > max_size:
        raise FrameTooLarge(length, max_size)
    return length  # type: ignore[no-any-return]


def _take(reader: BufferedStream, n: int) -> bytes:
    """The first `n` of the bytes `reader` holds buffered (at least `n`), without a wait."""
    data = reader.take_buffered()
    if len(data) == n:
        return data
    reader.unread(memoryview(data)[n:])
    return data[:n]


async def write_message(stream: ByteStream, body: bytes) -> None:
    """Write one frame in a single send (prefix and body leave together, in one muxer frame)."""
    await stream.send(encode_frame(body))
