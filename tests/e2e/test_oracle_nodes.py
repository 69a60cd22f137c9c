"""Several OracleNodes in one process over loopback TCP (the whole stack), on both anyio backends.

Remote order is pinned with a `random.Random` whose shuffle sorts by a given list, so failover
paths are deterministic; every attempt is observed through the demo's RecordingDirectory.
"""

from __future__ import annotations

import random
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from p2p.errors import NegotiationFailed
from p2p.host import NetStream
from p2p.identity import PeerId, PrivateKey

from oracle.demo import RecordingDirectory
from oracle.handlers import handle_test
from oracle.node import NodeConfig, OracleNode
from oracle.protocol import Protocol

pytestmark = pytest.mark.anyio

TIMEOUT = 20


class FixedOrder(random.Random):
    """A shuffle that puts peers in a chosen order (unknown peers last)."""

    def __init__(self, order: list[PeerId]) -> None:
        super().__init__(0)
        self.order = [str(p) for p in order]

    def shuffle(self, x: list[Any]) -> None:  # type: ignore[override]
        x.sort(key=lambda p: self.order.index(str(p)) if str(p) in self.order else len(self.order))


def raising(message: str):
    def handler(data: bytes) -> None:
        raise RuntimeError(message)

    return handler


def keys(n: int) -> tuple[list[PrivateKey], list[PeerId]]:
    ks = [PrivateKey.generate() for _ in range(n)]
    return ks, [PeerId.from_public_key(k.public_key) for k in ks]


async def start(stack: AsyncExitStack, key: PrivateKey | None = None, **kwargs: Any) -> OracleNode:
    config = kwargs.pop("config", NodeConfig())
    return await stack.enter_async_context(OracleNode(key, config, **kwargs))


async def link(a: OracleNode, *others: OracleNode) -> None:
    for other in others:
        await a.connect(other.host.p2p_addrs()[0])


def record(node: OracleNode) -> RecordingDirectory:
    recorder = RecordingDirectory(node.manager.directory)
    node.manager.directory = recorder
    return recorder


async def test_work_is_served_by_another_node() -> None:
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            worker = await start(stack, handlers={"test": handle_test})
            requester = await start(stack, config=NodeConfig(peers=tuple(worker.host.p2p_addrs())))
            assert requester.workers() == [worker.peer_id]
            response = await requester.submit("test", "hello <from> requester", request_id="r-1")
            assert response.error == ""
            assert response.data == "hello <from> requester"
            assert response.worker_peer_id == str(worker.peer_id)
            assert worker.metrics()["handlers"]["test"]["calls"] == 1
            assert requester.metrics()["handlers"] == {}  # nothing ran on the requester
            assert worker.worker_policy.active == 0


async def test_concurrent_work_spreads_over_workers() -> None:
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            # A worker releases a requester's slot only after flushing the answer, so the requester
            # can start its next request a moment before that: give the per-peer limit headroom.
            config = NodeConfig(max_concurrent_per_peer=16)
            workers = [await start(stack, config=config, handlers={"test": handle_test}) for _ in range(2)]
            requester = await start(stack, rng=random.Random(1))
            await link(requester, *workers)
            responses: dict[int, Any] = {}
            limiter = anyio.Semaphore(8)

            async def one(i: int) -> None:
                async with limiter:
                    responses[i] = await requester.submit("test", f"item {i}")

            async with anyio.create_task_group() as tg:
                for i in range(24):
                    tg.start_soon(one, i)
            assert {i: r.error for i, r in responses.items() if r.error} == {}
            assert {i: r.data for i, r in responses.items()} == {i: f"item {i}" for i in range(24)}
            served = {r.worker_peer_id for r in responses.values()}
            assert served == {str(w.peer_id) for w in workers}
            assert sum(w.metrics()["handlers"]["test"]["calls"] for w in workers) == 24


async def test_failover_to_next_worker() -> None:
    (ka, kb, kc, kd), (a, b, c, d) = keys(4)
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            failing = await start(stack, kb, handlers={"test": raising("boom B")})
            good = await start(stack, kc, handlers={"test": handle_test})
            requester = await start(stack, ka, rng=FixedOrder([d, b, c]))
            async with OracleNode(kd, handlers={"test": handle_test}) as dead:
                await link(requester, dead, failing, good)
            # `dead` is closed now; the requester still lists it as a worker (identify said so).
            assert set(requester.workers()) == {b, c, d}
            recorder = record(requester)
            response = await requester.submit("test", "payload")
            assert (response.error, response.data, response.worker_peer_id) == ("", "payload", str(c))
            tried = [(att.peer, bool(att.error)) for att in recorder.attempts]
            assert tried == [(str(d), True), (str(b), True), (str(c), False)]
            assert (recorder.attempts[0].error or "").startswith("error opening stream: ")
            assert recorder.attempts[1].error == "boom B"
            assert failing.metrics()["handlers"]["test"]["errors"] == 1
            # Recent failures go to the back of the line: the next request goes to the good worker first.
            recorder.attempts.clear()
            response = await requester.submit("test", "again")
            assert response.worker_peer_id == str(c)
            assert [att.peer for att in recorder.attempts] == [str(c)]


async def test_failover_to_local_worker() -> None:
    (ka, kb, kc), (a, b, c) = keys(3)
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            wb = await start(stack, kb, handlers={"test": raising("boom B")})
            wc = await start(stack, kc, handlers={"test": raising("boom C")})
            requester = await start(stack, ka, handlers={"test": handle_test}, rng=FixedOrder([b, c]))
            await link(requester, wb, wc)
            recorder = record(requester)
            response = await requester.submit("test", "local please")
            assert (response.error, response.data, response.worker_peer_id) == ("", "local please", str(a))
            assert [(att.peer, att.error) for att in recorder.attempts] == [(str(b), "boom B"), (str(c), "boom C")]
            assert requester.metrics()["handlers"]["test"]["calls"] == 1


async def test_all_fail_with_go_aggregated_text() -> None:
    (ka, kb, kc), (a, b, c) = keys(3)
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            wb = await start(stack, kb, handlers={"test": raising("boom B")})
            wc = await start(stack, kc, handlers={"test": raising("boom C")})
            requester = await start(stack, ka, handlers={"test": raising("boom A")}, rng=FixedOrder([b, c]))
            await link(requester, wb, wc)
            response = await requester.submit("test", "x")
            assert response.error == (
                f"All workers failed. Errors: Worker {b}: boom B; Worker {c}: boom C; Local worker: boom A"
            )
            assert response.data is None and response.worker_peer_id == ""


async def test_no_eligible_workers() -> None:
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            # A node on another environment speaks /masa/worker_protocol/v0.8.4-other: not our worker.
            other = await start(stack, config=NodeConfig(env="other"), handlers={"test": handle_test})
            assert other.worker.protocol_id == "/masa/worker_protocol/v0.8.4-other"
            requester = await start(stack)
            assert (await requester.submit("test", "x")).error == "no eligible workers found"
            await link(requester, other)
            assert requester.workers() == []
            assert (await requester.submit("test", "x")).error == "no eligible workers found"


async def test_not_on_allowlist_is_a_clear_error() -> None:
    (ka, kb, kc), (a, b, c) = keys(3)
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            worker = await start(stack, kb, config=NodeConfig(allowed_peers=(str(c),)), handlers={"test": handle_test})
            stranger = await start(stack, ka)
            friend = await start(stack, kc)
            await link(stranger, worker)
            await link(friend, worker)
            refused = await stranger.submit("test", "x")
            assert refused.error == (
                f"All workers failed. Errors: Worker {b}: work refused: peer {a} is not allowed to submit work"
            )
            served = await friend.submit("test", "x")
            assert (served.error, served.worker_peer_id) == ("", str(b))
            assert worker.metrics()["refused"] == 1
            assert worker.metrics()["handlers"]["test"]["calls"] == 1


async def test_handler_not_found_on_the_worker() -> None:
    (ka, kb), (a, b) = keys(2)
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            worker = await start(stack, kb, handlers={"test": handle_test})
            requester = await start(stack, ka)
            await link(requester, worker)
            # by masa's rules nobody is eligible for a type no one announced...
            assert (await requester.submit("llm", "x")).error == "no eligible workers found"
            # ...but a worker named explicitly is asked, and answers as Go's handler does
            requester.directory.add_worker(b)
            response = await requester.submit("llm", "x")
            assert response.error == f"All workers failed. Errors: Worker {b}: work handler not found"


class EchoProtocol(Protocol):
    """A user protocol: echoes one message back, registered through the same interface."""

    ID = "/example/echo/1.0.0"

    def __init__(self) -> None:
        self.served = 0

    @property
    def protocol_id(self) -> str:
        return self.ID

    def register(self, node: Any) -> None:
        node.set_stream_handler(self.ID, self.handle)

    async def handle(self, stream: NetStream) -> None:
        data = await stream.receive_until_eof(1024)
        await stream.send(data)
        self.served += 1
        await stream.aclose()


async def test_protocols_are_registered_at_start_and_advertised() -> None:
    echo = EchoProtocol()
    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            server = await start(stack, config=NodeConfig(serve_ping=False), protocols=[echo])
            client = await start(stack)
            peer = await client.connect(server.host.p2p_addrs()[0])
            advertised = client.host.peerstore.protocols(peer)
            assert {"/ipfs/id/1.0.0", "/masa/worker_protocol/v0.8.4", EchoProtocol.ID} <= advertised
            assert "/ipfs/ping/1.0.0" not in advertised  # as on a masa node: ping not registered
            stream = await client.host.new_stream(peer, [EchoProtocol.ID])
            await stream.send(b"hi there")
            await stream.send_eof()
            assert await stream.receive_until_eof(1024) == b"hi there"
            assert echo.served == 1
            with pytest.raises(NegotiationFailed):
                await client.host.ping(peer, timeout=5)
            # The server pings the client, whose default protocol list includes ping.
            rtts = await server.host.ping(client.peer_id, timeout=5)
            assert len(rtts) == 1 and rtts[0] >= 0


async def test_response_timeout_and_a_requester_going_away_over_real_streams() -> None:
    """Over real streams the requester bounds its wait with the stream's read deadline (no cancel
    scope): a worker that never answers gives Go's timeout error and the stream is reset, which
    the worker sees as the requester going away: the work is cancelled.

    Both nodes share one event loop, so a stall of the whole process (a loaded machine) lets the
    requester's timer expire a few loop turns before the worker's handler would have started:
    the request is then tried again with a longer timeout, as what is checked needs a handler
    that was running when the requester gave up."""
    (ka, kb), (a, b) = keys(2)
    started: list[int] = []
    cancelled: list[int] = []

    async def never(data: bytes) -> bytes:
        started.append(1)
        try:
            await anyio.Event().wait()
        finally:
            cancelled.append(1)
        return b""

    with anyio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            worker = await start(stack, kb, handlers={"never": never})
            requester = await start(stack, ka)
            await link(requester, worker)
            await requester.host.identify(b)
            from oracle.messages import WorkRequest
            from oracle.protocol import send_work_to_worker

            for response_timeout in (0.3, 1.0, 3.0):
                t0 = anyio.current_time()
                response = await send_work_to_worker(requester.host, b, WorkRequest("never"),
                                                     response_timeout=response_timeout)
                assert response.error == ("error reading response: no response within "
                                          f"{response_timeout} s")
                assert response_timeout <= anyio.current_time() - t0 < response_timeout + 5
                if started:
                    break
            assert started, "the worker's handler never started"
            # the reset reached the worker: each handler that started was cancelled
            while len(cancelled) < len(started):
                await anyio.sleep(0.01)
            assert worker.manager.metrics("never").calls == len(started)
            ok = await send_work_to_worker(requester.host, b, WorkRequest("test"))
            assert ok.error == "work handler not found"  # the worker still serves
