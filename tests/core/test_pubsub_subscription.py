"""A subscription keeps up with several stream readers delivering at once.

Each reader of a peer's stream delivers one RPC's messages and then yields a loop turn; a
subscriber must take everything queued each time it runs, or three readers outpace it and its
bounded queue (go's 32) drops messages while the subscriber is not slow at all."""

from __future__ import annotations

import anyio
import pytest

from p2p.identity import PeerId, PrivateKey
from p2p.pubsub.service import Message, Subscription

pytestmark = pytest.mark.anyio

READERS = 3
ROUNDS = 100


async def test_subscriber_keeps_up_with_three_readers() -> None:
    sub = Subscription(None, "t", 32)  # type: ignore[arg-type]  # the service is only for cancel
    author = PeerId.from_public_key(PrivateKey.generate().public_key)
    got: list[bytes] = []

    async def reader(r: int) -> None:
        for i in range(ROUNDS):
            sub._deliver(Message("t", b"%d-%d" % (r, i), author, b"", author))
            await anyio.sleep(0)  # as PubSubService's reader does after a delivering RPC

    async def consume() -> None:
        async for msg in sub:
            got.append(msg.data)
            if len(got) + sub.dropped == READERS * ROUNDS:
                return

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for r in range(READERS):
                tg.start_soon(reader, r)
    assert sub.dropped == 0 and len(got) == READERS * ROUNDS, (sub.dropped, len(got))
