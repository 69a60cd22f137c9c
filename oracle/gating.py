"""Who may make this node work, how much at once, how long a burst may wait, and how much memory
answers may hold.

The Go worker runs work for any peer that opens a stream, with no bound on concurrency: that is the
abuse the spike set out to stop. `WorkerPolicy` decides at stream start, before a byte of the
request is read: the peer must be on the allowlist (unless the worker is open) and a slot must be
free both for that peer and in total. A request over its peer's share (or over the total) waits in a
queue, bounded in number per peer and in total and in time (`WorkLimits.queue_timeout`), so a masa
requester's burst (16 requests at once from sendWorkToWorker) is served rather than refused; a
request the queue cannot take is refused at once. A slot covers its request's answer until the
answer is written (or the stream is gone), and answers that may wait on their reader hold part of a
memory budget (per peer and in total): an answer that does not fit is replaced by an error, so
requesters that never read cannot make the worker hold more than the budget.

Pure bookkeeping, no I/O, no clock and no locks: the anyio drivers call it from one thread (the
event loop) and do the waiting themselves (`Admission.on_grant` is their wake-up callback).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Collection, Hashable

from p2p.logtext import bounded

__all__ = ["Admission", "WorkLimits", "WorkRefused", "WorkerPolicy"]

MiB = 1 << 20


class WorkRefused(Exception):
    """The policy refused a request; `reason` is the text sent back as the response error."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class WorkLimits:
    """Every limit of a WorkerPolicy, validated (our choices: Go's worker has none).

    The default share serves a masa requester's usual parallelism: 4 requests of a peer run at
    once, 32 more wait their turn for up to 30 s (masa's requester waits 45 s for an answer).
    Answers larger than a new stream's send window (the ones that can wait on their reader) may
    hold 32 MiB per peer and 64 MiB in all; the per-peer budget must fit the largest answer the
    worker sends (WorkerProtocol checks it against its `max_response_size`).
    """

    max_concurrent_per_peer: int = 4
    max_concurrent_total: int = 32
    max_queued_per_peer: int = 32
    max_queued_total: int = 256
    queue_timeout: float = 30.0
    max_answer_bytes_per_peer: int = 32 * MiB
    max_answer_bytes_total: int = 64 * MiB

    def __post_init__(self) -> None:
        for name in ("max_concurrent_per_peer", "max_concurrent_total", "max_answer_bytes_per_peer",
                     "max_answer_bytes_total"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"WorkLimits.{name} must be an integer >= 1")
        for name in ("max_queued_per_peer", "max_queued_total"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"WorkLimits.{name} must be an integer >= 0")
        if isinstance(self.queue_timeout, bool) or not isinstance(self.queue_timeout, (int, float)) \
                or not self.queue_timeout > 0:
            raise ValueError("WorkLimits.queue_timeout must be a number > 0")
        if self.max_answer_bytes_per_peer > self.max_answer_bytes_total:
            raise ValueError("WorkLimits.max_answer_bytes_per_peer must not exceed max_answer_bytes_total")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: WorkLimits | None = None) -> WorkLimits:
        """`base` (default: the defaults) with the named fields replaced; an unknown key is a
        ValueError naming it (for `--work-limits` and config files)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown WorkLimits field(s) {unknown}")
        return dataclasses.replace(base or cls(), **dict(data))


@dataclass(eq=False, slots=True)
class Admission:
    """A work slot, held or waited for; release it exactly once (it is also a context manager).

    `granted` is False while the request waits in the queue; the policy sets it and calls
    `on_grant` (if the driver set one) when a slot frees up for it.
    """

    policy: WorkerPolicy
    peer: str
    granted: bool = True
    released: bool = False
    answer_bytes: int = 0
    on_grant: Callable[[], None] | None = None

    def release(self) -> None:
        """Give the slot back (or leave the queue); frees the answer's budget too. Idempotent."""
        if not self.released:
            self.released = True
            self.policy._release(self)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WorkerPolicy:
    """Allowlist (None = open to every peer), work-type filter, and the WorkLimits.

    Peers are compared by their string form (base58 peer ID), so PeerId objects and strings mix.
    The limits can be given as a WorkLimits or, for the common ones, as keywords.
    """

    def __init__(
        self,
        *,
        allowed_peers: Collection[Hashable] | None = None,
        max_concurrent_per_peer: int | None = None,
        max_concurrent_total: int | None = None,
        allowed_work_types: Collection[str] | None = None,
        limits: WorkLimits | None = None,
        **more_limits: Any,
    ) -> None:
        changes = dict(more_limits)
        if max_concurrent_per_peer is not None:
            changes["max_concurrent_per_peer"] = max_concurrent_per_peer
        if max_concurrent_total is not None:
            changes["max_concurrent_total"] = max_concurrent_total
        self.limits = WorkLimits.from_mapping(changes, limits) if changes else (limits or WorkLimits())
        self.allowed_peers = None if allowed_peers is None else frozenset(str(p) for p in allowed_peers)
        self.allowed_work_types = None if allowed_work_types is None else frozenset(allowed_work_types)
        self._per_peer: Counter[str] = Counter()
        self._total = 0
        self._waiting: deque[Admission] = deque()
        self._waiting_per_peer: Counter[str] = Counter()
        self._answer_bytes: Counter[str] = Counter()
        self._answer_total = 0
        self.refused = 0
        self.queued = 0  # requests that had to wait (counter, for metrics)

    @classmethod
    def open(cls, **limits: Any) -> WorkerPolicy:
        """Any peer may submit work, within the limits."""
        return cls(allowed_peers=None, **limits)

    @property
    def max_concurrent_per_peer(self) -> int:
        return self.limits.max_concurrent_per_peer

    @property
    def max_concurrent_total(self) -> int:
        return self.limits.max_concurrent_total

    @property
    def active(self) -> int:
        return self._total

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def answer_bytes(self) -> int:
        """Bytes of answers held for their readers now (against `max_answer_bytes_total`)."""
        return self._answer_total

    def active_for(self, peer: Hashable) -> int:
        return self._per_peer[str(peer)]

    def is_allowed(self, peer: Hashable) -> bool:
        return self.allowed_peers is None or str(peer) in self.allowed_peers

    def check_work_type(self, work_type: str) -> None:
        """Raise WorkRefused if this worker does not take `work_type` from the network."""
        if self.allowed_work_types is not None and work_type not in self.allowed_work_types:
            self.refused += 1
            raise WorkRefused(f"work refused: work type {bounded(repr(work_type))} is not offered to remote peers")

    def _has_slot(self, key: str) -> bool:
        lim = self.limits
        # (.get: a Counter's missing key is a Python-level __missing__ call)
        return (self._per_peer.get(key, 0) < lim.max_concurrent_per_peer
                and self._total < lim.max_concurrent_total)

    def _take(self, admission: Admission) -> None:
        key = admission.peer
        self._per_peer[key] = self._per_peer.get(key, 0) + 1
        self._total += 1
        admission.granted = True

    def _refuse_busy(self, key: str) -> WorkRefused:
        self.refused += 1
        lim = self.limits
        if self._per_peer[key] >= lim.max_concurrent_per_peer:
            return WorkRefused(f"work refused: peer {key} already has {lim.max_concurrent_per_peer} requests running")
        return WorkRefused(f"work refused: worker busy ({lim.max_concurrent_total} requests running)")

    def admit(self, peer: Hashable) -> Admission:
        """Take a slot for `peer` now or raise WorkRefused (never queues)."""
        key = str(peer)
        if not self.is_allowed(key):
            self.refused += 1
            raise WorkRefused(f"work refused: peer {key} is not allowed to submit work")
        if not self._has_slot(key):
            raise self._refuse_busy(key)
        admission = Admission(self, key)
        self._take(admission)
        return admission

    def request(self, peer: Hashable) -> Admission:
        """A slot for `peer` now (`granted`), or a place in the queue (not `granted`: the driver
        waits for `on_grant` up to `limits.queue_timeout`, then calls `expire`); raises
        WorkRefused when the peer is not allowed or the queue is full for it."""
        key = str(peer)
        if self.allowed_peers is not None and key not in self.allowed_peers:
            self.refused += 1
            raise WorkRefused(f"work refused: peer {key} is not allowed to submit work")
        admission = Admission(self, key)
        # No waiter can use a free slot (each release hands its slot to the oldest waiter that
        # can), so one that this peer can use is not taken from anyone ahead in the queue.
        # (`_has_slot` and `_take` inline: this runs before every request's first byte is read)
        lim = self.limits
        held = self._per_peer.get(key, 0)
        if held < lim.max_concurrent_per_peer and self._total < lim.max_concurrent_total:
            self._per_peer[key] = held + 1
            self._total += 1
            return admission  # (granted, as made)
        if (self._waiting_per_peer[key] >= lim.max_queued_per_peer
                or len(self._waiting) >= lim.max_queued_total):
            refused = self._refuse_busy(key)
            raise WorkRefused(f"{refused.reason}, and its queue is full")
        admission.granted = False
        self._waiting.append(admission)
        self._waiting_per_peer[key] += 1
        self.queued += 1
        return admission

    def expire(self, admission: Admission) -> WorkRefused:
        """A queued request waited `queue_timeout` in vain: leave the queue; the refusal to send."""
        admission.release()
        refused = self._refuse_busy(admission.peer)
        return WorkRefused(f"{refused.reason}; waited {self.limits.queue_timeout:g} s for a turn")

    def reserve_answer(self, admission: Admission, size: int) -> WorkRefused | None:
        """Count an answer of `size` bytes against the budgets until `admission` is released;
        a WorkRefused (not raised) when it does not fit: the driver sends that instead."""
        lim = self.limits
        key = admission.peer
        if (self._answer_bytes[key] + size > lim.max_answer_bytes_per_peer
                or self._answer_total + size > lim.max_answer_bytes_total):
            self.refused += 1
            return WorkRefused(
                f"work refused: an answer of {size} bytes does not fit the worker's answer memory"
                f" budget now ({self._answer_bytes[key]} of {lim.max_answer_bytes_per_peer} bytes"
                f" held for this peer, {self._answer_total} of {lim.max_answer_bytes_total} in all)")
        self._answer_bytes[key] += size
        self._answer_total += size
        admission.answer_bytes += size
        return None

    def _release(self, admission: Admission) -> None:
        key = admission.peer
        if admission.answer_bytes:
            self._answer_total -= admission.answer_bytes
            left = self._answer_bytes[key] - admission.answer_bytes
            if left > 0:
                self._answer_bytes[key] = left
            else:
                del self._answer_bytes[key]
            admission.answer_bytes = 0
        if not admission.granted:  # left the queue without a slot
            self._waiting.remove(admission)
            _decrement(self._waiting_per_peer, key)
            return
        left = self._per_peer.get(key, 0) - 1  # (`_decrement`, inline: once per request)
        if left > 0:
            self._per_peer[key] = left
        else:
            self._per_peer.pop(key, None)
        self._total -= 1
        if self._waiting:
            self._grant_waiting()

    def _grant_waiting(self) -> None:
        """Hand free slots to the oldest waiting requests whose peer is under its share."""
        lim = self.limits
        if self._total >= lim.max_concurrent_total:
            return
        for admission in list(self._waiting):
            if self._total >= lim.max_concurrent_total:
                break
            if self._per_peer[admission.peer] < lim.max_concurrent_per_peer:
                self._waiting.remove(admission)
                _decrement(self._waiting_per_peer, admission.peer)
                self._take(admission)
                if admission.on_grant is not None:
                    admission.on_grant()


def _decrement(counts: Counter[str], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)  # (dict's own: Counter's __delitem__ is a Python-level call)
