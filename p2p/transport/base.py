"""The transport interface: how the Host dials and listens without knowing what a transport is.

A transport turns a multiaddr into a `p2p.connection.MuxedConnection` (already secured and
multiplexed): TCP + Noise + yamux (`p2p.transport.tcp.TcpTransport`) or QUIC (`p2p.transport.quic`). The Host
keeps a list of them and uses the first whose `can_dial` / `can_listen` accepts an address.

A transport class is constructed with one argument, a `TransportContext` (what the Host shares
with every transport): `Host(transports=[TcpTransport, SomeOtherTransport])`.

Per-address admission: a listener asks `ctx.admission.try_admit(ip)` for every inbound connection
BEFORE any handshake work, and refuses (closes at once) on None. The ticket it gets follows the
connection: `handshake_done()` when the upgrade ended (either way), `release()` when the connection
is gone (idempotent; implies `handshake_done`). The policy behind it lives in p2p/admission.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from multiaddr import Multiaddr

from p2p.connection import MuxedConnection
from p2p.identity import PeerId, PrivateKey

if TYPE_CHECKING:
    from p2p.config import HostConfig
    from p2p.metrics import Metrics
    from p2p.trace.tracer import Tracer

__all__ = ["Admission", "AdmissionTicket", "Listener", "OnConnection", "Transport",
           "TransportContext"]

#: The Host's callback for an inbound connection; it returns when the connection has ended.
OnConnection = Callable[[MuxedConnection], Awaitable[None]]


class AdmissionTicket(Protocol):
    """One admitted inbound connection's hold on the admission policy's counters.

    The policy may evict a pending handshake to give its slot to a newcomer (fair admission,
    p2p/admission.py): it then calls `on_evict`, which the transport sets to something that ends
    this handshake (TCP: cancel the upgrade, close the socket; QUIC: a CONNECTION_CLOSE), and sets
    back to None once the handshake is over (so a long-lived connection keeps nothing of its
    handshake). `progress()` tells the policy the handshake moved on (it evicts handshakes without
    progress first).
    """

    on_evict: Callable[[], None] | None
    #: set by the policy when it evicted this handshake (before it calls `on_evict`)
    evicted: bool

    def progress(self) -> None:
        """The handshake made progress (TCP: the dialer negotiated a security protocol; QUIC: a
        Handshake packet came from the dialer, which therefore read our first flight)."""

    def handshake_done(self) -> None:
        """The upgrade finished, successfully or not: its handshake slot is free again."""

    def release(self) -> None:
        """The connection is gone (or never got up): free everything it held. Idempotent."""


class Admission(Protocol):
    """Decides, per remote IP address, whether an inbound connection may start its handshake.

    Sans-IO and synchronous: called on the accept path, it must be cheap and never wait.
    """

    def try_admit(self, ip: str) -> AdmissionTicket | None:
        """A ticket if the connection from `ip` may proceed, None to refuse it."""


@runtime_checkable
class Listener(Protocol):
    """What `Transport.listen` returns."""

    addrs: list[Multiaddr]  # the addresses actually bound (port 0 resolved)

    async def aclose(self) -> None:
        """Stop accepting (connections already handed to the Host live on). Idempotent."""


@runtime_checkable
class Transport(Protocol):
    """Dial and listen for one kind of multiaddr.

    Implementers provide:
    * `can_dial(addr)` / `can_listen(addr)`: pure checks of the address's shape (no I/O). A dial
      address may end in `/p2p/<peer id>`; the Host strips it and passes the peer separately.
    * `dial(addr, expected_peer, timeout)`: a connection that is secured and muxed, whose
      `remote_peer` equals `expected_peer` when given (else raise p2p.errors.PeerIdMismatch);
      every other failure, the timeout included, is a p2p.errors.DialError. Not yet running:
      the Host runs it.
    * `listen(addr, on_connection)`: bind, start accepting in the Host's task group
      (`ctx.start_soon`), and for each inbound connection admit (`ctx.admission`), upgrade within
      `config.inbound_upgrade_timeout`, then `await on_connection(conn)` in that connection's own
      task (it returns when the connection ended). Failed upgrades are logged at debug level and
      closed; they never reach the Host.
    """

    name: str

    def can_dial(self, addr: Multiaddr) -> bool: ...

    def can_listen(self, addr: Multiaddr) -> bool: ...

    async def dial(self, addr: Multiaddr, expected_peer: PeerId | None,
                   timeout: float) -> MuxedConnection: ...

    async def listen(self, addr: Multiaddr, on_connection: OnConnection) -> Listener: ...


@dataclass(frozen=True)
class TransportContext:
    """What the Host gives every transport it constructs."""

    identity: PrivateKey
    config: HostConfig
    admission: Admission
    #: run `await fn(*args)` in the Host's task group (accept loops, per-connection tasks)
    start_soon: Callable[..., Any]
    #: a `p2p.trace.Tracer` when the Host traces its connections: a transport asks it for a
    #: `ConnTrace` per connection (`tracer.connection(...)`) and hands that to its layers
    tracer: Tracer | None = None
    #: `p2p.metrics.Metrics` when the host reports metrics, else None (then nothing is counted)
    metrics: Metrics | None = None
