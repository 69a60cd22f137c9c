"""Stateful properties of the multistream-select machines.

Every state of Dialer, Listener and ListRequester is paired with every kind of input (the messages
of the protocol, and hostile ones: bad varints, oversize prefixes, missing newlines, non-UTF-8,
partial messages); only the typed errors may escape, and a failed machine stays failed. A
RuleBasedStateMachine then runs a Dialer and a Listener back to back with arbitrary partial
deliveries and injected garbage, checking the outcome against a model of go's SelectOneOf/Negotiate.
Wire bytes are go-multistream's.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import pytest

from p2p.errors import LocalProtocolError, NegotiationFailed
from p2p.multistream import (
    Dialer,
    Listener,
    ListRequester,
    MultistreamError,
    ProtocolAgreed,
    ProtocolRejected,
    State,
    TooManyRounds,
)
from multistream_vectors import HEADER, LS, NA, NOISE, SIMOPEN, YAMUX

H = bytes.fromhex

INPUTS: dict[str, bytes] = {
    "header": HEADER,
    "yamux": YAMUX,
    "noise": NOISE,
    "na": NA,
    "ls": LS,
    "simopen": SIMOPEN,
    "yamux+app-data": YAMUX + b"\x00\x01app",
    "empty-message": b"\x00",
    "no-newline": b"\x03abc",
    "not-utf8": b"\x03\xff\xfe\n",
    "oversize-prefix": H("8108"),  # 1025
    "huge-prefix": H("ffffffffffffffff7f"),
    "non-minimal-varint": H("8000"),
    "ten-byte-varint": H("80808080808080808001"),
    "partial-message": YAMUX[:5],
    "header-partial": HEADER[:1],
    "max-length-message": H("8008") + b"a" * 1023 + b"\n",  # exactly 1024: allowed
    "garbage": b"GET / HTTP/1.1\r\n" + b"x" * 56,  # 'G' reads as length 71: no newline there
}


def dialer_in(state: str) -> Dialer:
    d = Dialer(["/yamux/1.0.0", "/noise"])
    if state in ("await-reply", "second-proposal", "done", "error"):
        d.receive_data(HEADER)
    if state == "second-proposal":
        d.receive_data(NA)
    if state == "done":
        d.receive_data(YAMUX)
    if state == "error":
        with pytest.raises(MultistreamError):
            d.receive_data(LS)
    d.data_to_send()
    return d


def listener_in(state: str) -> Listener:
    lst = Listener(["/yamux/1.0.0"], max_na_rounds=2)
    if state in ("await-proposal", "last-round", "done", "error"):
        lst.receive_data(HEADER)
    if state == "last-round":
        lst.receive_data(NOISE + LS)
    if state == "done":
        lst.receive_data(YAMUX)
    if state == "error":
        with pytest.raises(MultistreamError):
            lst.receive_data(b"\x00")
    lst.data_to_send()
    return lst


def requester_in(state: str) -> ListRequester:
    r = ListRequester()
    if state == "await-reply":
        r.receive_data(HEADER)
    r.data_to_send()
    return r


MACHINES = ([("dialer", s, dialer_in) for s in ("await-header", "await-reply", "second-proposal",
                                                  "done", "error")]
            + [("listener", s, listener_in) for s in ("await-header", "await-proposal",
                                                      "last-round", "done", "error")]
            + [("requester", s, requester_in) for s in ("await-header", "await-reply")])
TYPED = (MultistreamError, NegotiationFailed)


def outcome(machine, data: bytes, chunk: int | None):
    """('events', [...], leftover) | ('typed', name) | ('local', name); nothing else may escape.

    Once the machine is done, the rest of `data` belongs to the next layer (the driver's unread),
    so it is added to the leftover instead of being fed.
    """
    events = []
    step = chunk or max(len(data), 1)
    was_done = machine.state is State.DONE
    try:
        for i in range(0, len(data), step):
            if machine.state is State.DONE and not was_done:
                return "events", [type(e).__name__ for e in events], machine.leftover + data[i:]
            events += machine.receive_data(data[i : i + step])
    except TYPED as exc:
        assert machine.state is State.ERROR
        with pytest.raises(LocalProtocolError):  # a failed machine stays failed
            machine.receive_data(HEADER)
        return "typed", type(exc).__name__
    except LocalProtocolError as exc:
        return "local", type(exc).__name__
    return "events", [type(e).__name__ for e in events], machine.leftover


@pytest.mark.parametrize("kind,state,make", MACHINES, ids=[f"{k}-{s}" for k, s, _ in MACHINES])
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_state_times_every_input(kind, state, make, name):
    data = INPUTS[name]
    whole = outcome(make(state), data, None)
    assert outcome(make(state), data, 1) == whole  # byte by byte changes nothing
    if state in ("done", "error"):
        # misuse by our own code, not the peer's fault: the driver must never feed a finished machine
        assert whole[0] == "local"
        return
    assert whole[0] in ("events", "typed")
    if (kind, state, name) == ("requester", "await-reply", "oversize-prefix"):
        assert whole == ("events", [], b"")  # an ls reply may be 16 KiB: waits for the body
    elif name in ("oversize-prefix", "huge-prefix", "non-minimal-varint", "ten-byte-varint",
                "empty-message", "no-newline", "not-utf8", "garbage"):
        assert whole[0] == "typed", whole  # hostile framing is refused in every live state
    if name in ("partial-message", "header-partial"):
        assert whole == ("events", [], b"")  # waits for more, consumes nothing it cannot use


def test_listener_state_table_spot_checks():
    """A few cells of the table with their exact output bytes (as go writes them)."""
    lst = listener_in("await-proposal")
    assert lst.receive_data(SIMOPEN) == [ProtocolRejected("/libp2p/simultaneous-connect")]
    assert lst.data_to_send() == NA  # never echoes simultaneous-connect
    lst = listener_in("last-round")
    with pytest.raises(MultistreamError):
        lst.receive_data(NOISE)  # third rejected proposal is past max_na_rounds=2
    lst = listener_in("await-proposal")
    assert lst.receive_data(YAMUX + b"rest") == [ProtocolAgreed("/yamux/1.0.0", b"rest")]
    assert lst.data_to_send() == YAMUX


# ---- dialer and listener back to back ---------------------------------------------------------

PROTOS = ["/yamux/1.0.0", "/mplex/6.7.0", "/noise", "/tls/1.0.0", "/a", "/b/" + "x" * 40]
HOSTILE = st.sampled_from([v for k, v in INPUTS.items()
                           if k not in ("partial-message", "header-partial")]) | st.binary(max_size=30)


class BackToBack(RuleBasedStateMachine):
    """Dialer <-> Listener with arbitrary partial deliveries; garbage may be injected either way."""

    @initialize(wanted=st.lists(st.sampled_from(PROTOS), min_size=1, max_size=4, unique=True),
                supported=st.sets(st.sampled_from(PROTOS), max_size=4),
                rounds=st.integers(0, 4))
    def setup(self, wanted, supported, rounds):
        self.wanted, self.supported, self.rounds = wanted, supported, rounds
        self.d = Dialer(wanted)
        self.lst = Listener(supported, max_na_rounds=rounds)
        self.to_l = bytearray(self.d.data_to_send())
        self.to_d = bytearray(self.lst.data_to_send())
        self.corrupted = False
        self.failures: list[BaseException] = []

    def _feed(self, machine, pipe: bytearray, n: int, out: bytearray) -> None:
        if machine.state in (State.DONE, State.ERROR) or not pipe:
            return
        chunk, pipe[:] = bytes(pipe[:n]), pipe[n:]
        try:
            machine.receive_data(chunk)
        except TYPED as exc:
            self.failures.append(exc)
        out += machine.data_to_send()

    @rule(n=st.integers(1, 40))
    def deliver_to_listener(self, n):
        self._feed(self.lst, self.to_l, n, self.to_d)

    @rule(n=st.integers(1, 40))
    def deliver_to_dialer(self, n):
        self._feed(self.d, self.to_d, n, self.to_l)

    @precondition(lambda self: not self.corrupted)
    @rule(junk=HOSTILE, towards_listener=st.booleans())
    def inject(self, junk, towards_listener):
        self.corrupted = True
        (self.to_l if towards_listener else self.to_d)[:] += junk

    @invariant()
    def consistent(self):
        for m in (self.d, self.lst):
            assert m.state in State
            if m.state is State.DONE:
                assert m.agreed is not None
        if self.d.done and self.lst.done:
            assert self.d.agreed == self.lst.agreed
        if self.corrupted:
            return
        # honest peers: the model is go's: first wanted protocol the listener supports, within
        # the listener's na budget; otherwise NegotiationFailed/TooManyRounds, never anything else
        common = [p for p in self.wanted if p in self.supported]
        expected = common[0] if common and self.wanted.index(common[0]) <= self.rounds else None
        if self.d.done:
            assert self.d.agreed == expected
        if self.lst.done:
            assert self.lst.agreed == expected
        if expected is not None:
            assert not self.failures, self.failures
        for exc in self.failures:  # no common protocol in budget: only these two ways to fail
            assert isinstance(exc, (NegotiationFailed, TooManyRounds)), exc

    def teardown(self):
        # drain everything: the run must end, agreed or with a typed failure on some side
        # (progress is "some machine was fed", not "the pipes changed length": a new proposal can
        # be exactly as long as the bytes just consumed)
        for _ in range(200):
            moved = False
            for machine, pipe, out in ((self.lst, self.to_l, self.to_d), (self.d, self.to_d, self.to_l)):
                if pipe and machine.state not in (State.DONE, State.ERROR):
                    self._feed(machine, pipe, 1 << 16, out)
                    moved = True
            if not moved:
                break
        if not self.corrupted:
            ended = (self.d.done and self.lst.done) or bool(self.failures)
            assert ended, (self.d.state, self.lst.state)


TestBackToBack = BackToBack.TestCase
TestBackToBack.settings = settings(max_examples=150, stateful_step_count=25, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=200, deadline=None)
@given(st.lists(HOSTILE, min_size=1, max_size=5), st.sampled_from(MACHINES[:3] + MACHINES[5:8]))
def test_sequences_of_hostile_input_only_raise_typed_errors(inputs, machine):
    _, state, make = machine
    m = make(state)
    for data in inputs:
        if outcome(m, data, None)[0] != "events" or m.done:
            break
