"""The QUIC driver's two ways of waiting on asyncio, and what the loop-level one saves.

On asyncio an endpoint handles its datagrams in a reader callback registered once
(`READER_CALLBACKS`), and a connection's driver waits for its timers with one loop timer kept
across waits (`DRIVER_TIMERS`). Off, both wait as on trio: a task in anyio's `wait_readable`
(a reader added and removed per wait) and an anyio cancel scope per wait (a timer handle made
and cancelled per wait). Each combination must carry the same exchanges; the counts show the
loop-level paths do what they are for.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from test_quic_transport import dial, echo, pair, sent_sizes

from p2p.transport import quic as quic_mod

pytestmark = pytest.mark.anyio

REQUESTS = 40


async def _requests(n: int) -> tuple[dict[str, int], bool]:
    """`n` sequential 1 KiB echoes on new streams over one connection: the loop's reader
    registrations and timer handles made during them, and whether the dialler's driver armed a
    loop timer of its own during them (counted as it arms one: a look at `_timer` afterwards
    finds None when that timer fired while the test task waited, and the driver has not yet
    run again to arm the next; seen once in a loaded full-suite run)."""
    loop = asyncio.get_running_loop()
    counts = {"add_reader": 0, "call_at": 0}
    with anyio.fail_after(30):
        async with pair(handler=echo) as (server, client, go):
            conn = await dial(client, server, go)
            payload = b"r" * 1024
            for _ in range(3):  # warm-up: the handshake's leftovers acknowledged
                await _one(conn, payload)

            def counting(name: str) -> Any:
                original = getattr(loop, name)

                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    counts[name] += 1
                    return original(*args, **kwargs)
                return wrapper

            for name in counts:
                setattr(loop, name, counting(name))
            armed = 0
            real_arm = quic_mod.QuicConn._arm_timer

            def counting_arm(self: quic_mod.QuicConn, *args: Any) -> None:
                nonlocal armed
                armed += self is conn
                real_arm(self, *args)

            quic_mod.QuicConn._arm_timer = counting_arm  # type: ignore[method-assign]
            try:
                for _ in range(n):
                    await _one(conn, payload)
            finally:
                quic_mod.QuicConn._arm_timer = real_arm  # type: ignore[method-assign]
                for name in counts:
                    delattr(loop, name)
            await conn.close()
    return counts, armed >= n  # (each request moves its deadline: the keep-alive's at least)


async def _one(conn: quic_mod.QuicConn, payload: bytes) -> None:
    st = await conn.open_stream()
    await st.send(payload)
    await st.send_eof()
    got = b""
    while True:
        try:
            got += await st.receive()
        except anyio.EndOfStream:
            break
    assert got == payload
    await st.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("readers", [True, False])
@pytest.mark.parametrize("timers", [True, False])
async def test_each_wait_path_carries_requests(anyio_backend: str, readers: bool, timers: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quic_mod, "READER_CALLBACKS", readers)
    monkeypatch.setattr(quic_mod, "DRIVER_TIMERS", timers)
    counts, own_timer = await _requests(REQUESTS)
    # a reader registered per wait (anyio's wait_readable), or once per endpoint before these
    if readers:
        assert counts["add_reader"] == 0, counts
    else:
        assert counts["add_reader"] >= REQUESTS, counts
    # each wait of a driver in its own cancel scope makes a timer handle: two drivers here
    assert own_timer == timers
    if not timers:
        assert counts["call_at"] >= 2 * REQUESTS, counts


class _Handle:
    def __init__(self, callback: Any) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Loop:
    """What `_arm_timer` uses of a loop: call_at, recorded."""

    def __init__(self) -> None:
        self.armed: list[float] = []
        self.handles: list[_Handle] = []

    def call_at(self, when: float, callback: Any) -> _Handle:
        self.armed.append(when)
        self.handles.append(_Handle(callback))
        return self.handles[-1]


def test_driver_timer_is_rearmed_only_for_an_earlier_deadline() -> None:
    conn = object.__new__(quic_mod.QuicConn)
    conn._timer = None
    conn._timer_at = 0.0
    conn._wake = quic_mod.Flag()
    loop = _Loop()
    for deadline in (10.0, 12.0, 11.0, 10.0):  # none earlier than the armed one
        conn._arm_timer(loop, deadline)  # type: ignore[arg-type]
    assert loop.armed == [10.0]
    conn._arm_timer(loop, 9.0)  # type: ignore[arg-type]  # earlier: cancel, arm anew
    assert loop.armed == [10.0, 9.0]
    assert loop.handles[0].cancelled and not loop.handles[1].cancelled
    loop.handles[1].callback()  # it fires: the driver is woken, and the next wait arms again
    assert conn._wake.is_set() and conn._timer is None
    conn._arm_timer(loop, 15.0)  # type: ignore[arg-type]
    assert loop.armed == [10.0, 9.0, 15.0]


async def test_endpoint_uses_reader_callback_only_on_asyncio(anyio_backend: str) -> None:
    with anyio.fail_after(30):
        async with pair(handler=echo) as (server, client, go):
            conn = await dial(client, server, go)
            await _one(conn, b"x" * 100)
            endpoint = conn._endpoint
            assert (endpoint._reader_loop is not None) == (anyio_backend == "asyncio")
            await conn.close()
        # closed with its transport: no reader left on a closed socket
        assert endpoint._closed and endpoint._reader_loop is None
        assert endpoint._raw.fileno() == -1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_batch_wakes_the_driver_after_the_streams_it_started(anyio_backend: str) -> None:
    """Two datagrams the listener drains in one batch, each opening a stream whose handler
    answers at once: both answers leave with the ACK in one datagram. Woken per datagram, the
    driver ran between the first stream's handler and the second's: two datagrams. (asyncio
    runs woken tasks in the order they were woken; trio shuffles a batch of them on purpose, so
    there the driver may still run first.)"""

    async def answer(st: quic_mod.QuicStream) -> None:
        await st.send(await st.receive())

    with anyio.fail_after(30):
        async with pair(handler=answer) as (server, client, go):
            conn = await dial(client, server, go)
            await _one_each(conn, [b"warm-up"])  # the handshake's leftovers acknowledged
            inbound = server.conns[0]
            while inbound.quic._loss.bytes_in_flight:  # its answer acknowledged: nothing due
                await anyio.sleep(0.01)
            with sent_sizes(inbound._endpoint) as sent:
                await _one_each(conn, [b"first", b"second"])
            assert len(sent) == 1, sent


async def _one_each(conn: quic_mod.QuicConn, payloads: list[bytes]) -> None:
    """A stream per payload, each sent in a datagram of its own right away (so the listener
    finds them queued together), then every answer read."""
    streams = []
    for payload in payloads:
        st = await conn.open_stream()
        await st.send(payload)
        await conn._transmit()  # this stream's datagram leaves now, before the next is opened
        streams.append(st)
    for st, payload in zip(streams, payloads):
        assert await st.receive() == payload
        await st.aclose()
