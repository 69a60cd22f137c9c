"""Fair admission (p2p/admission.py ConnectionLimits), sans-IO: when every pending-handshake slot
is taken, a new address still gets one, evicting a handshake of the address holding the most
(its oldest without progress, else its oldest), and the evicted ticket's on_evict is called."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.admission import ConnectionLimits
from p2p.config import HostConfig


def _limits(pending: int = 6, per_ip: int = 3, conns: int = 100, conns_per_ip: int = 50):
    cfg = HostConfig(max_pending_inbound=pending, max_pending_inbound_per_ip=per_ip,
                     max_connections=conns, max_connections_per_ip=conns_per_ip)
    return ConnectionLimits(cfg, lambda: 0)


def _admit(lim: ConnectionLimits, ip: str, evicted: list):
    ticket = lim.try_admit(ip)
    if ticket is not None:
        ticket.on_evict = lambda t=ticket: evicted.append(t)
    return ticket


def test_new_address_evicts_the_oldest_idle_handshake_of_the_biggest_holder() -> None:
    lim, evicted = _limits(), []
    a = [_admit(lim, "10.0.0.1", evicted) for _ in range(3)]
    b = [_admit(lim, "10.0.0.2", evicted) for _ in range(2)]
    c = _admit(lim, "10.0.0.3", evicted)
    assert all(a + b + [c]) and lim.pending == 6
    a[0].progress()  # a's oldest made progress: its second is the one to go
    new = _admit(lim, "10.0.0.9", evicted)
    assert new is not None and evicted == [a[1]] and a[1].evicted and not a[1].pending
    assert lim.pending == 6 and lim.pending_per_ip == {"10.0.0.1": 2, "10.0.0.2": 2,
                                                       "10.0.0.3": 1, "10.0.0.9": 1}
    assert lim.evictions == 1
    # The evicted connection's socket closes: its transport releases it (idempotently).
    a[1].handshake_done()
    a[1].release()
    a[1].release()
    assert lim.conns_per_ip["10.0.0.1"] == 2


def test_ties_take_the_oldest_idle_across_the_biggest_holders() -> None:
    lim, evicted = _limits(pending=4, per_ip=2), []
    a1 = _admit(lim, "a", evicted)
    b1 = _admit(lim, "b", evicted)
    a2 = _admit(lim, "a", evicted)
    b2 = _admit(lim, "b", evicted)
    a1.progress()
    assert _admit(lim, "n1", evicted) is not None
    assert evicted == [b1]  # a1 progressed; b1 is older than a2
    assert _admit(lim, "n2", evicted) is not None
    assert evicted == [b1, a2]  # a now holds the most (2): its idle one goes
    for t in (a1, b2):
        assert t.pending and not t.evicted


def test_all_progressed_then_the_oldest_goes() -> None:
    lim, evicted = _limits(pending=2, per_ip=2), []
    t1, t2 = _admit(lim, "a", evicted), _admit(lim, "a", evicted)
    t1.progress()
    t2.progress()
    assert _admit(lim, "b", evicted) is not None and evicted == [t1]


def test_an_address_holding_some_evicts_only_from_one_holding_two_more() -> None:
    lim, evicted = _limits(pending=4, per_ip=3), []
    for _ in range(3):
        _admit(lim, "a", evicted)
    _admit(lim, "b", evicted)
    assert _admit(lim, "b", evicted) is not None  # a holds 3 >= 1 + 2: b takes one
    assert len(evicted) == 1 and lim.pending_per_ip == {"a": 2, "b": 2}
    assert _admit(lim, "b", evicted) is None  # a holds 2 < 2 + 2: no gain in fairness
    assert _admit(lim, "a", evicted) is None  # nor for a
    assert _admit(lim, "c", evicted) is not None  # a new address always gets a slot
    assert len(evicted) == 2


def test_address_caps_still_refuse() -> None:
    lim, evicted = _limits(pending=2, per_ip=1, conns_per_ip=1), []
    t = _admit(lim, "a", evicted)
    assert _admit(lim, "a", evicted) is None  # its one handshake slot is taken
    t.handshake_done()
    assert _admit(lim, "a", evicted) is None  # its one connection is up
    host_full = ConnectionLimits(HostConfig(max_connections=1), lambda: 1)
    assert host_full.try_admit("b") is None and evicted == []


def test_without_an_evict_callback_the_slot_is_still_freed() -> None:
    lim = _limits(pending=1, per_ip=1)
    old = lim.try_admit("a")
    new = lim.try_admit("b")
    assert new is not None and old.evicted and lim.pending == 1


_OPS = st.lists(st.tuples(st.sampled_from(["admit", "progress", "done", "release"]),
                          st.integers(0, 7)), max_size=120)


@settings(max_examples=150, deadline=None)
@given(_OPS)
def test_invariants_under_any_sequence(ops) -> None:
    cfg = HostConfig(max_pending_inbound=5, max_pending_inbound_per_ip=3, max_connections=1000,
                     max_connections_per_ip=1000)
    lim = ConnectionLimits(cfg, lambda: 0)
    tickets = []
    for op, n in ops:
        if op == "admit":
            ip = f"ip{n}"
            before = lim.pending_per_ip.get(ip, 0)
            most = max(lim.pending_per_ip.values(), default=0)
            ticket = lim.try_admit(ip)
            if before == 0:
                assert ticket is not None  # a new address always gets a slot
            if ticket is None:
                assert before >= 3 or (lim.pending == 5 and most < before + 2)
            else:
                tickets.append(ticket)
        elif tickets:
            t = tickets[n % len(tickets)]
            getattr(t, {"progress": "progress", "done": "handshake_done", "release": "release"}[op])()
        per_ip = lim.pending_per_ip
        live = [t for t in tickets if t.pending]
        assert lim.pending == len(live) == sum(per_ip.values()) <= 5
        assert all(v <= 3 for v in per_ip.values())
    for t in tickets:
        t.release()
    assert (lim.pending, lim.pending_per_ip, lim.conns_per_ip) == (0, {}, {})
