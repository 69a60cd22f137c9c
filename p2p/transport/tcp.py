"""TCP transport on anyio: multiaddr <-> socket address, dial with a timeout, listen on any port.

There is no fixed port anywhere: listening on `/tcp/0` asks the OS for one, and the real port is
read back from the socket so the advertised multiaddr is dialable.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2p.errors import ConnectionClosed, DialError
from p2p.transport.aio_stream import adopt

IP_PROTOCOLS = ("ip4", "ip6", "dns", "dns4", "dns6")


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int
    family: str  # "ip4" | "ip6" | "dns" | "dns4" | "dns6"


def parse_tcp_multiaddr(addr: Multiaddr | str) -> tuple[TcpAddress, str | None]:
    """Split `/ip4/x/tcp/p[/p2p/id]` into a TCP address and the peer ID string (if any)."""
    if isinstance(addr, str):
        return _parse_tcp_string(addr)
    return _parse_tcp(addr)


@functools.lru_cache(maxsize=512)
def _parse_tcp_string(addr: str) -> tuple[TcpAddress, str | None]:
    # Peers are dialled by the same few strings again and again; parsing one with the multiaddr
    # library cost ~4% of a whole connection set-up (profile of the handshake benchmark).
    return _parse_tcp(Multiaddr(addr))


def _parse_tcp(ma: Multiaddr) -> tuple[TcpAddress, str | None]:
    parts = list(ma.items())
    if len(parts) < 2:
        raise DialError(f"not a TCP multiaddr: {ma}")
    (p0, host), (p1, port) = parts[0], parts[1]
    if p0.name not in IP_PROTOCOLS or p1.name != "tcp":
        raise DialError(f"not a TCP multiaddr: {ma}")
    peer: str | None = None
    for proto, value in parts[2:]:
        if proto.name == "p2p":
            peer = value
        else:
            raise DialError(f"unsupported multiaddr component /{proto.name} in {ma}")
    return TcpAddress(str(host), int(port), p0.name), peer


@functools.lru_cache(maxsize=512)
def tcp_multiaddr(host: str, port: int) -> Multiaddr:
    """`/ip4|ip6/host/tcp/port` (cached: a Multiaddr is immutable, and listen addresses and
    the peers we dial repeat)."""
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/tcp/{port}")


def _tune(stream: anyio.abc.SocketStream) -> None:
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:  # pragma: no cover - platform specific
        pass


async def dial(addr: TcpAddress, *, timeout: float) -> anyio.abc.SocketStream:
    try:
        with anyio.fail_after(timeout):
            stream = await anyio.connect_tcp(addr.host, addr.port)
    except TimeoutError:
        raise DialError(f"tcp connect to {addr.host}:{addr.port} timed out") from None
    except OSError as exc:
        raise DialError(f"tcp connect to {addr.host}:{addr.port} failed: {exc.strerror or exc}") from None
    _tune(stream)
    return adopt(stream)  # asyncio: our leaner stream on the same transport


async def listen(addr: TcpAddress) -> anyio.abc.SocketListener:
    family = socket.AF_INET6 if addr.family == "ip6" else socket.AF_INET
    listener = await anyio.create_tcp_listener(
        local_host=addr.host, local_port=addr.port, family=family, reuse_port=False
    )
    return listener  # type: ignore[return-value]


def listener_multiaddrs(listener: anyio.abc.Listener) -> list[Multiaddr]:
    listeners = getattr(listener, "listeners", [listener])
    out = []
    for lst in listeners:
        host, port = lst.extra(anyio.abc.SocketAttribute.local_address)[:2]
        out.append(tcp_multiaddr(host, port))
    return out


def stream_addrs(stream: anyio.abc.SocketStream) -> tuple[Multiaddr, Multiaddr]:
    """(local, remote) multiaddrs of a connected TCP stream.

    Raises ConnectionClosed when the peer already reset the connection: getpeername() then fails
    (ENOTCONN) and anyio reports the attribute as missing, which a remote must not turn into a crash.
    """
    try:
        lh, lp = stream.extra(anyio.abc.SocketAttribute.local_address)[:2]
        rh, rp = stream.extra(anyio.abc.SocketAttribute.remote_address)[:2]
    except (anyio.TypedAttributeLookupError, OSError):
        raise ConnectionClosed("tcp connection reset before its addresses could be read") from None
    return tcp_multiaddr(lh, lp), tcp_multiaddr(rh, rp)


def tune_accepted(stream: anyio.abc.SocketStream) -> None:
    _tune(stream)
