"""Routing table and iterative lookup (sans-IO): XOR geometry, buckets, a simulated network."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.identity import PeerId
from p2p.kad.lookup import Lookup, State
from p2p.kad.routing import RoutingTable, common_prefix_len, distance, kad_key


def pid(n: int) -> PeerId:
    """A valid sha2-256 multihash peer ID from a number (cheap, no key generation)."""
    return PeerId(b"\x12\x20" + hashlib.sha256(n.to_bytes(8, "big")).digest())


def test_key_is_sha256_of_the_id_bytes():
    p = pid(1)
    assert kad_key(p.to_bytes()) == hashlib.sha256(p.to_bytes()).digest()
    assert common_prefix_len(b"\x00" * 32, b"\x00" * 32) == 256
    assert common_prefix_len(b"\x80" + bytes(31), bytes(32)) == 0
    assert common_prefix_len(b"\x01" + bytes(31), bytes(32)) == 7
    assert distance(b"\x01" * 32, b"\x01" * 32) == 0


def test_bucket_size_bounds_each_bucket_and_self_is_never_added():
    local = pid(0)
    rt = RoutingTable(local, bucket_size=3)
    assert not rt.try_add(local, 0.0)
    added = [p for p in map(pid, range(1, 200)) if rt.try_add(p, 0.0, replaceable=False)]
    assert all(n <= 3 for n in rt.bucket_sizes().values())
    assert len(rt) == len(added) < 199
    # half of all peers fall in bucket 0: it is full, a newcomer there is refused
    b0 = [p for p in map(pid, range(200, 400))
          if common_prefix_len(rt.local_position, kad_key(p.to_bytes())) == 0]
    assert not rt.try_add(b0[0], 1.0)


def test_replaceable_peer_makes_room():
    local = pid(0)
    rt = RoutingTable(local, bucket_size=1)
    b0 = [p for p in map(pid, range(1, 100))
          if common_prefix_len(rt.local_position, kad_key(p.to_bytes())) == 0]
    assert rt.try_add(b0[0], 0.0, replaceable=True)
    assert rt.try_add(b0[1], 0.0, replaceable=False)
    assert b0[0] not in rt and b0[1] in rt
    assert not rt.try_add(b0[2], 0.0)
    assert rt.remove(b0[1]) and len(rt) == 0


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=60, unique=True), st.binary(min_size=1))
def test_nearest_is_sorted_by_xor_distance(ns, key):
    rt = RoutingTable(pid(0), bucket_size=100)
    for n in ns:
        rt.try_add(pid(n), 0.0)
    target = kad_key(key)
    got = rt.nearest(target, 10)
    everyone = sorted(rt.peers(), key=lambda p: distance(kad_key(p.to_bytes()), target))
    assert got == everyone[:10]


def test_stale_peers():
    rt = RoutingTable(pid(0))
    rt.try_add(pid(1), 0.0)
    rt.try_add(pid(2), 50.0)
    assert rt.stale(100.0, 60.0) == [pid(1)]
    rt.mark_useful(pid(1), 99.0)
    assert rt.stale(100.0, 60.0) == []


# ---- lookups in a simulated network ---------------------------------------------------------

class Network:
    """N peers, each knowing the K closest peers to itself plus a few random ones."""

    def __init__(self, n: int, k: int, seed: int = 1) -> None:
        rnd = random.Random(seed)
        self.peers = [pid(i) for i in range(1, n + 1)]
        self.tables = {}
        for p in self.peers:
            rt = RoutingTable(p, bucket_size=k)
            pos = kad_key(p.to_bytes())
            for q in sorted(self.peers, key=lambda q: distance(kad_key(q.to_bytes()), pos))[: k + 1]:
                rt.try_add(q, 0.0)
            for q in rnd.sample(self.peers, 5):
                rt.try_add(q, 0.0)
            self.tables[p] = rt

    def answer(self, peer: PeerId, key: bytes, k: int) -> list[PeerId]:
        return self.tables[peer].nearest(kad_key(key), k)

    def true_closest(self, key: bytes, k: int) -> list[PeerId]:
        target = kad_key(key)
        return sorted(self.peers, key=lambda q: distance(kad_key(q.to_bytes()), target))[:k]


def run(lookup: Lookup, net: Network, *, dead: set = frozenset(), now: float = 0.0,
        max_in_flight_seen: list | None = None) -> None:
    """Answer queries one at a time in FIFO order (a synchronous driver)."""
    waiting: list[PeerId] = []
    while not lookup.finished(now):
        waiting += lookup.next_queries(now)
        if max_in_flight_seen is not None:
            max_in_flight_seen.append(lookup.in_flight())
        if not waiting:
            break
        peer = waiting.pop(0)
        if peer in dead:
            lookup.on_failure(peer)
        else:
            lookup.on_reply(peer, net.answer(peer, lookup.key, lookup.k))
        now += 0.01


@pytest.mark.parametrize("alpha", [1, 3, 10])
def test_lookup_converges_to_the_true_closest(alpha):
    net = Network(300, k=8)
    local = net.peers[0]
    seeds = net.tables[local].nearest(kad_key(b"x"), 8)
    for key in (b"a", b"b", net.peers[123].to_bytes()):
        lk = Lookup(key, seeds, local=local, k=8, alpha=alpha)
        seen: list[int] = []
        run(lk, net, max_in_flight_seen=seen)
        assert lk.stop_reason == "converged"
        want = [p for p in net.true_closest(key, 9) if p != local][:8]
        assert lk.closest() == want
        assert max(seen) <= alpha  # bounded parallelism
        assert lk.queries < 120  # a lookup asks a small part of the network


def test_lookup_routes_around_dead_peers():
    net = Network(200, k=6)
    local = net.peers[0]
    key = net.peers[77].to_bytes()
    want = net.true_closest(key, 6)
    dead = set(want[1:3])
    lk = Lookup(key, net.tables[local].nearest(kad_key(key), 6), local=local, k=6, alpha=3)
    run(lk, net, dead=dead)
    assert lk.stop_reason == "converged"
    assert want[0] in lk.closest() and not dead & set(lk.closest())


def test_lookup_deadline_and_stop():
    net = Network(50, k=4)
    lk = Lookup(b"k", net.peers[1:5], local=net.peers[0], k=4, alpha=2, deadline=1.0)
    assert len(lk.next_queries(0.0)) == 2
    assert lk.next_queries(0.5) == []  # alpha reached
    assert lk.finished(1.0) and lk.stop_reason == "deadline"
    assert lk.next_queries(2.0) == []
    lk2 = Lookup(b"k", net.peers[1:5], local=net.peers[0], k=4)
    lk2.stop("found")
    assert lk2.finished(0.0) and lk2.next_queries(0.0) == []


def test_lookup_without_peers_ends_at_once():
    lk = Lookup(b"k", [], local=pid(0))
    assert lk.finished(0.0) and lk.stop_reason == "no peers"


def test_unasked_replies_and_referral_floods_are_bounded():
    local = pid(0)
    lk = Lookup(b"k", [pid(1)], local=local, k=4, alpha=1, max_candidates=64)
    lk.on_reply(pid(1), [pid(2)])  # not asked yet: ignored
    assert lk.state(pid(2)) is None
    [first] = lk.next_queries(0.0)
    lk.on_reply(first, [pid(n) for n in range(2, 5000)] + [local])
    assert len(lk._cands) <= 64  # bounded memory under a flood of referrals
    assert lk.state(local) is None
    # the candidates kept are the closest of all those referred
    kept = {c.peer for c in lk._cands.values() if c.state is State.HEARD}
    target = kad_key(b"k")
    best = sorted((pid(n) for n in range(2, 5000)),
                  key=lambda p: distance(kad_key(p.to_bytes()), target))[:10]
    assert set(best) <= kept
    assert lk.hops(best[0]) == 1


@settings(max_examples=30)
@given(st.integers(0, 2**32), st.integers(1, 6))
def test_lookup_terminates(seed, alpha):
    net = Network(60, k=4, seed=seed)
    rnd = random.Random(seed)
    dead = set(rnd.sample(net.peers, 10))
    lk = Lookup(rnd.randbytes(8), net.peers[1:8], local=net.peers[0], k=4, alpha=alpha)
    run(lk, net, dead=dead)
    assert lk.finished(100.0) and lk.in_flight() == 0
