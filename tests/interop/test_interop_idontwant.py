"""GossipSub v1.2 IDONTWANT between our node and a go-libp2p-pubsub v0.12.0 node (godht, go's
default NewGossipSub options as masa runs them; a RawTracer on the Go node records what it queued
for each peer, what it took in from whom and the IDONTWANT IDs it received).

The players: G, one Go node; P, our PubSubService, connected only to G and in its mesh; Q, a raw
peer (a Host writing hand-made RPCs) connected to both, subscribed to nothing, author of every
message (Q decides who gets what, and when).

1. Go honours ours: P tells G it does not want M1 (before M1 exists: message IDs are from ‖ seqno),
   then Q gives G M1 and M2 (2000 bytes each). G forwards M2 to P but not M1; G tells P (its v1.2
   mesh peer) it has both.
2. We honour go's: Q then gives P M1 and M3 (M3 new to everybody). P delivers both, forwards M3 to
   G, but not M1 (G said it had it); P tells G (v1.2 mesh) it has M1 and M3 before forwarding.
"""

from __future__ import annotations

import anyio
import pytest

from p2p import delimited
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.pubsub.router import MESHSUB_12, id_checksum
from p2p.pubsub.rpc import RPC, Control, PubMessage
from p2p.pubsub.service import PubSubService
from p2p.pubsub.sign import sign

pytestmark = pytest.mark.anyio

TOPIC = "/masa/gossip/v0.8.4"


def _message(key: PrivateKey, seq: int, size: int) -> PubMessage:
    msg = PubMessage(data=seq.to_bytes(8, "big") + bytes(size - 8), seqno=seq.to_bytes(8, "big"),
                     topic=TOPIC)
    sign(msg, key)
    return msg


async def test_go_and_we_exchange_and_honour_idontwant(start_godht):
    net = start_godht("-n", 1, "-topics", TOPIC)
    with anyio.fail_after(60):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as p, \
                Host(PrivateKey.generate(KeyType.Secp256k1)) as q:
            await p.listen()
            ps = PubSubService(p)
            sub = ps.subscribe(TOPIC)

            async def drain(stream):  # Q reads whatever is sent to it, and nothing more
                try:
                    while await stream.receive(65536):
                        pass
                except Exception:
                    pass
            q.set_stream_handler(MESHSUB_12, drain)

            g = await p.connect(net.addr(0))
            assert g == PeerId.from_string(net.peer_id(0))
            with anyio.fail_after(15):
                while g not in ps.mesh_peers(TOPIC) or str(p.peer_id) not in \
                        (await net.acall("topicpeers", node=0, topic=TOPIC))["peers"]:
                    await anyio.sleep(0.05)
            await anyio.sleep(1.2)  # G's heartbeat: its mesh (< Dlo) takes P in
            trace = await net.acall("pubsubtrace", node=0)
            assert trace["protocols"][str(p.peer_id)] == MESHSUB_12  # go's first choice, ours
            assert ps.router.peers[g].protocol == MESHSUB_12

            await q.connect(net.addr(0))
            await q.connect(p.p2p_addrs()[0])
            to_g = await q.new_stream(g, [MESHSUB_12])
            to_p = await q.new_stream(p.peer_id, [MESHSUB_12])
            qkey = q.identity
            m1, m2, m3 = (_message(qkey, n, 2000) for n in (1, 2, 3))

            # 1. P -> G: IDONTWANT M1 (on P's own stream to G, as its router would send it)
            ps._outbound[g].send.send_nowait(
                delimited.encode(RPC(control=Control(idontwant=[[m1.id]])).encode()))
            with anyio.fail_after(10):
                while m1.id.hex() not in (await net.acall("pubsubtrace", node=0))["idontwant_recv"].get("any", []):
                    await anyio.sleep(0.02)
            await to_g.send(delimited.encode(RPC(publish=[m1]).encode())
                            + delimited.encode(RPC(publish=[m2]).encode()))
            with anyio.fail_after(10):
                got = await sub.receive()
            assert got.data == m2.data and got.received_from == g  # G pushed M2 to its mesh
            with anyio.fail_after(10):  # G's IDONTWANT for both reached P
                while not {id_checksum(m1.id), id_checksum(m2.id)} <= set(ps.router.unwanted.get(g, {})):
                    await anyio.sleep(0.01)

            # 2. Q -> P: M1 and M3, at once (G's IDONTWANT lives 3 of P's heartbeats)
            await to_p.send(delimited.encode(RPC(publish=[m1, m3]).encode()))
            received = [got]
            with anyio.fail_after(10):
                while len(received) < 3:
                    received.append(await sub.receive())
            with anyio.fail_after(10):  # P forwarded M3 to G
                while m3.id.hex() not in (await net.acall("pubsubtrace", node=0))["recv"].get(str(p.peer_id), []):
                    await anyio.sleep(0.02)
            with anyio.move_on_after(2.5):  # anything else, M1 from G included, would come now
                received.append(await sub.receive())

            assert [m.data for m in received] == [m2.data, m1.data, m3.data]
            assert [m.received_from for m in received] == [g, q.peer_id, q.peer_id]
            trace = await net.acall("pubsubtrace", node=0)
            mine = str(p.peer_id)
            sent_to_p = set(trace["sent"].get(mine, []))
            from_p = set(trace["recv"].get(mine, [])) | set(trace["dup"].get(mine, []))
            assert m2.id.hex() in sent_to_p and m1.id.hex() not in sent_to_p  # go honoured ours
            assert m3.id.hex() in from_p and m1.id.hex() not in from_p  # we honoured go's
            assert {m1.id.hex(), m2.id.hex()} <= set(trace["idontwant_sent"].get(mine, []))
            # our router's own IDONTWANT for the two large messages Q gave us (M1 twice: the
            # one we injected in step 1, and the router's)
            go_got = trace["idontwant_recv"].get("any", [])
            assert go_got.count(m1.id.hex()) == 2 and go_got.count(m3.id.hex()) == 1
