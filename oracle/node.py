"""OracleNode: a libp2p Host, the protocols it serves, and the work manager that uses them.

A node is a thin `async with` object, like the Host under it. At start-up it registers every
configured `Protocol` (identify, ping, the worker protocol, and whatever the user adds), listens,
then connects to its bootstrap peers. Connecting includes identify, because identify is how a node
learns which peers serve the worker protocol (the Go node learns it from gossip, which this stack
does not run): `HostWorkerDirectory` reads the peerstore that identify fills.

Identify and ping are built into the Host (p2p/host.py installs their handlers itself). The node
takes those handlers down at start-up and puts back only the ones in its protocol list, so the list
is the single truth about what a node serves: drop `PingProtocol` and the node does not answer
ping, as a masa node does not.

    async with OracleNode(key, NodeConfig(peers=(addr,)), handlers={"test": handle_test}) as node:
        response = await node.submit("test", b"hello")
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from multiaddr import Multiaddr

from p2p.config import HostConfig
from p2p.errors import P2PError
from p2p.host import Host, NetStream
from p2p.identity import PeerId, PrivateKey
from p2p.protocols import identify as idp
from p2p.protocols import ping as pingp

from oracle.gating import WorkerPolicy
from oracle.manager import WorkerConfig, WorkHandler, WorkHandlerManager
from oracle.messages import WorkRequest, WorkResponse
from oracle.protocol import (
    PROTOCOL_VERSION,
    HostWorkerDirectory,
    Protocol,
    WorkerProtocol,
)

__all__ = [
    "IdentifyProtocol",
    "NodeConfig",
    "OracleNode",
    "PingProtocol",
    "default_worker_config",
]

log = logging.getLogger(__name__)

# Errors a connect/identify may end with for network reasons.
_CONNECT_ERRORS = (P2PError, OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream)


def default_worker_config() -> WorkerConfig:
    """Go's WorkerConfig except the connection timeout.

    Go allows 75 ms to reach a worker; our Noise+yamux dial takes 30-100 ms on an idle machine and
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
    serve_ping: bool = True  # masa nodes disable ping; ours answers unless told not to
    connect_timeout: float = 10.0  # per bootstrap peer: dial + upgrade
    identify_timeout: float = 10.0
    worker: WorkerConfig = field(default_factory=default_worker_config)
    host: HostConfig = field(default_factory=HostConfig)

    def __post_init__(self) -> None:
        if not (self.connect_timeout > 0 and self.identify_timeout > 0):
            raise ValueError("NodeConfig timeouts must be > 0")
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
    ) -> None:
        self.config = config or NodeConfig()
        cfg = self.config
        self.host = Host(identity, cfg.host)
        self.worker_policy = WorkerPolicy(
            allowed_peers=cfg.allowed_peers,
            max_concurrent_per_peer=cfg.max_concurrent_per_peer,
            max_concurrent_total=cfg.max_concurrent_total,
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
        self.directory = HostWorkerDirectory(self.host, protocol_id=self.worker.protocol_id)
        self.manager.directory = self.directory
        builtin: list[Protocol] = [IdentifyProtocol()]
        if cfg.serve_ping:
            builtin.append(PingProtocol())
        self.protocols: list[Protocol] = [*builtin, self.worker, *protocols]
        self._started = False

    # ---- HostLike, so that protocols can register on the node ---------------------------------

    @property
    def peer_id(self) -> PeerId:
        return self.host.peer_id

    def set_stream_handler(self, protocol: str, handler: Callable[[NetStream], Awaitable[None]]) -> None:
        self.host.set_stream_handler(protocol, handler)

    def remove_stream_handler(self, protocol: str) -> None:
        self.host.remove_stream_handler(protocol)

    async def new_stream(self, peer: PeerId, protocols: Sequence[str], *, timeout: float = 10.0) -> NetStream:
        return await self.host.new_stream(peer, protocols, timeout=timeout)

    # ---- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> OracleNode:
        await self.host.__aenter__()
        try:
            await self.start()
        except BaseException as exc:
            await self.host.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
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
        await self.connect_all(self.config.peers)

    def add_protocol(self, protocol: Protocol) -> None:
        """Add a protocol; registered at once if the node runs (peers learn it on their next identify)."""
        self.protocols.append(protocol)
        if self._started:
            protocol.register(self)

    async def close(self) -> None:
        await self.host.close()

    # ---- peers ------------------------------------------------------------------------------

    async def connect(self, addr: str | Multiaddr) -> PeerId:
        """Connect to `addr` and wait for identify, so we know whether the peer is a worker."""
        peer = await self.host.connect(addr, timeout=self.config.connect_timeout)
        try:
            await self.host.identify(peer, timeout=self.config.identify_timeout)
        except (P2PError, TimeoutError) as exc:
            log.warning("identify with %s failed (%s): it will not be used as a worker", peer, exc)
        else:
            if not self.serves_worker(peer):
                log.info("peer %s does not serve %s", peer, self.worker.protocol_id)
        return peer

    async def connect_all(self, addrs: Iterable[str | Multiaddr]) -> dict[str, PeerId | BaseException]:
        """Connect to every address concurrently; returns each address's peer or its error."""
        results: dict[str, PeerId | BaseException] = {}

        async def one(addr: str | Multiaddr) -> None:
            try:
                results[str(addr)] = await self.connect(addr)
            except _CONNECT_ERRORS as exc:
                log.warning("could not connect to %s: %s", addr, exc)
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
        request = WorkRequest(work_type=work_type, request_id=request_id or str(uuid.uuid4()), data=payload)
        return await self.distribute_work(request)

    # ---- reporting --------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The JSON-able line the CLI prints once listening."""
        return {"peer_id": str(self.peer_id), "addrs": self.host.p2p_addrs()}

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
