"""OracleNode: a libp2p Host, the protocols it serves, and the work manager that uses them.

A node is a thin `async with` object, like the Host under it. At start-up it registers every
configured `Protocol` (identify, ping, the worker protocol, and whatever the user adds), listens,
then connects to its bootstrap peers and keeps them connected (redial with backoff). A node is a
member of the masa network (oracle/membership.py): it announces its NodeData (staked, the category
flags of its handlers, its addresses) on the oracle protocol to every peer that serves it, takes in
the node data others send, and picks workers from its node tracker by masa's rules
(oracle/selection.py) - a Go masa node selects our workers the same way.

Identify and ping are built into the Host (p2p/host.py installs their handlers itself). The node
takes those handlers down at start-up and puts back only the ones in its protocol list, so the list
is the single truth about what a node serves: drop `PingProtocol` and the node does not answer
ping, as a masa node does not.

    async with OracleNode(key, NodeConfig(peers=(addr,)), handlers={"test": handle_test}) as node:
        response = await node.submit("test", b"hello")
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
from multiaddr import Multiaddr

from p2p.config import HostConfig
from p2p.errors import P2PError
from p2p.host import Host, NetStream
from p2p.identity import PeerId, PrivateKey
from p2p.protocols import identify as idp
from p2p.protocols import ping as pingp

from oracle.gating import WorkerPolicy, WorkLimits
from p2p.logtext import bounded
from oracle.manager import WorkerConfig, WorkHandler, WorkHandlerManager
from oracle.discovery import MasaDiscovery
from oracle.membership import MembershipConfig, MembershipService
from oracle.messages import WorkRequest, WorkResponse
from oracle.nodedata import NodeData, pretty_duration
from oracle.protocol import PROTOCOL_VERSION, Protocol, WorkerProtocol
from oracle.selection import TrackerWorkerDirectory
from oracle.tracker import TWITTER_WORK_TYPES, NodeTracker, category_of, records_work_types
from oracle.worktypes import prepare_work_data

if TYPE_CHECKING:  # prometheus_client is imported only by a node that reports metrics
    from p2p.metrics import Metrics

__all__ = [
    "IdentifyProtocol",
    "MembershipProtocol",
    "SelfConnectError",
    "NodeConfig",
    "OracleNode",
    "PingProtocol",
    "default_worker_config",
]

log = logging.getLogger(__name__)

# Errors a connect/identify may end with for network reasons.
_CONNECT_ERRORS = (P2PError, OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream)
_WILDCARDS = ("/ip4/0.0.0.0/", "/ip6/::/")


class SelfConnectError(P2PError):
    """A peer address names our own peer ID (e.g. two processes sharing one key file)."""


def default_worker_config() -> WorkerConfig:
    """Go's WorkerConfig except the connection timeout.

    Go allows 75 ms to reach a worker; a dial with its handshakes takes 30-100 ms on an idle machine and
    more on a loaded one, so Go's figure would fail every fresh dial. 5 s is still far below the
    45 s response timeout.
    """
    return WorkerConfig(connection_timeout=5.0)


@dataclass(frozen=True)
class NodeConfig:
    """What a node listens on, whom it connects to, which protocol version it speaks, who may use it."""

    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    peers: tuple[str, ...] = ()  # connected (and identified) at start-up
    protocol_version: str = PROTOCOL_VERSION
    env: str = ""
    allowed_peers: tuple[str, ...] | None = None  # None: any peer may submit work
    max_concurrent_per_peer: int = 4
    max_concurrent_total: int = 32
    # queue bounds, queue timeout and answer memory budgets (the two limits above override its own)
    work_limits: WorkLimits = field(default_factory=WorkLimits)
    serve_ping: bool = True  # masa nodes disable ping; ours answers unless told not to
    connect_timeout: float = 10.0  # per bootstrap peer: dial + upgrade
    identify_timeout: float = 10.0
    is_staked: bool = True  # masa nodes self-declare it; True is what makes us selectable
    keep_connected: bool = True  # redial `peers` with backoff when a connection drops
    redial_min: float = 1.0
    redial_max: float = 30.0
    node_data_wait: float = 5.0  # after connecting: how long to wait for the peer's node data
    tracker_size: int = 4096
    # masa's Kademlia (`/masa/kad/1.0.0`, K = 100) and gossip topic (oracle/discovery.py): join
    # through `peers` and be found by every node of the network, find unconnected workers by ID
    # (`python -m oracle node` turns it on unless --no-dht, as every masa node runs it)
    dht: bool = False
    # before sending work to an unconnected worker: its lookup and the dial ending it, within this
    # budget (masa: FindPeer 50 ms + Connect 75 ms; our handshake alone takes tens of ms on a
    # loaded host, our lookup + dial p50 20-70 ms there, see bench/dht.py). It is what a worker
    # the DHT cannot reach costs DistributeWork (tests/e2e/test_dht_requester.py)
    dht_find_timeout: float = 0.5
    gossip_interval: float = 60.0  # how often our NodeData goes out on the gossip topic
    # take NodeData about OTHER peers from the gossip topic into the tracker too (masa's resolver
    # merges them); off: only an author's own entry (MasaDiscovery.accept_third_party). Needs dht
    gossip_third_party: bool = False
    # masa's Discover loop: Advertise + FindPeers on `/masa/oracle_protocol/<v>[-env]`; 0 = off
    discover_interval: float = 60.0
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    worker: WorkerConfig = field(default_factory=default_worker_config)
    host: HostConfig = field(default_factory=HostConfig)

    def __post_init__(self) -> None:
        if not (self.connect_timeout > 0 and self.identify_timeout > 0):
            raise ValueError("NodeConfig timeouts must be > 0")
        if self.discover_interval < 0 or not self.dht_find_timeout > 0:
            raise ValueError("NodeConfig discover_interval must be >= 0, dht_find_timeout > 0")
        if not isinstance(self.gossip_third_party, bool):
            raise ValueError("NodeConfig gossip_third_party must be a bool")
        if self.gossip_third_party and not self.dht:
            raise ValueError("NodeConfig gossip_third_party needs dht (the gossip topic runs with it)")
        if not (0 < self.redial_min <= self.redial_max) or self.node_data_wait < 0:
            raise ValueError("NodeConfig redial/node-data timings must be > 0 (min <= max)")
        if self.max_concurrent_per_peer < 1 or self.max_concurrent_total < 1:
            raise ValueError("NodeConfig concurrency limits must be >= 1")
        if self.allowed_peers is not None:
            for peer in self.allowed_peers:
                PeerId.from_string(peer)  # InvalidPeerId names the bad entry


class IdentifyProtocol(Protocol):
    """identify and identify push, served by the Host's identify service."""

    @property
    def protocol_id(self) -> str:
        return idp.IDENTIFY

    def register(self, node: Any) -> None:
        host: Host = getattr(node, "host", node)
        host.identify_service.start()


class PingProtocol(Protocol):
    """`/ipfs/ping/1.0.0` with the Host's configured bounds."""

    @property
    def protocol_id(self) -> str:
        return pingp.PING

    def register(self, node: Any) -> None:
        host: Host = getattr(node, "host", node)
        host.ping_service.start()


class MembershipProtocol(Protocol):
    """The masa membership protocols (oracle, nodeDataSync, gossip) of a node's MembershipService."""

    def __init__(self, service: MembershipService) -> None:
        self.service = service

    @property
    def protocol_id(self) -> str:
        return self.service.oracle_protocol

    def register(self, node: Any) -> None:
        self.service.register()


_HOST_BUILTINS = (idp.IDENTIFY, idp.IDENTIFY_PUSH, pingp.PING)


class OracleNode:
    """A Host plus the protocols it serves and a WorkHandlerManager distributing over its peers.

    It is itself a valid `register(node)` target: it forwards `set_stream_handler`,
    `remove_stream_handler`, `new_stream` and `peer_id` to its Host.
    """

    def __init__(
        self,
        identity: PrivateKey | None = None,
        config: NodeConfig | None = None,
        *,
        handlers: Mapping[str, WorkHandler] | None = None,
        protocols: Iterable[Protocol] = (),
        rng: Any = None,
        trace: Any = None,
        metrics: Metrics | None = None,
    ) -> None:
        """A node with `identity` (default: a new key), `config`, the work `handlers` it serves,
        extra `protocols` to register at start-up and optional `metrics` (p2p.metrics); `rng`
        orders the workers it tries (tests pass a seeded one). It starts with `async with`.
        `trace` (a `p2p.trace.Tracer`) records every layer of the node's connections, the
        worker protocol's frames decoded (length prefix and JSON)."""
        self.config = config or NodeConfig()
        cfg = self.config
        self.host = Host(identity, cfg.host, trace=trace, metrics=metrics)
        self.worker_policy = WorkerPolicy(
            allowed_peers=cfg.allowed_peers,
            max_concurrent_per_peer=cfg.max_concurrent_per_peer,
            max_concurrent_total=cfg.max_concurrent_total,
            limits=cfg.work_limits,
        )
        self.manager = WorkHandlerManager(cfg.worker, rng=rng)
        for work_type, handler in (handlers or {}).items():
            self.manager.add_handler(work_type, handler)
        self.worker = WorkerProtocol(
            self.manager,
            self.worker_policy,
            version=cfg.protocol_version,
            env=cfg.env,
        )
        if metrics is not None:
            self.manager.observer = metrics.work_done
            policy = self.worker_policy
            metrics.add_scrape_counter("oracle_work_refused", "Work requests the worker policy refused "
                                       "(not allowed, concurrency limits hit)", lambda: policy.refused)
        self._started_at = time.monotonic()
        self.tracker = NodeTracker(self.node_data(), version=cfg.protocol_version,
                                   max_entries=cfg.tracker_size)
        self.membership = MembershipService(
            self.host, self.tracker, self.node_data, version=cfg.protocol_version, env=cfg.env,
            has_bootnodes=bool(cfg.peers), config=cfg.membership,
        )
        if trace is not None:  # the trace decodes our protocols' messages, not just their bytes
            from p2p.trace.protocols import json_documents, json_frames

            trace.register_protocol(self.worker.protocol_id, json_frames("worker"))
            trace.register_protocol(self.membership.oracle_protocol, json_documents("membership"))
            trace.register_protocol(self.membership.gossip_protocol, json_documents("membership"))
            trace.register_protocol(self.membership.sync_protocol,
                                    json_documents("membership", lines=True))
        self.directory = TrackerWorkerDirectory(self.host, self.tracker, protocol_id=self.worker.protocol_id,
                                                rng=rng)
        self.manager.directory = self.directory
        builtin: list[Protocol] = [IdentifyProtocol()]
        if cfg.serve_ping:
            builtin.append(PingProtocol())
        self.protocols: list[Protocol] = [*builtin, self.worker, MembershipProtocol(self.membership),
                                          *protocols]
        self._started = False
        self._kept: set[str] = set()
        self.discovery: MasaDiscovery | None = None  # made in start() when config.dht is set

    # ---- HostLike, so that protocols can register on the node ---------------------------------

    @property
    def peer_id(self) -> PeerId:
        """The node's peer ID (its host's)."""
        return self.host.peer_id

    def set_stream_handler(self, protocol: str, handler: Callable[[NetStream], Awaitable[None]]) -> None:
        """Serve `protocol` with `handler` (the Host's, so a Protocol can register on a node)."""
        self.host.set_stream_handler(protocol, handler)

    def remove_stream_handler(self, protocol: str) -> None:
        """Stop serving `protocol`."""
        self.host.remove_stream_handler(protocol)

    async def new_stream(self, peer: PeerId, protocols: Sequence[str], *, timeout: float = 10.0) -> NetStream:
        """Open a stream to `peer` speaking the first of `protocols` it accepts (the Host's)."""
        return await self.host.new_stream(peer, protocols, timeout=timeout)

    # ---- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> OracleNode:
        """Start the host, register the protocols, listen and connect to the bootstrap peers; if
        any of that fails, the host is closed again and the error comes out as itself."""
        await self.host.__aenter__()
        try:
            await self.start()
        except BaseException as exc:
            await self.host.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        """Close the node (its host); the block's exception, if any, goes on unwrapped."""
        return await self.host.__aexit__(*exc_info)

    async def start(self) -> None:
        """Register the protocols, listen, connect to the bootstrap peers (failures are logged)."""
        for protocol_id in _HOST_BUILTINS:
            self.host.remove_stream_handler(protocol_id)
        for protocol in self.protocols:
            protocol.register(self)
        self._started = True
        if self.config.listen:
            await self.host.listen(*self.config.listen)
        self.tracker.set_self(self.node_data())
        if self.config.dht:
            self._start_discovery()
        results = await self.connect_all(self.config.peers)
        if self.config.keep_connected:
            self.keep_connected(self.config.peers, results)
        if self.discovery is not None:
            await self.discovery.join([a for a in self.config.peers
                                       if isinstance(results.get(str(a)), PeerId)])

    def _start_discovery(self) -> None:
        cfg = self.config
        disc = self.discovery = MasaDiscovery(self.host, self.tracker, version=cfg.protocol_version,
                                              env=cfg.env, on_node_data=self.membership.feed_gossip,
                                              self_data=self._gossip_self,
                                              accept_third_party=cfg.gossip_third_party)
        self.directory.finder = lambda peer: disc.reach(peer, find_timeout=cfg.dht_find_timeout)
        self.host.start_soon(disc.publish_self_every, cfg.gossip_interval)
        if cfg.discover_interval > 0 and self.host.listen_addrs():
            # the first round once the bootnodes had a moment to connect (masa: right after them);
            # a node that does not listen (`oracle work`, `oracle peers`) advertises nothing
            self.host.start_soon(lambda: disc.run_discover(cfg.discover_interval, first_after=1.0))

    async def listen(self, *addrs: str) -> list[Multiaddr]:
        """Listen on more addresses; peers are told: identify push (their peerstores, go's DHT
        answers) and announce (our node data changed)."""
        bound = await self.host.listen(*addrs)
        self.host.identify_service.push_all()
        self.membership.announce_all()
        return bound

    def add_handler(self, work_type: str, handler: WorkHandler) -> None:
        """Serve one more work type; peers are told at once (our categories may have changed)."""
        self.manager.add_handler(work_type, handler)
        if self._started:
            self.membership.announce_all()

    # ---- membership -------------------------------------------------------------------------

    def categories(self) -> list[str]:
        """The masa categories we announce (from our handlers): `web`, `twitter`."""
        types = self.manager.work_types()
        out = []
        if any(t in TWITTER_WORK_TYPES for t in types):
            out.append("twitter")
        if "web" in types:
            out.append("web")
        return out

    def _announce_addrs(self) -> tuple[str, ...]:
        addrs = [str(a) for a in self.host.listen_addrs()]
        concrete = [a for a in addrs if not a.startswith(_WILDCARDS)]
        return tuple(concrete or addrs)

    def node_data(self) -> NodeData:
        """Our NodeData as we announce it (masa's getNodeData: no join times, lastUpdated = now)."""
        types = sorted(self.manager.work_types())
        addrs = self._announce_addrs()
        uptime = int((time.monotonic() - self._started_at) * 1e9)
        categories = self.categories()
        return NodeData(
            multiaddrs=addrs,
            multiaddrs_string=NodeData.join_multiaddrs(addrs),
            peer_id=str(self.host.peer_id),
            last_updated=int(time.time()),
            uptime=uptime,
            uptime_str=pretty_duration(uptime),
            accumulated_uptime=uptime,
            accumulated_uptime_str=pretty_duration(uptime),
            is_active=True,
            is_staked=self.config.is_staked,
            is_twitter_scraper="twitter" in categories,
            is_web_scraper="web" in categories,
            # our extension: work types masa has no category for (Go nodes store and ignore it)
            records={"workTypes": types} if any(category_of(t) == -1 for t in types) else None,
            version=self.config.protocol_version,
        )

    def _gossip_self(self) -> NodeData:
        """Our entry as published on gossip: the tracker's join times, everything else as of now
        (lastUpdated, uptime, handlers), as an announce would send it."""
        joined = self.tracker.self_data
        return replace(self.node_data(), first_joined=joined.first_joined,
                       last_joined=joined.last_joined, version=joined.version)

    def keep_connected(self, addrs: Iterable[str | Multiaddr],
                       first: Mapping[str, PeerId | BaseException] | None = None) -> None:
        """Keep these peers connected (masa's bootnodes): redial with backoff whenever a connection drops."""
        for addr in addrs:
            key = str(addr)
            if key in self._kept:
                continue
            self._kept.add(key)
            self.membership.has_bootnodes = True
            self.host.start_soon(self._keeper, key, (first or {}).get(key))

    async def _keeper(self, addr: str, first: PeerId | BaseException | None) -> None:
        cfg = self.config
        backoff = cfg.redial_min
        peer = first if isinstance(first, PeerId) else None
        if isinstance(first, SelfConnectError):
            return
        if first is not None and peer is None:
            await anyio.sleep(backoff)
        while True:
            if peer is None or self.host.connection(peer) is None:
                try:
                    peer = await self.connect(addr)
                    backoff = cfg.redial_min
                    log.info("connected to %s (%s)", addr, peer)
                    if self.discovery is not None:
                        # (re)joined through this bootnode: into the table, then a self lookup so
                        # the peers closest to us learn our (possibly new) addresses
                        self.host.start_soon(self._join, addr)
                except SelfConnectError as exc:
                    log.error("%s", exc)
                    return
                except _CONNECT_ERRORS as exc:
                    log.info("redial %s failed (%s); next try in %.0f s", addr, exc, backoff)
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, cfg.redial_max)
                    continue
            current = peer
            await self.membership.wait_for(lambda: self.host.connection(current) is None, math.inf)
            log.info("connection to %s dropped: redialling", addr)

    async def _join(self, addr: str) -> None:
        if self.discovery is None:
            return
        try:
            size = await self.discovery.join([addr])
            log.info("joined the DHT through %s: %d peers in the routing table", addr, size)
        except _CONNECT_ERRORS as exc:
            log.info("DHT join through %s failed: %s", addr, bounded(exc))

    def add_protocol(self, protocol: Protocol) -> None:
        """Add a protocol; registered at once if the node runs (connected peers learn it by
        identify push)."""
        self.protocols.append(protocol)
        if self._started:
            protocol.register(self)

    async def close(self) -> None:
        """Stop listening and close every connection (the `async with` exit does this too)."""
        await self.host.close()

    # ---- peers ------------------------------------------------------------------------------

    def _refuse_self(self, peer: PeerId | None, addr: str | Multiaddr) -> None:
        if peer is not None and peer == self.peer_id:
            raise SelfConnectError(
                f"{addr} is this node's own peer ID {self.peer_id}: refusing to connect to "
                "ourselves (is another process using the same key file?)")

    async def connect(self, addr: str | Multiaddr) -> PeerId:
        """Connect to `addr`, wait for identify and (bounded) for the peer's node data."""
        text = str(addr)
        if "/p2p/" in text:
            try:
                named: PeerId | None = PeerId.from_string(text.rsplit("/p2p/", 1)[1].split("/")[0])
            except P2PError:
                named = None  # malformed: the host's own parse reports it
            self._refuse_self(named, addr)
        peer = await self.host.connect(addr, timeout=self.config.connect_timeout)
        if peer == self.peer_id:
            await self.host.disconnect(peer)
            self._refuse_self(peer, addr)
        try:
            await self.host.identify(peer, timeout=self.config.identify_timeout)
        except (P2PError, TimeoutError) as exc:
            log.warning("identify with %s failed (%s): it will not be used as a worker", peer,
                        bounded(exc))
            return peer
        if self.membership.oracle_protocol in self.host.peerstore.protocols(peer):
            if not await self.membership.wait_for_entry(peer, self.config.node_data_wait):
                log.info("no node data from %s within %s s: not selectable until it announces",
                         peer, self.config.node_data_wait)
        elif not self.serves_worker(peer):
            log.info("peer %s does not serve %s", peer, self.worker.protocol_id)
        return peer

    async def connect_all(self, addrs: Iterable[str | Multiaddr]) -> dict[str, PeerId | BaseException]:
        """Connect to every address concurrently; returns each address's peer or its error."""
        results: dict[str, PeerId | BaseException] = {}

        async def one(addr: str | Multiaddr) -> None:
            try:
                results[str(addr)] = await self.connect(addr)
            except _CONNECT_ERRORS as exc:
                log.warning("could not connect to %s: %s", addr, bounded(exc))
                results[str(addr)] = exc

        async with anyio.create_task_group() as tg:
            for addr in addrs:
                tg.start_soon(one, addr)
        return results

    def serves_worker(self, peer: PeerId) -> bool:
        """Whether identify said `peer` speaks our worker protocol (same version and environment)."""
        return self.worker.protocol_id in self.host.peerstore.protocols(peer)

    def workers(self) -> list[PeerId]:
        """Remote peers known to serve the worker protocol."""
        return [p for p in self.host.peerstore.peers() if p != self.peer_id and self.serves_worker(p)]

    # ---- work -------------------------------------------------------------------------------

    async def distribute_work(self, request: WorkRequest) -> WorkResponse:
        """Go's DistributeWork: remote workers first, then local; failures aggregated in Go's words."""
        return await self.manager.distribute_work(request)

    async def submit(self, work_type: str, data: bytes | str = b"", *, request_id: str = "") -> WorkResponse:
        """Distribute one piece of work; the request ID defaults to a fresh UUID, as masa's does."""
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        payload = prepare_work_data(work_type, payload)  # WorkDataError: a Go worker would crash
        request = WorkRequest(work_type=work_type, request_id=request_id or str(uuid.uuid4()), data=payload)
        return await self.distribute_work(request)

    # ---- reporting --------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The JSON-able line the CLI prints once listening."""
        out = {"peer_id": str(self.peer_id), "addrs": self.host.p2p_addrs(),
               "staked": self.config.is_staked, "categories": self.categories()}
        disc = self.discovery
        if disc is not None:
            kad = disc.kad.config
            out["dht"] = {"protocol": disc.kad.protocol, "mode": kad.mode, "k": kad.bucket_size,
                          "alpha": kad.alpha, "refresh_s": kad.refresh_interval, "topic": disc.topic,
                          "namespace": disc.namespace, "discover_s": self.config.discover_interval,
                          "routing_table": len(disc.kad.routing_table)}
        else:
            out["dht"] = False
        return out

    def network(self) -> list[dict[str, Any]]:
        """The network as our tracker knows it (ourselves excluded), JSON-able."""
        out = []
        for data in self.tracker.all_node_data():
            if data.peer_id == str(self.peer_id):
                continue
            categories = [name for name, flag in (("twitter", data.is_twitter_scraper),
                                                  ("web", data.is_web_scraper)) if flag]
            out.append({
                "peer_id": data.peer_id,
                "addrs": list(data.multiaddrs),
                "staked": data.is_staked,
                "active": data.is_active,
                "categories": categories,
                "work_types": sorted(records_work_types(data.records)),
                "validator": data.is_validator,
                "version": data.version,
                "last_updated": data.last_updated,
                "connected": any(str(p) == data.peer_id for p in self.host.connected_peers()),
            })
        return out

    def metrics(self) -> dict[str, Any]:
        """Per-handler counters of the manager and the policy's refusals."""
        handlers = {
            work_type: {
                "calls": m.calls,
                "total_runtime": round(m.total_runtime, 6),
                "mean_runtime": round(m.mean_runtime, 6),
                "errors": m.errors,
                "timeouts": m.timeouts,
            }
            for work_type, m in sorted(self.manager.all_metrics().items())
        }
        return {"handlers": handlers, "refused": self.worker_policy.refused}
