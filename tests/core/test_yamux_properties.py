"""Property tests for the yamux core: any input only ever raises YamuxProtocolError, chunking does
not change the outcome, and two cores back to back keep their flow-control invariants."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from p2p.mux.yamux import (
    DataReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    YamuxConfig,
    YamuxConnection,
    YamuxProtocolError,
)

SMALL = YamuxConfig(accept_backlog=4, max_inbound_streams=6, ping_backlog=3, max_frame_payload=700)


@st.composite
def frames(draw):
    """Mostly well-formed frames with random fields, so the fuzzing reaches the stream logic."""
    ftype = draw(st.sampled_from([0, 0, 1, 1, 2, 3, 4]))
    flags = draw(st.integers(0, 15))
    sid = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 0xFFFFFFFF]))
    version = draw(st.sampled_from([0] * 20 + [1]))
    if ftype == 0:
        payload = draw(st.binary(max_size=64))
        length = len(payload) if draw(st.booleans()) else draw(st.integers(0, 300_000))
        return struct.pack(">BBHII", version, ftype, flags, sid, length) + payload
    length = draw(st.sampled_from([0, 1, 1000, 0x7FFFFFFF, 0xFFFFFFFF]))
    return struct.pack(">BBHII", version, ftype, flags, sid, length)


def feed(conn: YamuxConnection, chunks) -> list:
    events = []
    try:
        for chunk in chunks:
            events += conn.receive_data(chunk, now=0.0)
            conn.data_to_send()
    except YamuxProtocolError:
        assert conn.error is not None
        assert conn.data_to_send().endswith(bytes.fromhex("000300000000000000000001"))
    return events


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(st.binary(max_size=80), max_size=20))
def test_random_bytes_only_raise_protocol_errors(is_client, chunks):
    feed(YamuxConnection(is_client, SMALL), chunks)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(frames(), max_size=30), st.data())
def test_random_frames_only_raise_protocol_errors_and_bound_buffers(is_client, fs, data):
    conn = YamuxConnection(is_client, SMALL)
    wire = b"".join(fs)
    cut = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=5)))
    chunks = [wire[a:b] for a, b in zip([0] + cut, cut + [len(wire)])]
    feed(conn, chunks)
    for sid in list(conn._streams):
        assert conn.buffered(sid) <= conn.recv_window(sid)
    assert len(conn._inbuf) < 12
    assert conn.num_streams <= SMALL.max_inbound_streams


@settings(max_examples=200)
@given(st.lists(frames(), max_size=20), st.data())
def test_chunking_does_not_change_the_outcome(fs, data):
    wire = b"".join(fs)
    whole = YamuxConnection(False, SMALL)
    expected = feed(whole, [wire])
    cut = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    split = YamuxConnection(False, SMALL)
    got = feed(split, [wire[a:b] for a, b in zip([0] + cut, cut + [len(wire)])])

    def merged(evs):  # DataReceived may be split by chunking; total per stream must match
        out, totals = [], {}
        for e in evs:
            if isinstance(e, DataReceived):
                totals[e.stream_id] = totals.get(e.stream_id, 0) + e.length
            else:
                out.append(e)
        return out, totals

    assert (split.error is None) == (whole.error is None)
    if whole.error is None:  # on a violation the events of the failing call are not returned
        assert merged(got) == merged(expected)


class TwoCores(RuleBasedStateMachine):
    """A client and a server core wired back to back; the model is what each side sent."""

    def __init__(self):
        super().__init__()
        cfg = YamuxConfig(max_frame_payload=5000, max_stream_window=1 << 20)
        self.c = YamuxConnection(True, cfg)
        self.s = YamuxConnection(False, cfg)
        self.now = 0.0
        self.sent: dict[int, bytearray] = {}
        self.got: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.reset: set[int] = set()
        self.eof_sent: set[int] = set()

    def deliver(self):
        self.now += 0.001
        for ev in self.s.receive_data(self.c.data_to_send(), self.now):
            if isinstance(ev, StreamOpened):
                assert self.s.accept(ev.stream_id)
            elif isinstance(ev, StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, StreamReset):
                self.reset.add(ev.stream_id)
        self.c.receive_data(self.s.data_to_send(), self.now)

    @rule()
    def open(self):
        if self.c.can_open:
            sid = self.c.open_stream(self.now)
            self.sent[sid] = bytearray()
            self.got[sid] = bytearray()
            self.deliver()

    @precondition(lambda self: self.sent)
    @rule(data=st.data(), size=st.integers(1, 200_000))
    def send(self, data, size):
        sid = data.draw(st.sampled_from(sorted(self.sent)))
        if sid in self.eof_sent or sid in self.reset or not self.c.has_stream(sid):
            return
        payload = bytes([sid % 256]) * size
        n = self.c.send(sid, payload)
        assert n <= size
        self.sent[sid] += payload[:n]
        self.deliver()

    @precondition(lambda self: self.sent)
    @rule(data=st.data(), size=st.integers(1, 300_000))
    def read(self, data, size):
        sid = data.draw(st.sampled_from(sorted(self.sent)))
        chunk = self.s.read(sid, size, self.now)
        assert len(chunk) <= size
        self.got[sid] += chunk
        self.deliver()

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def send_eof(self, data):
        sid = data.draw(st.sampled_from(sorted(self.sent)))
        self.c.send_eof(sid)
        self.eof_sent.add(sid)
        self.deliver()

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def reset_stream(self, data):
        sid = data.draw(st.sampled_from(sorted(self.sent)))
        if self.c.has_stream(sid):
            self.c.reset(sid)
            self.deliver()

    @rule()
    def ping(self):
        self.c.ping(self.now)
        self.deliver()

    @invariant()
    def received_is_prefix_of_sent_and_bounded(self):
        assert self.c.error is None and self.s.error is None
        for sid, got in self.got.items():
            if sid not in self.reset:
                assert self.sent[sid].startswith(got)
            if self.s.has_stream(sid):
                assert self.s.buffered(sid) <= self.s.recv_window(sid) <= (1 << 20)
                # credit granted to the client equals what the server still accepts
                inflight = len(self.sent[sid]) - len(got) - self.s.buffered(sid)
                assert inflight == 0
        for sid in self.ended:
            assert sid in self.eof_sent
        assert self.s._unread == sum(len(st.recv_buf) for st in self.s._streams.values())


TestTwoCores = TwoCores.TestCase
TestTwoCores.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


# ---- every state x every input ----------------------------------------------------------------
# A client core (our streams odd, the peer's even) is put into each state below, then fed each
# hostile frame: every version/type/flag combination on every kind of stream ID with lengths from
# 0 to 2^32-1. Only YamuxProtocolError may escape; afterwards the bookkeeping must still add up and
# the core must either keep working or stay failed with its GoAway(1) queued.

GOAWAY_PROTOCOL_ERROR = bytes.fromhex("000300000000000000000001")


def _hdr(version: int, ftype: int, flags: int, sid: int, length: int) -> bytes:
    return struct.pack(">BBHII", version, ftype, flags, sid, length)


def _setup_inbound(c: YamuxConnection, *, accept: bool) -> None:
    c.receive_data(_hdr(0, 1, 1, 2, 0), 0.0)  # peer opens stream 2
    if accept:
        c.accept(2)


def _state(name: str) -> YamuxConnection:
    c = YamuxConnection(True, YamuxConfig(accept_backlog=2, max_inbound_streams=3))
    steps = {
        "fresh": lambda: None,
        "inbound-pending": lambda: _setup_inbound(c, accept=False),
        "inbound-open": lambda: _setup_inbound(c, accept=True),
        "inbound-local-fin": lambda: (_setup_inbound(c, accept=True), c.send_eof(2)),
        "inbound-remote-fin": lambda: (_setup_inbound(c, accept=True),
                                       c.receive_data(_hdr(0, 1, 4, 2, 0), 0.0)),
        "inbound-reset-by-us": lambda: (_setup_inbound(c, accept=True), c.reset(2)),
        "inbound-with-data": lambda: (_setup_inbound(c, accept=True),
                                      c.receive_data(_hdr(0, 0, 0, 2, 5) + b"hello", 0.0)),
        "backlog-full": lambda: [c.receive_data(_hdr(0, 1, 1, s, 0), 0.0) for s in (2, 4, 6)],
        "outbound-unacked": lambda: c.open_stream(0.0),
        "outbound-acked": lambda: (c.open_stream(0.0), c.receive_data(_hdr(0, 1, 2, 1, 0), 0.0)),
        "outbound-local-fin": lambda: (c.open_stream(0.0), c.send_eof(1)),
        "outbound-remote-fin": lambda: (c.open_stream(0.0),
                                        c.receive_data(_hdr(0, 1, 2 | 4, 1, 0), 0.0)),
        "outbound-window-spent": lambda: (c.open_stream(0.0), c.send(1, bytes(256 * 1024))),
        "ping-outstanding": lambda: c.ping(0.0),
        "local-goaway": lambda: (_setup_inbound(c, accept=True), c.go_away(0)),
        "remote-goaway": lambda: (c.open_stream(0.0), c.receive_data(_hdr(0, 3, 0, 0, 0), 0.0)),
        "closed": lambda: (_setup_inbound(c, accept=True), c.close()),
        "mid-payload": lambda: (_setup_inbound(c, accept=True),
                                c.receive_data(_hdr(0, 0, 0, 2, 100) + b"x" * 10, 0.0)),
        "partial-header": lambda: (_setup_inbound(c, accept=True),
                                   c.receive_data(_hdr(0, 0, 0, 2, 3)[:7], 0.0)),
    }
    steps[name]()
    c.data_to_send()
    return c


STATES = ["fresh", "inbound-pending", "inbound-open", "inbound-local-fin", "inbound-remote-fin",
          "inbound-reset-by-us", "inbound-with-data", "backlog-full", "outbound-unacked",
          "outbound-acked", "outbound-local-fin", "outbound-remote-fin", "outbound-window-spent",
          "ping-outstanding", "local-goaway", "remote-goaway", "closed", "mid-payload",
          "partial-header"]
FLAG_SETS = list(range(16)) + [0xFFFF]
STREAM_IDS = [0, 1, 2, 3, 4, 0xFFFFFFFF]  # ours, the peer's, unknown of both parities, extremes
LENGTHS = [0, 1, 300_000, 0xFFFFFFFF]


def check_bookkeeping(c: YamuxConnection) -> None:
    inbound = [s for s in c._streams.values() if not s.outbound]
    assert c._inbound == len(inbound) <= c.config.max_inbound_streams
    assert c._unacked == sum(1 for s in c._streams.values() if s.outbound and not s.acked)
    assert c._pending_accept <= {s.id for s in inbound}
    assert len(c._pending_accept) <= c.config.accept_backlog
    for sid, stream in c._streams.items():
        assert stream.id == sid
        assert len(stream.recv_buf) <= stream.recv_window
        assert 0 <= stream.send_window <= 0xFFFFFFFF and stream.recv_credit >= 0
    # the unread total that holds window growth back is every stream's buffer, and only that
    assert c._unread == sum(len(s.recv_buf) for s in c._streams.values())
    assert len(c._inbuf) < 12 and c._payload_left >= 0


def hit(c: YamuxConnection, wire: bytes) -> bool:
    """Feed `wire`; True if it was accepted, False if it raised the (only allowed) typed error."""
    try:
        c.receive_data(wire, 0.5)
    except YamuxProtocolError:
        assert c.error is not None and c.closed
        assert c.data_to_send().endswith(GOAWAY_PROTOCOL_ERROR)
        try:  # a failed core stays failed, with the same typed error
            c.receive_data(_hdr(0, 2, 1, 0, 9), 0.6)
        except YamuxProtocolError:
            pass
        else:
            raise AssertionError("a failed core accepted more input")
        return False
    check_bookkeeping(c)
    return True


@pytest.mark.parametrize("state", STATES)
def test_every_state_times_every_frame(state):
    outcomes = {True: 0, False: 0}
    for version in (0, 1):
        for ftype in (0, 1, 2, 3, 4, 255):
            for flags in FLAG_SETS if version == 0 else [0, 1]:
                for sid in STREAM_IDS:
                    for length in LENGTHS:
                        payload = bytes(min(length, 8)) if ftype == 0 else b""
                        c = _state(state)
                        outcomes[hit(c, _hdr(version, ftype, flags, sid, length) + payload)] += 1
                        if c.error is None and not c.closed and not c._payload_left \
                                and not c._inbuf:  # framing intact: a ping still gets its pong
                            c.data_to_send()
                            c.receive_data(_hdr(0, 2, 1, 0, 7), 0.7)
                            assert c.data_to_send().endswith(_hdr(0, 2, 2, 0, 7))
    assert outcomes[True] > 0
    # a closed core ignores input; mid-payload the frame is payload, and after a partial header it
    # completes a header for unknown stream 0 or 1, whose payload is skipped
    assert outcomes[False] > 0 or state in ("closed", "mid-payload", "partial-header")


@pytest.mark.parametrize("state", STATES)
def test_every_state_times_every_command(state):
    """Local commands in every state raise at most LocalProtocolError and keep the books right."""
    from p2p.errors import LocalProtocolError

    commands = [
        lambda c, s: c.open_stream(0.1), lambda c, s: c.accept(s), lambda c, s: c.send(s, b"abc"),
        lambda c, s: c.read(s, 3, 0.1), lambda c, s: c.send_eof(s), lambda c, s: c.reset(s),
        lambda c, s: c.close_stream(s), lambda c, s: c.ping(0.1), lambda c, s: c.cancel_ping(0),
        lambda c, s: c.go_away(2), lambda c, s: c.close(),
    ]
    for cmd in commands:
        for sid in (1, 2, 3, 0):
            c = _state(state)
            try:
                cmd(c, sid)
            except LocalProtocolError:
                pass
            check_bookkeeping(c)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(STATES), st.lists(st.binary(max_size=40), max_size=6))
def test_every_state_times_random_bytes(state, chunks):
    c = _state(state)
    for chunk in chunks:
        if not hit(c, chunk):
            break


class HostileCore(RuleBasedStateMachine):
    """One core driven by our own commands and by a hostile peer's frames, interleaved: whatever
    sequence of states the pair reaches, only the typed errors escape and the books balance."""

    def __init__(self):
        super().__init__()
        self.c = YamuxConnection(True, SMALL)
        self.failed = False

    def _sid(self, data):
        known = sorted(self.c._streams)
        return data.draw(st.sampled_from(known + [1, 2, 3, 4, 0xFFFFFFFE]))

    @precondition(lambda self: not self.failed)
    @rule(frame=frames())
    def peer_frame(self, frame):
        self.failed = not hit(self.c, frame)

    @precondition(lambda self: not self.failed)
    @rule(data=st.data(), ftype=st.sampled_from([0, 1]), flags=st.integers(0, 15),
          length=st.sampled_from([0, 3, 700, 300_000]))
    def peer_frame_on_live_stream(self, data, ftype, flags, length):
        sid = self._sid(data)
        payload = bytes(min(length, 50)) if ftype == 0 else b""
        self.failed = not hit(self.c, _hdr(0, ftype, flags, sid, length) + payload)

    @rule(data=st.data(), op=st.sampled_from(
        ["open", "accept", "send", "read", "eof", "reset", "close", "ping", "goaway"]))
    def command(self, data, op):
        from p2p.errors import LocalProtocolError

        sid = self._sid(data)
        c = self.c
        try:
            {"open": lambda: c.open_stream(0.1), "accept": lambda: c.accept(sid),
             "send": lambda: c.send(sid, b"z" * 900), "read": lambda: c.read(sid, 500, 0.1),
             "eof": lambda: c.send_eof(sid), "reset": lambda: c.reset(sid),
             "close": lambda: c.close_stream(sid), "ping": lambda: c.ping(0.1),
             "goaway": lambda: c.go_away(0)}[op]()
        except LocalProtocolError:
            pass
        self.c.data_to_send()

    @invariant()
    def books_balance(self):
        check_bookkeeping(self.c)


TestHostileCore = HostileCore.TestCase
TestHostileCore.settings = settings(max_examples=80, stateful_step_count=40, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
