"""The ping service: answers `/ipfs/ping/1.0.0` within the host's bounds and pings peers
(the exchange itself is `p2p.protocols.ping`)."""

from __future__ import annotations

from typing import Any

from p2p.hostapi import HostLike, NetStreamLike
from p2p.identity import PeerId
from p2p.protocols import ping as pingp

__all__ = ["PingService"]


class PingService:
    """go's ping service: `PingService(host)` registers the responder; `ping(peer)` measures."""

    def __init__(self, host: HostLike | Any) -> None:
        self.host = host
        self.start()

    def start(self) -> None:
        """Register the responder (done by the constructor)."""
        self.host.set_stream_handler(pingp.PING, self.serve)

    def stop(self) -> None:
        self.host.remove_stream_handler(pingp.PING)

    async def serve(self, stream: NetStreamLike) -> None:
        cfg = self.host.config
        await pingp.serve_ping(stream, gap_timeout=cfg.ping_gap_timeout,
                               stream_timeout=cfg.ping_stream_timeout)

    async def ping(self, peer: PeerId, count: int = 1, *, timeout: float = 10.0) -> list[float]:
        """`count` round trips on one stream, in seconds."""
        stream = await self.host.new_stream(peer, [pingp.PING], timeout=timeout)
        return await pingp.ping_rtts(stream, count, timeout=timeout)
