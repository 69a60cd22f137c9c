"""A leaner TCP byte stream for the asyncio backend (trio keeps anyio's own stream).

Why: anyio's asyncio SocketStream pauses reading after every `receive` and resumes it before the
next (two epoll_ctl syscalls per wait), yields an extra loop turn after every `send`, and holds
three deques per connection (~2.3 KiB idle). Reads are 64 KiB until one fills 64 KiB (bulk),
then 512 KiB (`_LARGE_READ`): asyncio allocates the read size for every read, and a large block
cost a small message mmap + mremap + munmap per read. Here reading stays on while a reader waits (an
idle connection's next request costs no epoll_ctl) and pauses when bytes arrive for a busy reader
or more than `_READ_HIGH_WATER` wait unread; a waiter is one future; `send` yields one turn, or
until the kernel has taken the bytes. Semantics are anyio's: bytes
in, `EndOfStream` at EOF, `BrokenResourceError` after a transport error, `ClosedResourceError`
after `aclose`, which aborts like anyio's (the data of a returned `send` is with the kernel).

`adopt(stream)` takes over the transport of a freshly connected or accepted anyio SocketStream
(nothing read from it yet, apart from what its protocol already queued, which is carried over);
`connect(host, port)` dials an IP address with the loop's own `create_connection` (anyio's
`connect_tcp` spends a task group, a task and a timeout scope on happy eyeballs, which one
literal address does not need: ~1% of a whole connection set-up, handshakes included).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import sniffio

from p2p.transport.heap_thresholds import pin_heap_thresholds

__all__ = ["AsyncioTcpStream", "adopt", "connect"]

#: Unread bytes beyond this pause reading until the application catches up.
_READ_HIGH_WATER = 256 * 1024
#: The transport's read size until a read fills it, and from then on.
#: asyncio allocates a block of the read size for every read and shrinks it to what came: a
#: large block is above glibc's mmap threshold (128 KiB at first), so every read of a small
#: message cost mmap + mremap + munmap; a 64 KiB one comes from the heap. A stream does not go
#: back to small reads: a bulk transfer has small reads too (the end of a burst), and switching
#: at each allocated both sizes by turns, around which glibc grew and trimmed its heap (the bulk
#: sink's page faults per MiB 10-310, against 3-20 without switching back). The large size is
#: 512 KiB (asyncio's is 256 KiB): 16 echo streams on one connection keep more than that in the
#: socket, and half the reads cost ~10% of each side's CPU; the switch also pins glibc's heap
#: thresholds (`pin_heap_thresholds`, as QUIC does), without which a 512 KiB block per read made
#: glibc trim and regrow its heap around one echo stream (87 page faults per MiB instead of 18).
_SMALL_READ = 64 * 1024
_LARGE_READ = 512 * 1024


class _Protocol(asyncio.Protocol):
    __slots__ = ("owner",)

    def __init__(self, owner: AsyncioTcpStream) -> None:
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        o = self.owner
        if o._read_size == _SMALL_READ and len(data) >= _SMALL_READ:
            o._set_read_size(_LARGE_READ)  # it filled the read: bulk
        if o._on_data is not None:  # push mode: straight to the consumer, no task hop
            o._on_data(data)
            return
        o._chunks.append(data)
        o._buffered += len(data)
        # Read ahead only for a reader that is waiting: a busy one (bulk transfer) gets the
        # kernel's bytes in one large read when it asks, as with anyio (measured: reading ahead
        # into many fresh buffers cost ~40% of bulk throughput).
        if (o._rwait is None or o._buffered > _READ_HIGH_WATER) and not o._read_paused:
            o._read_paused = True
            o._transport.pause_reading()
        o._wake_reader()

    def eof_received(self) -> bool:
        o = self.owner
        o._eof = True
        o._wake_reader()
        o._push_end()
        return True  # keep our write side open (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        o = self.owner
        o._lost = True
        if exc is not None:
            o._error = exc
        o._wake_reader()
        o._wake_writer()
        o._push_end()

    def pause_writing(self) -> None:
        self.owner._write_paused = True

    def resume_writing(self) -> None:
        self.owner._write_paused = False
        self.owner._wake_writer()


class AsyncioTcpStream:
    """anyio ByteStream words over an asyncio transport, plus `extra` for the socket attributes."""

    __slots__ = ("_transport", "_chunks", "_buffered", "_read_paused", "_write_paused", "_eof",
                 "_lost", "_error", "_closed", "_rwait", "_wwait", "_on_data", "_on_end",
                 "_read_size")

    def __init__(self, transport: asyncio.Transport, chunks: list[bytes], eof: bool,
                 error: Exception | None) -> None:
        self._transport = transport
        self._chunks = chunks
        self._buffered = sum(len(c) for c in chunks)
        self._read_paused = False
        self._write_paused = False
        self._eof = eof
        self._lost = transport.is_closing()
        self._error = error
        self._closed = False
        self._rwait: asyncio.Future[None] | None = None
        self._wwait: asyncio.Future[None] | None = None
        self._on_data: Callable[[bytes], None] | None = None
        self._on_end: Callable[[BaseException | None], None] | None = None
        #: the transport's read size, adapted to the reads (0: it has no settable `max_size`)
        self._read_size = 0
        if hasattr(transport, "max_size"):  # asyncio's selector transports (see _set_read_size)
            self._set_read_size(_SMALL_READ)
        transport.set_protocol(_Protocol(self))
        transport.set_write_buffer_limits(0)  # like anyio: a send returns once the kernel has it
        if not self._lost:
            transport.resume_reading()

    def _set_read_size(self, size: int) -> None:
        """Small reads until one fills the small size, large ones from then on (bulk); the first
        switch of the process to large reads pins glibc's heap thresholds (see `_LARGE_READ`).
        `max_size` is an undocumented attribute of asyncio's selector transports: one that
        lacks it (uvloop's reads into a buffer of its own) keeps its own read size."""
        self._read_size = size
        if size == _LARGE_READ:
            pin_heap_thresholds()  # once per process (cached after the first call)
        self._transport.max_size = size  # type: ignore[attr-defined]

    def _wake_reader(self) -> None:
        w = self._rwait
        if w is not None and not w.done():
            w.set_result(None)

    def _wake_writer(self) -> None:
        w = self._wwait
        if w is not None and not w.done():
            w.set_result(None)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        chunks = self._chunks
        while not chunks:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._eof:
                raise anyio.EndOfStream
            if self._lost:
                if self._error is not None:
                    raise anyio.BrokenResourceError from self._error
                raise anyio.EndOfStream
            self._rwait = fut = asyncio.get_running_loop().create_future()
            try:
                await fut
            finally:
                self._rwait = None
        chunk = chunks[0]
        if len(chunk) > max_bytes:
            chunks[0] = chunk[max_bytes:]
            chunk = chunk[:max_bytes]
        elif len(chunks) == 1:
            chunks.clear()
        else:  # several reads are waiting: hand them on together (fewer, larger decrypt runs)
            n, total = 1, len(chunk)
            while n < len(chunks) and total + len(chunks[n]) <= max_bytes:
                total += len(chunks[n])
                n += 1
            chunk = b"".join(chunks[:n]) if n > 1 else chunk
            del chunks[:n]
        self._buffered -= len(chunk)
        if self._read_paused and not chunks and not self._lost:
            self._read_paused = False
            self._transport.resume_reading()
        return chunk

    def set_receiver(self, on_data: Callable[[bytes], None] | None,
                     on_end: Callable[[BaseException | None], None] | None = None) -> bool:
        """Push mode: hand every read to `on_data` as it arrives, from the loop's callback, and
        the end of the stream to `on_end` (None at EOF, else the error); `receive` is not used
        meanwhile. Bytes already buffered are handed over first. None returns to `receive`.

        For a consumer that only parses and wakes others (a yamux session): it saves the wake-up
        of a reader task and a loop turn per read. Flow control is `pause_receiving`.
        """
        self._on_data, self._on_end = on_data, on_end
        if on_data is None:
            return True
        while self._chunks and self._on_data is not None:  # it may stop in the middle
            chunk = self._chunks.pop(0)
            self._buffered -= len(chunk)
            self._on_data(chunk)
        if self._read_paused and not self._lost:
            self._read_paused = False
            self._transport.resume_reading()
        if self._eof or self._lost:
            self._push_end()
        return True

    def pause_receiving(self) -> None:
        """Push mode flow control: no more `on_data` until `resume_receiving`."""
        if not self._read_paused and not self._lost:
            self._read_paused = True
            self._transport.pause_reading()

    def resume_receiving(self) -> None:
        if self._read_paused and not self._lost and not self._closed:
            self._read_paused = False
            self._transport.resume_reading()

    def _push_end(self) -> None:
        on_end = self._on_end
        if on_end is None:
            return
        self._on_data = self._on_end = None
        if self._error is not None:
            try:
                raise anyio.BrokenResourceError from self._error
            except anyio.BrokenResourceError as exc:
                on_end(exc)
        elif self._closed:
            on_end(anyio.ClosedResourceError())
        else:
            on_end(None)

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._lost or self._transport.is_closing():
            raise anyio.BrokenResourceError from self._error
        self._transport.write(item)
        if not self._write_paused:
            # The kernel took it all: still yield one turn, as anyio does, so the receiving side
            # (and our own reader) run between a sender's writes (measured: bulk -25% without).
            await asyncio.sleep(0)
        while self._write_paused:  # the kernel did not take it all: wait until it has
            self._wwait = fut = asyncio.get_running_loop().create_future()
            try:
                await fut
            finally:
                self._wwait = None
            if self._closed:
                raise anyio.ClosedResourceError  # aclose() aborted, discarding the rest
            if self._lost:
                raise anyio.BrokenResourceError from self._error

    def send_ready(self) -> bool:
        """True when `try_send` would take bytes now (open, and the kernel took the last ones)."""
        return not (self._closed or self._lost or self._write_paused
                    or self._transport.is_closing())

    def try_send(self, item: bytes | bytearray | memoryview) -> bool:
        """`send` without the wait: hand `item` to the transport if `send_ready`, else False.

        For a writer that yields anyway (the yamux writer): no extra turn, no timeout scope. What
        the kernel does not take at once stays in the transport's buffer and makes the next `send`
        wait for it, so at most one such write is held in memory.
        """
        if self._closed or self._lost or self._write_paused or self._transport.is_closing():
            return False  # not send_ready(), inline: this runs once per write
        self._transport.write(item)
        return True

    async def send_eof(self) -> None:
        try:
            self._transport.write_eof()
        except (OSError, RuntimeError):
            pass

    async def aclose(self) -> None:
        self._closed = True
        self._transport.abort()
        self._wake_reader()
        self._wake_writer()
        await asyncio.sleep(0)  # a checkpoint, as anyio's aclose

    def extra(self, attribute: Any, *default: Any) -> Any:
        """The socket attributes the transport code reads (raw socket, local/remote address)."""
        sock: socket.socket | None = self._transport.get_extra_info("socket")
        try:
            if sock is None:
                raise OSError("no socket")
            if attribute is anyio.abc.SocketAttribute.raw_socket:
                return sock
            if attribute is anyio.abc.SocketAttribute.local_address:
                return sock.getsockname()
            if attribute is anyio.abc.SocketAttribute.remote_address:
                return sock.getpeername()
            if attribute is anyio.abc.SocketAttribute.local_port:
                return sock.getsockname()[1]
            if attribute is anyio.abc.SocketAttribute.remote_port:
                return sock.getpeername()[1]
            if attribute is anyio.abc.SocketAttribute.family:
                return sock.family
        except OSError:
            pass
        if default:
            return default[0]
        raise anyio.TypedAttributeLookupError("Attribute not found")


def adopt(stream: Any) -> Any:
    """On asyncio, an `AsyncioTcpStream` owning `stream`'s transport; otherwise `stream` itself."""
    if sniffio.current_async_library() != "asyncio":
        return stream
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if not isinstance(transport, asyncio.Transport) or protocol is None:
        return stream  # not anyio's asyncio SocketStream: leave it alone
    chunks = list(getattr(protocol, "read_queue", ()))
    return AsyncioTcpStream(transport, chunks, bool(getattr(protocol, "is_at_eof", False)),
                            getattr(protocol, "exception", None))


class _Connecting(asyncio.Protocol):
    """Holds what arrives between the connection and the stream taking it over (a listener may
    write first, e.g. its multistream header)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.eof = False
        self.error: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc


async def connect(host: str, port: int) -> AsyncioTcpStream:
    """A TCP connection to the IP address `host` (asyncio only); OSError when it fails."""
    loop = asyncio.get_running_loop()
    transport, pending = await loop.create_connection(_Connecting, host, port)
    return AsyncioTcpStream(transport, pending.chunks, pending.eof,
                            pending.error)
