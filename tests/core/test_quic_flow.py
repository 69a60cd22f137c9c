"""Receive credit as quic-go gives it (p2p.transport.quic_flow): for what was read, capped."""

from __future__ import annotations

from hypothesis import given, strategies as st

from p2p.transport.quic_flow import ReceiveWindow

KIB = 1024


def test_no_update_until_a_quarter_is_read() -> None:
    w = ReceiveWindow(512 * KIB, 10 * 1024 * KIB)
    assert w.update(0.0, 0.01) is None
    w.add_consumed(128 * KIB - 1, 0.0)
    assert w.update(0.0, 0.01) is None
    w.add_consumed(1, 0.0)
    assert w.update(10.0, 0.01) == 128 * KIB + 512 * KIB  # slow reader: no growth
    assert w.window == 512 * KIB


def test_fast_reader_doubles_up_to_the_cap() -> None:
    w = ReceiveWindow(512 * KIB, 2048 * KIB)
    now, rtt = 0.0, 0.1
    sizes = []
    for _ in range(20):
        w.add_consumed(w.limit - w.consumed, now)  # reads everything at once, within one RTT
        w.update(now, rtt)
        sizes.append(w.window)
        now += 0.001
    assert sizes[-1] == 2048 * KIB and max(sizes) == 2048 * KIB
    assert 1024 * KIB in sizes  # it went through the doubling steps


def test_connection_window_follows_streams() -> None:
    conn = ReceiveWindow(768 * KIB, 15 * 1024 * KIB)
    conn.ensure_window(3 * 1024 * KIB, 1.0)
    assert conn.window == 3 * 1024 * KIB
    conn.ensure_window(100 * 1024 * KIB, 1.0)
    assert conn.window == 15 * 1024 * KIB


@given(st.lists(st.tuples(st.integers(0, 300 * KIB), st.floats(0, 1)), max_size=60))
def test_limit_never_exceeds_consumed_plus_cap(steps: list[tuple[int, float]]) -> None:
    w = ReceiveWindow(64 * KIB, 256 * KIB)
    now = 0.0
    last = w.limit
    for n, dt in steps:
        now += dt
        n = min(n, w.limit - w.consumed)  # a peer can never send past the limit
        w.add_consumed(n, now)
        new = w.update(now, 0.05)
        if new is not None:
            assert new > last
            last = new
        assert w.limit <= w.consumed + w.max_window
        assert w.limit - w.consumed >= 0


@given(st.lists(st.tuples(st.integers(0, 300 * KIB), st.floats(0, 1)), max_size=60))
def test_due_is_exactly_when_update_moves(steps: list[tuple[int, float]]) -> None:
    """`due()` is the cheap check the per-packet hook makes before `update` (same answer)."""
    w = ReceiveWindow(64 * KIB, 256 * KIB)
    now = 0.0
    for n, dt in steps:
        now += dt
        w.add_consumed(min(n, w.limit - w.consumed), now)
        due = w.due()
        assert (w.update(now, 0.05) is not None) == due
