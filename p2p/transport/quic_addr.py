"""QUIC v1 multiaddrs (`/ip4|ip6/HOST/udp/PORT/quic-v1[/p2p/ID]`), apart from the transport so
that recognising one costs no import of aioquic (the default transports hold QUIC lazily)."""

from __future__ import annotations

from multiaddr import Multiaddr

from p2p.errors import P2PError
from p2p.identity import PeerId

__all__ = ["is_quic_multiaddr", "parse_quic_multiaddr", "quic_multiaddr"]


def parse_quic_multiaddr(addr: str | Multiaddr) -> tuple[str, int, PeerId | None]:
    """(host, port, peer) of `/ip4|ip6/HOST/udp/PORT/quic-v1[/p2p/ID]`; ValueError otherwise."""
    ma = addr if isinstance(addr, Multiaddr) else Multiaddr(addr)
    parts = list(ma.items())
    names = [p.name for p, _ in parts]
    if len(parts) not in (3, 4) or names[0] not in ("ip4", "ip6") or names[1:3] != ["udp", "quic-v1"]:
        raise ValueError(f"not a QUIC v1 multiaddr: {ma}")
    peer = None
    if len(parts) == 4:
        if names[3] != "p2p":
            raise ValueError(f"not a QUIC v1 multiaddr: {ma}")
        peer = PeerId.from_string(str(parts[3][1]))
    return str(parts[0][1]), int(parts[1][1]), peer


def is_quic_multiaddr(addr: str | Multiaddr) -> bool:
    try:
        parse_quic_multiaddr(addr)
    except (ValueError, P2PError):
        return False
    return True


def quic_multiaddr(host: str, port: int) -> Multiaddr:
    proto = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{proto}/{host}/udp/{port}/quic-v1")
