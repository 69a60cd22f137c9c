"""Every limit and timeout of a host, in one validated place.

Defaults follow go-libp2p v0.36.3 where go has a number (the comment names it) and are our own
choice where go has none (for example a cap on multistream `na` rounds). A `HostConfig` is frozen:
build a new one with `dataclasses.replace` to change it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from p2p.mux.yamux_session import YamuxConfig

DEFAULT_AGENT = "masa-p2p-py/0.1.0"


@dataclass(frozen=True)
class HostConfig:
    # Timeouts (seconds)
    tcp_connect_timeout: float = 5.0  # go p2p/transport/tcp: 5 s
    dial_timeout: float = 15.0  # go swarm: whole outbound dial incl. upgrade
    inbound_upgrade_timeout: float = 15.0  # go upgrader acceptTimeout
    negotiation_timeout: float = 10.0  # go: inbound stream protocol negotiation
    identify_timeout: float = 30.0  # go v0.36 identify
    ping_gap_timeout: float = 10.0  # go v0.36 ping responder: max gap between pings
    ping_stream_timeout: float = 30.0  # go v0.36 ping responder: whole stream
    # Limits
    max_connections: int = 1024  # ours; go's resource manager system scope is memory-scaled
    max_connections_per_ip: int = 64  # ours: one address cannot take every slot
    max_connections_per_peer: int = 8  # go resource manager: 8 conns per peer
    # Upgrades in progress at once, TCP and QUIC handshakes together (go transient scope: 32 +
    # scaling). When all are taken, a new address still gets one: admission (p2p/admission.py)
    # evicts a pending handshake of the address holding the most (its oldest without progress), so
    # a few addresses cannot lock out everyone else with handshakes they never finish.
    max_pending_inbound: int = 64
    max_pending_inbound_per_ip: int = 16  # ours: one address cannot hold every upgrade slot
    # ours (go delegates to its resource manager); the host's yamux sessions enforce it (it
    # overrides `yamux.max_inbound_streams`): streams over it are reset
    max_inbound_streams_per_conn: int = 1024
    max_negotiation_rounds: int = 32  # ours; go has no limit on `na` rounds
    max_identify_message: int = 8192  # go identify: bytes per delimited message
    max_identify_messages: int = 9  # go identify: 10 reads, EOF within them
    # Behaviour
    # Offer yamux, our only muxer, inside the Noise handshake (go's early muxer negotiation);
    # off: negotiate it with multistream after the handshake, as peers without it do.
    early_muxer_negotiation: bool = True
    agent_version: str = DEFAULT_AGENT
    protocol_version: str = "ipfs/0.1.0"
    yamux: YamuxConfig = field(default_factory=YamuxConfig)

    def __post_init__(self) -> None:
        for name in (
            "tcp_connect_timeout",
            "dial_timeout",
            "inbound_upgrade_timeout",
            "negotiation_timeout",
            "identify_timeout",
            "ping_gap_timeout",
            "ping_stream_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"HostConfig.{name} must be > 0")
        for name in (
            "max_connections",
            "max_connections_per_ip",
            "max_connections_per_peer",
            "max_pending_inbound",
            "max_pending_inbound_per_ip",
            "max_inbound_streams_per_conn",
            "max_negotiation_rounds",
            "max_identify_message",
            "max_identify_messages",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"HostConfig.{name} must be >= 1")
        if self.yamux.max_inbound_streams != self.max_inbound_streams_per_conn:
            object.__setattr__(self, "yamux", dataclasses.replace(
                self.yamux, max_inbound_streams=self.max_inbound_streams_per_conn))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: HostConfig | None = None) -> HostConfig:
        """`base` (default: the defaults) with the fields named in `data` replaced, validated.

        For command lines and config files (`--limits '{"max_connections": 100}'`): an unknown
        key or a wrong type is a ValueError naming it, never silently ignored. `yamux` may be a
        nested mapping of YamuxConfig fields.
        """
        base = base or cls()
        names = {f.name: f for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                raise ValueError(f"unknown HostConfig field {key!r}")
            current = getattr(base, key)
            if key == "yamux":
                if not isinstance(value, Mapping):
                    raise ValueError("HostConfig.yamux must be a mapping of YamuxConfig fields")
                ynames = {f.name for f in dataclasses.fields(YamuxConfig)}
                unknown = set(value) - ynames
                if unknown:
                    raise ValueError(f"unknown YamuxConfig field(s) {sorted(unknown)}")
                value = dataclasses.replace(current, **{k: _coerce(f"yamux.{k}", getattr(current, k), v)
                                                         for k, v in value.items()})
            else:
                value = _coerce(key, current, value)
            changes[key] = value
        return dataclasses.replace(base, **changes)


def _coerce(name: str, current: Any, value: Any) -> Any:
    """Accept JSON types for a field whose default has type `type(current)`."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number")
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        return value
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings")
        return tuple(value)
    raise ValueError(f"{name} cannot be set here")
