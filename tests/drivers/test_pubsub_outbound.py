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
