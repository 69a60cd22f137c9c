"""PubSubService's per-peer queue: IDONTWANT RPCs (urgent) leave ahead of what is queued, under the
same bound, and wake a writer waiting on an empty queue (both anyio backends)."""

from __future__ import annotations

import anyio
import pytest

from p2p.pubsub.service import _Outbound

pytestmark = pytest.mark.anyio


async def test_urgent_rpcs_jump_the_queue_within_the_bound():
    out = _Outbound(4)
    for i in range(3):
        out.send.send_nowait(b"q%d" % i)
    out.push_urgent(b"U1")
    out.push_urgent(b"U2")
    first = await out.recv.receive()
    assert out.take(first) == b"U1U2q0q1q2"  # the wake-up item is empty: it adds nothing
    for i in range(6):
        out.push_urgent(b"u")
    assert len(out.urgent) == 4 and out.dropped == 2


async def test_urgent_wakes_a_waiting_writer():
    out = _Outbound(4)
    got: list[bytes] = []

    async def writer() -> None:
        got.append(out.take(await out.recv.receive()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await anyio.sleep(0.01)
        out.push_urgent(b"IDONTWANT")
    assert got == [b"IDONTWANT"]


async def test_a_connection_lost_under_a_write_drops_the_peer_quietly(caplog):
    """The writer's send failing with ConnectionClosed (the session gone under it, before the
    watcher of the stream saw the end) is a network error like any other: the peer is dropped
    with a debug line, not an ERROR with an exception group's traceback from the host task."""
    from p2p.errors import ConnectionClosed
    from p2p.host import Host
    from p2p.pubsub.service import PubSubService

    class LostUnderWrite:
        def __init__(self, stream: object) -> None:
            self.stream = stream

        def __getattr__(self, name: str) -> object:
            return getattr(self.stream, name)

        async def send(self, data: bytes) -> None:
            raise ConnectionClosed("yamux session closed: connection lost")

        async def receive(self, max_bytes: int = 65536) -> bytes:
            await anyio.sleep_forever()
            raise AssertionError

    with anyio.fail_after(10):
        async with Host() as a, Host() as b:
            await b.listen()
            opened = []
            new_stream = a.new_stream

            async def lossy_new_stream(*args, **kwargs):
                opened.append(LostUnderWrite(await new_stream(*args, **kwargs)))
                return opened[-1]

            a.new_stream = lossy_new_stream  # type: ignore[method-assign]
            ps_a, _ = PubSubService(a), PubSubService(b)
            ps_a.subscribe("t")  # something to send: our subscription, in the hello
            await a.connect(b.p2p_addrs()[0])
            while not opened or b.peer_id in ps_a.router.peers or b.peer_id in ps_a._outbound:
                await anyio.sleep(0.01)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
