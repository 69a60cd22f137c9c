"""Worker selection from the node tracker, as masa's DistributeWork does it.

Eligible = tracker entries passing CanDoWork for the work type (oracle/tracker.py), ourselves left
out (the manager runs local work itself). Before sending, masa's FindPeer (50 ms) only succeeds at
once for a peer the host is connected to - a Kademlia lookup practically never finishes in 50 ms -
so a candidate we are not connected to is skipped with Go's kind of error, and the next one tried.
One difference: a peer whose addresses our peerstore learned from a connection of its own (it was
connected before) is redialled, as a FindPeer that knows the addresses would let masa do;
addresses that only third parties claimed (nodeDataSync, gossip) are never dialled.

`add_worker` names a peer as a worker for every work type whatever the tracker says (an explicit
operator choice, e.g. a plain libp2p worker that announces no node data).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from p2p.identity import PeerId

from oracle.messages import WorkRequest, WorkResponse
from oracle.protocol import send_work_to_worker
from oracle.tracker import NodeTracker

__all__ = ["TrackerWorkerDirectory"]


class TrackerWorkerDirectory:
    """A WorkerDirectory (oracle/manager.py) over a NodeTracker and a host."""

    def __init__(self, host: Any, tracker: NodeTracker, *, protocol_id: str,
                 rng: random.Random | None = None) -> None:
        self.host = host
        self.tracker = tracker
        self.protocol_id = protocol_id
        self._rng = rng or random.Random()
        self._explicit: dict[str, Hashable] = {}
        # masa's FindPeer before work: an awaitable check that reaches an unconnected worker
        # through the DHT (oracle/discovery.py MasaDiscovery.reach); None: connected peers only
        self.finder: Callable[[Any], Awaitable[bool]] | None = None

    @property
    def local_peer_id(self) -> Hashable:
        return self.host.peer_id  # type: ignore[no-any-return]

    def add_worker(self, peer: Hashable) -> None:
        self._explicit[str(peer)] = peer

    def remove_worker(self, peer: Hashable) -> None:
        self._explicit.pop(str(peer), None)

    def eligible_peers(self, work_type: str) -> list[Hashable]:
        out: list[Hashable] = list(self._explicit.values())
        for peer_id in self.tracker.eligible(work_type, rng=self._rng):
            try:
                out.append(PeerId.from_string(peer_id))
            except Exception:  # entries hold parsed IDs; be safe anyway
                continue
        return out

    async def send_work(
        self, peer: Any, request: WorkRequest, *, connect_timeout: float, response_timeout: float
    ) -> WorkResponse:
        if self.host.connection(peer) is None and self.finder is not None:
            if not await self.finder(peer):
                return WorkResponse(error=f"failed to find peer {peer}: not found through the DHT")
        if self.host.connection(peer) is None and not self.host.peerstore.addrs(peer):
            return WorkResponse(error=f"failed to find peer {peer}: not connected")
        return await send_work_to_worker(
            self.host, peer, request, protocol_id=self.protocol_id,
            connect_timeout=connect_timeout, response_timeout=response_timeout,
        )
