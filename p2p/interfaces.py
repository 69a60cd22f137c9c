"""The machine's interface addresses, to expand a wildcard listen address as go-libp2p does.

A host listening on `/ip4/0.0.0.0/tcp/P` cannot advertise that address: nobody can dial it. go-libp2p
(go-multiaddr's manet.ResolveUnspecifiedAddress over the interface addresses) advertises instead
each interface address of the same family with the same port, IPv6 link-local ones left out; the
identify reply then drops loopback addresses unless the asking peer is itself on loopback.

Python's standard library has no call listing interface addresses, so this reads them the way
`ip addr` does on Linux: SIOCGIFCONF for IPv4, /proc/net/if_inet6 for IPv6. Elsewhere, or if either
fails, the loopback address of that family stands in (never the wildcard).
"""

from __future__ import annotations

import array
import functools
import ipaddress
import socket
import struct
import sys
from collections.abc import Iterable

from multiaddr import Multiaddr

__all__ = ["expand_wildcards", "interface_addresses", "is_unspecified"]

_SIOCGIFCONF = 0x8912
_IFREQ_SIZE = 40 if struct.calcsize("P") == 8 else 32  # struct ifreq: 16-byte name + union
_MAX_INTERFACES = 256


def is_unspecified(family: str, host: str) -> bool:
    """`0.0.0.0` for ip4, `::` for ip6."""
    if family not in ("ip4", "ip6"):
        return False
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _ipv4_addresses() -> list[str]:
    import fcntl

    buf = array.array("B", b"\0" * (_IFREQ_SIZE * _MAX_INTERFACES))
    address, _ = buf.buffer_info()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifconf = struct.pack("iL", len(buf), address)
        length = struct.unpack("iL", fcntl.ioctl(sock.fileno(), _SIOCGIFCONF, ifconf))[0]
    raw = buf.tobytes()[:length]
    out = []
    for off in range(0, length - _IFREQ_SIZE + 1, _IFREQ_SIZE):
        family = struct.unpack_from("H", raw, off + 16)[0]
        if family == socket.AF_INET:
            out.append(socket.inet_ntoa(raw[off + 20 : off + 24]))
    return out


def _ipv6_addresses() -> list[str]:
    out = []
    with open("/proc/net/if_inet6", encoding="ascii") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 6 or len(fields[0]) != 32:
                continue
            addr = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            if addr.is_link_local:  # needs a zone to dial; go leaves them out too
                continue
            out.append(str(addr))
    return out


def interface_addresses(family: str) -> list[str]:
    """This machine's addresses of `family` ("ip4" or "ip6"), loopback first, then in kernel order."""
    loopback = "127.0.0.1" if family == "ip4" else "::1"
    addrs: list[str] = []
    if sys.platform.startswith("linux"):
        try:
            addrs = _ipv4_addresses() if family == "ip4" else _ipv6_addresses()
        except (OSError, ValueError, ImportError):
            addrs = []
    unique = list(dict.fromkeys(addrs))
    if not unique:
        return [loopback]
    unique.sort(key=lambda a: not ipaddress.ip_address(a).is_loopback)
    return unique


@functools.lru_cache(maxsize=256)
def _wildcard_family(addr: Multiaddr) -> str | None:
    """`ip4`/`ip6` for a wildcard address, None for any other, "" for an empty one (asked for
    every listen address on every identify: parsing a multiaddr is the multiaddr package's
    slow path, and a Multiaddr is immutable)."""
    try:
        proto, value = next(iter(addr.items()))
    except StopIteration:
        return ""
    return proto.name if is_unspecified(proto.name, str(value)) else None


def expand_wildcards(addrs: Iterable[Multiaddr]) -> list[Multiaddr]:
    """Each `/ip4/0.0.0.0/...` (`/ip6/::/...`) as one address per interface address of its family,
    the rest of the address (port, transport) kept; other addresses as they are. No duplicates."""
    out: list[Multiaddr] = []
    cache: dict[str, list[str]] = {}
    for addr in addrs:
        family = _wildcard_family(addr)
        if family is None:
            out.append(addr)
            continue
        if not family:  # an empty multiaddr
            continue
        text = str(addr)
        rest = text.split("/", 3)[3] if text.count("/") >= 3 else ""
        if family not in cache:
            cache[family] = interface_addresses(family)
        for ip in cache[family]:
            out.append(Multiaddr(f"/{family}/{ip}/{rest}" if rest else f"/{family}/{ip}"))
    return list(dict.fromkeys(out))
