"""QUIC v1 transport (`/ip4|ip6/.../udp/PORT/quic-v1`) as go-libp2p v0.36.3 speaks it.

QUIC itself is aioquic's sans-IO `QuicConnection` (through `p2p.transport.quic_core`, which adds
the libp2p TLS checks, mutual authentication and go's flow-control and stream limits); this
module is the thin anyio driver around it, so both asyncio and trio run it (aioquic's own asyncio
layer is not used):

* `QuicEndpoint`: one UDP socket. It hands each datagram to the connection its destination
  connection ID names; on a listening socket a first datagram whose Initial does not decrypt is
  dropped (Initial floods cost no state), and one that does is admitted through the Host's
  admission policy (`p2p.admission.ConnectionLimits`, shared with TCP; the transport makes its own
  from `HostConfig` when used without a Host) before any TLS work. That policy is fair across
  addresses: when every pending slot is held, a new address still gets one by evicting another
  address's handshake that has made no progress (no Handshake packet from its peer yet), which is
  then closed with CONNECTION_CLOSE (CONNECTION_REFUSED, "evicted").
  Dials leave from a listening socket of the same family when one is bound to the wildcard or to
  the dialled scope (as go's quicreuse), else from a dial-only socket.
* `QuicConn` (a `MuxedConnection`): a driver task feeds aioquic's timers, sends what it has to
  send and pings after 15 s without receiving anything (go's keep-alive); events become stream
  data, resets and new inbound streams. Each libp2p stream is one bidirectional QUIC stream.
* `QuicStream` (a `MuxedStream`), mapped as go maps it: `send_eof` = FIN; `aclose` = FIN +
  STOP_SENDING(0) (the latter after `STOP_LINGER` unless the peer ended its side: a lazy
  multistream reply must not be killed); `reset` = STOP_SENDING(0) + RESET_STREAM(0); a
  received RESET_STREAM or STOP_SENDING surfaces as `StreamReset` (reads after a reset, writes
  after either); a connection's end as `ConnectionClosed`. Received data is credited back to the peer only as it
  is read, and `send` waits while more than `SEND_HIGH_WATER` bytes are not yet acknowledged, so
  both directions' buffers are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.abc
from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # re-exported from aioquic._buffer
from aioquic.quic import events as qe
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.packet import (
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from multiaddr import Multiaddr

from p2p.errors import ConnectionClosed, DialError, P2PError, PeerIdMismatch, StreamReset
from p2p.identity import PeerId, PrivateKey, PublicKey
from p2p.recv_buffer import RecvBuffer
from p2p.security.tls_cert import TlsIdentity, make_certificate
from p2p.sync import Flag
from p2p.transport.base import Admission, AdmissionTicket
from p2p.transport.quic_addr import is_quic_multiaddr, parse_quic_multiaddr, quic_multiaddr
from p2p.transport.heap_thresholds import pin_heap_thresholds
from p2p.transport.quic_core import (
    ALPN,
    Libp2pQuicConnection,
    QuicLimits,
    initial_decrypts,
    make_configuration,
)

if TYPE_CHECKING:
    from p2p.config import HostConfig
    from p2p.metrics import Metrics
    from p2p.trace.tracer import Tracer

__all__ = ["QuicConn", "QuicContext", "QuicListener", "QuicStream", "QuicTransport",
           "is_quic_multiaddr", "parse_quic_multiaddr", "quic_multiaddr"]

log = logging.getLogger("p2p.quic")

#: `send` waits while a stream has more than this not yet acknowledged by the peer.
SEND_HIGH_WATER = 1 << 20
#: Close codes (go-libp2p p2p/transport/quic): a normal close, and a refusal after the handshake.
CLOSE_NORMAL = 0
CLOSE_REFUSED = 1
#: A pending inbound handshake evicted for another address: a transport-level close (readable in
#: the Initial and Handshake packets, where an application close loses its code and reason).
EVICTED_ERROR = 0x2  # QUIC CONNECTION_REFUSED
EVICTED_REASON = "evicted: handshake slots full"
#: How long a closed stream still accepts (and drops) the peer's data before STOP_SENDING.
STOP_LINGER = 1.0
#: How long `close()` waits for the CONNECTION_CLOSE to leave and the connection to end.
CLOSE_GRACE = 1.0
#: UDP socket buffers asked for (quic-go asks for 7 MiB; what the kernel grants is fine too).
SOCKET_BUFFER = 4 << 20
#: UDP payload size towards a loopback peer (capped by its max_udp_payload_size: quic-go's is
#: 1452). A loopback datagram never leaves the host, so no path MTU is in doubt; elsewhere aioquic's
#: 1200 bytes stay (it has no path MTU discovery). aioquic's per-datagram work is Python, so bytes
#: per datagram set the cost per byte: 16 KiB datagrams cost ~6 ms of CPU per MiB (both ends, one
#: process) against ~50 ms at 1200. 65000 bytes fit loopback's 65536-byte MTU with IPv6 and UDP
#: headers (no fragments).
LOOPBACK_DATAGRAM = 65000
#: Datagrams handled per wake-up of an endpoint before other tasks get a turn.
_RECV_BATCH = 64
_MAX_DATAGRAM = 65535
_CID_LENGTH = 8  # aioquic's default length of our connection IDs (go uses 4; any length works)
_SUPPORTED = (QuicProtocolVersion.VERSION_1,)


def _loop_clock() -> Callable[[], float]:
    """The running event loop's clock, as a function an endpoint keeps: on asyncio the loop's
    own `time` (anyio.current_time asks asyncio for the running loop, a getpid system call on
    Python 3.11, and sniffio for the backend, each time: ~5 times per request and side)."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:  # no asyncio loop runs in this thread: trio
        return anyio.current_time


_wait_readable = getattr(anyio, "wait_readable", None) or anyio.wait_socket_readable
#: False: endpoints wait for their socket in a task on asyncio too (what trio always does).
READER_CALLBACKS = True
#: False: a connection's driver waits for its timers in an anyio cancel scope on asyncio too
#: (what trio always does) instead of one loop timer (`QuicConn._arm_timer`).
DRIVER_TIMERS = True


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # none runs in trio's thread
        return None


def _reader_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, when endpoints may handle datagrams in its reader callbacks."""
    return _asyncio_loop() if READER_CALLBACKS else None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


# --- streams -------------------------------------------------------------------------------------
class InboundStreamIds:
    """Which of the peer's bidirectional streams showed up already, in memory bounded by its
    stream limit: the index after the highest one seen, and the lower ones not seen yet (a
    higher stream can come first: QUIC opens every lower one with it). A set of every stream
    ID seen grew by one per stream for as long as the connection lived."""

    __slots__ = ("_next", "_gaps")

    def __init__(self) -> None:
        self._next = 0  # stream index (ID // 4) after the highest seen
        self._gaps: set[int] = set()  # lower indexes not seen yet (at most the stream limit)

    def first_sight(self, sid: int) -> bool:
        """Whether stream `sid` shows up now for the first time; it counts as seen after."""
        index = sid >> 2
        if index >= self._next:
            if index > self._next:  # aioquic refused indexes past the stream limit already
                self._gaps.update(range(self._next, index))
            self._next = index + 1
            return True
        if index in self._gaps:
            self._gaps.discard(index)
            return True
        return False

    def __len__(self) -> int:
        """How many indexes are kept (the gaps below the highest seen)."""
        return len(self._gaps)


class QuicStream:
    """One libp2p stream: one bidirectional QUIC stream (go's stream mapping, see the module)."""

    __slots__ = ("_conn", "stream_id", "_recv", "_eof", "_reset_remote", "_reset_local",
                 "_stopped", "_closed", "_local_eof", "_rwait", "_wwait", "_read_deadline")

    def __init__(self, conn: QuicConn, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self._recv = RecvBuffer()  # what arrived and was not read yet, as aioquic handed it over
        self._eof = False  # the peer's FIN arrived
        self._reset_remote = False  # the peer reset its sending half (RESET_STREAM)
        self._reset_local = False
        self._stopped = False  # the peer asked us to stop sending (STOP_SENDING)
        self._closed = False
        self._local_eof = False
        self._rwait: Flag | None = None
        self._wwait: Flag | None = None
        self._read_deadline: float | None = None

    def __repr__(self) -> str:
        return f"<QuicStream {self.stream_id}>"

    # -- driver side --------------------------------------------------------------------------
    def _on_data(self, data: bytes, end: bool) -> None:
        if self._closed or self._reset_local or self._reset_remote:
            self._conn.quic.discard_data(len(data), self._conn._clock())
        elif data:
            self._recv.append(data)
        if end:
            self._eof = True
        self._wake_reader()

    def _wake_reader(self) -> None:
        ev, self._rwait = self._rwait, None
        if ev is not None:
            ev.set()

    def _wake_writer(self) -> None:
        ev, self._wwait = self._wwait, None
        if ev is not None:
            ev.set()

    # -- reading ------------------------------------------------------------------------------
    async def receive(self, max_bytes: int = 65536) -> bytes:
        conn = self._conn
        while True:
            if self._reset_local:
                raise StreamReset(remote=False)
            if self._closed:
                raise anyio.ClosedResourceError
            if self._reset_remote:
                raise StreamReset(remote=True)
            if self._recv.size:
                out = self._recv.take(max_bytes)
                conn.quic.consumed(self.stream_id, len(out), self._conn._clock())
                conn._kick()  # credit may be due (MAX_STREAM_DATA / MAX_DATA)
                return out
            if self._eof:
                raise anyio.EndOfStream
            if conn.is_closed:
                raise ConnectionClosed(f"QUIC connection closed: {conn.error!r}")
            if self._rwait is None:
                self._rwait = Flag()
            flag = self._rwait
            deadline = self._read_deadline
            if deadline is None:
                await flag.wait(conn._loop)
            else:
                if conn._clock() >= deadline:
                    raise TimeoutError("QUIC stream read deadline passed")
                await self._wait_until(flag, deadline)

    async def _wait_until(self, flag: Flag, deadline: float) -> None:
        """Wait for `flag` until `deadline` at most (the caller looks again either way). On
        asyncio one loop timer that wakes the flag's waiter; elsewhere an anyio cancel scope,
        which per wait also looks up the task, the backend and the loop (a getpid system call
        on Python 3.11): a lazy dialer reads its first reply under a deadline on every stream."""
        loop = self._conn._loop
        if loop is None:
            with anyio.move_on_at(deadline):
                await flag.wait()
            return
        timer = loop.call_at(deadline, flag.wake)
        try:
            await flag.wait(loop)
        finally:
            timer.cancel()

    def set_read_deadline(self, deadline: float | None) -> None:
        """`receive` raises TimeoutError instead of waiting past `deadline` (None lifts it)."""
        self._read_deadline = deadline
        if self._rwait is not None:  # set while a read waits: it looks again, with this one
            self._wake_reader()

    def current_time(self) -> float:
        """The clock of read deadlines (`p2p.streams.StreamClock`): the endpoint's, on asyncio
        the loop's own `time`, read without a lookup of the running loop."""
        return self._conn._clock()

    def receive_nowait(self, max_bytes: int = 65536) -> bytes:
        """What already arrived, up to `max_bytes`, without waiting (`p2p.streams.NoWaitIO`);
        b"" when nothing did or the stream cannot be read (`receive` then says why). A
        listener answers a proposal that came with the stream's first data this way."""
        if (self._reset_local or self._closed or self._reset_remote or not self._recv.size
                or self._conn.is_closed):
            return b""
        conn = self._conn
        out = self._recv.take(max_bytes)
        conn.quic.consumed(self.stream_id, len(out), conn._clock())
        conn._kick()  # credit may be due (MAX_STREAM_DATA / MAX_DATA)
        return out

    def send_nowait(self, data: bytes) -> int:
        """Queue `data` without waiting and return how much was queued: all of it, or 0 when
        the stream cannot be written now (`send` then waits or says why)."""
        conn = self._conn
        if (self._reset_local or self._stopped or self._closed or self._local_eof
                or conn.is_closed or conn._unacked(self.stream_id) + len(data) > SEND_HIGH_WATER):
            return 0
        conn.quic.send_stream_data(self.stream_id, data)
        conn._kick()
        return len(data)

    # -- writing ------------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._reset_local:
            raise StreamReset(remote=False)
        if self._stopped:
            raise StreamReset(remote=True, message="stream reset by remote (STOP_SENDING)")
        if self._closed or self._local_eof:
            raise anyio.ClosedResourceError
        if self._conn.is_closed:
            raise ConnectionClosed(f"QUIC connection closed: {self._conn.error!r}")

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        """Queue `item` (aioquic copies it), waiting while too much is unacknowledged."""
        conn = self._conn
        self._check_writable()
        data = bytes(item)
        pos, total = 0, len(data)
        while pos < total:
            room = SEND_HIGH_WATER - conn._unacked(self.stream_id)
            if room > 0:
                chunk = data[pos:pos + room] if pos or room < total else data
                conn.quic.send_stream_data(self.stream_id, chunk)
                pos += len(chunk)
                conn._kick()
                continue
            if self._wwait is None:
                self._wwait = Flag()
            conn._send_waiting[self] = None
            await self._wwait.wait(conn._loop)
            self._check_writable()

    async def send_eof(self) -> None:
        """Half-close: FIN after what was sent; reading goes on."""
        if self._local_eof or self._closed or self._reset_local or self._stopped:
            return
        if self._conn.is_closed:
            raise ConnectionClosed(f"QUIC connection closed: {self._conn.error!r}")
        self._local_eof = True
        self._conn.quic.send_stream_data(self.stream_id, b"", end_stream=True)
        self._conn._kick()

    async def reset(self) -> None:
        """go's Reset: STOP_SENDING(0) and RESET_STREAM(0); later calls raise StreamReset."""
        if self._reset_local or self._closed:
            return
        self._reset_local = True
        conn = self._conn
        if not conn.is_closed:
            conn.quic.reset_stream(self.stream_id, 0)
            self._stop_reading()
        conn._forget(self)
        self._wake_reader()
        self._wake_writer()

    async def aclose(self) -> None:
        """go's Close: our FIN if not sent and STOP_SENDING(0); never waits for the peer.

        The STOP_SENDING leaves `STOP_LINGER` later unless the peer ends its side first: a lazy
        dialer that closes right after its request would otherwise kill the listener's
        multistream reply, which go's lazy client avoids by reading that reply in Close (a wait
        this interface does not allow). Whatever arrives meanwhile is dropped and credited."""
        if self._closed:
            return
        conn = self._conn
        if not self._reset_local and not conn.is_closed:
            if not self._local_eof and not self._stopped:
                self._local_eof = True
                conn.quic.send_stream_data(self.stream_id, b"", end_stream=True)
            self._recv.clear()
            conn.quic.discard_stream(self.stream_id, self._conn._clock())
            if not (self._eof or self._reset_remote):
                conn._linger(self.stream_id)
            conn._kick()
        self._closed = True
        conn._forget(self)
        self._wake_reader()
        self._wake_writer()

    def _stop_reading(self) -> None:
        conn = self._conn
        if not (self._eof or self._reset_remote):
            try:
                conn.quic.stop_stream(self.stream_id, 0)
            except ValueError:  # aioquic already forgot the stream: nothing to stop
                pass
        self._recv.clear()
        conn.quic.discard_stream(self.stream_id, self._conn._clock())
        conn._kick()

    async def __aenter__(self) -> QuicStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# --- connections ---------------------------------------------------------------------------------
class QuicConn:
    """A libp2p connection over QUIC (implements `p2p.connection.MuxedConnection`)."""

    transport = "quic"
    initial_send_window = SEND_HIGH_WATER

    def __init__(self, endpoint: QuicEndpoint, quic: Libp2pQuicConnection, remote: tuple[str, int],
                 direction: str, local_peer: PeerId) -> None:
        self._endpoint = endpoint
        self.quic = quic
        self._remote = remote
        self.direction = direction
        self.local_peer = local_peer
        # Known once the handshake proved them (a MuxedConnection is handed out only then).
        self.remote_peer: PeerId = None  # type: ignore[assignment]
        self.remote_public_key: PublicKey = None  # type: ignore[assignment]
        self.local_addr = endpoint.multiaddr
        self.remote_addr = quic_multiaddr(remote[0], remote[1])
        self.error: BaseException | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._streams: dict[int, QuicStream] = {}
        #: streams whose `send` waits for acknowledgements (checked when events were handled),
        #: in the order they began to wait
        self._send_waiting: dict[QuicStream, None] = {}
        self._handler: Callable[[QuicStream], None] | None = None
        self._pending_inbound: list[QuicStream] = []
        self._wake = Flag()
        self._handshake = Flag()
        self._ended = Flag()
        self._closing = False
        self._open_waiters: list[Flag] = []
        self._clock = endpoint.clock
        #: the asyncio loop the connection runs on (stream waits pass it to Flag.wait: asking
        #: asyncio for it is a getpid system call on Python 3.11); None on trio
        self._loop = _asyncio_loop()
        self._last_received = self._clock()
        self._keepalive_sent = False
        self._ping_uid = 0
        self._started = self._last_received
        self._seen_inbound = InboundStreamIds()
        self._keepalive: float | None = endpoint._transport.keepalive_interval
        self._lingering: dict[int, float] = {}  # stream -> when its STOP_SENDING is due
        self._timer: asyncio.TimerHandle | None = None  # the driver's wake-up (see _arm_timer)
        self._timer_at = 0.0
        #: inbound, until the peer's first Handshake packet: tells admission the handshake moved on
        self.on_progress: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<QuicConn {self.direction} {self.remote_addr} {self.remote_peer}>"

    @property
    def is_closed(self) -> bool:
        return self._closing  # (set before the connection's end, too)

    @property
    def is_established(self) -> bool:
        return self._handshake.is_set() and self.remote_peer is not None

    # -- MuxedConnection ----------------------------------------------------------------------
    def set_stream_handler(self, handler: Callable[[QuicStream], None] | None) -> None:
        self._handler = handler
        if handler is not None:
            pending, self._pending_inbound = self._pending_inbound, []
            for st in pending:
                if not st._closed and not st._reset_local:
                    handler(st)

    async def open_stream(self, *, timeout: float | None = None) -> QuicStream:
        """A new bidirectional stream; waits (as go's OpenStreamSync) while the peer's stream
        limit is reached, at most `timeout`."""
        sid = self._free_stream_id()
        if sid is None:  # only then a cancel scope (a task, backend and loop lookup each)
            with anyio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                while sid is None:
                    flag = Flag()
                    self._open_waiters.append(flag)
                    await flag.wait(self._loop)
                    sid = self._free_stream_id()
        self.quic.send_stream_data(sid, b"")  # creates the stream; it opens with its first data
        return self._new_stream(sid)

    def _free_stream_id(self) -> int | None:
        """The next stream ID when the peer's stream limit lets us open it now, else None."""
        if self.is_closed:
            raise ConnectionClosed(f"QUIC connection closed: {self.error!r}")
        sid = self.quic.get_next_available_stream_id()
        return sid if sid // 4 < self.quic._remote_max_streams_bidi else None

    async def run(self) -> None:
        """Wait until the connection has ended (its driver runs in the transport's task)."""
        try:
            await self._ended.wait()
        finally:
            if not self._ended.is_set():
                self._begin_close(CLOSE_NORMAL, "")

    async def close(self) -> None:
        """CONNECTION_CLOSE with application code 0 (go's normal close), then wait briefly."""
        self._begin_close(CLOSE_NORMAL, "")
        with anyio.move_on_after(CLOSE_GRACE, shield=True):
            await self._ended.wait()

    def _begin_close(self, code: int, reason: str, *, transport_error: bool = False) -> None:
        if not self._closing and not self._ended.is_set():
            self._closing = True
            # frame_type 0 makes it a transport-level CONNECTION_CLOSE (0x1c)
            self.quic.close(error_code=code, frame_type=0 if transport_error else None,
                            reason_phrase=reason)
            self._fail_streams(ConnectionClosed("QUIC connection closed locally"))
            self._kick()

    def evict(self) -> None:
        """Admission gave this pending inbound handshake's slot to another address: close it."""
        self.error = self.error or ConnectionClosed("QUIC handshake evicted for another address")
        self._begin_close(EVICTED_ERROR, EVICTED_REASON, transport_error=True)

    # -- the driver ---------------------------------------------------------------------------
    def _kick(self) -> None:
        self._wake.set()

    def _linger(self, stream_id: int) -> None:
        self._lingering[stream_id] = self._clock() + STOP_LINGER
        self._kick()

    def _stop_lingering(self, now: float) -> None:
        """STOP_SENDING for closed streams whose peer has not ended its side in time."""
        quic = self.quic
        for sid, due in list(self._lingering.items()):
            if due > now:
                continue
            del self._lingering[sid]
            stream = quic._streams.get(sid)
            if stream is not None and not stream.receiver.is_finished:
                try:
                    quic.stop_stream(sid, 0)
                except ValueError:
                    pass

    def _unacked(self, stream_id: int) -> int:
        stream = self.quic._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return sender._buffer_stop - sender._buffer_start

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Hand one datagram to aioquic and its events to the streams. The driver is woken by
        the caller (`_kick`), once it has handed over every datagram it had: after the tasks
        those started, whose output then leaves with the ACKs in one datagram."""
        now = self._clock()
        self.quic.clock_now = now
        self._last_received = now
        self._keepalive_sent = False
        self.quic.receive_datagram(data, addr, now)
        if self.on_progress is not None and self.quic.received_handshake:
            progressed, self.on_progress = self.on_progress, None
            progressed()
        self._process_events()

    async def drive(self) -> None:
        """Timers, output and keep-alive until the connection has ended."""
        quic = self.quic
        handshake_deadline = self._started + QuicLimits.handshake_idle_timeout
        loop = _asyncio_loop() if DRIVER_TIMERS else None
        try:
            while True:
                self._wake = Flag()
                await self._transmit()
                self._process_events()
                if quic.is_ended:
                    break
                timer = deadline = quic.get_timer()
                if not self._handshake.is_set():
                    deadline = (handshake_deadline if deadline is None
                                else min(deadline, handshake_deadline))
                elif not self._keepalive_sent and self._keepalive is not None:
                    ka = self._last_received + self._keepalive
                    deadline = ka if deadline is None else min(deadline, ka)
                if self._lingering:
                    due = min(self._lingering.values())
                    deadline = due if deadline is None else min(deadline, due)
                if deadline is None:
                    await self._wake.wait(loop)
                elif loop is not None:
                    self._arm_timer(loop, deadline)
                    await self._wake.wait(loop)
                else:
                    with anyio.move_on_at(deadline):
                        await self._wake.wait()
                now = self._clock()
                quic.clock_now = now
                if timer is not None and now >= timer:
                    # aioquic's timer was due by the value read before the wait; read it again
                    # (a datagram may have moved it meanwhile: handle_timer trusts the last read)
                    timer = quic.get_timer()
                    if timer is not None and now >= timer:
                        quic.handle_timer(now)
                if self._lingering:
                    self._stop_lingering(now)
                if not self._handshake.is_set() and now >= handshake_deadline:
                    self.error = self.error or TimeoutError("QUIC handshake timed out")
                    self._begin_close(CLOSE_REFUSED, "handshake timeout")
                elif (self._handshake.is_set() and not self._keepalive_sent
                      and self._keepalive is not None
                      and now - self._last_received >= self._keepalive):
                    self._keepalive_sent = True
                    self._ping_uid += 1
                    quic.send_ping(self._ping_uid)
        except BaseException as exc:
            self.error = self.error or (exc if isinstance(exc, Exception) else ConnectionClosed("cancelled"))
            self.close_now()  # cancelled (the host's group ends): the peer must not wait for its idle timeout
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._on_ended()

    def _arm_timer(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Have the driver woken at `deadline` at the latest, by one loop timer kept across its
        waits: re-armed only when the deadline comes before the armed one (or that one fired).
        One that fires early, for a deadline since moved later, costs one look at the timers.
        An anyio cancel scope per wait made and cancelled a timer handle every time, and looked
        up the current task, the backend and the loop (getpid on Python 3.11) on both ends."""
        timer = self._timer
        if timer is not None:
            if self._timer_at <= deadline:
                return
            timer.cancel()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake.set()

    def close_now(self) -> None:
        """Send CONNECTION_CLOSE at once, from the caller, without the driver: for when the
        driver is being cancelled or the socket is about to close. Without it the peer keeps the
        connection until its idle timeout (go: 30 s). A no-op once the connection has ended."""
        quic = self.quic
        if quic.is_ended:
            return
        quic.close(error_code=CLOSE_NORMAL, reason_phrase="")  # aioquic: no-op if already closing
        send = self._endpoint.send
        now = quic.clock_now = self._clock()
        try:
            for data, addr in quic.datagrams_to_send(now):
                send(data, addr)
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.debug("CONNECTION_CLOSE on exit not sent", exc_info=True)

    async def _transmit(self) -> None:
        now = self._clock()
        self.quic.clock_now = now
        send = self._endpoint.send
        for data, addr in self.quic.datagrams_to_send(now):
            send(data, addr)

    def _process_events(self) -> None:
        quic = self.quic
        while (ev := quic.next_event()) is not None:
            if isinstance(ev, qe.StreamDataReceived):
                st = self._streams.get(ev.stream_id)
                if st is None:
                    st = self._inbound_stream(ev.stream_id)
                if st is None:
                    quic.discard_data(len(ev.data), quic.clock_now)
                else:
                    st._on_data(ev.data, ev.end_stream)
            elif isinstance(ev, qe.StreamReset):
                st = self._streams.get(ev.stream_id)
                if st is None and self._peer_bidi(ev.stream_id):
                    self._seen_inbound.first_sight(ev.stream_id)  # opened and reset at once
                if st is not None:
                    st._reset_remote = True
                    st._recv.clear()
                    st._wake_reader()
                quic.discard_stream(ev.stream_id, quic.clock_now)
            elif isinstance(ev, qe.StopSendingReceived):
                st = self._streams.get(ev.stream_id) or self._inbound_stream(ev.stream_id)
                if st is not None:
                    st._stopped = True
                    st._wake_writer()
            elif isinstance(ev, qe.HandshakeCompleted):
                self._on_handshake(ev)
            elif isinstance(ev, qe.ConnectionIdIssued):
                self._endpoint.register(ev.connection_id, self)
            elif isinstance(ev, qe.ConnectionIdRetired):
                self._endpoint.unregister(ev.connection_id, self)
            elif isinstance(ev, qe.ConnectionTerminated):
                self.close_code = ev.error_code
                self.close_reason = ev.reason_phrase
                if self.error is None:
                    self.error = self._termination_error(ev)
                self._fail_streams(ConnectionClosed(f"QUIC connection closed: {self.error}"))
        # writers waiting for acknowledgements, openers waiting for MAX_STREAMS
        if self._send_waiting:
            for st in list(self._send_waiting):
                if st._wwait is None:  # woken otherwise (reset, closed, connection ended)
                    del self._send_waiting[st]
                elif st._stopped or self._unacked(st.stream_id) < SEND_HIGH_WATER:
                    del self._send_waiting[st]
                    st._wake_writer()
        if self._open_waiters:
            waiters, self._open_waiters = self._open_waiters, []
            for flag in waiters:
                flag.set()

    def _termination_error(self, ev: qe.ConnectionTerminated) -> BaseException:
        cert_error = self.quic.certificate_error
        if cert_error is not None:
            return cert_error
        return ConnectionClosed(
            f"QUIC connection closed (code {ev.error_code:#x}{', ' + ev.reason_phrase if ev.reason_phrase else ''})")

    def _on_handshake(self, ev: qe.HandshakeCompleted) -> None:
        verified = self.quic.verified_peer
        if ev.alpn_protocol != ALPN:
            self.error = P2PError(f"peer negotiated ALPN {ev.alpn_protocol!r}, not {ALPN!r}")
            self._begin_close(CLOSE_REFUSED, "wrong ALPN")
        elif verified is None:  # cannot happen: the TLS hooks refuse a handshake without one
            self.error = P2PError("QUIC handshake completed without a verified certificate")
            self._begin_close(CLOSE_REFUSED, "no certificate")
        else:
            self.remote_peer = verified.peer_id
            self.remote_public_key = verified.public_key
            if _is_loopback(self._remote[0]):
                self.quic.set_datagram_size(LOOPBACK_DATAGRAM)
        self._handshake.set()

    def _new_stream(self, sid: int) -> QuicStream:
        st = QuicStream(self, sid)
        self._streams[sid] = st
        self.quic.window_for(sid)
        return st

    def _peer_bidi(self, sid: int) -> bool:
        """Whether `sid` names a bidirectional stream the peer opens (RFC 9000 2.1)."""
        return (sid & 3) == (1 if self.direction == "outbound" else 0)

    def _inbound_stream(self, sid: int) -> QuicStream | None:
        """A stream the peer opened (None for one of ours we already forgot)."""
        # not ours, and not unidirectional (libp2p never uses them: nothing is read from them)
        if not self._peer_bidi(sid) or not self._seen_inbound.first_sight(sid):
            return None
        st = self._new_stream(sid)
        if self._closing or not self.is_established:
            return st
        if self._handler is None:
            self._pending_inbound.append(st)
        else:
            self._handler(st)
        return st

    def _forget(self, st: QuicStream) -> None:
        self._streams.pop(st.stream_id, None)
        self._send_waiting.pop(st, None)

    def _fail_streams(self, exc: BaseException) -> None:
        for st in list(self._streams.values()):
            st._wake_reader()
            st._wake_writer()
        for flag in self._open_waiters:
            flag.set()
        self._open_waiters = []

    def _on_ended(self) -> None:
        if self._ended.is_set():
            return
        self._closing = True
        # aioquic queues ConnectionTerminated only after its closing period; its reason is known
        # as soon as it enters it (we stop driving then: nothing more is sent for a dead peer).
        event = getattr(self.quic, "_close_event", None)
        if self.close_code is None and event is not None:
            self.close_code = event.error_code
            self.close_reason = event.reason_phrase
            if self.error is None:
                self.error = self._termination_error(event)
        if self.error is None:
            self.error = self.quic.certificate_error or ConnectionClosed("QUIC connection ended")
        self._ended.set()
        self._handshake.set()
        self._fail_streams(ConnectionClosed("QUIC connection ended"))
        self._endpoint.connection_ended(self)


# --- endpoints (one UDP socket each) ------------------------------------------------------------
class QuicEndpoint:
    """One UDP socket and the connections using it (see the module docstring)."""

    def __init__(self, transport: QuicTransport, sock: socket.socket) -> None:
        self._transport = transport
        # A plain non-blocking socket: sends go straight to the kernel from whichever task has
        # output (many connections share it), and reads drain every queued datagram per wake-up.
        self._raw = sock
        self.dropped = 0  # datagrams the kernel had no room for
        host, port = sock.getsockname()[:2]
        self.host = str(host)
        self.port = int(port)
        self.multiaddr = quic_multiaddr(self.host, self.port)
        self.listening = False
        self._conns: dict[bytes, QuicConn] = {}
        self._live: set[QuicConn] = set()
        self._by_remote: dict[tuple[str, int], set[QuicConn]] = {}  # for stateless resets
        self._tickets: dict[QuicConn, AdmissionTicket] = {}
        self.on_connection: Callable[[QuicConn], Awaitable[None]] | None = None
        self._closed = False
        #: the clock of the loop this endpoint's connections run on (made inside it)
        self.clock = _loop_clock()
        #: the asyncio loop whose reader callback handles this socket (see `run`), else None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self._socket_closed = Flag()
        # UDP payload bytes through this socket, for --metrics (an integer add per datagram
        # against aioquic's per-packet work; read when Prometheus scrapes).
        self.bytes_in = 0
        self.bytes_out = 0
        self._metrics = transport.ctx.metrics
        if self._metrics is not None:
            self._metrics.track_quic_endpoint(self)

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def register(self, cid: bytes, conn: QuicConn) -> None:
        self._conns[cid] = conn

    def unregister(self, cid: bytes, conn: QuicConn) -> None:
        if self._conns.get(cid) is conn:
            del self._conns[cid]

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send one datagram now. Straight to the non-blocking socket: many connections share
        it and anyio's UDP socket allows one sending task at a time. A full send buffer drops
        the datagram, as a congested link would; QUIC's loss recovery resends."""
        if self._closed:
            return
        try:
            self.bytes_out += self._raw.sendto(data, addr)
        except BlockingIOError:
            self.dropped += 1
        except OSError as exc:  # e.g. ICMP unreachable reported on the socket
            log.debug("QUIC send to %s failed: %r", addr, exc)

    async def run(self) -> None:
        """Receive datagrams until the socket is closed (or this task is cancelled: the host's
        task group ending closes the socket too). Each wake-up handles every datagram already
        queued (up to `_RECV_BATCH`), so the connections' drivers run once per batch.

        On an asyncio loop with readers (`loop.add_reader`, public API of its selector loops and
        uvloop) the datagrams are handled in the reader callback itself, registered once: a wait
        in a task (anyio's `wait_readable`) costs a loop turn to wake the task after the one that
        saw the socket readable, and registers and removes the reader around every wait (two
        epoll_ctl system calls). Elsewhere (trio, a loop without readers) this task waits."""
        loop = _reader_loop() if not self._closed else None
        if loop is not None:
            try:
                loop.add_reader(self._raw.fileno(), self._drain)
            except (NotImplementedError, OSError, ValueError):
                loop = None
        try:
            if loop is not None:
                self._reader_loop = loop
                await self._socket_closed.wait()
            else:
                await self._run_task()
        finally:
            self._close_socket()

    async def _run_task(self) -> None:
        raw = self._raw
        while not self._closed:
            try:
                await _wait_readable(raw)
            except (anyio.ClosedResourceError, OSError, ValueError):
                return
            self._drain()

    def _drain(self) -> None:
        """Handle the datagrams queued on the socket, at most `_RECV_BATCH` (a reader callback
        is called again on the next loop turn while more are queued)."""
        raw = self._raw
        # The connections that took datagrams, their drivers woken once each after the batch:
        # a stream task one of them started runs first, so what it sends leaves with the ACKs
        # (woken per datagram, a driver could send an ACK alone just before).
        took: dict[QuicConn, None] = {}
        try:
            for _ in range(_RECV_BATCH):
                if self._closed:
                    return
                try:
                    data, addr = raw.recvfrom(_MAX_DATAGRAM)
                except BlockingIOError:
                    return
                except OSError as exc:  # e.g. ICMP port unreachable, or closed meanwhile
                    if not self._closed:
                        log.debug("QUIC receive failed: %r", exc)
                    return
                self.bytes_in += len(data)
                try:
                    conn = self._datagram(data, (str(addr[0]), int(addr[1])))
                except Exception:  # one bad datagram must never stop the endpoint
                    log.exception("QUIC datagram from %s could not be handled", addr)
                    continue
                if conn is not None:
                    took[conn] = None
        finally:
            for conn in took:
                conn._kick()

    def _close_socket(self) -> None:
        if not self._closed:
            for conn in list(self._live):  # their drivers may be cancelled after this socket is gone
                conn.close_now()
            self._closed = True
            loop, self._reader_loop = self._reader_loop, None
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to remove
                    loop.remove_reader(self._raw.fileno())
                self._socket_closed.set()
            else:
                anyio.notify_closing(self._raw)
            if self._metrics is not None:
                self._metrics.untrack_quic_endpoint(self)
        if self._raw.fileno() >= 0:
            self._raw.close()

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> QuicConn | None:
        """Route one datagram; the connection that took it (its driver to be woken), if any."""
        # A short header (1-RTT, the fixed bit set) names one of our connection IDs right after
        # its first byte, in their known length: no header parse to route it (the connection
        # parses it anyway). Anything else, or an ID we do not know, takes the full parse.
        if data and data[0] & 0xC0 == 0x40:
            conn = self._conns.get(data[1:1 + _CID_LENGTH])
            if conn is not None:
                conn.datagram_received(data, addr)
                return conn
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=_CID_LENGTH)
        except ValueError:
            return None
        conn = self._conns.get(header.destination_cid)
        if conn is not None:
            conn.datagram_received(data, addr)
            return conn
        if header.packet_type == QuicPacketType.ONE_RTT and self._stateless_reset(data, addr):
            return None
        if not self.listening or self._closed:
            return None
        if (header.packet_type != QuicPacketType.VERSION_NEGOTIATION
                and header.version is not None and header.version not in _SUPPORTED):
            if len(data) >= SMALLEST_MAX_DATAGRAM_SIZE:  # never answer a short spoofable probe
                self.send(encode_quic_version_negotiation(
                    source_cid=header.destination_cid, destination_cid=header.source_cid,
                    supported_versions=list(_SUPPORTED)), addr)
            return None
        if header.packet_type != QuicPacketType.INITIAL or len(data) < SMALLEST_MAX_DATAGRAM_SIZE:
            return None
        return self._accept(header.destination_cid, data, addr)

    def _stateless_reset(self, data: bytes, addr: tuple[str, int]) -> bool:
        """A short-header datagram for none of our connection IDs: a stateless reset from a peer
        that lost one of our connections (it restarted)? Then that connection ends now, not after
        the idle timeout. Only connections to the sender's address are checked."""
        for conn in tuple(self._by_remote.get(addr, ())):
            if conn.quic.is_stateless_reset(data):
                log.debug("stateless reset from %s: %r ends", addr, conn)
                conn.quic.end_by_stateless_reset()
                conn._process_events()
                conn._kick()
                return True
        return False

    def _accept(self, original_cid: bytes, data: bytes,
                addr: tuple[str, int]) -> QuicConn | None:
        transport = self._transport
        if not initial_decrypts(data, _CID_LENGTH):  # noise: it may neither take nor evict a slot
            return None
        ticket = transport.admission.try_admit(addr[0])
        if ticket is None:
            log.debug("refusing QUIC connection from %s: limits", addr)
            metrics = transport.ctx.metrics
            if metrics is not None:
                metrics.limit_hit("inbound connection admission")
            return None
        quic = Libp2pQuicConnection(configuration=transport.server_configuration,
                                    original_destination_connection_id=original_cid)
        conn = transport.new_conn(self, quic, addr, "inbound", transport.local_peer)
        ticket.on_evict = conn.evict
        conn.on_progress = ticket.progress
        self.register(original_cid, conn)
        self.register(quic.host_cid, conn)
        conn.datagram_received(data, addr)
        if not quic.received_initial or not transport.start_soon(conn.drive):
            # nothing decrypted after all (no state kept for it), or the host is closing
            self._drop(conn)
            ticket.release()
            return None
        self._add_live(conn)
        self._tickets[conn] = ticket
        if not transport.start_soon(self._serve_inbound, conn):
            conn._begin_close(CLOSE_REFUSED, "closing")
        return conn

    async def _serve_inbound(self, conn: QuicConn) -> None:
        ticket = self._tickets[conn]
        try:
            with anyio.move_on_after(self._transport.inbound_timeout):
                await conn._handshake.wait()
            ticket.handshake_done()
            ticket.on_evict = conn.on_progress = None  # nothing of the handshake kept after it
            if ticket.evicted:
                log.debug("inbound QUIC handshake from %s evicted for another address",
                          conn.remote_addr)
                return
            if not conn.is_established or conn.is_closed:
                log.debug("inbound QUIC handshake from %s failed: %r", conn.remote_addr, conn.error)
                metrics = self._transport.ctx.metrics
                if metrics is not None:
                    metrics.handshake_failed("inbound", "quic handshake" if conn._handshake.is_set()
                                             else "quic timeout")
                conn._begin_close(CLOSE_REFUSED, "")
                return
            handler = self.on_connection
            if handler is None:
                conn._begin_close(CLOSE_REFUSED, "closing")
                return
            await handler(conn)
        finally:
            with anyio.CancelScope(shield=True):
                if not conn._ended.is_set():
                    await conn.close()
            del self._tickets[conn]
            ticket.release()

    def _drop(self, conn: QuicConn) -> None:
        for cid, c in list(self._conns.items()):
            if c is conn:
                del self._conns[cid]

    def connection_ended(self, conn: QuicConn) -> None:
        self._drop(conn)
        self._live.discard(conn)
        same = self._by_remote.get(conn._remote)
        if same is not None:
            same.discard(conn)
            if not same:
                del self._by_remote[conn._remote]
        self._maybe_close()

    def add_connection(self, conn: QuicConn) -> None:
        self._add_live(conn)

    def _add_live(self, conn: QuicConn) -> None:
        self._live.add(conn)
        self._by_remote.setdefault(conn._remote, set()).add(conn)

    def stop_listening(self) -> None:
        self.listening = False
        self.on_connection = None
        self._maybe_close()

    def _maybe_close(self) -> None:
        if not self.listening and not self._live and not self._closed and self._transport.release(self):
            self._close_socket()  # wakes the receive loop, which returns

    async def aclose(self) -> None:
        """Close every connection (their CONNECTION_CLOSE leaves first, briefly), then the socket."""
        for conn in list(self._live):
            conn._begin_close(CLOSE_NORMAL, "")
        with anyio.move_on_after(0.5, shield=True):
            while self._live:
                await anyio.sleep(0.01)
        self._close_socket()


class QuicListener:
    """What `QuicTransport.listen` returns: the bound address; `aclose` stops accepting."""

    def __init__(self, endpoint: QuicEndpoint) -> None:
        self._endpoint = endpoint
        self.addrs = [endpoint.multiaddr]

    async def aclose(self) -> None:
        self._endpoint.stop_listening()


# --- the transport -------------------------------------------------------------------------------
class QuicContext(Protocol):
    """What QuicTransport reads of its context: a Host's `TransportContext`, or a stand-alone one
    (tests, tools) that may leave out the config (then QuicLimits' handshake timeout and
    HostConfig's default limits), the admission (then the transport admits by its own connections),
    the tracer and the metrics (None: nothing traced or counted)."""

    @property
    def identity(self) -> PrivateKey: ...

    @property
    def start_soon(self) -> Callable[..., Any]: ...

    @property
    def config(self) -> HostConfig | None: ...

    @property
    def admission(self) -> Admission | None: ...

    @property
    def tracer(self) -> Tracer | None: ...

    @property
    def metrics(self) -> Metrics | None: ...


class QuicTransport:
    """Dial and listen on `/ip4|ip6/HOST/udp/PORT/quic-v1` (see the module docstring).

    Constructed with the Host's transport context (`identity`, `config`, `admission`,
    `start_soon`); the TLS certificate is made once, as go makes one per host.
    """

    name = "quic"

    def __init__(self, ctx: QuicContext) -> None:
        self.ctx = ctx
        self.identity: PrivateKey = ctx.identity
        self.local_peer = PeerId.from_public_key(self.identity.public_key)
        self._tls_identity: TlsIdentity | None = None
        self._server_configuration: QuicConfiguration | None = None
        self._client_configuration: QuicConfiguration | None = None
        #: PING after this long without receiving (go: 15 s); None sends none.
        self.keepalive_interval: float | None = QuicLimits.keepalive_interval
        config = ctx.config
        self.inbound_timeout = float(config.inbound_upgrade_timeout if config is not None else
                                     QuicLimits.handshake_idle_timeout)
        # Inbound handshakes are admitted by the Host's policy (shared with TCP); without a Host,
        # by the same policy over this transport's own connections, with `config`'s limits
        # (HostConfig.max_pending_inbound, max_pending_inbound_per_ip, max_connections...).
        admission = ctx.admission
        if admission is None:
            from p2p.admission import ConnectionLimits
            from p2p.config import HostConfig

            admission = ConnectionLimits(config if isinstance(config, HostConfig) else HostConfig(),
                                         self._inbound_connections)
        self.admission: Admission = admission
        self._endpoints: list[QuicEndpoint] = []
        self._dial_endpoints: dict[int, QuicEndpoint] = {}
        self._endpoint_lock: anyio.Lock | None = None

    # -- the certificate, made on first use (a Host that never speaks QUIC pays nothing) ---------
    @property
    def tls_identity(self) -> TlsIdentity:
        if self._tls_identity is None:
            self._tls_identity = make_certificate(self.identity)
        return self._tls_identity

    @property
    def server_configuration(self) -> QuicConfiguration:
        if self._server_configuration is None:
            self._server_configuration = make_configuration(self.tls_identity, is_client=False)
        return self._server_configuration

    @server_configuration.setter
    def server_configuration(self, value: QuicConfiguration) -> None:
        self._server_configuration = value

    @property
    def client_configuration(self) -> QuicConfiguration:
        if self._client_configuration is None:
            self._client_configuration = make_configuration(self.tls_identity, is_client=True)
        return self._client_configuration

    @client_configuration.setter
    def client_configuration(self, value: QuicConfiguration) -> None:
        self._client_configuration = value

    # -- context --------------------------------------------------------------------------------
    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Run `fn` in the host's task group; False once the host is closing (nothing starts)."""
        try:
            self.ctx.start_soon(fn, *args)
        except P2PError:
            return False
        return True

    def _inbound_connections(self) -> int:
        """Inbound connections of this transport (what its own admission policy counts)."""
        return sum(len(ep._tickets) for ep in self._endpoints)

    def release(self, endpoint: QuicEndpoint) -> bool:
        """An idle, non-listening endpoint asks to close: dial endpoints stay for reuse."""
        if endpoint in self._dial_endpoints.values():
            return False
        if endpoint in self._endpoints:
            self._endpoints.remove(endpoint)
        return True

    # -- Transport --------------------------------------------------------------------------------
    def can_dial(self, addr: str | Multiaddr) -> bool:
        return is_quic_multiaddr(addr)

    def can_listen(self, addr: str | Multiaddr) -> bool:
        return is_quic_multiaddr(addr)

    async def listen(self, addr: str | Multiaddr,
                     on_connection: Callable[[QuicConn], Awaitable[None]]) -> QuicListener:
        host, port, _ = parse_quic_multiaddr(addr)
        endpoint = await self._open_endpoint(host, port)
        endpoint.listening = True
        endpoint.on_connection = on_connection
        self._endpoints.append(endpoint)
        return QuicListener(endpoint)

    def new_conn(self, *args: Any) -> QuicConn:
        """A QuicConn; with a tracer in the context, its traced subclass (`p2p.trace.quic`):
        the one check tracing costs a connection."""
        tracer = self.ctx.tracer
        if tracer is None:
            return QuicConn(*args)
        from p2p.trace.quic import traced_conn_class

        traced: QuicConn = traced_conn_class()(*args, tracer=tracer)
        return traced

    async def dial(self, addr: str | Multiaddr, expected_peer: PeerId | None,
                   timeout: float) -> QuicConn:
        host, port, peer = parse_quic_multiaddr(addr)
        expected_peer = expected_peer or peer
        where = f"{host}:{port}/quic-v1"
        try:
            endpoint = await self._endpoint_for(host)
        except OSError as exc:
            raise DialError(f"dial {where}: no UDP socket ({exc})") from None
        quic = Libp2pQuicConnection(configuration=self.client_configuration,
                                    expected_peer=expected_peer)
        conn = self.new_conn(endpoint, quic, (host, port), "outbound", self.local_peer)
        endpoint.register(quic.host_cid, conn)
        endpoint.add_connection(conn)
        now = endpoint.clock()
        quic.clock_now = now
        quic.connect((host, port), now)
        if not self.start_soon(conn.drive):
            endpoint.connection_ended(conn)
            raise DialError(f"dial {where}: the host is closing")
        try:
            with anyio.move_on_after(timeout):
                await conn._handshake.wait()
        except BaseException:
            conn._begin_close(CLOSE_NORMAL, "")
            raise
        if conn.is_established and not conn.is_closed:
            return conn
        error = quic.certificate_error or conn.error
        conn._begin_close(CLOSE_NORMAL, "")
        metrics = self.ctx.metrics
        if metrics is not None:
            metrics.handshake_failed("outbound", "quic handshake" if conn._handshake.is_set() or error
                                     else "quic timeout")
        if isinstance(error, PeerIdMismatch):
            raise error
        if not conn._handshake.is_set():
            raise DialError(f"dial {where} timed out after {timeout}s")
        raise DialError(f"dial {where} failed: {error}")

    # -- sockets ----------------------------------------------------------------------------------
    async def _open_endpoint(self, host: str, port: int) -> QuicEndpoint:
        pin_heap_thresholds()  # once per process: no heap trimming per datagram (heap_thresholds)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
                except OSError:
                    pass
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        endpoint = QuicEndpoint(self, sock)
        if not self.start_soon(endpoint.run):
            endpoint._close_socket()
            raise P2PError("host is not running")
        return endpoint

    async def _endpoint_for(self, host: str) -> QuicEndpoint:
        """A listening endpoint that can reach `host` (go reuses its listening port), else the
        dial-only endpoint of that address family."""
        ip = ipaddress.ip_address(host)
        for ep in self._endpoints:
            if not ep.listening or ep._closed:
                continue
            bound = ipaddress.ip_address(ep.host)
            if bound.version != ip.version:
                continue
            if bound.is_unspecified or (bound.is_loopback and ip.is_loopback):
                return ep
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        if self._endpoint_lock is None:
            self._endpoint_lock = anyio.Lock()
        async with self._endpoint_lock:
            dial_ep = self._dial_endpoints.get(family)
            if dial_ep is None or dial_ep._closed:
                dial_ep = await self._open_endpoint("::" if ip.version == 6 else "0.0.0.0", 0)
                self._dial_endpoints[family] = dial_ep
            return dial_ep

    async def aclose(self) -> None:
        """Close every socket (the Host's task group ending does the same)."""
        for ep in [*self._endpoints, *self._dial_endpoints.values()]:
            await ep.aclose()
        self._endpoints.clear()
        self._dial_endpoints.clear()
