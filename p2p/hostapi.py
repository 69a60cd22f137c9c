"""The structural host type protocol services are written against (`HostLike`).

A service (identify, ping, Kademlia, GossipSub, the masa membership) is a class constructed with a
host; it registers stream handlers and connection listeners and starts tasks through the methods
below, and needs nothing else from `p2p.host.Host`. Writing services against this Protocol instead
of the concrete Host keeps the Host from growing with every protocol and lets a test hand a service
a small fake host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from multiaddr import Multiaddr

from p2p.identity import PeerId, PrivateKey, PublicKey

if TYPE_CHECKING:
    from p2p.config import HostConfig
    from p2p.events import ConnectionListener
    from p2p.peerstore import Peerstore
    from p2p.protocols.identify import IdentifyInfo

__all__ = ["ConnectionLike", "HostLike", "NetStreamLike", "StreamHandler"]


class ConnectionLike(Protocol):
    """What a service may read from a connection the Host hands it (events, `stream.conn`)."""

    @property
    def remote_peer(self) -> PeerId: ...
    @property
    def remote_public_key(self) -> PublicKey: ...
    @property
    def direction(self) -> str: ...  # "inbound" | "outbound"
    @property
    def local_addr(self) -> Multiaddr: ...
    @property
    def remote_addr(self) -> Multiaddr: ...
    @property
    def identify_info(self) -> IdentifyInfo | None: ...  # None until (or unless) identify succeeded
    @property
    def is_closed(self) -> bool: ...


class NetStreamLike(Protocol):
    """A negotiated application stream: bytes in and out, plus who and what.

    `receive` returns at least one byte or raises `anyio.EndOfStream`; `aclose` closes our side
    gracefully (FIN) and never waits for the peer; `reset` aborts both directions.
    """

    protocol: str

    @property
    def remote_peer(self) -> PeerId: ...
    @property
    def conn(self) -> ConnectionLike: ...

    async def send(self, item: bytes) -> None: ...
    async def receive(self, max_bytes: int = 65536) -> bytes: ...
    async def receive_exactly(self, n: int) -> bytes: ...
    async def receive_until_eof(self, limit: int) -> bytes: ...
    async def send_eof(self) -> None: ...
    async def aclose(self) -> None: ...
    async def reset(self) -> None: ...
    def set_read_deadline(self, deadline: float | None) -> bool: ...


StreamHandler = Callable[[Any], Awaitable[None]]  # called with a NetStreamLike


class HostLike(Protocol):
    """What a protocol service may use of a host.

    - `set_stream_handler(protocol, handler)`: inbound streams negotiated to `protocol` run
      `await handler(stream)` in a task of their own; the Host closes the stream after it returns
      and resets it if it raised.
    - `new_stream(peer, protocols, timeout=)`: dials if needed, negotiates the first protocol the
      peer accepts.
    - `add_connection_listener(listener)`: see `p2p.events`; returns an unsubscribe function.
    - `start_soon(fn, *args)`: run `await fn(*args)` in the host's task group (cancelled when the
      host closes; a no-op once it is closing); an exception it raises is logged, not propagated.
    """

    peer_id: PeerId
    identity: PrivateKey
    peerstore: Peerstore
    config: HostConfig

    @property
    def protocols(self) -> list[str]: ...  # the protocols we have handlers for (sorted)

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None: ...
    def remove_stream_handler(self, protocol: str) -> None: ...
    async def new_stream(
        self, peer: PeerId, protocols: Sequence[str], *, timeout: float | None = None
    ) -> Any: ...  # a NetStreamLike
    def connection(self, peer: PeerId) -> Any: ...  # a ConnectionLike or None
    def connected_peers(self) -> list[PeerId]: ...
    def add_connection_listener(self, listener: ConnectionListener | object) -> Callable[[], None]: ...
    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None: ...
    def listen_addrs(self) -> list[Multiaddr]: ...
    def p2p_addrs(self) -> list[str]: ...
    async def connect(self, addr: str | Multiaddr, *, timeout: float | None = None) -> PeerId: ...
    # the identify service's report of what identify on a connection said (Host.set_identified)
    def set_identified(self, conn: Any, info: Any, error: BaseException | None = None) -> None: ...
