"""The transports a Host uses unless told otherwise (`Host(transports=...)`)."""

from __future__ import annotations

from collections.abc import Callable

from multiaddr import Multiaddr

from p2p.connection import MuxedConnection
from p2p.identity import PeerId
from p2p.transport.base import Listener, OnConnection, Transport, TransportContext
from p2p.transport.quic_addr import is_quic_multiaddr
from p2p.transport.tcp import TcpTransport

#: A transport class: constructed with the context the Host shares with its transports.
TransportFactory = Callable[[TransportContext], Transport]


class LazyQuicTransport:
    """QUIC v1 in the default transports without its start-up cost: `p2p.transport.quic` (aioquic
    and its TLS stack, ~80 ms of imports) is loaded when a QUIC address is first dialled or
    listened on. Recognising a QUIC address needs only `quic_addr`."""

    name = "quic"

    def __init__(self, ctx: TransportContext) -> None:
        self._ctx = ctx
        self._real: Transport | None = None

    @property
    def transport(self) -> Transport:
        """The QuicTransport itself (made on first use)."""
        if self._real is None:
            from p2p.transport.quic import QuicTransport

            self._real = QuicTransport(self._ctx)
        return self._real

    def can_dial(self, addr: Multiaddr) -> bool:
        return is_quic_multiaddr(addr)

    def can_listen(self, addr: Multiaddr) -> bool:
        return is_quic_multiaddr(addr)

    async def dial(self, addr: Multiaddr, expected_peer: PeerId | None,
                   timeout: float) -> MuxedConnection:
        return await self.transport.dial(addr, expected_peer, timeout)

    async def listen(self, addr: Multiaddr, on_connection: OnConnection) -> Listener:
        return await self.transport.listen(addr, on_connection)


#: TCP (+ Noise + yamux) and QUIC v1 (+ libp2p TLS), as a go-libp2p host has by default. The QUIC
#: transport costs nothing until an address of its kind is dialled or listened on.
DEFAULT_TRANSPORTS: tuple[TransportFactory, ...] = (TcpTransport, LazyQuicTransport)
