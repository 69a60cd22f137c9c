"""Two connected in-memory byte streams for driver tests (both anyio backends).

Each direction is an unbounded anyio memory object stream of chunks, so a writer never blocks on a
reader that is not reading yet (go's listener writes its header before reading; a lazy dialer reads
late). Every `send` is recorded in `writes` so tests can assert what went out in one write.
`send_eof` ends the peer's reads after the buffered bytes; `aclose` does the same and makes our own
later calls fail; `reset` is recorded and closes both directions.
"""

from __future__ import annotations

import math

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


class MemoryByteStream:
    """One end of a pair: anyio ByteStream words plus `reset`, with a record of writes."""

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""
        self.writes: list[bytes] = []
        self.eof_sent = False
        self.closed = False
        self.was_reset = False

    @property
    def sent(self) -> bytes:
        """Everything written so far, concatenated."""
        return b"".join(self.writes)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.closed:
            raise anyio.ClosedResourceError
        if not self._pending:
            try:
                self._pending = await self._receive.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise anyio.EndOfStream from None
        out, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return out

    async def send(self, item: bytes) -> None:
        if self.closed:
            raise anyio.ClosedResourceError
        if self.eof_sent:
            raise anyio.ClosedResourceError("send after send_eof")
        if not item:
            return
        self.writes.append(bytes(item))
        try:
            self._send.send_nowait(bytes(item))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise anyio.BrokenResourceError from None

    async def send_eof(self) -> None:
        self.eof_sent = True
        self._send.close()

    async def aclose(self) -> None:
        self.closed = True
        self._send.close()
        self._receive.close()

    async def reset(self) -> None:
        self.was_reset = True
        await self.aclose()


def memory_stream_pair() -> tuple[MemoryByteStream, MemoryByteStream]:
    """Return (a, b): bytes sent on a are received on b and vice versa."""
    a_to_b_send, a_to_b_receive = anyio.create_memory_object_stream[bytes](math.inf)
    b_to_a_send, b_to_a_receive = anyio.create_memory_object_stream[bytes](math.inf)
    return (
        MemoryByteStream(a_to_b_send, b_to_a_receive),
        MemoryByteStream(b_to_a_send, a_to_b_receive),
    )
