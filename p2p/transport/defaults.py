"""The transports a Host uses unless told otherwise (`Host(transports=...)`)."""

from __future__ import annotations

from collections.abc import Callable

from p2p.transport.base import Transport, TransportContext
from p2p.transport.tcp import TcpTransport

#: A transport class: constructed with the context the Host shares with its transports.
TransportFactory = Callable[[TransportContext], Transport]

DEFAULT_TRANSPORTS: tuple[TransportFactory, ...] = (TcpTransport,)
