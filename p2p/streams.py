"""The byte-stream vocabulary every layer shares, and a buffered wrapper with push-back.

Every layer (TCP, Noise, a yamux stream, a negotiated host stream) speaks anyio's ByteStream words:
`receive(max_bytes)` returns at least one byte or raises `anyio.EndOfStream`; `send(data)`;
`send_eof()` half-closes; `aclose()` closes. Muxed streams add `reset()`.

Optional capabilities a stream class may declare (typing.Protocols, checked once per class by
`has_read_deadlines`, `is_resettable` and `has_nowait_io`, never probed with getattr): `PushReads`,
`PushPieces` and `NonBlockingWrites` (the fast paths a yamux session uses below it),
`ReadDeadlines` (a read bounded by one loop timer instead of a cancel scope), `ResettableStream`
(abort both directions), `NoWaitIO` (hand over what is already buffered, take a write without a
loop turn) and `StreamClock` (its deadlines' clock, read cheaply).

`BufferedStream` lets a protocol parser hand back bytes it read past its own message (multistream
proposals pipelined with application data, go's lazy streams) so the next layer sees them first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeGuard, cast, runtime_checkable

import anyio

from p2p.errors import RemoteProtocolError
from p2p.sync import current_time


@runtime_checkable
class ByteStream(Protocol):
    """What every layer below a muxed stream provides (TCP, Noise; a test's memory stream).

    Implementers provide:
    * `receive(max_bytes)`: at least one and at most `max_bytes` bytes, waiting for them;
      `anyio.EndOfStream` once the peer's half is closed and everything before it was returned;
      another exception (`anyio.BrokenResourceError`, a typed `P2PError`) when the stream failed.
    * `send(item)`: all of `item`, in order, waiting while the peer or the kernel cannot take it;
      the caller may reuse `item` when it returns. Concurrent senders must not interleave bytes.
    * `send_eof()`: half-close our side; `receive` goes on.
    * `aclose()`: release the stream (idempotent); pending calls fail.
    """

    async def receive(self, max_bytes: int = 65536) -> bytes: ...

    async def send(self, item: bytes) -> None: ...

    async def send_eof(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ResettableStream(ByteStream, Protocol):
    """A ByteStream that can also abort both directions at once (muxed streams)."""

    async def reset(self) -> None: ...


@runtime_checkable
class PushReads(Protocol):
    """A byte stream that can hand its reads to a callback as they arrive, instead of `receive`
    (a fast path: no reader task wake-up per read). Implemented by our asyncio TCP stream and by
    Noise over it; a yamux session uses it when the stream below offers it.

    Implementers provide:
    * `set_receiver(on_data, on_end)`: from now on call `on_data(chunk)` for every chunk read
      (bytes already buffered first, before this returns), never concurrently, in order; then
      `on_end(None)` once at a clean EOF or `on_end(exc)` on a failure, after which nothing more
      is called. `set_receiver(None)` stops pushing. Return False, changing nothing, when the
      stream cannot push after all (e.g. the one below it cannot): the caller uses `receive`.
    * `pause_receiving()` / `resume_receiving()`: flow control while pushing (no `on_data`
      between the two).
    """

    def set_receiver(self, on_data: Callable[[bytes], None] | None,
                     on_end: Callable[[BaseException | None], None] | None = None) -> bool: ...

    def pause_receiving(self) -> None: ...

    def resume_receiving(self) -> None: ...


@runtime_checkable
class NonBlockingWrites(Protocol):
    """A byte stream that can take a write without waiting when its buffers allow (a fast path:
    no cancel scope and no loop turn per write). A yamux session uses it when the stream below
    offers it.

    Implementers provide:
    * `send_ready()`: True when `try_send` would take bytes now.
    * `try_send(item)`: take all of `item` now, in order with every earlier send, and return
      True; or take nothing and return False. Never waits. A write the kernel did not finish may
      be held (one at most) and must make the next `send` wait for it.
    """

    def send_ready(self) -> bool: ...

    def try_send(self, item: bytes) -> bool: ...


@runtime_checkable
class PushPieces(Protocol):
    """A `PushReads` stream that can also hand over the pieces one read brought together (Noise:
    the plaintext of every frame a read completed), so the consumer parses and wakes its tasks
    once per read instead of once per piece.

    Implementers provide `set_pieces_receiver(on_pieces, on_end)`: `set_receiver`, with
    `on_pieces(pieces)` called once per read with its pieces in order (a non-empty list; a piece
    may be empty) instead of `on_data` once per piece.
    """

    def set_pieces_receiver(self, on_pieces: Callable[[list[bytes]], None],
                            on_end: Callable[[BaseException | None], None]) -> bool: ...


@runtime_checkable
class GatherWrites(Protocol):
    """A `NonBlockingWrites` stream that can also take a write as a list of pieces, so the
    layer above need not join them first (Noise seals them frame by frame into reused buffers).

    Implementers provide `try_send_pieces(pieces, total)`: `try_send` of the pieces' join
    (`total` bytes). The pieces are not kept after it returns.
    """

    def try_send_pieces(self, pieces: Sequence[bytes | memoryview], total: int) -> bool: ...


@runtime_checkable
class ReadDeadlines(Protocol):
    """A stream whose `receive` can be bounded by a deadline (a yamux or QUIC stream, and the
    wrappers above them): one loop timer per wait instead of a cancel scope per request.

    Implementers provide `set_read_deadline(deadline)`: from now on `receive` raises TimeoutError
    instead of waiting past `deadline` (`anyio.current_time()` clock); None lifts it. Return None
    or True when the deadline is in force, False when it is not after all (a wrapper whose stream
    below has no deadlines): the caller then bounds its reads with a cancel scope of its own.
    """

    def set_read_deadline(self, deadline: float | None) -> bool | None: ...


@runtime_checkable
class StreamClock(Protocol):
    """A stream that reads the clock of its read deadlines itself (a yamux stream: its loop's
    clock), without asking the async library for the running loop, which on Python 3.11's
    asyncio is a getpid system call: a lazy dialer sets a deadline per stream.

    Implementers provide `current_time()`: the `anyio.current_time()` clock's value now.
    """

    def current_time(self) -> float: ...


@runtime_checkable
class NoWaitIO(Protocol):
    """A stream that can act at once, without a loop turn (a yamux stream): multistream's listener
    answers a proposal that arrived with the stream's opening this way.

    Implementers provide:
    * `receive_nowait(max_bytes)`: up to `max_bytes` bytes already received, b"" if none (never
      waits, never raises for an ended stream: `receive` reports that).
    * `send_nowait(data)`: queue a prefix of `data` without waiting and return its length (0
      when nothing can be queued now); the caller sends the rest with `send`.
    """

    def receive_nowait(self, max_bytes: int = 65536) -> bytes: ...

    def send_nowait(self, data: bytes) -> int: ...


def _declared_by_class(capability: Any) -> Callable[[object], bool]:
    """A check of `capability` (a runtime-checkable Protocol of methods only) asked once per
    class, then a dict lookup: a Protocol isinstance check costs microseconds, and our streams
    declare their capabilities as methods of their class, not of one instance."""
    known: dict[type, bool] = {}

    def check(stream: object) -> bool:
        cls = type(stream)
        ok = known.get(cls)
        if ok is None:
            ok = known[cls] = issubclass(cls, capability)
        return ok

    return check


#: has_read_deadlines(stream) -> bool, narrowing `stream` to ReadDeadlines (and likewise below)
has_read_deadlines = cast(Callable[[object], TypeGuard[ReadDeadlines]],
                          _declared_by_class(ReadDeadlines))
is_resettable = cast(Callable[[object], TypeGuard[ResettableStream]],
                     _declared_by_class(ResettableStream))
has_nowait_io = cast(Callable[[object], TypeGuard[NoWaitIO]], _declared_by_class(NoWaitIO))
has_stream_clock = cast(Callable[[object], TypeGuard[StreamClock]],
                        _declared_by_class(StreamClock))
has_push_reads = cast(Callable[[object], TypeGuard[PushReads]], _declared_by_class(PushReads))
has_push_pieces = cast(Callable[[object], TypeGuard[PushPieces]], _declared_by_class(PushPieces))
has_nonblocking_writes = cast(Callable[[object], TypeGuard[NonBlockingWrites]],
                              _declared_by_class(NonBlockingWrites))
has_gather_writes = cast(Callable[[object], TypeGuard[GatherWrites]],
                         _declared_by_class(GatherWrites))


class BufferedStream:
    """Wraps a byte stream; adds `unread`, `receive_exactly`, `receive_until_eof`, and passes
    read deadlines (`set_read_deadline`) and their clock (`current_time`) to the stream below."""

    __slots__ = ("inner", "_buf", "_recv")

    def __init__(self, inner: ByteStream, initial: bytes = b"") -> None:
        self.inner = inner
        self._buf = bytearray(initial)
        #: a first step a subclass puts ahead of the read below (the lazy multistream dialer
        #: checks the listener's replies there); None: reads go to `inner.receive`, looked up per
        #: read rather than bound here (a bound method, 64 B, on every idle stream)
        self._recv: Callable[[int], Awaitable[bytes]] | None = None

    def unread(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._buf[0:0] = data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def take_buffered(self) -> bytes:
        """Everything pushed back or read ahead so far, removed from the buffer."""
        out = bytes(self._buf)
        self._buf.clear()
        return out

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._buf:
            out = bytes(self._buf[:max_bytes])
            del self._buf[:max_bytes]
            return out
        recv = self._recv
        if recv is None:
            return await self.inner.receive(max_bytes)
        return await recv(max_bytes)

    async def receive_exactly(self, n: int) -> bytes:
        """Read exactly n bytes; a clean EOF before that is a protocol error (truncation)."""
        while len(self._buf) < n:
            try:
                chunk = await (self._recv or self.inner.receive)(max(n - len(self._buf), 65536))
            except anyio.EndOfStream:
                raise RemoteProtocolError(
                    f"stream ended after {len(self._buf)} of {n} bytes"
                ) from None
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def receive_until_eof(self, limit: int) -> bytes:
        """Read everything until EOF; more than `limit` bytes is a protocol error."""
        while True:
            if len(self._buf) > limit:
                raise RemoteProtocolError(f"more than {limit} bytes before end of stream")
            try:
                self._buf += await (self._recv or self.inner.receive)(65536)
            except anyio.EndOfStream:
                out = bytes(self._buf)
                self._buf.clear()
                return out

    def set_read_deadline(self, deadline: float | None) -> bool:
        """Pass a read deadline (see `ReadDeadlines`) to the stream below; False when it has
        none (the caller then needs a cancel scope of its own)."""
        inner = self.inner
        if not has_read_deadlines(inner):
            return False
        return inner.set_read_deadline(deadline) is not False

    def current_time(self) -> float:
        """The clock of read deadlines (`StreamClock`): the stream below's own when it has one
        (a yamux stream: its loop's time, without asking the async library for the running
        loop, a getpid system call on Python 3.11's asyncio), else `anyio.current_time()`'s.
        An application setting a deadline per request reads it here: `stream.current_time() +
        timeout`, as go's `SetReadDeadline(time.Now().Add(timeout))`."""
        inner = self.inner
        return inner.current_time() if has_stream_clock(inner) else current_time()

    async def send(self, item: bytes) -> None:
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def reset(self) -> None:
        """Reset the stream below, or close it when it cannot be reset (a plain byte stream)."""
        inner = self.inner
        if is_resettable(inner):
            await inner.reset()
        else:
            await inner.aclose()
