"""masa membership on a libp2p host: announce our NodeData, take in others', keep the tracker.

Three stream protocols, as masa-oracle serves them (https://github.com/masa-finance/masa-oracle at
e90264a: node/oracle_node.go handleStream, node/oracle_node_listener.go, pkg/pubsub):

- `/masa/oracle_protocol/<version>[-env]`: one NodeData JSON about the *sender*, to EOF. Data whose
  `peerId` is not the connection's remote peer is refused (typed error, reset, a log line); else the
  connection's remote address is merged into its multiaddrs and the tracker's AddOrUpdate runs.
- `/masa/nodeDataSync/<version>[-env]`: newline-terminated NodeDataPage lines; every entry
  overwrites the tracker's (RefreshFromBoot). A line that is not a page is skipped, as masa does.
  We push our whole view to a peer that (re)joins, when we have no bootnodes or have been up for
  more than 5 minutes - what masa's ListenToNodeTracker does.
- `/masa/gossip/<version>[-env]`: one NodeData about *another* peer (about the sender: ignored).

Every read is bounded in bytes and time; bad input is a `MembershipError`, a stream reset and an
info log line. Announcing: to every connected peer whose identify lists the oracle protocol, once
identified (so again after every reconnect); to a peer that starts serving it later, when its
identify push says so (a masa node listens before it registers its handlers, and go-libp2p's
first identify answer may predate them); and to all of them when our handlers or addresses
change (`announce_all`). The tracker is fed by `feed_gossip` too, so a pubsub subscription can be
plugged in later without touching the rest.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import anyio

from p2p.errors import P2PError, RemoteProtocolError

from oracle.gojson import GoJSONEncodeError
from oracle.nodedata import ACTIVITY_JOINED, NodeData, NodeDataError, NodeDataPage
from oracle.protocol import protocol_with_version
from oracle.tracker import NodeTracker

__all__ = [
    "GOSSIP_PROTOCOL_NAME",
    "LineSplitter",
    "MembershipConfig",
    "MembershipError",
    "MembershipService",
    "NODE_DATA_SYNC_PROTOCOL_NAME",
    "ORACLE_PROTOCOL_NAME",
]

log = logging.getLogger(__name__)

ORACLE_PROTOCOL_NAME = "oracle_protocol"
NODE_DATA_SYNC_PROTOCOL_NAME = "nodeDataSync"
GOSSIP_PROTOCOL_NAME = "gossip"
SYNC_LINE_LIMIT = 64 * 1024  # Go's bufio.Scanner token limit: masa cannot read a longer line
_NET_ERRORS = (P2PError, OSError, TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError,
               anyio.EndOfStream)


class MembershipError(RemoteProtocolError):
    """A peer sent membership data we refuse (too big, too slow, malformed, not about itself)."""


@dataclass(frozen=True)
class MembershipConfig:
    """Bounds and timings; the masa-given ones are marked."""

    max_node_data: int = 64 * 1024  # one NodeData (a full record with 32 addresses is ~3 KiB)
    max_sync_bytes: int = 4 * 1024 * 1024  # one nodeDataSync stream
    max_sync_entries: int = 4096  # entries in one nodeDataSync stream (masa sends 25 per page)
    read_timeout: float = 10.0  # whole body of an oracle/gossip stream
    sync_timeout: float = 30.0  # whole nodeDataSync stream
    send_timeout: float = 10.0  # opening + writing one announce or one push
    push_uptime: float = 300.0  # masa: with bootnodes, push nodeDataSync only after 5 min up
    sweep_interval: float = 30.0  # masa sweeps its connect buffer every 30 s
    max_pending_items: int = 1024  # channel items waiting to be acted upon


class LineSplitter:
    """Sans-IO: bytes in, complete lines out (without `\\n`); a line over `limit` is an error."""

    def __init__(self, limit: int = SYNC_LINE_LIMIT) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        lines = []
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                break
            lines.append(bytes(self._buf[:i]).rstrip(b"\r"))
            del self._buf[: i + 1]
        if len(self._buf) >= self.limit or any(len(line) >= self.limit for line in lines):
            raise MembershipError(f"nodeDataSync line of {self.limit} bytes or more")
        return lines

    def end(self) -> bytes:
        """The unterminated last line (Go's Scanner yields it too)."""
        rest = bytes(self._buf).rstrip(b"\r")
        self._buf.clear()
        return rest


def _remote(conn: Any) -> Any:
    peer = getattr(conn, "remote_peer", None)
    return peer if peer is not None else conn.peer_id


class MembershipService:
    """The masa membership protocols on a host, feeding a NodeTracker.

    `self_data` is called whenever we announce, so it always reflects our current handlers and
    addresses. `bootnodes` says whether we were given peers to join through (masa then pushes
    nodeDataSync only once it has been up for 5 minutes).
    """

    def __init__(
        self,
        host: Any,
        tracker: NodeTracker,
        self_data: Callable[[], NodeData],
        *,
        version: str = "v0.8.4",
        env: str = "",
        has_bootnodes: bool = False,
        config: MembershipConfig = MembershipConfig(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.tracker = tracker
        self.self_data = self_data
        self.config = config
        self.has_bootnodes = has_bootnodes
        self.oracle_protocol = protocol_with_version(ORACLE_PROTOCOL_NAME, version, env)
        self.sync_protocol = protocol_with_version(NODE_DATA_SYNC_PROTOCOL_NAME, version, env)
        self.gossip_protocol = protocol_with_version(GOSSIP_PROTOCOL_NAME, version, env)
        self._clock = clock
        self._started_at = clock()
        self._changed = anyio.Event()
        self._pending: OrderedDict[str, NodeData] = OrderedDict()
        self._pending_event = anyio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self.stats = {"announced": 0, "announce_failed": 0, "accepted": 0, "refused": 0,
                      "sync_entries": 0, "sync_pushed": 0, "gossip": 0}

    # --- lifecycle -------------------------------------------------------------------------------

    def register(self) -> None:
        """Install the handlers and the connection listener, start the background tasks."""
        self.host.set_stream_handler(self.oracle_protocol, self.handle_oracle)
        self.host.set_stream_handler(self.sync_protocol, self.handle_sync)
        self.host.set_stream_handler(self.gossip_protocol, self.handle_gossip)
        self._unsubscribe = self.host.add_connection_listener(self)
        self.host.start_soon(self._act_on_items)
        self.host.start_soon(self._sweeper)

    def unregister(self) -> None:
        for proto in (self.oracle_protocol, self.sync_protocol, self.gossip_protocol):
            self.host.remove_stream_handler(proto)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def protocols(self) -> tuple[str, str, str]:
        return (self.oracle_protocol, self.sync_protocol, self.gossip_protocol)

    # --- connection events (sync, must not block) -------------------------------------------------

    def connected(self, conn: Any) -> None:
        self._item(self.tracker.connected(_remote(conn)))

    def identified(self, conn: Any) -> None:
        peer = _remote(conn)
        if conn.is_closed:
            return
        if self.oracle_protocol in self.host.peerstore.protocols(peer):
            self.host.start_soon(self.announce, peer)

    def protocols_updated(self, conn: Any, added: frozenset[str], removed: frozenset[str]) -> None:
        """The peer serves the oracle protocol from now on (its first identify did not list it)."""
        if self.oracle_protocol in added:
            self.host.start_soon(self.announce, _remote(conn))

    def disconnected(self, conn: Any) -> None:
        peer = _remote(conn)
        still = self.host.connection(peer) is not None
        if not still:
            self._item(self.tracker.disconnected(peer))
        self._notify()

    # --- announcing ------------------------------------------------------------------------------

    async def announce(self, peer: Any) -> bool:
        """Send our NodeData on the oracle protocol to `peer`; False (logged) if that failed."""
        try:
            body = self.self_data().to_go_json()
        except GoJSONEncodeError as exc:
            log.error("cannot encode our node data: %s", exc)
            return False
        try:
            await self._send_once(peer, self.oracle_protocol, body)
        except _NET_ERRORS as exc:
            self.stats["announce_failed"] += 1
            log.info("announce to %s failed: %s", peer, exc or type(exc).__name__)
            return False
        self.stats["announced"] += 1
        log.debug("announced node data to %s", peer)
        return True

    def announce_all(self) -> None:
        """Announce again to every connected peer serving the oracle protocol (data changed)."""
        self.tracker.set_self(self.self_data())
        for peer in self.host.connected_peers():
            if self.oracle_protocol in self.host.peerstore.protocols(peer):
                self.host.start_soon(self.announce, peer)

    async def push_node_data(self, peer: Any) -> bool:
        """masa's SendNodeData: our view of the network to `peer`, one page per line, then close."""
        pages = NodeDataPage.paginate(self.tracker.sync_entries_for(peer))
        if not pages:
            return True
        try:
            body = b"".join(p.to_go_json() + b"\n" for p in pages)
        except GoJSONEncodeError as exc:
            log.error("cannot encode node data pages: %s", exc)
            return False
        try:
            await self._send_once(peer, self.sync_protocol, body)
        except _NET_ERRORS as exc:
            log.info("nodeDataSync push to %s failed: %s", peer, exc or type(exc).__name__)
            return False
        self.stats["sync_pushed"] += 1
        return True

    async def _send_once(self, peer: Any, protocol: str, body: bytes) -> None:
        """One stream to `peer`: `body`, then our end closed (masa's senders write and close);
        bounded by send_timeout, reset on any failure."""
        with anyio.fail_after(self.config.send_timeout):
            stream = await self.host.new_stream(peer, [protocol], timeout=self.config.send_timeout)
            try:
                await stream.send(body)
                await stream.aclose()
            except BaseException:
                await _quiet_reset(stream)
                raise

    # --- inbound streams -------------------------------------------------------------------------

    async def _read_body(self, stream: Any, what: str) -> bytes | None:
        try:
            with anyio.fail_after(self.config.read_timeout):
                return bytes(await stream.receive_until_eof(self.config.max_node_data))
        except TimeoutError:
            await self._refuse(stream, MembershipError(f"{what}: no end of stream within "
                                                       f"{self.config.read_timeout} s"))
        except _NET_ERRORS as exc:
            await self._refuse(stream, exc)
        return None

    async def _refuse(self, stream: Any, exc: BaseException) -> None:
        self.stats["refused"] += 1
        log.info("membership: refused %s from %s: %s", getattr(stream, "protocol", "?"),
                 stream.remote_peer, exc or type(exc).__name__)
        await _quiet_reset(stream)

    async def handle_oracle(self, stream: Any) -> None:
        """Node data about the sender itself."""
        body = await self._read_body(stream, "oracle_protocol")
        if body is None:
            return
        try:
            data = NodeData.from_json(body)
            sender = str(stream.remote_peer)
            if data.peer_id != sender:
                raise MembershipError(f"node data about {data.peer_id or 'nobody'} sent by {sender}")
        except (NodeDataError, MembershipError) as exc:
            await self._refuse(stream, exc)
            return
        remote_addr = getattr(getattr(stream, "conn", None), "remote_addr", None)
        if remote_addr is not None and str(remote_addr) not in data.multiaddrs:
            data = replace(data, multiaddrs=(*data.multiaddrs, str(remote_addr)))
        self.stats["accepted"] += 1
        self._item(self.tracker.add_or_update(data))
        self._notify()
        log.info("node data from %s: staked=%s web=%s twitter=%s", data.peer_id, data.is_staked,
                 data.is_web_scraper, data.is_twitter_scraper)

    async def handle_gossip(self, stream: Any) -> None:
        """Node data about another peer (ignored when it is about the sender)."""
        body = await self._read_body(stream, "gossip")
        if body is None:
            return
        try:
            data = NodeData.from_json(body)
        except NodeDataError as exc:
            await self._refuse(stream, exc)
            return
        if data.peer_id == str(stream.remote_peer):
            log.debug("gossip from %s about itself: ignored", data.peer_id)
            return
        self.feed_gossip(data)

    def feed_gossip(self, data: NodeData) -> None:
        """Gossip from any source (stream today, pubsub later): masa's HandleNodeData."""
        self.stats["gossip"] += 1
        self._item(self.tracker.handle_node_data(data))
        self._notify()

    async def handle_sync(self, stream: Any) -> None:
        """Pages of node data, one per line, until EOF: each entry overwrites ours."""
        cfg = self.config
        sender = str(stream.remote_peer)
        splitter = LineSplitter()
        total = entries = 0
        try:
            with anyio.fail_after(cfg.sync_timeout):
                while True:
                    try:
                        chunk = await stream.receive(65536)
                    except anyio.EndOfStream:
                        lines = [splitter.end()]
                        done = True
                    else:
                        total += len(chunk)
                        if total > cfg.max_sync_bytes:
                            raise MembershipError(f"nodeDataSync stream over {cfg.max_sync_bytes} bytes")
                        lines = splitter.feed(chunk)
                        done = False
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            page = NodeDataPage.from_json(line)
                        except NodeDataError as exc:
                            log.info("nodeDataSync from %s: bad page skipped: %s", stream.remote_peer, exc)
                            continue
                        entries += len(page.data)
                        if entries > cfg.max_sync_entries:
                            raise MembershipError(f"nodeDataSync stream over {cfg.max_sync_entries} entries")
                        for data in page.data:
                            self.tracker.refresh_from_boot(data, sender)
                        self.stats["sync_entries"] += len(page.data)
                        self._notify()
                    if done:
                        break
        except TimeoutError:
            await self._refuse(stream, MembershipError(f"nodeDataSync: not finished within {cfg.sync_timeout} s"))
            return
        except (MembershipError, *_NET_ERRORS) as exc:
            await self._refuse(stream, exc)
            return
        log.info("nodeDataSync from %s: %d entries", stream.remote_peer, entries)

    # --- channel items (masa's ListenToNodeTracker) ------------------------------------------------

    def _item(self, item: NodeData | None) -> None:
        if item is None or item.activity != ACTIVITY_JOINED:
            return  # masa publishes left items on gossip only; we do not publish (no pubsub here)
        if item.peer_id in self._pending:
            self._pending.move_to_end(item.peer_id)
        self._pending[item.peer_id] = item
        while len(self._pending) > self.config.max_pending_items:
            self._pending.popitem(last=False)
        self._pending_event.set()

    def _should_push(self) -> bool:
        return not self.has_bootnodes or self._clock() - self._started_at > self.config.push_uptime

    async def _act_on_items(self) -> None:
        while True:
            await self._pending_event.wait()
            self._pending_event = anyio.Event()
            while self._pending:
                peer_id, _ = self._pending.popitem(last=False)
                if not self._should_push():
                    continue
                peer = self._peer_obj(peer_id)
                if peer is not None and self.host.connection(peer) is not None:
                    await self.push_node_data(peer)

    async def _sweeper(self) -> None:
        while True:
            await anyio.sleep(self.config.sweep_interval)
            for item in self.tracker.sweep():
                self._item(item)

    def _peer_obj(self, peer_id: str) -> Any:
        for peer in self.host.connected_peers():
            if str(peer) == peer_id:
                return peer
        return None

    # --- waiting for news ------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds after a tracker change; False on timeout."""
        with anyio.move_on_after(timeout):
            while not predicate():
                await self._changed.wait()
            return True
        return predicate()

    async def wait_for_entry(self, peer: Any, timeout: float) -> bool:
        """Wait (bounded) until the tracker holds node data for `peer`."""
        return await self.wait_for(lambda: peer in self.tracker, timeout)


async def _quiet_reset(stream: Any) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await stream.reset()
        except Exception:  # the stream or session is already gone
            pass
