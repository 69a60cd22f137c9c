"""Connection events for protocol services (identify, ping, Kademlia, membership...).

A service that must act when peers come and go registers a listener with
`host.add_connection_listener(listener)`, which returns a function that unsubscribes it. A listener
is any object with some of the three methods below; `ConnectionListenerBase` gives no-op defaults
so a subclass overrides only what it needs.

The callbacks run synchronously inside the Host's connection task: they must not block and should
not raise (the Host logs and swallows what they raise, so one faulty service cannot take a
connection down). A service that needs I/O in response starts a task with
`host.start_soon(async_fn, *args)`.

Order on one connection: `connected` once, then `identified` once (also when identify failed or
the connection ended first: `conn.identify_info` is then None), then `disconnected` once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from p2p.hostapi import ConnectionLike

__all__ = ["ConnectionListener", "ConnectionListenerBase", "EVENTS"]

#: The event names, in the order they happen on a connection.
EVENTS = ("connected", "identified", "disconnected")


@runtime_checkable
class ConnectionListener(Protocol):
    """What the Host calls; every method is optional on a listener (missing = not interested)."""

    def connected(self, conn: ConnectionLike) -> None:
        """A connection is up and registered with the Host (identify has not run yet)."""

    def identified(self, conn: ConnectionLike) -> None:
        """Identify on `conn` finished; `conn.identify_info` is None if it failed."""

    def disconnected(self, conn: ConnectionLike) -> None:
        """The connection ended and the Host no longer lists it."""


class ConnectionListenerBase:
    """No-op implementations of every ConnectionListener method: subclass and override some."""

    def connected(self, conn: ConnectionLike) -> None:
        pass

    def identified(self, conn: ConnectionLike) -> None:
        pass

    def disconnected(self, conn: ConnectionLike) -> None:
        pass
