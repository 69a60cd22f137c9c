"""Inbound admission by remote address, ahead of any handshake (plugs into `TransportContext`).

`ConnectionLimits` is the host's policy: refuse a new inbound connection while the host has
`max_connections` connections or `max_connections_per_ip` come from its address, or its address
already holds `max_pending_inbound_per_ip` handshakes in progress. When every one of the
`max_pending_inbound` handshake slots is taken, per-address caps alone cannot keep a few addresses
from holding them all (five addresses that connect and never finish a handshake were enough), so
the policy is fair across addresses instead of refusing: an address that holds no pending handshake
always gets a slot, and one that holds some gets one while another holds at least two more than it;
the slot comes from the address holding the most, taking its oldest handshake that has made no
progress (or, if all have, its oldest). The evicted ticket's `on_evict` callback (set by the
transport) closes that connection.

Sans-IO: counters and ordered sets only, no clock, no I/O. "Oldest" is admission order; "progress"
is whatever the transport reports with `ticket.progress()` (TCP: the peer negotiated a security
protocol, i.e. it spoke multistream correctly; QUIC: a Handshake packet came from the peer, i.e. it
read our first flight at its address). TCP and QUIC share one policy in a Host.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

from p2p.config import HostConfig

__all__ = ["ConnectionLimits"]


class _Ticket:
    """One admitted inbound connection's hold on the counters (see p2p.transport.base)."""

    __slots__ = ("_limits", "ip", "seq", "_pending", "_held", "progressed", "evicted", "on_evict")

    def __init__(self, limits: ConnectionLimits, ip: str, seq: int) -> None:
        self._limits = limits
        self.ip = ip
        self.seq = seq  # admission order: lower is older
        self._pending = True
        self._held = True
        self.progressed = False
        self.evicted = False
        #: set by the transport: closes this connection's handshake when the policy evicts it
        self.on_evict: Callable[[], None] | None = None

    @property
    def pending(self) -> bool:
        return self._pending

    def progress(self) -> None:
        """The handshake moved on (the transport's call): such a handshake is evicted last."""
        self.progressed = True

    def handshake_done(self) -> None:
        if self._pending:
            self._pending = False
            self._limits._end_pending(self)

    def release(self) -> None:
        self.handshake_done()
        if self._held:
            self._held = False
            _decrement(self._limits.conns_per_ip, self.ip)

    def _evict(self) -> None:
        self.evicted = True
        self.handshake_done()
        if self.on_evict is not None:
            self.on_evict()


class ConnectionLimits:
    """The Host's default admission policy (see the module docstring)."""

    def __init__(self, config: HostConfig, open_connections: Callable[[], int]) -> None:
        self.config = config
        self._open_connections = open_connections  # every live connection of the host
        self.pending = 0
        #: pending handshakes per address, oldest first (a dict keeps insertion order)
        self._pending_by_ip: dict[str, dict[_Ticket, None]] = {}
        self.conns_per_ip: dict[str, int] = {}
        self.evictions = 0
        self._seq = count()

    @property
    def pending_per_ip(self) -> dict[str, int]:
        return {ip: len(tickets) for ip, tickets in self._pending_by_ip.items()}

    def try_admit(self, ip: str) -> _Ticket | None:
        cfg = self.config
        held = self._pending_by_ip.get(ip)
        mine = len(held) if held else 0
        if (
            mine >= cfg.max_pending_inbound_per_ip
            or self._open_connections() >= cfg.max_connections
            or self.conns_per_ip.get(ip, 0) >= cfg.max_connections_per_ip
        ):
            return None
        if self.pending >= cfg.max_pending_inbound:
            victim = self._victim(mine)
            if victim is None:
                return None
            self.evictions += 1
            victim._evict()  # frees its handshake slot now; the transport closes its socket
        ticket = _Ticket(self, ip, next(self._seq))
        self.pending += 1
        if held is None:
            held = self._pending_by_ip[ip] = {}
        held[ticket] = None
        self.conns_per_ip[ip] = self.conns_per_ip.get(ip, 0) + 1
        return ticket

    def _victim(self, mine: int) -> _Ticket | None:
        """The pending handshake a newcomer from an address holding `mine` may take the slot of:
        from the address(es) holding the most, the oldest without progress, else the oldest.
        None when no address holds enough more than the newcomer's (fairness would not gain)."""
        most = max((len(t) for t in self._pending_by_ip.values()), default=0)
        if most == 0 or (mine > 0 and most < mine + 2):
            return None
        oldest: _Ticket | None = None
        idle: _Ticket | None = None
        for tickets in self._pending_by_ip.values():
            if len(tickets) != most:
                continue
            for ticket in tickets:  # oldest first
                if oldest is None or ticket.seq < oldest.seq:
                    oldest = ticket
                if not ticket.progressed:
                    if idle is None or ticket.seq < idle.seq:
                        idle = ticket
                    break  # later ones of this address are younger
        return idle or oldest

    def _end_pending(self, ticket: _Ticket) -> None:
        self.pending -= 1
        tickets = self._pending_by_ip[ticket.ip]
        del tickets[ticket]
        if not tickets:
            del self._pending_by_ip[ticket.ip]


def _decrement(counts: dict[str, int], key: str) -> None:
    """Per-address counters drop their key at zero, so they stay as small as the live set."""
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
