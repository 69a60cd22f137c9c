"""anyio driver for the yamux core: one input path, one output object, keepalive and RTT pings.

The protocol decisions all live in `p2p.mux.yamux.YamuxConnection` (the core); this module only
moves bytes between it and the byte stream below (`lower`: Noise in a host, TCP or memory in
tests) and wakes tasks.

Input (`YamuxSession._feed`, the only way received bytes reach the core): parse, wake the streams
the events name, schedule the output they caused. How the bytes arrive depends on what the stream
below can do: one that pushes its reads (`p2p.streams.PushReads`: Noise over our asyncio TCP
stream) calls `_feed` from the transport's callback, with no task between the socket and the
stream's task; otherwise a reader task calls `receive` and `_feed`. Either way reading pauses
while more than `_OUTPUT_HIGH_WATER` of output that the input itself caused waits for the peer (RSTs
for a SYN flood from a peer that does not read) and resumes once the writer has handed it over.
Output the streams queued never pauses reading: their senders wait for it to drain instead, and
two peers that both stopped reading while their writes wait would never drain.

Output (`SessionOutput`, the only owner of flush decisions): stream calls (`open_stream`, `send`,
`send_eof`, `aclose`, `reset`) only queue frames in the core and call `kick()`. A task's queued
output leaves from the task itself when it is about to wait for a read (`try_flush`: the stream
below takes it without waiting, `p2p.streams.NonBlockingWrites`), so a request (SYN + proposal +
data + FIN) is one write in the turn that made it; a closed stream's output leaves with the next
write or at the start of the next turn (`flush_soon`: a requester's FIN goes with its next
request, and a handler's answer and FIN with the turn's other output). Otherwise the kick
wakes the writer task (on asyncio through a callback at the next loop turn, by when the task has
usually written its output itself), which, like go-yamux's send loop, writes everything queued
while it waited in one write. Short sends do not yield; a send yields past 64 KiB queued or after
16 sends without a turn of the reader or writer, and waits when more than `_SEND_HIGH_WATER` is
queued (backpressure bounds memory). A write error is seen by the next call as `ConnectionClosed`.

Clocks (no task of their own: an idle connection costs two tasks): the run task (or the reader)
waits at most until the next timer is due.
* keepalive: pings after `keepalive_interval` without a received frame; no reply within
  `keepalive_timeout` closes the session (go: 30 s + 10 s).
* rtt: pings at start (opaque 0, like go) and every `measure_rtt_interval`; feeds window tuning.

Every waiter (reads, read deadlines, window waits, accept, open, pings) is woken on teardown, and
then fails with `ConnectionClosed`, so nothing can hang on a dead session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import anyio
import anyio.lowlevel
import sniffio
from anyio.abc import TaskGroup

from p2p.errors import ConnectionClosed, LocalProtocolError, StreamReset
from p2p.mux import yamux as core
from p2p.mux.yamux import SessionGoingAway, StreamLimitReached, YamuxConfig, YamuxConnection
from p2p.mux.yamux_frame import YamuxProtocolError
from p2p.mux.yamux_output import (
    _SEND_HIGH_WATER,
    SessionOutput,
    _asyncio_checkpoint,
    _wake,
)
from p2p.streams import ByteStream, has_push_pieces, has_push_reads
from p2p.sync import Flag

__all__ = ["SessionOutput", "YamuxConfig", "YamuxSession", "YamuxStream", "YamuxProtocolError"]

log = logging.getLogger(__name__)

#: Bytes asked of the stream below per read: large reads keep per-call overhead off the bulk path.
_RECV_SIZE = 1 << 20
#: Output caused by input (RSTs, pongs, ACKs) queued beyond this makes the input side wait for
#: the writer (bounds memory under a SYN flood while the peer does not read).
_OUTPUT_HIGH_WATER = 1 << 20
#: A stream `send` yields a loop turn when more than this is queued for the writer...
_YIELD_ABOVE = 64 * 1024
#: ... or after this many sends on the session without a turn of its reader or writer.
_MAX_UNYIELDED_SENDS = 16
#: Tasks one input woke write together (`YamuxSession._woken`) until this much is queued: then
#: the batch leaves so far, so that the peer works on it while the rest is made (all 64 of a
#: worker 64 run in one write made the two sides take turns).
_WOKEN_BATCH = 8 * 1024
#: How long a best-effort GoAway may take on the way out.
_GOAWAY_GRACE = 1.0
#: `YamuxStream._reset` once the stream is reset: by us, or by the peer.
_RESET_LOCAL, _RESET_REMOTE = 1, 2


class YamuxStream:
    """One multiplexed stream: anyio ByteStream words plus `reset` (go semantics for `aclose`)."""

    __slots__ = ("_session", "stream_id", "_rbuf", "_rwait", "_wwait", "_remote_eof",
                 "_local_eof", "_reset", "_closed", "_read_deadline")

    def __init__(self, session: YamuxSession, stream_id: int) -> None:
        self._session = session
        self.stream_id = stream_id
        #: the core's receive buffer of this stream: a read looks at its size before it reads
        #: the clock and calls the core (a request's dialer reads twice finding nothing)
        self._rbuf = session._core.receive_buffer(stream_id)
        #: a waiting reader: on asyncio the only reader's future itself (no Flag: a future and a
        #: coroutine frame less per read wait, a wait per request at a dialer), else a Flag
        self._rwait: Flag | asyncio.Future[None] | None = None
        self._wwait: Flag | None = None
        self._remote_eof = False
        self._local_eof = False
        self._reset = 0  # _RESET_LOCAL or _RESET_REMOTE once reset (one slot for both facts)
        self._closed = False
        self._read_deadline: float | None = None

    def __repr__(self) -> str:
        return f"<YamuxStream {self.stream_id}>"

    def _wake_reader(self) -> None:
        ev = self._rwait
        if ev is not None:
            self._rwait = None
            if isinstance(ev, Flag):
                ev.set()
            elif not ev.done():  # the only reader's future (asyncio)
                ev.set_result(None)

    def _wake_writer(self) -> None:
        ev = self._wwait
        if ev is not None:
            self._wwait = None
            ev.set()

    def _mark_reset(self, remote: bool) -> None:
        if not self._reset:
            self._reset = _RESET_REMOTE if remote else _RESET_LOCAL
        self._wake_reader()
        self._wake_writer()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return buffered bytes (waking on data); EndOfStream after the peer's FIN."""
        sess = self._session
        core = sess._core
        while True:
            if self._reset:
                raise StreamReset(remote=self._reset == _RESET_REMOTE)
            if self._closed:
                raise anyio.ClosedResourceError
            if self._rbuf.size and (sess.error is None or not sess.is_closed):
                data = core.read(self.stream_id, max_bytes, sess._clock())
                if data:
                    if core.pending_output:
                        sess._kick()
                    return data
            if self._remote_eof:
                sess._forget_if_done(self)
                raise anyio.EndOfStream
            if sess.is_closed:
                raise _session_closed(sess.error)
            # About to wait: this task's turn is over. What it queued (a request) leaves now,
            # unless other tasks the same input woke are still to run: the last of them writes
            # for all (`YamuxSession._woken`). Window updates alone stay with the writer (kicked
            # when they were queued), which sends them with the data other tasks queue
            # meanwhile instead of a write of their own.
            # (no local variable here: a waiting reader's frame is kept for every open stream)
            if sess._woken:
                sess._woken -= 1
            if (core.pending_output and (not sess._woken or core.pending_output >= _WOKEN_BATCH)
                    and not core.only_window_updates):
                sess.try_flush()
            rwait = self._rwait
            loop = sess._loop
            if rwait is None and loop is not None:
                # asyncio, and the only reader (the usual case): the wait is one future
                deadline = self._read_deadline
                if deadline is not None:
                    if sess._clock() >= deadline:
                        raise TimeoutError("yamux stream read deadline passed")
                    sess._watch_deadline(deadline)
                self._rwait = fut = loop.create_future()
                try:
                    await fut
                finally:
                    if self._rwait is fut:  # cancelled: nobody waits any more
                        self._rwait = None
                continue  # woken by data, an end or the deadline: look again
            if rwait is None:
                self._rwait = rwait = Flag()
            elif not isinstance(rwait, Flag):  # a second reader joins the first one's wait
                self._rwait = rwait = Flag.around(rwait)
            if self._read_deadline is None:
                await rwait.wait(loop)
            else:
                await self._wait_until_deadline(rwait)

    def set_read_deadline(self, deadline: float | None) -> None:
        """From now on `receive` raises TimeoutError instead of waiting past `deadline` (in
        `anyio.current_time()` terms); None lifts it. Like go's SetReadDeadline: no cancel scope
        per read (what a multistream reply wait costs per stream); on asyncio not even a timer
        per wait, the session's one deadline timer (`YamuxSession._watch_deadline`)."""
        self._read_deadline = deadline
        if self._rwait is not None:  # set while a read waits: it looks again, with this one
            self._wake_reader()

    def current_time(self) -> float:
        """The clock of read deadlines (`p2p.streams.StreamClock`): on asyncio the loop's own,
        read without a lookup of the running loop."""
        return self._session._clock()

    async def _wait_until_deadline(self, flag: Flag) -> None:
        sess = self._session
        deadline = self._read_deadline
        assert deadline is not None
        if sess._clock() >= deadline:
            raise TimeoutError("yamux stream read deadline passed")
        if sess._call_at is not None:
            sess._watch_deadline(deadline)
            await flag.wait(sess._loop)
        else:
            with anyio.move_on_at(deadline):
                await flag.wait()
        # Woken by data or by the deadline: the caller's loop looks again, and raises above if
        # the deadline is what woke it.

    def receive_nowait(self, max_bytes: int = 65536) -> bytes:
        """Bytes already buffered, without waiting; b"" when there are none (or the stream cannot
        be read: `receive` then says why). Lets a caller skip a wait and the timeout around it."""
        sess = self._session
        if self._reset or self._closed or sess.is_closed or not self._rbuf.size:
            return b""
        core = sess._core
        data = core.read(self.stream_id, max_bytes, sess._clock())
        if data and core.pending_output:
            sess._kick()
        return data

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        """Send all of `item`, waiting for window updates when the send window is exhausted."""
        sess = self._session
        core = sess._core
        # The core queues frames that reference the data until the writer takes them, so a
        # buffer the caller may change is copied first; bytes, or a view of bytes, need not be.
        if isinstance(item, bytes):
            view = memoryview(item)
        elif (isinstance(item, memoryview) and isinstance(item.obj, bytes)
              and item.format == "B" and item.c_contiguous):
            view = item
        else:
            view = memoryview(bytes(item))
        pos, total = 0, len(view)
        while pos < total:
            self._check_writable()
            n = core.send(self.stream_id, view[pos:] if pos else view)
            if n:
                pos += n
                sess._kick()
                if core.pending_output > _SEND_HIGH_WATER:
                    await sess._wait_drained()
                elif (sess._unyielded_sends >= _MAX_UNYIELDED_SENDS
                      or core.pending_output > _YIELD_ABOVE):
                    # A tight sender loop must not starve the session's reader (peers' pings on
                    # other streams would go unanswered) nor its writer.
                    sess._unyielded_sends = 0
                    await sess._checkpoint()
                else:
                    # A short write does not yield (like asyncio's StreamWriter.write): a reply
                    # followed by a close or a read leaves in the same loop turn.
                    sess._unyielded_sends += 1
            elif core.send_window(self.stream_id) == 0:
                if self._wwait is None:
                    self._wwait = Flag()
                await self._wwait.wait()

    def send_nowait(self, data: bytes) -> int:
        """Queue what the send window takes of `data` now, without ever yielding (`send` may);
        return how many bytes were queued (0 when the stream cannot be written: `send` says why).

        For a short reply that the task follows with more output anyway (the multistream echo
        before the handler's data): it then leaves with that data without costing a loop turn.
        """
        sess = self._session
        if (self._reset or self._closed or self._local_eof or sess.is_closed
                or sess._core.pending_output > _SEND_HIGH_WATER):
            return 0
        try:
            n = sess._core.send(self.stream_id, data)
        except (LocalProtocolError, SessionGoingAway):
            return 0
        if n:
            sess._kick()
        return n

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamReset(remote=self._reset == _RESET_REMOTE)
        if self._closed or self._local_eof:
            raise anyio.ClosedResourceError
        if self._session.is_closed:
            raise _session_closed(self._session.error)

    async def send_eof(self) -> None:
        """Half-close (FIN); reading continues until the peer's FIN."""
        if self._local_eof or self._closed:
            return
        self._check_writable()
        self._local_eof = True
        self._session._core.send_eof(self.stream_id)
        if self._remote_eof:  # (the core forgets a stream only once both halves are closed)
            self._session._forget_if_done(self)
        self._session._kick()

    async def reset(self) -> None:
        """Abort both directions (RST); later calls raise StreamReset(remote=False)."""
        if self._reset or self._closed:
            return
        sess = self._session
        self._mark_reset(remote=False)
        sess._core.reset(self.stream_id)
        sess._streams.pop(self.stream_id, None)
        sess._wake_openers()
        sess._kick()

    async def aclose(self) -> None:
        """go's Close: FIN if not sent, stop reading (late data is discarded), forget the stream.

        Never waits. The stream's output is complete. A handler closing the stream the peer
        opened has finished its answer: it leaves now, before the handler's task tidies up
        (returns, is forgotten, ends), unless other tasks the same input woke are still to run
        (`YamuxSession._woken`: the last of them writes for all). Otherwise it leaves with the
        next write of the session, at the latest at the start of the next loop turn
        (`SessionOutput.flush_soon`), so a requester's FIN goes out with its next request."""
        if self._closed:
            return
        sess = self._session
        self._closed = True
        if not self._reset:
            sess._core.close_stream(self.stream_id)
        sess._streams.pop(self.stream_id, None)
        # (the checks spare a request's close three calls that would find nobody waiting)
        if sess._open_wait is not None:
            sess._wake_openers()
        if self._rwait is not None or self._wwait is not None:  # another task uses the stream
            self._wake_reader()
            self._wake_writer()
        woken = sess._woken
        if woken and bool(self.stream_id & 1) != sess.is_client:  # the peer opened it: an answer
            sess._woken = woken - 1
            if woken == 1 or sess._core.pending_output >= _WOKEN_BATCH:
                sess.try_flush()
                return
        sess._output.flush_soon()

    async def __aenter__(self) -> YamuxStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class YamuxSession:
    """A yamux session over the byte stream `lower`; run it with `run()` or `async with`."""

    __slots__ = ("_lower", "config", "is_client", "_core", "_streams", "_accept_queue",
                 "_accept_wait", "_open_wait", "_pings", "_on_stream", "_output", "_kick",
                 "try_flush", "_wait_drained", "_checkpoint", "_clock", "_call_at", "_loop",
                 "_unyielded_sends", "_woken", "_push", "_input_end", "_input_over", "_input_error",
                 "_recv_paused", "_input_output", "_resume_wait", "_reader_scope", "_closed_event", "_tg",
                 "_deadline_timer", "_deadline_at",
                 "_own_tg", "_running", "_last_recv", "_ka_ping", "_ka_deadline", "is_closed",
                 "error")

    def __init__(self, lower: ByteStream, *, is_client: bool,
                 config: YamuxConfig = YamuxConfig()) -> None:
        self._lower = lower
        self.config = config
        self.is_client = is_client
        self._core = YamuxConnection(is_client, config)
        self._streams: dict[int, YamuxStream] = {}
        self._accept_queue: list[YamuxStream] = []  # a deque costs 760 B idle
        self._accept_wait: Flag | None = None
        self._open_wait: Flag | None = None
        self._pings: dict[int, list[Any]] = {}
        self._on_stream: Callable[[YamuxStream], None] | None = None
        self._output = out = SessionOutput(self, lower)
        # The streams' words for the output (bound once: they run per send and per read).
        self._kick = out.kick
        self.try_flush = out.try_flush
        self._wait_drained = out.wait_drained
        #: anyio's checkpoint, or on asyncio the same `sleep(0)` without anyio's backend lookup
        self._checkpoint: Callable[[], Any] = anyio.lowlevel.checkpoint
        #: anyio's clock, or on asyncio the loop's own `time` (the same value, no backend lookup)
        self._clock: Callable[[], float] = anyio.current_time
        self._call_at: Callable[..., Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # on asyncio (for Flag.wait)
        #: asyncio: the one timer for the read deadlines of waiting streams, due at `_deadline_at`
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_at = 0.0
        #: stream sends since the reader or writer last ran (bounds how long sends skip yielding)
        self._unyielded_sends = 0
        #: tasks the input woke (a reader given data or the end, a handler started) that have not
        #: ended their turn yet (a read about to wait, a handler's close): while others are still
        #: to run, a task's output waits for theirs, and the last one writes for all (64 requests
        #: in flight: one write per batch of answers instead of one each). Only a hint: a task
        #: that ends its turn elsewhere leaves it high, and the deferred kick, which waits one
        #: round of the loop's ready callbacks while it is, then writes and clears it.
        self._woken = 0
        # input: push mode (the stream below calls `_on_data`) or a reader task
        self._push = False
        self._input_end = Flag()  # set when input has ended (push mode), and `_input_error` why
        self._input_over = False
        self._input_error: BaseException | None = None
        self._recv_paused = False
        self._input_output = 0  # bytes of output the input caused since the last write
        self._resume_wait: Flag | None = None  # the reader task waits here while paused
        self._reader_scope: anyio.CancelScope | None = None
        self._closed_event = Flag()
        self._tg: TaskGroup | None = None
        self._own_tg: TaskGroup | None = None
        self._running = False
        self._last_recv = 0.0
        self._ka_ping: int | None = None  # opaque of the keepalive ping awaiting its pong
        self._ka_deadline = 0.0
        self.is_closed = False
        self.error: Exception | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> YamuxSession:
        self._own_tg = anyio.create_task_group()
        await self._own_tg.__aenter__()
        await self._own_tg.start(self.run)
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._own_tg is not None
        try:
            with anyio.CancelScope(shield=True):  # close() is bounded; it must run even if cancelled
                await self.close()
        finally:
            result = await self._own_tg.__aexit__(*exc_info)
        return result

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve the session until it ends; remote failures end up in `error`, never raised."""
        if self._running:
            raise RuntimeError("YamuxSession.run() is already running")
        self._running = True
        if sniffio.current_async_library() == "asyncio":
            loop = asyncio.get_running_loop()
            self._checkpoint = _asyncio_checkpoint
            self._clock = loop_clock(loop)
            self._call_at = loop.call_at
            self._loop = loop
            self._output.bind_asyncio(loop)
        self._last_recv = anyio.current_time()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._output.run_writer)
                if not self.is_closed:
                    self._core.ping(self._last_recv)  # go's first RTT ping (opaque 0)
                task_status.started()
                if not self.is_closed:
                    # Push mode only on asyncio: the callbacks run outside any task, which
                    # trio's stream below could not do anyway.
                    if self._call_at is not None and self._start_push():
                        await self._push_loop()
                    else:
                        await self._reader_loop()
                tg.cancel_scope.cancel()
        finally:
            self._shutdown(None)
            with anyio.CancelScope(shield=True):
                await self._close_lower()

    async def close(self, code: int = 0) -> None:
        """Send GoAway(code) (best effort, bounded), close the stream below, fail all waiters."""
        if self.is_closed:
            if self._running:  # run() is closing the stream below; wait until it has
                await self._closed_event.wait()
            return
        self._core.go_away(code)
        with anyio.move_on_after(_GOAWAY_GRACE):
            await self._output.flush_quietly()
        self._shutdown(None)
        with anyio.CancelScope(shield=True):
            await self._close_lower()

    async def _close_lower(self) -> None:
        self._output.lower_closed = True
        with anyio.move_on_after(_GOAWAY_GRACE):
            try:
                await self._lower.aclose()
            except Exception:  # already broken: nothing left to release
                pass
        self._closed_event.set()

    def _shutdown(self, error: Exception | None) -> None:
        """Mark the session over and wake every waiter; idempotent."""
        if self.is_closed:
            return
        self.is_closed = True
        if self.error is None:
            self.error = error
        self._core.close()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        self._input_end.set()
        _wake(self._resume_wait)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        for st in list(self._streams.values()) + list(self._accept_queue):
            st._wake_reader()
            st._wake_writer()
        _wake(self._accept_wait)
        self._wake_openers()
        for waiter in self._pings.values():
            waiter[0].set()
        self._output.wake_all()
        if error is not None:
            log.debug("yamux session closed: %r", error)

    # ---- input: one path into the core ----------------------------------------------------------

    def _feed(self, pieces: Sequence[bytes]) -> bool:
        """Received bytes into the core (one read's: its pieces in order): parse, wake whoever
        the events concern, schedule the output they caused. False when the session must end
        (GoAway with an error code); raises YamuxProtocolError on a protocol violation (GoAway(1)
        is then queued). Pauses input when the output it caused, still waiting for the peer,
        passes `_OUTPUT_HIGH_WATER`."""
        now = self._last_recv = self._clock()
        self._unyielded_sends = 0
        core_ = self._core
        before = core_.pending_output
        events = core_.receive_pieces(pieces, now)
        if events and not self._dispatch(events):
            return False
        if core_.pending_output:
            self._input_output += core_.pending_output - before
            if self._input_output > _OUTPUT_HIGH_WATER:
                # The peer sends frames that earn replies faster than it reads them: stop
                # reading until the writer has handed them to the kernel.
                self._recv_paused = True
                if self._push:
                    self._lower.pause_receiving()  # type: ignore[attr-defined]
                self._output.wake_writer()
            else:
                self._kick()
        return True

    def _on_written(self) -> None:
        """After a write (of everything queued): resume input if it was paused."""
        self._input_output = 0
        if self._recv_paused:
            self._recv_paused = False
            if self._push:
                if not self._input_over:
                    self._lower.resume_receiving()  # type: ignore[attr-defined]
            else:
                _wake(self._resume_wait)

    async def _input_ended(self, exc: BaseException | None) -> None:
        """Input is over (None: EOF or the session must end): record why, end the session."""
        if isinstance(exc, YamuxProtocolError):
            self.error = exc
            with anyio.move_on_after(_GOAWAY_GRACE):  # GoAway(1) is queued: try to get it out
                await self._output.flush_quietly()
        elif isinstance(exc, ConnectionClosed):
            self.error = self.error or exc
        elif isinstance(exc, Exception):  # the stream below (TCP, Noise) failed
            self.error = exc
        self._shutdown(None)

    def _next_due(self, next_rtt: float) -> float:
        """When the input side must look at the clocks next (keepalive, RTT ping)."""
        cfg = self.config
        if self._ka_ping is not None:
            return min(next_rtt, self._ka_deadline)
        if cfg.enable_keepalive:
            return min(next_rtt, self._last_recv + cfg.keepalive_interval)
        return next_rtt

    def _on_timers(self, next_rtt: float) -> float:
        """A timer is due: keepalive (a ping after an idle interval, the session fails without
        its pong) and the periodic RTT ping; returns when the next RTT ping is due."""
        cfg, yc = self.config, self._core
        now = anyio.current_time()
        if self._ka_ping is not None:
            if now >= self._ka_deadline:
                self._shutdown(ConnectionClosed("yamux keepalive timeout"))
                return next_rtt
        elif cfg.enable_keepalive and now - self._last_recv >= cfg.keepalive_interval:
            self._ka_ping = yc.ping(now)
            self._ka_deadline = now + cfg.keepalive_timeout
            self._kick()
        if now >= next_rtt:
            yc.ping(now)
            next_rtt = now + cfg.measure_rtt_interval
            self._kick()
        return next_rtt

    # pull: a reader task (trio, or a stream below that cannot push)

    async def _reader_loop(self) -> None:
        lower, feed = self._lower, self._feed
        next_rtt = self._last_recv + self.config.measure_rtt_interval
        exc: BaseException | None = None
        try:
            with anyio.CancelScope() as self._reader_scope:
                while not self.is_closed:
                    # One timer scope for many reads: it is re-armed only when it fires.
                    with anyio.CancelScope(deadline=self._next_due(next_rtt)) as timer:
                        while not self.is_closed:
                            if not feed((await lower.receive(_RECV_SIZE),)):
                                raise _EndOfInput
                            while self._recv_paused and not self.is_closed:
                                self._resume_wait = Flag()
                                await self._resume_wait.wait()
                    if not timer.cancelled_caught:
                        break
                    next_rtt = self._on_timers(next_rtt)
        except (anyio.EndOfStream, _EndOfInput):
            pass
        except Exception as e:
            exc = e
        await self._input_ended(exc)

    # push (asyncio): reads handed to `_on_data` by the stream below as they arrive

    def _start_push(self) -> bool:
        """Have the stream below push its reads to `_on_data` (False: it cannot; use the reader).

        Why: the reader task's wake-up per read (a future, a task step, three coroutines resumed)
        and the loop turn it takes were a tenth of a request's cost on each side; in push mode the
        frames are parsed where the bytes arrive and only the streams' tasks are woken.
        """
        lower = self._lower
        if not has_push_reads(lower):
            return False
        self._push = True
        if has_push_pieces(lower):  # Noise: a read's frames together
            if lower.set_pieces_receiver(self._on_pieces, self._on_end):
                return True
        elif lower.set_receiver(self._on_data, self._on_end):
            return True
        self._push = False
        return False

    def _on_data(self, data: bytes) -> None:
        self._on_pieces((data,))

    def _on_pieces(self, pieces: Sequence[bytes]) -> None:
        if self._input_over or self.is_closed:
            return  # a read arriving after shutdown, before the run task noticed
        try:
            if not self._feed(pieces):
                self._on_end(None)
        except Exception as exc:  # a protocol violation (GoAway(1) is queued) or a bug
            self._on_end(exc)

    def _on_end(self, exc: BaseException | None) -> None:
        """Input ended (EOF: None), failed, or the session must stop reading."""
        if self._input_over:
            return
        self._input_over = True
        self._input_error = exc
        try:
            self._lower.set_receiver(None)  # type: ignore[attr-defined]
        except Exception:  # already torn down
            pass
        self._input_end.set()

    async def _push_loop(self) -> None:
        """Push mode's task: keeps the clocks while the callbacks read, then ends the session
        the way the reader does."""
        next_rtt = self._last_recv + self.config.measure_rtt_interval
        end = self._input_end
        call_at = self._call_at
        assert call_at is not None  # push mode runs on asyncio
        while not self.is_closed and not end.is_set():
            # A timer that wakes the wait, not a cancel scope: an idle connection waits here
            # all its life, and a scope kept ~0.9 KiB alive for it (mem/conn).
            timer = call_at(self._next_due(next_rtt), end.wake)
            try:
                await end.wait()
            finally:
                timer.cancel()
            if not end.is_set():  # woken by the timer
                next_rtt = self._on_timers(next_rtt)
        if not self._input_over:
            self._on_end(None)
        await self._input_ended(self._input_error)

    def _dispatch(self, events: list[core.Event]) -> bool:
        """Wake whoever an event concerns; False when the session must end."""
        streams = self._streams
        for ev in events:
            kind = type(ev)
            if kind is core.DataReceived:
                st = streams.get(ev[0])
                if st is not None and st._rwait is not None:
                    st._wake_reader()
                    self._woken += 1
            elif kind is core.WindowUpdated:
                st = streams.get(ev[0])
                if st is not None:
                    st._wake_writer()
            elif kind is core.StreamOpened:
                st = YamuxStream(self, ev[0])
                streams[ev[0]] = st
                if self._on_stream is not None:
                    if self._core.accept(st.stream_id):  # ACK queued; the reader kicks the writer
                        self._on_stream(st)
                        self._woken += 1
                    continue
                self._accept_queue.append(st)
                ev_, self._accept_wait = self._accept_wait, None
                _wake(ev_)
            elif kind is core.StreamEnded:
                st = streams.get(ev[0])
                if st is not None:
                    st._remote_eof = True
                    if st._rwait is not None:  # (a request's reader was woken by its data)
                        st._wake_reader()
                        self._woken += 1
                    if not st._rbuf.size:  # (bytes still to read keep the stream in the core)
                        self._forget_if_done(st)
                    # Its task will likely answer or close it now, without waiting on this
                    # session again: a kick scheduled here runs right after that task, in the
                    # same loop turn, and the task's own kicks find it pending. Kicked by the
                    # task instead, it would run a turn later (a request's third turn).
                    self._kick()
            elif kind is core.StreamReset:
                st = streams.pop(ev[0], None)
                if st is not None:
                    st._mark_reset(remote=True)
                self._wake_openers()
            elif kind is core.StreamAcked:
                if self._open_wait is not None:
                    self._wake_openers()
            elif kind is core.PongReceived:
                pong = cast(core.PongReceived, ev)  # rare events: the type tells mypy, not a check
                if pong.opaque == self._ka_ping:
                    self._ka_ping = None
                waiter = self._pings.get(pong.opaque)
                if waiter is not None:
                    waiter[1] = pong.rtt
                    waiter[0].set()
            elif kind is core.GoAwayReceived:
                code = cast(core.GoAwayReceived, ev).code
                if code != 0:
                    self.error = ConnectionClosed(f"remote sent GoAway({code})")
                    return False
                self._wake_openers()
        return True

    # ---- streams ------------------------------------------------------------------------------

    def _watch_deadline(self, deadline: float) -> None:
        """Have the deadline timer fire by `deadline` (asyncio; a stream's read waits until then).

        One timer for the session instead of one per wait: a request's stream waits with a
        deadline later than the one the timer is already due at (a sequence of requests, each
        with its own deadline a little later), so a wait usually costs no timer at all, where a
        timer per wait cost a TimerHandle, a push onto the loop's heap and a cancel."""
        timer = self._deadline_timer
        if timer is not None:
            if self._deadline_at <= deadline:
                return
            timer.cancel()
        self._deadline_at = deadline
        self._deadline_timer = self._call_at(deadline, self._on_deadline)  # type: ignore[misc]

    def _on_deadline(self) -> None:
        """The deadline timer: wake each waiting reader whose deadline has passed (its `receive`
        raises TimeoutError), and be due again at the nearest deadline still ahead."""
        self._deadline_timer = None
        now = self._clock()
        nearest: float | None = None
        for st in list(self._streams.values()):
            deadline = st._read_deadline
            if deadline is None or st._rwait is None:
                continue
            if deadline <= now:
                st._wake_reader()
            elif nearest is None or deadline < nearest:
                nearest = deadline
        if nearest is not None:
            self._watch_deadline(nearest)

    def _wake_openers(self) -> None:
        ev = self._open_wait
        if ev is not None:
            self._open_wait = None
            ev.set()

    def _forget_if_done(self, st: YamuxStream) -> None:
        if not self._core.has_stream(st.stream_id):
            self._streams.pop(st.stream_id, None)

    # ---- public API ----------------------------------------------------------------------------

    async def open_stream(self, *, timeout: float | None = None) -> YamuxStream:
        """Open an outbound stream (SYN queued for the writer, so it leaves with the first data
        written in the same turn); waits, at most `timeout` (default `stream_open_timeout`),
        while 256 streams are un-ACKed."""
        try:
            sid = self._open_now()
        except StreamLimitReached:
            with anyio.fail_after(self.config.stream_open_timeout if timeout is None else timeout):
                while True:
                    if self._open_wait is None:
                        self._open_wait = Flag()
                    await self._open_wait.wait()
                    try:
                        sid = self._open_now()
                        break
                    except StreamLimitReached:
                        pass
        st = YamuxStream(self, sid)
        self._streams[sid] = st
        self._kick()
        return st

    def _open_now(self) -> int:
        if self.is_closed:
            raise _session_closed(self.error)
        try:
            return self._core.open_stream(self._clock())
        except SessionGoingAway as exc:
            raise ConnectionClosed(str(exc)) from None

    def set_stream_handler(self, handler: Callable[[YamuxStream], None] | None) -> None:
        """Give every inbound stream, already accepted (ACK queued), to `handler` as it opens.

        Called from the reader, so it must not block (a host starts a task). Saves a task and a
        wake-up per stream compared with an `accept_stream` loop; streams queued before this was
        set are still returned by `accept_stream`.
        """
        self._on_stream = handler

    async def accept_stream(self) -> YamuxStream:
        """Next inbound stream (ACK sent); raises ConnectionClosed once the session is over."""
        while True:
            while self._accept_queue:
                st = self._accept_queue.pop(0)
                if self._core.accept(st.stream_id):
                    self._kick()
                    return st
            if self.is_closed:
                raise _session_closed(self.error)
            if self._accept_wait is None:
                self._accept_wait = Flag()
            await self._accept_wait.wait()

    async def ping(self) -> float:
        """Round-trip time in seconds; TimeoutError after `keepalive_timeout` without a reply."""
        if self.is_closed:
            raise ConnectionClosed("yamux session closed")
        opaque = self._core.ping(anyio.current_time())
        waiter: list[Any] = [anyio.Event(), None]
        self._pings[opaque] = waiter
        try:
            self._kick()
            with anyio.fail_after(self.config.keepalive_timeout):
                await waiter[0].wait()
        finally:
            self._pings.pop(opaque, None)
            self._core.cancel_ping(opaque)
        if waiter[1] is None:
            raise ConnectionClosed("yamux session closed before the ping reply")
        return float(waiter[1])

    async def go_away(self, code: int = 0) -> None:
        """Tell the peer we accept no new streams (existing ones continue)."""
        self._core.go_away(code)
        await self._output.flush()

    @property
    def rtt(self) -> float:
        """Smoothed RTT estimate in seconds (0.0 before the first pong)."""
        return self._core.rtt

    @property
    def num_streams(self) -> int:
        return len(self._streams)


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """`loop.time` as one C call: `time.monotonic` itself when the loop keeps asyncio's own
    `time` (whose body is `return time.monotonic()`), so the session's clock reads (several per
    request) cost no Python frame each; any loop with a clock of its own (uvloop's, a test's)
    keeps it."""
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


class _EndOfInput(Exception):
    """The reader's way out of its loops when the session must end."""


def _session_closed(error: BaseException | None) -> ConnectionClosed:
    """`yamux session closed: <why>`, or just `yamux session closed` after a clean close (no `: None`)."""
    if error is None:
        return ConnectionClosed("yamux session closed")
    if isinstance(error, (anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError)):
        cause = error.__cause__
        detail = f" ({os.strerror(cause.errno).lower()})" if isinstance(cause, OSError) and cause.errno else ""
        return ConnectionClosed(f"yamux session closed: connection lost{detail}")
    return ConnectionClosed(f"yamux session closed: {str(error) or type(error).__name__}")
