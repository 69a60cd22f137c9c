"""The node tracker: masa's merge rules (pkg/pubsub/node_event_tracker.go), CanDoWork (node_data.go), bounds."""

from __future__ import annotations

import random

import pytest

from oracle.gotime import GoTime
from oracle.nodedata import ACTIVITY_LEFT, NodeData
from oracle.tracker import (
    CATEGORY_DISCORD,
    CATEGORY_TELEGRAM,
    CATEGORY_TWITTER,
    CATEGORY_WEB,
    NodeTracker,
    can_do_work,
    category_of,
)

ME = "16Uiu2HAmUDQndrYJCSLz2PfnwpKZxhbtQGtCgoHdmrrUcJHSSWKE"
A = "16Uiu2HAm2E77hejXzQGit9gP2H2Y8JSiGscQ6sUdwzSUt2GQ6cTx"
B = "16Uiu2HAmG9tHsVuajeSqQoQaT8TiK5niejezu1FciFcithLi8z41"
ADDR = ("/ip4/127.0.0.1/tcp/4001",)


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_939_526.0

    def __call__(self) -> float:
        return self.now


def tracker(**kw) -> tuple[NodeTracker, Clock]:
    clock = Clock()
    return NodeTracker(NodeData(peer_id=ME, is_staked=True, is_web_scraper=True), clock=clock, **kw), clock


def test_categories_as_masa_maps_them() -> None:
    assert [category_of(t) for t in ("twitter", "twitter-followers", "twitter-profile")] == [CATEGORY_TWITTER] * 3
    assert category_of("web") == CATEGORY_WEB
    assert category_of("discord-profile") == category_of("discord") == CATEGORY_DISCORD
    assert category_of("telegram-channel-messages") == CATEGORY_TELEGRAM
    assert category_of("test") == category_of("llm") == -1


def test_can_do_work() -> None:
    web = NodeData(peer_id=A, is_staked=True, is_web_scraper=True)
    assert can_do_work(web, "web") and not can_do_work(web, "twitter")
    assert not can_do_work(NodeData(peer_id=A, is_staked=False, is_web_scraper=True), "web")
    tw = NodeData(peer_id=A, is_staked=True, is_twitter_scraper=True)
    assert can_do_work(tw, "twitter-profile") and not can_do_work(tw, "web")
    everything = NodeData(peer_id=A, is_staked=True, is_twitter_scraper=True, is_web_scraper=True)
    assert not can_do_work(everything, "discord") and not can_do_work(everything, "telegram-channel-messages")
    # our extension for work types masa does not know
    ours = NodeData(peer_id=A, is_staked=True, records={"workTypes": ["test"]})
    assert can_do_work(ours, "test") and not can_do_work(ours, "web")
    assert not can_do_work(NodeData(peer_id=A, records={"workTypes": ["test"]}), "test")
    assert not can_do_work(NodeData(peer_id=A, is_staked=True, records={"workTypes": "test"}), "test")


def test_self_entry_joined_at_start() -> None:
    t, clock = tracker(version="v0.8.4")
    me = t.self_data
    assert me.is_active and me.first_joined == me.last_joined == me.last_updated == int(clock.now)
    assert me.version == "v0.8.4"
    assert t.eligible("web") == [] and t.eligible("web", include_self=True) == [ME]


def test_add_or_update_new_and_known() -> None:
    t, clock = tracker(version="v0.8.4")
    item = t.add_or_update(NodeData(peer_id=A, is_staked=True, is_web_scraper=True, version="other"))
    assert item is not None and item.is_active and item.version == "v0.8.4"  # Joined overwrites it
    assert t.eligible("web") == [A]
    clock.now += 10
    # known peer: flags, multiaddrs, eth address taken; lastUpdated = incoming (0 when omitted)
    item = t.add_or_update(NodeData(peer_id=A, is_staked=True, is_twitter_scraper=True,
                                    multiaddrs=ADDR, eth_address="0x1", is_validator=True))
    entry = t.get(A)
    assert entry.is_twitter_scraper and not entry.is_web_scraper and entry.multiaddrs == ADDR
    assert entry.last_updated == 0 and not entry.is_validator and item is not None
    # without multiaddrs: no channel item, lastUpdated kept
    t.add_or_update(NodeData(peer_id=A, is_staked=False, last_updated=5))
    assert t.get(A).last_updated == 0 and not t.get(A).is_staked
    assert t.eligible("twitter") == []
    # data about ourselves is never taken from others
    assert t.add_or_update(NodeData(peer_id=ME)) is None and t.self_data.is_staked


def test_refresh_from_boot_overwrites() -> None:
    t, _ = tracker()
    t.add_or_update(NodeData(peer_id=A, is_staked=True, is_web_scraper=True))
    t.refresh_from_boot(NodeData(peer_id=A, is_staked=False, last_updated=3))
    assert t.get(A) == NodeData(peer_id=A, is_staked=False, last_updated=3)
    t.refresh_from_boot(NodeData(peer_id=ME, is_staked=False))
    assert t.self_data.is_staked


def test_refresh_from_boot_keeps_what_the_sender_announced_since() -> None:
    # A's page was computed (lastUpdated 5) before A announced a new handler (lastUpdated 6) but
    # arrived after the announce: the page's entry about A itself does not roll it back.
    t, _ = tracker()
    t.add_or_update(NodeData(peer_id=A, is_staked=True))  # joined
    t.add_or_update(NodeData(peer_id=A, is_staked=True, is_web_scraper=True, multiaddrs=("/ip4/1.2.3.4/tcp/1",),
                             last_updated=6))
    t.refresh_from_boot(NodeData(peer_id=A, is_staked=True, last_updated=5), sender=A)
    assert t.get(A).is_web_scraper and t.get(A).last_updated == 6
    t.refresh_from_boot(NodeData(peer_id=A, is_staked=True, last_updated=6), sender=A)  # same second
    assert t.get(A).is_web_scraper
    t.refresh_from_boot(NodeData(peer_id=A, is_staked=True, last_updated=7), sender=A)  # newer: taken
    assert not t.get(A).is_web_scraper
    # about A from someone else: overwritten as received, as masa does
    t.refresh_from_boot(NodeData(peer_id=A, is_staked=True, is_web_scraper=True, last_updated=1), sender=B)
    assert t.get(A) == NodeData(peer_id=A, is_staked=True, is_web_scraper=True, last_updated=1)


def test_handle_node_data_gossip_rules() -> None:
    t, _ = tracker()
    t.handle_node_data(NodeData(peer_id=A, is_staked=False, last_updated=100))
    assert t.get(A).last_updated == 100
    # older data replaces an unstaked entry...
    t.handle_node_data(NodeData(peer_id=A, is_staked=True, last_updated=50, is_web_scraper=True))
    assert t.get(A).is_web_scraper and t.get(A).last_updated == 50
    # ...but is ignored by a staked one
    t.handle_node_data(NodeData(peer_id=A, is_staked=False, last_updated=10))
    assert t.get(A).is_staked and t.get(A).last_updated == 50
    # newer data merges timestamps and isStaked only: capability flags do not change this way
    t.handle_node_data(NodeData(peer_id=A, is_staked=True, last_updated=60, is_twitter_scraper=True,
                                eth_address="0x2"))
    entry = t.get(A)
    assert entry.last_updated == 60 and not entry.is_twitter_scraper and entry.eth_address == "0x2"


def test_connect_disconnect_and_buffer() -> None:
    t, clock = tracker()
    assert t.connected(A) is None  # unknown: nothing
    t.add_or_update(NodeData(peer_id=A, is_staked=True, is_web_scraper=True))
    clock.now += 100
    left = t.disconnected(A)
    assert left.activity == ACTIVITY_LEFT and not left.is_active and left.last_left == int(clock.now)
    assert left.accumulated_uptime == 100 * 10**9
    assert t.eligible("web") == [A]  # masa keeps left entries eligible
    clock.now += 5
    rejoined = t.connected(A)  # inactive: Joined at once
    assert rejoined is not None and rejoined.is_active and rejoined.last_joined == int(clock.now)
    assert t.connected(A) is None  # active: buffered
    clock.now += 61
    swept = t.sweep()
    assert [d.peer_id for d in swept] == [A] and swept[0].is_active


def test_sync_entries_and_uptimes() -> None:
    t, clock = tracker()
    t.add_or_update(NodeData(peer_id=A, is_staked=True))
    clock.now += 3700
    everything = t.sync_entries_for(B)  # unknown recipient: all entries, self included
    assert {d.peer_id for d in everything} == {ME, A}
    assert everything[0].uptime_str == "1 hours 2 minutes"
    t.add_or_update(NodeData(peer_id=B))
    t.disconnected(B)
    clock.now += 1000
    t.handle_node_data(NodeData(peer_id=A, last_updated=int(clock.now) - 2000))  # staked: ignored
    assert {d.peer_id for d in t.sync_entries_for(B)} == {B}  # only what changed since B left - 5 min


def test_bounded_keeps_self_and_connected() -> None:
    t, clock = tracker(max_entries=3)
    t.add_or_update(NodeData(peer_id=A))
    t.connected(A)
    from p2p.identity import KeyType, PeerId, PrivateKey
    others = [str(PeerId.from_public_key(PrivateKey.generate(KeyType.Ed25519).public_key)) for _ in range(20)]
    for i, peer in enumerate(others):
        clock.now += 1
        t.handle_node_data(NodeData(peer_id=peer, last_updated=i))
    assert len(t) == 3 and ME in t and A in t and others[-1] in t
    many = NodeData(peer_id=B, last_updated=10**6, multiaddrs=tuple(f"/ip4/1.1.1.1/tcp/{i}" for i in range(100)))
    t.refresh_from_boot(many)
    assert len(t.get(B).multiaddrs) == 32
    fat = NodeData(peer_id=B, last_updated=10**6, eth_address="x" * 10_000, version="v" * 300,
                   multiaddrs_string=" " * 5000, records={"big": "y" * 2000})
    t.refresh_from_boot(fat)
    kept = t.get(B)
    assert (len(kept.eth_address), len(kept.version), len(kept.multiaddrs_string)) == (256, 256, 2048)
    assert kept.records is None
    small = NodeData(peer_id=B, last_updated=10**6, records={"workTypes": ["test"]})
    t.refresh_from_boot(small)
    assert t.get(B) == small


def test_twitter_order_pool_and_shuffle() -> None:
    t, _ = tracker()
    old, new = GoTime.from_unix_ns(10**18), GoTime.from_unix_ns(2 * 10**18)
    t.refresh_from_boot(NodeData(peer_id=A, is_staked=True, is_twitter_scraper=True, last_returned_tweet=old))
    t.refresh_from_boot(NodeData(peer_id=B, is_staked=True, is_twitter_scraper=True, last_returned_tweet=new))
    seen = {tuple(t.eligible("twitter", rng=random.Random(i))) for i in range(20)}
    assert seen == {(A, B), (B, A)}  # both in the pool (it holds at least 5), shuffled


def test_max_entries_validated() -> None:
    with pytest.raises(ValueError):
        NodeTracker(NodeData(peer_id=ME), max_entries=0)
