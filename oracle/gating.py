"""Who may make this node work, and how much at once.

The Go worker runs work for any peer that opens a stream, with no bound on concurrency: that is the
abuse the spike set out to stop. `WorkerPolicy` decides at stream start, before a byte of the
request is read: the peer must be on the allowlist (unless the worker is open) and a slot must be
free both for that peer and in total. Refusal is immediate (no queue to grow); the protocol answers
with a WorkResponse carrying the refusal text. Together with the request size limit, the read
timeout and the execution timeout this bounds everything a client can make the worker do.

Pure bookkeeping, no I/O and no locks: the anyio drivers call it from one thread (the event loop).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Collection, Hashable

__all__ = ["Admission", "WorkRefused", "WorkerPolicy"]


class WorkRefused(Exception):
    """The policy refused a request; `reason` is the text sent back as the response error."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class Admission:
    """A held work slot; release it exactly once (it is also a context manager)."""

    policy: WorkerPolicy
    peer: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.policy._release(self.peer)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WorkerPolicy:
    """Allowlist (None = open to every peer) plus per-peer and total concurrency limits.

    Peers are compared by their string form (base58 peer ID), so PeerId objects and strings mix.
    """

    def __init__(
        self,
        *,
        allowed_peers: Collection[Hashable] | None = None,
        max_concurrent_per_peer: int = 4,
        max_concurrent_total: int = 32,
        allowed_work_types: Collection[str] | None = None,
    ) -> None:
        if max_concurrent_per_peer < 1 or max_concurrent_total < 1:
            raise ValueError("concurrency limits must be at least 1")
        self.allowed_peers = None if allowed_peers is None else frozenset(str(p) for p in allowed_peers)
        self.allowed_work_types = None if allowed_work_types is None else frozenset(allowed_work_types)
        self.max_concurrent_per_peer = max_concurrent_per_peer
        self.max_concurrent_total = max_concurrent_total
        self._per_peer: Counter[str] = Counter()
        self._total = 0
        self.refused = 0

    @classmethod
    def open(cls, *, max_concurrent_per_peer: int = 4, max_concurrent_total: int = 32) -> WorkerPolicy:
        """Any peer may submit work, within the concurrency limits."""
        return cls(allowed_peers=None, max_concurrent_per_peer=max_concurrent_per_peer,
                   max_concurrent_total=max_concurrent_total)

    @property
    def active(self) -> int:
        return self._total

    def active_for(self, peer: Hashable) -> int:
        return self._per_peer[str(peer)]

    def is_allowed(self, peer: Hashable) -> bool:
        return self.allowed_peers is None or str(peer) in self.allowed_peers

    def check_work_type(self, work_type: str) -> None:
        """Raise WorkRefused if this worker does not take `work_type` from the network."""
        if self.allowed_work_types is not None and work_type not in self.allowed_work_types:
            self.refused += 1
            raise WorkRefused(f"work refused: work type {work_type!r} is not offered to remote peers")

    def admit(self, peer: Hashable) -> Admission:
        """Take a slot for `peer` or raise WorkRefused (never waits)."""
        key = str(peer)
        if not self.is_allowed(key):
            self.refused += 1
            raise WorkRefused(f"work refused: peer {key} is not allowed to submit work")
        if self._per_peer[key] >= self.max_concurrent_per_peer:
            self.refused += 1
            raise WorkRefused(
                f"work refused: peer {key} already has {self.max_concurrent_per_peer} requests running"
            )
        if self._total >= self.max_concurrent_total:
            self.refused += 1
            raise WorkRefused(f"work refused: worker busy ({self.max_concurrent_total} requests running)")
        self._per_peer[key] += 1
        self._total += 1
        return Admission(self, key)

    def _release(self, peer: str) -> None:
        self._per_peer[peer] -= 1
        if self._per_peer[peer] <= 0:
            del self._per_peer[peer]
        self._total -= 1
