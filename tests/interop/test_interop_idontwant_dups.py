"""What IDONTWANT saves in a network of go-libp2p-pubsub v0.12.0 nodes: two Python nodes joined to
the same six Go nodes, one speaking `/meshsub/1.2.0` (ours by default) and one limited to
`/meshsub/1.1.0`, receive the same burst of 4000-byte messages from a Go node; the duplicates each
received, and what the Go nodes queued for each, are printed (A/B in one run). Asserted: go sends
IDONTWANT to the v1.2 node only, and both get every message once.

The burst is 30 messages because go's publisher queues one RPC per message for each peer, in a
queue of 32 RPCs (pubsub.go peerOutboundQueueSize) that drops when full: whenever the machine holds
its writer goroutines off the CPU for the length of a burst over 32, go drops messages for every
subscriber, its own included (a burst of 40 under load: 4 runs of 35 lost 1 or 2 messages at
every node), and gossip cannot repair it since every subscriber is in the publisher's mesh. Nothing else
is queued for a mesh peer of the publisher during the burst (no peer sends it its own messages back,
so it sends no IDONTWANT), and our subscription queue holds 32 messages too."""

from __future__ import annotations

import anyio
import pytest

from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.pubsub.router import FLOODSUB, MESHSUB_10, MESHSUB_11
from p2p.pubsub.service import PubSubService

pytestmark = pytest.mark.anyio

GO_NODES = 6
TOPIC = "/masa/gossip/v0.8.4"
COUNT = 30  # < 32, go's per-peer outbound queue (see above)
SIZE = 4000


async def test_idontwant_duplicates_v12_against_v11(start_godht):
    net = start_godht("-n", GO_NODES, "-topics", TOPIC)
    with anyio.fail_after(90):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as ha, \
                Host(PrivateKey.generate(KeyType.Secp256k1)) as hb:
            nodes = {"v1.2": PubSubService(ha),
                     "v1.1": PubSubService(hb, protocols=(MESHSUB_11, MESHSUB_10, FLOODSUB))}
            for ps in nodes.values():
                for i in range(GO_NODES):
                    await ps.host.connect(net.addr(i))
            # Join once every Go node's subscription is in and our stream to it is open: the
            # join GRAFTs D = 6 of them at once. Joined before (or while) connecting, a
            # heartbeat that knew 5 of them (>= Dlo) would leave the mesh at 5 for good, go's
            # rule and ours, which happened when the connections spanned a heartbeat.
            go_ids = {PeerId.from_string(net.peer_id(i)) for i in range(GO_NODES)}
            with anyio.fail_after(15):
                for ps in nodes.values():
                    while not all(p in ps.topic_peers(TOPIC) and ps.router.peers[p].ready
                                  for p in go_ids):
                        await anyio.sleep(0.05)
            subs = {name: ps.subscribe(TOPIC) for name, ps in nodes.items()}
            for ps in nodes.values():
                assert ps.mesh_peers(TOPIC) == go_ids
            await anyio.sleep(2.2)  # two heartbeats: the Go meshes settle with us in them
            base = {name: ps.router.duplicates for name, ps in nodes.items()}
            got: dict[str, list[bytes]] = {name: [] for name in nodes}

            async def collect(name: str) -> None:
                async for msg in subs[name]:
                    got[name].append(msg.data)

            async with anyio.create_task_group() as tg:
                for name in nodes:
                    tg.start_soon(collect, name)
                await net.acall("publishmany", node=0, topic=TOPIC, count=COUNT, size=SIZE,
                                data=b"burst".hex())
                with anyio.fail_after(20):
                    while any(len(v) < COUNT for v in got.values()):
                        await anyio.sleep(0.05)
                await anyio.sleep(1.5)  # late duplicates
                tg.cancel_scope.cancel()
            traces = [await net.acall("pubsubtrace", node=i) for i in range(GO_NODES)]
            for name, ps in nodes.items():
                pid = str(ps.host.peer_id)
                assert len(got[name]) == COUNT == len(set(got[name]))
                assert len(traces[0]["sent"].get(pid, [])) == COUNT  # the publisher dropped none
                dups = ps.router.duplicates - base[name]
                queued = sum(len(t["sent"].get(pid, [])) for t in traces)
                idw_from_go = sum(len(t["idontwant_sent"].get(pid, [])) for t in traces)
                sent_back = sum(len(t["recv"].get(pid, [])) + len(t["dup"].get(pid, []))
                                for t in traces)
                print(f"IDONTWANT {name}: {COUNT} x {SIZE} B from a Go node, {GO_NODES} Go "
                      f"mesh peers: {dups} duplicates received, Go queued {queued} messages "
                      f"for it, it sent {sent_back} to Go, Go sent it {idw_from_go} "
                      f"IDONTWANT IDs")
                if name == "v1.2":
                    assert idw_from_go > 0
                    assert ps.router.peers[PeerId.from_string(net.peer_id(0))].protocol == "/meshsub/1.2.0"
                else:
                    assert idw_from_go == 0
