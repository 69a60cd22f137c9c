"""TCP transport on anyio: multiaddr <-> socket address, dial with a timeout, listen on any port,
and `TcpTransport`, the TCP + Noise + yamux `Transport` the Host uses by default.

There is no fixed port anywhere: listening on `/tcp/0` asks the OS for one, and the real port is
read back from the socket so the advertised multiaddr is dialable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc
from multiaddr import Multiaddr

from p2p.errors import ConnectionClosed, DialError, ListenError, P2PError, PeerIdMismatch
from p2p.identity import PeerId
from p2p.logtext import bounded_exc
from p2p.transport.aio_stream import adopt
from p2p.transport.aio_stream import connect as aio_connect
from p2p.transport.base import AdmissionTicket, OnConnection, TransportContext

if TYPE_CHECKING:
    from p2p.upgrader import UpgradedConnection

log = logging.getLogger(__name__)

IP_PROTOCOLS = ("ip4", "ip6", "dns", "dns4", "dns6")


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int
    family: str  # "ip4" | "ip6" | "dns" | "dns4" | "dns6"


def parse_tcp_multiaddr(addr: Multiaddr | str) -> tuple[TcpAddress, str | None]:
    """Split `/ip4/x/tcp/p[/p2p/id]` into a TCP address and the peer ID string (if any)."""
    if isinstance(addr, str):
        return _parse_tcp_string(addr)
    return _parse_tcp(addr)


@functools.lru_cache(maxsize=512)
def _parse_tcp_string(addr: str) -> tuple[TcpAddress, str | None]:
    # Peers are dialled by the same few strings again and again; parsing one with the multiaddr
    # library cost ~4% of a whole connection set-up (profile of the handshake benchmark).
    return _parse_tcp(Multiaddr(addr))


@functools.lru_cache(maxsize=512)
def _parse_tcp(ma: Multiaddr) -> tuple[TcpAddress, str | None]:
    # cached: a Multiaddr is immutable, and a host asks for the same few on every dial (the
    # transport's can_dial, then its dial)
    parts = list(ma.items())
    if len(parts) < 2:
        raise DialError(f"not a TCP multiaddr: {ma}")
    (p0, host), (p1, port) = parts[0], parts[1]
    if p0.name not in IP_PROTOCOLS or p1.name != "tcp":
        raise DialError(f"not a TCP multiaddr: {ma}")
    peer: str | None = None
    for proto, value in parts[2:]:
        if proto.name == "p2p":
            peer = value
        else:
            raise DialError(f"unsupported multiaddr component /{proto.name} in {ma}")
    return TcpAddress(str(host), int(port), p0.name), peer


@functools.lru_cache(maxsize=512)
def tcp_multiaddr(host: str, port: int) -> Multiaddr:
    """`/ip4|ip6/host/tcp/port` (cached: a Multiaddr is immutable, and listen addresses and
    the peers we dial repeat)."""
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/tcp/{port}")


def _tune(stream: anyio.abc.SocketStream) -> None:
    """Keep-alive on, as go sets it. TCP_NODELAY is on already: asyncio's socket transport sets
    it on every TCP socket, anyio's trio backend on every connect and accept (tested)."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:  # pragma: no cover - platform specific
        pass


async def dial(addr: TcpAddress, *, timeout: float | None) -> anyio.abc.SocketStream:
    """A tuned TCP connection to `addr`; DialError when it fails or takes over `timeout` seconds
    (None: the caller bounds it)."""
    try:
        if timeout is None:
            stream = await _connect(addr)
        else:
            with anyio.fail_after(timeout):
                stream = await _connect(addr)
    except TimeoutError:
        raise DialError(f"tcp connect to {addr.host}:{addr.port} timed out") from None
    except OSError as exc:
        raise DialError(f"tcp connect to {addr.host}:{addr.port} failed: {os_reason(exc)}") from None
    _tune(stream)
    return stream


async def _connect(addr: TcpAddress) -> anyio.abc.SocketStream:
    if addr.family in ("ip4", "ip6") and _on_asyncio():
        # an IP address on asyncio: the loop's own connect, straight into our stream
        return await aio_connect(addr.host, addr.port)  # type: ignore[return-value]
    # trio, or a DNS name (anyio resolves it and tries each address)
    stream: anyio.abc.SocketStream = adopt(await anyio.connect_tcp(addr.host, addr.port))
    return stream


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio runs no asyncio loop in its thread
        return False
    return True


def os_reason(exc: OSError) -> str:
    """`connection refused` rather than anyio's `All connection attempts failed` (its cause says why)."""
    causes = [exc.__cause__] if isinstance(exc.__cause__, OSError) else []
    if isinstance(exc.__cause__, BaseExceptionGroup):
        causes = [e for e in exc.__cause__.exceptions if isinstance(e, OSError)]
    reasons = []
    for err in causes or [exc]:
        # asyncio's "Connect call failed ('127.0.0.1', 1)" hides the reason that errno names
        text = os.strerror(err.errno) if err.errno else (err.strerror or str(err) or type(err).__name__)
        text = text.strip()
        text = text[:1].lower() + text[1:]
        if text not in reasons:
            reasons.append(text)
    return "; ".join(reasons)


async def listen(addr: TcpAddress) -> anyio.abc.SocketListener:
    family: Literal[socket.AddressFamily.AF_INET, socket.AddressFamily.AF_INET6] = (
        socket.AF_INET6 if addr.family == "ip6" else socket.AF_INET)
    try:
        listener = await anyio.create_tcp_listener(
            local_host=addr.host, local_port=addr.port, family=family, reuse_port=False
        )
    except OSError as exc:
        where = tcp_multiaddr(addr.host, addr.port)
        raise ListenError(f"cannot listen on {where}: {os_reason(exc)}") from None
    return listener  # type: ignore[return-value]


def listener_multiaddrs(listener: anyio.abc.Listener[Any]) -> list[Multiaddr]:
    listeners = getattr(listener, "listeners", [listener])
    out = []
    for lst in listeners:
        host, port = lst.extra(anyio.abc.SocketAttribute.local_address)[:2]
        out.append(tcp_multiaddr(host, port))
    return out


def stream_addrs(stream: anyio.abc.SocketStream) -> tuple[Multiaddr, Multiaddr]:
    """(local, remote) multiaddrs of a connected TCP stream.

    Raises ConnectionClosed when the peer already reset the connection: getpeername() then fails
    (ENOTCONN) and anyio reports the attribute as missing, which a remote must not turn into a crash.
    """
    local, remote, _ = _endpoints(stream)
    return local, remote


def _endpoints(stream: anyio.abc.SocketStream) -> tuple[Multiaddr, Multiaddr, str]:
    """`stream_addrs` and the remote IP address as text (what admission counts by)."""
    try:
        local: Any = stream.extra(anyio.abc.SocketAttribute.local_address)  # (host, port[, ...])
        remote: Any = stream.extra(anyio.abc.SocketAttribute.remote_address)
        lh, lp = local[:2]
        rh, rp = remote[:2]
    except (anyio.TypedAttributeLookupError, OSError):
        raise ConnectionClosed("tcp connection reset before its addresses could be read") from None
    return tcp_multiaddr(lh, lp), tcp_multiaddr(rh, rp), rh


# ---- the transport: TCP + Noise + yamux behind p2p.transport.base.Transport ---------------------


def _is_tcp(addr: Multiaddr) -> bool:
    try:
        _parse_tcp(addr)
    except DialError:
        return False
    return True


class TcpListener:
    """A bound TCP listener (one socket per address family for a wildcard) and its accept loops."""

    def __init__(self, listener: anyio.abc.Listener[Any], addrs: list[Multiaddr]) -> None:
        self._listener = listener
        self.addrs = addrs
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True
        await self._listener.aclose()


class TcpTransport:
    """TCP, then Noise, then yamux (p2p.upgrader): a `p2p.transport.base.Transport`."""

    name = "tcp"

    def __init__(self, ctx: TransportContext) -> None:
        self._ctx = ctx

    def can_dial(self, addr: Multiaddr) -> bool:
        return _is_tcp(addr)

    def can_listen(self, addr: Multiaddr) -> bool:
        return _is_tcp(addr)

    async def dial(self, addr: Multiaddr, expected_peer: PeerId | None,
                   timeout: float) -> UpgradedConnection:
        from p2p.upgrader import UpgradeError, upgrade_outbound

        taddr, _ = _parse_tcp(addr)
        cfg = self._ctx.config
        metrics = self._ctx.metrics
        where = f"{taddr.host}:{taddr.port}"
        raw = None
        start = anyio.current_time()
        # One scope for both deadlines: the TCP connect's (go: 5 s) first, then the whole dial's.
        scope = anyio.CancelScope(deadline=start + min(timeout, cfg.tcp_connect_timeout))
        try:
            with scope:
                raw = await dial(taddr, timeout=None)
                scope.deadline = start + timeout
                try:
                    local, remote = stream_addrs(raw)  # before the upgrade: raw to close
                    tracer = self._ctx.tracer
                    trace = None if tracer is None else tracer.connection("outbound", local, remote)
                    conn = await upgrade_outbound(raw, self._ctx.identity, expected_peer, cfg,
                                                  local, remote, trace)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await raw.aclose()
                    raise
                if metrics is not None:
                    metrics.track_socket(raw.extra(anyio.abc.SocketAttribute.raw_socket, None))
                return conn
            raise TimeoutError  # the scope ended the dial: one of its deadlines passed
        except TimeoutError:
            if raw is None and cfg.tcp_connect_timeout < timeout:
                raise DialError(f"tcp connect to {where} timed out") from None
            if metrics is not None:
                metrics.handshake_failed("outbound", "timeout" if raw is not None else "tcp")
            raise DialError(f"dial {where} timed out after {timeout}s") from None
        except UpgradeError as exc:
            if metrics is not None:
                metrics.handshake_failed("outbound", exc.stage)
            if isinstance(exc.cause, PeerIdMismatch):
                raise exc.cause from None
            raise DialError(f"dial {where} failed at {exc}") from None
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError, ConnectionClosed) as exc:
            if metrics is not None and raw is not None:
                metrics.handshake_failed("outbound", "connection lost")
            raise DialError(f"dial {where}: connection lost ({exc!r})") from None

    async def listen(self, addr: Multiaddr, on_connection: OnConnection) -> TcpListener:
        taddr, _ = _parse_tcp(addr)
        listener = await listen(taddr)
        bound = TcpListener(listener, listener_multiaddrs(listener))
        for sub in getattr(listener, "listeners", [listener]):
            self._ctx.start_soon(self._accept_loop, bound, sub, on_connection)
        return bound

    async def _accept_loop(self, bound: TcpListener, listener: anyio.abc.SocketListener,
                           on_connection: OnConnection) -> None:
        start_soon = self._ctx.start_soon
        while True:
            try:
                raw = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:  # e.g. EMFILE under a connection flood: back off, keep serving
                log.warning("accept failed: %s", exc)
                await anyio.sleep(0.05)
                continue
            start_soon(self._accept, bound, adopt(raw), on_connection)

    async def _upgrade(self, raw: anyio.abc.SocketStream, ticket: AdmissionTicket,
                       local: Multiaddr, remote: Multiaddr) -> UpgradedConnection | None:
        """The inbound handshake, bounded in time and evictable; None (socket closed) if it
        failed, timed out or was evicted."""
        from p2p.upgrader import upgrade_inbound

        cfg = self._ctx.config
        metrics = self._ctx.metrics
        try:
            tracer = self._ctx.tracer
            trace = None if tracer is None else tracer.connection("inbound", local, remote)
            with anyio.fail_after(cfg.inbound_upgrade_timeout) as scope:
                # The policy may give this handshake's slot to a newcomer from another
                # address (fair admission): that cancels the upgrade (before its deadline, so
                # no TimeoutError), and the socket closes.
                ticket.on_evict = scope.cancel
                conn = await upgrade_inbound(raw, self._ctx.identity, cfg, local, remote, trace,
                                             progress=ticket.progress)
            ticket.on_evict = None
            if scope.cancelled_caught:
                log.debug("inbound handshake from %s evicted for another address", remote)
                with anyio.CancelScope(shield=True):
                    await raw.aclose()
                return None
            return conn
        except TimeoutError:
            log.debug("inbound upgrade from %s timed out after %.1f s", remote,
                      cfg.inbound_upgrade_timeout)
            if metrics is not None:
                metrics.handshake_failed("inbound", "timeout")
        except (P2PError, OSError, anyio.EndOfStream, anyio.BrokenResourceError,
                anyio.ClosedResourceError) as exc:
            log.debug("inbound upgrade from %s failed: %s", remote, bounded_exc(exc))
            if metrics is not None:
                metrics.handshake_failed("inbound", getattr(exc, "stage", "connection lost"))
        except BaseException:  # cancelled (the host's group ends): the dialler must see EOF now
            with anyio.CancelScope(shield=True):
                await raw.aclose()
            raise
        ticket.on_evict = None
        with anyio.CancelScope(shield=True):
            await raw.aclose()
        return None

    async def _accept(self, bound: TcpListener, raw: anyio.abc.SocketStream,
                      on_connection: OnConnection) -> None:
        try:
            local, remote, remote_ip = _endpoints(raw)
        except ConnectionClosed:  # reset by the peer before we looked: nothing left to serve
            await raw.aclose()
            return
        ticket = None if bound.closed else self._ctx.admission.try_admit(remote_ip)
        metrics = self._ctx.metrics
        if ticket is None:  # refused before any handshake work
            log.debug("refusing inbound connection from %s: limits", remote)
            if metrics is not None and not bound.closed:
                metrics.limit_hit("inbound connection admission")
            await raw.aclose()
            return
        _tune(raw)
        try:
            try:
                conn = await self._upgrade(raw, ticket, local, remote)
            finally:
                ticket.handshake_done()
            if conn is None:
                return
            if metrics is not None:
                metrics.track_socket(raw.extra(anyio.abc.SocketAttribute.raw_socket, None))
            # This task lives as long as the connection: what the handshake needed (its scopes,
            # the eviction hook) is gone by now, so an idle connection does not keep it.
            await on_connection(conn)
        finally:
            ticket.release()
