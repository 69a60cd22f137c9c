"""uvarint-length-delimited messages (go-msgio's varint framing, used by kad-dht and pubsub).

`DelimitedReader` is sans-IO: feed it bytes, get back whole messages. A length over `max_size` is
an error as soon as the length is visible, before any of the body is buffered, so a peer cannot
make us hold more than one bounded message per stream.
"""

from __future__ import annotations

import anyio

from p2p import varint
from p2p.errors import RemoteProtocolError
from p2p.streams import ByteStream


class FrameTooLarge(RemoteProtocolError):
    """A delimited message announced more bytes than the protocol allows."""


def encode(message: bytes) -> bytes:
    return varint.encode(len(message)) + message


class DelimitedReader:
    __slots__ = ("max_size", "_buf", "skip_empty")

    def __init__(self, max_size: int, *, skip_empty: bool = False) -> None:
        self.max_size = max_size
        self.skip_empty = skip_empty  # pubsub skips zero-length frames; kad treats them as messages
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every message now complete (possibly none)."""
        self._buf += data
        out: list[bytes] = []
        pos = 0
        buf = self._buf
        while True:
            res = varint.decode(buf, pos)  # raises VarintError on a malformed length
            if res is None:
                break
            length, body = res
            if length > self.max_size:
                raise FrameTooLarge(f"message of {length} bytes exceeds {self.max_size}")
            if body + length > len(buf):
                break
            if length or not self.skip_empty:
                out.append(bytes(buf[body : body + length]))
            pos = body + length
        if pos:
            del buf[:pos]
        return out


async def read_message(stream: ByteStream, reader: DelimitedReader, pending: list[bytes]) -> bytes:
    """Return the next message from `stream`, using `pending` for messages already parsed.

    Raises anyio.EndOfStream on a clean end between messages and RemoteProtocolError on a
    truncated one. The caller bounds the wait (cancel scope or read deadline).
    """
    while not pending:
        try:
            data = await stream.receive(65536)
        except anyio.EndOfStream:
            if reader.buffered:
                raise RemoteProtocolError("stream ended inside a message") from None
            raise
        pending.extend(reader.feed(data))
    return pending.pop(0)
