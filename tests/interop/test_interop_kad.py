"""Our Kademlia in a network of go-libp2p-kad-dht v0.26.1 nodes (the godht program).

Eight Go nodes (one process, secp256k1 identities, `/masa/kad/1.0.0`, K = 100 as masa runs it) and
two Python nodes on 127.0.0.1. Each Python node finds every Go node by ID through lookups, every Go
node finds each Python node by ID (go's FindPeer) while not connected to it, and a Python node
killed and restarted is found again. Go's encodings of every
kad message type are compared with ours byte for byte.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import anyio
import pytest
from multiaddr import Multiaddr

from godht import MASA_DHT, GoDht, godht_vectors
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.kad.config import KadConfig, masa_config
from p2p.kad.messages import Message, MessageType
from p2p.kad.service import KadService

pytestmark = pytest.mark.anyio

GO_NODES = 8
VECTORS = Path(__file__).resolve().parents[1] / "core" / "godht_vectors.json"


@pytest.fixture
def masa_net(start_godht) -> GoDht:
    return start_godht("-n", GO_NODES, *MASA_DHT, "-alpha", 10)


async def _wait_in_go_table(net: GoDht, node: int, peer: PeerId, timeout: float = 15.0) -> None:
    with anyio.fail_after(timeout):
        while str(peer) not in (await net.acall("rt", node=node))["peers"]:
            await anyio.sleep(0.05)


async def _drop_go_connections(host: Host, net: GoDht, nodes: range) -> None:
    """Close our connections to these Go nodes and wait until go has seen them end."""
    for i in nodes:
        await host.disconnect(PeerId.from_string(net.peer_id(i)))
    with anyio.fail_after(10):
        for i in nodes:
            while str(host.peer_id) in (await net.acall("connected", node=i))["peers"]:
                await anyio.sleep(0.02)


async def test_python_and_go_find_each_other(masa_net: GoDht):
    net = masa_net
    boot = net.addr(0)
    go_ids = [PeerId.from_string(n["peer_id"]) for n in net.nodes]
    py_ms: list[float] = []
    py_hops: list[int] = []
    go_ms: list[float] = []
    key2 = PrivateKey.generate(KeyType.Secp256k1)
    with anyio.fail_after(120):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as h1:
            await h1.listen()
            dht1 = KadService(h1, masa_config(alpha=10))
            assert await dht1.bootstrap([boot]) >= 1  # connect, table, self lookup
            async with Host(key2) as h2:
                await h2.listen()
                dht2 = KadService(h2, masa_config(alpha=10))
                # P2 joins the same way, then both drop every connection but go0's.
                assert await dht2.bootstrap([boot]) >= 1
                await _wait_in_go_table(net, 0, h1.peer_id)
                await _wait_in_go_table(net, 0, h2.peer_id)
                with anyio.fail_after(15):
                    while go_ids[0] not in dht2.routing_table:  # our lookupCheck of go0
                        await anyio.sleep(0.02)

                # Every Go node finds P2 through a lookup while not connected to it; then P1 (go's
                # lookup for P2 may already have dialled P1: a go lookup queries every peer it
                # hears of, so there `was_connected` may be true).
                # kad-dht's peerFound runs go's lookupCheck of a peer it has just met in a
                # goroutine (a FIND_NODE that dials if need be): on a busy machine it may dial P2
                # again after we dropped the connection (seen once under two busy loops: i = 1).
                # Our own checks never dial, so the drop is repeated until go's lookup starts
                # unconnected.
                for i in range(1, GO_NODES):
                    for h in (h2, h1):
                        for _ in range(3):
                            await _drop_go_connections(h, net, range(i, i + 1))
                            res = await net.acall("findpeer", node=i, peer=str(h.peer_id),
                                                  timeout_ms=10000)
                            if h is h1 or not res["was_connected"]:
                                break
                        if h is h2:
                            assert not res["was_connected"], i
                        assert set(res["addrs"]) & {str(a) for a in h.listen_addrs()}, res
                        go_ms.append(res["ms"])

                # Each Python node finds every Go node through lookups (not connected first).
                for h, dht in ((h1, dht1), (h2, dht2)):
                    for i, (gid, node) in enumerate(zip(go_ids, net.nodes)):
                        if i == 0:
                            continue
                        await _drop_go_connections(h, net, range(i, i + 1))
                        assert h.connection(gid) is None
                        t0 = anyio.current_time()
                        addrs = await dht.find_peer(gid, timeout=10)
                        py_ms.append((anyio.current_time() - t0) * 1000)
                        assert dht.last_lookup is not None and dht.last_lookup.reason == "found"
                        py_hops.append(dht.last_lookup.hops or 0)
                        want = Multiaddr(node["addrs"][0].rpartition("/p2p/")[0])
                        assert want in addrs and h.connection(gid) is not None

                # A client-mode node that knows only go0 finds every Go node in one hop more,
                # and go does not put it in its table (it does not serve the protocol).
                async with Host(PrivateKey.generate(KeyType.Secp256k1)) as h3:
                    await h3.listen()
                    dht3 = KadService(h3, masa_config(alpha=10, mode="client"))
                    assert await dht3.bootstrap([boot], self_lookup=False) == 1
                    for gid in go_ids[1:]:
                        t0 = anyio.current_time()
                        await dht3.find_peer(gid, timeout=10)
                        py_ms.append((anyio.current_time() - t0) * 1000)
                        assert dht3.last_lookup is not None and dht3.last_lookup.hops == 1
                        py_hops.append(dht3.last_lookup.hops)
                    # go1 identifies h3 on the connection h3's find dialled, in a goroutine of
                    # its own: under load its protocols were not in go1's peerstore yet after
                    # the finds (seen 0.57 s later). Identify sets them all at once, and only
                    # identify tells go1 of our ping: wait for that.
                    with anyio.fail_after(10):
                        while "/ipfs/ping/1.0.0" not in (protos := (await net.acall(
                                "protocols", node=1, peer=str(h3.peer_id)))["protocols"]):
                            await anyio.sleep(0.02)
                    assert "/masa/kad/1.0.0" not in protos and "/ipfs/id/1.0.0" in protos
                    assert str(h3.peer_id) not in (await net.acall("rt", node=1))["peers"]

                # Closest peers to a key: ours and go's agree on the Go nodes found.
                key = b"some key"
                ours = await dht1.get_closest_peers(key, timeout=10)
                theirs = (await net.acall("closest", node=3, key=key.hex()))["peers"]
                assert {str(p) for p in ours} >= set(theirs) - {str(h1.peer_id), str(h2.peer_id), net.peer_id(3)}

            # P2 is gone (killed: its connections dropped); restarted with the same key and
            # port, it rejoins through go0 and every Go node finds it again.
            old = [str(a) for a in h2.listen_addrs()]
            async with Host(key2) as h2b:
                await h2b.listen(*old)
                dht2b = KadService(h2b, masa_config(alpha=10))
                new = {str(a) for a in h2b.listen_addrs()}
                assert await dht2b.bootstrap([boot]) >= GO_NODES - 1
                with anyio.fail_after(15):  # go0 sees the new connection (identify, check)
                    while str(h2b.peer_id) not in (await net.acall("connected", node=0))["peers"]:
                        await anyio.sleep(0.05)
                await _wait_in_go_table(net, 0, h2b.peer_id)
                for i in range(1, GO_NODES):
                    res = await net.acall("findpeer", node=i, peer=str(h2b.peer_id), timeout_ms=15000)
                    assert new & set(res["addrs"]), (res, new)
                    conns = (await net.acall("connected", node=i))["peers"]
                    assert str(h2b.peer_id) in conns
    print(f"python find_peer: {len(py_ms)} lookups, p50 {statistics.median(py_ms):.1f} ms, "
          f"max {max(py_ms):.1f} ms, hops max {max(py_hops)}; go FindPeer of python: "
          f"p50 {statistics.median(go_ms):.1f} ms, max {max(go_ms):.1f} ms")


async def test_go_answers_our_requests_and_ours_go_reads(godht_bin: Path):
    """The stack default `/ipfs/kad/1.0.0` (K = 20): PING, FIND_NODE, GET_PROVIDERS at go."""
    with GoDht("-n", 3, binary=godht_bin) as net, anyio.fail_after(60):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as h:
            await h.listen()
            dht = KadService(h, KadConfig())
            await dht.bootstrap([net.addr(0)])
            go0 = PeerId.from_string(net.peer_id(0))
            await dht.ping(go0)
            referrals = await dht.find_node(go0, go0.to_bytes())
            assert {str(p) for p, addrs in referrals if addrs} >= {net.peer_id(1), net.peer_id(2)}
            reply = await dht.request(go0, Message(MessageType.GET_PROVIDERS, key=b"\x12\x20" + bytes(32)))
            assert reply is not None and reply.type is MessageType.GET_PROVIDERS
            assert reply.key == b"\x12\x20" + bytes(32) and not reply.provider_peers
            # go resets the stream for an unsupported request (PUT_VALUE in an unknown namespace)
            with pytest.raises(Exception):
                await dht.request(go0, Message(MessageType.PUT_VALUE, key=b"/nope/x"), timeout=5)
            # go's table holds us (identify listed the protocol, its FIND_NODE check passed)
            await _wait_in_go_table(net, 1, h.peer_id)


def test_go_vectors_are_the_core_known_answers(godht_bin: Path):
    """go's own types (kad-dht pb, pubsub pb, record pb) still encode every message exactly as
    the vectors our core codec tests use (tests/core/godht_vectors.json)."""
    stored = json.loads(VECTORS.read_text())
    assert godht_vectors(godht_bin) == stored
