"""Kad requests on one reused stream per peer, as go-libp2p-kad-dht's message manager sends them.

go (internal/net/message_manager.go) keeps one stream per remote peer and sends its requests on it
one at a time: write one message, read exactly one reply; on a write or read failure it resets the
stream and tries once more on a new one; a peer that needed such a retry more than 3 times gets a
fresh stream per request from then on. We do the same, with bounds of our own: a stream idle for
`idle_timeout` is closed (go's server resets a stream after 1 min without a message; closing first
spares the failed first try), at most `max_streams` peers keep one (least recently used closed
first), and only a *reused* stream is retried (a new stream that fails says the peer failed).

A reply that breaks the codec's bounds resets the stream and is raised to the caller without retry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import anyio

from p2p import delimited
from p2p.errors import P2PError, RemoteProtocolError
from p2p.hostapi import HostLike, NetStreamLike
from p2p.identity import PeerId
from p2p.kad.messages import Message, MessageType

STREAM_REUSE_TRIES = 3  # go streamReuseTries
_DROP_TIMEOUT = 2.0  # closing or resetting a stream we give up on
_RETRYABLE = (P2PError, OSError, anyio.EndOfStream, anyio.BrokenResourceError,
              anyio.ClosedResourceError)


class _PeerStream:
    """One peer's stream and what go's peerMessageSender keeps beside it."""

    def __init__(self) -> None:
        self.lock = anyio.Lock()
        self.stream: NetStreamLike | None = None
        self.reader: delimited.DelimitedReader | None = None
        self.pending: list[bytes] = []
        self.last_used = 0.0
        self.retried = 0  # requests that needed a second stream (go singleMes)


class MessageSender:
    """Sends kad requests for a KadService; `streams_opened` and `requests` count what it did."""

    def __init__(self, host: HostLike, protocol: str, *, max_message_size: int, max_peers: int,
                 reuse: bool = True, idle_timeout: float = 30.0, max_streams: int = 256,
                 clock: Callable[[], float] = anyio.current_time) -> None:
        self.host = host
        self.protocol = protocol
        self.max_message_size = max_message_size
        self.max_peers = max_peers
        self.reuse = reuse
        self.idle_timeout = idle_timeout
        self.max_streams = max_streams
        self._clock = clock
        self._peers: OrderedDict[PeerId, _PeerStream] = OrderedDict()
        self.streams_opened = 0
        self.requests = 0
        self.retries = 0

    def __len__(self) -> int:
        """Peers holding an open stream."""
        return sum(1 for ps in self._peers.values() if ps.stream is not None)

    async def send(self, peer: PeerId, msg: Message, *, timeout: float) -> Message | None:
        """Write `msg` to `peer` and read its one reply (ADD_PROVIDER: none), within `timeout`."""
        ps = self._peers.get(peer)
        if ps is None:
            ps = self._peers[peer] = _PeerStream()
        self._peers.move_to_end(peer)
        self.requests += 1
        with anyio.fail_after(timeout):
            async with ps.lock:
                try:
                    return await self._send_locked(peer, ps, msg, timeout)
                finally:
                    ps.last_used = self._clock()
                    if ps.stream is None and not ps.lock.statistics().tasks_waiting:
                        if self._peers.get(peer) is ps:
                            del self._peers[peer]
                    await self._evict()

    async def _send_locked(self, peer: PeerId, ps: _PeerStream, msg: Message,
                           timeout: float) -> Message | None:
        data = delimited.encode(msg.encode())
        retried = False
        while True:
            reused = ps.stream is not None and self._clock() - ps.last_used < self.idle_timeout
            if ps.stream is not None and not reused:
                await self._close(ps)  # idle too long: the server may be about to reset it
            if ps.stream is None:
                ps.stream = await self.host.new_stream(peer, [self.protocol], timeout=timeout)
                ps.reader = delimited.DelimitedReader(self.max_message_size)
                ps.pending = []
                self.streams_opened += 1
            stream, reader = ps.stream, ps.reader
            assert reader is not None
            try:
                await stream.send(data)
                if msg.type is MessageType.ADD_PROVIDER:
                    reply = None
                else:
                    raw = await delimited.read_message(stream, reader, ps.pending)
                    reply = Message.decode(raw, max_peers=self.max_peers)
            except BaseException as exc:
                await self._reset(ps)
                if isinstance(exc, _RETRYABLE) and not isinstance(exc, RemoteProtocolError) \
                        and reused and not retried:
                    retried = True
                    self.retries += 1
                    continue  # go: once more on a new stream (the server may have reset ours)
                raise
            if retried:
                ps.retried += 1
            if not self.reuse or ps.retried > STREAM_REUSE_TRIES:
                await self._close(ps)  # go: a peer that keeps breaking streams gets one per request
            return reply

    async def _reset(self, ps: _PeerStream) -> None:
        await self._drop(ps, reset=True)

    async def _close(self, ps: _PeerStream) -> None:
        await self._drop(ps, reset=False)

    @staticmethod
    async def _drop(ps: _PeerStream, *, reset: bool) -> None:
        """Forget `ps`'s stream and reset or close it: shielded from the caller's cancel (its
        request's deadline), but bounded, since closing may wait on the peer."""
        stream, ps.stream, ps.reader = ps.stream, None, None
        if stream is not None:
            with anyio.move_on_after(_DROP_TIMEOUT, shield=True):
                try:
                    await (stream.reset() if reset else stream.aclose())
                except Exception:
                    pass

    async def _evict(self) -> None:
        """Keep at most `max_streams` open: close the least recently used idle ones."""
        over = len(self._peers) - self.max_streams
        for peer in list(self._peers):
            if over <= 0:
                break
            ps = self._peers[peer]
            if ps.lock.locked():
                continue
            del self._peers[peer]
            over -= 1
            await self._close(ps)

    async def close_idle(self) -> int:
        """Close the streams idle for `idle_timeout` (run now and then); returns how many."""
        now = self._clock()
        closed = 0
        for peer in list(self._peers):
            ps = self._peers.get(peer)
            if ps is None or ps.lock.locked() or now - ps.last_used < self.idle_timeout:
                continue
            del self._peers[peer]
            if ps.stream is not None:
                closed += 1
            await self._close(ps)
        return closed

    def forget(self, peer: PeerId) -> None:
        """The peer's connection is gone: its stream went with it."""
        ps = self._peers.get(peer)
        if ps is not None and not ps.lock.locked():
            del self._peers[peer]

    async def aclose(self) -> None:
        for peer in list(self._peers):
            ps = self._peers.pop(peer)
            await self._close(ps)
