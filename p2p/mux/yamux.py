"""Sans-IO yamux core: frame parsing, stream states and flow control.

Spec: https://github.com/hashicorp/yamux/blob/master/spec.md ("Framing", "Message Flow", "Flow
Control", "Session termination"); go-yamux v4's behaviour where the spec leaves a choice.

Theory of operation. `YamuxConnection` is fed raw bytes with `receive_data(data, now)` and returns
events; commands (`open_stream`, `accept`, `send`, `read`, `send_eof`, `reset`, `close_stream`,
`ping`, `go_away`) queue frames that `data_to_send()` drains. Nothing here does I/O or reads a
clock: `now` (seconds, any monotonic origin) comes from the driver and is only used for RTT and
window auto-tuning.

Everything is sent as go-yamux v4 sends it: open = WindowUpdate+SYN, accept = WindowUpdate+ACK,
FIN and RST on WindowUpdate frames; SYN/ACK/FIN/RST are honoured on any Data or WindowUpdate frame.
Fewer frames where go reads them the same: while a stream's last frame is still the last one queued,
its next data extends it (a SYN or ACK then travels on the Data frame: a request is SYN+data and FIN,
an answer ACK+reply+data and FIN, instead of three and four frames) and a FIN joins a SYN or ACK
with no data. A FIN never rides on a Data frame with payload: go-yamux handles a frame's flags
before its payload, so its reader could see the end of the stream before the data.

Memory. Only a partial header (< 12 bytes) is ever buffered by the parser: Data payloads are copied
straight into their stream's buffer as they arrive, or skipped when the stream is unknown. A stream's
buffer is bounded by its receive window because Data beyond the granted credit is a protocol error.
Each stream keeps its read half (`recv_*`) and write half (`send_*`) apart.

Flow control (h2's "update at half the window" rule, as go does it): after the application reads,
delta = window - (buffered + credit); a WindowUpdate is sent only once delta >= window/2. If the
previous update of that stream was less than 4 RTT ago, the window doubles first (up to
`max_stream_window`), which is how go auto-tunes for bandwidth-delay; but only while the receiver
keeps up: when the session holds no more unread bytes, on all its streams, than this stream's
window. A receiver with more than that waiting to be read gains nothing from more in flight, and
the RTT we measure is no guide to that: our first ping is answered while the peer (Python) is
still setting the connection up, and later ones wait behind queued data, so on loopback it said
1-16 ms instead of ~0.1 ms and every update looked fast. Sixteen echo streams on one connection
then grew their windows to 2-4 MiB and the listener held 16-64 MiB of decrypted data it had not
read yet, all of it out of the CPU's caches (and its heap grown and trimmed around it). The bound
is a window, not zero, so that one stream the application never reads (it holds at most its
window) does not hold every other stream's window at 256 KiB: on a long path that would cap the
whole connection's throughput per stream at 256 KiB per RTT, where go's windows grow to 16 MiB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Union

from p2p.errors import LocalProtocolError
from p2p.mux.yamux_frame import (
    ACK,
    DATA,
    FIN,
    GO_AWAY,
    HEADER_SIZE,
    INITIAL_STREAM_WINDOW,
    MAX_UINT32,
    PING,
    RST,
    SYN,
    VERSION,
    WINDOW_UPDATE,
    YamuxProtocolError,
    pack_header,
    unpack_header_from,
)
from p2p.recv_buffer import RecvBuffer

__all__ = [
    "YamuxConfig", "YamuxConnection", "YamuxProtocolError", "Event", "StreamOpened", "StreamAcked",
    "DataReceived", "StreamEnded", "StreamReset", "WindowUpdated", "PongReceived", "GoAwayReceived",
    "SessionGoingAway", "StreamLimitReached", "StreamsExhausted",
]

#: go-yamux refuses to open IDs at or above this (`ErrStreamsExhausted`).
_LAST_STREAM_ID = MAX_UINT32 - 1
#: Outstanding pings we remember; older ones are forgotten (their replies then count as unsolicited).
_MAX_OUTSTANDING_PINGS = 256


@dataclass(frozen=True)
class YamuxConfig:
    """Session settings; defaults are go-libp2p's (go-yamux `DefaultConfig` as go-libp2p sets
    it) except where a comment says otherwise."""

    accept_backlog: int = 256
    ping_backlog: int = 32
    #: go-libp2p leaves this at 2^32-1 and relies on its resource manager (256 inbound streams per
    #: peer plus scaling); we have no resource manager, so cap per session.
    max_inbound_streams: int = 1024
    max_outbound_unacked: int = 256
    initial_stream_window: int = INITIAL_STREAM_WINDOW
    max_stream_window: int = 16 * 1024 * 1024
    #: 65507 = Noise's 65519-byte plaintext limit minus our 12-byte header, so a lone frame is one
    #: Noise frame (go's 65524 would spill 5 bytes into a second Noise frame). go accepts any size.
    #: Data frames are also cut to end where a Noise frame of the write ends (see `send`).
    max_frame_payload: int = 65507
    enable_keepalive: bool = True
    keepalive_interval: float = 30.0
    keepalive_timeout: float = 10.0
    measure_rtt_interval: float = 30.0
    write_timeout: float = 10.0
    #: How long open_stream waits for a slot when 256 streams are still un-ACKed (go: 75 s).
    stream_open_timeout: float = 75.0

    def __post_init__(self) -> None:
        def need(cond: bool, what: str) -> None:
            if not cond:
                raise ValueError(f"invalid YamuxConfig: {what}")

        need(self.accept_backlog >= 1, "accept_backlog must be >= 1")
        need(self.ping_backlog >= 1, "ping_backlog must be >= 1")
        need(self.max_inbound_streams >= 1, "max_inbound_streams must be >= 1")
        need(self.max_outbound_unacked >= 1, "max_outbound_unacked must be >= 1")
        need(self.initial_stream_window >= INITIAL_STREAM_WINDOW,
             "initial_stream_window must be >= 256 KiB (peers assume that much)")
        need(self.initial_stream_window <= self.max_stream_window <= MAX_UINT32,
             "need initial_stream_window <= max_stream_window <= 2^32-1")
        need(1 <= self.max_frame_payload <= MAX_UINT32, "max_frame_payload out of range")
        for name in ("keepalive_interval", "keepalive_timeout", "measure_rtt_interval",
                     "write_timeout", "stream_open_timeout"):
            need(getattr(self, name) > 0, f"{name} must be > 0")


# ---- events (NamedTuples: cheap to build on the hot path) -------------------------------------


class StreamOpened(NamedTuple):
    """The peer opened a stream; call `accept(stream_id)` when the application takes it."""
    stream_id: int


class StreamAcked(NamedTuple):
    """The peer acknowledged one of our streams (frees an un-ACKed slot)."""
    stream_id: int


class DataReceived(NamedTuple):
    """`length` more bytes are buffered for the stream; fetch them with `read`."""
    stream_id: int
    length: int


class StreamEnded(NamedTuple):
    """The peer half-closed (FIN): EOF after the buffered bytes."""
    stream_id: int


class StreamReset(NamedTuple):
    """The peer reset the stream; buffered data was dropped."""
    stream_id: int


class WindowUpdated(NamedTuple):
    """The peer granted `delta` more bytes of send window."""
    stream_id: int
    delta: int


class PongReceived(NamedTuple):
    """Reply to our ping `opaque`; `rtt` is None when no clock was passed in."""
    opaque: int
    rtt: float | None


class GoAwayReceived(NamedTuple):
    """The peer will accept no new streams; a non-zero code means it is closing on error."""
    code: int


Event = Union[StreamOpened, StreamAcked, DataReceived, StreamEnded, StreamReset, WindowUpdated,
              PongReceived, GoAwayReceived]

#: `_event(DataReceived, (sid, n))` is `DataReceived(sid, n)` without the Python frame of the
#: NamedTuple's generated `__new__`: the parser makes three events per request on each side
#: (StreamOpened or StreamAcked, DataReceived, StreamEnded), before the tasks they wake run.
_event = tuple.__new__


class SessionGoingAway(LocalProtocolError):
    """No new streams: a GoAway was sent or received, or the session is closed."""


class StreamLimitReached(LocalProtocolError):
    """Too many of our streams are still un-ACKed; retry after a StreamAcked/StreamReset event."""


class StreamsExhausted(LocalProtocolError):
    """All stream IDs of our parity are used up."""


class _Stream:
    """Per-stream state, read half (`recv_*`) and write half (`send_*`) kept apart."""

    __slots__ = ("id", "outbound", "acked", "need_ack", "recv_buf", "recv_window", "recv_credit",
                 "recv_fin", "last_update", "send_window", "send_closed")

    def __init__(self, stream_id: int, outbound: bool, recv_credit: int, window: int,
                 now: float | None) -> None:
        self.id = stream_id
        self.outbound = outbound
        self.acked = not outbound        # outbound streams wait for the peer's ACK
        self.need_ack = not outbound     # inbound streams owe the peer an ACK
        self.recv_buf = RecvBuffer()
        self.recv_window = window        # current target window (auto-tuned)
        self.recv_credit = recv_credit   # bytes the peer may still send
        self.recv_fin = False
        self.last_update = now           # go's epochStart, for auto-tuning
        self.send_window = INITIAL_STREAM_WINDOW
        self.send_closed = False


class YamuxConnection:
    """One yamux session's protocol state; see the module docstring."""

    __slots__ = ("is_client", "config", "_streams", "_next_id", "_pending_accept", "_inbound",
                 "_unacked", "_extra_window", "_inbuf", "_payload_left", "_payload_stream",
                 "_payload_fin", "_unread", "_out", "pending_output", "_updates_size", "_tail_sid",
                 "_tail_at", "_tail_flags", "_tail_len", "_ping_replies", "_pings", "_next_ping",
                 "rtt", "local_goaway", "remote_goaway", "closed", "error")

    def __init__(self, is_client: bool, config: YamuxConfig | None = None) -> None:
        self.is_client = is_client
        self.config = config = config or YamuxConfig()
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1 if is_client else 2
        self._pending_accept: set[int] = set()
        self._inbound = 0
        self._unacked = 0
        self._extra_window = config.initial_stream_window - INITIAL_STREAM_WINDOW
        # parser state: partial header, then payload bytes still to route (or skip if stream None)
        self._inbuf = bytearray()
        self._payload_left = 0
        self._payload_stream: _Stream | None = None
        self._payload_fin = False
        #: bytes received and not yet read, on all streams (the sum of their buffers' sizes)
        self._unread = 0
        # output
        self._out: list[bytes | memoryview] = []
        #: bytes queued for `data_to_send` / `take_output` (a plain attribute, not a property:
        #: the driver reads it several times per request and per frame)
        self.pending_output = 0
        self._updates_size = 0  # of which plain window updates
        # The last frame queued, while later bytes of its stream may extend it: its stream (-1:
        # none), the index of its header in `_out`, its flags and its payload length (0: still
        # the WindowUpdate of a SYN or ACK).
        self._tail_sid = -1
        self._tail_at = 0
        self._tail_flags = 0
        self._tail_len = 0
        self._ping_replies = 0
        self._pings: dict[int, float | None] = {}
        self._next_ping = 0
        self.rtt: float = 0.0
        self.local_goaway = False
        self.remote_goaway: int | None = None
        self.closed = False
        self.error: YamuxProtocolError | None = None

    # ---- inspection ----------------------------------------------------------------------------

    @property
    def only_window_updates(self) -> bool:
        """True when all that is queued is plain window updates: nothing the peer waits on yet
        (each is sent at half a window, so the peer still has the other half to send)."""
        return self.pending_output == self._updates_size

    def send_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.send_window if st is not None else 0

    def buffered(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return len(st.recv_buf) if st is not None else 0

    def receive_buffer(self, stream_id: int) -> RecvBuffer:
        """A stream's receive buffer, for a driver to see whether a read would find bytes (its
        `size`) without a call; bytes are taken only through `read`. A stream already gone (its
        SYN and RST in one read) has an empty one that stays empty."""
        st = self._streams.get(stream_id)
        return st.recv_buf if st is not None else RecvBuffer()

    def recv_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.recv_window if st is not None else 0

    def has_stream(self, stream_id: int) -> bool:
        return stream_id in self._streams

    @property
    def num_streams(self) -> int:
        return len(self._streams)

    @property
    def can_open(self) -> bool:
        return self._unacked < self.config.max_outbound_unacked

    # ---- output --------------------------------------------------------------------------------

    def _frame(self, frame_type: int, flags: int, stream_id: int, length: int) -> None:
        self._tail_sid = -1
        self._out.append(pack_header(VERSION, frame_type, flags, stream_id, length))
        self.pending_output += HEADER_SIZE

    def _open_frame(self, flags: int, stream_id: int) -> None:
        """A stream's SYN or ACK (WindowUpdate, delta 0): its first data may still extend it."""
        self._frame(WINDOW_UPDATE, flags, stream_id, 0)
        self._tail_sid, self._tail_at = stream_id, len(self._out) - 1
        self._tail_flags, self._tail_len = flags, 0

    def data_to_send(self) -> bytes:
        """Everything queued so far, coalesced into one bytes object."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        self.pending_output = self._updates_size = 0
        self._tail_sid = -1
        self._ping_replies = 0
        return data

    @property
    def output(self) -> list[bytes | memoryview]:
        """The pieces queued (`pending_output` bytes), not taken: a stream below that may refuse
        a write looks at them first, and `take_output` once it has them."""
        return self._out

    def take_output(self) -> tuple[list[bytes | memoryview], int]:
        """Everything queued so far as its pieces (headers and payload views) and their total
        size, not joined: for a stream below that gathers them itself."""
        out, size = self._out, self.pending_output
        self._out = []
        self.pending_output = self._updates_size = 0
        self._tail_sid = -1
        self._ping_replies = 0
        return out, size

    # ---- input ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None
                     ) -> list[Event]:
        """Feed bytes from the connection; raises YamuxProtocolError (GoAway(1) queued) on abuse.
        (The session feeds a read's pieces through `receive_pieces`; this is its one-piece form.)"""
        return self.receive_pieces((data,), now)

    def receive_pieces(self, pieces: Sequence[bytes | bytearray | memoryview],
                       now: float | None = None) -> list[Event]:
        """`receive_data` of the concatenation of `pieces`, without joining them: the events of
        all of them in one list. For a stream below that hands over a read's frames together
        (Noise: the plaintext of every frame one read brought), so that the driver parses and
        wakes once per read instead of once per frame."""
        if self.error is not None:
            raise YamuxProtocolError(f"session already failed: {self.error}")
        events: list[Event] = []
        if self.closed:
            return events
        try:
            for data in pieces:
                if data:
                    self._parse(memoryview(data), events, now)
        except YamuxProtocolError as exc:
            self._fail(exc)
            raise
        return events

    def _fail(self, exc: YamuxProtocolError) -> None:
        self.error = exc
        self._frame(GO_AWAY, 0, 0, 1)
        self.local_goaway = True
        self.closed = True

    def _parse(self, mv: memoryview, events: list[Event], now: float | None) -> None:
        pos, end = 0, len(mv)
        inbuf = self._inbuf
        # A payload that is most of an immutable input (a Noise frame's plaintext) is kept as a
        # view of it, not copied: a reader taking several frames joins them once. A smaller piece
        # is copied, so buffered bytes never keep more than twice their size alive.
        whole = len(mv.obj) if isinstance(mv.obj, bytes) else -1  # what a view keeps alive
        while True:
            left = self._payload_left
            if left:
                n = min(left, end - pos)
                st = self._payload_stream
                if st is not None and n:
                    piece = mv[pos:pos + n]
                    buf = st.recv_buf  # its append, inline: once per data frame
                    buf.chunks.append(piece if 2 * n >= whole > 0 else bytes(piece))
                    buf.size += n
                    self._unread += n
                    events.append(_event(DataReceived, (st.id, n)))
                pos += n
                self._payload_left = left = left - n
                if left:
                    return
                self._payload_stream = None
                if self._payload_fin and st is not None:
                    self._payload_fin = False
                    self._on_fin(st, events)
            if inbuf:
                take = min(HEADER_SIZE - len(inbuf), end - pos)
                inbuf += mv[pos:pos + take]
                pos += take
                if len(inbuf) < HEADER_SIZE:
                    return
                fields = unpack_header_from(inbuf, 0)
                inbuf.clear()
            elif end - pos >= HEADER_SIZE:
                fields = unpack_header_from(mv, pos)
                pos += HEADER_SIZE
            else:
                if pos < end:
                    inbuf += mv[pos:end]
                return
            if fields[1] == DATA and not fields[2] and fields[0] == VERSION:
                # A data frame with no flags, the bulk of a transfer: if its stream is open and
                # it fits the window, what _on_stream_frame would do, without its two calls.
                length = fields[4]
                st = self._streams.get(fields[3])
                if st is not None and 0 < length <= st.recv_credit and not st.recv_fin:
                    st.recv_credit -= length
                    self._payload_left = length
                    self._payload_stream = st
                    self._payload_fin = False
                    continue
            self._on_header(fields, events, now)

    def _on_header(self, fields: tuple[int, int, int, int, int], events: list[Event],
                   now: float | None) -> None:
        version, frame_type, flags, sid, length = fields
        if version != VERSION:
            raise YamuxProtocolError(f"unsupported yamux version {version}")
        if frame_type <= WINDOW_UPDATE:
            self._on_stream_frame(frame_type, flags, sid, length, events, now)
        elif frame_type == PING:
            self._on_ping(flags, length, events, now)
        elif frame_type == GO_AWAY:
            self.remote_goaway = length
            events.append(GoAwayReceived(length))
        else:
            raise YamuxProtocolError(f"unknown yamux frame type {frame_type}")

    def _skip(self, frame_type: int, length: int) -> None:
        if frame_type == DATA and length:
            self._payload_left = length
            self._payload_stream = None
            self._payload_fin = False

    def _on_stream_frame(self, frame_type: int, flags: int, sid: int, length: int,
                         events: list[Event], now: float | None) -> None:
        st = self._streams.get(sid)
        if flags & SYN:
            if st is not None:
                raise YamuxProtocolError(f"duplicate SYN for open stream {sid}")
            st = self._on_syn(sid, events, now)
        if st is None:  # unknown (e.g. closed by us) or refused: ignore, skip any payload
            self._skip(frame_type, length)
            return
        if flags & ACK and not st.acked:
            st.acked = True
            self._unacked -= 1
            events.append(_event(StreamAcked, (sid,)))
        if flags & RST:
            self._forget(st)
            self._unread -= st.recv_buf.size
            st.recv_buf.clear()
            events.append(StreamReset(sid))
            self._skip(frame_type, length)
            return
        if frame_type == WINDOW_UPDATE:
            if length:
                window = st.send_window + length
                if window > MAX_UINT32:
                    raise YamuxProtocolError(f"send window overflow on stream {sid}")
                st.send_window = window
                if not st.send_closed:
                    events.append(_event(WindowUpdated, (sid, length)))
            if flags & FIN:
                self._on_fin(st, events)
            return
        if not length:
            if flags & FIN:
                self._on_fin(st, events)
            return
        if st.recv_fin:
            raise YamuxProtocolError(f"data after FIN on stream {sid}")
        if length > st.recv_credit:
            raise YamuxProtocolError(
                f"stream {sid}: {length} bytes of data exceed the receive window "
                f"({st.recv_credit} left)")
        st.recv_credit -= length
        self._payload_left = length
        self._payload_stream = st
        self._payload_fin = bool(flags & FIN)

    def _on_syn(self, sid: int, events: list[Event], now: float | None) -> _Stream | None:
        if (sid % 2 == 1) == self.is_client:  # also rejects stream 0
            raise YamuxProtocolError(f"SYN for stream {sid} has our own parity")
        cfg = self.config
        if (self.local_goaway or self.closed or len(self._pending_accept) >= cfg.accept_backlog
                or self._inbound >= cfg.max_inbound_streams):
            self._frame(WINDOW_UPDATE, RST, sid, 0)
            return None
        st = _Stream(sid, False, INITIAL_STREAM_WINDOW, cfg.initial_stream_window, now)
        self._streams[sid] = st
        self._inbound += 1
        self._pending_accept.add(sid)
        events.append(_event(StreamOpened, (sid,)))
        return st

    def _on_fin(self, st: _Stream, events: list[Event]) -> None:
        if st.recv_fin:
            return
        st.recv_fin = True
        events.append(_event(StreamEnded, (st.id,)))
        self._maybe_forget(st)

    def _on_ping(self, flags: int, opaque: int, events: list[Event], now: float | None) -> None:
        if flags & SYN:
            if self._ping_replies < self.config.ping_backlog:  # go drops replies past 32 queued
                self._ping_replies += 1
                self._frame(PING, ACK, 0, opaque)
        elif flags & ACK and opaque in self._pings:
            sent = self._pings.pop(opaque)
            rtt = None
            if now is not None and sent is not None:
                rtt = max(now - sent, 0.0)
                self.rtt = rtt if not self.rtt else self.rtt / 2 + rtt / 2
            events.append(PongReceived(opaque, rtt))

    # ---- stream bookkeeping --------------------------------------------------------------------

    def _forget(self, st: _Stream) -> None:
        if self._streams.pop(st.id, None) is None:
            return
        if self._payload_stream is st:  # rest of an in-flight Data payload is now skipped
            self._payload_stream = None
        if st.outbound:
            if not st.acked:
                self._unacked -= 1
        else:
            self._inbound -= 1
            self._pending_accept.discard(st.id)

    def _maybe_forget(self, st: _Stream) -> None:
        if st.recv_fin and st.send_closed and not st.recv_buf.size:
            self._forget(st)

    # ---- commands ------------------------------------------------------------------------------

    def open_stream(self, now: float | None = None) -> int:
        """Queue WindowUpdate+SYN (delta = our window beyond 256 KiB) and return the new ID."""
        if self.closed or self.local_goaway:
            raise SessionGoingAway("session is closing")
        if self.remote_goaway is not None:
            raise SessionGoingAway(f"remote sent GoAway({self.remote_goaway})")
        if self._unacked >= self.config.max_outbound_unacked:
            raise StreamLimitReached(f"{self._unacked} streams not yet acknowledged")
        sid = self._next_id
        if sid >= _LAST_STREAM_ID:
            raise StreamsExhausted("stream IDs exhausted")
        self._next_id = sid + 2
        window = self.config.initial_stream_window
        self._streams[sid] = _Stream(sid, True, window, window, now)
        self._unacked += 1
        if self._extra_window:
            self._frame(WINDOW_UPDATE, SYN, sid, self._extra_window)
        else:
            self._open_frame(SYN, sid)
        return sid

    def accept(self, stream_id: int) -> bool:
        """Take an inbound stream from the backlog and ACK it; False if it is already gone."""
        if stream_id not in self._pending_accept:
            return False
        self._pending_accept.discard(stream_id)
        st = self._streams[stream_id]
        st.need_ack = False
        st.recv_credit += self._extra_window
        if self._extra_window:
            self._frame(WINDOW_UPDATE, ACK, stream_id, self._extra_window)
        else:
            self._open_frame(ACK, stream_id)
        return True

    def send(self, stream_id: int, data: bytes | memoryview) -> int:
        """Queue as much of `data` as the send window allows; return the byte count queued.

        Frames reference `data` without copying, so it must stay unchanged until `data_to_send`.

        The output is written in segments of `max_frame_payload` + 12 bytes counted from the
        start of each take (Noise frames over a write, with the default), and a frame is cut or
        extended only up to where the current segment ends: a frame straddles two Noise frames
        only when its header must (under 13 bytes left). Without the cut, the short last frame
        of one write (a 256 KiB write is 4 full frames and 116 bytes) followed by another
        stream's frames shifted every later frame across two Noise frames, and the receiver
        handled each payload in two pieces, copying the smaller.
        """
        st = self._streams.get(stream_id)
        if st is None or st.send_closed:
            raise LocalProtocolError(f"stream {stream_id} is not writable")
        if self.closed:
            raise SessionGoingAway("session is closed")
        n = min(len(data), st.send_window)
        if n <= 0:
            return 0
        flags = ACK if st.need_ack else 0
        st.need_ack = False
        mv = data if isinstance(data, memoryview) else memoryview(data)
        out, maxp, pos = self._out, self.config.max_frame_payload, 0
        segment = maxp + HEADER_SIZE
        if self._tail_sid == stream_id and self._tail_len < maxp:
            # this stream's frame is the last one queued: the first bytes extend it, to the end
            # of its segment at most
            have = self._tail_len
            pos = min(maxp - have, n, -self.pending_output % segment)
            if pos:
                flags |= self._tail_flags
                out[self._tail_at] = pack_header(VERSION, DATA, flags, stream_id, have + pos)
                out.append(mv if pos == len(mv) else mv[:pos])
                self.pending_output += pos
                self._tail_flags, self._tail_len = flags, have + pos
                flags = 0
        while pos < n:
            room = segment - self.pending_output % segment - HEADER_SIZE  # payload the segment has left
            k = min(maxp, n - pos, room if room > 0 else room + segment)
            self._tail_at = len(out)
            out.append(pack_header(VERSION, DATA, flags, stream_id, k))
            out.append(mv[pos:pos + k])
            self._tail_sid, self._tail_flags, self._tail_len = stream_id, flags, k
            flags = 0
            pos += k
            self.pending_output += HEADER_SIZE + k
        st.send_window -= n
        return n

    def read(self, stream_id: int, max_bytes: int, now: float | None = None) -> bytes:
        """Take up to `max_bytes` buffered bytes; may queue a WindowUpdate (and grow the window)."""
        st = self._streams.get(stream_id)
        if st is None or not st.recv_buf.size or max_bytes <= 0:
            return b""
        buf = st.recv_buf
        before = buf.size
        out = buf.take(max_bytes)
        self._unread -= before - buf.size  # (no len() call: a read per request on each side)
        if st.recv_fin:
            self._maybe_forget(st)
        elif not self.closed:
            self._update_window(st, now)
        return out

    def _update_window(self, st: _Stream, now: float | None) -> None:
        window = st.recv_window
        delta = window - (st.recv_buf.size + st.recv_credit)
        if delta < window // 2:
            return
        limit = self.config.max_stream_window
        if (self.rtt and now is not None and st.last_update is not None
                and now - st.last_update < 4 * self.rtt and window < limit
                and self._unread <= window):  # the receiver keeps up (module docstring)
            grow = min(window, limit - window)
            st.recv_window = window + grow
            delta += grow
        st.last_update = now
        st.recv_credit += delta
        flags = ACK if st.need_ack else 0
        st.need_ack = False
        self._frame(WINDOW_UPDATE, flags, st.id, delta)
        if not flags:
            self._updates_size += HEADER_SIZE

    def send_eof(self, stream_id: int) -> None:
        """Half-close our side with WindowUpdate+FIN (idempotent)."""
        st = self._streams.get(stream_id)
        if st is None or st.send_closed:
            return
        flags = FIN | (ACK if st.need_ack else 0)
        st.need_ack = False
        st.send_closed = True
        if self._tail_sid == stream_id and not self._tail_len:  # its SYN or ACK, no data yet
            self._out[self._tail_at] = pack_header(VERSION, WINDOW_UPDATE,
                                                   self._tail_flags | flags, stream_id, 0)
            self._tail_sid = -1
        else:
            self._frame(WINDOW_UPDATE, flags, stream_id, 0)
        self._maybe_forget(st)

    def reset(self, stream_id: int) -> None:
        """Reset both directions with WindowUpdate+RST and forget the stream."""
        st = self._streams.get(stream_id)
        if st is None:
            return
        self._forget(st)
        self._unread -= st.recv_buf.size
        st.recv_buf.clear()
        self._frame(WINDOW_UPDATE, RST, stream_id, 0)

    def close_stream(self, stream_id: int) -> None:
        """go's Close: FIN if not sent yet, stop reading (drop buffered data), forget the stream."""
        st = self._streams.get(stream_id)
        if st is None:
            return
        self.send_eof(stream_id)
        self._unread -= st.recv_buf.size  # (inline: a handler's close per request)
        st.recv_buf.clear()
        self._forget(st)

    def ping(self, now: float | None = None) -> int:
        """Queue a Ping SYN; go numbers its pings 0, 1, 2, ... and so do we."""
        opaque = self._next_ping
        self._next_ping = (opaque + 1) & MAX_UINT32
        if len(self._pings) >= _MAX_OUTSTANDING_PINGS:
            del self._pings[next(iter(self._pings))]
        self._pings[opaque] = now
        self._frame(PING, SYN, 0, opaque)
        return opaque

    def cancel_ping(self, opaque: int) -> None:
        self._pings.pop(opaque, None)

    def go_away(self, code: int = 0) -> None:
        """Queue GoAway(code) once; afterwards new inbound SYNs are answered with RST."""
        if not self.local_goaway:
            self.local_goaway = True
            self._frame(GO_AWAY, 0, 0, code)

    def close(self) -> None:
        """Mark the session closed locally (the driver closes the connection)."""
        self.closed = True
