"""YamuxSession/YamuxStream on both anyio backends, over an in-memory pair and loopback TCP."""

import hashlib
import struct
from contextlib import asynccontextmanager

import anyio
import pytest

from p2p.errors import ConnectionClosed, StreamReset
from p2p.mux.yamux_session import YamuxConfig, YamuxProtocolError, YamuxSession
from p2p.transport.aio_stream import adopt
from memstream import memory_stream_pair
from readers import read_all
from tcppair import tcp_pair
from yamuxpair import yamux_pair

pytestmark = pytest.mark.anyio

WINDOW = 262144
PING0 = bytes.fromhex("000200010000000000000000")
GOAWAY_PROTO = bytes.fromhex("000300000000000000000001")


def frame(ftype: int, flags: int, sid: int, length: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBHII", 0, ftype, flags, sid, length) + payload


@asynccontextmanager
async def conn_pair(kind: str):
    if kind == "tcp":
        async with tcp_pair() as pair:
            yield pair
    else:
        yield memory_stream_pair()


@asynccontextmanager
async def sessions(kind: str = "memory", config: YamuxConfig = YamuxConfig()):
    async with conn_pair(kind) as (a, b), yamux_pair(a, b, config=config) as pair:
        yield pair


class RawPeer:
    """The far end of a memory pair, speaking raw yamux frames."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = bytearray()

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += await self.conn.receive()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def frame(self) -> tuple[int, int, int, int, bytes]:
        v, t, f, s, n = struct.unpack(">BBHII", await self.read_exact(12))
        assert v == 0
        return t, f, s, n, (await self.read_exact(n) if t == 0 else b"")

    async def frames_until(self, wanted) -> list:
        seen = []
        while True:
            fr = await self.frame()
            seen.append(fr)
            if wanted(fr):
                return seen


@asynccontextmanager
async def raw_session(is_client: bool = False, config: YamuxConfig = YamuxConfig()):
    a, b = memory_stream_pair()
    async with YamuxSession(a, is_client=is_client, config=config) as session:
        yield session, RawPeer(b)


# ---- basic traffic -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["memory", "tcp"])
async def test_open_accept_and_echo(kind):
    with anyio.fail_after(10):
        async with sessions(kind) as (client, server):
            out = await client.open_stream()
            assert out.stream_id == 1
            await out.send(b"ping over yamux")
            inc = await server.accept_stream()
            assert inc.stream_id == 1
            assert await inc.receive() == b"ping over yamux"
            await inc.send(b"pong")
            assert await out.receive() == b"pong"
            back = await server.open_stream()
            assert back.stream_id == 2
            await back.send(b"from server")
            assert await (await client.accept_stream()).receive() == b"from server"


@pytest.mark.parametrize("kind", ["memory", "tcp"])
async def test_32_concurrent_streams_of_1_mib(kind):
    blobs = [hashlib.sha256(bytes([i])).digest() * (1 << 15) for i in range(32)]  # 1 MiB each
    results: dict[int, bytes] = {}

    async def echo(stream):
        data = await read_all(stream)
        await stream.send(data)
        await stream.send_eof()

    async def serve(server, tg):
        for _ in range(32):
            tg.start_soon(echo, await server.accept_stream())

    async def use(client, i):
        stream = await client.open_stream()
        await stream.send(blobs[i])
        await stream.send_eof()
        results[i] = await read_all(stream)

    with anyio.fail_after(60):
        async with sessions(kind) as (client, server):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve, server, tg)
                for i in range(32):
                    tg.start_soon(use, client, i)
    assert [results[i] == blobs[i] for i in range(32)] == [True] * 32


async def test_half_close_both_ways():
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            out = await client.open_stream()
            await out.send(b"request")
            await out.send_eof()
            with pytest.raises(anyio.ClosedResourceError):
                await out.send(b"more")
            inc = await server.accept_stream()
            assert await read_all(inc) == b"request"
            await inc.send(b"response after their FIN")
            await inc.send_eof()
            assert await read_all(out) == b"response after their FIN"
            # and the other way round: the acceptor half-closes first
            out2 = await client.open_stream()
            await out2.send(b"x")
            inc2 = await server.accept_stream()
            await inc2.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await out2.receive()
            await out2.send(b"still writable")
            await out2.send_eof()
            assert await read_all(inc2) == b"xstill writable"
            assert client.num_streams == 0 and server.num_streams == 0


async def test_requests_whose_data_and_fin_arrive_together_leave_no_stream_behind():
    """A request (data + FIN in one write) and its answer (the same): the FIN finds bytes still
    to read, so the stream is forgotten only once they are read (at EOF) or it is closed."""
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            for i in range(3):
                out = await client.open_stream()
                await out.send(b"request %d" % i)
                await out.send_eof()
                inc = await server.accept_stream()
                assert await read_all(inc) == b"request %d" % i
                await inc.send(b"answer")
                await inc.send_eof()
                if i == 0:
                    assert await read_all(out) == b"answer"  # to EOF: forgotten there
                else:
                    assert await out.receive(6) == b"answer"  # the answer only, then close
                    if i == 2:
                        await anyio.sleep(0.05)  # its FIN has arrived by now
                    await out.aclose()
            await client.ping()
            assert client.num_streams == 0 and server.num_streams == 0


async def test_reset_both_ways():
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            out = await client.open_stream()
            await out.send(b"a")
            inc = await server.accept_stream()
            await out.reset()
            with pytest.raises(StreamReset) as info:
                await out.send(b"b")
            assert info.value.remote is False
            with pytest.raises(StreamReset) as info:
                while True:
                    await inc.receive()
            assert info.value.remote is True
            out2 = await client.open_stream()
            await out2.send(b"c")
            inc2 = await server.accept_stream()
            async with anyio.create_task_group() as tg:
                async def blocked_reader():
                    with pytest.raises(StreamReset):
                        await out2.receive()
                tg.start_soon(blocked_reader)
                await anyio.wait_all_tasks_blocked()
                await inc2.reset()
            with pytest.raises(StreamReset):
                await out2.send(b"d")


async def test_aclose_sends_fin_and_stops_reading():
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            out = await client.open_stream()
            await out.send(b"bye")
            await out.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await out.receive()
            inc = await server.accept_stream()
            assert await read_all(inc) == b"bye"
            await inc.send(b"ignored by the closed side")  # discarded, not an error
            await inc.aclose()
            assert client.error is None and server.error is None


async def test_slow_reader_blocks_writer_and_buffer_stays_within_window():
    total = 4 * WINDOW
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            out = await client.open_stream()
            done = anyio.Event()

            async def writer():
                await out.send(b"w" * total)
                done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                inc = await server.accept_stream()
                await anyio.wait_all_tasks_blocked()
                assert not done.is_set()
                assert server._core.buffered(inc.stream_id) == WINDOW
                assert client._core.send_window(out.stream_id) == 0
                got = 0
                while got < total:
                    got += len(await inc.receive(100_000))
                    assert server._core.buffered(inc.stream_id) <= server._core.recv_window(
                        inc.stream_id)
                await done.wait()
            assert got == total


# ---- pings, keepalive, first frames ------------------------------------------------------------

async def test_first_frame_is_gos_rtt_ping_and_ping_returns_rtt():
    with anyio.fail_after(10):
        async with raw_session() as (session, raw):
            assert await raw.read_exact(12) == PING0
            await raw.conn.send(frame(2, 2, 0, 0))
            async with anyio.create_task_group() as tg:
                results = []

                async def pinger():
                    results.append(await session.ping())

                tg.start_soon(pinger)
                t, f, s, opaque, _ = await raw.frame()
                assert (t, f, s, opaque) == (2, 1, 0, 1)
                await raw.conn.send(frame(2, 2, 0, opaque))
            assert results[0] >= 0.0 and session.rtt >= 0.0
            # and the session answers the peer's pings with the same opaque value
            await raw.conn.send(frame(2, 1, 0, 0xCAFE))
            assert await raw.frame() == (2, 2, 0, 0xCAFE, b"")


async def test_ping_between_two_sessions():
    with anyio.fail_after(10):
        async with sessions("tcp") as (client, _server):
            rtt = await client.ping()
            assert 0.0 <= rtt < 5.0


async def test_keepalive_timeout_closes_session():
    cfg = YamuxConfig(keepalive_interval=0.05, keepalive_timeout=0.2)
    with anyio.fail_after(10):
        async with raw_session(config=cfg) as (session, raw):
            with pytest.raises(ConnectionClosed):
                await session.accept_stream()  # returns once the session is over
            assert session.is_closed
            assert "keepalive" in str(session.error)
            frames = []
            with pytest.raises((anyio.EndOfStream, anyio.ClosedResourceError)):
                while True:
                    frames.append(await raw.frame())
            assert frames[0] == (2, 1, 0, 0, b"") and all(f[0] == 2 for f in frames)


async def test_keepalive_timeout_over_tcp_push_mode_on_asyncio(anyio_backend):
    """Over TCP an asyncio session reads in push mode, where the keepalive's wait is a loop
    timer that wakes the input-end flag (no cancel scope): its ping goes out after the idle
    interval and the session ends when no pong comes."""
    cfg = YamuxConfig(keepalive_interval=0.05, keepalive_timeout=0.2)
    with anyio.fail_after(10):
        async with conn_pair("tcp") as (a, b):
            raw = RawPeer(b)
            start = anyio.current_time()  # before the session's clock starts: a lower bound
            async with YamuxSession(adopt(a), is_client=False, config=cfg) as session:
                assert session._push is (anyio_backend == "asyncio")
                with pytest.raises(ConnectionClosed):
                    await session.accept_stream()  # returns once the session is over
                assert "keepalive" in str(session.error)
                # the idle interval, then the pong's whole timeout
                assert anyio.current_time() - start >= 0.25
            frames = []
            ended = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)
            with pytest.raises(ended):
                while True:
                    frames.append(await raw.frame())
            pings = [f for f in frames if f[:2] == (2, 1)]
            assert len(pings) == 2 and pings[0][3] == 0  # go's RTT ping, then the keepalive's


async def test_keepalive_answered_keeps_session_alive():
    cfg = YamuxConfig(keepalive_interval=0.02, keepalive_timeout=2.0)
    with anyio.fail_after(10):
        async with sessions(config=cfg) as (client, server):
            out = await client.open_stream()
            inc = await server.accept_stream()
            for _ in range(5):  # each round trip waits for a keepalive ping to be answered
                await client.ping()
            await out.send(b"alive")
            assert await inc.receive() == b"alive"
            assert client.error is None and not client.is_closed


# ---- GoAway and protocol errors ----------------------------------------------------------------

async def test_goaway_normal_stops_new_streams_but_keeps_old_ones():
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            out = await client.open_stream()
            await out.send(b"before")
            inc = await server.accept_stream()
            await server.go_away(0)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(ConnectionClosed):
                await client.open_stream()
            await out.send(b" after")
            await out.send_eof()
            assert await read_all(inc) == b"before after"
            assert not client.is_closed


async def test_syn_after_our_goaway_is_reset():
    with anyio.fail_after(10):
        async with raw_session(is_client=False) as (session, raw):
            await session.go_away(0)
            await raw.frames_until(lambda f: f[0] == 3)
            await raw.conn.send(frame(1, 1, 1, 0))
            seen = await raw.frames_until(lambda f: f[2] == 1)
            assert seen[-1] == (1, 8, 1, 0, b"")


async def test_remote_goaway_error_closes_session():
    with anyio.fail_after(10):
        async with raw_session() as (session, raw):
            await raw.conn.send(bytes.fromhex("000300000000000000000002"))
            with pytest.raises(ConnectionClosed):
                await session.accept_stream()
            assert "GoAway(2)" in str(session.error)
            with pytest.raises(ConnectionClosed):
                await session.open_stream()


async def test_protocol_violation_sends_goaway_and_fails_everything():
    with anyio.fail_after(10):
        async with raw_session(is_client=True) as (session, raw):
            stream = await session.open_stream()
            await raw.conn.send(frame(1, 2, 1, 0) + frame(0, 0, 1, 5, b"hello"))
            assert await stream.receive() == b"hello"
            await raw.conn.send(frame(0, 0, 1, WINDOW))  # 5 + 262144 > window
            with pytest.raises(ConnectionClosed):
                await stream.receive()
            with pytest.raises(ConnectionClosed):
                await session.accept_stream()
            assert isinstance(session.error, YamuxProtocolError)
            rest = bytearray(raw.buf)
            try:
                while True:
                    rest += await raw.conn.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                pass
            assert bytes(rest).endswith(GOAWAY_PROTO)
            with pytest.raises(ConnectionClosed):
                await stream.send(b"x")


async def test_teardown_wakes_every_waiter():
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            reader = await client.open_stream()
            writer = await client.open_stream()
            await writer.send(b"z" * WINDOW)  # window now exhausted
            failures = []

            async def expect_closed(coro):
                try:
                    await coro
                except ConnectionClosed:
                    failures.append(True)

            async with anyio.create_task_group() as tg:
                tg.start_soon(expect_closed, reader.receive())
                tg.start_soon(expect_closed, writer.send(b"more"))
                tg.start_soon(expect_closed, client.accept_stream())
                await anyio.wait_all_tasks_blocked()
                await server.close()
            assert failures == [True, True, True]
            assert client.is_closed and server.is_closed


async def test_close_is_idempotent_and_open_after_close_fails():
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            await client.close()
            await client.close()
            with pytest.raises(ConnectionClosed):
                await client.open_stream()
            with pytest.raises(ConnectionClosed):
                await server.accept_stream()


async def test_read_deadline_times_out_returns_buffered_data_and_lifts():
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            st = await client.open_stream()
            await st.send(b"hi")
            peer = await server.accept_stream()
            assert await peer.receive(10) == b"hi"
            start = anyio.current_time()
            st.set_read_deadline(start + 0.05)
            with pytest.raises(TimeoutError):
                await st.receive(10)
            assert anyio.current_time() - start >= 0.05
            # a passed deadline still returns what is already buffered (only waiting is bounded);
            # our ping's pong comes after the data on the wire, so the data is here by then
            await peer.send(b"late")
            await client.ping()
            assert await st.receive(10) == b"late"
            # lifted: waits as long as it takes
            st.set_read_deadline(None)

            async def reply_later() -> None:
                await anyio.sleep(0.1)
                await peer.send(b"ok")

            async with anyio.create_task_group() as tg:
                tg.start_soon(reply_later)
                assert await st.receive(10) == b"ok"
            # a deadline far away does not fire while data arrives in time
            st.set_read_deadline(anyio.current_time() + 5)
            await peer.send(b"again")
            assert await st.receive(10) == b"again"



async def test_read_deadlines_of_streams_waiting_at_once_each_fire_at_their_own_time():
    """Three readers wait at once with deadlines in an order unlike their start (the session's
    one timer on asyncio is re-armed earlier, then again for each deadline still ahead), and a
    fourth gets data in time; each times out at its own deadline, no earlier, and no later than
    a plain loop timer due at the same time wakes (a timer left armed for a later deadline would
    wake reader 1 with reader 0, 0.2 s after its own).

    Not their order: when the loop is held past several deadlines (a loaded machine keeps it off
    the CPU for 0.1-0.3 s at times), they fall due in one callback, which wakes them in stream
    order ([0, 1, 2] seen in a loaded full-suite run), as it may."""
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            streams = [await client.open_stream() for _ in range(4)]
            for st in streams:
                await st.send(b"x")
            peers = [await server.accept_stream() for _ in streams]
            start = anyio.current_time()
            offsets = (0.30, 0.10, 0.20)
            timed_out: dict[int, float] = {}
            plain: dict[int, float] = {}

            async def wait(i: int) -> None:
                streams[i].set_read_deadline(start + offsets[i])
                with pytest.raises(TimeoutError):
                    await streams[i].receive(10)
                timed_out[i] = anyio.current_time() - start

            async def plain_timer(i: int) -> None:
                await anyio.sleep_until(start + offsets[i])
                plain[i] = anyio.current_time() - start

            async def answered() -> None:
                streams[3].set_read_deadline(start + 5)
                assert await streams[3].receive(10) == b"in time"

            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(wait, i)
                    tg.start_soon(plain_timer, i)
                    await anyio.sleep(0.01)
                tg.start_soon(answered)
                await anyio.sleep(0.05)
                await peers[3].send(b"in time")
            for i, offset in enumerate(offsets):
                assert offset <= timed_out[i] < plain[i] + 0.1, (i, timed_out, plain)


async def test_a_read_deadline_set_while_the_read_waits_bounds_it():
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            st = await client.open_stream()
            await st.send(b"x")
            await server.accept_stream()
            st.set_read_deadline(anyio.current_time() + 30)

            async def shorten() -> None:
                await anyio.sleep(0.05)
                st.set_read_deadline(anyio.current_time() + 0.05)

            start = anyio.current_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(shorten)
                with pytest.raises(TimeoutError):
                    await st.receive(10)
            assert 0.1 <= anyio.current_time() - start < 5


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sequential_reads_with_later_deadlines_share_one_timer(anyio_backend):
    """A request after another, each with its own deadline a little later than the last: the
    session's deadline timer set for the first is due before the others' deadlines, so their
    waits arm no timer of their own (asyncio's call_at: once for 50 reads)."""
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            calls = []
            call_at = client._call_at

            def counting_call_at(when, callback, *args):
                calls.append(when)
                return call_at(when, callback, *args)

            client._call_at = counting_call_at

            async def echo_all() -> None:
                while True:
                    peer = await server.accept_stream()
                    await peer.send(await peer.receive(10))
                    await peer.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(echo_all)
                for i in range(50):
                    st = await client.open_stream()
                    st.set_read_deadline(anyio.current_time() + 30)
                    await st.send(b"%d" % i)
                    assert await st.receive(10) == b"%d" % i
                    await st.aclose()
                tg.cancel_scope.cancel()
            assert len(calls) == 1


async def test_send_takes_views_of_bytes_as_they_are_and_copies_what_may_change():
    """Frames reference the sent data until the writer takes it: a view of bytes is sent without
    a copy, a mutable buffer (or a strided view) is copied, so changing it after send is safe."""
    with anyio.fail_after(10):
        async with sessions() as (client, server):
            st = await client.open_stream()
            base = bytes(range(256)) * 1000
            buf = bytearray(b"m" * 1000)
            await st.send(memoryview(base)[10:5000])
            await st.send(memoryview(base)[::2][:10])
            await st.send(buf)
            buf[:] = b"x" * 1000
            await st.send(memoryview(bytearray(b"q" * 5)))
            await st.send_eof()
            peer = await server.accept_stream()
            assert await read_all(peer) == base[10:5000] + base[::2][:10] + b"m" * 1000 + b"q" * 5


async def test_read_waits_alone_together_cancelled_and_past_a_deadline(anyio_backend):
    """A read wait on asyncio is the only reader's own future (no Flag); a second reader that
    comes meanwhile joins that wait (both are woken: one takes the bytes, the other waits on),
    a cancelled reader leaves nobody registered, and a deadline still ends the wait. On trio
    every wait is a Flag, as before."""
    from p2p.sync import Flag

    with anyio.fail_after(10):
        async with sessions() as (client, server):
            st = await client.open_stream()
            await st.send(b"x")
            peer = await server.accept_stream()
            assert await peer.receive() == b"x"
            got: list[bytes] = []

            async def reader(stream) -> None:
                try:
                    got.append(await stream.receive())
                except anyio.EndOfStream:
                    got.append(b"<eof>")

            async with anyio.create_task_group() as tg:
                tg.start_soon(reader, peer)
                await anyio.wait_all_tasks_blocked()
                assert (type(peer._rwait) is Flag) is (anyio_backend == "trio")
                tg.start_soon(reader, peer)  # a second reader of the same stream
                await anyio.wait_all_tasks_blocked()
                assert type(peer._rwait) is Flag
                await st.send(b"one")
                await anyio.wait_all_tasks_blocked()
                assert got == [b"one"]
                await st.send_eof()
            assert got == [b"one", b"<eof>"]
            assert peer._rwait is None

            st2 = await client.open_stream()
            await st2.send(b"y")
            peer2 = await server.accept_stream()
            assert await peer2.receive() == b"y"
            with anyio.move_on_after(0.05) as scope:
                await peer2.receive()
            assert scope.cancelled_caught
            # asyncio: the cancelled future is forgotten (trio keeps its emptied Flag, as before)
            assert (peer2._rwait is None) is (anyio_backend == "asyncio")
            peer2.set_read_deadline(anyio.current_time() + 0.05)
            with pytest.raises(TimeoutError):
                await peer2.receive()
            assert (peer2._rwait is None) is (anyio_backend == "asyncio")
            peer2.set_read_deadline(None)
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader, peer2)
                await anyio.wait_all_tasks_blocked()
                await st2.send(b"late")
            assert got[-1] == b"late" and peer2._rwait is None
