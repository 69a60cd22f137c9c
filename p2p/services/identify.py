"""The identify service: answers `/ipfs/id/1.0.0`, takes and sends (`push_all`) `/ipfs/id/push/1.0.0`,
and asks every new connection's peer who it is (the wire format is `p2p.protocols.identify`).

On `connected` it starts a task (`host.start_soon`) that opens an identify stream, stores what the
peer said in the peerstore (addresses, protocols, agent, how it sees us) and then reports the
outcome to the Host (`host.set_identified`), which fires the `identified` event. A push that
changes a peer's protocols is reported too (`host.report_protocols_updated`: the
`protocols_updated` event), and the Host has us push when its own protocols change (`push_soon`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from multiaddr import Multiaddr

from p2p.errors import P2PError
from p2p.events import ConnectionListenerBase
from p2p.hostapi import ConnectionLike, HostLike, NetStreamLike
from p2p.identity import PeerId, PublicKey
from p2p.logtext import bounded_exc
from p2p.protocols import identify as idp

log = logging.getLogger(__name__)

__all__ = ["IdentifyService"]

#: Errors a peer or the network can cause while we ask it (anything else is a bug: raised).
_NET_ERRORS = (P2PError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError,
               anyio.ClosedResourceError)


class IdentifyService(ConnectionListenerBase):
    """Identify and identify push on `host` (anything with HostLike's words, `protocols` and
    `set_identified`)."""

    def __init__(self, host: HostLike | Any) -> None:
        self.host = host
        cfg = host.config
        self._max_message = cfg.max_identify_message
        self._max_messages = cfg.max_identify_messages
        self._limit = cfg.max_identify_messages * (cfg.max_identify_message + 2)
        self._unsubscribe: Callable[[], None] | None = None
        self._push_pending = False
        self.start()

    def start(self) -> None:
        """Register the handlers and the connection listener (done by the constructor)."""
        self.host.set_stream_handler(idp.IDENTIFY, self.serve_identify)
        self.host.set_stream_handler(idp.IDENTIFY_PUSH, self.serve_identify_push)
        if self._unsubscribe is None:
            self._unsubscribe = self.host.add_connection_listener(self)

    def stop(self) -> None:
        """Stop answering and asking (connections then stay unidentified)."""
        self.host.remove_stream_handler(idp.IDENTIFY)
        self.host.remove_stream_handler(idp.IDENTIFY_PUSH)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ---- what we say ------------------------------------------------------------------------

    def info_for(self, conn: ConnectionLike) -> idp.IdentifyInfo:
        """Our identify message for the peer on `conn` (no loopback addresses to a remote peer)."""
        host = self.host
        remote_loopback = _is_loopback(conn.remote_addr)
        addrs = [a.to_bytes() for a in host.listen_addrs() if remote_loopback or not _is_loopback(a)]
        return idp.IdentifyInfo(
            public_key=host.identity.public_key.to_protobuf(),
            listen_addrs=addrs,
            protocols=host.protocols,
            observed_addr=conn.remote_addr.to_bytes(),
            protocol_version=host.config.protocol_version,
            agent_version=host.config.agent_version,
        )

    async def serve_identify(self, stream: NetStreamLike) -> None:
        await stream.send(idp.encode_messages(self.info_for(stream.conn)))
        await stream.aclose()

    async def serve_identify_push(self, stream: NetStreamLike) -> None:
        with anyio.fail_after(self.host.config.identify_timeout):
            data = await stream.receive_until_eof(self._limit)
        info = idp.decode_messages(data, max_message=self._max_message,
                                   max_messages=self._max_messages)
        peer = stream.remote_peer
        before = self.host.peerstore.protocols(peer)
        if self._store(peer, info, push=True) and info.protocols:
            after = self.host.peerstore.protocols(peer)
            if after != before:
                self.host.report_protocols_updated(stream.conn, frozenset(after - before),
                                                   frozenset(before - after))

    def push_all(self) -> None:
        """Identify push (`/ipfs/id/push/1.0.0`) to every connected peer that takes it, as go does
        when its addresses or protocols change: connected peers learn a new listen address now,
        not on their next identify (each push runs in its own bounded task). A peer whose
        identify has not ended yet gets one too (go does the same): the answer it had may
        predate the change."""
        for peer in self.host.connected_peers():
            if idp.IDENTIFY_PUSH in self.host.peerstore.protocols(peer) or not self._identified(peer):
                self.host.start_soon(self._push, peer)

    def push_soon(self) -> None:
        """`push_all` once the current turn's changes are made (a service registering three
        handlers makes one push per peer, not three); a no-op while stopped."""
        if self._push_pending or self._unsubscribe is None:
            return
        self._push_pending = True
        self.host.start_soon(self._push_now)

    async def _push_now(self) -> None:
        self._push_pending = False
        self.push_all()

    def _identified(self, peer: PeerId) -> bool:
        conn = self.host.connection(peer)
        return conn is None or conn.identified.is_set()

    async def _push(self, peer: PeerId) -> None:
        stream: Any = None
        try:
            with anyio.fail_after(self.host.config.identify_timeout):
                conn = self.host.connection(peer)
                if conn is None:
                    return
                stream = await self.host.new_stream(peer, [idp.IDENTIFY_PUSH])
                await stream.send(idp.encode_messages(self.info_for(stream.conn)))
                await stream.aclose()
        except _NET_ERRORS as exc:
            log.debug("identify push to %s failed: %s", peer, bounded_exc(exc))
            if stream is not None:
                with anyio.CancelScope(shield=True):
                    try:
                        await stream.reset()
                    except Exception:  # the stream or connection is already gone
                        pass

    # ---- what we ask ------------------------------------------------------------------------

    def connected(self, conn: ConnectionLike) -> None:
        self.host.start_soon(self._request, conn)

    async def _request(self, conn: ConnectionLike) -> None:
        info: idp.IdentifyInfo | None = None
        error: BaseException | None = None
        stream: Any = None
        try:
            cfg = self.host.config
            deadline = anyio.current_time() + cfg.identify_timeout
            # One bound for the whole exchange, as before, without a cancel scope on every
            # connection: new_stream bounds its own waits (a free stream slot, a negotiation
            # when identify is not known to be there), the answer's wait is the stream's read
            # deadline (one timer) where the stream has them
            stream = await self.host.new_stream(
                conn.remote_peer, [idp.IDENTIFY],
                timeout=min(cfg.identify_timeout, cfg.negotiation_timeout))
            if stream.set_read_deadline(deadline):
                data = await stream.receive_until_eof(self._limit)
            else:
                with anyio.fail_at(deadline):
                    data = await stream.receive_until_eof(self._limit)
            info = idp.decode_messages(data, max_message=self._max_message,
                                       max_messages=self._max_messages)
            await stream.aclose()
            self._store(conn.remote_peer, info)
        except _NET_ERRORS as exc:
            log.debug("identify with %s failed: %s", conn.remote_peer, bounded_exc(exc))
            info, error = None, exc
            if stream is not None:  # a failed read must not leave the stream open (go resets it)
                with anyio.CancelScope(shield=True):
                    try:
                        await stream.reset()
                    except Exception:  # the stream or connection is already gone
                        pass
        finally:
            self.host.set_identified(conn, info, error)

    def _store(self, peer: PeerId, info: idp.IdentifyInfo, push: bool = False) -> bool:
        """What `peer` said into the peerstore (False: ignored, it carried another key).

        The last stored wins, as in go: a push that lands before the first answer is overwritten
        by it, and nothing on the wire says which of the two is newer (go's snapshot sequence
        numbers are not sent). go sends a push only after its snapshot changed, so the answer
        then normally arrives first."""
        if info.public_key is not None:
            try:
                key = PublicKey.from_protobuf(info.public_key)
            except P2PError:
                key = None
            if key is not None and PeerId.from_public_key(key) != peer:
                log.debug("identify from %s carries another peer's key: ignored", peer)
                return False
        store = self.host.peerstore
        if info.listen_addrs or not push:
            store.add_addrs(peer, info.multiaddrs())
        if info.protocols or not push:
            store.set_protocols(peer, info.protocols)
        store.set_agent(peer, agent_version=info.agent_version,
                        protocol_version=info.protocol_version,
                        observed_addr=info.observed_multiaddr())
        return True


def _is_loopback(addr: Multiaddr) -> bool:
    # From the binary form (what parsing the text would build first): /ip4 is code 4, /ip6 41.
    raw: bytes = addr.to_bytes()
    if raw[:1] == b"\x04":
        return raw[1:2] == b"\x7f"
    return raw[:1] == b"\x29" and raw[1:17] == _IP6_LOOPBACK


_IP6_LOOPBACK = bytes(15) + b"\x01"
