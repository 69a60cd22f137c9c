"""Property tests for the yamux core: any input only ever raises YamuxProtocolError, chunking does
not change the outcome, and two cores back to back keep their flow-control invariants."""

import struct

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


TestTwoCores = TwoCores.TestCase
TestTwoCores.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
