"""anyio driver for multistream-select: pumps bytes between a BufferedStream and the core machines.

Each negotiation runs under `anyio.fail_after(timeout)` (go-libp2p bounds stream negotiation at
10 s), reads in chunks, and gives any bytes past the final message back to the stream with
`unread`, so the next layer (Noise, yamux, the application) sees them first. The drivers never
close the stream on failure: the caller owns it and decides between reset and close.

`LazyStream` is go-multistream's lazy client (`NewMSSelect`): nothing is sent until the
application writes (or half-closes, or closes); then header + proposal + data go out in one write,
and the two replies are checked on the first read.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence

import anyio

from p2p.errors import P2PError, StreamReset
from p2p.multistream import (
    DEFAULT_MAX_NA_ROUNDS,
    PROTOCOL_ID,
    Dialer,
    Listener,
    ListRequester,
    Machine,
    UnexpectedEOF,
    encode_message,
    quick_listen,
)
from p2p.streams import (BufferedStream, ByteStream, has_nowait_io, has_read_deadlines,
                         has_stream_clock)
from p2p.sync import Flag, current_time

__all__ = [
    "NegotiationTimeout",
    "select_protocol",
    "handle_protocol",
    "list_protocols",
    "LazyStream",
    "lazy_hello",
    "read_lazy_replies",
]

log = logging.getLogger(__name__)

# Enough for any negotiation message; extra bytes read are pushed back with `unread`.
_READ_CHUNK = 4096
# Best-effort flush of replies queued before a protocol error; the caller is about to reset anyway.
_ERROR_FLUSH_TIMEOUT = 1.0


class NegotiationTimeout(P2PError):
    """The peer did not finish multistream-select within the allowed time."""

    def __init__(self, timeout: float, role: str) -> None:
        self.timeout = timeout
        self.role = role
        super().__init__(f"multistream negotiation ({role}) timed out after {timeout} s")


async def _flush(stream: BufferedStream, machine: Machine) -> None:
    out = machine.data_to_send()
    if out:
        await stream.send(out)


async def _flush_before_error(stream: BufferedStream, machine: Machine) -> None:
    """Like go, send the replies to what came before a bad message (an `na`) before giving up.

    Best effort and bounded: the original error is what the caller must see.
    """
    with anyio.move_on_after(_ERROR_FLUSH_TIMEOUT):
        try:
            await _flush(stream, machine)
        except Exception as exc:
            log.debug("multistream: could not flush replies before error: %r", exc)


def _reply_refused(exc: StreamReset, what: str) -> None:
    """A listener's header or echo the dialer no longer reads: go's listener ignores this write
    error and goes on. A dialer may send its request and close at once (masa's nodeDataSync push);
    on QUIC that Close is STOP_SENDING, which fails our writes while its request is still there to
    be read. A stream that is really gone fails the handler's first read instead."""
    if not exc.remote:
        raise exc
    log.debug("multistream: %s not delivered (%s); reading on", what, exc)


async def _flush_listener(stream: BufferedStream, machine: Machine) -> None:
    out = machine.data_to_send()
    if out:
        try:
            await stream.send(out)
        except StreamReset as exc:
            # An `na` the dialer cannot read would leave it waiting: that error stands (as go's).
            if isinstance(machine, Listener) and machine.na_rounds and not machine.done:
                raise
            _reply_refused(exc, "reply")


async def _run(
    stream: BufferedStream,
    machine: Machine,
    flush: Callable[[BufferedStream, Machine], Awaitable[None]] = _flush,
) -> None:
    """Send what the machine queued, feed it chunks until it is done, push back the leftover."""
    await flush(stream, machine)
    while not machine.done:
        try:
            chunk = await stream.receive(_READ_CHUNK)
        except anyio.EndOfStream:
            raise UnexpectedEOF("stream ended during protocol negotiation") from None
        try:
            machine.receive_data(chunk)
        except P2PError:
            await _flush_before_error(stream, machine)
            raise
        await flush(stream, machine)
    stream.unread(machine.leftover)


async def _run_with_timeout(
    stream: BufferedStream,
    machine: Machine,
    timeout: float,
    role: str,
    flush: Callable[[BufferedStream, Machine], Awaitable[None]] = _flush,
) -> None:
    try:
        with anyio.fail_after(timeout):
            await _run(stream, machine, flush)
    except TimeoutError:
        raise NegotiationTimeout(timeout, role) from None


@functools.lru_cache(maxsize=256)
def lazy_hello(protocol: str) -> bytes:
    """What a lazy dialer sends ahead of its first bytes: header + proposal for `protocol`
    (validated: LocalProtocolError when too long), and what the listener answers when it agrees.
    Cached: a dialer opens many streams for the same few protocols."""
    return encode_message(PROTOCOL_ID) + encode_message(protocol)


async def select_protocol(
    stream: BufferedStream, protocols: Sequence[str], *, timeout: float = 10.0
) -> str:
    """Dialer: propose `protocols` in order; return the agreed one or raise NegotiationFailed."""
    machine = Dialer(protocols)
    await _run_with_timeout(stream, machine, timeout, "dialer")
    assert machine.agreed is not None
    return machine.agreed


async def handle_protocol(
    stream: BufferedStream,
    supported: Collection[str] | Callable[[str], bool],
    *,
    timeout: float = 10.0,
    max_na_rounds: int = DEFAULT_MAX_NA_ROUNDS,
) -> str:
    """Listener: answer proposals until one is supported; return it (its echo already sent).

    Fast path: when the header and a supported proposal are already buffered (they arrive with the
    stream's SYN from a go or lazy dialer), answer at once: no machine, no wait, so no timeout
    scope. Anything else goes, with the same bytes, through the `Listener` machine.
    """
    inner = stream.inner
    nowait = inner if not stream.buffered and has_nowait_io(inner) else None
    # what the stream hands over without waiting
    if nowait is not None and (ready := nowait.receive_nowait(_READ_CHUNK)):
        accepts = supported if callable(supported) else supported.__contains__
        quick = quick_listen(ready, accepts)
        if quick is not None:
            proto, reply, leftover = quick
            stream.unread(leftover)
            try:  # the echo takes no turn of its own: the handler's reply follows
                sent = nowait.send_nowait(reply)
                if sent < len(reply):
                    await stream.send(reply[sent:])
            except StreamReset as exc:
                _reply_refused(exc, "header and echo")
            return proto
        stream.unread(ready)
    machine = Listener(supported, max_na_rounds=max_na_rounds)
    await _run_with_timeout(stream, machine, timeout, "listener", _flush_listener)
    assert machine.agreed is not None
    return machine.agreed


async def list_protocols(stream: BufferedStream, *, timeout: float = 10.0) -> list[str]:
    """Dialer side of `ls`. go (>= go-multistream 0.3.0) answers `na`: NegotiationFailed(["ls"]).

    The listener then waits for a proposal; this stream is meant for listing only, close it after.
    """
    machine = ListRequester()
    await _run_with_timeout(stream, machine, timeout, "ls")
    assert machine.protocols is not None
    return machine.protocols


async def read_lazy_replies(receive: Callable[[int], Awaitable[bytes]],
                            unread: Callable[[bytes], None], protocol: str,
                            buf: bytes = b"") -> None:
    """A lazy dialer's check of the listener's replies to the header + proposal it already
    sent, read with `receive` after `buf` (what was read of them already): the common reply
    (the very bytes sent) is recognised by comparison; anything else is handed to a `Dialer`
    machine, which owns every error. What follows the replies goes to `unread`. Unbounded in
    time: the caller bounds it."""
    hello = lazy_hello(protocol)
    while hello.startswith(buf):  # so far exactly the expected reply
        try:
            buf += await receive(_READ_CHUNK)
        except anyio.EndOfStream:
            raise UnexpectedEOF("stream ended before the protocol was confirmed") from None
        if buf.startswith(hello):
            unread(buf[len(hello):])
            return
    machine = Dialer([protocol])
    machine.data_to_send()  # already sent as `hello`
    machine.receive_data(buf)
    while not machine.done:
        machine.receive_data(await _receive_reply(receive))
    unread(machine.leftover)


async def _receive_reply(receive: Callable[[int], Awaitable[bytes]]) -> bytes:
    try:
        return await receive(_READ_CHUNK)
    except anyio.EndOfStream:
        raise UnexpectedEOF("stream ended before the protocol was confirmed") from None


class LazyStream(BufferedStream):
    """A stream negotiated optimistically for one protocol (go `NewMSSelect`), in one object.

    The proposal (header + protocol) travels with the first write, half-close or close; the first
    read checks the listener's two replies. `timeout` bounds only that wait, and only when the
    application set no read deadline (as go's lazy conn, whose reads only the application's
    deadline bounds; a stream without one still never waits forever). The common reply
    (header + echo: the very bytes we sent) is recognised by comparison; anything else is handed
    to a `Dialer` machine, which owns every error. Once the replies are checked the stream is a
    plain `BufferedStream` over `stream`: reads and writes go straight to the stream below, with
    no wrapper layer per concern (the Host's `NetStream` is a LazyStream, lazy or not).

    `lazy=False` makes a stream whose protocol is already agreed (nothing pending).
    """

    __slots__ = ("protocol", "timeout", "_hello", "_checked", "_error", "_user_deadline")

    def __init__(self, stream: ByteStream, protocol: str, *, timeout: float = 10.0,
                 lazy: bool = True) -> None:
        # every slot set here, BufferedStream's too (no super() call: a stream per request)
        self.inner = stream
        self._buf = bytearray()
        self.protocol = protocol
        self.timeout = timeout
        #: header + proposal still to go out ahead of our first bytes (b"" once sent)
        self._hello = lazy_hello(protocol) if lazy else b""
        self._checked: Flag | None = None  # readers waiting while the first checks the replies
        self._error: BaseException | None = None
        self._user_deadline: float | None = None  # the application's read deadline
        self._recv = self._receive_first if lazy else None

    @property
    def negotiating(self) -> bool:
        """True until the listener's replies are checked (a lazy stream's first read)."""
        return self._recv is not None

    async def _receive_first(self, max_bytes: int) -> bytes:
        """The first read below: the listener's replies, checked, then what follows them.

        Reads that come meanwhile wait for the check (`_wait_for_check`): the state is which of
        the two reads come to, so the usual single reader takes no lock.

        The wait for the replies is bounded by the application's read deadline, already in
        force on the stream below, when it set one; else by `timeout`, as a read deadline on
        the stream below (no timer of its own on yamux; a cancel scope costs several times
        more, on every stream this dialer opens), read from the stream's own clock when it has
        one (no lookup of the running loop: a getpid system call on Python 3.11's asyncio)."""
        if self._error is not None:
            raise self._error
        self._recv = self._wait_for_check
        inner = self.inner
        checked = False
        # What follows the replies: returned by this read, so that bytes pushed back before it
        # still come first when a caller appends it to the buffer (receive_exactly, ...).
        answer = b""
        leftover: list[bytes] = []  # read_lazy_replies' `unread`
        try:
            if self._hello:
                await self.send(b"")
            theirs = self._user_deadline is not None
            receive = inner.receive
            try:
                if theirs:
                    # The usual case, without a coroutine of its own: the replies come whole
                    # with the answer, in the first read (read_lazy_replies does the rest).
                    try:
                        first = await receive(_READ_CHUNK)
                    except anyio.EndOfStream:
                        raise UnexpectedEOF("stream ended before the protocol was confirmed"
                                            ) from None
                    hello = lazy_hello(self.protocol)
                    if first.startswith(hello):
                        answer = first[len(hello):]
                    else:
                        await read_lazy_replies(receive, leftover.append, self.protocol, first)
                elif has_read_deadlines(inner) and inner.set_read_deadline(
                        (inner.current_time() if has_stream_clock(inner) else current_time())
                        + self.timeout) is not False:
                    try:
                        await read_lazy_replies(receive, leftover.append, self.protocol)
                    finally:
                        inner.set_read_deadline(None)
                else:
                    with anyio.fail_after(self.timeout):
                        await read_lazy_replies(receive, leftover.append, self.protocol)
            except TimeoutError as exc:
                if theirs:  # the application's read deadline passed: its own timeout, kept for
                    self._error = exc  # every later read as go's lazy conn keeps its error
                    raise
                self._error = NegotiationTimeout(self.timeout, "lazy dialer")
                raise self._error from None
            except P2PError as exc:
                self._error = exc
                raise
            checked = True
        finally:
            self._recv = None if checked else self._receive_first
            waiting, self._checked = self._checked, None
            if waiting is not None:
                waiting.set()
        if leftover:
            answer = leftover[0]
        if not answer:
            return await self.receive(max_bytes)
        if len(answer) > max_bytes:  # only `receive` asks for less, and it reads the buffer
            self.unread(answer[max_bytes:])  # first: the buffer is empty here
            return answer[:max_bytes]
        return answer

    async def _wait_for_check(self, max_bytes: int) -> bytes:
        """A read while another task checks the replies: wait for its outcome, then read."""
        if self._checked is None:
            self._checked = Flag()
        await self._checked.wait()
        return await self.receive(max_bytes)

    def set_read_deadline(self, deadline: float | None) -> bool:
        """The application's read deadline (see `YamuxStream.set_read_deadline`); it also
        bounds the wait for the negotiation replies, instead of `timeout`."""
        inner = self.inner  # (BufferedStream's, inline: the application sets one per request)
        if not has_read_deadlines(inner) or inner.set_read_deadline(deadline) is False:
            return False
        self._user_deadline = deadline
        return True

    async def send(self, item: bytes) -> None:
        hello = self._hello
        if hello:
            # Taken in the same step that hands it to the stream below: it goes out first.
            self._hello = b""
            item = hello + item
        await self.inner.send(item)

    async def send_eof(self) -> None:
        if self._hello:
            await self.send(b"")
        await self.inner.send_eof()

    async def aclose(self) -> None:
        try:
            if self._hello:
                await self.send(b"")
        except Exception as exc:  # closing anyway; a broken stream cannot take the proposal
            log.debug("lazy stream: proposal not flushed before close: %r", exc)
        await self.inner.aclose()
