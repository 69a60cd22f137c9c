"""GossipSub on a Host: streams, per-peer outbound queues, the heartbeat, publish/subscribe.

    pubsub = PubSubService(host)
    sub = pubsub.subscribe("/masa/gossip/v0.8.4")
    await pubsub.publish("/masa/gossip/v0.8.4", b"...")
    msg = await sub.receive()

As go does it: once identify says a peer speaks a pubsub protocol we open one stream to it (our
first choice that it lists) and only ever write on that one; we read RPCs from the stream it opens
to us, and never write on or half-close that one (go resets its stream and drops us if we do). A
second inbound stream from the same peer replaces the first. Every RPC read is bounded (1 MiB,
go's limit); a malformed one resets the stream, and so does a peer sending more than `rpc_rate`
RPCs + messages per second (ours; go has no such limit). RPCs to a peer wait in a queue of
`outbound_queue_size` (go: 32); when it is full the RPC is dropped, as go drops it, so a slow peer
costs bounded memory. IDONTWANT RPCs jump that queue (go's urgent push), under the same bound.
Subscriptions have bounded queues too (go: 32): a subscriber that does not keep up loses messages,
not memory.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from p2p import delimited
from p2p.errors import P2PError, RemoteProtocolError
from p2p.events import ConnectionListenerBase
from p2p.hostapi import ConnectionLike, HostLike, NetStreamLike
from p2p.identity import PeerId
from p2p.pubsub.router import PROTOCOLS, GossipSubParams, Router
from p2p.pubsub.rpc import MAX_RPC_SIZE, RPC, PubMessage, RpcDecodeError
from p2p.pubsub.sign import sign
from p2p.ratelimit import TokenBucket

log = logging.getLogger("p2p.pubsub")

_NET_ERRORS = (P2PError, OSError, anyio.EndOfStream, anyio.BrokenResourceError,
               anyio.ClosedResourceError, TimeoutError)


@dataclass(frozen=True)
class Message:
    """A message delivered to a subscriber."""

    topic: str
    data: bytes
    author: PeerId
    seqno: bytes
    received_from: PeerId

    @property
    def id(self) -> bytes:
        return self.author.to_bytes() + self.seqno


class Subscription:
    """Messages of one topic; `receive()` waits for the next (bounded queue, oldest kept)."""

    def __init__(self, service: PubSubService, topic: str, size: int) -> None:
        self.topic = topic
        self._service = service
        self._send, self._recv = anyio.create_memory_object_stream[Message](size)
        self.dropped = 0

    def _deliver(self, msg: Message) -> None:
        try:
            self._send.send_nowait(msg)
        except anyio.WouldBlock:
            self.dropped += 1
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def receive(self) -> Message:
        """The next message; one already queued is taken without a loop turn. Every stream
        reader delivers at most one RPC's messages per loop turn (it yields after each), so a
        subscriber taking one message per turn (anyio's receive checkpoints first) fell behind
        several readers and lost messages at its full queue; it now empties the queue each time
        it runs."""
        try:
            return self._recv.receive_nowait()
        except anyio.WouldBlock:
            return await self._recv.receive()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    def cancel(self) -> None:
        self._send.close()
        self._service._unsubscribe(self)


class _Outbound:
    """A peer's queue of encoded RPCs; `urgent` ones leave first (an empty item wakes the writer)."""

    def __init__(self, size: int) -> None:
        self.send: MemoryObjectSendStream[bytes]
        self.recv: MemoryObjectReceiveStream[bytes]
        self.send, self.recv = anyio.create_memory_object_stream[bytes](size)
        self.size = size
        self.urgent: deque[bytes] = deque()
        self.dropped = 0
        self.ready = False

    def push_urgent(self, data: bytes) -> None:
        if len(self.urgent) >= self.size:
            self.dropped += 1
            return
        self.urgent.append(data)
        if len(self.urgent) > 1:
            return  # an item already in the queue leads the writer to the urgent ones
        try:
            self.send.send_nowait(b"")
        except anyio.WouldBlock:
            pass  # the queue is not empty: the writer is not waiting and will see it
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def take(self, first: bytes) -> bytes:
        """`first` and whatever queued up meanwhile, urgent RPCs ahead: one write."""
        batch = [first]
        while True:
            try:
                batch.append(self.recv.receive_nowait())
            except anyio.WouldBlock:
                break
        if self.urgent:
            batch[:0] = self.urgent
            self.urgent.clear()
        return b"".join(batch)


class PubSubService(ConnectionListenerBase):
    def __init__(self, host: HostLike, params: GossipSubParams | None = None, *,
                 outbound_queue_size: int = 32, subscription_queue_size: int = 32,
                 protocols: tuple[str, ...] = PROTOCOLS, rng: random.Random | None = None,
                 rpc_rate: float = 2000.0, rpc_burst: int = 4000) -> None:
        self.host = host
        self.params = params or GossipSubParams()
        self.router = Router(host.peer_id, self.params, rng=rng)
        self.protocols = protocols
        self.outbound_queue_size = outbound_queue_size
        self.subscription_queue_size = subscription_queue_size
        # ours (go has no such limit): RPCs plus messages per second one inbound stream may send;
        # a peer over it gets its stream reset
        self.rpc_rate = rpc_rate
        self.rpc_burst = rpc_burst
        self._outbound: dict[PeerId, _Outbound] = {}
        self._inbound: dict[PeerId, NetStreamLike] = {}
        self._subs: dict[str, list[Subscription]] = {}
        self._seqno = time.time_ns()  # go: start time in ns, +1 per message
        self._closed = False
        for proto in protocols:
            host.set_stream_handler(proto, self._handle_inbound)
        self._unsubscribe_events = host.add_connection_listener(self)
        host.start_soon(self._heartbeat_loop)
        for peer in host.connected_peers():  # peers identified before we existed
            self._maybe_open(peer)

    def close(self) -> None:
        self._closed = True
        for proto in self.protocols:
            self.host.remove_stream_handler(proto)
        self._unsubscribe_events()
        for out in self._outbound.values():
            out.send.close()

    # ---- connection events -------------------------------------------------------------------

    def identified(self, conn: ConnectionLike) -> None:
        self._maybe_open(conn.remote_peer)

    def disconnected(self, conn: ConnectionLike) -> None:
        peer = conn.remote_peer
        if self.host.connection(peer) is None:
            self._drop_peer(peer)

    def _maybe_open(self, peer: PeerId) -> None:
        if self._closed or peer in self._outbound:
            return
        theirs = self.host.peerstore.protocols(peer)
        wanted = [p for p in self.protocols if p in theirs]
        if not wanted:
            return
        out = self._outbound[peer] = _Outbound(self.outbound_queue_size)
        self.host.start_soon(self._run_outbound, peer, wanted, out)

    def _drop_peer(self, peer: PeerId) -> None:
        out = self._outbound.pop(peer, None)
        if out is not None:
            out.send.close()
        self.router.remove_peer(peer)

    # ---- writing -----------------------------------------------------------------------------

    async def _run_outbound(self, peer: PeerId, wanted: list[str], out: _Outbound) -> None:
        try:
            stream = await self.host.new_stream(peer, wanted, timeout=10.0)
        except _NET_ERRORS as exc:
            log.debug("pubsub stream to %s failed: %r", peer, exc)
            if self._outbound.get(peer) is out:
                del self._outbound[peer]
            return
        conn = stream.conn
        self.router.add_peer(peer, stream.protocol, outbound=conn.direction == "outbound")
        out.ready = True
        self._flush()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_outbound, stream, tg.cancel_scope)
                try:  # inside the group: raised out of it, an error comes wrapped in a group
                    async with out.recv:
                        async for data in out.recv:
                            data = out.take(data)
                            if data:
                                await stream.send(data)
                except _NET_ERRORS as exc:
                    log.debug("pubsub stream to %s ended: %r", peer, exc)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await stream.reset()
                except Exception:
                    pass
            if self._outbound.get(peer) is out:
                self._drop_peer(peer)

    @staticmethod
    async def _watch_outbound(stream: NetStreamLike, scope: anyio.CancelScope) -> None:
        """go never writes on the stream we opened: a byte, an EOF or a reset there means the
        peer is gone (go treats its own outbound stream the same way)."""
        try:
            await stream.receive(1)
        except _NET_ERRORS:
            pass
        scope.cancel()

    def _flush(self) -> None:
        for peer, rpc in self.router.take_urgent():
            out = self._outbound.get(peer)
            if out is not None and out.ready:
                out.push_urgent(delimited.encode(rpc.encode()))
        for peer, rpc in self.router.take_outgoing():
            out = self._outbound.get(peer)
            if out is None or not out.ready:
                continue
            for data in _split(rpc):
                try:
                    out.send.send_nowait(delimited.encode(data))
                except anyio.WouldBlock:
                    out.dropped += 1  # go drops an RPC when the peer's queue is full
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    break

    # ---- reading -----------------------------------------------------------------------------

    async def _handle_inbound(self, stream: NetStreamLike) -> None:
        peer = stream.remote_peer
        older = self._inbound.get(peer)
        self._inbound[peer] = stream
        if older is not None:  # go: a new inbound stream from a peer replaces the old one
            try:
                await older.reset()
            except Exception:
                pass
        if peer not in self._outbound:
            if self.host.peerstore.protocols(peer):
                self._maybe_open(peer)
            else:
                self._open_as(peer, stream.protocol)
        reader = delimited.DelimitedReader(MAX_RPC_SIZE, skip_empty=True)
        pending: list[bytes] = []
        bucket = TokenBucket(self.rpc_rate, self.rpc_burst, anyio.current_time())
        try:
            while not self._closed:
                data = await delimited.read_message(stream, reader, pending)
                rpc = RPC.decode(data)
                if not bucket.take(anyio.current_time(), 1 + len(rpc.publish)):
                    raise RemoteProtocolError("pubsub RPC rate over the limit")
                if self._on_rpc(peer, rpc, stream.protocol):
                    # subscribers (and our stream writers) run before the next RPC is taken, so a
                    # burst read in one chunk does not overflow their bounded queues
                    await anyio.sleep(0)
        except anyio.EndOfStream:
            pass
        except (RpcDecodeError, RemoteProtocolError) as exc:
            log.debug("pubsub RPC from %s refused: %r", peer, exc)
            await stream.reset()
        finally:
            if self._inbound.get(peer) is stream:
                del self._inbound[peer]
        # We return only once the peer ended its stream (or we reset it): while it is open we
        # never write on it nor half-close it, which go would take for a dead peer.

    def _open_as(self, peer: PeerId, protocol: str) -> None:
        """A peer wrote to us before identify told us its protocols: answer in its protocol."""
        if self._closed or peer in self._outbound:
            return
        out = self._outbound[peer] = _Outbound(self.outbound_queue_size)
        self.host.start_soon(self._run_outbound, peer, [protocol], out)

    def _on_rpc(self, peer: PeerId, rpc: RPC, protocol: str) -> bool:
        """Apply one RPC; True when it delivered messages to our subscribers."""
        now = anyio.current_time()
        delivered = self.router.handle_rpc(peer, rpc, now, protocol=protocol)
        for msg in delivered:
            self._deliver(msg, peer)
        self._flush()
        return bool(delivered)

    def _deliver(self, msg: PubMessage, received_from: PeerId) -> None:
        subs = self._subs.get(msg.topic)
        if not subs:
            return
        out = Message(msg.topic, msg.data or b"", PeerId(msg.from_peer or b""), msg.seqno or b"",
                      received_from)
        for sub in subs:
            sub._deliver(out)

    # ---- heartbeat ---------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        await anyio.sleep(self.params.heartbeat_initial_delay)
        while not self._closed:
            self.router.heartbeat(anyio.current_time())
            self._flush()
            await anyio.sleep(self.params.heartbeat_interval)

    # ---- API ---------------------------------------------------------------------------------

    def subscribe(self, topic: str) -> Subscription:
        """Join `topic` (announce, build a mesh) and return a queue of its messages."""
        sub = Subscription(self, topic, self.subscription_queue_size)
        self._subs.setdefault(topic, []).append(sub)
        self.router.join(topic, anyio.current_time())
        self._flush()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic, [])
        if sub in subs:
            subs.remove(sub)
        if not subs:
            self._subs.pop(sub.topic, None)
            self.router.leave(sub.topic, anyio.current_time())
            self._flush()

    def topic_peers(self, topic: str) -> set[PeerId]:
        return set(self.router.topic_peers.get(topic, set()))

    def mesh_peers(self, topic: str) -> set[PeerId]:
        return set(self.router.mesh.get(topic, set()))

    async def publish(self, topic: str, data: bytes) -> bytes:
        """Sign and send `data` on `topic`; returns the message ID. Our own subscribers get it too."""
        self._seqno += 1
        msg = PubMessage(data=data, seqno=self._seqno.to_bytes(8, "big"), topic=topic)
        sign(msg, self.host.identity)
        if len(RPC(publish=[msg]).encode()) + 8 > MAX_RPC_SIZE:
            raise ValueError(f"message of {len(data)} bytes does not fit in a {MAX_RPC_SIZE}-byte RPC")
        self.router.publish(msg, anyio.current_time())
        self._deliver(msg, self.host.peer_id)
        self._flush()
        await anyio.sleep(0)  # the stream writers get a turn: a burst of publishes drains as it goes
        return msg.id


def _split(rpc: RPC) -> list[bytes]:
    """One encoded RPC, or several when it would exceed go's 1 MiB read limit."""
    data = rpc.encode()
    if len(data) <= MAX_RPC_SIZE:
        return [data]
    parts = []
    if rpc.subscriptions or rpc.control:
        parts.append(RPC(subscriptions=rpc.subscriptions, control=rpc.control).encode())
    parts.extend(RPC(publish=[m]).encode() for m in rpc.publish)
    return [p for p in parts if len(p) <= MAX_RPC_SIZE]
