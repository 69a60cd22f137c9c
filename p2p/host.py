"""The Host: listen, dial, one connection per peer, streams by protocol, events for services.

The Host knows connections only through `p2p.connection.MuxedConnection` and makes them through
its transports (`p2p.transport.base.Transport`; `p2p.transport.defaults` by default): it picks the
first transport that can dial or listen on an address. Inbound admission is the transports' (ahead of
any handshake), with the policy the Host gives them (`p2p.admission.ConnectionLimits`).

A host owns one task group. Every connection runs in it (`MuxedConnection.run`), handing each
inbound stream to a task of its own (negotiated, then given to its handler); services (identify
and ping by default, `p2p.services`) hear of connections through listeners (`p2p.events`) and run
their tasks in the host's group (`start_soon`). Closing the host closes every listener and
connection, so no task outlives it.

    async with Host(identity) as host:
        await host.listen("/ip4/127.0.0.1/tcp/0")
        peer = await host.connect("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...")
        stream = await host.new_stream(peer, ["/echo/1.0.0"])
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from p2p.admission import ConnectionLimits
from p2p.config import HostConfig
from p2p.connection import MuxedConnection, MuxedStream
from p2p.errors import ConnectionClosed, DialError, InvalidMultiaddr, P2PError, PeerIdMismatch
from p2p.events import ConnectionListener
from p2p.identity import InvalidPeerId, PeerId, PrivateKey, PublicKey
from p2p.interfaces import expand_wildcards
from p2p.logtext import bounded_exc
from p2p.negotiate import LazyStream, handle_protocol, lazy_hello, select_protocol
from p2p.peerstore import Peerstore
from p2p.protocols import identify as idp
from p2p.services.identify import IdentifyService
from p2p.services.ping import PingService
from p2p.sync import Flag
from p2p.tasks import StreamTasks
from p2p.transport.base import Admission, Listener, Transport, TransportContext
from p2p.transport.defaults import DEFAULT_TRANSPORTS, TransportFactory

if TYPE_CHECKING:  # prometheus_client is imported only by a host that reports metrics
    from p2p.metrics import Metrics
    from p2p.trace.tracer import Tracer

log = logging.getLogger("p2p.host")

StreamHandler = Callable[["NetStream"], Awaitable[None]]


class NetStream(LazyStream):
    """A negotiated application stream: bytes in, bytes out, plus who and what.

    One object over the muxed stream: an outbound stream negotiated lazily (`lazy_timeout`: the
    wait for the listener's replies) carries its pending proposal itself (`LazyStream`)."""

    __slots__ = ("remote_peer", "conn")

    def __init__(self, inner: Any, protocol: str, conn: Connection, *,
                 lazy_timeout: float | None = None) -> None:
        # Every slot of the three classes is set here, without the two super().__init__ calls
        # (a stream per request on both sides); tests/e2e/test_host.py checks none is missed.
        self.inner = inner
        self._buf = bytearray()
        self.protocol = protocol
        self._checked = None
        self._error = None
        self._user_deadline = None
        if lazy_timeout is None:
            self.timeout = 10.0
            self._hello = b""
            self._recv = None
        else:
            self.timeout = lazy_timeout
            self._hello = lazy_hello(protocol)
            self._recv = self._receive_first
        self.conn = conn
        self.remote_peer = conn.peer_id

    @property
    def initial_send_window(self) -> int:
        """Bytes a new stream sends without waiting for the peer (see p2p.connection)."""
        return self.conn.muxed.initial_send_window


class MeteredNetStream(NetStream):
    """An outbound NetStream of a host with metrics: counted open from `count_open` (once the
    protocol is known) until closed or reset. Hosts without metrics never make one."""

    __slots__ = ("_metrics",)

    def __init__(self, inner: Any, protocol: str, conn: Connection, *,
                 lazy_timeout: float | None = None) -> None:
        super().__init__(inner, protocol, conn, lazy_timeout=lazy_timeout)
        self._metrics: Metrics | None = None

    def count_open(self, metrics: Metrics) -> MeteredNetStream:
        self._metrics = metrics
        metrics.stream_opened("outbound", self.protocol)
        return self

    def _ended(self) -> None:
        if self._metrics is not None:
            self._metrics.stream_closed("outbound", self.protocol)
            self._metrics = None

    async def aclose(self) -> None:
        self._ended()
        await super().aclose()

    async def reset(self) -> None:
        self._ended()
        await super().reset()


@dataclass(eq=False, slots=True)
class Connection:
    """The Host's record of one live connection: the muxed connection plus what identify said."""

    muxed: MuxedConnection
    identified: Flag = field(default_factory=Flag)  # set once identify is over (or failed)
    identify_info: idp.IdentifyInfo | None = None
    identify_error: BaseException | None = None
    # copied from `muxed` (read on every stream)
    peer_id: PeerId = field(init=False)
    public_key: PublicKey = field(init=False)
    direction: str = field(init=False)
    local_addr: Multiaddr = field(init=False)
    remote_addr: Multiaddr = field(init=False)
    transport: str = field(init=False)

    def __post_init__(self) -> None:
        m = self.muxed
        self.peer_id = m.remote_peer
        self.public_key = m.remote_public_key
        self.direction = m.direction
        self.local_addr = m.local_addr
        self.remote_addr = m.remote_addr
        self.transport = m.transport

    @property
    def is_closed(self) -> bool:
        return self.muxed.is_closed

    @property
    def remote_peer(self) -> PeerId:
        return self.peer_id

    @property
    def remote_public_key(self) -> PublicKey:
        return self.public_key


class Host:
    """A libp2p host. `transports` are transport classes (default: `DEFAULT_TRANSPORTS`), each
    constructed with the host's `TransportContext`; `admission` decides which inbound
    connections may start a handshake (default: `ConnectionLimits` with the config's limits);
    `trace` (a `p2p.trace.Tracer`) records every layer of every connection (see docs/tour.md):
    without one, connections run no tracing code at all."""

    def __init__(self, identity: PrivateKey | None = None, config: HostConfig | None = None, *,
                 transports: Sequence[TransportFactory] = DEFAULT_TRANSPORTS,
                 admission: Admission | None = None, trace: Tracer | None = None,
                 metrics: Metrics | None = None) -> None:
        """A host with `identity` (default: a new Ed25519 key) and `config` (go's defaults); it
        does nothing until entered with `async with`. `trace` (a `p2p.trace.Tracer`) records
        every layer of its connections; `metrics` (p2p.metrics) counts for Prometheus."""
        self.identity = identity or PrivateKey.generate()
        self.peer_id = PeerId.from_public_key(self.identity.public_key)
        self.config = config or HostConfig()
        self.peerstore = Peerstore()
        self._handlers: dict[str, StreamHandler] = {}
        self._conns: dict[PeerId, list[Connection]] = {}
        self._dialing: dict[PeerId, Flag] = {}
        self._listeners: list[Listener] = []
        self._listen_addrs: list[Multiaddr] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self.admission = admission or ConnectionLimits(self.config, self._total_conns)
        self.tracer = trace
        #: Prometheus metrics (p2p.metrics) when asked for; None counts nothing
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_connections(self._all_connections)
        ctx = TransportContext(self.identity, self.config, self.admission, self._start_internal,
                               trace, metrics)
        self.transports: list[Transport] = [make(ctx) for make in transports]
        self._closed = False
        self._conn_listeners: list[object] = []
        #: the services every host runs (go's identify and ping services)
        self.identify_service = IdentifyService(self)
        self.ping_service = PingService(self)

    # ---- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Host:
        """Start the host's task group; `listen` and `connect` work from here on."""
        if self._tg is not None or self._closed:
            raise P2PError("a Host runs once: create a new one")
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: object) -> bool:
        """Close everything and wait for the host's tasks, whatever ended the block.

        The block's own exception goes on as itself: it is not handed to the task group, which
        would wrap it in an ExceptionGroup (the host's tasks are guarded and end by cancellation,
        so the group has nothing of theirs to add). A failure of the host's own machinery is
        raised unwrapped when it is the only one.
        """
        tg = self._tg
        assert tg is not None, "__aexit__ without __aenter__"
        try:
            await self.close()
        finally:
            tg.cancel_scope.cancel()
            try:
                await tg.__aexit__(None, None, None)
            except BaseExceptionGroup as group:
                inner = _unwrap(group)
                if exc is None:
                    raise inner from None
                log.error("host task failed while the block raised %r", exc, exc_info=inner)
        return False

    async def close(self) -> None:
        """Stop listening and close every connection (GoAway, then the socket)."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            for listener in self._listeners:
                await listener.aclose()
            # A connection may join while this sweep waits (an inbound handshake or a dial that
            # was already past its last check): sweep until none is left open, so every peer
            # hears GoAway / CONNECTION_CLOSE now rather than at its keepalive or idle timeout.
            done: set[Connection] = set()
            while left := [c for conns in list(self._conns.values()) for c in conns
                           if c not in done]:
                for conn in left:
                    done.add(conn)
                    with anyio.move_on_after(1):
                        await conn.muxed.close()

    def _task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None or self._closed:
            raise P2PError("host is not running (use `async with Host(...)`)")
        return self._tg

    def _start_internal(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """The transports' way into the host's task group (accept loops, inbound connections).

        While the host closes, a transport may still clean up in a task (a QUIC socket whose
        last connection just ended): it runs in the closing group, cancelled if it waits; once
        the group is gone, it is dropped."""
        tg = self._tg
        if tg is None:
            raise P2PError("host is not running (use `async with Host(...)`)")
        # the transports pass coroutine functions (anyio's start_soon takes nothing else)
        coro_fn = cast("Callable[..., Coroutine[Any, Any, object]]", fn)
        if not self._closed:
            tg.start_soon(coro_fn, *args)
            return
        try:
            tg.start_soon(coro_fn, *args)
        except RuntimeError:  # the group has exited
            log.debug("host closed: %r not started", fn)

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run `await fn(*args)` in the host's task group, for services reacting to events.

        The task is cancelled when the host closes; once the host is closing this is a no-op.
        An exception the task raises is logged and goes no further: one service's failure must
        not take the host down.
        """
        if self._tg is None:
            raise P2PError("host is not running (use `async with Host(...)`)")
        if self._closed:
            return
        self._tg.start_soon(_guarded, fn, args)

    # ---- connection events (p2p/events.py) ------------------------------------------------

    def add_connection_listener(self, listener: ConnectionListener | object) -> Callable[[], None]:
        """Call `listener.connected/identified/protocols_updated/disconnected` (those it has)
        from now on; returns a function that unsubscribes it."""
        self._conn_listeners.append(listener)

        def unsubscribe() -> None:
            try:
                self._conn_listeners.remove(listener)
            except ValueError:
                pass

        return unsubscribe

    def _emit(self, event: str, conn: Connection, *args: object) -> None:
        for listener in tuple(self._conn_listeners):
            method = getattr(listener, event, None)
            if method is None:
                continue
            try:
                method(conn, *args)
            except Exception:
                log.exception("connection listener %r raised in %s", listener, event)

    # ---- handlers --------------------------------------------------------------------------

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve `protocol`: each inbound stream that negotiates it runs `await handler(stream)` in
        a task of its own (the stream is closed after it returns, reset if it raises). Identify
        advertises it from now on, and pushes it to the connected peers (as go does)."""
        new = protocol not in self._handlers
        self._handlers[protocol] = handler
        if new:
            self._protocols_changed()

    def remove_stream_handler(self, protocol: str) -> None:
        """Stop serving `protocol` (streams already running go on); connected peers are told."""
        if self._handlers.pop(protocol, None) is not None:
            self._protocols_changed()

    def _protocols_changed(self) -> None:
        # Connected peers learn it by identify push, once for all the changes made in this turn
        # (go: EvtLocalProtocolsUpdated). Before the host runs there is nobody to tell.
        if self._conns and self._tg is not None and not self._closed:
            self.identify_service.push_soon()

    @property
    def protocols(self) -> list[str]:
        """The protocols this host serves, sorted (what identify tells peers)."""
        return sorted(self._handlers)

    # ---- listening -------------------------------------------------------------------------

    async def listen(self, *addrs: str | Multiaddr) -> list[Multiaddr]:
        """Listen on each address (default `/ip4/127.0.0.1/tcp/0`); returns the bound addresses."""
        self._task_group()
        out = []
        for addr in addrs or ("/ip4/127.0.0.1/tcp/0",):
            ma = _multiaddr(addr)
            transport = self._transport_for(ma, listen=True)
            listener = await transport.listen(ma, self._serve_inbound)
            self._listeners.append(listener)
            self._listen_addrs.extend(listener.addrs)
            out.extend(listener.addrs)
        return out

    def listen_addrs(self) -> list[Multiaddr]:
        """The addresses peers can dial us on: as bound, except that a wildcard (`0.0.0.0`, `::`)
        stands for each interface address of its family, as go advertises (p2p/interfaces.py).
        Identify leaves the loopback ones out for a peer that is not on loopback."""
        return expand_wildcards(self._listen_addrs)

    def p2p_addrs(self) -> list[str]:
        """`listen_addrs()` with our `/p2p/<peer id>`: what to give another peer to dial us."""
        return [f"{a}/p2p/{self.peer_id}" for a in self.listen_addrs()]

    def can_dial(self, addr: str | Multiaddr) -> bool:
        """True when one of the host's transports can dial `addr` (a `/p2p/<id>` tail allowed);
        raises ValueError or P2PError (with the reason) when `addr` is not a valid multiaddr."""
        ma, _ = _split_p2p(addr)
        return any(t.can_dial(ma) for t in self.transports)

    def can_listen(self, addr: str | Multiaddr) -> bool:
        """True when one of the host's transports can listen on `addr`."""
        ma = _multiaddr(addr)
        return any(t.can_listen(ma) for t in self.transports)

    def _transport_for(self, addr: Multiaddr, *, listen: bool = False) -> Transport:
        for transport in self.transports:
            if transport.can_listen(addr) if listen else transport.can_dial(addr):
                return transport
        names = ", ".join(t.name for t in self.transports)
        raise DialError(f"no transport ({names}) can {'listen on' if listen else 'dial'} {addr}")

    def _total_conns(self) -> int:
        return sum(len(c) for c in self._conns.values())

    async def _serve_inbound(self, muxed: MuxedConnection) -> None:
        """A transport's callback for an upgraded inbound connection; returns when it ended."""
        if self._closed:  # its handshake ended after the close sweep: tell the peer at once
            await _close_unowned(muxed)
            return
        if muxed.remote_peer == self.peer_id:
            # The other half of a dial to one of our own addresses: the dialling half is what
            # its caller sees (and refuses, as the oracle node does, or uses); this half would
            # be a second connection to ourselves, registered whenever its handshake ends,
            # which may be after the dialling half was closed.
            await muxed.close()
            return
        if len(self._conns.get(muxed.remote_peer, ())) >= self.config.max_connections_per_peer:
            if self.metrics is not None:
                self.metrics.limit_hit("connections per peer")
            await muxed.close()
            return
        await self._run_connection(Connection(muxed))

    # ---- dialing ---------------------------------------------------------------------------

    def connection(self, peer: PeerId) -> Connection | None:
        """A live connection to `peer`, or None."""
        for conn in self._conns.get(peer, ()):
            if not conn.muxed.is_closed:  # (conn.is_closed, one property call less per stream)
                return conn
        return None

    def _all_connections(self) -> list[Connection]:
        return [c for conns in list(self._conns.values()) for c in conns if not c.is_closed]

    def connected_peers(self) -> list[PeerId]:
        """Peers with at least one live connection."""
        return [p for p in self._conns if self.connection(p) is not None]

    async def disconnect(self, peer: PeerId) -> None:
        """Close every connection to `peer` (GoAway(0), then the socket)."""
        for conn in list(self._conns.get(peer, ())):
            with anyio.move_on_after(1):
                await conn.muxed.close()

    async def connect(self, addr: str | Multiaddr, *, timeout: float | None = None) -> PeerId:
        """Connect to a multiaddr (reusing a live connection to the same peer)."""
        ma, expected = _split_p2p(addr)
        transport = self._transport_for(ma)
        if expected is not None:
            self.peerstore.add_addrs(expected, [ma])
            if self.connection(expected) is not None:
                return expected
        conn = await self._dial(transport, ma, expected, timeout or self.config.dial_timeout)
        return conn.peer_id

    async def _dial(self, transport: Transport, addr: Multiaddr, expected: PeerId | None,
                    timeout: float) -> Connection:
        self._task_group()  # a closing host dials nothing (P2PError)
        if expected is not None:
            while (ev := self._dialing.get(expected)) is not None:
                await ev.wait()  # another task is dialling this peer: share its connection
                conn = self.connection(expected)
                if conn is not None:
                    return conn
            self._dialing[expected] = Flag()
        try:
            muxed = await transport.dial(addr, expected, timeout)
            try:
                tg = self._task_group()  # raises once the host is closing
            except P2PError:
                # The handshake finished after the close sweep: nothing would ever run or close
                # this connection, and the peer would list us until its keepalive failed.
                await _close_unowned(muxed)
                raise DialError(f"dial {addr}: the host closed meanwhile") from None
            conn = Connection(muxed)
            if expected is not None and conn.peer_id == expected:
                # The caller's object (and the peerstore's key) is the connection's too: a
                # lookup by the ID `connect` returned finds it by identity, without __eq__.
                conn.peer_id = expected
            self.peerstore.add_addrs(conn.peer_id, [conn.remote_addr])
            started = Flag()
            tg.start_soon(self._run_connection, conn, started)
            await started.wait()
            return conn
        finally:
            if expected is not None:
                self._dialing.pop(expected).set()

    async def _connection_for(self, peer: PeerId, timeout: float) -> Connection:
        conn = self.connection(peer)
        if conn is not None:
            return conn
        errors = []
        for addr in self.peerstore.addrs(peer):
            try:
                return await self._dial(self._transport_for(addr), addr, peer, timeout)
            except (DialError, PeerIdMismatch) as exc:
                errors.append(str(exc))
        if not errors:
            raise DialError(f"no addresses known for peer {peer}")
        raise DialError(f"could not dial {peer}: " + "; ".join(errors))

    # ---- connections -----------------------------------------------------------------------

    async def _run_connection(self, conn: Connection, started: Flag | None = None) -> None:
        self._conns.setdefault(conn.peer_id, []).append(conn)
        self.peerstore.set_public_key(conn.peer_id, conn.public_key)
        log.debug("connection %s %s %s", conn.direction, conn.peer_id, conn.remote_addr)
        try:
            self._emit("connected", conn)
            # The connection runs in this task (its reader) and hands each inbound stream to a
            # handler task of its own: an idle connection costs this task and the writer's.
            # When the connection ends, so does everything that belongs to it.
            async with StreamTasks() as streams:
                conn.muxed.set_stream_handler(
                    lambda ms: streams.start_soon(ms, self._handle_inbound_stream, conn, ms,
                                                  streams))
                if started is not None:
                    started.set()
                await conn.muxed.run()
        finally:
            if started is not None:
                started.set()
            conns = self._conns.get(conn.peer_id, [])
            if conn in conns:
                conns.remove(conn)
            if not conns:
                self._conns.pop(conn.peer_id, None)
            if not conn.identified.is_set():
                conn.identify_error = conn.identify_error or ConnectionClosed("connection closed")
                self._set_identified(conn)
            log.debug("connection to %s closed (%r)", conn.peer_id, conn.muxed.error)
            self._emit("disconnected", conn)

    def _set_identified(self, conn: Connection) -> None:
        conn.identified.set()
        self._emit("identified", conn)

    async def _handle_inbound_stream(self, conn: Connection, ms: MuxedStream,
                                     tasks: StreamTasks) -> None:
        """An inbound stream's task: negotiate, run the handler, close. Its last step forgets
        the task (`tasks.ended`): no done callback (a loop turn more per request), and no
        wrapper coroutine (a frame more for every waiting stream)."""
        try:
            stream = NetStream(ms, "", conn)
            try:
                proto = await handle_protocol(
                    stream, self._handlers.keys(), timeout=self.config.negotiation_timeout,
                    max_na_rounds=self.config.max_negotiation_rounds,
                )
            except (P2PError, anyio.EndOfStream, anyio.BrokenResourceError,
                    anyio.ClosedResourceError) as exc:
                log.debug("inbound stream negotiation with %s failed: %s", conn.peer_id,
                          bounded_exc(exc))
                await _quiet_reset(stream)
                return
            stream.protocol = proto
            handler = self._handlers.get(proto)
            if handler is None:  # removed while negotiating
                await _quiet_reset(stream)
                return
            metrics = self.metrics
            if metrics is not None:
                metrics.stream_opened("inbound", proto)
            try:
                await handler(stream)
            except Exception as exc:  # a handler's failure must not take the connection down
                if isinstance(exc, (P2PError, anyio.EndOfStream, anyio.BrokenResourceError,
                                    anyio.ClosedResourceError, TimeoutError)):
                    log.debug("handler for %s from %s ended: %s", proto, conn.peer_id,
                              bounded_exc(exc))
                else:
                    log.exception("handler for %s from %s raised", proto, conn.peer_id)
                await _quiet_reset(stream)
                return
            finally:
                if metrics is not None:
                    metrics.stream_closed("inbound", proto)
            try:  # no shield needed: a MuxedStream's close only queues its FIN, it never waits
                # The muxed stream's own close: an inbound NetStream has nothing of its own to
                # flush, and most handlers closed it already (then this returns at once).
                await ms.aclose()
            except (P2PError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        except Exception:  # nobody awaits the task: a failure is logged here
            log.exception("inbound stream from %s failed", conn.peer_id)
        finally:
            tasks.ended(ms)

    # ---- streams ---------------------------------------------------------------------------

    async def new_stream(
        self, peer: PeerId, protocols: Sequence[str], *, timeout: float | None = None
    ) -> NetStream:
        """Open a stream to `peer` speaking the first of `protocols` it accepts.

        When identify told us the peer supports `protocols[0]`, negotiation is lazy like go's: the
        proposal travels with the first write and no round trip is spent waiting for it.
        """
        timeout = timeout or self.config.negotiation_timeout
        conn = self.connection(peer)
        if conn is None:
            with anyio.fail_after(timeout):
                conn = await self._connection_for(peer, timeout)
        ms = await conn.muxed.open_stream(timeout=timeout)  # waits only without a free slot
        metrics = self.metrics
        cls = NetStream if metrics is None else MeteredNetStream
        if protocols and self.peerstore.supports(peer, protocols[0]):
            # The replies come back with the answer, as in go, where NewStream's deadline does
            # not bound them: the caller's read deadline does, and when it set none, our own
            # bound, never shorter than the negotiation timeout (a short open timeout must not
            # cut a slow answer).
            lazy_timeout = max(timeout, self.config.negotiation_timeout)
            stream = cls(ms, protocols[0], conn, lazy_timeout=lazy_timeout)
        else:
            stream = cls(ms, "", conn)
            try:
                stream.protocol = await select_protocol(stream, protocols, timeout=timeout)
            except BaseException:
                await _quiet_reset(stream)
                raise
        if metrics is not None:
            assert isinstance(stream, MeteredNetStream)
            stream.count_open(metrics)
        return stream

    # ---- identify (the service reports, the Host keeps the outcome per connection) -----------

    def set_identified(self, conn: Connection, info: idp.IdentifyInfo | None,
                       error: BaseException | None = None) -> None:
        """The identify service's report: what identify on `conn` said (None: it failed, `error`
        says why). The first report counts; it fires the `identified` event."""
        if conn.identified.is_set():
            return
        conn.identify_info = info
        conn.identify_error = error
        self._set_identified(conn)

    def report_protocols_updated(self, conn: Connection, added: frozenset[str],
                                 removed: frozenset[str]) -> None:
        """The identify service's report that a push on `conn` changed its peer's protocols in
        the peerstore; fires `protocols_updated` when it is news to the listeners: the
        connection was identified (before that, `identified` tells it) and is still open."""
        if (added or removed) and conn.identified.is_set() and not conn.is_closed:
            self._emit("protocols_updated", conn, added, removed)

    async def identify(self, peer: PeerId, *, timeout: float | None = None) -> idp.IdentifyInfo:
        """Wait for the identify exchange on our connection to `peer` and return what it said."""
        conn = self.connection(peer)
        if conn is None:
            raise ConnectionClosed(f"not connected to {peer}")
        with anyio.fail_after(timeout or self.config.identify_timeout):
            await conn.identified.wait()
        if conn.identify_info is None:
            raise P2PError(f"identify with {peer} failed: {conn.identify_error!r}")
        return conn.identify_info

    async def ping(self, peer: PeerId, count: int = 1, *, timeout: float = 10.0) -> list[float]:
        """Round trips to `peer` in seconds (the ping service's)."""
        return await self.ping_service.ping(peer, count, timeout=timeout)


def _multiaddr(addr: str | Multiaddr) -> Multiaddr:
    return _parse_multiaddr(addr) if isinstance(addr, str) else addr


@functools.lru_cache(maxsize=512)
def _parse_multiaddr(addr: str) -> Multiaddr:
    try:
        return Multiaddr(addr)  # peers are dialled by the same few strings again and again
    except (ValueError, MultiaddrError) as exc:
        raise InvalidMultiaddr(addr, _multiaddr_reason(exc)) from None


def _multiaddr_reason(exc: BaseException) -> str:
    """The multiaddr library's reason without its repetitions of the address."""
    text = str(exc)
    if text.startswith("Invalid MultiAddr '") and "': " in text:
        text = text.split("': ", 1)[1]
    text = text.split(" (string: ", 1)[0]
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def _split_p2p(addr: str | Multiaddr) -> tuple[Multiaddr, PeerId | None]:
    """`<transport address>[/p2p/<peer id>]` -> (transport address, peer ID or None)."""
    if isinstance(addr, str):
        return _split_p2p_string(addr)
    return _split_p2p_ma(addr)


@functools.lru_cache(maxsize=512)
def _split_p2p_string(addr: str) -> tuple[Multiaddr, PeerId | None]:
    return _split_p2p_ma(_parse_multiaddr(addr))


def _split_p2p_ma(ma: Multiaddr) -> tuple[Multiaddr, PeerId | None]:
    parts = list(ma.items())
    if not parts or parts[-1][0].name != "p2p":
        return ma, None
    if any(proto.name == "p2p" for proto, _ in parts[:-1]):
        raise DialError(f"unsupported multiaddr (relayed or nested /p2p): {ma}")
    try:
        peer = PeerId.from_string(str(parts[-1][1]))
    except InvalidPeerId as exc:
        raise InvalidMultiaddr(ma, f"bad peer ID: {exc}") from None
    return ma.decapsulate(Multiaddr(f"/p2p/{parts[-1][1]}")), peer


def _unwrap(group: BaseExceptionGroup) -> BaseException:
    """The one exception inside (nested) groups, or the group itself when there are several."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _guarded(fn: Callable[..., Awaitable[object]], args: tuple[object, ...]) -> None:
    try:
        await fn(*args)
    except Exception:
        log.exception("host task %r failed", fn)


async def _close_unowned(muxed: MuxedConnection) -> None:
    """Close a connection the host will not run (GoAway / CONNECTION_CLOSE, bounded), even when
    the caller is being cancelled."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(1):
        try:
            await muxed.close()
        except Exception:  # already broken: nothing left to tell the peer
            log.debug("closing an unowned connection failed", exc_info=True)


async def _quiet_reset(stream: NetStream) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await stream.reset()
        except Exception:  # the stream or session is already gone
            pass


__all__ = ["DEFAULT_TRANSPORTS", "Connection", "Host", "HostConfig", "NetStream", "TransportFactory"]
