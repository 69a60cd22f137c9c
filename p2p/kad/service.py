"""The Kademlia service on a Host: server handler, client requests, lookups, routing-table upkeep.

    dht = KadService(host, masa_config())
    await dht.bootstrap(["/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2..."])
    addrs = await dht.find_peer(peer_id)

Like go-libp2p-kad-dht: a peer enters the routing table once identify says it serves our kad
protocol and it answered a FIND_NODE for its own ID (go's lookupCheck), or after it answered one of
our queries. Addresses other peers tell us about are only hints for dialling: they reach the
peerstore when a dial to them proved the peer ID (Noise), so a peer lying about someone else's
addresses poisons nothing. A peer whose reply breaks a bound gets its stream reset and is dropped
from the routing table.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import anyio
from multiaddr import Multiaddr

from p2p import delimited
from p2p.errors import ConnectionClosed, DialError, P2PError, PeerIdMismatch, RemoteProtocolError
from p2p.events import ConnectionListenerBase
from p2p.hostapi import ConnectionLike, HostLike, NetStreamLike
from p2p.identity import PeerId
from p2p.kad.config import KadConfig
from p2p.kad.lookup import Lookup
from p2p.kad.messages import Connectedness, KadDecodeError, Message, MessageType, PeerEntry, Record
from p2p.kad.routing import RoutingTable, kad_key
from p2p.kad.sender import MessageSender
from p2p.kad.store import ProviderStore, RecordStore, record_namespace
from p2p.ratelimit import TokenBucket

log = logging.getLogger("p2p.kad")

MAX_PROVIDER_KEY = 80  # go handleGetProviders: keys over 80 bytes are an error
_ADDR_CACHE_SIZE = 4096  # binary multiaddrs whose parse (and dialability) we remember
DIRECT_HEAD_START = 0.05  # find_peer: a peer in our table is dialled alone for this long first
_NET_ERRORS = (P2PError, OSError, anyio.EndOfStream, anyio.BrokenResourceError,
               anyio.ClosedResourceError, TimeoutError)


def _tcp_only(addr: Multiaddr) -> bool:
    parts = list(addr.items())
    return len(parts) == 2 and parts[1][0].name == "tcp"


class KadRequestError(RemoteProtocolError):
    """A request we must not answer (go resets the stream for these)."""


class PeerNotFound(P2PError):
    """A lookup ended without a connection to the peer it was looking for."""


class ValueNotFound(P2PError):
    """No valid record for a key, locally or at the peers closest to it (go's routing.ErrNotFound)."""


@dataclass
class LookupStats:
    """What one lookup cost: queries sent, failures, hops to the result, seconds."""

    queries: int = 0
    failures: int = 0
    hops: int | None = None
    seconds: float = 0.0
    reason: str = ""
    closest: list[PeerId] = field(default_factory=list)


def _rfc3339_now() -> str:
    """What go writes in Record.timeReceived: UTC RFC 3339 with nanoseconds, zeros trimmed."""
    ns = time.time_ns()
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        (f".{frac}" if frac else "") + "Z"


def _is_loopback(addr: Multiaddr) -> bool:
    text = str(addr)
    return text.startswith("/ip4/127.") or text.startswith("/ip6/::1/")


def _dialable(raw: bytes, can_dial: Callable[[Multiaddr], bool]) -> Multiaddr | None:
    """A binary multiaddr we would dial: an IP address (no DNS name: another peer must not make us
    resolve names) that one of the host's transports can dial."""
    try:
        ma = Multiaddr(raw)
        first = next(iter(ma.items()))[0].name
        return ma if first in ("ip4", "ip6") and can_dial(ma) else None
    except Exception:  # the multiaddr package raises several unrelated types on bad bytes
        return None


class KadService(ConnectionListenerBase):
    def __init__(self, host: HostLike, config: KadConfig | None = None) -> None:
        self.host = host
        self._can_dial = getattr(host, "can_dial", None) or _tcp_only
        self.config = config or KadConfig()
        self.protocol = self.config.protocol
        self.routing_table = RoutingTable(host.peer_id, self.config.bucket_size)
        self.providers = ProviderStore()
        self.records = RecordStore(self.config.validators)
        self._checking: set[PeerId] = set()
        self._addr_cache: OrderedDict[bytes, Multiaddr | None] = OrderedDict()
        self._closed = False
        self.last_lookup: LookupStats | None = None
        cfg = self.config
        self.sender = MessageSender(host, self.protocol, max_message_size=cfg.max_message_size,
                                    max_peers=cfg.max_peers_per_reply, reuse=cfg.stream_reuse,
                                    idle_timeout=cfg.client_stream_idle,
                                    max_streams=cfg.max_client_streams)
        if self.config.mode == "server":
            host.set_stream_handler(self.protocol, self._serve)
        self._unsubscribe = host.add_connection_listener(self)
        if self.config.auto_refresh:
            host.start_soon(self.run_refresh)
        if cfg.stream_reuse:
            host.start_soon(self._close_idle_streams)

    def close(self) -> None:
        """Stop serving and stop listening to connection events; the streams kept for our
        requests are closed (in the background, while the host runs)."""
        self._closed = True
        if self.config.mode == "server":
            self.host.remove_stream_handler(self.protocol)
        self._unsubscribe()
        try:
            self.host.start_soon(self.sender.aclose)
        except P2PError:
            pass  # the host is gone, and the streams with it

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    # ---- connection events (called by the Host; must not block) ------------------------------

    def identified(self, conn: ConnectionLike) -> None:
        peer = conn.remote_peer
        if self._closed:
            return
        if conn.identify_info is not None and self.protocol not in self.host.peerstore.protocols(peer):
            # go: a peer that no longer lists the protocol (e.g. gone client-mode) leaves the table
            if self.routing_table.remove(peer):
                log.debug("kad: %s no longer serves %s: removed", peer, self.protocol)
            return
        if peer in self.routing_table or peer in self._checking:
            return
        if self.protocol not in self.host.peerstore.protocols(peer):
            return
        if len(self._checking) >= self.config.max_pending_checks:
            return
        self._checking.add(peer)
        self.host.start_soon(self._check_and_add, peer)

    def disconnected(self, conn: ConnectionLike) -> None:
        # go keeps disconnected peers in its table until a refresh finds them dead; the stream
        # we kept for the peer went with its connection
        if self.host.connection(conn.remote_peer) is None:
            self.sender.forget(conn.remote_peer)

    async def _close_idle_streams(self) -> None:
        while not self._closed:
            await anyio.sleep(self.config.client_stream_idle / 2)
            await self.sender.close_idle()

    async def _check_and_add(self, peer: PeerId) -> None:
        """go's lookupCheck: a FIND_NODE for the peer's own ID must be answered in time."""
        try:
            await self.request(peer, Message(MessageType.FIND_NODE, key=peer.to_bytes()),
                               timeout=self.config.check_timeout, dial=False)
        except _NET_ERRORS as exc:
            log.debug("kad check of %s failed: %r", peer, exc)
            return
        finally:
            self._checking.discard(peer)
        if self.routing_table.try_add(peer, self._now()):
            log.debug("kad: %s added to the routing table", peer)

    # ---- server ------------------------------------------------------------------------------

    async def _serve(self, stream: NetStreamLike) -> None:
        cfg = self.config
        reader = delimited.DelimitedReader(cfg.max_message_size)
        pending: list[bytes] = []
        bucket = TokenBucket(cfg.requests_per_second, cfg.request_burst, self._now())
        while True:
            try:
                with anyio.fail_after(cfg.stream_idle_timeout):
                    data = await delimited.read_message(stream, reader, pending)
            except anyio.EndOfStream:
                return
            except (TimeoutError, RemoteProtocolError) as exc:
                log.debug("kad stream from %s: %r", stream.remote_peer, exc)
                await stream.reset()
                return
            try:
                if not bucket.take(self._now()):
                    raise KadRequestError("request rate over the limit")
                request = Message.decode(data, max_peers=cfg.max_peers_per_reply)
                reply = self.handle_request(stream.remote_peer, request, remote_addr=stream.conn.remote_addr)
            except (KadDecodeError, KadRequestError) as exc:
                log.debug("kad request from %s refused: %r", stream.remote_peer, exc)
                await stream.reset()
                return
            if reply is not None:
                await stream.send(delimited.encode(reply.encode()))

    def handle_request(self, sender: PeerId, msg: Message, *,
                       remote_addr: Multiaddr | None = None) -> Message | None:
        """The answer go would give to `msg` from `sender` (None: no reply, e.g. ADD_PROVIDER)."""
        local_only = remote_addr is not None and _is_loopback(remote_addr)
        now = self._now()
        t = msg.type
        if t is MessageType.PING:
            return Message(MessageType.PING, cluster_level_raw=msg.cluster_level_raw)
        if t is MessageType.FIND_NODE:
            if not msg.key:
                raise KadRequestError("FIND_NODE with an empty key")
            closest = self._closest_for(msg.key, sender)
            try:
                target = PeerId(msg.key)
            except P2PError:
                target = None
            if target is not None and target != sender and target not in closest:
                closest.append(target)
            return Message(MessageType.FIND_NODE, cluster_level_raw=msg.cluster_level + 1,
                           closer_peers=self._entries(closest, local_only))
        if t is MessageType.GET_PROVIDERS:
            if not msg.key or len(msg.key) > MAX_PROVIDER_KEY:
                raise KadRequestError("GET_PROVIDERS key empty or over 80 bytes")
            provs = self.providers.get_with_addrs(msg.key, now)
            return Message(MessageType.GET_PROVIDERS, key=msg.key,
                           cluster_level_raw=msg.cluster_level + 1,
                           provider_peers=self._provider_entries(provs, local_only),
                           closer_peers=self._entries(self._closest_for(msg.key, sender), local_only))
        if t is MessageType.ADD_PROVIDER:
            if not msg.key or len(msg.key) > MAX_PROVIDER_KEY:
                raise KadRequestError("ADD_PROVIDER key empty or over 80 bytes")
            for entry in msg.provider_peers:
                # go stores only the sender itself, and only with an address
                if entry.id == sender.to_bytes() and entry.addrs:
                    self.providers.add(msg.key, sender, now, entry.addrs)
            return None
        if t is MessageType.PUT_VALUE:
            rec = msg.record
            if rec is None or not msg.key or rec.key != msg.key:
                raise KadRequestError("PUT_VALUE without a record for its key")
            if not self.records.validate(rec.key, rec.value):
                raise KadRequestError("PUT_VALUE record refused by the validator")
            held = self.records.get(rec.key, now)
            if held is not None and self.records.select(rec.key, [rec.value, held[0]]) != 0:
                raise KadRequestError("PUT_VALUE record worse than the one we hold")  # go: "old record"
            received = _rfc3339_now()
            self.records.put(rec.key, rec.value, now, received)
            return Message(MessageType.PUT_VALUE, key=msg.key, cluster_level_raw=msg.cluster_level_raw,
                           record=Record(rec.key, rec.value, received))
        if t is MessageType.GET_VALUE:
            if not msg.key:
                raise KadRequestError("GET_VALUE with an empty key")
            found = self.records.get(msg.key, now)
            record = Record(msg.key, found[0], found[1]) if found else None
            return Message(MessageType.GET_VALUE, key=msg.key, record=record,
                           cluster_level_raw=msg.cluster_level + 1,
                           closer_peers=self._entries(self._closest_for(msg.key, sender), local_only))
        raise KadRequestError(f"unsupported kad message type {t}")

    def _closest_for(self, key: bytes, sender: PeerId) -> list[PeerId]:
        return self.routing_table.nearest(kad_key(key), self.config.bucket_size, exclude=(sender,))

    def _entries(self, peers: Iterable[PeerId], local_only: bool) -> list[PeerEntry]:
        """Peers with the addresses we know for them; peers without any are left out (go)."""
        out = []
        for peer in peers:
            if peer == self.host.peer_id:
                addrs = self.host.listen_addrs()
            else:
                addrs = self.host.peerstore.addrs(peer)
            entry = self._entry(peer, addrs, local_only)
            if entry is not None:
                out.append(entry)
        return out

    def _entry(self, peer: PeerId, addrs: list[Multiaddr], local_only: bool) -> PeerEntry | None:
        """`peer` as an answer lists it, or None when no address is left to give (loopback ones
        only go to a loopback asker)."""
        if not local_only:
            addrs = [a for a in addrs if not _is_loopback(a)]
        if not addrs:
            return None
        connected = peer == self.host.peer_id or self.host.connection(peer) is not None
        return PeerEntry(peer.to_bytes(), [a.to_bytes() for a in addrs],
                         Connectedness.CONNECTED if connected else Connectedness.NOT_CONNECTED)

    def _provider_entries(self, provs: list[tuple[PeerId, list[bytes]]],
                          local_only: bool) -> list[PeerEntry]:
        """Providers with the addresses they announced plus those our peerstore holds (go answers
        from its peerstore, where ADD_PROVIDER put them); ourselves with our listen addresses."""
        out = []
        for peer, announced in provs:
            if peer == self.host.peer_id:
                addrs = list(self.host.listen_addrs())
            else:
                addrs = []
                for raw in announced:
                    try:
                        addrs.append(Multiaddr(raw))
                    except Exception:  # the multiaddr package raises several types on bad bytes
                        continue
                addrs += [a for a in self.host.peerstore.addrs(peer) if a not in addrs]
            entry = self._entry(peer, addrs, local_only)
            if entry is not None:
                out.append(entry)
        return out

    # ---- client ------------------------------------------------------------------------------

    async def request(self, peer: PeerId, msg: Message, *, timeout: float | None = None,
                      dial: bool = True) -> Message | None:
        """Send one request and read its one reply (none for ADD_PROVIDER), on the stream kept
        for `peer` (p2p/kad/sender.py: go's message manager).

        With `dial` false the request only uses a connection that is already open.

        A reply that cannot be decoded or breaks a bound resets the stream, drops `peer` from the
        routing table and raises KadDecodeError.
        """
        timeout = timeout or self.config.request_timeout
        if not dial and self.host.connection(peer) is None:
            raise ConnectionClosed(f"not connected to {peer}")
        try:
            return await self.sender.send(peer, msg, timeout=timeout)
        except RemoteProtocolError:
            self.routing_table.remove(peer)
            raise

    async def ping(self, peer: PeerId, *, timeout: float | None = None) -> None:
        reply = await self.request(peer, Message(MessageType.PING), timeout=timeout)
        if reply is None or reply.type is not MessageType.PING:
            raise RemoteProtocolError("kad PING answered with another message type")

    async def find_node(self, peer: PeerId, key: bytes, *,
                        timeout: float | None = None) -> list[tuple[PeerId, list[Multiaddr]]]:
        """Ask one peer for the peers it knows closest to `key`: (peer, dialable addrs) pairs."""
        reply = await self.request(peer, Message(MessageType.FIND_NODE, key=key), timeout=timeout)
        assert reply is not None
        return self._referrals(reply.closer_peers)

    def _dialable(self, raw: bytes) -> Multiaddr | None:
        """`_dialable` with a bounded memory of answers: every reply names the same few hundred
        addresses again, and parsing one costs tens of microseconds (5 ms of a 12 ms FindPeer in
        an 8-node network before this)."""
        cache = self._addr_cache
        if raw in cache:
            cache.move_to_end(raw)
            return cache[raw]
        ma = cache[raw] = _dialable(raw, self._can_dial)
        if len(cache) > _ADDR_CACHE_SIZE:
            cache.popitem(last=False)
        return ma

    def _referrals(self, entries: list[PeerEntry]) -> list[tuple[PeerId, list[Multiaddr]]]:
        out = []
        for entry in entries:
            try:
                peer = PeerId(entry.id)
            except P2PError:
                continue  # go skips entries it cannot parse
            addrs = [ma for ma in map(self._dialable, entry.addrs) if ma is not None]
            out.append((peer, addrs[: self.config.max_addrs_tried]))
        return out

    async def connect(self, peer: PeerId, hints: list[Multiaddr], *, timeout: float | None = None) -> None:
        """Connect to `peer` (its peerstore addresses, then `hints`, e.g. from a provider record);
        a hint that fails to prove the peer ID stays out of the peerstore."""
        await self._ensure_connected(peer, hints, timeout or self.config.request_timeout)

    async def _ensure_connected(self, peer: PeerId, hints: list[Multiaddr], timeout: float) -> None:
        """Connect to `peer`, trying its peerstore addresses, then the hints of this lookup.

        A hint reaches the peerstore only through a dial that proved the peer ID; one that fails
        is taken back out, so other peers cannot fill the peerstore with false addresses.
        """
        if self.host.connection(peer) is not None:
            return
        known = self.host.peerstore.addrs(peer)
        errors = []
        for addr in [*known, *(h for h in hints if h not in known)]:
            try:
                await self.host.connect(f"{addr}/p2p/{peer}", timeout=timeout)
                return
            except (DialError, PeerIdMismatch, OSError) as exc:
                errors.append(f"{addr}: {exc}")
                if addr not in known:
                    self.host.peerstore.remove_addr(peer, addr)
        raise DialError(f"could not dial {peer}: " + ("; ".join(errors) or "no address"))

    async def _lookup(self, key: bytes, *, timeout: float | None = None,
                      done: Callable[[], bool] | None = None,
                      ask: Callable[[PeerId], Awaitable[list[tuple[PeerId, list[Multiaddr]]]]] | None = None,
                      ) -> LookupStats:
        """Run an iterative lookup for `key`; `done()` true ends it early.

        Each queried peer is asked with `ask(peer)` (default: FIND_NODE for `key`), which returns
        the closer peers its reply named; GET_PROVIDERS lookups pass their own."""
        if ask is None:
            ask = lambda peer: self.find_node(peer, key, timeout=self.config.request_timeout)  # noqa: E731
        cfg = self.config
        start = anyio.current_time()
        timeout = timeout if timeout is not None else cfg.lookup_timeout
        seeds = self.routing_table.nearest(kad_key(key), cfg.bucket_size)
        lookup = Lookup(key, seeds, local=self.host.peer_id, k=cfg.bucket_size, alpha=cfg.alpha,
                        deadline=start + timeout)
        hints: dict[PeerId, list[Multiaddr]] = {}
        wake = anyio.Event()
        stats = LookupStats()
        answered_hops: list[int] = []

        async def query(peer: PeerId) -> None:
            nonlocal wake
            try:
                with anyio.fail_after(cfg.request_timeout):
                    await self._ensure_connected(peer, hints.get(peer, []), cfg.request_timeout)
                    if done is not None:
                        wake.set()  # a lookup that ends on a connection (find_peer) may end now
                    referrals = await ask(peer)
            except _NET_ERRORS as exc:
                log.debug("kad query to %s failed: %r", peer, exc)
                lookup.on_failure(peer)
            else:
                self.routing_table.try_add(peer, self._now())
                self.routing_table.mark_useful(peer, self._now())
                for other, addrs in referrals:
                    if other not in hints and self.host.connection(other) is None and addrs:
                        if len(hints) < lookup.max_candidates:
                            hints[other] = addrs
                lookup.on_reply(peer, [p for p, _ in referrals])
                hops = lookup.hops(peer)
                if hops is not None:
                    answered_hops.append(hops)
            finally:
                wake.set()

        async with anyio.create_task_group() as tg:
            while True:
                now = anyio.current_time()
                if done is not None and done():
                    lookup.stop("found")
                for peer in lookup.next_queries(now):
                    tg.start_soon(query, peer)
                if lookup.finished(now):
                    break
                if lookup.deadline is not None:
                    with anyio.move_on_after(max(lookup.deadline - now, 0)):
                        await wake.wait()
                else:
                    await wake.wait()
                wake = anyio.Event()
            tg.cancel_scope.cancel()
        stats.queries = lookup.queries
        stats.failures = lookup.failures
        stats.seconds = anyio.current_time() - start
        stats.reason = lookup.stop_reason or ""
        stats.closest = lookup.closest()
        stats.hops = max(answered_hops) + 1 if answered_hops else None
        self._last_lookup_object = lookup
        self.last_lookup = stats
        return stats

    async def get_closest_peers(self, key: bytes, *, timeout: float | None = None) -> list[PeerId]:
        """The (up to K) peers closest to `key` that answered us, closest first."""
        stats = await self._lookup(key, timeout=timeout)
        return stats.closest

    async def find_peer(self, peer: PeerId, *, timeout: float | None = None) -> list[Multiaddr]:
        """The addresses of `peer`: at once when connected, else after a lookup that reached it.

        Raises PeerNotFound when the lookup ends without a connection to the peer (go's
        `routing: not found`).
        """
        if self.host.connection(peer) is not None:
            return self.host.peerstore.addrs(peer)
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            if peer in self.routing_table and self.host.peerstore.addrs(peer):
                # The lookup's first query would be to the peer itself (the closest there is):
                # dial it alone first, and start the others only if that dial has not connected
                # within a head start (in a small network this saves K-1 FIND_NODEs per find).
                dialled = anyio.Event()

                async def direct() -> None:
                    try:
                        await self._ensure_connected(peer, [], self.config.request_timeout)
                    except _NET_ERRORS as exc:
                        log.debug("kad direct dial of %s failed: %r", peer, exc)
                    finally:
                        dialled.set()

                tg.start_soon(direct)
                with anyio.move_on_after(DIRECT_HEAD_START):
                    await dialled.wait()
                if self.host.connection(peer) is not None:
                    tg.cancel_scope.cancel()
                    self.last_lookup = LookupStats(hops=0, reason="found", closest=[peer],
                                                   seconds=anyio.current_time() - start)
                    return self.host.peerstore.addrs(peer)
            left = None if timeout is None else max(timeout - (anyio.current_time() - start), 0.0)
            stats = await self._lookup(peer.to_bytes(), timeout=left,
                                       done=lambda: self.host.connection(peer) is not None)
            tg.cancel_scope.cancel()
        stats.seconds = anyio.current_time() - start
        if self.host.connection(peer) is None:
            lookup = self._last_lookup_object
            hint_state = lookup.state(peer)
            raise PeerNotFound(f"{peer} not found ({stats.reason}, {stats.queries} queries"
                               f"{', heard of' if hint_state is not None else ''})")
        stats.hops = self._last_lookup_object.hops(peer)
        return self.host.peerstore.addrs(peer)

    # ---- joining and upkeep ------------------------------------------------------------------

    async def bootstrap(self, bootnodes: Iterable[str | Multiaddr] = (), *,
                        timeout: float | None = None, self_lookup: bool = True) -> int:
        """Connect to `bootnodes`, put them in the table, look ourselves up; returns the table size.

        Bootnodes enter the table at once, without the check (masa's TryAddPeer of its bootnodes).
        The self lookup is what makes the peers closest to us learn of us (and us of them).
        """
        timeout = timeout or self.config.request_timeout
        for addr in bootnodes:
            try:
                peer = await self.host.connect(addr, timeout=timeout)
            except (DialError, PeerIdMismatch, OSError) as exc:
                log.warning("kad bootnode %s: %s", addr, exc)
                continue
            self.routing_table.try_add(peer, self._now(), replaceable=False)
        if self_lookup and len(self.routing_table):
            await self._lookup(self.host.peer_id.to_bytes(), timeout=self.config.lookup_timeout)
        return len(self.routing_table)

    async def refresh(self) -> None:
        """One refresh round: re-check peers quiet for a refresh period, then look ourselves up."""
        now = self._now()
        for peer in self.routing_table.stale(now, self.config.refresh_interval):
            try:
                with anyio.fail_after(self.config.check_timeout):
                    if self.host.connection(peer) is None:
                        await self._ensure_connected(peer, [], self.config.check_timeout)
                    await self.request(peer, Message(MessageType.FIND_NODE, key=peer.to_bytes()),
                                       timeout=self.config.check_timeout)
            except _NET_ERRORS:
                self.routing_table.remove(peer)
                continue
            self.routing_table.mark_useful(peer, self._now())
        if len(self.routing_table):
            await self._lookup(self.host.peer_id.to_bytes())

    async def run_refresh(self) -> None:
        """Refresh every `refresh_interval` until cancelled (start it with host.start_soon)."""
        while not self._closed:
            await anyio.sleep(self.config.refresh_interval)
            try:
                await self.refresh()
            except _NET_ERRORS as exc:
                log.debug("kad refresh failed: %r", exc)

    # ---- values (GET_VALUE / PUT_VALUE) ------------------------------------------------------

    def _store_local(self, key: bytes, value: bytes) -> bool:
        """Keep `value` unless what we hold is better (the namespace's select); True if kept."""
        now = self._now()
        held = self.records.get(key, now)
        if held is not None and held[0] != value and self.records.select(key, [value, held[0]]) != 0:
            return False
        self.records.put(key, value, now, _rfc3339_now())
        return True

    async def put_value(self, key: bytes, value: bytes, *, timeout: float | None = None) -> int:
        """go's PutValue: validate, keep it ourselves, then PUT_VALUE it at the peers closest to
        `key` (all at once); returns how many stored it (their reply echoes the value)."""
        if not self.records.validate(key, value):
            raise ValueError(f"no validator accepts this value for {key!r}")
        if not self._store_local(key, value):
            raise ValueError(f"we hold a better value for {key!r}")
        closest = await self.get_closest_peers(key, timeout=timeout)
        request = Message(MessageType.PUT_VALUE, key=key, record=Record(key, value, ""))
        stored = 0

        async def put(peer: PeerId) -> None:
            nonlocal stored
            try:
                reply = await self.request(peer, request, timeout=timeout)
            except _NET_ERRORS as exc:
                log.debug("kad PUT_VALUE to %s failed: %r", peer, exc)
                return
            if reply is not None and reply.record is not None and reply.record.value == value:
                stored += 1  # go: a reply with another value is "value not put correctly"

        async with anyio.create_task_group() as tg:
            for peer in closest:
                tg.start_soon(put, peer)
        return stored

    async def get_value(self, key: bytes, *, quorum: int = 0,
                        timeout: float | None = None) -> bytes:
        """go's GetValue: the best valid value for `key` among ours and the answers of a lookup
        that asks GET_VALUE (following the closer peers each reply names; `quorum` > 0 ends it
        once more than that many values are in, as go's searchValueQuorum); raises
        ValueNotFound. Invalid or mismatched records are ignored, as go does. Then, as go's
        updatePeerValues, the closest peers that did not answer with the best value are sent it
        (PUT_VALUE, in the background)."""
        if record_namespace(key) not in self.records.validators:
            raise ValueError(f"no validator for {key!r}")
        best: bytes | None = None
        with_best: set[PeerId] = set()
        responses = 0

        def take(peer: PeerId, value: bytes) -> None:
            nonlocal best, with_best, responses
            responses += 1
            if best is not None and value != best and self.records.select(key, [best, value]) != 1:
                return
            if value != best:
                best, with_best = value, set()
            with_best.add(peer)

        held = self.records.get(key, self._now())
        if held is not None and self.records.validate(key, held[0]):
            take(self.host.peer_id, held[0])
        request = Message(MessageType.GET_VALUE, key=key)

        async def ask(peer: PeerId) -> list[tuple[PeerId, list[Multiaddr]]]:
            reply = await self.request(peer, request, timeout=self.config.request_timeout)
            assert reply is not None
            rec = reply.record
            if rec is not None and rec.key == key and self.records.validate(key, rec.value):
                take(peer, rec.value)
            return self._referrals(reply.closer_peers)

        stats = await self._lookup(key, timeout=timeout, ask=ask,
                                   done=lambda: quorum > 0 and responses > quorum)
        if best is None:
            raise ValueNotFound(f"no value for {key!r}")
        self._store_local(key, best)
        if stats.reason != "found":  # a lookup cut short by the quorum does not fix up (go)
            outdated = [p for p in stats.closest if p not in with_best and p != self.host.peer_id]
            if outdated:
                self.host.start_soon(self._fix_up, key, best, outdated)
        return best

    async def _fix_up(self, key: bytes, value: bytes, peers: list[PeerId]) -> None:
        request = Message(MessageType.PUT_VALUE, key=key, record=Record(key, value, ""))

        async def put(peer: PeerId) -> None:
            try:
                await self.request(peer, request, timeout=self.config.request_timeout)
            except _NET_ERRORS as exc:
                log.debug("kad fix-up PUT_VALUE to %s failed: %r", peer, exc)

        async with anyio.create_task_group() as tg:
            for peer in peers:
                tg.start_soon(put, peer)

    async def provide(self, key: bytes, *, timeout: float | None = None) -> int:
        """go's Provide: we become a provider of `key` in our own store, then ADD_PROVIDER
        ourselves (ID and listen addresses) at the closest peers to `key`, all at once; returns
        how many were told. Keys are what go provides: a CID's multihash bytes."""
        if not key or len(key) > MAX_PROVIDER_KEY:
            raise ValueError("a provider key is 1..80 bytes")
        self.providers.add(key, self.host.peer_id, self._now())
        closest = await self.get_closest_peers(key, timeout=timeout)
        me = PeerEntry(self.host.peer_id.to_bytes(),
                       [a.to_bytes() for a in self.host.listen_addrs()])
        told = 0

        async def tell(peer: PeerId) -> None:
            nonlocal told
            try:
                await self.request(peer, Message(MessageType.ADD_PROVIDER, key=key, provider_peers=[me]),
                                   timeout=timeout)
                told += 1
            except _NET_ERRORS as exc:
                log.debug("kad ADD_PROVIDER to %s failed: %r", peer, exc)

        async with anyio.create_task_group() as tg:
            for peer in closest:
                tg.start_soon(tell, peer)
        return told

    async def find_providers(self, key: bytes, *, count: int = 100,
                             timeout: float | None = None) -> list[tuple[PeerId, list[Multiaddr]]]:
        """go's FindProvidersAsync, collected: providers of `key` from our own store, then from a
        GET_PROVIDERS lookup (which ends once `count` are known); each with the dialable
        addresses we were told. We are among them when we provide `key` ourselves."""
        if not key or len(key) > MAX_PROVIDER_KEY:
            raise ValueError("a provider key is 1..80 bytes")
        found: dict[PeerId, list[Multiaddr]] = {}

        def take(peer: PeerId, addrs: list[Multiaddr]) -> None:
            if len(found) >= count:
                return
            known = found.setdefault(peer, [])
            known.extend(a for a in addrs if a not in known)

        for peer, raw in self.providers.get_with_addrs(key, self._now()):
            addrs = [ma for ma in map(self._dialable, raw) if ma is not None]
            take(peer, addrs if peer != self.host.peer_id else list(self.host.listen_addrs()))
        if len(found) >= count:
            return list(found.items())

        async def ask(peer: PeerId) -> list[tuple[PeerId, list[Multiaddr]]]:
            reply = await self.request(peer, Message(MessageType.GET_PROVIDERS, key=key),
                                       timeout=self.config.request_timeout)
            assert reply is not None
            for prov, addrs in self._referrals(reply.provider_peers):
                take(prov, addrs)
            return self._referrals(reply.closer_peers)

        if len(self.routing_table):
            await self._lookup(key, timeout=timeout, ask=ask, done=lambda: len(found) >= count)
        return list(found.items())


__all__ = ["KadService", "KadConfig", "PeerNotFound", "ValueNotFound", "LookupStats", "KadRequestError"]
