"""MasaDiscovery.reach: the answer is whether the worker is connected when the find ends.

The find's deadline (masa's 50 ms) can cancel it in the same moment its dial completes: the
connection is there and the worker can be sent work, so reach must say so instead of taking the
TimeoutError for "not found".
"""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from oracle.discovery import FIND_TIMEOUT, MasaDiscovery
from oracle.nodedata import NodeData
from oracle.tracker import NodeTracker
from p2p.host import Host
from p2p.identity import PeerId

pytestmark = pytest.mark.anyio


def _discovery(host: Host) -> MasaDiscovery:
    return MasaDiscovery(host, NodeTracker(NodeData(peer_id=str(host.peer_id))))


async def test_a_dial_completing_at_the_find_deadline_counts_as_reached() -> None:
    with anyio.fail_after(20):
        async with Host() as worker, Host() as requester:
            await worker.listen()
            disc = _discovery(requester)
            dials = 0

            async def find_connects_then_overruns(peer: PeerId, *, timeout: float | None = None
                                                  ) -> list[Multiaddr]:
                # the lookup's dial finishes whatever the deadline does (shielded), and the find
                # is cancelled by reach's deadline at its next checkpoint: a dial that completed
                # as the find's time ran out
                nonlocal dials
                dials += 1
                with anyio.CancelScope(shield=True):
                    await requester.connect(worker.p2p_addrs()[0])
                await anyio.sleep_forever()
                raise AssertionError("not reached")

            disc.kad.find_peer = find_connects_then_overruns  # type: ignore[method-assign]
            assert await disc.reach(worker.peer_id, find_timeout=FIND_TIMEOUT)
            assert dials == 1 and requester.connection(worker.peer_id) is not None
            assert await disc.reach(worker.peer_id)  # connected: no second find
            assert dials == 1
            disc.close()


async def test_a_find_that_times_out_unconnected_is_not_reached() -> None:
    with anyio.fail_after(20):
        async with Host() as worker, Host() as requester:
            disc = _discovery(requester)

            async def find_never_answers(peer: PeerId, *, timeout: float | None = None
                                         ) -> list[Multiaddr]:
                await anyio.sleep_forever()
                raise AssertionError("not reached")

            disc.kad.find_peer = find_never_answers  # type: ignore[method-assign]
            t0 = anyio.current_time()
            assert not await disc.reach(worker.peer_id, find_timeout=FIND_TIMEOUT)
            assert anyio.current_time() - t0 >= FIND_TIMEOUT
            assert requester.connection(worker.peer_id) is None
            disc.close()
