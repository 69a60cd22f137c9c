"""The routing table: k-buckets by XOR distance, as go-libp2p-kbucket v0.6 keys them.

A peer's position is SHA-256 of its peer-ID bytes (go ConvertPeerID); a key's is SHA-256 of the
key bytes (go ConvertKey). Bucket i holds peers whose position shares exactly i leading bits with
ours; each bucket keeps at most `bucket_size` peers (go K: 20 by default, masa 100). A full bucket
admits a newcomer only by evicting a peer marked replaceable, as go's TryAddPeer does. No clock:
callers pass `now` (seconds, any monotonic origin).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from p2p.identity import PeerId

KEY_BITS = 256


def kad_key(data: bytes) -> bytes:
    """The 32-byte position of a key or a peer ID's bytes in the XOR space."""
    return hashlib.sha256(data).digest()


def distance(a: bytes, b: bytes) -> int:
    """XOR distance of two 32-byte positions as an integer (smaller is closer)."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def common_prefix_len(a: bytes, b: bytes) -> int:
    d = distance(a, b)
    return KEY_BITS - d.bit_length()


@dataclass
class Entry:
    peer: PeerId
    position: bytes
    added_at: float
    last_useful_at: float
    last_query_ok_at: float
    replaceable: bool


class RoutingTable:
    def __init__(self, local: PeerId, bucket_size: int = 20) -> None:
        if bucket_size < 1:
            raise ValueError("bucket_size must be >= 1")
        self.local = local
        self.local_position = kad_key(local.to_bytes())
        self.bucket_size = bucket_size
        self._buckets: list[dict[PeerId, Entry]] = [dict() for _ in range(KEY_BITS + 1)]
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, peer: object) -> bool:
        return isinstance(peer, PeerId) and self.find(peer) is not None

    def _bucket_of(self, position: bytes) -> dict[PeerId, Entry]:
        return self._buckets[common_prefix_len(self.local_position, position)]

    def find(self, peer: PeerId) -> Entry | None:
        return self._bucket_of(kad_key(peer.to_bytes())).get(peer)

    def try_add(self, peer: PeerId, now: float, *, query_ok: bool = True,
                replaceable: bool = True) -> bool:
        """Add `peer` (or refresh it); False when it is us or its bucket is full of keepers."""
        if peer == self.local:
            return False
        position = kad_key(peer.to_bytes())
        bucket = self._bucket_of(position)
        entry = bucket.get(peer)
        if entry is not None:
            if query_ok:
                entry.last_query_ok_at = now
            return True
        if len(bucket) >= self.bucket_size:
            victim = next((e for e in bucket.values() if e.replaceable), None)
            if victim is None:
                return False
            del bucket[victim.peer]
            self._size -= 1
        bucket[peer] = Entry(peer, position, now, now, now if query_ok else 0.0, replaceable)
        self._size += 1
        return True

    def remove(self, peer: PeerId) -> bool:
        bucket = self._bucket_of(kad_key(peer.to_bytes()))
        if bucket.pop(peer, None) is None:
            return False
        self._size -= 1
        return True

    def mark_useful(self, peer: PeerId, now: float) -> None:
        entry = self.find(peer)
        if entry is not None:
            entry.last_useful_at = now
            entry.last_query_ok_at = now

    def peers(self) -> list[PeerId]:
        return [p for bucket in self._buckets for p in bucket]

    def entries(self) -> list[Entry]:
        return [e for bucket in self._buckets for e in bucket.values()]

    def bucket_sizes(self) -> dict[int, int]:
        return {i: len(b) for i, b in enumerate(self._buckets) if b}

    def nearest(self, key_position: bytes, count: int,
                exclude: Iterable[PeerId] = ()) -> list[PeerId]:
        """Up to `count` peers closest to a 32-byte position, closest first."""
        skip = set(exclude)
        target = int.from_bytes(key_position, "big")
        ranked = sorted(
            (int.from_bytes(e.position, "big") ^ target, e.peer)
            for bucket in self._buckets for e in bucket.values() if e.peer not in skip
        )
        return [p for _, p in ranked[:count]]

    def stale(self, now: float, older_than: float) -> list[PeerId]:
        """Peers without a successful query for `older_than` seconds (to re-check at refresh)."""
        return [e.peer for e in self.entries() if now - e.last_query_ok_at > older_than]
