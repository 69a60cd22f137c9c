"""The yamux session's output: every way its queued frames leave, and every decision about when.

Stream calls only queue frames in the core (`p2p.mux.yamux.YamuxConnection`) and call `kick()`;
this object decides whether they leave from the calling task now (`try_flush`, when the stream
below takes bytes without waiting: `p2p.streams.NonBlockingWrites`) or from the writer task, which
batches what tasks woken in the same loop turns queue into one write, like go-yamux's send loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from p2p.errors import ConnectionClosed
from p2p.streams import ByteStream, has_gather_writes, has_nonblocking_writes
from p2p.sync import Flag, LazyLock

if TYPE_CHECKING:
    from p2p.mux.yamux_session import YamuxSession

__all__ = ["SessionOutput"]

#: Queued output beyond this makes a stream's `send` wait until the writer has taken it.
_SEND_HIGH_WATER = 256 * 1024
#: Turns the writer waits for more output before a write (each turn that adds none ends it).
_MAX_BATCH_TURNS = 8
#: `SessionOutput._kick_pending` once the deferred kick has put itself back in line (see there).
_REQUEUED = 2


async def _asyncio_checkpoint() -> None:
    await asyncio.sleep(0)  # what anyio.lowlevel.checkpoint does on asyncio


def _wake(ev: Flag | None) -> None:
    if ev is not None:
        ev.set()


class SessionOutput:
    """Every way the session's queued frames leave, and every decision about when.

    * `kick()`: output was queued; have it written soon (never blocks).
    * `try_flush()`: the calling task's output is complete: write it now if the stream below
      takes it without waiting, else leave it to the writer.
    * `flush_soon()`: output that need not leave this instant (a closed stream's FIN): it goes
      with the next write, at the latest at the start of the next loop turn.
    * `flush(wait=)`: write everything queued in one write of the stream below (the writer task,
      a GoAway on the way out).
    * `run_writer()`: the writer task.
    * `wait_drained()`: backpressure for senders.
    After each write `on_written()` runs (the session resumes reading if it had paused).
    """

    __slots__ = ("_session", "_core", "_lower", "_write_timeout", "_try_send", "_send_ready",
                 "_try_send_pieces", "_lock", "_writer_wait", "_drain_waits", "_kick_pending",
                 "_flush_due", "_call_soon", "_loop", "_checkpoint", "lower_closed")

    def __init__(self, session: YamuxSession, lower: ByteStream) -> None:
        self._session = session
        self._core = session._core
        self._lower = lower
        self._write_timeout = session.config.write_timeout
        #: a write that never waits (Noise over our asyncio TCP stream), used when it can be
        self._try_send: Callable[[bytes], bool] | None = None
        self._send_ready: Callable[[], bool] | None = None
        if has_nonblocking_writes(lower):
            self._try_send, self._send_ready = lower.try_send, lower.send_ready
        #: ... and one that takes the queued frames unjoined (Noise seals them frame by frame)
        self._try_send_pieces: Callable[[list[bytes | memoryview], int], bool] | None = (
            lower.try_send_pieces if has_gather_writes(lower) else None)
        self._lock = LazyLock()
        self._writer_wait: Flag | None = None
        #: senders waiting for the writer to take their frames, first come first released
        self._drain_waits: list[Flag] | None = None
        self._kick_pending: bool | int = False  # True, or _REQUEUED
        self._flush_due = False  # the deferred kick writes itself instead of waking the writer
        #: on asyncio, the loop's `call_soon` (see `kick`)
        self._call_soon: Callable[..., Any] | None = None
        #: on asyncio, the loop (for `Flag.wait`, which otherwise asks asyncio for it: a getpid
        #: system call per wait on Python 3.11)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checkpoint: Callable[[], Any] = anyio.lowlevel.checkpoint
        #: set once the stream below is being closed: nothing may be written any more
        self.lower_closed = False

    def bind_asyncio(self, loop: asyncio.AbstractEventLoop) -> None:
        """On asyncio: deferred kicks through `loop.call_soon`, and asyncio's own checkpoint.

        No peek at CPython's private ready queue (the writer once skipped its batching turns when
        no other callback was due): since reads are pushed and tasks write their own output
        (`try_flush`), it measured within noise, in-process A/B of alternating 1 s blocks of
        1 KiB echo requests on one loop, 12 pairs each, run twice: on/off 0.86 and 0.89 at one in
        flight, 0.94 and 1.10 at 64 (pairs ranged 0.43-1.92 on the loaded 2-core machine)."""
        self._call_soon = loop.call_soon
        self._loop = loop
        self._checkpoint = _asyncio_checkpoint

    # ---- the decisions -------------------------------------------------------------------------

    def kick(self) -> None:
        """Have the queued output written soon (never blocks; a no-op while the writer is awake).

        On asyncio the writer is not woken at once: a callback looks again at the start of the
        next loop turn, by when the task that queued the output has usually written it itself
        (`try_flush`). Waking a task costs several times what a callback does, and on the
        request/response path nothing is left for it.
        """
        if self._writer_wait is None or self._kick_pending:
            return
        if self._call_soon is not None:
            self._kick_pending = True
            self._call_soon(self._deferred_kick)
        else:
            self.wake_writer()

    def _deferred_kick(self) -> None:
        session = self._session
        if session._woken:
            # Tasks the input woke are still to run (queued behind this callback): look again
            # after them, once; the last of them usually writes for all. Then this writes,
            # whatever the hint says, and clears it (a task that ended its turn elsewhere).
            if self._kick_pending != _REQUEUED:
                self._kick_pending = _REQUEUED
                self._call_soon(self._deferred_kick)  # type: ignore[misc]
                return
            session._woken = 0
        self._kick_pending = False
        if self._flush_due:
            self._flush_due = False
            self.try_flush()  # wakes the writer if it cannot write now
        elif self._core.pending_output and not self._session.is_closed:
            self.wake_writer()

    def flush_soon(self) -> None:
        """Have the queued output written with the next write, at the latest at the start of
        the next loop turn: for output nobody waits on (a closed stream's FIN).

        A requester closes a stream once it has read the answer and then usually opens the
        next one in the same turn: that request's write takes the FIN along (one write, one
        Noise frame and one read at the peer per request instead of two). On asyncio the
        deferred kick writes it itself, unless a write took it first; elsewhere the writer does.
        """
        if not self._core.pending_output:
            return
        if self._call_soon is None:
            self.try_flush()
            return
        self._flush_due = True
        if self._writer_wait is not None and not self._kick_pending:
            self._kick_pending = True
            self._call_soon(self._deferred_kick)

    def wake_writer(self) -> None:
        ev, self._writer_wait = self._writer_wait, None
        _wake(ev)

    def try_flush(self) -> bool:
        """Write what is queued from the calling task, now, if the stream below takes it without
        waiting; True when nothing is left for the writer task.

        Called where a task is about to wait (a stream read; `flush_soon`'s deferred kick for a
        closed stream): its output is complete, so it leaves in this loop turn instead of a later
        one of the writer task, which saves the request/response path two turns per side.
        """
        if not self._core.pending_output:
            return True
        if self._lock.held or self.lower_closed or self._session.is_closed:
            self.wake_writer()
            return False
        try:
            written = self._write_now()
        except Exception as exc:
            self._session._shutdown(ConnectionClosed(f"yamux write failed: {exc!r}"))
            return False
        if not written:
            self.wake_writer()
            return False
        self._session._on_written()
        return True

    async def flush(self, *, wait: bool = False) -> None:
        """Send everything queued in one write of the stream below.

        When the stream below can take the bytes without waiting (`try_send`), no cancel scope is
        needed: nothing can be cut in half and nothing can hang. `wait` (on the way out, before
        the stream below is closed) always waits until the kernel has the bytes; otherwise the
        write is shielded (a frame is never cut in half) and bounded by `write_timeout`.
        """
        async with self._lock:
            if not self._core.pending_output:
                return
            if self.lower_closed:
                self._take()
                raise ConnectionClosed("yamux session closed")
            try:
                if not wait and self._write_now():
                    self._session._on_written()
                    return
                data = self._take()
                with anyio.fail_after(self._write_timeout, shield=True):
                    await self._lower.send(data)
                self._session._on_written()
            except Exception as exc:
                err = ConnectionClosed(f"yamux write failed: {exc!r}")
                self._session._shutdown(err)
                raise err from exc

    async def flush_quietly(self) -> None:
        try:
            await self.flush(wait=True)
        except ConnectionClosed:
            pass

    def _take(self) -> bytes:
        """All queued output, for one write; senders waiting for it to drain may go on."""
        data = self._core.data_to_send()
        self._release_sender()
        return data

    def _release_sender(self) -> None:
        """Let the first waiting sender go on (see `wait_drained`)."""
        waits = self._drain_waits
        if waits:
            waits.pop(0).set()

    def _write_now(self) -> bool:
        """Hand all queued output to the stream below if it takes it without waiting (unjoined
        when it gathers the pieces itself); False, with nothing taken, when it would wait.

        The pieces are offered before they are taken from the core, so the stream below decides
        whether it can write them in the same call (Noise asks the connection once): asking it
        first, as a separate `send_ready()`, made every write ask twice more."""
        core = self._core
        if self._try_send_pieces is not None:
            if not self._try_send_pieces(core.output, core.pending_output):
                return False
            core.take_output()
            self._release_sender()
            return True
        if self._send_ready is None or not self._send_ready():
            return False
        self._try_send(self._take())  # type: ignore[misc]
        return True

    async def wait_drained(self) -> None:
        """Backpressure for senders: while more than `_SEND_HIGH_WATER` is queued, wait until the
        writer has taken the queued output (the caller's own frames with it, as go-yamux's
        stream writes wait for their frame to be written) and the queue has room again.

        Senders are released one at a time, in order: a take releases the first, and each
        released sender releases the next if the queue still has room when it goes on. Waking
        them all at each take made all but one wait again (with 16 streams sending at once the
        first to run queued its next write before the others looked: ~10 waits per 256 KiB
        send), and letting them all go on made a write of every stream's next 256 KiB at once
        (4 MiB: more than the kernel takes, and a new sealing buffer each time)."""
        if self._core.pending_output <= _SEND_HIGH_WATER or self._session.is_closed:
            return
        self.kick()
        flag = Flag()
        if self._drain_waits is None:
            self._drain_waits = []
        self._drain_waits.append(flag)
        try:
            await flag.wait(self._loop)
        except BaseException:  # cancelled: leave the line, or pass our turn on
            if flag.is_set():
                self._pass_on()
            elif flag in self._drain_waits:
                self._drain_waits.remove(flag)
            raise
        self._pass_on()

    def _pass_on(self) -> None:
        if self._core.pending_output <= _SEND_HIGH_WATER or self._session.is_closed:
            self._release_sender()

    def wake_all(self) -> None:
        """Teardown: the writer and every waiting sender look again (and see the session over)."""
        self.wake_writer()
        waits, self._drain_waits = self._drain_waits, None
        for flag in waits or ():
            flag.set()

    async def run_writer(self) -> None:
        """The writer task: sleeps until kicked, lets the tasks woken in the same turns add their
        output, then writes it all at once."""
        core_, session = self._core, self._session
        while not session.is_closed:
            if not core_.pending_output:
                self._writer_wait = ev = Flag()
                await ev.wait(self._loop)
                # Let the tasks woken in this turn (a handler just started, the task that kicked
                # us) queue their frames too, so they share this write instead of one each: yield
                # while each turn adds output (a stream send is a checkpoint too), at most
                # _MAX_BATCH_TURNS turns and up to the high-water mark.
                size = -1
                for _ in range(_MAX_BATCH_TURNS):
                    if core_.pending_output == size or core_.pending_output > _SEND_HIGH_WATER:
                        break
                    size = core_.pending_output
                    await self._checkpoint()
                continue
            session._unyielded_sends = 0
            session._woken = 0  # it writes what they queued: no task waits for another now
            try:
                await self.flush()
            except ConnectionClosed:
                return
