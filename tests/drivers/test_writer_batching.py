"""The yamux writer's batching, on both backends: what tasks queue in the same turns leaves in one
write (a request's SYN + data + FIN; eight streams opened by eight tasks at once)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from memstream import memory_stream_pair
from readers import read_all
from yamuxpair import yamux_pair

from p2p.mux import yamux_session

pytestmark = pytest.mark.anyio


class Counting:
    """A connection that counts its writes."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        self.writes.append(bytes(item))
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_request_and_parallel_opens_leave_in_one_write_each() -> None:
    a, b = memory_stream_pair()
    conn = Counting(a)
    with anyio.fail_after(10):
        async with yamux_pair(conn, b) as (client, server):
            await client.ping()  # the start-up RTT ping and its pong are out of the way
            conn.writes.clear()
            st = await client.open_stream()
            await st.send(b"request")
            await st.send_eof()
            peer = await server.accept_stream()
            assert await read_all(peer) == b"request"
            assert len(conn.writes) == 1
            # Data(SYN) header 12 + 7 bytes + WindowUpdate(FIN) 12
            assert len(conn.writes[0]) == 12 + 7 + 12

            conn.writes.clear()

            async def one(i: int) -> None:
                s = await client.open_stream()
                await s.send(b"%d" % i)

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
            got = []
            for _ in range(8):
                got.append(await (await server.accept_stream()).receive(10))
            assert sorted(got) == [b"%d" % i for i in range(8)]
            assert len(conn.writes) == 1


class TrySending(Counting):
    """A connection that takes writes without waiting (as Noise over our asyncio TCP stream), and
    records which of them came through `try_send` (from the stream's own task, in its turn)."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.tried: list[bytes] = []
        self.tried_by: list[int] = []  # the task that made each try_send (0: a callback)

    def send_ready(self) -> bool:
        return True

    def try_send(self, item: bytes) -> bool:
        self.tried.append(bytes(item))
        try:
            self.tried_by.append(anyio.get_current_task().id)
        except RuntimeError:  # from a loop callback (the deferred kick), not a task
            self.tried_by.append(0)
        self.writes.append(bytes(item))
        self.inner._send.send_nowait(bytes(item))
        return True


async def test_a_request_leaves_from_its_own_task_before_it_waits(anyio_backend) -> None:
    """try_flush: SYN + data + FIN go out in one write made by the requesting task itself when it
    starts waiting for the reply, not later by the writer task (on asyncio, where the writer is
    kicked by a deferred callback; trio wakes the writer at once, which may win the race)."""
    a, b = memory_stream_pair()
    conn = TrySending(a)
    with anyio.fail_after(10):
        async with yamux_pair(conn, b) as (client, server):
            await client.ping()
            conn.writes.clear()
            conn.tried.clear()
            conn.tried_by.clear()
            st = await client.open_stream()
            await st.send(b"request")
            await st.send_eof()
            assert conn.writes == []  # queued: a short send neither yields nor writes
            waiter: list[int] = []

            async def wait_for_reply() -> None:
                waiter.append(anyio.get_current_task().id)
                await st.receive(10)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_for_reply)  # starts waiting: its output leaves first
                await anyio.wait_all_tasks_blocked()
                assert len(conn.tried) == 1
                assert len(conn.tried[0]) == 12 + 7 + 12
                if anyio_backend == "asyncio":
                    assert conn.tried_by == waiter
                peer = await server.accept_stream()
                assert await read_all(peer) == b"request"
                await peer.send(b"r")
            assert conn.writes == conn.tried


async def test_short_sends_skip_yielding_only_a_few_times_in_a_row() -> None:
    """Short sends skip the checkpoint (a reply leaves with the close that follows it), but at
    most 16 in a row: a task sending without pause must let other tasks (the session's reader,
    other streams) run, and the peer's pings get their pongs meanwhile."""
    with anyio.fail_after(20):
        async with yamux_pair() as (client, server):
            st = await client.open_stream()
            ticks = 0
            longest_run = 0
            stop = False

            async def ticker() -> None:
                nonlocal ticks
                while not stop:
                    ticks += 1
                    await anyio.lowlevel.checkpoint()

            async def sender() -> None:
                nonlocal longest_run
                run, seen = 0, ticks
                for _ in range(20000):
                    await st.send(b"x" * 100)
                    run = run + 1 if ticks == seen else 0
                    seen = ticks
                    longest_run = max(longest_run, run)
                await st.send_eof()

            async def sink() -> None:
                peer = await server.accept_stream()
                while True:
                    try:
                        await peer.receive(1 << 20)
                    except anyio.EndOfStream:
                        return

            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                tg.start_soon(sink)
                tg.start_soon(sender)
                for _ in range(3):
                    assert await server.ping() < 5.0
                while longest_run == 0 or not st._local_eof:
                    await anyio.sleep(0.01)
                stop = True
            # The sender yields every 16 sends at most; trio runs a batch's tasks in random order,
            # so the ticker can run just before one yield and just after the next: 2 x 16 + 1.
            # (Without the bound it would be ~2600: a send waits only past 256 KiB queued.)
            assert 1 <= longest_run <= 33


async def test_a_closed_streams_fin_leaves_with_the_next_request(anyio_backend) -> None:
    """flush_soon: a requester closes a stream once it has read the answer and opens the next
    one in the same turn; on asyncio the FIN waits for that request's write (one write, one Noise
    frame, one read at the peer), and with nothing after it, it leaves at the next loop turn
    without the writer task. trio writes it at once, as before."""
    a, b = memory_stream_pair()
    conn = TrySending(a)
    with anyio.fail_after(10):
        async with yamux_pair(conn, b) as (client, server):
            await client.ping()

            async def answer() -> None:
                peer = await server.accept_stream()
                await peer.receive(10)
                await peer.send(b"answer")
                await peer.aclose()

            async with anyio.create_task_group() as tg:
                tg.start_soon(answer)
                first = await client.open_stream()
                await first.send(b"req1")
                assert await first.receive(10) == b"answer"
                conn.writes.clear()
                await first.aclose()  # FIN queued
                second = await client.open_stream()
                await second.send(b"req2")
                if anyio_backend == "asyncio":
                    assert conn.writes == []  # the FIN waits for the next write...
                    with anyio.move_on_after(0.5):
                        await second.receive(10)  # ...made when this task waits
                    # FIN(1) 12 + Data(SYN, 3) header 12 + 4 bytes
                    assert [len(w) for w in conn.writes] == [12 + 12 + 4]
                    assert int.from_bytes(conn.writes[0][4:8], "big") == first.stream_id
                else:
                    assert len(conn.writes) == 1 and len(conn.writes[0]) == 12
                await second.reset()

            await client.ping()  # the RST has left
            conn.writes.clear()
            conn.tried.clear()
            conn.tried_by.clear()
            last = await client.open_stream()
            await last.send(b"x")
            await last.aclose()  # SYN + data + FIN, and nothing after it
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
            assert [len(w) for w in conn.tried] == [12 + 1 + 12]
            if anyio_backend == "asyncio":
                assert conn.tried_by == [0]  # the deferred kick wrote it, not the writer task
            peer = await server.accept_stream()
            assert await read_all(peer) == b"x"


async def test_window_updates_alone_are_left_to_the_writer(anyio_backend) -> None:
    """A reader that took over half a window and starts waiting leaves the window update it
    queued to the writer task, which sends it with what other tasks queue meanwhile, instead of
    a 12-byte write of its own (a Noise frame, a syscall and a wake-up of the peer); the peer gets
    it all the same and can go on sending."""
    a, b = memory_stream_pair()
    conn = TrySending(a)
    with anyio.fail_after(10):
        async with yamux_pair(conn, b) as (client, server):
            await client.ping()
            st = await client.open_stream()
            await st.send(b"go")
            peer = await server.accept_stream()
            assert await peer.receive(2) == b"go"
            await anyio.wait_all_tasks_blocked()
            conn.tried.clear()
            conn.tried_by.clear()
            await peer.send(bytes(200_000))  # over half of the 256 KiB window
            reader: list[int] = []
            got = 0

            async def read() -> None:
                nonlocal got
                reader.append(anyio.get_current_task().id)
                while got < 200_001:  # all of it (a window update is queued), then one more byte
                    got += len(await st.receive(1 << 20))

            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                while got < 200_000:
                    await anyio.sleep(0.001)
                await anyio.wait_all_tasks_blocked()
                updates = [(t, by) for t, by in zip(conn.tried, conn.tried_by)
                           if t[:4] == b"\x00\x01\x00\x00"]  # version 0, WindowUpdate, no flags
                assert len(updates) == 1 and updates[0][1] not in reader  # the writer sent it
                assert server._core.send_window(peer.stream_id) > 262144 - 200_000
                await peer.send(b"!")


async def test_senders_over_the_high_water_mark_wait_once_and_in_turn(monkeypatch) -> None:
    """Sixteen streams sending 256 KiB writes at once: each write that finds more than the high-
    water mark queued waits once, until the writer has taken its frames and its turn comes (a
    take releases one sender, which releases the next while there is room): not again when
    another sender woken by the same take filled the queue first (before: about ten waits per
    write, every take waking all sixteen), and the writes stay near the mark instead of taking
    every stream's next 256 KiB at once (4 MiB when all sixteen were let go)."""
    from p2p.mux import yamux_output

    waits = 0
    outputs: list[yamux_output.SessionOutput] = []

    class CountingFlag(yamux_output.Flag):
        async def wait(self, loop: Any = None) -> None:
            nonlocal waits
            if not self.is_set() and any(self in (out._drain_waits or ()) for out in outputs):
                waits += 1
            await super().wait(loop)

    monkeypatch.setattr(yamux_output, "Flag", CountingFlag)  # the drain waits' flags
    calls = 0
    wait_drained = yamux_output.SessionOutput.wait_drained

    async def counted(self) -> None:
        nonlocal calls
        calls += 1
        await wait_drained(self)

    monkeypatch.setattr(yamux_output.SessionOutput, "wait_drained", counted)
    a, b = memory_stream_pair()
    chunk = bytes(256 * 1024)
    with anyio.fail_after(30):
        async with yamux_pair(a, b) as (client, server):
            outputs.extend([client._output, server._output])

            async def sender() -> None:
                s = await client.open_stream()
                for _ in range(4):
                    await s.send(chunk)
                await s.send_eof()

            async def sink() -> None:
                st = await server.accept_stream()
                assert len(await read_all(st)) == 4 * len(chunk)

            async with anyio.create_task_group() as tg:
                for _ in range(16):
                    tg.start_soon(sink)
                for _ in range(16):
                    tg.start_soon(sender)
    assert calls >= 16  # the queue did go over the mark
    assert waits <= calls
    # 16 MiB sent: after the opening burst (all sixteen queue their first 256 KiB before
    # anything is written), about two senders' 256 KiB per take (letting all sixteen go: four
    # writes of 4 MiB)
    sizes = [len(w) for w in a.writes if len(w) > 1024]
    assert len(sizes) >= 16, sorted(n >> 10 for n in sizes)


class GatherSending(TrySending):
    """`TrySending` that also takes a write as its pieces (as Noise does) and counts how often it
    is asked whether it can write."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.asked = 0
        self.gathered = 0

    def send_ready(self) -> bool:
        self.asked += 1
        return True

    def try_send_pieces(self, pieces: list[bytes | memoryview], total: int) -> bool:
        self.gathered += 1
        data = b"".join(pieces)
        assert len(data) == total
        return self.try_send(data)


async def test_the_session_offers_its_pieces_without_asking_first() -> None:
    """A stream below that gathers pieces decides in `try_send_pieces` itself whether it can
    write now (False: nothing taken); the session does not ask `send_ready()` before offering
    them (it did, and Noise then asked the connection again)."""
    a, b = memory_stream_pair()
    conn = GatherSending(a)
    with anyio.fail_after(10):
        async with yamux_pair(conn, b) as (client, server):
            st = await client.open_stream()
            await st.send(b"request")
            await st.send_eof()
            peer = await server.accept_stream()
            assert await read_all(peer) == b"request"
            await peer.send(b"answer")
            await peer.send_eof()
            assert await read_all(st) == b"answer"
    assert conn.gathered >= 1
    assert conn.asked == 0


async def test_an_answer_leaves_at_the_handlers_close_before_its_task_ends(anyio_backend) -> None:
    """A handler closing the stream the peer opened has finished its answer: ACK + answer + FIN
    leave in one write made by the handler's task when it closes, before the task goes on to
    tidy up and end (on asyncio the deferred kick wrote it, after the task had ended)."""
    a, b = memory_stream_pair()
    conn = TrySending(b)
    written_at_close: list[list[bytes]] = []
    handler_task: list[int] = []
    with anyio.fail_after(10):
        async with yamux_pair(a, conn) as (client, server), anyio.create_task_group() as tg:

            async def handler(ys: Any) -> None:
                handler_task.append(anyio.get_current_task().id)
                assert await read_all(ys) == b"request"
                await ys.send(b"answer")
                await ys.aclose()
                written_at_close.append(list(conn.tried))

            server.set_stream_handler(lambda ys: tg.start_soon(handler, ys))
            await client.ping()  # the start-up RTT pings and pongs are out of the way
            await anyio.wait_all_tasks_blocked()
            conn.tried.clear()
            conn.tried_by.clear()
            st = await client.open_stream()
            await st.send(b"request")
            await st.send_eof()
            assert await read_all(st) == b"answer"
            # WindowUpdate(ACK) and Data carrying the answer are one frame (12 + 6), then FIN
            assert [len(w) for w in written_at_close[0]] == [12 + 6 + 12]
            if anyio_backend == "asyncio":
                assert conn.tried_by == handler_task


class Held(Counting):
    """A connection whose writes reach the peer only when `release()` joins them into one read:
    what several writes carried arrives as one input (as a TCP read takes several writes)."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.held: list[bytes] = []

    async def send(self, item: bytes) -> None:
        self.writes.append(bytes(item))
        self.held.append(bytes(item))

    async def release(self) -> None:
        data, self.held = b"".join(self.held), []
        await self.inner.send(data)


@pytest.mark.parametrize("extra", [0, 3000])
async def test_tasks_one_input_woke_write_their_requests_together(anyio_backend, extra) -> None:
    """Eight requesters woken by one input (their eight answers in one read) each read the
    answer, close, open the next stream and send its request: the last to start waiting writes
    all eight requests in one write, instead of one write each (asyncio; on trio the writer
    task, woken by the first request, may take them in more writes). Larger requests leave
    once a batch reaches _WOKEN_BATCH bytes, so that the peer has work while the rest is made
    (all 64 of a worker 64 run in one write: the two sides took turns)."""
    a, b = memory_stream_pair()
    client_conn = TrySending(a)
    server_conn = Held(b)
    answered = 0
    with anyio.fail_after(10):
        async with yamux_pair(client_conn, server_conn) as (client, server), \
                anyio.create_task_group() as tg:

            async def handler(ys: Any) -> None:
                nonlocal answered
                req = await read_all(ys)
                await ys.send(b"re: " + req)
                await ys.aclose()
                answered += 1

            server.set_stream_handler(lambda ys: tg.start_soon(handler, ys))
            await anyio.wait_all_tasks_blocked()
            await server_conn.release()  # the start-up RTT ping and pong are out of the way
            await anyio.wait_all_tasks_blocked()
            got: list[bytes] = []
            second_round = anyio.Event()
            writes_before_round_2: list[int] = []

            async def requester(i: int) -> None:
                st = await client.open_stream()
                await st.send(b"1-%d" % i)
                await st.send_eof()
                got.append(await read_all(st))
                await st.aclose()
                if not writes_before_round_2:
                    writes_before_round_2.append(len(client_conn.writes))
                st = await client.open_stream()
                await st.send(b"2-%d" % i + b"x" * extra)
                await st.send_eof()
                got.append(await read_all(st))
                await second_round.wait()

            async with anyio.create_task_group() as requesters:
                for i in range(8):
                    requesters.start_soon(requester, i)
                while answered < 8:
                    await anyio.sleep(0.001)
                await anyio.wait_all_tasks_blocked()
                await server_conn.release()  # the eight answers: one read for the client
                while answered < 16:
                    await anyio.sleep(0.001)
                if anyio_backend == "asyncio":
                    round_2 = client_conn.writes[writes_before_round_2[0]:]
                    # 8 x (Data(SYN) 12 + 3 + extra bytes, FIN 12): the first streams' FINs
                    # left with their requests, in batches of the fewest that reach the bound
                    each = 12 + 3 + extra + 12
                    per_batch = -(-yamux_session._WOKEN_BATCH // each)
                    assert [len(w) for w in round_2] == [
                        each * min(per_batch, 8 - k) for k in range(0, 8, per_batch)]
                    assert len(round_2) == (1 if extra == 0 else 3)  # 3 x 3027 >= 8 KiB
                await anyio.wait_all_tasks_blocked()
                await server_conn.release()
                while len(got) < 16:
                    await anyio.sleep(0.001)
                second_round.set()
            assert sorted(got) == sorted([b"re: 1-%d" % i for i in range(8)]
                                         + [b"re: 2-%d" % i + b"x" * extra for i in range(8)])


async def test_a_woken_task_waiting_elsewhere_does_not_hold_the_others_output(
        anyio_backend) -> None:
    """Two readers woken by one input: one goes on to wait on something else than a stream read
    (its turn never ends where the session sees it), the other answers and waits for a read. The
    answer still leaves at once (asyncio: the deferred kick, after one more round of ready
    callbacks; trio: the writer task), not when the first reader next reads."""
    a, b = memory_stream_pair()
    server_conn = Held(b)
    with anyio.fail_after(10):
        async with yamux_pair(a, server_conn) as (client, server):
            await anyio.wait_all_tasks_blocked()
            await server_conn.release()  # the start-up RTT ping and pong
            await anyio.wait_all_tasks_blocked()
            s1 = await client.open_stream()
            s2 = await client.open_stream()
            await s1.send(b"1")
            await s2.send(b"2")
            p1 = await server.accept_stream()
            p2 = await server.accept_stream()
            assert await p1.receive(1) == b"1"
            assert await p2.receive(1) == b"2"
            elsewhere = anyio.Event()
            woken = anyio.Event()

            async def busy_reader() -> None:
                assert await s1.receive(10) == b"x"
                woken.set()
                await elsewhere.wait()

            async def answering_reader() -> None:
                assert await s2.receive(10) == b"y"
                await s2.send(b"reply")
                await s2.receive(10)  # about to wait: its turn ends here

            async with anyio.create_task_group() as tg:
                tg.start_soon(busy_reader)
                tg.start_soon(answering_reader)
                await anyio.wait_all_tasks_blocked()
                await p1.send(b"x")
                await p2.send(b"y")
                await anyio.wait_all_tasks_blocked()
                await server_conn.release()  # both data frames in one read: two readers woken
                # (without the deferred kick's second look it never leaves: the test's bound)
                assert await p2.receive(10) == b"reply"
                assert woken.is_set() and not elsewhere.is_set()
                elsewhere.set()
                tg.cancel_scope.cancel()
