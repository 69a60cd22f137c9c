"""NodeData on masa's gossip topic from go-libp2p-pubsub v0.12.0 nodes (godht, `/masa` DHT, K = 100):
what an oracle node takes, by default as a masa node does, and with accept_third_party.

A masa node publishes entries about other peers on the topic (joins, leaves, stale notices) and
takes none (masa-oracle e90264a: the topic is subscribed with includeSelf=false and every message
is dropped before HandleNodeData). So by default an oracle node drops every entry whose peerId is
not the message's author; it takes the author's own entry (what masa takes on oracle_protocol from
the peer itself). With accept_third_party the entries about others go through masa's HandleNodeData
merge (a newer stale notice about a known staked entry changes its timestamps, not its flags).
"""

from __future__ import annotations

import json
import time

import anyio
import pytest

from godht import GoDht
from oracle.discovery import MasaDiscovery, gossip_topic
from oracle.node import NodeConfig, OracleNode
from oracle.nodedata import NodeData
from oracle.tracker import NodeTracker
from p2p.host import Host
from p2p.identity import KeyType, PrivateKey

pytestmark = pytest.mark.anyio

TOPIC = gossip_topic()


async def test_third_party_node_data_on_the_topic_is_dropped_as_masa_drops_it(masa_gossip_net: GoDht):
    net = masa_gossip_net
    go_nodes = len(net.nodes)
    with anyio.fail_after(90):
        config = NodeConfig(peers=(net.addr(0),), dht=True, gossip_interval=3600, discover_interval=0)
        async with OracleNode(PrivateKey.generate(KeyType.Secp256k1), config) as node, \
                Host(PrivateKey.generate(KeyType.Secp256k1)) as other:
            disc = node.discovery
            assert disc is not None and not disc.accept_third_party  # the default
            await other.listen()
            tracker = NodeTracker(NodeData(peer_id=str(other.peer_id)))
            open_disc = MasaDiscovery(other, tracker, accept_third_party=True)
            await open_disc.join([net.addr(1)])
            with anyio.fail_after(15):
                while not (disc.pubsub.mesh_peers(TOPIC) and open_disc.pubsub.mesh_peers(TOPIC)):
                    await anyio.sleep(0.05)
            await anyio.sleep(1.2)  # a heartbeat on every Go node: their meshes take us in

            now = int(time.time())
            go = [net.peer_id(i) for i in range(go_nodes)]
            # what a masa node publishes: a join of another peer (masa writes every field),
            # its stale notice later, the author's own entry, and something that is not NodeData
            joined = {"peerId": go[5], "lastUpdated": now - 10, "isActive": True,
                      "isStaked": True, "isWebScraper": True, "version": "v0.8.4"}
            stale = {"peerId": go[5], "lastUpdated": now, "activity": 1}
            own = {"peerId": go[6], "lastUpdated": now, "isStaked": True,
                   "isTwitterScraper": True}
            # The notice goes out once both of ours have the join: gossip keeps no order between
            # two messages (each is taken from whichever peer delivers it first), and a notice
            # taken before the join leaves the join's entry (an unknown peer's notice is stored
            # as it is, unstaked, and the older, staked join then replaces it).
            await net.acall("publish", node=4, topic=TOPIC, data=json.dumps(joined).encode().hex())
            with anyio.fail_after(15):
                while disc.third_party_dropped < 1 or go[5] not in tracker:
                    await anyio.sleep(0.02)
            for author, body in ((4, stale), (6, own)):
                await net.acall("publish", node=author, topic=TOPIC,
                                data=json.dumps(body).encode().hex())
            await net.acall("publish", node=2, topic=TOPIC, data=b"{not json".hex())

            def done() -> bool:
                entry = tracker.get(go[5])
                return disc.refused >= 3 and go[6] in node.tracker and open_disc.refused >= 1 \
                    and go[6] in tracker and entry is not None and entry.last_updated == now

            with anyio.fail_after(15):
                while not done():
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)  # anything else would arrive now
            # default (as masa): the two entries go4 wrote about go5 are dropped; (taken also
            # counts our own entry, which a node's own subscription gets when it publishes)
            assert disc.third_party_dropped == 2 and disc.refused == 3
            assert go[5] not in node.tracker
            entry = node.tracker.get(go[6])
            assert entry is not None and entry.is_staked and entry.is_twitter_scraper
            # accept_third_party: masa's HandleNodeData merge of the join, then the notice
            assert open_disc.refused == 1 and open_disc.third_party_dropped == 0
            go5 = tracker.get(go[5])
            assert go5 is not None and go5.is_staked and go5.is_web_scraper  # flags kept
            assert go5.last_updated == now  # the newer notice's timestamp merged
            open_disc.close()
