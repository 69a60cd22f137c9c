"""Inbound admission by remote address, ahead of any handshake (plugs into `TransportContext`).

`ConnectionLimits` is the host's fixed-limit policy: refuse a new inbound connection while
`max_pending_inbound` upgrades are in progress, or `max_pending_inbound_per_ip` from its address,
or the host has `max_connections` connections, or `max_connections_per_ip` inbound ones come from
its address. Sans-IO: counters only, no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from p2p.config import HostConfig

__all__ = ["ConnectionLimits"]


class _Ticket:
    __slots__ = ("_limits", "_ip", "_pending", "_held")

    def __init__(self, limits: ConnectionLimits, ip: str) -> None:
        self._limits = limits
        self._ip = ip
        self._pending = True
        self._held = True

    def handshake_done(self) -> None:
        if self._pending:
            self._pending = False
            lim = self._limits
            lim.pending -= 1
            _decrement(lim.pending_per_ip, self._ip)

    def release(self) -> None:
        self.handshake_done()
        if self._held:
            self._held = False
            _decrement(self._limits.conns_per_ip, self._ip)


class ConnectionLimits:
    """The Host's default admission policy (see the module docstring)."""

    def __init__(self, config: HostConfig, open_connections: Callable[[], int]) -> None:
        self.config = config
        self._open_connections = open_connections  # every live connection of the host
        self.pending = 0
        self.pending_per_ip: dict[str, int] = {}
        self.conns_per_ip: dict[str, int] = {}

    def try_admit(self, ip: str) -> _Ticket | None:
        cfg = self.config
        if (
            self.pending >= cfg.max_pending_inbound
            or self.pending_per_ip.get(ip, 0) >= cfg.max_pending_inbound_per_ip
            or self._open_connections() >= cfg.max_connections
            or self.conns_per_ip.get(ip, 0) >= cfg.max_connections_per_ip
        ):
            return None
        self.pending += 1
        self.pending_per_ip[ip] = self.pending_per_ip.get(ip, 0) + 1
        self.conns_per_ip[ip] = self.conns_per_ip.get(ip, 0) + 1
        return _Ticket(self, ip)


def _decrement(counts: dict[str, int], key: str) -> None:
    """Per-address counters drop their key at zero, so they stay as small as the live set."""
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
