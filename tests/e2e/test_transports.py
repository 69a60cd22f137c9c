"""The Host runs TCP through the connection and transport interfaces (p2p/connection.py,
p2p/transport/base.py); admission is asked before any handshake. Both anyio backends."""

from __future__ import annotations


import anyio
import pytest
from multiaddr import Multiaddr

from p2p.admission import ConnectionLimits
from p2p.config import HostConfig
from p2p.connection import MuxedConnection, MuxedStream
from p2p.errors import DialError
from p2p.host import Host
from p2p.protocols.echo import echo_handler, echo_roundtrip
from p2p.transport.base import Listener, Transport
from p2p.transport.tcp import TcpTransport

pytestmark = pytest.mark.anyio


class RecordingTcp(TcpTransport):
    """TCP that notes what the Host asked of it."""

    name = "rec-tcp"
    calls: list[str] = []

    async def dial(self, addr, expected_peer, timeout):
        RecordingTcp.calls.append(f"dial {addr}")
        return await super().dial(addr, expected_peer, timeout)

    async def listen(self, addr, on_connection):
        RecordingTcp.calls.append(f"listen {addr}")
        return await super().listen(addr, on_connection)


class RecordingAdmission:
    """Wraps the default policy and logs each decision and ticket call."""

    def __init__(self, inner, refuse: bool = False) -> None:
        self.inner = inner
        self.refuse = refuse
        self.log: list[str] = []
        self.tickets: list = []

    def try_admit(self, ip: str):
        self.log.append(f"admit {ip}")
        if self.refuse:
            return None
        ticket = self.inner.try_admit(ip)
        self.tickets.append(ticket)
        outer = self

        class Ticket:
            @property
            def on_evict(self):
                return ticket.on_evict

            @on_evict.setter
            def on_evict(self, callback) -> None:
                ticket.on_evict = callback

            def progress(self) -> None:
                outer.log.append("progress")
                ticket.progress()

            def handshake_done(self) -> None:
                outer.log.append("handshake_done")
                ticket.handshake_done()

            def release(self) -> None:
                outer.log.append("release")
                ticket.release()

        return Ticket()


async def test_tcp_stack_implements_the_interfaces():
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            server.set_stream_handler("/echo/1.0.0", echo_handler)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            conn = client.connection(peer)
            assert isinstance(conn.muxed, MuxedConnection)
            assert conn.transport == conn.muxed.transport == "tcp"
            assert conn.muxed.local_peer == client.peer_id and conn.muxed.remote_peer == peer
            assert conn.direction == "outbound" and conn.muxed.initial_send_window == 256 * 1024
            stream = await conn.muxed.open_stream()
            assert isinstance(stream, MuxedStream)
            await stream.reset()
            assert all(isinstance(t, Transport) for t in client.transports)
            assert all(isinstance(lst, Listener) for lst in server._listeners)
            assert await echo_roundtrip(client, peer, b"x" * 1000) == b"x" * 1000
            sconn = server.connection(client.peer_id)
            assert sconn.direction == "inbound" and sconn.muxed.local_peer == server.peer_id


async def test_host_uses_the_transports_it_is_given():
    RecordingTcp.calls = []
    with anyio.fail_after(20):
        async with Host(transports=[RecordingTcp]) as server, \
                Host(transports=[RecordingTcp]) as client:
            await server.listen("/ip4/127.0.0.1/tcp/0")
            peer = await client.connect(server.p2p_addrs()[0])
            assert len(await client.ping(peer)) == 1
    port = server.listen_addrs()[0].value_for_protocol("tcp")
    assert RecordingTcp.calls == ["listen /ip4/127.0.0.1/tcp/0",
                                  f"dial /ip4/127.0.0.1/tcp/{port}"]


async def test_an_address_no_transport_handles_is_a_dial_error():
    with anyio.fail_after(10):
        async with Host() as host:
            assert host.can_dial("/ip4/127.0.0.1/tcp/1/p2p/" + str(host.peer_id))
            assert not host.can_dial("/ip4/127.0.0.1/udp/4001")
            assert not host.can_listen("/ip4/127.0.0.1/udp/0")
            with pytest.raises(DialError, match=r"no transport \(tcp, quic\) can dial"):
                await host.connect("/ip4/127.0.0.1/udp/4001")
            with pytest.raises(DialError, match=r"no transport \(tcp, quic\) can listen on"):
                await host.listen("/ip4/127.0.0.1/udp/0")


async def test_admission_ticket_follows_the_connection():
    with anyio.fail_after(20):
        server = Host()
        adm = RecordingAdmission(ConnectionLimits(server.config, server._total_conns))
        server = Host(server.identity, admission=adm)
        async with server, Host() as client:
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await client.identify(peer)
            assert adm.log == ["admit 127.0.0.1", "progress", "handshake_done"]
            # the eviction hook lived only as long as the handshake: an up connection keeps none
            (ticket,) = adm.tickets
            assert ticket.on_evict is None
            await client.disconnect(peer)
            while "release" not in adm.log:
                await anyio.sleep(0.01)
            assert adm.log == ["admit 127.0.0.1", "progress", "handshake_done", "release"]
            inner = adm.inner
            assert (inner.pending, inner.pending_per_ip, inner.conns_per_ip) == (0, {}, {})


async def test_refused_connection_is_closed_before_any_handshake_byte():
    with anyio.fail_after(20):
        adm = RecordingAdmission(None, refuse=True)
        async with Host(admission=adm) as server:
            addr = (await server.listen())[0]
            port = int(addr.value_for_protocol("tcp"))
            async with await anyio.connect_tcp("127.0.0.1", port) as raw:
                # A dialer speaks first (multistream); the listener must not answer at all.
                await raw.send(b"\x13/multistream/1.0.0\n")
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
                    data = await raw.receive()
                    pytest.fail(f"refused connection got {data!r}")
            assert adm.log == ["admit 127.0.0.1"]
            async with Host() as client:
                with pytest.raises(DialError):
                    await client.connect(server.p2p_addrs()[0], timeout=5)
            assert server.connected_peers() == []


def test_connection_limits_policy_limits():
    """Sans-IO: the limits, their release, and the host-wide count (eviction when every
    handshake slot is taken: tests/core/test_admission.py)."""
    cfg = HostConfig(max_pending_inbound=3, max_pending_inbound_per_ip=2, max_connections_per_ip=3,
                     max_connections=10)
    open_conns = [0]
    lim = ConnectionLimits(cfg, lambda: open_conns[0])
    a1, a2 = lim.try_admit("1.1.1.1"), lim.try_admit("1.1.1.1")
    assert a1 and a2 and lim.try_admit("1.1.1.1") is None  # two handshakes per address
    b1 = lim.try_admit("2.2.2.2")
    assert b1 and lim.try_admit("2.2.2.2") is None  # three handshakes in all, none to evict for b
    a1.handshake_done()
    a1.handshake_done()  # idempotent
    a3 = lim.try_admit("1.1.1.1")
    assert a3 is not None
    a2.handshake_done()
    a3.handshake_done()
    assert lim.try_admit("1.1.1.1") is None  # three connections from that address
    a1.release()
    a1.release()
    a4 = lim.try_admit("1.1.1.1")
    assert a4 is not None
    open_conns[0] = 10
    assert lim.try_admit("4.4.4.4") is None  # the host is full
    for t in (a2, a3, a4, b1):
        t.release()
    assert (lim.pending, lim.pending_per_ip, lim.conns_per_ip) == (0, {}, {})
    assert lim.evictions == 0


def test_default_transport_checks_addresses_without_io():
    t = TcpTransport(None)  # type: ignore[arg-type]  # the checks need no context
    assert t.can_dial(Multiaddr("/ip6/::1/tcp/4001"))
    assert t.can_listen(Multiaddr("/ip4/0.0.0.0/tcp/0"))
    assert not t.can_dial(Multiaddr("/ip4/127.0.0.1/udp/1/quic-v1"))
