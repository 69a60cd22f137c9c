"""The GossipSub v1.2 router as a sans-IO state machine (go-libp2p-pubsub v0.12.0 semantics).

The driver tells it about peers (`add_peer` once our outbound stream to the peer is open,
`remove_peer`), hands it every RPC read (`handle_rpc`), our own signed messages (`publish`), topic
joins and leaves, and calls `heartbeat(now)` every `heartbeat_interval`. The router answers with
messages to deliver locally (from `handle_rpc`) and RPCs to send, collected per peer and taken with
`take_outgoing()`. No I/O and no clock (every call takes `now`); randomness comes from the `rng`
passed in, so tests are reproducible.

As go with its default options: StrictSign, message ID = from ‖ seqno, no peer scoring (every score
is 0), no peer exchange, no flood publishing; GRAFT refused (PRUNE, backoff extended) while a peer
is backing off or when the mesh is at Dhi and the peer's connection is inbound; IHAVE handled at most
`max_ihave_messages` times per peer per heartbeat and asking at most `max_ihave_length` IDs; an
IWANT answered at most `gossip_retransmission` times per message per peer.

IDONTWANT (v1.2, go's PreValidation): a received message of at least `idontwant_threshold` bytes
of data, new and signed, makes us tell our `/meshsub/1.2.0` mesh peers of its topic that we have
it, before we check its signature; those RPCs are taken apart (`take_urgent`) so the driver can
send them ahead of queued traffic, as go's urgent queue does. A peer's IDONTWANT keeps a message
from being forwarded to it for `idontwant_ttl` heartbeats; at most `max_idontwant_ids` IDs per
peer per heartbeat are remembered (go counts 1000 IDONTWANT RPCs, each with any number of IDs:
counting IDs bounds our memory at ttl x max IDs per peer), each as go's checksum (the ID itself
up to 32 bytes, else its SHA-256).
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from p2p.identity import PeerId
from p2p.pubsub.rpc import RPC, Control, IHave, Prune, PubMessage, SubOpts
from p2p.pubsub.sign import SignatureError, verify

MESHSUB_12 = "/meshsub/1.2.0"
MESHSUB_11 = "/meshsub/1.1.0"
MESHSUB_10 = "/meshsub/1.0.0"
FLOODSUB = "/floodsub/1.0.0"
PROTOCOLS = (MESHSUB_12, MESHSUB_11, MESHSUB_10, FLOODSUB)  # our preference order, as go's
GOSSIPSUB = (MESHSUB_12, MESHSUB_11, MESHSUB_10)


def id_checksum(mid: bytes) -> bytes:
    """go's computeChecksum: IDs of 1..32 bytes as they are, others by SHA-256 (marked so that a
    digest never equals a 32-byte ID): what we keep per unwanted ID is at most 33 bytes."""
    if 0 < len(mid) <= 32:
        return mid
    return b"#" + hashlib.sha256(mid).digest()


@dataclass(frozen=True)
class GossipSubParams:
    """go-libp2p-pubsub v0.12.0 defaults (gossipsub.go)."""

    D: int = 6
    Dlo: int = 5
    Dhi: int = 12
    Dscore: int = 4
    Dout: int = 2
    Dlazy: int = 6
    gossip_factor: float = 0.25
    history_length: int = 5
    history_gossip: int = 3
    heartbeat_initial_delay: float = 0.1
    heartbeat_interval: float = 1.0
    fanout_ttl: float = 60.0
    prune_backoff: float = 60.0
    unsubscribe_backoff: float = 10.0
    graft_flood_threshold: float = 10.0
    max_ihave_length: int = 5000
    max_ihave_messages: int = 10
    gossip_retransmission: int = 3
    idontwant_threshold: int = 1024  # bytes of data from which we send IDONTWANT
    idontwant_ttl: int = 3  # heartbeats a received IDONTWANT is honoured
    max_idontwant_ids: int = 1000  # IDs remembered per peer per heartbeat (go: 1000 RPCs)
    seen_ttl: float = 120.0  # go TimeCacheDuration
    max_seen: int = 200_000  # ours: the seen cache is also bounded in entries
    max_topics_per_peer: int = 1024  # ours: what one peer can make us remember

    def __post_init__(self) -> None:
        if not (0 < self.Dlo <= self.D <= self.Dhi) or self.Dout >= self.Dlo or self.Dout > self.D // 2:
            raise ValueError("gossipsub degrees must satisfy Dlo <= D <= Dhi, Dout < Dlo, Dout <= D/2")
        if self.history_gossip > self.history_length:
            raise ValueError("history_gossip must not exceed history_length")


class MessageCache:
    """The last `history` heartbeats of messages; IDs of the last `gossip` ones go into IHAVE."""

    def __init__(self, gossip: int, history: int) -> None:
        self.gossip = gossip
        self._windows: list[list[tuple[bytes, str]]] = [[] for _ in range(history)]
        self._msgs: dict[bytes, PubMessage] = {}
        self._sent: dict[bytes, dict[PeerId, int]] = {}

    def put(self, mid: bytes, msg: PubMessage) -> None:
        if mid in self._msgs:
            return
        self._msgs[mid] = msg
        self._windows[0].append((mid, msg.topic))

    def get(self, mid: bytes) -> PubMessage | None:
        return self._msgs.get(mid)

    def get_for_peer(self, mid: bytes, peer: PeerId) -> tuple[PubMessage | None, int]:
        msg = self._msgs.get(mid)
        if msg is None:
            return None, 0
        counts = self._sent.setdefault(mid, {})
        counts[peer] = counts.get(peer, 0) + 1
        return msg, counts[peer]

    def gossip_ids(self, topic: str) -> list[bytes]:
        return [mid for window in self._windows[: self.gossip] for mid, t in window if t == topic]

    def shift(self) -> None:
        for mid, _ in self._windows.pop():
            self._msgs.pop(mid, None)
            self._sent.pop(mid, None)
        self._windows.insert(0, [])

    def __len__(self) -> int:
        return len(self._msgs)


@dataclass
class _Peer:
    protocol: str
    outbound: bool
    topics: set[str] = field(default_factory=set)
    ready: bool = False  # our stream to it is open: we can send


class Router:
    def __init__(self, local: PeerId, params: GossipSubParams | None = None, *,
                 rng: random.Random | None = None) -> None:
        self.local = local
        self.params = p = params or GossipSubParams()
        self.rng = rng or random.Random()
        self.peers: dict[PeerId, _Peer] = {}
        self.topic_peers: dict[str, set[PeerId]] = {}
        self.joined: set[str] = set()
        self.mesh: dict[str, set[PeerId]] = {}
        self.fanout: dict[str, set[PeerId]] = {}
        self.last_pub: dict[str, float] = {}
        self.backoff: dict[str, dict[PeerId, float]] = {}
        self.seen: OrderedDict[bytes, float] = OrderedDict()
        self.mcache = MessageCache(p.history_gossip, p.history_length)
        self._peerhave: dict[PeerId, int] = {}
        self._iasked: dict[PeerId, int] = {}
        self._out: dict[PeerId, RPC] = {}
        self._urgent: dict[PeerId, RPC] = {}
        # IDONTWANT received: peer -> {checksum: heartbeats left}, and IDs taken this heartbeat
        self.unwanted: dict[PeerId, dict[bytes, int]] = {}
        self._dontwant_ids: dict[PeerId, int] = {}
        self.ticks = 0
        self.dropped_invalid = 0  # messages refused by StrictSign
        self.duplicates = 0  # messages received again (what IDONTWANT is there to save)

    # ---- output ------------------------------------------------------------------------------

    def _rpc(self, peer: PeerId) -> RPC:
        rpc = self._out.get(peer)
        if rpc is None:
            rpc = self._out[peer] = RPC()
        return rpc

    def _ctl(self, peer: PeerId) -> Control:
        rpc = self._rpc(peer)
        if rpc.control is None:
            rpc.control = Control()
        return rpc.control

    def take_outgoing(self) -> list[tuple[PeerId, RPC]]:
        """RPCs to send, one per peer we have a stream to (the others' wait until it opens)."""
        out = []
        for peer in list(self._out):
            info = self.peers.get(peer)
            if info is None:
                del self._out[peer]
            elif info.ready:
                rpc = self._out.pop(peer)
                if rpc:
                    out.append((peer, rpc))
        return out

    def take_urgent(self) -> list[tuple[PeerId, RPC]]:
        """IDONTWANT RPCs, to be sent before whatever is already queued for the peer."""
        out = []
        for peer in list(self._urgent):
            info = self.peers.get(peer)
            if info is None:
                del self._urgent[peer]
            elif info.ready:
                out.append((peer, self._urgent.pop(peer)))
        return out

    # ---- peers and topics --------------------------------------------------------------------

    def _is_mesh_peer(self, peer: PeerId) -> bool:
        info = self.peers.get(peer)
        return info is not None and info.ready and info.protocol in GOSSIPSUB

    def add_peer(self, peer: PeerId, protocol: str, *, outbound: bool) -> None:
        """Our stream to `peer` is open: greet it with our subscriptions (go's hello)."""
        info = self.peers.get(peer)
        if info is None:
            info = self.peers[peer] = _Peer(protocol, outbound)
        elif info.ready:
            info.protocol = protocol
            return
        info.protocol, info.outbound, info.ready = protocol, outbound, True
        if self.joined:
            hello = [SubOpts(True, t) for t in sorted(self.joined)]
            rpc = self._rpc(peer)
            rpc.subscriptions[:0] = [s for s in hello if s not in rpc.subscriptions]

    def remove_peer(self, peer: PeerId) -> None:
        info = self.peers.pop(peer, None)
        topics = info.topics if info else set()
        for t in topics:
            self._topic_remove(t, peer)
        for peers in (*self.mesh.values(), *self.fanout.values()):
            peers.discard(peer)
        self._out.pop(peer, None)
        self._urgent.pop(peer, None)
        self.unwanted.pop(peer, None)
        self._dontwant_ids.pop(peer, None)
        self._peerhave.pop(peer, None)
        self._iasked.pop(peer, None)

    def _topic_remove(self, topic: str, peer: PeerId) -> None:
        members = self.topic_peers.get(topic)
        if members is not None:
            members.discard(peer)
            if not members:
                del self.topic_peers[topic]

    def _peers_for(self, topic: str, count: int, accept: Callable[[PeerId], bool]) -> list[PeerId]:
        """go getPeers: gossipsub peers subscribed to `topic` passing `accept`, shuffled."""
        cands = [p for p in self.topic_peers.get(topic, ()) if self._is_mesh_peer(p) and accept(p)]
        self.rng.shuffle(cands)
        return cands[:count]

    def _in_backoff(self, topic: str, peer: PeerId, now: float) -> bool:
        until = self.backoff.get(topic, {}).get(peer)
        return until is not None and now < until

    def _add_backoff(self, topic: str, peer: PeerId, now: float, seconds: float) -> None:
        table = self.backoff.setdefault(topic, {})
        until = now + seconds
        if table.get(peer, 0.0) < until:
            table[peer] = until

    def _prune_for(self, peer: PeerId, topic: str, backoff: float) -> Prune:
        info = self.peers.get(peer)
        if info is not None and info.protocol == MESHSUB_10:
            return Prune(topic)  # a v1.0 peer gets the topic only
        return Prune(topic, backoff=int(backoff))

    def join(self, topic: str, now: float) -> None:
        """Subscribe: announce it to every peer and build a mesh (from fanout first), GRAFTing."""
        if topic in self.joined:
            return
        self.joined.add(topic)
        for peer, info in self.peers.items():
            if info.ready:  # the others get it in their hello
                self._rpc(peer).subscriptions.append(SubOpts(True, topic))
        d = self.params.D

        def ok(peer: PeerId) -> bool:
            return not self._in_backoff(topic, peer, now)

        mesh = {p for p in self.fanout.pop(topic, set()) if ok(p)}
        self.last_pub.pop(topic, None)
        if len(mesh) < d:
            mesh.update(self._peers_for(topic, d - len(mesh), lambda p: p not in mesh and ok(p)))
        self.mesh[topic] = mesh
        for peer in mesh:
            self._ctl(peer).graft.append(topic)

    def leave(self, topic: str, now: float) -> None:
        """Unsubscribe: PRUNE the mesh with the unsubscribe backoff and announce it."""
        if topic not in self.joined:
            return
        self.joined.discard(topic)
        for peer in self.mesh.pop(topic, set()):
            self._add_backoff(topic, peer, now, self.params.unsubscribe_backoff)
            self._ctl(peer).prune.append(self._prune_for(peer, topic, self.params.unsubscribe_backoff))
        for peer, info in self.peers.items():
            if info.ready:
                self._rpc(peer).subscriptions.append(SubOpts(False, topic))

    # ---- messages ----------------------------------------------------------------------------

    def _mark_seen(self, mid: bytes, now: float) -> None:
        self.seen[mid] = now + self.params.seen_ttl
        self.seen.move_to_end(mid)
        while len(self.seen) > self.params.max_seen:
            self.seen.popitem(last=False)

    def publish(self, msg: PubMessage, now: float) -> None:
        """Send our own (already signed) message to the topic's mesh, or its fanout."""
        mid = msg.id
        self._mark_seen(mid, now)
        self.mcache.put(mid, msg)
        self._forward(msg, source=self.local, now=now)

    def _forward(self, msg: PubMessage, *, source: PeerId, now: float) -> None:
        topic = msg.topic
        members = self.topic_peers.get(topic, set())
        if not members:
            return
        tosend = {p for p in members if self.peers[p].protocol == FLOODSUB and self.peers[p].ready}
        if topic in self.mesh:
            tosend |= self.mesh[topic]
        else:
            fan = self.fanout.get(topic)
            if not fan:
                fan = set(self._peers_for(topic, self.params.D, lambda p: True))
                if fan:
                    self.fanout[topic] = fan
            tosend |= fan or set()
            self.last_pub[topic] = now
        author = msg.from_peer
        check = id_checksum(msg.id) if self.unwanted else b""
        for peer in tosend:
            if peer == source or (author is not None and peer.to_bytes() == author):
                continue
            unwanted = self.unwanted.get(peer)
            if unwanted and check in unwanted:
                continue  # it told us it has this message (IDONTWANT)
            self._rpc(peer).publish.append(msg)

    def handle_rpc(self, sender: PeerId, rpc: RPC, now: float, *,
                   protocol: str = MESHSUB_11) -> list[PubMessage]:
        """Apply one RPC from `sender` (read on its stream of `protocol`); returns the new valid
        messages of topics we joined. A peer we have no stream to yet is remembered (its
        subscriptions count) and answered once `add_peer` says our stream is open."""
        info = self.peers.get(sender)
        if info is None:
            info = self.peers[sender] = _Peer(protocol, outbound=False)
        for sub in rpc.subscriptions:
            if sub.subscribe:
                if sub.topic in info.topics or len(info.topics) < self.params.max_topics_per_peer:
                    info.topics.add(sub.topic)
                    self.topic_peers.setdefault(sub.topic, set()).add(sender)
            else:
                info.topics.discard(sub.topic)
                self._topic_remove(sub.topic, sender)
                mesh = self.mesh.get(sub.topic)
                if mesh is not None:
                    mesh.discard(sender)
        delivered = []
        fresh = [m for m in rpc.publish if self._worth_checking(m)]
        if fresh:
            self._send_idontwant(fresh)
            for msg in fresh:
                if self._accept(sender, msg, now):
                    delivered.append(msg)
        if rpc.control and info.protocol != FLOODSUB:
            self._handle_control(sender, rpc.control, now)
        return delivered

    def _worth_checking(self, msg: PubMessage) -> bool:
        """go's shouldPush: a topic we joined, signed (StrictSign), not ours, not seen."""
        if not msg.topic or msg.topic not in self.joined:
            return False
        if msg.from_peer == self.local.to_bytes():
            return False  # our own message coming back (or a forgery of it)
        if not msg.signature:
            self.dropped_invalid += 1
            return False
        if msg.id in self.seen:
            self.duplicates += 1
            return False
        return True

    def _send_idontwant(self, msgs: list[PubMessage]) -> None:
        """go's PreValidation: before checking them, tell our v1.2 mesh peers which large
        messages we now have, one IDONTWANT per topic (IDs shuffled, as go)."""
        by_topic: dict[str, dict[bytes, None]] = {}
        for msg in msgs:
            if len(msg.data or b"") >= self.params.idontwant_threshold:
                by_topic.setdefault(msg.topic, {})[msg.id] = None
        for topic, found in by_topic.items():
            mids = list(found)
            self.rng.shuffle(mids)
            for peer in self.mesh.get(topic, ()):
                info = self.peers.get(peer)
                if info is not None and info.protocol == MESHSUB_12:
                    rpc = self._urgent.get(peer)
                    if rpc is None:
                        rpc = self._urgent[peer] = RPC(control=Control())
                    assert rpc.control is not None
                    rpc.control.idontwant.append(list(mids))

    def _accept(self, sender: PeerId, msg: PubMessage, now: float) -> bool:
        """The rest of go's pushMsg: signature, mark seen, cache, forward."""
        mid = msg.id
        if mid in self.seen:
            return False  # a second copy in the same RPC
        try:
            verify(msg)
        except SignatureError:
            self.dropped_invalid += 1
            return False
        self._mark_seen(mid, now)
        self.mcache.put(mid, msg)
        self._forward(msg, source=sender, now=now)
        return True

    # ---- control -----------------------------------------------------------------------------

    def _handle_control(self, peer: PeerId, ctl: Control, now: float) -> None:
        iwant = self._handle_ihave(peer, ctl.ihave)
        if iwant:
            self._ctl(peer).iwant.append(iwant)
        for msg in self._handle_iwant(peer, ctl.iwant):
            self._rpc(peer).publish.append(msg)
        for prune in self._handle_graft(peer, ctl.graft, now):
            self._ctl(peer).prune.append(prune)
        self._handle_prune(peer, ctl.prune, now)
        self._handle_idontwant(peer, ctl.idontwant)

    def _handle_idontwant(self, peer: PeerId, lists: list[list[bytes]]) -> None:
        if not lists:
            return
        room = self.params.max_idontwant_ids - self._dontwant_ids.get(peer, 0)
        if room <= 0:
            return  # over this heartbeat's allowance: ignored (we may send duplicates, as v1.1)
        unwanted = self.unwanted.setdefault(peer, {})
        ttl = self.params.idontwant_ttl
        taken = 0
        for ids in lists:
            for mid in ids[: room - taken]:
                unwanted[id_checksum(mid)] = ttl
                taken += 1
            if taken >= room:
                break
        self._dontwant_ids[peer] = self._dontwant_ids.get(peer, 0) + taken

    def _handle_ihave(self, peer: PeerId, ihaves: list[IHave]) -> list[bytes]:
        if not ihaves:
            return []
        p = self.params
        self._peerhave[peer] = self._peerhave.get(peer, 0) + 1
        if self._peerhave[peer] > p.max_ihave_messages:
            return []
        asked = self._iasked.get(peer, 0)
        if asked >= p.max_ihave_length:
            return []
        want: dict[bytes, None] = {}
        for ih in ihaves:
            if ih.topic not in self.mesh:
                continue
            for mid in ih.ids[: p.max_ihave_length]:
                if mid not in self.seen:
                    want[mid] = None
        if not want:
            return []
        ids = list(want)
        self.rng.shuffle(ids)
        ids = ids[: p.max_ihave_length - asked]
        self._iasked[peer] = asked + len(ids)
        return ids

    def _handle_iwant(self, peer: PeerId, iwants: list[list[bytes]]) -> list[PubMessage]:
        out: dict[bytes, PubMessage] = {}
        for ids in iwants:
            for mid in ids:
                if mid in out:
                    continue
                msg, count = self.mcache.get_for_peer(mid, peer)
                if msg is None or count > self.params.gossip_retransmission:
                    continue
                out[mid] = msg
        return list(out.values())

    def _handle_graft(self, peer: PeerId, topics: list[str], now: float) -> list[Prune]:
        prunes = []
        p = self.params
        for topic in topics:
            mesh = self.mesh.get(topic)
            if mesh is None or peer in mesh:
                continue
            if self._in_backoff(topic, peer, now):
                # go: refresh the backoff and answer with a PRUNE
                self._add_backoff(topic, peer, now, p.prune_backoff)
                prunes.append(self._prune_for(peer, topic, p.prune_backoff))
                continue
            if len(mesh) >= p.Dhi and not self.peers[peer].outbound:
                self._add_backoff(topic, peer, now, p.prune_backoff)
                prunes.append(self._prune_for(peer, topic, p.prune_backoff))
                continue
            mesh.add(peer)
        return prunes

    def _handle_prune(self, peer: PeerId, prunes: list[Prune], now: float) -> None:
        for prune in prunes:
            mesh = self.mesh.get(prune.topic)
            if mesh is None:
                continue
            mesh.discard(peer)
            seconds = float(prune.backoff) if prune.backoff else self.params.prune_backoff
            self._add_backoff(prune.topic, peer, now, min(seconds, 24 * 3600.0))
            # peer exchange is off (as go's default): PRUNE peers are ignored

    # ---- heartbeat ---------------------------------------------------------------------------

    def heartbeat(self, now: float) -> None:
        p = self.params
        self.ticks += 1
        self._peerhave.clear()
        self._iasked.clear()
        self._dontwant_ids.clear()
        for peer in list(self.unwanted):  # go clearIDontWantCounters: one heartbeat older
            left = {c: n - 1 for c, n in self.unwanted[peer].items() if n > 1}
            if left:
                self.unwanted[peer] = left
            else:
                del self.unwanted[peer]
        if self.ticks % 15 == 0:  # go clears expired backoffs every 15 ticks
            for topic in list(self.backoff):
                table = self.backoff[topic]
                for peer in [q for q, until in table.items() if until + p.heartbeat_interval < now]:
                    del table[peer]
                if not table:
                    del self.backoff[topic]
        while self.seen:
            mid, expires = next(iter(self.seen.items()))
            if expires > now:
                break
            self.seen.popitem(last=False)

        tograft: dict[PeerId, list[str]] = {}
        toprune: dict[PeerId, list[str]] = {}
        for topic, mesh in self.mesh.items():
            members = self.topic_peers.get(topic, set())
            for peer in [q for q in mesh if q not in members]:
                mesh.discard(peer)
            if len(mesh) < p.Dlo:
                for peer in self._peers_for(topic, p.D - len(mesh), lambda q: q not in mesh
                                            and not self._in_backoff(topic, q, now)):
                    mesh.add(peer)
                    tograft.setdefault(peer, []).append(topic)
            if len(mesh) > p.Dhi:
                plist = list(mesh)
                self.rng.shuffle(plist)
                keep, drop = plist[: p.D], plist[p.D:]
                outbound = sum(1 for q in keep if self.peers[q].outbound)
                if outbound < p.Dout:  # bubble outbound peers into the kept set
                    extra = [q for q in drop if self.peers[q].outbound][: p.Dout - outbound]
                    for q in extra:
                        drop.remove(q)
                        victim = next(x for x in reversed(keep) if not self.peers[x].outbound)
                        keep.remove(victim)
                        keep.append(q)
                        drop.append(victim)
                for q in drop:
                    mesh.discard(q)
                    self._add_backoff(topic, q, now, p.prune_backoff)
                    toprune.setdefault(q, []).append(topic)
            if len(mesh) >= p.Dlo:
                outbound = sum(1 for q in mesh if self.peers[q].outbound)
                if outbound < p.Dout:
                    for peer in self._peers_for(topic, p.Dout - outbound, lambda q: q not in mesh
                                                and self.peers[q].outbound
                                                and not self._in_backoff(topic, q, now)):
                        mesh.add(peer)
                        tograft.setdefault(peer, []).append(topic)
            self._emit_gossip(topic, mesh)

        for topic in [t for t, at in self.last_pub.items() if at + p.fanout_ttl < now]:
            self.fanout.pop(topic, None)
            del self.last_pub[topic]
        for topic, fan in self.fanout.items():
            members = self.topic_peers.get(topic, set())
            for peer in [q for q in fan if q not in members]:
                fan.discard(peer)
            if len(fan) < p.D:
                fan.update(self._peers_for(topic, p.D - len(fan), lambda q: q not in fan))
            self._emit_gossip(topic, fan)

        for peer, topics in tograft.items():
            self._ctl(peer).graft.extend(topics)
        for peer, topics in toprune.items():
            self._ctl(peer).prune.extend(self._prune_for(peer, t, p.prune_backoff) for t in topics)
        self.mcache.shift()

    def _emit_gossip(self, topic: str, exclude: set[PeerId]) -> None:
        mids = self.mcache.gossip_ids(topic)
        if not mids:
            return
        p = self.params
        self.rng.shuffle(mids)
        mids = mids[: p.max_ihave_length]
        cands = [q for q in self.topic_peers.get(topic, ()) if q not in exclude and self._is_mesh_peer(q)]
        target = max(p.Dlazy, int(p.gossip_factor * len(cands)))
        self.rng.shuffle(cands)
        for peer in cands[:target]:
            self._ctl(peer).ihave.append(IHave(topic, list(mids)))
