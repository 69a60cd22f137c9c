"""A stand-alone context for a QuicTransport outside a Host (p2p.transport.quic.QuicContext): the
tests give it an identity and their task group's start_soon; what they leave out is None (no
config: QuicLimits' handshake timeout and HostConfig's default limits; no admission: the transport
admits by its own connections; nothing traced or counted)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from p2p.config import HostConfig
    from p2p.identity import PrivateKey
    from p2p.metrics import Metrics
    from p2p.trace import Tracer
    from p2p.transport.base import Admission


@dataclass
class QuicTestContext:
    identity: PrivateKey
    start_soon: Callable[..., Any]
    config: HostConfig | None = None
    admission: Admission | None = None
    tracer: Tracer | None = None
    metrics: Metrics | None = None
