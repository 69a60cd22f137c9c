"""The transports a Host uses unless told otherwise (`Host(transports=...)`)."""

from __future__ import annotations

from collections.abc import Callable

from p2p.transport.base import Transport, TransportContext
from p2p.transport.quic import QuicTransport
from p2p.transport.tcp import TcpTransport

#: A transport class: constructed with the context the Host shares with its transports.
TransportFactory = Callable[[TransportContext], Transport]

#: TCP (+ Noise + yamux) and QUIC v1 (+ libp2p TLS), as a go-libp2p host has by default. The QUIC
#: transport costs nothing until an address of its kind is dialled or listened on.
DEFAULT_TRANSPORTS: tuple[TransportFactory, ...] = (TcpTransport, QuicTransport)
