"""Declared stream capabilities (p2p.streams: ReadDeadlines, ResettableStream, NoWaitIO) instead
of getattr probes: each wrapper takes the fast path when the stream below declares it and the
plain path when it does not, on both backends."""

from __future__ import annotations

import anyio
import pytest
from memstream import MemoryByteStream, memory_stream_pair
from yamuxpair import yamux_pair

from p2p import negotiate

from p2p.mux.yamux_session import YamuxStream
from p2p.negotiate import LazyStream, NegotiationTimeout
from p2p.streams import BufferedStream, has_nowait_io, has_read_deadlines, is_resettable
from multistream_vectors import HEADER, PING

pytestmark = pytest.mark.anyio


class PlainStream:
    """Only the ByteStream words: no reset, no deadlines, nothing without waiting."""

    def __init__(self, inner: MemoryByteStream) -> None:
        self._inner = inner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_what_each_stream_declares() -> None:
    a, _b = memory_stream_pair()
    plain = PlainStream(a)
    assert not has_read_deadlines(plain) and not is_resettable(plain)
    assert not has_nowait_io(plain)
    assert is_resettable(a) and not has_read_deadlines(a)
    ys = YamuxStream.__new__(YamuxStream)  # the class is what is asked, not the instance
    assert has_read_deadlines(ys) and is_resettable(ys) and has_nowait_io(ys)
    for wrapper in (BufferedStream(plain), LazyStream(BufferedStream(plain), "/p")):
        assert has_read_deadlines(wrapper)  # a wrapper says False at run time if below has none
    # asked once per class: the same answer again, even for a stream changed after the first ask
    plain.set_read_deadline = lambda deadline: None  # type: ignore[attr-defined]
    assert not has_read_deadlines(plain)


async def test_read_deadline_reaches_a_yamux_stream_through_the_wrappers() -> None:
    with anyio.fail_after(10):
        async with yamux_pair() as (client, server):
            server.set_stream_handler(lambda ys: None)  # accepted, never answered
            st = await client.open_stream()
            buffered = BufferedStream(st)
            assert buffered.set_read_deadline(anyio.current_time() + 0.2) is True
            t0 = anyio.current_time()
            with pytest.raises(TimeoutError):
                await buffered.receive()
            assert 0.15 <= anyio.current_time() - t0 < 5
            assert buffered.set_read_deadline(None) is True  # lifted: a read waits again
            with anyio.move_on_after(0.3) as waited:
                await buffered.receive()
            assert waited.cancelled_caught


async def test_no_read_deadline_below_is_reported_not_faked() -> None:
    a, _b = memory_stream_pair()
    buffered = BufferedStream(PlainStream(a))
    assert buffered.set_read_deadline(anyio.current_time() + 0.1) is False
    with anyio.move_on_after(0.3) as waited:  # nothing bounds the read: the caller must
        await buffered.receive()
    assert waited.cancelled_caught


@pytest.mark.parametrize("below", ["yamux", "plain"])
async def test_lazy_dialer_times_out_either_way(below: str) -> None:
    """The lazy dialer bounds the wait for the listener's replies with the stream's deadline
    (a yamux stream) or with a cancel scope (a stream without deadlines): the same error."""
    a, b = memory_stream_pair()
    with anyio.fail_after(10):
        if below == "plain":
            lazy = LazyStream(BufferedStream(PlainStream(a)), "/ipfs/ping/1.0.0", timeout=0.2)
            assert lazy.set_read_deadline(None) is False
            with pytest.raises(NegotiationTimeout):
                await lazy.receive()
            return
        async with yamux_pair(a, b) as (client, server):
            server.set_stream_handler(lambda ys: None)  # the listener never answers
            lazy = LazyStream(BufferedStream(await client.open_stream()), "/ipfs/ping/1.0.0",
                              timeout=0.2)
            assert lazy.set_read_deadline(None) is True
            with pytest.raises(NegotiationTimeout):
                await lazy.receive()


async def test_reset_resets_when_it_can_and_closes_otherwise() -> None:
    a, _b = memory_stream_pair()
    await BufferedStream(a).reset()
    assert a.was_reset and a.closed
    c, _d = memory_stream_pair()
    await BufferedStream(PlainStream(c)).reset()
    assert c.closed and not c.was_reset


async def test_listener_without_nowait_io_negotiates_through_the_machine(monkeypatch) -> None:
    """A proposal already sent, on a stream that cannot hand it over without waiting: the
    fast path is skipped (no `receive_nowait` to ask) and the Listener machine answers."""
    built = []
    real_listener = negotiate.Listener

    def counting_listener(*args, **kwargs):
        built.append(1)
        return real_listener(*args, **kwargs)

    monkeypatch.setattr(negotiate, "Listener", counting_listener)
    a, b = memory_stream_pair()
    await a.send(HEADER + PING + b"data")
    with anyio.fail_after(10):
        stream = BufferedStream(PlainStream(b))
        proto = await negotiate.handle_protocol(stream, {"/ipfs/ping/1.0.0"}, timeout=5)
        assert proto == "/ipfs/ping/1.0.0"
        assert await stream.receive() == b"data"
    assert built == [1]
    assert b.sent == HEADER + PING


async def test_stream_clock_is_the_yamux_streams_own_and_anyios_otherwise(monkeypatch) -> None:
    """`current_time()` on a wrapper reads the clock of the stream below when it has one (yamux:
    no lookup of the running loop, a getpid on Python 3.11's asyncio) and anyio's clock
    otherwise; either way it is the clock read deadlines are set in."""
    import p2p.streams as streams_mod

    looked_up: list[float] = []
    real = streams_mod.current_time

    def counting() -> float:
        looked_up.append(real())
        return looked_up[-1]

    monkeypatch.setattr(streams_mod, "current_time", counting)
    a, b = memory_stream_pair()
    with anyio.fail_after(10):
        async with yamux_pair(a, b) as (client, _server):
            ys = await client.open_stream()
            for wrapper in (BufferedStream(ys), LazyStream(ys, "/p"),
                            LazyStream(BufferedStream(ys), "/p")):
                before = anyio.current_time()
                now = wrapper.current_time()
                assert before <= now <= anyio.current_time()
            assert looked_up == []
            plain = BufferedStream(PlainStream(a))
            before = anyio.current_time()
            assert before <= plain.current_time() <= anyio.current_time()
            assert len(looked_up) == 1
