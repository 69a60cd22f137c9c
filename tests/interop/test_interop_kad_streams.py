"""Our kad client reusing one stream per peer (go's message manager) against go-libp2p-kad-dht
v0.26.1 servers (godht, `/masa/kad/1.0.0`, K = 100): the same lookups run by two Python nodes in
one network, one reusing streams and one opening a stream per request (what we did before); both
find the same peers, and the figures (requests per lookup, streams opened) are printed."""

from __future__ import annotations

import hashlib

import anyio
import pytest

from godht import MASA_DHT
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.kad.config import masa_config
from p2p.kad.service import KadService

pytestmark = pytest.mark.anyio

GO_NODES = 8
LOOKUPS = 10


async def test_lookups_reuse_one_stream_per_go_peer(start_godht):
    net = start_godht("-n", GO_NODES, *MASA_DHT, "-alpha", 10)
    with anyio.fail_after(120):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as a, \
                Host(PrivateKey.generate(KeyType.Secp256k1)) as b:
            dhts = {"reuse": KadService(a, masa_config(auto_refresh=False)),
                    "per request": KadService(b, masa_config(auto_refresh=False, stream_reuse=False))}
            for dht in dhts.values():
                await dht.host.listen()
                await dht.bootstrap([net.addr(0)])
            go_peers = {PeerId.from_string(net.peer_id(i)) for i in range(GO_NODES)}
            with anyio.fail_after(20):  # both tables hold every Go node (and the other one)
                for dht in dhts.values():
                    while not go_peers <= set(dht.routing_table.peers()):
                        await anyio.sleep(0.05)
            base = {k: (d.sender.requests, d.sender.streams_opened) for k, d in dhts.items()}
            boot = dict(base)  # what bootstrap and the checks cost
            found: dict[str, list[set[PeerId]]] = {k: [] for k in dhts}
            for n in range(LOOKUPS):
                key = hashlib.sha256(b"key %d" % n).digest()
                for name, dht in dhts.items():
                    closest = await dht.get_closest_peers(key, timeout=20)
                    found[name].append(set(closest) & go_peers)
            figures = {}
            for name, dht in dhts.items():
                requests = dht.sender.requests - base[name][0]
                streams = dht.sender.streams_opened - base[name][1]
                figures[name] = (requests, streams)
                print(f"kad client, {name}: bootstrap + checks {boot[name][0]} requests on "
                      f"{boot[name][1]} streams; then {LOOKUPS} lookups: "
                      f"{requests / LOOKUPS:.1f} requests per lookup, {streams} streams opened "
                      f"({streams / LOOKUPS:.1f} per lookup), {len(dht.sender)} kept")
            assert found["reuse"] == found["per request"]
            assert all(len(f) == GO_NODES for f in found["reuse"])  # every Go node answered
            (req_r, streams_r), (req_p, streams_p) = figures["reuse"], figures["per request"]
            assert req_r >= LOOKUPS * GO_NODES and req_p >= LOOKUPS * GO_NODES
            assert streams_p == req_p and boot["per request"][1] == boot["per request"][0]
            # one stream per peer (8 Go nodes and the other Python node), opened during the
            # bootstrap and kept across lookups (a retry would open one more: counted)
            reuse = dhts["reuse"].sender
            assert reuse.streams_opened <= GO_NODES + 1 + reuse.retries
            assert streams_r <= reuse.retries
            assert len(reuse) == GO_NODES + 1
