"""The oracle found by the network (oracle/discovery.py) among go-libp2p-kad-dht v0.26.1 and
go-libp2p-pubsub v0.12.0 nodes (godht, `/masa/kad/1.0.0` with K = 100, the masa gossip topic).

A Python worker (`OracleNode` with `dht=True`, i.e. `python -m oracle node --dht --bootnode MA`)
joins through one Go bootnode; Go nodes it is no longer connected to find it with
go's FindPeer (as masa's DistributeWork does before sending work) and send it work over
`/masa/worker_protocol/v0.8.4`; Python and Go nodes see each other's NodeData through gossip.
"""

from __future__ import annotations

import json
import time

import anyio
import pytest

from godht import GoDht
from oracle.discovery import gossip_topic
from oracle.handlers import handle_test
from oracle.node import NodeConfig, OracleNode
from p2p.identity import KeyType, PeerId, PrivateKey

pytestmark = pytest.mark.anyio

TOPIC = gossip_topic()


async def test_go_nodes_find_our_worker_and_see_its_node_data(masa_gossip_net: GoDht):
    net = masa_gossip_net
    go_nodes = len(net.nodes)
    with anyio.fail_after(120):
        config = NodeConfig(peers=(net.addr(0),), dht=True, gossip_interval=3600)
        async with OracleNode(PrivateKey.generate(KeyType.Secp256k1), config,
                              handlers={"test": handle_test, "web": handle_test}) as worker:
            host = worker.host
            tracker = worker.tracker
            disc = worker.discovery
            assert disc is not None and len(disc.kad.routing_table) >= go_nodes - 1

            # Gossip both ways: wait for the meshes, then Go and Python publish their own data.
            with anyio.fail_after(15):
                while not disc.pubsub.mesh_peers(TOPIC):
                    await anyio.sleep(0.05)
            await anyio.sleep(1.2)  # a heartbeat on every Go node (go has no mesh API)
            await disc.publish_self()  # (the node also publishes it by itself, 1.5 s after start)
            go3 = net.peer_id(3)
            go_data = json.dumps({"peerId": go3, "lastUpdated": int(time.time()),
                                  "isStaked": True, "isWebScraper": True, "version": "v0.8.4"})
            await net.acall("publish", node=3, topic=TOPIC, data=go_data.encode().hex())
            # a third party's claim about go5 is not taken (default policy)
            liar = json.dumps({"peerId": net.peer_id(5), "isStaked": True, "isWebScraper": True})
            await net.acall("publish", node=4, topic=TOPIC, data=liar.encode().hex())
            with anyio.fail_after(15):
                while go3 not in tracker or disc.refused < 1:
                    await anyio.sleep(0.05)
                for i in range(go_nodes):
                    while not any(json.loads(bytes.fromhex(m["data"])).get("peerId") == str(host.peer_id)
                                  for m in (await net.acall("messages", node=i, topic=TOPIC))["messages"]):
                        await anyio.sleep(0.05)
            entry = tracker.get(go3)
            assert entry is not None and entry.is_staked and entry.is_web_scraper
            (mine,) = [json.loads(bytes.fromhex(m["data"]))
                       for m in (await net.acall("messages", node=2, topic=TOPIC))["messages"]
                       if json.loads(bytes.fromhex(m["data"])).get("peerId") == str(host.peer_id)][:1]
            assert mine["isStaked"] and mine["isWebScraper"] and mine["multiaddrs"]
            assert net.peer_id(5) not in tracker

            # Go nodes that are not connected to the worker find it through the DHT and send
            # it work (masa's FindPeer -> Connect -> worker protocol).
            find_ms = []
            for i in range(1, go_nodes):
                await host.disconnect(PeerId.from_string(net.peer_id(i)))
                with anyio.fail_after(10):
                    while str(host.peer_id) in (await net.acall("connected", node=i))["peers"]:
                        await anyio.sleep(0.02)
                res = await net.acall("work", node=i, peer=str(host.peer_id),
                                      data=b"hello worker".hex(), find_ms=5000, connect_ms=5000,
                                      timeout=60)
                assert not res["was_connected"]
                assert res["response"]["workerPeerId"] == str(host.peer_id), res
                assert not res["response"].get("error"), res
                find_ms.append(res["find_ms"])
            # and our side reaches a Go node it is not connected to before sending it work
            go6 = PeerId.from_string(net.peer_id(6))
            await host.disconnect(go6)
            assert await disc.reach(go6, find_timeout=5.0)
            assert host.connection(go6) is not None
            print(f"go FindPeer of the worker before work: {sorted(find_ms)} ms")
