"""An iterative Kademlia lookup as a sans-IO state machine.

The driver asks `next_queries(now)` for peers to send a request to (never more than `alpha` in
flight), reports each answer with `on_reply(peer, closer_peers)` or `on_failure(peer)`, and stops
when `finished` is true. The lookup converges when every one of the `k` closest peers that did not
fail has answered; it also ends at its deadline (the driver's clock, passed in) or when told to
`stop` (e.g. the target was found). It holds at most `max_candidates` peers it has heard of, so a
flood of referrals costs bounded memory, and it remembers how many hops each peer is from the seeds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from p2p.identity import PeerId
from p2p.kad.routing import kad_key


class State(enum.Enum):
    HEARD = "heard"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass
class _Candidate:
    peer: PeerId
    distance: int
    hops: int
    state: State = State.HEARD


class Lookup:
    def __init__(self, key: bytes, seeds: Iterable[PeerId], *, local: PeerId, k: int = 20,
                 alpha: int = 10, deadline: float | None = None,
                 max_candidates: int | None = None) -> None:
        if k < 1 or alpha < 1:
            raise ValueError("k and alpha must be >= 1")
        self.key = key
        self.target = int.from_bytes(kad_key(key), "big")
        self.local = local
        self.k = k
        self.alpha = alpha
        self.deadline = deadline
        self.max_candidates = max_candidates or max(8 * k, 64)
        self._cands: dict[PeerId, _Candidate] = {}
        self.stop_reason: str | None = None
        self.queries = 0
        self.failures = 0
        for peer in seeds:
            self._hear(peer, 0)

    # ---- what the driver tells us ------------------------------------------------------------

    def _hear(self, peer: PeerId, hops: int) -> None:
        if peer == self.local or peer in self._cands:
            return
        dist = int.from_bytes(kad_key(peer.to_bytes()), "big") ^ self.target
        if len(self._cands) >= self.max_candidates:
            # Keep the set bounded: forget the farthest peer we only heard of, if the newcomer is
            # closer than it; otherwise the newcomer is not worth remembering.
            farthest = max((c for c in self._cands.values() if c.state is State.HEARD),
                           key=lambda c: c.distance, default=None)
            if farthest is None or farthest.distance < dist:
                return
            del self._cands[farthest.peer]
        self._cands[peer] = _Candidate(peer, dist, hops)

    def on_reply(self, peer: PeerId, closer: Iterable[PeerId]) -> None:
        cand = self._cands.get(peer)
        if cand is None or cand.state is not State.WAITING:
            return  # an answer we did not ask for (or after a stop): nothing to learn
        cand.state = State.SUCCEEDED
        for other in closer:
            self._hear(other, cand.hops + 1)

    def on_failure(self, peer: PeerId) -> None:
        cand = self._cands.get(peer)
        if cand is not None and cand.state is State.WAITING:
            cand.state = State.FAILED
            self.failures += 1

    def stop(self, reason: str = "stopped") -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    # ---- what the driver asks ----------------------------------------------------------------

    def _ranked(self) -> list[_Candidate]:
        return sorted((c for c in self._cands.values() if c.state is not State.FAILED),
                      key=lambda c: c.distance)

    def in_flight(self) -> int:
        return sum(1 for c in self._cands.values() if c.state is State.WAITING)

    def next_queries(self, now: float) -> list[PeerId]:
        """Peers to query now (marked waiting); empty when at `alpha` or nothing is worth asking."""
        self._check(now)
        if self.stop_reason is not None:
            return []
        budget = self.alpha - self.in_flight()
        out = []
        for cand in self._ranked()[: self.k]:
            if budget <= 0:
                break
            if cand.state is State.HEARD:
                cand.state = State.WAITING
                out.append(cand.peer)
                budget -= 1
        self.queries += len(out)
        return out

    def _check(self, now: float) -> None:
        if self.stop_reason is not None:
            return
        if self.deadline is not None and now >= self.deadline:
            self.stop("deadline")
            return
        top = self._ranked()[: self.k]
        if all(c.state is State.SUCCEEDED for c in top):
            self.stop("converged" if top else "no peers")

    def finished(self, now: float) -> bool:
        self._check(now)
        return self.stop_reason is not None

    def closest(self) -> list[PeerId]:
        """Up to `k` peers that answered, closest to the key first."""
        done = sorted((c for c in self._cands.values() if c.state is State.SUCCEEDED),
                      key=lambda c: c.distance)
        return [c.peer for c in done[: self.k]]

    def hops(self, peer: PeerId) -> int | None:
        cand = self._cands.get(peer)
        return None if cand is None else cand.hops

    def state(self, peer: PeerId) -> State | None:
        cand = self._cands.get(peer)
        return None if cand is None else cand.state
