"""The multiaddr package's `ip4` / `ip6` codecs, answered by the socket module instead of netaddr.

Why: the package's own codecs import netaddr, whose import was ~7% of the instructions a node
spends from spawn to listening (callgrind: 47 M of 685 M; it also pulls in importlib.resources,
bz2, lzma, tempfile and shutil), for what `inet_pton` / `inet_ntop` answer. The answers are
netaddr's, byte for byte and error for error (tests/core/test_ip_codecs.py checks them against
the package's codecs): IPv4 text by inet_pton's rules and without leading zeros (netaddr's
default), IPv6 text by inet_pton, IPv6 bytes written by inet_ntop (netaddr's compact form calls
it too), IPv4 bytes as four decimals. `install()` puts them in the package's codec cache; a
multiaddr version without that cache keeps its own codecs.
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["install"]


def _ip4_to_bytes(string: str) -> bytes:
    if ":" in string or any(len(p) > 1 and p.startswith("0") for p in string.split(".")):
        raise ValueError(f"{string!r} is not a valid IPv4 address string")
    try:
        return socket.inet_pton(socket.AF_INET, string)
    except OSError:
        raise ValueError(f"{string!r} is not a valid IPv4 address string") from None


def _ip4_to_string(buf: bytes) -> str:
    value = int.from_bytes(buf, "big")
    if value > 0xFFFFFFFF:
        raise ValueError(f"{bytes(buf)!r} is not a valid IPv4 address")
    return f"{value >> 24}.{(value >> 16) & 0xFF}.{(value >> 8) & 0xFF}.{value & 0xFF}"


def _ip6_to_bytes(string: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6, string)
    except (OSError, ValueError):
        raise ValueError(f"{string!r} is not a valid IPv6 address string") from None


def _ip6_to_string(buf: bytes) -> str:
    value = int.from_bytes(buf, "big")
    if value >> 128:
        raise ValueError(f"{bytes(buf)!r} is not a valid IPv6 address")
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def install() -> bool:
    """Use these codecs for `ip4` and `ip6` from now on; False when this multiaddr version has
    no codec cache to put them in (its own codecs then stay)."""
    try:
        from multiaddr import codecs
        from multiaddr.exceptions import BinaryParseError

        cache = codecs.CODEC_CACHE
        base = codecs.CodecBase
    except (ImportError, AttributeError):
        return False
    if not isinstance(cache, dict) or not isinstance(base, type):
        return False

    class Ip4Codec(base):  # type: ignore[valid-type,misc]
        SIZE = 32
        IS_PATH = False

        def to_bytes(self, proto: Any, string: str) -> bytes:
            return _ip4_to_bytes(string)

        def to_string(self, proto: Any, buf: bytes) -> str:
            try:
                return _ip4_to_string(buf)
            except ValueError:  # as the package's codec says it
                raise BinaryParseError("Invalid IPv4 address bytes", buf, "ip4") from None

    class Ip6Codec(base):  # type: ignore[valid-type,misc]
        SIZE = 128
        IS_PATH = False

        def to_bytes(self, proto: Any, string: str) -> bytes:
            return _ip6_to_bytes(string)

        def to_string(self, proto: Any, buf: bytes) -> str:
            return _ip6_to_string(buf)

    cache["ip4"] = Ip4Codec()
    cache["ip6"] = Ip6Codec()
    return True
