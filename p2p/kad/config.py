"""Kademlia settings: go-libp2p-kad-dht v0.26.1's defaults, and masa's (pkg/network/kdht.go)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from p2p.kad.messages import MAX_MESSAGE_SIZE, MAX_PEERS
from p2p.kad.store import Validator
from p2p.kad.validators import AcceptAll, default_validators


def accept_any(key: bytes, value: bytes) -> bool:
    """masa's `db` namespace validator: every record is valid."""
    return True


@dataclass(frozen=True)
class KadConfig:
    protocol_prefix: str = "/ipfs"  # go DefaultPrefix; masa "/masa"
    mode: str = "server"  # "server" answers requests and is advertised in identify; "client" does not
    bucket_size: int = 20  # go K; masa 100
    alpha: int = 10  # go Concurrency; masa 100
    request_timeout: float = 10.0  # go: one request waits 10 s for its reply
    check_timeout: float = 10.0  # go lookupCheck timeout
    lookup_timeout: float = 60.0  # ours: an upper bound for a lookup with no deadline of its own
    stream_idle_timeout: float = 60.0  # go server: a stream without a message for 1 min is reset
    stream_reuse: bool = True  # go client: one stream per peer for successive requests
    client_stream_idle: float = 30.0  # ours: a kept stream idle this long is closed
    max_client_streams: int = 256  # ours: peers we keep a stream to (least recently used closed)
    refresh_interval: float = 600.0  # go 10 min; masa 5 min
    auto_refresh: bool = True  # go: refresh the table every `refresh_interval` in the background
    max_message_size: int = MAX_MESSAGE_SIZE  # go network.MessageSizeMax (4 MiB)
    max_peers_per_reply: int = MAX_PEERS  # ours: a reply naming more peers is a lie
    max_addrs_tried: int = 4  # ours: addresses of one referred peer we dial during a lookup
    max_pending_checks: int = 256  # go LookupCheckConcurrency
    requests_per_second: float = 50.0  # ours: per inbound stream, with `request_burst`
    request_burst: int = 200
    validators: dict[str, Validator] = field(default_factory=lambda: dict(default_validators()))

    def __post_init__(self) -> None:
        if self.mode not in ("server", "client"):
            raise ValueError(f"mode must be 'server' or 'client', not {self.mode!r}")
        if not self.protocol_prefix.startswith("/") or self.protocol_prefix.endswith("/"):
            raise ValueError(f"protocol prefix {self.protocol_prefix!r} must be like '/ipfs'")
        if self.bucket_size < 1 or self.alpha < 1:
            raise ValueError("bucket_size and alpha must be >= 1")

    @property
    def protocol(self) -> str:
        return f"{self.protocol_prefix}/kad/1.0.0"


def masa_config(**overrides: Any) -> KadConfig:
    """The DHT as masa-oracle runs it: `/masa/kad/1.0.0`, K = 100, refresh 5 min, records in the
    `pk`, `ipns` and `db` namespaces."""
    settings: dict[str, Any] = dict(protocol_prefix="/masa", bucket_size=100, alpha=100, refresh_interval=300.0,
                    validators={**default_validators(), "db": AcceptAll()})
    settings.update(overrides)
    return KadConfig(**settings)
