"""How an oracle node is found by the network, not only by the peers it names: Kademlia and GossipSub
as masa runs them (masa-network.md §2, §3).

`MasaDiscovery(host, tracker)` serves `/masa/kad/1.0.0` (K = 100, as masa), joins through the
bootnodes (`join`), subscribes to `/masa/gossip/<version>[-env]`, takes the NodeData it carries into
the tracker, publishes our own NodeData there (`publish_self`), and finds a worker that is not
connected by its ID before work is sent to it (`reach`, masa's 50 ms FindPeer then Connect).

masa's Discover loop (pkg/network/discover.go) runs too (`run_discover`): every minute we
Advertise ourselves under the namespace `/masa/oracle_protocol/<version>[-env]` (DHT Provide of
CIDv1(raw, sha2-256(namespace)): ADD_PROVIDER to the peers closest to its multihash) and FindPeers
(GET_PROVIDERS for it), dialling the providers we are not connected to. Every masa node advertises
the same namespace, so this is how nodes that share no bootnode connection meet, and how a masa
node that restarted, or that never heard of us, finds us.

Whose node data is taken from the gossip topic. masa nodes publish entries about *other* peers
there (the joins, leaves and stale notices their tracker queues), and take about every other one:
masa-oracle e90264a subscribes the topic with includeSelf=false (node/protocol.go
subscribeToTopics), whose loop (pkg/pubsub/manager.go AddSubscription) drops what it reads, but
every node's resolver cache (pkg/db/resolver_cache.go monitorNodeData) subscribes the tracker a
second time through Manager.Subscribe, which hands out the *same* subscription and reads it
without that check; whichever loop wins a message decides, and the second one gives it to
NodeEventTracker.HandleMessage, i.e. HandleNodeData (seen on a real masa node: "Stale or replayed
node data received for node: <ours>" at each of our publications). HandleNodeData re-queues what it
merged, so two masa nodes echo an entry to each other once a second. We do not follow masa there:
by default we drop every entry whose `peerId` is not the message's (signature-checked) author
(`third_party_dropped`), so nobody can make us list a third node as a staked worker through gossip
and we join no echo. We do take an author's own entry (so does masa, in the same
draw), which is what masa accepts from a peer on oracle_protocol (the sender must be the entry's
peer), so Python nodes see each other's node data through gossip.
Third-party node data reaches us, as it reaches masa, on the `/masa/gossip/` stream and in
nodeDataSync pushes (oracle/membership.py). `accept_third_party=True` takes topic entries about
others too, through the tracker's gossip merge (masa's HandleNodeData rules, the bounded tracker).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import anyio
from multiaddr import Multiaddr

from oracle.nodedata import NodeData, NodeDataError
from oracle.protocol import PROTOCOL_VERSION, protocol_with_version
from oracle.tracker import NodeTracker
from p2p.errors import P2PError
from p2p.hostapi import HostLike
from p2p.identity import PeerId
from p2p.kad.config import KadConfig, masa_config
from p2p.kad.service import KadService, PeerNotFound
from p2p.pubsub.router import GossipSubParams
from p2p.pubsub.service import PubSubService

log = logging.getLogger("oracle.discovery")

FIND_TIMEOUT = 0.05  # masa DistributeWork: DHT.FindPeer with a 50 ms context
DISCOVER_INTERVAL = 60.0  # masa Discover: Advertise + FindPeers every minute
PROVIDERS_LIMIT = 100  # go's routing discovery: FindPeers without a limit asks for 100


def namespace_key(namespace: str) -> bytes:
    """The DHT key go's routing discovery provides a namespace under: the multihash (sha2-256,
    `12 20 <digest>`) of CIDv1(raw, sha2-256(namespace))."""
    return b"\x12\x20" + hashlib.sha256(namespace.encode()).digest()


@dataclass
class DiscoverRound:
    """What one Discover round did: peers told we provide, providers found, dials made."""

    advertised_to: int = 0
    providers: int = 0
    dialled: int = 0
    dial_failures: int = 0


def gossip_topic(version: str = PROTOCOL_VERSION, env: str = "") -> str:
    """masa's node-data topic: `/masa/gossip/<version>[-<env>]` (topicWithVersion)."""
    return protocol_with_version("gossip", version, env)


class MasaDiscovery:
    def __init__(self, host: HostLike, tracker: NodeTracker, *, version: str = PROTOCOL_VERSION,
                 env: str = "", kad_config: KadConfig | None = None,
                 gossip_params: GossipSubParams | None = None,
                 accept_third_party: bool = False,
                 on_node_data: Callable[[NodeData], object] | None = None,
                 self_data: Callable[[], NodeData] | None = None) -> None:
        self.host = host
        self.tracker = tracker
        # where gossiped node data goes: the tracker's gossip merge by default, or the membership
        # service's `feed_gossip` (the same merge, plus the actions masa takes on its result)
        self.on_node_data = on_node_data or tracker.handle_node_data
        # what `publish_self` sends, made at each publication: a masa node drops an entry older
        # than the one it holds ("stale or replayed"), so a start-time copy would be ignored
        self.self_data = self_data or (lambda: tracker.self_data)
        self.topic = gossip_topic(version, env)
        self.namespace = protocol_with_version("oracle_protocol", version, env)
        self.namespace_key = namespace_key(self.namespace)
        self.last_round: DiscoverRound | None = None
        self.rounds = 0
        self.accept_third_party = accept_third_party
        self.kad = KadService(host, kad_config or masa_config())
        self.pubsub = PubSubService(host, gossip_params)
        self._sub = self.pubsub.subscribe(self.topic)
        self.taken = 0  # node data entries taken from gossip
        self.refused = 0  # undecodable, or about someone else without accept_third_party
        self.third_party_dropped = 0  # of those, about someone else (as every masa node drops)
        host.start_soon(self._consume)

    async def join(self, bootnodes: Iterable[str | Multiaddr], *, timeout: float | None = None) -> int:
        """Connect to the bootnodes and look ourselves up (the peers closest to us learn of us);
        returns the routing table's size."""
        return await self.kad.bootstrap(bootnodes, timeout=timeout)

    async def publish_self(self) -> bytes:
        """Publish our own NodeData (`self_data()`, by default the tracker's entry) on the topic."""
        return await self.pubsub.publish(self.topic, self.self_data().to_go_json())

    async def _consume(self) -> None:
        async for msg in self._sub:
            try:
                data = NodeData.from_json(msg.data)
            except NodeDataError as exc:
                self.refused += 1
                log.debug("gossip from %s is not NodeData: %s", msg.author, exc)
                continue
            if data.peer_id != str(msg.author) and not self.accept_third_party:
                self.refused += 1
                self.third_party_dropped += 1
                continue
            self.on_node_data(data)
            self.taken += 1

    async def reach(self, peer: PeerId, *, find_timeout: float = FIND_TIMEOUT) -> bool:
        """masa's step before sending work: connected already, or found (and so dialled)
        through the DHT within `find_timeout`. False means: skip this worker.

        The answer is whether we are connected once the find ends, however it ends: a dial that
        completed as the deadline cancelled the find reached the worker all the same."""
        if self.host.connection(peer) is not None:
            return True
        try:
            with anyio.fail_after(find_timeout):
                await self.kad.find_peer(peer, timeout=find_timeout)
        except (PeerNotFound, TimeoutError, P2PError, OSError) as exc:
            log.debug("find of worker %s ended: %r", peer, exc)
        return self.host.connection(peer) is not None

    async def advertise(self, *, timeout: float | None = None) -> int:
        """masa's Advertise: ADD_PROVIDER ourselves under the namespace at the closest peers;
        returns how many were told."""
        return await self.kad.provide(self.namespace_key, timeout=timeout)

    async def find_peers(self, *, limit: int = PROVIDERS_LIMIT,
                         timeout: float | None = None) -> list[tuple[PeerId, list[Multiaddr]]]:
        """masa's FindPeers: the namespace's providers (GET_PROVIDERS), ourselves left out."""
        found = await self.kad.find_providers(self.namespace_key, count=limit, timeout=timeout)
        return [(peer, addrs) for peer, addrs in found if peer != self.host.peer_id]

    async def discover_once(self, *, max_dials: int = 16, dial_timeout: float = 10.0,
                            timeout: float | None = None) -> DiscoverRound:
        """One Discover round: Advertise, FindPeers, dial up to `max_dials` providers we are not
        connected to (masa dials one per round; the others it meets in later rounds)."""
        result = DiscoverRound()
        try:
            result.advertised_to = await self.advertise(timeout=timeout)
        except (P2PError, OSError, TimeoutError) as exc:
            log.debug("advertising %s failed: %r", self.namespace, exc)
        providers = await self.find_peers(timeout=timeout)
        result.providers = len(providers)
        todo = [(p, a) for p, a in providers if self.host.connection(p) is None][:max_dials]

        async def dial(peer: PeerId, addrs: list[Multiaddr]) -> None:
            try:
                await self.kad.connect(peer, addrs, timeout=dial_timeout)
                result.dialled += 1
            except (P2PError, OSError, TimeoutError) as exc:
                result.dial_failures += 1
                log.debug("provider %s of %s not dialled: %r", peer, self.namespace, exc)

        async with anyio.create_task_group() as tg:
            for peer, addrs in todo:
                tg.start_soon(dial, peer, addrs)
        self.rounds += 1
        self.last_round = result
        return result

    async def run_discover(self, interval: float = DISCOVER_INTERVAL, *, first_after: float = 0.0) -> None:
        """masa's Discover loop: a round after `first_after`, then every `interval` seconds (run
        it with host.start_soon)."""
        await anyio.sleep(first_after)
        while True:
            try:
                with anyio.fail_after(max(interval, self.kad.config.lookup_timeout)):
                    round_ = await self.discover_once()
                log.debug("discover %s: %s", self.namespace, round_)
            except (P2PError, OSError, TimeoutError) as exc:
                log.debug("discover round failed: %r", exc)
            await anyio.sleep(interval)

    async def publish_self_every(self, interval: float, *, first_after: float = 1.5) -> None:
        """Publish our NodeData after `first_after` (the mesh forms on the first heartbeats),
        then every `interval` seconds (run it with host.start_soon)."""
        await anyio.sleep(first_after)
        while True:
            try:
                await self.publish_self()
            except (P2PError, ValueError) as exc:
                log.debug("publishing our node data failed: %r", exc)
            await anyio.sleep(interval)

    def close(self) -> None:
        self._sub.cancel()
        self.pubsub.close()
        self.kad.close()
