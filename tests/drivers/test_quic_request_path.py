"""A QUIC stream's request-path capabilities, on both backends: what lets the layers above spend
no cancel scope and no running-loop lookup on a request (each a getpid system call on Python
3.11's asyncio).

* read deadlines (`set_read_deadline`): on asyncio one loop timer per wait, elsewhere a cancel
  scope; either way a wait ends at its deadline, and data that comes first is read;
* the stream's clock (`current_time`, the lazy dialer's deadline base);
* reads and writes that never wait (`receive_nowait`, `send_nowait`: the listener's multistream
  answer to a proposal that came with the stream's first data);
* `open_stream` with a free stream slot enters no cancel scope (one is needed only to wait).
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from readers import read_all
from test_quic_transport import dial, echo, pair

from p2p.negotiate import handle_protocol
from p2p.sync import Flag
from p2p.streams import BufferedStream, has_nowait_io, has_read_deadlines, has_stream_clock
from p2p.transport import quic as quic_mod
from p2p.transport.quic import QuicStream

pytestmark = pytest.mark.anyio


async def _silent(st: QuicStream) -> None:
    """A handler that reads the request and never answers (until the stream ends)."""
    try:
        while True:
            await st.receive()
    except Exception:  # noqa: BLE001 - the test ends the stream any way it likes
        pass


async def test_stream_declares_the_request_path_capabilities() -> None:
    assert has_read_deadlines(QuicStream.__new__(QuicStream))
    assert has_stream_clock(QuicStream.__new__(QuicStream))
    assert has_nowait_io(QuicStream.__new__(QuicStream))


async def test_read_deadline_ends_a_wait_in_time_and_data_first_is_read() -> None:
    with anyio.fail_after(30):
        async with pair(handler=_silent) as (server, client, go):
            conn = await dial(client, server, go)
            st = await conn.open_stream()
            await st.send(b"request")
            start = st.current_time()
            assert abs(start - anyio.current_time()) < 0.5  # the same clock as anyio's
            st.set_read_deadline(start + 0.2)
            with pytest.raises(TimeoutError):
                await st.receive()
            waited = anyio.current_time() - start
            assert 0.19 <= waited < 5, waited
            # a deadline already passed raises at once, even with nothing to wait for
            with pytest.raises(TimeoutError):
                await st.receive()
            # lifted: data that arrives is read (the peer echoes on a second stream)
            st.set_read_deadline(None)
            await st.aclose()

    with anyio.fail_after(30):
        async with pair(handler=echo) as (server, client, go):
            conn = await dial(client, server, go)
            st = await conn.open_stream()
            st.set_read_deadline(st.current_time() + 10)
            await st.send(b"ping")
            assert await st.receive() == b"ping"  # data before the deadline: no TimeoutError
            await st.send_eof()
            assert await read_all(st) == b""


async def test_a_deadline_set_while_a_read_waits_applies_to_that_read() -> None:
    with anyio.fail_after(30):
        async with pair(handler=_silent) as (server, client, go):
            conn = await dial(client, server, go)
            st = await conn.open_stream()
            await st.send(b"request")
            outcome: list[BaseException] = []

            async def reader() -> None:
                try:
                    await st.receive()
                except BaseException as exc:  # noqa: BLE001 - recorded for the check below
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                await anyio.sleep(0.05)  # the reader waits, with no deadline
                assert not outcome
                st.set_read_deadline(st.current_time() + 0.1)
            assert len(outcome) == 1 and isinstance(outcome[0], TimeoutError), outcome
            await st.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_read_deadline_is_a_loop_timer_not_a_cancel_scope(
        anyio_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The asyncio path arms `loop.call_at` and enters no anyio cancel scope; a connection
    without a loop of its own (what trio has) takes the cancel-scope path and still times out."""
    loop = asyncio.get_running_loop()
    with anyio.fail_after(30):
        async with pair(handler=_silent) as (server, client, go):
            conn = await dial(client, server, go)
            for with_loop in (True, False):
                st = await conn.open_stream()
                await st.send(b"request")
                counts = {"call_at": 0, "move_on_at": 0}
                call_at, move_on_at = loop.call_at, anyio.move_on_at

                def counting_call_at(*args: Any, **kwargs: Any) -> Any:
                    if getattr(args[1], "__func__", None) is Flag.wake:  # not a driver's timer
                        counts["call_at"] += 1
                    return call_at(*args, **kwargs)

                def counting_move_on_at(*args: Any, **kwargs: Any) -> Any:
                    counts["move_on_at"] += 1
                    return move_on_at(*args, **kwargs)

                monkeypatch.setattr(loop, "call_at", counting_call_at)
                monkeypatch.setattr(anyio, "move_on_at", counting_move_on_at)
                if not with_loop:
                    monkeypatch.setattr(conn, "_loop", None)
                try:
                    st.set_read_deadline(st.current_time() + 0.1)
                    with pytest.raises(TimeoutError):
                        await st.receive()
                finally:
                    monkeypatch.undo()
                if with_loop:
                    assert counts == {"call_at": 1, "move_on_at": 0}, counts
                else:
                    assert counts == {"call_at": 0, "move_on_at": 1}, counts
                await st.aclose()


async def test_nowait_reads_and_writes() -> None:
    with anyio.fail_after(30):
        async with pair(handler=echo) as (server, client, go):
            conn = await dial(client, server, go)
            st = await conn.open_stream()
            assert st.receive_nowait() == b""  # nothing arrived: no wait, no error
            assert st.send_nowait(b"abc") == 3
            await st.send(b"def")
            got = b""
            while len(got) < 6:
                got += st.receive_nowait(2) or await st.receive()
            assert got == b"abcdef"
            await st.send_eof()
            assert st.send_nowait(b"late") == 0  # half-closed: `send` says why
            with pytest.raises(anyio.ClosedResourceError):
                await st.send(b"late")
            assert await read_all(st) == b""
            assert st.receive_nowait() == b""
            await st.aclose()
            assert st.send_nowait(b"x") == 0 and st.receive_nowait() == b""


async def test_nowait_write_refuses_what_passes_the_unacknowledged_cap() -> None:
    with anyio.fail_after(30):
        async with pair(handler=_silent) as (server, client, go):
            conn = await dial(client, server, go)
            st = await conn.open_stream()
            assert st.send_nowait(b"x" * (quic_mod.SEND_HIGH_WATER + 1)) == 0
            assert st.send_nowait(b"x" * 1000) == 1000
            await st.aclose()


async def test_listener_answers_a_proposal_that_came_with_the_data_without_a_scope(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A lazy dialer's header, proposal and request arrive together: the listener's multistream
    answer takes the no-wait path (no negotiation machine, no timeout scope) and leaves the
    request for the handler."""
    from p2p.multistream import encode_message
    done = anyio.Event()
    result: dict[str, Any] = {}

    async def handler(st: QuicStream) -> None:
        scopes = []
        original = anyio.fail_after

        def counting(*args: Any, **kwargs: Any) -> Any:
            scopes.append(args)
            return original(*args, **kwargs)

        buffered = BufferedStream(st)
        while not st._eof:  # the whole request (and its FIN) has arrived, however slow we are
            await anyio.sleep(0.01)
        monkeypatch.setattr(anyio, "fail_after", counting)
        try:
            result["protocol"] = await handle_protocol(buffered, ["/echo/1"])
        finally:
            monkeypatch.undo()
        result["scopes"] = scopes
        result["rest"] = await buffered.receive()
        await st.send(b"answer")
        await st.send_eof()
        done.set()

    with anyio.fail_after(30):
        async with pair(handler=handler) as (server, client, go):
            conn = await dial(client, server, go)
            st = await conn.open_stream()
            await st.send(encode_message("/multistream/1.0.0") + encode_message("/echo/1")
                          + b"request")
            await st.send_eof()
            await done.wait()
            replies = await read_all(st)
    assert result == {"protocol": "/echo/1", "scopes": [], "rest": b"request"}
    assert replies == (encode_message("/multistream/1.0.0") + encode_message("/echo/1")
                       + b"answer")


async def test_open_stream_with_a_free_slot_enters_no_cancel_scope(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with anyio.fail_after(30):
        async with pair(handler=echo) as (server, client, go):
            conn = await dial(client, server, go)
            scopes = []
            original = anyio.fail_after

            def counting(*args: Any, **kwargs: Any) -> Any:
                scopes.append(args)
                return original(*args, **kwargs)

            monkeypatch.setattr(anyio, "fail_after", counting)
            try:
                st = await conn.open_stream(timeout=5)
            finally:
                monkeypatch.undo()
            assert scopes == []
            await st.send(b"hi")
            await st.send_eof()
            assert await read_all(st) == b"hi"


def test_inbound_stream_ids_are_kept_in_bounded_memory() -> None:
    """Each peer-opened stream is handed to the handler once, in any order of arrival, and what
    is kept to know that is bounded by the streams skipped, not by the streams seen."""
    from p2p.transport.quic import InboundStreamIds

    ids = InboundStreamIds()
    for index in range(10_000):  # in order: nothing kept
        assert ids.first_sight(index * 4)
        assert not ids.first_sight(index * 4)
    assert len(ids) == 0
    base = 10_000
    assert ids.first_sight((base + 5) * 4 + 1)  # a higher stream first (the ID's low bits:
    assert len(ids) == 5                         # the stream type, the same for every call)
    for index in (base + 3, base + 0, base + 4, base + 1, base + 2):
        assert ids.first_sight(index * 4 + 1)
        assert not ids.first_sight(index * 4 + 1)
    assert len(ids) == 0
    assert not ids.first_sight((base + 5) * 4 + 1)
    assert not ids.first_sight(4)


async def test_a_connection_keeps_no_memory_per_finished_inbound_stream() -> None:
    with anyio.fail_after(30):
        async with pair(handler=echo) as (server, client, go):
            conn = await dial(client, server, go)
            for _ in range(50):
                st = await conn.open_stream()
                await st.send(b"x")
                await st.send_eof()
                assert await read_all(st) == b"x"
                await st.aclose()
            inbound = server.conns[0]
            assert len(server.streams) == 50  # every stream reached the handler once
            assert len(inbound._seen_inbound) == 0
