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

    Implementers provide:
    * `protocol`, `remote_peer`, `conn`: the negotiated protocol ID, the peer, its connection.
    * `receive(max_bytes)`: at least one byte, or `anyio.EndOfStream` after the peer's FIN;
      `receive_exactly(n)`: exactly n bytes (a FIN before them is a RemoteProtocolError);
      `receive_until_eof(limit)`: everything up to the FIN (more than `limit` bytes is a
      RemoteProtocolError). A stream the peer reset raises `p2p.errors.StreamReset`.
    * `send(item)`: all of `item`, waiting only for the peer's flow-control credit;
      `send_eof()`: half-close (never waits).
    * `aclose()`: close our side gracefully (FIN), never waiting for the peer; `reset()`: abort
      both directions.
    * `set_read_deadline(deadline)`: bound every later `receive*` by `deadline`
      (`anyio.current_time()` clock; TimeoutError past it; None lifts it) and return True, or
      return False when the stream cannot (the caller then uses a cancel scope);
      `current_time()`: that clock's value now, read by the stream below where it can (a deadline
      per request is `stream.current_time() + timeout`).
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
    def current_time(self) -> float: ...


StreamHandler = Callable[[Any], Awaitable[None]]  # called with a NetStreamLike


class HostLike(Protocol):
    """What a protocol service may use of a host; what an implementer (`p2p.host.Host`, or a
    test's fake host) must provide.

    - `peer_id`, `identity`: our peer ID and the private key it comes from; `peerstore`: what is
      known of other peers (addresses, keys, protocols, agent); `config`: the host's limits and
      timeouts (`p2p.config.HostConfig`).
    - `protocols`: the protocol IDs we have handlers for, sorted (identify advertises them).
    - `set_stream_handler(protocol, handler)`: inbound streams negotiated to `protocol` run
      `await handler(stream)` (a NetStreamLike) in a task of their own; the Host closes the stream
      after it returns and resets it if it raised. `remove_stream_handler(protocol)` undoes it.
    - `new_stream(peer, protocols, timeout=)`: a NetStreamLike; dials the peer's known addresses
      if there is no connection, negotiates the first protocol the peer accepts (lazily, with
      the first write, when identify said the peer speaks it); the dial, the stream's opening and
      the negotiation are each bounded by `timeout` (p2p.errors.P2PError or TimeoutError).
    - `connection(peer)`: a live ConnectionLike to `peer` or None; `connected_peers()`: the peers
      with one; `connect(addr, timeout=)`: dial a multiaddr (reusing a live connection to the
      peer it names) and return the peer's ID.
    - `listen_addrs()` / `p2p_addrs()`: the addresses peers can dial us on (without / with
      `/p2p/<our id>`).
    - `add_connection_listener(listener)`: see `p2p.events`; returns an unsubscribe function.
    - `start_soon(fn, *args)`: run `await fn(*args)` in the host's task group (cancelled when the
      host closes; a no-op once it is closing); an exception it raises is logged, not propagated.
    - `set_identified(conn, info, error)`: the identify service's report of what identify on
      `conn` said (or why it failed); the host stores it on the connection and emits
      `identified` to the listeners, once per connection.
    - `report_protocols_updated(conn, added, removed)`: the identify service's report that a
      push on `conn` changed its peer's protocols; the host emits `protocols_updated` (after
      `identified`, while the connection is open).
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
    def report_protocols_updated(self, conn: Any, added: frozenset[str],
                                 removed: frozenset[str]) -> None: ...
