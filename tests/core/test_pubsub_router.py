"""The gossipsub router (sans-IO): mesh upkeep and degree bounds, GRAFT/PRUNE with backoff, gossip,
IWANT limits, the seen cache, IDONTWANT (v1.2), and hostile control traffic (IHAVE floods, GRAFT
during backoff, IDONTWANT floods)."""

from __future__ import annotations

import hashlib
import random

import pytest

from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.pubsub.router import (FLOODSUB, MESHSUB_10, MESHSUB_11, MESHSUB_12, GossipSubParams, Router,
                               id_checksum)
from p2p.pubsub.rpc import RPC, Control, IHave, Prune, PubMessage, SubOpts
from p2p.pubsub.sign import sign

T = "topic"


def pid(n: int) -> PeerId:
    return PeerId(b"\x12\x20" + hashlib.sha256(n.to_bytes(8, "big")).digest())


def router(npeers: int = 0, *, proto: str = MESHSUB_11, outbound: bool = True,
           joined: bool = True) -> Router:
    r = Router(pid(0), rng=random.Random(7))
    for i in range(1, npeers + 1):
        r.add_peer(pid(i), proto, outbound=outbound)
        r.handle_rpc(pid(i), RPC(subscriptions=[SubOpts(True, T)]), 0.0)
    if joined:
        r.join(T, 0.0)
    return r


def signed(data: bytes, key: PrivateKey | None = None, seq: int = 1) -> PubMessage:
    msg = PubMessage(data=data, seqno=seq.to_bytes(8, "big"), topic=T)
    sign(msg, key or PrivateKey.generate(KeyType.Ed25519))
    return msg


def out_map(r: Router) -> dict[PeerId, RPC]:
    return dict(r.take_outgoing())


def test_hello_carries_subscriptions():
    r = Router(pid(0))
    r.join(T, 0.0)
    r.add_peer(pid(1), MESHSUB_11, outbound=True)
    assert out_map(r)[pid(1)].subscriptions == [SubOpts(True, T)]


def test_join_grafts_D_peers_and_heartbeat_keeps_degree_bounds():
    r = router(20)
    assert len(r.mesh[T]) == 6
    grafted = [p for p, rpc in out_map(r).items() if rpc.control and rpc.control.graft == [T]]
    assert set(grafted) == r.mesh[T]
    # peers GRAFT us until the mesh is over Dhi (their connections are outbound: accepted)
    for i in range(1, 21):
        r.handle_rpc(pid(i), RPC(control=Control(graft=[T])), 1.0)
    assert len(r.mesh[T]) == 20
    r.take_outgoing()
    r.heartbeat(2.0)
    assert len(r.mesh[T]) == 6  # pruned back to D
    pruned = [p for p, rpc in out_map(r).items() if rpc.control and rpc.control.prune]
    assert len(pruned) == 14
    # a peer with too few: heartbeat grafts up to D again
    for p in list(r.mesh[T])[:3]:
        r.handle_rpc(p, RPC(control=Control(prune=[Prune(T, backoff=60)])), 3.0)
    assert len(r.mesh[T]) == 3
    r.heartbeat(4.0)
    assert len(r.mesh[T]) == 3  # every other subscriber is backing off (we pruned it, or it us)
    for i in range(21, 25):
        r.add_peer(pid(i), MESHSUB_11, outbound=True)
        r.handle_rpc(pid(i), RPC(subscriptions=[SubOpts(True, T)]), 4.5)
    r.heartbeat(5.0)
    assert len(r.mesh[T]) == 6
    assert not any(r._in_backoff(T, p, 5.0) for p in r.mesh[T])


def test_graft_during_backoff_is_pruned_and_backoff_extended():
    r = router(3)
    peer = next(iter(r.mesh[T]))
    r.handle_rpc(peer, RPC(control=Control(prune=[Prune(T, backoff=60)])), 10.0)
    assert peer not in r.mesh[T]
    r.take_outgoing()
    r.handle_rpc(peer, RPC(control=Control(graft=[T])), 30.0)  # GRAFT while backing off
    assert peer not in r.mesh[T]
    answer = out_map(r)[peer].control
    assert answer.prune == [Prune(T, backoff=60)]
    assert r.backoff[T][peer] == 90.0  # refreshed: 60 s from the offending GRAFT
    r.heartbeat(40.0)
    assert peer not in r.mesh[T]  # the heartbeat does not graft a backed-off peer
    r.handle_rpc(peer, RPC(control=Control(graft=[T])), 91.0)
    assert peer in r.mesh[T]


def test_graft_at_dhi_from_inbound_peer_is_refused():
    r = router(13, outbound=False)
    for i in range(1, 14):
        r.handle_rpc(pid(i), RPC(control=Control(graft=[T])), 1.0)
    assert len(r.mesh[T]) == 12  # Dhi: the 13th inbound GRAFT got a PRUNE
    assert any(rpc.control and rpc.control.prune for rpc in out_map(r).values())


def test_graft_for_unjoined_topic_is_ignored_and_v10_prune_has_no_backoff():
    r = router(2, proto=MESHSUB_10, joined=False)
    r.handle_rpc(pid(1), RPC(control=Control(graft=[T])), 0.0)
    assert T not in r.mesh and not out_map(r)
    r.join(T, 0.0)
    r.take_outgoing()
    r.leave(T, 1.0)
    prunes = [rpc.control.prune for rpc in out_map(r).values() if rpc.control]
    assert prunes and all(p == [Prune(T)] for p in prunes)


def test_message_forwarded_to_mesh_once_never_back_to_sender_or_author():
    r = router(10)
    r.add_peer(pid(50), FLOODSUB, outbound=True)
    r.handle_rpc(pid(50), RPC(subscriptions=[SubOpts(True, T)]), 0.0)
    r.take_outgoing()
    key = PrivateKey.generate()
    author = PeerId.from_public_key(key.public_key)
    sender = next(iter(r.mesh[T]))
    msg = signed(b"hello", key)
    assert r.handle_rpc(sender, RPC(publish=[msg]), 1.0) == [msg]
    out = out_map(r)
    got = {p for p, rpc in out.items() if rpc.publish}
    assert got == (r.mesh[T] | {pid(50)}) - {sender, author}
    assert r.handle_rpc(pid(3), RPC(publish=[msg]), 1.1) == []  # seen: not delivered twice
    assert not out_map(r)


def test_invalid_signatures_are_not_delivered_nor_forwarded():
    r = router(8)
    r.take_outgoing()
    msg = signed(b"x")
    msg.data = b"changed"
    unsigned = PubMessage(from_peer=pid(99).to_bytes(), data=b"x", seqno=b"\0" * 8, topic=T)
    mine = signed(b"x")
    mine.from_peer = pid(0).to_bytes()  # claims to be from us
    sender = next(iter(r.mesh[T]))
    assert r.handle_rpc(sender, RPC(publish=[msg, unsigned, mine]), 1.0) == []
    assert not any(rpc.publish for rpc in out_map(r).values())
    assert r.dropped_invalid == 2


def test_ihave_gets_iwant_and_iwant_answered_at_most_three_times():
    r = router(8)
    mine = signed(b"m")
    r.publish(mine, 0.0)
    r.take_outgoing()
    other = signed(b"unseen")
    r.handle_rpc(pid(1), RPC(control=Control(ihave=[IHave(T, [mine.id, other.id])])), 0.1)
    assert out_map(r)[pid(1)].control.iwant == [[other.id]]
    for n in range(5):
        r.handle_rpc(pid(2), RPC(control=Control(iwant=[[mine.id]])), 0.2)
        sent = out_map(r).get(pid(2))
        assert (sent is not None and sent.publish == [mine]) == (n < 3)


def test_ihave_flood_is_bounded_per_heartbeat():
    r = router(2)
    r.take_outgoing()
    asked = 0
    for n in range(50):  # 50 IHAVEs of 1000 fresh IDs each within one heartbeat
        ids = [n.to_bytes(4, "big") + i.to_bytes(4, "big") for i in range(1000)]
        r.handle_rpc(pid(1), RPC(control=Control(ihave=[IHave(T, ids)])), 0.5)
        rpc = out_map(r).get(pid(1))
        if rpc and rpc.control:
            asked += sum(len(x) for x in rpc.control.iwant)
    assert asked == 5000  # max_ihave_length, over at most 10 IHAVEs
    r.heartbeat(1.0)
    r.take_outgoing()
    r.handle_rpc(pid(1), RPC(control=Control(ihave=[IHave(T, [b"fresh-id"])])), 1.1)
    assert out_map(r)[pid(1)].control.iwant == [[b"fresh-id"]]  # counters reset each heartbeat
    # IHAVE for a topic we have not joined is ignored
    r.handle_rpc(pid(1), RPC(control=Control(ihave=[IHave("other", [b"z"])])), 1.2)
    assert pid(1) not in out_map(r)


def test_gossip_emitted_to_non_mesh_peers_and_cache_expires():
    r = router(20)
    msg = signed(b"g")
    r.publish(msg, 0.0)
    r.take_outgoing()
    r.heartbeat(1.0)
    ihave_to = {p for p, rpc in out_map(r).items() if rpc.control and rpc.control.ihave}
    assert ihave_to and not ihave_to & r.mesh[T]
    assert len(ihave_to) >= 6  # Dlazy
    for t in range(2, 7):
        r.heartbeat(float(t))
    assert r.mcache.get(msg.id) is None  # gone after history_length heartbeats


def test_fanout_for_unjoined_topic_and_its_expiry():
    r = router(10, joined=False)
    r.take_outgoing()
    msg = signed(b"f")
    r.publish(msg, 0.0)
    assert len(r.fanout[T]) == 6
    assert {p for p, rpc in out_map(r).items() if rpc.publish} == r.fanout[T]
    r.heartbeat(61.0)
    assert T not in r.fanout


def test_seen_cache_is_bounded_and_expires():
    r = Router(pid(0), GossipSubParams(max_seen=100, seen_ttl=10.0))
    for i in range(500):
        r._mark_seen(i.to_bytes(4, "big"), 0.0)
    assert len(r.seen) == 100
    r.heartbeat(11.0)
    assert len(r.seen) == 0


def test_peer_topics_are_bounded():
    r = Router(pid(0), GossipSubParams(max_topics_per_peer=10))
    r.add_peer(pid(1), MESHSUB_11, outbound=True)
    r.handle_rpc(pid(1), RPC(subscriptions=[SubOpts(True, f"t{i}") for i in range(1000)]), 0.0)
    assert len(r.peers[pid(1)].topics) == 10 and len(r.topic_peers) == 10
    r.remove_peer(pid(1))
    assert not r.topic_peers


def test_params_are_validated():
    with pytest.raises(ValueError):
        GossipSubParams(D=3, Dlo=5)


# ---- IDONTWANT (gossipsub v1.2) --------------------------------------------------------------


def test_large_message_sends_idontwant_to_v12_mesh_peers_before_checking_it():
    r = router(4, proto=MESHSUB_12)
    for i in (5, 6):  # two v1.1 mesh candidates: no IDONTWANT for them
        r.add_peer(pid(i), MESHSUB_11, outbound=True)
        r.handle_rpc(pid(i), RPC(subscriptions=[SubOpts(True, T)]), 0.0)
    r.heartbeat(1.0)  # mesh of 6: the four v1.2 peers and the two v1.1 ones
    assert len(r.mesh[T]) == 6
    r.take_outgoing()
    sender = pid(1)
    big, small = signed(b"x" * 1024, seq=1), signed(b"x" * 1023, seq=2)
    bad = signed(b"y" * 2000, seq=3)
    bad.data = b"z" * 2000  # a bad signature still gets its IDONTWANT (sent before validation)
    delivered = r.handle_rpc(sender, RPC(publish=[big, small, bad]), 1.1)
    assert delivered == [big, small]
    urgent = dict(r.take_urgent())
    assert set(urgent) == {pid(1), pid(2), pid(3), pid(4)}  # v1.2 mesh peers, the sender too
    for rpc in urgent.values():
        assert not rpc.publish and rpc.control is not None
        (ids,) = rpc.control.idontwant
        assert sorted(ids) == sorted([big.id, bad.id])
    # seen messages and our own get none
    r.handle_rpc(pid(2), RPC(publish=[big]), 1.2)
    assert not r.take_urgent()
    r.publish(signed(b"o" * 5000, seq=9), 1.3)
    assert not r.take_urgent()


def test_idontwant_for_unjoined_topic_or_non_mesh_peer_is_not_sent():
    r = router(8, proto=MESHSUB_12)
    r.take_outgoing()
    outside = next(p for p in r.peers if p not in r.mesh[T])
    msg = signed(b"b" * 4096)
    r.handle_rpc(outside, RPC(publish=[msg]), 1.0)
    assert outside not in dict(r.take_urgent())
    r.take_outgoing()
    other = PubMessage(data=b"c" * 4096, seqno=b"\0" * 8, topic="unjoined")
    sign(other, PrivateKey.generate(KeyType.Ed25519))
    assert r.handle_rpc(outside, RPC(publish=[other]), 1.0) == []
    assert not r.take_urgent() and not any(rpc.publish for _, rpc in r.take_outgoing())


def test_received_idontwant_keeps_the_message_from_that_peer_for_three_heartbeats():
    r = router(6, proto=MESHSUB_12)
    r.take_outgoing()
    a, b = sorted(r.mesh[T], key=str)[:2]
    msgs = [signed(b"m", seq=n) for n in range(5)]
    r.handle_rpc(a, RPC(control=Control(idontwant=[[m.id for m in msgs]])), 0.5)
    assert not dict(r.take_outgoing()).get(a)  # nothing to answer
    r.publish(msgs[0], 0.6)
    got = {p for p, rpc in out_map(r).items() if msgs[0] in rpc.publish}
    assert got == r.mesh[T] - {a}
    # forwarding someone else's message: skipped for `a` too
    r.handle_rpc(b, RPC(publish=[msgs[1]]), 0.7)
    got = {p for p, rpc in out_map(r).items() if msgs[1] in rpc.publish}
    assert got == r.mesh[T] - {a, b}
    for t, n in ((1.0, 2), (2.0, 3)):  # still honoured after one and two heartbeats
        r.heartbeat(t)
        r.take_outgoing()
        r.publish(msgs[n], t + 0.1)
        assert a not in {p for p, rpc in out_map(r).items() if msgs[n] in rpc.publish}
    r.heartbeat(3.0)  # the third heartbeat forgets it
    assert a not in r.unwanted
    r.take_outgoing()
    r.publish(msgs[4], 3.1)
    assert a in {p for p, rpc in out_map(r).items() if msgs[4] in rpc.publish}


def test_idontwant_flood_is_bounded_per_peer_and_heartbeat():
    r = router(3, proto=MESHSUB_12)
    r.take_outgoing()
    peer = pid(1)
    for n in range(200):  # 200 RPCs x 500 IDs within one heartbeat: 1000 IDs kept
        ids = [n.to_bytes(4, "big") + i.to_bytes(4, "big") for i in range(500)]
        r.handle_rpc(peer, RPC(control=Control(idontwant=[ids[:250], ids[250:]])), 0.5)
    assert len(r.unwanted[peer]) == 1000
    assert b"\0\0\0\x01\0\0\x01\xf3" in r.unwanted[peer]  # the first 1000 IDs, in order
    total = 0
    for t in range(1, 10):  # each heartbeat admits 1000 more; entries live 3 heartbeats
        r.heartbeat(float(t))
        for n in range(20):
            ids = [t.to_bytes(2, "big") + n.to_bytes(2, "big") + i.to_bytes(4, "big") for i in range(100)]
            r.handle_rpc(peer, RPC(control=Control(idontwant=[ids])), t + 0.5)
        total = len(r.unwanted[peer])
        assert total <= 3 * 1000
    assert total == 3 * 1000
    r.remove_peer(peer)
    assert peer not in r.unwanted


def test_long_idontwant_ids_are_kept_as_32_byte_digests():
    r = router(2, proto=MESHSUB_12)
    r.take_outgoing()
    huge = [bytes([i]) * 100_000 for i in range(5)]  # 500 KB of IDs in one RPC
    r.handle_rpc(pid(1), RPC(control=Control(idontwant=[huge])), 0.5)
    assert all(len(k) <= 33 for k in r.unwanted[pid(1)]) and len(r.unwanted[pid(1)]) == 5
    assert id_checksum(b"a" * 32) == b"a" * 32 and id_checksum(b"a" * 33) != id_checksum(b"")
    assert len(id_checksum(b"")) == 33  # go hashes an empty ID too


def test_idontwant_from_floodsub_peer_is_ignored_as_other_control():
    r = router(0)
    r.add_peer(pid(1), FLOODSUB, outbound=True)
    r.handle_rpc(pid(1), RPC(control=Control(idontwant=[[b"x"]])), 0.5, protocol=FLOODSUB)
    assert not r.unwanted
