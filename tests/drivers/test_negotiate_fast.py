"""The listener's fast path (`handle_protocol` answering from bytes already buffered on a yamux
stream, without a machine or a wait) and `YamuxStream.receive_nowait`, on both backends."""

from __future__ import annotations

import anyio
import pytest
from memstream import memory_stream_pair
from readers import read_all
from yamuxpair import yamux_pair

from p2p import negotiate
from p2p.errors import NegotiationFailed
from p2p.multistream import UnexpectedEOF
from p2p.mux.yamux_session import YamuxStream
from p2p.streams import BufferedStream
from multistream_vectors import HEADER, NA, PING

pytestmark = pytest.mark.anyio


async def _serve(first: bytes, later: bytes = b"") -> tuple[str, bytes, bytes]:
    """Client sends `first` (+FIN unless `later`), the server negotiates in its stream handler."""
    result: dict[str, object] = {}
    done = anyio.Event()

    async def serve(ys) -> None:
        stream = BufferedStream(ys)
        result["proto"] = await negotiate.handle_protocol(stream, {"/ipfs/ping/1.0.0"}, timeout=5)
        result["app"] = await read_all(stream)
        await stream.send(b"pong")
        await stream.aclose()
        done.set()

    with anyio.fail_after(10):
        async with yamux_pair() as (client, server), anyio.create_task_group() as tg:
            server.set_stream_handler(lambda ys: tg.start_soon(serve, ys))
            st = await client.open_stream()
            await st.send(first)
            if later:
                got = await st.receive(len(HEADER))  # the listener's header: it is waiting
                assert got == HEADER
                await st.send(later)
            await st.send_eof()
            reply = await read_all(st)
            await done.wait()
    return str(result["proto"]), bytes(result["app"]), reply  # type: ignore[arg-type]


async def test_fast_path_answers_without_a_listener_machine(monkeypatch) -> None:
    def no_machine(*args, **kwargs):
        raise AssertionError("the fast path must not build a Listener")

    monkeypatch.setattr(negotiate, "Listener", no_machine)
    proto, app, reply = await _serve(HEADER + PING + b"ping-data")
    assert proto == "/ipfs/ping/1.0.0"
    assert app == b"ping-data"
    assert reply == HEADER + PING + b"pong"


async def test_na_then_supported_goes_through_the_machine() -> None:
    bogus = bytes.fromhex("07 2f6e6f697365 0a")  # /noise: not supported -> na, then ping
    proto, app, reply = await _serve(HEADER + bogus + PING + b"x")
    assert (proto, app) == ("/ipfs/ping/1.0.0", b"x")
    assert reply == HEADER + NA + PING + b"pong"


async def test_header_alone_first_then_proposal_waits_in_the_machine() -> None:
    proto, app, reply = await _serve(HEADER, later=PING + b"late")
    assert (proto, app) == ("/ipfs/ping/1.0.0", b"late")
    assert reply == PING + b"pong"  # the header was read before the proposal went out


async def test_receive_nowait_empty_buffered_and_after_reset() -> None:
    with anyio.fail_after(10):
        async with yamux_pair() as (client, server):
            st = await client.open_stream()
            await st.send(b"hello")
            peer = await server.accept_stream()
            assert await peer.receive(5) == b"hello"
            assert peer.receive_nowait() == b""  # nothing buffered: no wait, no bytes
            await st.send(b"abc")
            await st.send(b"def")
            got = await peer.receive(3)  # wakes once bytes are there
            rest = got + peer.receive_nowait(100)
            while len(rest) < 6:
                rest += await peer.receive(100)
            assert rest == b"abcdef"
            await st.send(b"zz")
            assert await peer.receive(1) == b"z"
            await peer.reset()
            assert peer.receive_nowait() == b""  # reset: receive() is the one that raises


async def _lazy_against(reply_parts: list[bytes]):
    """A LazyStream whose listener answers with `reply_parts`, one write each, then FIN."""
    a, b = memory_stream_pair()
    lazy = negotiate.LazyStream(BufferedStream(a), "/ipfs/ping/1.0.0", timeout=5)
    await lazy.send(b"req")
    listener = BufferedStream(b)
    assert await listener.receive_exactly(len(HEADER + PING + b"req")) == HEADER + PING + b"req"
    for part in reply_parts:
        await listener.send(part)
    await listener.send_eof()
    return lazy


async def test_lazy_reply_byte_by_byte_recognised_without_a_dialer_machine(monkeypatch) -> None:
    def no_machine(*args, **kwargs):
        raise AssertionError("the expected reply must not need a Dialer")

    monkeypatch.setattr(negotiate, "Dialer", no_machine)
    with anyio.fail_after(10):
        reply = HEADER + PING + b"resp"
        lazy = await _lazy_against([reply[i:i + 1] for i in range(len(reply))])
        assert await read_all(lazy) == b"resp"


async def test_lazy_reply_diverging_after_the_header_goes_to_the_machine() -> None:
    with anyio.fail_after(10):
        lazy = await _lazy_against([HEADER, NA])
        with pytest.raises(NegotiationFailed):
            await lazy.receive()
        with pytest.raises(NegotiationFailed):  # and stays failed
            await lazy.receive()


async def test_send_nowait_queues_without_waiting_and_refuses_when_not_writable() -> None:
    with anyio.fail_after(10):
        async with yamux_pair() as (client, server):
            st = await client.open_stream()
            assert st.send_nowait(b"queued") == 6
            await st.send(b"+sent")
            peer = await server.accept_stream()
            got = b""
            while len(got) < 11:
                got += await peer.receive(100)
            assert got == b"queued+sent"
            await st.send_eof()
            assert st.send_nowait(b"late") == 0  # after FIN: send() is the one that raises
            await peer.reset()
            assert peer.send_nowait(b"x") == 0


async def test_lazy_reply_wait_uses_the_stream_read_deadline_and_the_callers() -> None:
    """Over yamux the lazy dialer bounds its wait for the replies with the stream's read deadline
    (no cancel scope): its own timeout, or the application's deadline when that comes first; the
    application's deadline is back in place afterwards. When the application's deadline passes,
    the read fails as that deadline's (a plain TimeoutError, not a negotiation timeout naming the
    30 s that never passed), and so does every later read, as go's lazy conn keeps its error."""
    with anyio.fail_after(10):
        async with yamux_pair() as (client, server):
            ys = await client.open_stream()
            lazy = negotiate.LazyStream(BufferedStream(ys), "/silent/1.0.0", timeout=0.2)
            await lazy.send(b"hello")
            await server.accept_stream()  # accepted, never answered
            start = anyio.current_time()
            with pytest.raises(negotiate.NegotiationTimeout):
                await lazy.receive(10)
            assert 0.2 <= anyio.current_time() - start < 2
            assert ys._read_deadline is None

            ys2 = await client.open_stream()
            lazy2 = negotiate.LazyStream(BufferedStream(ys2), "/silent/1.0.0", timeout=30)
            user_deadline = anyio.current_time() + 0.1
            assert lazy2.set_read_deadline(user_deadline)
            await lazy2.send(b"hello")
            await server.accept_stream()
            start = anyio.current_time()
            with pytest.raises(TimeoutError) as info:
                await lazy2.receive(10)
            assert not isinstance(info.value, negotiate.NegotiationTimeout), info.value
            assert anyio.current_time() - start < 2  # the application's 0.1 s, not the 30 s
            assert ys2._read_deadline == user_deadline
            with pytest.raises(TimeoutError) as again:
                await lazy2.receive(10)
            assert again.value is info.value


async def test_lazy_reply_wait_is_the_applications_deadline_when_it_set_one(
        monkeypatch) -> None:
    """As go's lazy conn: once the application set a read deadline, that deadline alone bounds
    the wait for the replies, also when it is later than the lazy dialer's own timeout (which
    bounds only a stream without one): the stream's deadline is never changed, and the wait
    fails as the application's TimeoutError, not as a NegotiationTimeout."""
    with anyio.fail_after(10):
        async with yamux_pair() as (client, server):
            ys = await client.open_stream()
            lazy = negotiate.LazyStream(BufferedStream(ys), "/silent/1.0.0", timeout=0.05)
            set_to: list[float | None] = []
            real_set = YamuxStream.set_read_deadline

            def recording_set(self: YamuxStream, deadline: float | None) -> None:
                set_to.append(deadline)
                real_set(self, deadline)

            monkeypatch.setattr(YamuxStream, "set_read_deadline", recording_set)
            user_deadline = anyio.current_time() + 0.4
            assert lazy.set_read_deadline(user_deadline)
            await lazy.send(b"hello")
            await server.accept_stream()  # accepted, never answered
            with pytest.raises(TimeoutError) as info:
                await lazy.receive(10)
            assert not isinstance(info.value, negotiate.NegotiationTimeout), info.value
            assert anyio.current_time() >= user_deadline  # not cut at the lazy 0.05 s
            assert set_to == [user_deadline]  # the application's, and nothing else


async def test_reads_finding_nothing_do_not_read_the_clock() -> None:
    """A yamux read that finds nothing buffered (before the bytes arrive, and at EOF) neither
    reads the session's clock nor calls the core: a sequential request's dialer makes two."""
    with anyio.fail_after(10):
        async with yamux_pair() as (client, server):
            st = await client.open_stream()
            await st.send(b"hello")
            await st.send_eof()
            peer = await server.accept_stream()
            assert await read_all(peer) == b"hello"
            reads: list[float] = []
            clock = server._clock

            def counting_clock() -> float:
                reads.append(clock())
                return reads[-1]

            server._clock = counting_clock
            assert peer.receive_nowait() == b""
            with pytest.raises(anyio.EndOfStream):
                await peer.receive()
            assert reads == []
            server._clock = clock


async def test_lazy_dialer_over_yamux_reads_the_streams_clock_and_takes_no_lock(
        monkeypatch) -> None:
    """The lazy dialer's reply deadline comes from the yamux stream's own clock (no lookup of
    the running loop, a getpid on Python 3.11's asyncio), and a lone first reader makes no
    waiting flag; the concurrent case is tests/drivers/test_negotiate.py's."""

    def no_lookup() -> float:
        raise AssertionError("the async library's clock was asked")

    monkeypatch.setattr(negotiate, "current_time", no_lookup)
    with anyio.fail_after(10):
        async with yamux_pair() as (client, server):
            ys = await client.open_stream()
            lazy = negotiate.LazyStream(ys, "/ipfs/ping/1.0.0", timeout=5)
            await lazy.send(b"ping")
            await lazy.send_eof()
            peer = BufferedStream(await server.accept_stream())
            assert await negotiate.handle_protocol(peer, {"/ipfs/ping/1.0.0"}) == "/ipfs/ping/1.0.0"
            assert await read_all(peer) == b"ping"
            await peer.send(b"pong")
            await peer.aclose()
            assert lazy.negotiating
            assert await lazy.receive_until_eof(100) == b"pong"
            assert not lazy.negotiating and lazy._checked is None
            assert ys._read_deadline is None  # the reply deadline was lifted again


@pytest.mark.parametrize("parts, outcome", [
    ([HEADER + PING + b"resp"], b"resp"),                       # whole, with the answer
    ([HEADER[:1], HEADER[1:], PING[:3], PING[3:] + b"resp"], b"resp"),
    ([HEADER, PING, b"resp"], b"resp"),
    ([HEADER, NA], NegotiationFailed),
    ([HEADER + NA], NegotiationFailed),
    ([], "eof"),
    ([HEADER], "eof"),
])
async def test_lazy_replies_under_the_applications_deadline_in_any_cut(parts, outcome) -> None:
    """With the application's read deadline set, the first read checks the replies itself:
    whole, cut anywhere, refused (`na`), or ended before them, as the machine would say."""
    with anyio.fail_after(40):
        async with yamux_pair() as (client, server):
            ys = await client.open_stream()
            lazy = negotiate.LazyStream(BufferedStream(ys), "/ipfs/ping/1.0.0", timeout=5)
            assert lazy.set_read_deadline(anyio.current_time() + 30)
            await lazy.send(b"req")
            peer = await server.accept_stream()
            got = b""
            while len(got) < len(HEADER + PING + b"req"):
                got += await peer.receive()
            assert got == HEADER + PING + b"req"
            for part in parts:
                await peer.send(part)
                await anyio.wait_all_tasks_blocked()
            await peer.send_eof()
            if outcome == "eof":
                with pytest.raises(UnexpectedEOF):
                    await lazy.receive()
            elif outcome is NegotiationFailed:
                with pytest.raises(NegotiationFailed):
                    await lazy.receive()
                with pytest.raises(NegotiationFailed):  # and stays failed
                    await lazy.receive()
            else:
                assert await read_all(lazy) == outcome


@pytest.mark.parametrize("first_read", ["small", "after_unread"])
async def test_lazy_answer_with_the_replies_keeps_its_order(first_read: str) -> None:
    """The answer that came with the replies is the first read's own when it fits; a smaller
    read takes its start and leaves the rest, and bytes pushed back before the first read
    still come first."""
    with anyio.fail_after(10):
        async with yamux_pair() as (client, server):
            lazy = negotiate.LazyStream(BufferedStream(await client.open_stream()),
                                        "/ipfs/ping/1.0.0", timeout=5)
            assert lazy.set_read_deadline(anyio.current_time() + 5)
            await lazy.send(b"req")
            peer = await server.accept_stream()
            got = b""
            while len(got) < len(HEADER + PING + b"req"):
                got += await peer.receive()
            await peer.send(HEADER + PING + b"0123456789")
            await peer.send_eof()
            if first_read == "small":
                assert await lazy.receive(4) == b"0123"
                assert await read_all(lazy) == b"456789"
            else:
                lazy.unread(b"pre:")
                assert await lazy.receive_until_eof(100) == b"pre:0123456789"
