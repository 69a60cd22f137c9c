"""Connection events for protocol services (identify, ping, Kademlia, membership...).

A service that must act when peers come and go registers a listener with
`host.add_connection_listener(listener)`, which returns a function that unsubscribes it. A listener
is any object with some of the four methods below; `ConnectionListenerBase` gives no-op defaults
so a subclass overrides only what it needs.

The callbacks run synchronously inside the Host's connection task: they must not block and should
not raise (the Host logs and swallows what they raise, so one faulty service cannot take a
connection down). A service that needs I/O in response starts a task with
`host.start_soon(async_fn, *args)`.

Order on one connection: `connected` once, then `identified` once (also when identify failed or
the connection ended first: `conn.identify_info` is then None), then `protocols_updated` for each
identify push that changed what the peer serves, then `disconnected` once.

A peer may start serving a protocol after its first identify answered (go-libp2p answers from a
snapshot that a goroutine updates after SetStreamHandler, then pushes the new one): a service that
acts on a protocol of the peer's reads the peerstore in `identified` and watches `added` in
`protocols_updated`, so it acts once whichever told it. A push that lands before `identified` has
no event of its own: the peerstore already holds it when `identified` fires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from p2p.hostapi import ConnectionLike

__all__ = ["ConnectionListener", "ConnectionListenerBase", "EVENTS"]

#: The event names, in the order they happen on a connection.
EVENTS = ("connected", "identified", "protocols_updated", "disconnected")


@runtime_checkable
class ConnectionListener(Protocol):
    """What the Host calls; every method is optional on a listener (missing = not interested)."""

    def connected(self, conn: ConnectionLike) -> None:
        """A connection is up and registered with the Host (identify has not run yet)."""

    def identified(self, conn: ConnectionLike) -> None:
        """Identify on `conn` finished; `conn.identify_info` is None if it failed."""

    def protocols_updated(self, conn: ConnectionLike, added: frozenset[str],
                          removed: frozenset[str]) -> None:
        """An identify push on `conn` (after `identified`, while open) changed the protocols the
        peerstore lists for its peer: `added` are new, `removed` gone (at least one is non-empty).
        """

    def disconnected(self, conn: ConnectionLike) -> None:
        """The connection ended and the Host no longer lists it."""


class ConnectionListenerBase:
    """No-op implementations of every ConnectionListener method: subclass and override some."""

    def connected(self, conn: ConnectionLike) -> None:
        pass

    def identified(self, conn: ConnectionLike) -> None:
        pass

    def protocols_updated(self, conn: ConnectionLike, added: frozenset[str],
                          removed: frozenset[str]) -> None:
        pass

    def disconnected(self, conn: ConnectionLike) -> None:
        pass
