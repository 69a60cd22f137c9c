"""Our requester's DHT budget (NodeConfig.dht_find_timeout, 0.5 s) before it sends work.

masa gives FindPeer 50 ms and Connect 75 ms per candidate (go's own dial takes a few ms on a LAN);
ours is one budget for the lookup and the dial it ends with, since our handshake takes longer (tens
of ms on a loaded machine). The budget is what a worker the DHT cannot reach costs DistributeWork:
here a routing-table peer that never answers FIND_NODE would hold a lookup for its 10 s request
timeout, and the requester moves on after 0.5 s.
"""

from __future__ import annotations

import time

import anyio
import pytest

from oracle.node import NodeConfig, OracleNode
from oracle.nodedata import NodeData
from p2p.host import Host, NetStream
from p2p.identity import KeyType, PeerId, PrivateKey

pytestmark = pytest.mark.anyio


async def test_a_worker_the_dht_cannot_reach_costs_the_find_budget():
    budget = NodeConfig().dht_find_timeout
    assert budget == 0.5
    stalled = anyio.Event()

    async def black_hole(stream: NetStream) -> None:
        stalled.set()
        await anyio.sleep(30)  # reads nothing, answers nothing

    with anyio.fail_after(30):
        async with Host() as hole, OracleNode(config=NodeConfig(dht=True, discover_interval=0,
                                                               gossip_interval=3600)) as requester:
            await hole.listen()
            hole.set_stream_handler("/masa/kad/1.0.0", black_hole)
            kad = requester.discovery.kad  # type: ignore[union-attr]
            await requester.host.connect(hole.p2p_addrs()[0])
            kad.routing_table.try_add(hole.peer_id, kad._now())
            ghost = str(PeerId.from_public_key(PrivateKey.generate(KeyType.Secp256k1).public_key))
            requester.tracker.handle_node_data(NodeData(peer_id=ghost, is_staked=True, is_web_scraper=True,
                                                        last_updated=int(time.time())))
            t0 = anyio.current_time()
            response = await requester.submit("web", b'{"url": "http://127.0.0.1:9/"}')
            elapsed = anyio.current_time() - t0
            assert stalled.is_set()  # the lookup did ask the silent peer
            assert "failed to find peer" in response.error and ghost in response.error, response
            assert budget <= elapsed < budget + 1.0, elapsed


async def test_discover_loop_runs_on_a_listening_node_only():
    """masa's Discover loop advertises the node as a provider of its oracle namespace: a node that
    does not listen (`oracle work --dht`, `oracle peers`) must not, nobody could dial it."""
    with anyio.fail_after(20):
        async with OracleNode(config=NodeConfig(dht=True, gossip_interval=3600)) as worker, \
                OracleNode(config=NodeConfig(listen=(), dht=True, gossip_interval=3600)) as client:
            assert worker.discovery is not None and client.discovery is not None
            while worker.discovery.rounds < 1:  # first round 1 s after start
                await anyio.sleep(0.05)
            await anyio.sleep(0.5)  # the client started just after: its round would be done too
            assert client.discovery.rounds == 0
            kad = worker.discovery.kad  # a round provides us in our own store first
            assert worker.peer_id in kad.providers.get(worker.discovery.namespace_key, kad._now())
