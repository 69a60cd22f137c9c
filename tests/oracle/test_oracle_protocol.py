"""The worker stream handler and client over an in-memory fake host (the real Host comes later)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from oracle.framing import read_message, write_message
from oracle.gating import WorkerPolicy
from oracle.manager import WorkerConfig, WorkHandlerManager
from oracle.messages import WorkRequest, WorkResponse
from oracle.handlers import handle_test
from oracle.protocol import (
    WORKER_PROTOCOL_ID,
    HostWorkerDirectory,
    Protocol,
    WorkerProtocol,
    protocol_with_version,
    send_work_to_worker,
)
from p2p.errors import StreamReset

from oracle_fakes import FakeNetwork


def test_protocol_ids() -> None:
    assert WORKER_PROTOCOL_ID == "/masa/worker_protocol/v0.8.4"
    assert protocol_with_version("worker_protocol", "v0.8.4", "test") == "/masa/worker_protocol/v0.8.4-test"
    mgr = WorkHandlerManager()
    assert WorkerProtocol(mgr, None, env="test").protocol_id == "/masa/worker_protocol/v0.8.4-test"
    assert WorkerProtocol(mgr, None, version="v0.9.0").protocol_id == "/masa/worker_protocol/v0.9.0"
    assert isinstance(WorkerProtocol(mgr, None), Protocol)
    with pytest.raises(TypeError):
        Protocol()  # type: ignore[abstract]


def _worker(net: FakeNetwork, peer: str = "peerB", policy: WorkerPolicy | None = None, **kw: Any):
    host = net.add_host(peer)
    mgr = WorkHandlerManager()
    mgr.add_handler("test", handle_test)
    proto = WorkerProtocol(mgr, policy, **kw)
    proto.register(host)
    assert host.handlers[proto.protocol_id] == proto.handle_stream
    return host, mgr, proto


@pytest.mark.anyio
async def test_request_response_exact_bytes() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _worker(net)
        stream = await client.new_stream("peerB", [WORKER_PROTOCOL_ID])
        await write_message(stream, b'{"workType":"test","requestId":"1","data":"aGVsbG8="}')
        body = await read_message(stream, max_size=1 << 20, timeout=5)
        assert body == b'{"data":"hello","workerPeerId":"peerB"}'
        with pytest.raises(anyio.EndOfStream):  # the worker closed its side after answering
            await stream.receive()
        assert net.handler_errors == []


@pytest.mark.anyio
async def test_send_work_to_worker_round_trip() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _worker(net)
        resp = await send_work_to_worker(client, "peerB", WorkRequest("test", "r", b"hi \xff"))
        assert resp == WorkResponse(data="hi \ufffd", worker_peer_id="peerB")
        resp = await send_work_to_worker(client, "peerB", WorkRequest("twitter"))
        assert resp == WorkResponse(error="work handler not found", worker_peer_id="peerB")
        assert client.streams[0].raw.closed and not client.streams[0].raw.reset_called


@pytest.mark.anyio
async def test_client_errors_in_go_words() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        resp = await send_work_to_worker(client, "nobody", WorkRequest("test"))
        assert resp.error.startswith("error opening stream: no addresses for nobody")
        net.add_host("peerC")  # a peer without the worker protocol
        resp = await send_work_to_worker(client, "peerC", WorkRequest("test"))
        assert resp.error.startswith("error opening stream: protocol negotiation failed")


@pytest.mark.anyio
async def test_client_response_timeout_resets_stream() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, mgr, _ = _worker(net)

        async def never(data: bytes) -> None:
            await anyio.Event().wait()

        mgr.add_handler("never", never)
        resp = await send_work_to_worker(client, "peerB", WorkRequest("never"), response_timeout=0.1)
        assert resp.error == "error reading response: no response within 0.1 s"
        assert client.streams[0].raw.reset_called


@pytest.mark.anyio
async def test_client_rejects_malformed_and_oversized_responses() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        evil = net.add_host("evil")

        async def bad_json(stream: Any) -> None:
            await read_message(stream, max_size=1000, timeout=5)
            await write_message(stream, b'{"recordCount":"many"}')

        async def huge(stream: Any) -> None:
            await read_message(stream, max_size=1000, timeout=5)
            await stream.send(b"\xff\xff\xff\xff")

        evil.set_stream_handler("/bad", bad_json)
        evil.set_stream_handler("/huge", huge)
        resp = await send_work_to_worker(client, "evil", WorkRequest("x"), protocol_id="/bad")
        assert resp.error.startswith("error unmarshaling response: json: cannot unmarshal string")
        resp = await send_work_to_worker(client, "evil", WorkRequest("x"), protocol_id="/huge")
        assert resp.error.startswith("error reading response: message of 4294967295 bytes exceeds")


@pytest.mark.anyio
async def test_policy_refusal_is_an_error_response() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, _, proto = _worker(net, policy=WorkerPolicy(allowed_peers=["someone-else"]))
        resp = await send_work_to_worker(client, "peerB", WorkRequest("test", data=b"x"))
        assert resp == WorkResponse(
            error="work refused: peer peerA is not allowed to submit work", worker_peer_id="peerB"
        )
        assert proto.policy.refused == 1 and proto.policy.active == 0


@pytest.mark.anyio
async def test_concurrency_limit_refuses_extra_requests() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, mgr, proto = _worker(net, policy=WorkerPolicy(max_concurrent_per_peer=1, max_queued_per_peer=0))
        started, release = anyio.Event(), anyio.Event()

        async def slow(data: bytes) -> str:
            started.set()
            await release.wait()
            return "slow done"

        mgr.add_handler("slow", slow)
        results: list[WorkResponse] = []

        async def first() -> None:
            results.append(await send_work_to_worker(client, "peerB", WorkRequest("slow")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await started.wait()
            second = await send_work_to_worker(client, "peerB", WorkRequest("test", data=b"x"))
            assert second.error == ("work refused: peer peerA already has 1 requests running,"
                                    " and its queue is full")
            release.set()
        assert results[0].data == "slow done"
        assert proto.policy.active == 0


async def _slow_worker(net: FakeNetwork, policy: WorkerPolicy, **kw: Any):
    """A worker whose `slow` work waits for `release`; `started` is set when one begins."""
    _, mgr, proto = _worker(net, policy=policy, **kw)
    started, release = anyio.Event(), anyio.Event()

    async def slow(data: bytes) -> str:
        started.set()
        await release.wait()
        return "slow done"

    mgr.add_handler("slow", slow)
    return proto, started, release


@pytest.mark.anyio
async def test_requests_over_the_share_wait_for_a_slot() -> None:
    """A burst over the peer's share queues: every request is served, in turn."""
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        proto, started, release = await _slow_worker(net, WorkerPolicy(max_concurrent_per_peer=1))
        results: list[WorkResponse] = []

        async def one(work_type: str) -> None:
            results.append(await send_work_to_worker(client, "peerB", WorkRequest(work_type, data=b"x")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "slow")
            await started.wait()
            for _ in range(3):
                tg.start_soon(one, "test")
            with anyio.fail_after(5):
                while proto.policy.waiting < 3:
                    await anyio.sleep(0.01)
            assert proto.policy.active == 1 and results == []
            release.set()
        assert sorted(r.data for r in results) == ["slow done", "x", "x", "x"]
        assert all(not r.error for r in results)
        assert proto.policy.active == 0 and proto.policy.waiting == 0 and proto.policy.queued == 3


@pytest.mark.anyio
async def test_queued_request_refused_after_the_queue_timeout() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        proto, started, release = await _slow_worker(
            net, WorkerPolicy(max_concurrent_per_peer=1, queue_timeout=0.2))
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_work_to_worker, client, "peerB", WorkRequest("slow"))
            await started.wait()
            second = await send_work_to_worker(client, "peerB", WorkRequest("test", data=b"x"))
            release.set()
        assert second.error == ("work refused: peer peerA already has 1 requests running;"
                                " waited 0.2 s for a turn")
        assert proto.policy.active == 0 and proto.policy.waiting == 0


@pytest.mark.anyio
async def test_answer_over_the_memory_budget_becomes_an_error() -> None:
    """An answer larger than a stream window must fit the budget; one that does not is replaced
    by an error answer, and the budget is free again once the answers are written."""
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        limits = dict(max_answer_bytes_per_peer=2 << 20, max_answer_bytes_total=2 << 20)
        proto = _worker(net, policy=WorkerPolicy(**limits), max_response_size=1 << 20)[2]
        fits = await send_work_to_worker(client, "peerB", WorkRequest("test", data=b"<" * 100_000))
        assert fits.data == "<" * 100_000 and not fits.error  # 600 kB answer, encoded off the loop
        assert proto.policy.answer_bytes == 0 and proto.policy.active == 0
        proto.policy.reserve_answer(proto.policy.admit("someone"), (2 << 20) - 100_000)
        refused = await send_work_to_worker(client, "peerB", WorkRequest("test", data=b"<" * 100_000))
        assert refused.data is None
        assert refused.error.startswith("work refused: an answer of 600038 bytes does not fit the"
                                        " worker's answer memory budget now")


def test_answer_budget_must_hold_the_largest_answer() -> None:
    with pytest.raises(ValueError, match="max_answer_bytes_per_peer"):
        WorkerProtocol(WorkHandlerManager(), WorkerPolicy(max_answer_bytes_per_peer=1 << 20),
                       max_response_size=1 << 20)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "wire",
    [
        b"\x00\x00\x00\x05{bad}",  # not JSON
        b"\x00\x00\x00\x0e{\"workType\":1}",  # wrong type
        b"\xff\xff\xff\xff",  # 4 GiB announced
        b"\x00\x00\x10\x01",  # just over the configured 4 KiB limit
    ],
)
async def test_malformed_request_resets_stream(wire: bytes) -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, _, proto = _worker(net, max_request_size=4096)
        stream = await client.new_stream("peerB", [WORKER_PROTOCOL_ID])
        await stream.send(wire)
        with anyio.fail_after(5), pytest.raises(StreamReset):
            await stream.receive()
        assert proto.policy.active == 0 and net.handler_errors == []


@pytest.mark.anyio
async def test_silent_requester_is_reset_after_read_timeout() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, _, proto = _worker(net, read_timeout=0.05)
        stream = await client.new_stream("peerB", [WORKER_PROTOCOL_ID])
        await stream.send(b"\x00\x00\x00\x10{")  # a header and one byte, then nothing
        with anyio.fail_after(5), pytest.raises(StreamReset):
            await stream.receive()
        assert proto.policy.active == 0


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["reset", "close"])
async def test_requester_going_away_cancels_the_work(how: str) -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, mgr, proto = _worker(net)
        started, cancelled = anyio.Event(), anyio.Event()

        async def long_work(data: bytes) -> str:
            started.set()
            try:
                await anyio.Event().wait()
            finally:
                cancelled.set()
            return "unreachable"

        mgr.add_handler("long", long_work)
        stream = await client.new_stream("peerB", [WORKER_PROTOCOL_ID])
        await write_message(stream, WorkRequest("long").to_json())
        with anyio.fail_after(5):
            await started.wait()
            await (stream.reset() if how == "reset" else stream.aclose())
            await cancelled.wait()
        worker_stream = net.hosts["peerB"].streams[0]
        with anyio.fail_after(5):
            while not worker_stream.raw.reset_called:  # handler resets the abandoned stream
                await anyio.wait_all_tasks_blocked()
        assert proto.policy.active == 0
        m = mgr.metrics("long")
        assert (m.calls, m.errors, m.timeouts) == (1, 0, 0)


@pytest.mark.anyio
async def test_unencodable_result_gives_marshal_error() -> None:
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, mgr, _ = _worker(net)
        mgr.add_handler("nan", lambda data: {"x": float("nan")})
        resp = await send_work_to_worker(client, "peerB", WorkRequest("nan"))
        assert resp.error == "error marshaling work response: json: unsupported value: NaN"
        assert resp.worker_peer_id == "peerB"


@pytest.mark.anyio
async def test_distribute_work_over_hosts() -> None:
    """The spike's acceptance shape: node A distributes, node B (a worker) answers."""
    async with FakeNetwork() as net:
        a = net.add_host("peerA")
        _worker(net, "peerB")
        net.add_host("peerC")  # in the peerstore as a worker, but gone from the network
        a.peerstore.add_protocols("peerB", WORKER_PROTOCOL_ID)
        a.peerstore.add_protocols("peerD", "/other/1.0.0")
        directory = HostWorkerDirectory(a, workers=["peerC"])
        assert sorted(map(str, directory.eligible_peers("test"))) == ["peerB", "peerC"]
        mgr_a = WorkHandlerManager(WorkerConfig(connection_timeout=5), directory=directory)
        resp = await mgr_a.distribute_work(WorkRequest("test", "req-1", b"from A"))
        assert resp.data == "from A" and resp.worker_peer_id == "peerB"
        del net.hosts["peerC"]
        directory.remove_worker("peerB")  # explicit list only matters for peers not in the peerstore
        resp = await mgr_a.distribute_work(WorkRequest("test", "req-2", b"again"))
        assert resp.worker_peer_id == "peerB"


@pytest.mark.anyio
async def test_work_that_waits_times_out_at_its_deadline(anyio_backend: str) -> None:
    """The work's deadline, counted from its start, holds for work that outlives a loop turn
    (on asyncio it is set at the next turn, with the watcher)."""
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, mgr, _ = _worker(net, work_timeout=0.2)

        async def stuck(data: bytes) -> str:
            await anyio.sleep(30)
            return "unreachable"

        mgr.add_handler("stuck", stuck)
        start = anyio.current_time()
        with anyio.fail_after(10):
            resp = await send_work_to_worker(client, "peerB", WorkRequest("stuck"))
        assert resp == WorkResponse(error="work execution timed out", worker_peer_id="peerB")
        assert anyio.current_time() - start >= 0.2
        m = mgr.metrics("stuck")
        assert (m.calls, m.errors, m.timeouts) == (1, 1, 1)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_work_done_within_its_turn_gets_no_deadline_timer(anyio_backend: str) -> None:
    """On asyncio the work's scope gets its deadline (a loop timer) only at the next loop turn:
    a handler that can wait but answers without waiting runs in a scope that never had one, one
    that waits gets the deadline counted from its start."""
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, mgr, _ = _worker(net, work_timeout=30)
        scopes: list[tuple[float, anyio.CancelScope]] = []
        execute = mgr.execute_work

        async def spy(request: WorkRequest, **kw: Any) -> WorkResponse:
            scopes.append((anyio.current_time(), kw["scope"]))
            return await execute(request, **kw)

        mgr.execute_work = spy  # type: ignore[method-assign]

        async def waits(data: bytes) -> str:
            if data:
                return "at once"
            await anyio.sleep(0.01)
            return "waited"

        mgr.add_handler("waits", waits)
        assert (await send_work_to_worker(client, "peerB", WorkRequest("waits", data=b"x"))).data == "at once"
        assert (await send_work_to_worker(client, "peerB", WorkRequest("waits"))).data == "waited"
        (_, instant), (started, waited) = scopes
        assert instant.deadline == float("inf")
        assert started < waited.deadline <= started + 30


@pytest.mark.anyio
async def test_work_that_cannot_wait_is_answered_without_a_watcher(anyio_backend: str) -> None:
    """A handler without await is run by the manager alone (no scope passed, no watcher); its
    answer and errors reach the requester as any other."""
    async with FakeNetwork() as net:
        client = net.add_host("peerA")
        _, mgr, _ = _worker(net)
        calls: list[dict[str, Any]] = []
        execute = mgr.execute_work

        async def spy(request: WorkRequest, **kw: Any) -> WorkResponse:
            calls.append(kw)
            return await execute(request, **kw)

        mgr.execute_work = spy  # type: ignore[method-assign]

        async def fails(data: bytes) -> str:
            raise ValueError("no")

        mgr.add_handler("fails", fails)
        assert (await send_work_to_worker(client, "peerB", WorkRequest("test", data=b"x"))).data == "x"
        resp = await send_work_to_worker(client, "peerB", WorkRequest("fails"))
        assert resp == WorkResponse(error="no", worker_peer_id="peerB")
        assert [sorted(kw) for kw in calls] == [["timeout"], ["timeout"]]
        assert net.handler_errors == []
