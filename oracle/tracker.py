"""The node tracker: what a masa node knows about every peer, and who may be sent which work.

Sans-IO (a clock is injected, nothing waits): the membership service (oracle/membership.py) feeds
it and acts on what it returns. It follows masa-oracle's NodeEventTracker (pkg/pubsub/
node_event_tracker.go and node_data.go, https://github.com/masa-finance/masa-oracle at e90264a):

- `add_or_update` is the `oracle_protocol` path: a new peer is Joined and stored; a known peer takes
  the incoming staked/scraper flags, records, multiaddrs and eth address, and (when the incoming
  multiaddrs are non-empty) the incoming `lastUpdated`.
- `refresh_from_boot` is the `nodeDataSync` path: the entry is overwritten as received.
- `handle_node_data` is the gossip path: unknown peers stored; a known staked entry ignores older
  data, a known unstaked one is replaced by it; otherwise only timestamps, the eth address (if
  empty) and isStaked (false -> true) are merged.
- `connected` / `disconnected` / `sweep`: a reconnect of an inactive entry is Joined at once, a
  connection while active is buffered and handled a minute later as Left then Joined.

Each of these returns the "channel item" masa would queue (the entry to act upon), or None.

Where we differ, on purpose: the tracker is bounded (`max_entries`; the least recently updated
entry that is neither ours nor connected goes first; masa never deletes), our own entry is never
overwritten by what others say about us, a sender's nodeDataSync page does not roll back what that
sender announced about itself since (its page and its announce travel on separate streams, so a page
computed before a handler change can arrive after the announce of the change; masa would keep the
stale entry until the next announce), and what one entry may hold is capped (32 addresses, text
fields of 256 characters, `records` of 1 KiB as JSON) so the whole tracker stays within a few MiB.

Eligibility is masa's CanDoWork: staked, and the category flag of the work type (twitter types ->
isTwitterScraper, web -> isWebScraper, anything else -> nobody). For work types masa does not know
(our `test` and plug-ins) an entry is eligible if it is staked and lists the type in
`records.workTypes` - an extension Go nodes store and ignore.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from oracle.gojson import GoJSONEncodeError, go_json_dumps
from oracle.nodedata import ACTIVITY_JOINED, ACTIVITY_LEFT, NodeData, pretty_duration

__all__ = [
    "CATEGORY_DISCORD",
    "CATEGORY_TELEGRAM",
    "CATEGORY_TWITTER",
    "CATEGORY_WEB",
    "NodeTracker",
    "TWITTER_WORK_TYPES",
    "can_do_work",
    "category_of",
    "records_work_types",
]

CATEGORY_DISCORD, CATEGORY_TELEGRAM, CATEGORY_TWITTER, CATEGORY_WEB = 0, 1, 2, 3
TWITTER_WORK_TYPES = ("twitter", "twitter-followers", "twitter-profile")
_NS = 1_000_000_000
MAX_ADDRS_PER_ENTRY = 32
MAX_ADDRS_STRING = 2048  # `multiaddrsString` of 32 addresses fits
MAX_TEXT_FIELD = 256  # eth address, version, uptime strings
MAX_RECORDS_JSON = 1024  # `records` (masa never sets it; we list work types in it)
_TEXT_FIELDS = ("eth_address", "version", "uptime_str", "accumulated_uptime_str")
CONNECT_BUFFER_DELAY = 60.0  # masa: a buffered connect is handled after 1 min
MAX_REMOTE_WORKERS = 10


def category_of(work_type: str) -> int:
    """masa's WorkerTypeToCategory (pkg/workers/types/work_types.go); -1 for other types."""
    if work_type in TWITTER_WORK_TYPES:
        return CATEGORY_TWITTER
    if work_type == "web":
        return CATEGORY_WEB
    if work_type.startswith("discord"):
        return CATEGORY_DISCORD
    if work_type == "telegram-channel-messages":
        return CATEGORY_TELEGRAM
    return -1


def records_work_types(records: Any) -> frozenset[str]:
    """Our extension: the work types a node lists in `records.workTypes` (anything else: none)."""
    if isinstance(records, dict):
        types = records.get("workTypes")
        if isinstance(types, list):
            return frozenset(t for t in types[:256] if isinstance(t, str))
    return frozenset()


def can_do_work(data: NodeData, work_type: str) -> bool:
    """masa's CanDoWork for the work type's category; our records extension for other types."""
    if not data.is_staked:
        return False
    category = category_of(work_type)
    if category == CATEGORY_TWITTER:
        return data.is_twitter_scraper
    if category == CATEGORY_WEB:
        return data.is_web_scraper
    if category == -1:
        return work_type in records_work_types(data.records)
    return False  # discord and telegram: masa has no flag for them, nobody is eligible


def _records_fit(records: Any) -> bool:
    try:
        return len(go_json_dumps(records)) <= MAX_RECORDS_JSON
    except GoJSONEncodeError:
        return False


def _bounded(data: NodeData) -> NodeData:
    """What one entry may cost us: addresses, text fields and `records` are capped (masa keeps all)."""
    changes: dict[str, Any] = {}
    if len(data.multiaddrs) > MAX_ADDRS_PER_ENTRY:
        changes["multiaddrs"] = data.multiaddrs[:MAX_ADDRS_PER_ENTRY]
    if len(data.multiaddrs_string) > MAX_ADDRS_STRING:
        changes["multiaddrs_string"] = data.multiaddrs_string[:MAX_ADDRS_STRING]
    for attr in _TEXT_FIELDS:
        if len(getattr(data, attr)) > MAX_TEXT_FIELD:
            changes[attr] = getattr(data, attr)[:MAX_TEXT_FIELD]
    if data.records is not None and not _records_fit(data.records):
        changes["records"] = None
    return replace(data, **changes) if changes else data


class NodeTracker:
    """Node data per peer ID (base58 string), merged as masa merges it, bounded in size."""

    def __init__(
        self,
        self_data: NodeData,
        *,
        version: str = "v0.8.4",
        max_entries: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.version = version
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, NodeData] = {}
        self._connected: dict[str, float] = {}  # peer -> when the current connection came up
        self._buffered: dict[str, float] = {}  # masa's ConnectBuffer: peer -> connect time
        self.self_id = self_data.peer_id
        self.set_self(self_data)

    # --- basics ----------------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, peer: object) -> bool:
        return str(peer) in self._entries

    def get(self, peer: object) -> NodeData | None:
        return self._entries.get(str(peer))

    def is_connected(self, peer: object) -> bool:
        return str(peer) in self._connected

    def _store(self, data: NodeData) -> None:
        self._entries[data.peer_id] = _bounded(data)
        if len(self._entries) > self.max_entries:
            self._evict()

    def _evict(self) -> None:
        """Drop the least recently updated entries that are neither ours nor connected."""
        candidates = sorted(
            (d.last_updated, p) for p, d in self._entries.items()
            if p != self.self_id and p not in self._connected
        )
        for _, peer in candidates[: len(self._entries) - self.max_entries]:
            del self._entries[peer]
            self._buffered.pop(peer, None)

    def _joined(self, data: NodeData) -> NodeData:
        now = self._now()
        return replace(
            data,
            first_joined=data.first_joined or now,
            last_joined=now,
            last_updated=now,
            activity=ACTIVITY_JOINED,
            is_active=True,
            version=self.version,
        )

    def _left(self, data: NodeData) -> NodeData:
        if data.activity == ACTIVITY_LEFT:
            return data
        now = self._now()
        accumulated = data.accumulated_uptime + max(0, now - data.last_joined) * _NS
        if data.first_joined > 0:
            accumulated = min(accumulated, max(0, now - data.first_joined) * _NS)
        return replace(
            data, last_left=now, last_updated=now, uptime=0, activity=ACTIVITY_LEFT,
            is_active=False, accumulated_uptime=accumulated,
        )

    # --- our own entry ---------------------------------------------------------------------------

    def set_self(self, data: NodeData) -> NodeData:
        """Store our own entry (Joined, as masa does at Start); returns it."""
        if data.peer_id != self.self_id:
            raise ValueError("set_self: peer ID differs from the tracker's own")
        current = self._entries.get(self.self_id)
        base = replace(data, first_joined=current.first_joined if current else data.first_joined)
        entry = self._joined(base)
        self._entries[self.self_id] = entry
        return entry

    @property
    def self_data(self) -> NodeData:
        return self._entries[self.self_id]

    # --- the ways node data comes in -------------------------------------------------------------

    def add_or_update(self, data: NodeData) -> NodeData | None:
        """`oracle_protocol` (AddOrUpdateNodeData): returns the channel item, if masa queues one."""
        if data.peer_id == self.self_id:
            return None
        existing = self._entries.get(data.peer_id)
        if existing is None:
            entry = self._joined(data)
            self._store(entry)
            return entry
        entry = replace(
            existing,
            is_staked=data.is_staked,
            is_twitter_scraper=data.is_twitter_scraper,
            is_web_scraper=data.is_web_scraper,
            records=data.records,
            multiaddrs=data.multiaddrs,
            eth_address=data.eth_address,
        )
        item = None
        if data.multiaddrs:
            item = entry
            entry = replace(entry, last_updated=data.last_updated)
        self._store(entry)
        return item

    def refresh_from_boot(self, data: NodeData, sender: str | None = None) -> None:
        """`nodeDataSync` (RefreshFromBoot): the entry becomes what was received, unless it is the
        sender's own entry and not newer than what we hold (both timestamps are the sender's clock)."""
        if not data.peer_id or data.peer_id == self.self_id:
            return
        existing = self._entries.get(data.peer_id)
        if data.peer_id == sender and existing is not None and data.last_updated <= existing.last_updated:
            return
        self._store(data)

    def handle_node_data(self, data: NodeData) -> NodeData | None:
        """Gossip (HandleNodeData): returns the channel item, if masa queues one."""
        if not data.peer_id or data.peer_id == self.self_id:
            return None
        existing = self._entries.get(data.peer_id)
        if existing is None:
            self._store(data)
            return None
        if data.last_updated < existing.last_updated:
            if not existing.is_staked:
                self._store(data)
            return None
        entry = replace(existing, last_updated=data.last_updated)
        if not entry.eth_address and data.eth_address:
            entry = replace(entry, eth_address=data.eth_address)
        if data.is_staked and not entry.is_staked:
            entry = replace(entry, is_staked=True)
        # AddOrUpdateNodeData with the stored entry itself: flags unchanged, an item if it has addrs.
        self._store(entry)
        return entry if entry.multiaddrs else None

    # --- connections -----------------------------------------------------------------------------

    def connected(self, peer: object) -> NodeData | None:
        """A connection came up: Joined at once if the entry was inactive, else buffered."""
        key = str(peer)
        self._connected.setdefault(key, self._clock())
        existing = self._entries.get(key)
        if existing is None or key == self.self_id:
            return None
        if existing.is_active:
            self._buffered[key] = self._clock()
            return None
        entry = self._joined(existing)
        self._store(entry)
        return entry

    def disconnected(self, peer: object, *, still_connected: bool = False) -> NodeData | None:
        """A connection ended: Left (or Left then Joined if a connect was buffered)."""
        key = str(peer)
        if not still_connected:
            self._connected.pop(key, None)
        existing = self._entries.get(key)
        if existing is None or key == self.self_id:
            return None
        entry = self._left(existing)
        if self._buffered.pop(key, None) is not None:
            entry = self._joined(entry)
        self._store(entry)
        return entry

    def sweep(self) -> list[NodeData]:
        """Buffered connects older than a minute become Left then Joined (masa's sweep)."""
        now = self._clock()
        items = []
        for key, at in list(self._buffered.items()):
            if now - at > CONNECT_BUFFER_DELAY:
                del self._buffered[key]
                existing = self._entries.get(key)
                if existing is not None:
                    entry = self._joined(self._left(existing))
                    self._store(entry)
                    items.append(entry)
        return items

    # --- reading ---------------------------------------------------------------------------------

    def all_node_data(self) -> list[NodeData]:
        """GetAllNodeData: every entry with uptimes recomputed, sorted by lastUpdated ascending."""
        now = self._now()
        out = []
        for data in self._entries.values():
            current = max(0, now - data.last_joined) * _NS if data.activity == ACTIVITY_JOINED else 0
            accumulated = data.accumulated_uptime + current
            out.append(replace(
                data, uptime=current, uptime_str=pretty_duration(current),
                accumulated_uptime=accumulated, accumulated_uptime_str=pretty_duration(accumulated),
            ))
        out.sort(key=lambda d: d.last_updated)
        return out

    def sync_entries_for(self, peer: object) -> list[NodeData]:
        """What masa's SendNodeData sends to `peer`: everything, or what changed since it left - 5 min."""
        recipient = self._entries.get(str(peer))
        entries = self.all_node_data()
        if recipient is None:
            return entries
        since = recipient.last_left - 300
        return [d for d in entries if d.last_updated > since]

    def eligible(self, work_type: str, *, rng: random.Random | None = None,
                 include_self: bool = False) -> list[str]:
        """Peers that pass CanDoWork, in masa's order: twitter by its statistics, then a shuffled pool."""
        rng = rng or random.Random()
        candidates = [d for p, d in self._entries.items() if can_do_work(d, work_type)
                      and (include_self or p != self.self_id)]
        if category_of(work_type) == CATEGORY_TWITTER:
            candidates.sort(key=lambda d: (
                -d.last_returned_tweet.unix_ns(), -d.returned_tweets, d.last_tweet_timeout.unix_ns(),
                d.tweet_timeouts, d.last_not_found_time.unix_ns(), d.peer_id,
            ))
            n = len(candidates)
            pool = candidates[: min(n, max(5, 2 * MAX_REMOTE_WORKERS, n // 5))]
            rng.shuffle(pool)
            return [d.peer_id for d in pool]
        rng.shuffle(candidates)
        return [d.peer_id for d in candidates]

    def peers(self) -> Iterable[str]:
        return list(self._entries)
