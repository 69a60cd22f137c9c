"""Connection events and host tasks for services (p2p/events.py, Host.add_connection_listener,
Host.start_soon), on both anyio backends; `protocols_updated` when a peer starts or stops serving
a protocol after its first identify (its identify push)."""

from __future__ import annotations

import logging

import anyio
import pytest

from p2p.errors import P2PError
from p2p.events import ConnectionListener, ConnectionListenerBase
from p2p.host import Host
from p2p.hostapi import HostLike

pytestmark = pytest.mark.anyio


class Recorder(ConnectionListenerBase):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.infos: list[object] = []
        self.updates: list[tuple[list[str], list[str]]] = []
        self.changed = anyio.Event()

    def _note(self, name: str, conn) -> None:
        self.events.append((name, conn.remote_peer))
        self.changed.set()
        self.changed = anyio.Event()

    def connected(self, conn) -> None:
        self._note("connected", conn)

    def identified(self, conn) -> None:
        self.infos.append(conn.identify_info)
        self._note("identified", conn)

    def protocols_updated(self, conn, added, removed) -> None:
        # noted, not asserted: the host logs and swallows what a listener raises
        self.updates.append((sorted(added), sorted(removed)))
        self._note("protocols_updated" if conn.identified.is_set() and not conn.is_closed
                   else "protocols_updated too early or late", conn)

    def disconnected(self, conn) -> None:
        assert conn.is_closed
        self._note("disconnected", conn)

    async def wait_for(self, count: int) -> None:
        while len(self.events) < count:
            await self.changed.wait()


async def test_connected_identified_disconnected_in_order_on_both_sides():
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            srec, crec = Recorder(), Recorder()
            server.add_connection_listener(srec)
            client.add_connection_listener(crec)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await crec.wait_for(2)
            await srec.wait_for(2)
            assert crec.events == [("connected", peer), ("identified", peer)]
            assert srec.events == [("connected", client.peer_id), ("identified", client.peer_id)]
            assert crec.infos[0] is not None and "/ipfs/ping/1.0.0" in crec.infos[0].protocols
            await client.disconnect(peer)
            await crec.wait_for(3)
            await srec.wait_for(3)
            assert crec.events[2] == ("disconnected", peer)
            assert srec.events[2] == ("disconnected", client.peer_id)


async def _noop(stream) -> None:
    pass


async def test_protocols_updated_when_the_peer_serves_more_or_less_after_identify():
    """The server registers handlers after the client identified it: its identify push (one for
    the handlers registered in one turn) gives the client one event with what was added; taking
    one away gives one with what was removed; registering an existing one again pushes nothing."""
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            rec = Recorder()
            client.add_connection_listener(rec)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await rec.wait_for(2)
            assert "/late/a" not in rec.infos[0].protocols
            for proto in ("/late/a", "/late/b", "/late/c"):
                server.set_stream_handler(proto, _noop)
            await rec.wait_for(3)
            assert rec.events[2] == ("protocols_updated", peer)
            assert rec.updates == [(["/late/a", "/late/b", "/late/c"], [])]
            assert {"/late/a", "/late/b", "/late/c"} <= client.peerstore.protocols(peer)
            server.set_stream_handler("/late/a", _noop)  # not new: no push
            server.remove_stream_handler("/late/b")
            await rec.wait_for(4)
            assert rec.updates[1:] == [([], ["/late/b"])]
            await client.disconnect(peer)
            await rec.wait_for(5)
            assert [e for e, _ in rec.events] == ["connected", "identified", "protocols_updated",
                                                  "protocols_updated", "disconnected"]


async def test_a_push_before_identify_ended_is_in_the_peerstore_when_identified_fires():
    """No `protocols_updated` before `identified`: the server's identify answer is held back
    while it registers a handler and pushes; the client stores the push, then the answer."""
    release = anyio.Event()
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            serve = server.identify_service.serve_identify

            async def held_identify(stream) -> None:
                await release.wait()
                await serve(stream)

            server.set_stream_handler("/ipfs/id/1.0.0", held_identify)
            rec = Recorder()
            client.add_connection_listener(rec)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await rec.wait_for(1)
            while client.peer_id not in server.connected_peers():
                await anyio.sleep(0.01)
            server.set_stream_handler("/late/a", _noop)  # pushed: the client is not identified yet
            while "/late/a" not in client.peerstore.protocols(peer):
                await anyio.sleep(0.01)
            assert rec.events == [("connected", peer)]
            release.set()
            await rec.wait_for(2)
            assert rec.events[1] == ("identified", peer) and rec.updates == []
            assert "/late/a" in client.peerstore.protocols(peer)


async def test_identified_fires_with_no_info_when_identify_fails():
    """A peer that serves no identify: `identified` still comes, with identify_info None."""
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            server.remove_stream_handler("/ipfs/id/1.0.0")
            rec = Recorder()
            client.add_connection_listener(rec)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await rec.wait_for(2)
            assert rec.events == [("connected", peer), ("identified", peer)]
            assert rec.infos == [None]


async def test_raising_and_partial_listeners_do_not_hurt_the_connection(caplog):
    class Faulty:  # only two of the three methods, both raising
        def connected(self, conn) -> None:
            raise RuntimeError("boom in connected")

        def disconnected(self, conn) -> None:
            raise RuntimeError("boom in disconnected")

    caplog.set_level(logging.ERROR, logger="p2p.host")
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            client.add_connection_listener(Faulty())
            rec = Recorder()
            client.add_connection_listener(rec)  # registered after the faulty one: still called
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            assert len(await client.ping(peer, 2)) == 2
            await client.disconnect(peer)
            await rec.wait_for(3)
            assert [e for e, _ in rec.events] == ["connected", "identified", "disconnected"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("raised in connected" in m for m in messages)
    assert any("raised in disconnected" in m for m in messages)


async def test_unsubscribe_stops_events():
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            rec = Recorder()
            unsubscribe = client.add_connection_listener(rec)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await rec.wait_for(2)
            unsubscribe()
            unsubscribe()  # twice is harmless
            await client.disconnect(peer)
            while server.connected_peers():
                await anyio.sleep(0.01)
            assert [e for e, _ in rec.events] == ["connected", "identified"]


async def test_a_service_reacts_with_io_through_start_soon():
    """The intended shape: a listener starts a task that talks to the new peer."""

    class PingOnConnect(ConnectionListenerBase):
        def __init__(self, host: HostLike) -> None:
            self.host = host
            self.rtts: list[float] = []
            self.done = anyio.Event()
            host.add_connection_listener(self)

        def connected(self, conn) -> None:
            self.host.start_soon(self._ping, conn.remote_peer)

        async def _ping(self, peer) -> None:
            self.rtts = await self.host.ping(peer, 1)
            self.done.set()

    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            service = PingOnConnect(client)
            assert isinstance(service, ConnectionListener)
            await server.listen()
            await client.connect(server.p2p_addrs()[0])
            await service.done.wait()
            assert len(service.rtts) == 1 and service.rtts[0] > 0


async def test_start_soon_logs_failures_and_is_a_noop_after_close(caplog):
    caplog.set_level(logging.ERROR, logger="p2p.host")
    ran: list[str] = []

    async def fails() -> None:
        ran.append("fails")
        raise ValueError("service bug")

    async def records(tag: str) -> None:
        ran.append(tag)

    host = Host()
    with pytest.raises(P2PError):
        host.start_soon(records, "before")
    with anyio.fail_after(10):
        async with host:
            host.start_soon(fails)
            host.start_soon(records, "during")
            while len(ran) < 2:
                await anyio.sleep(0.01)
            await host.close()
            host.start_soon(records, "after close")
            await anyio.sleep(0.05)
    assert sorted(ran) == ["during", "fails"]
    assert any("failed" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_start_soon_tasks_are_cancelled_when_the_host_exits():
    cancelled = anyio.Event()
    started = anyio.Event()

    async def forever() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(10):
        async with Host() as host:
            host.start_soon(forever)
            await started.wait()
        assert cancelled.is_set()


def test_host_is_a_hostlike():
    host: HostLike = Host()  # checked structurally by mypy; here: every name is there
    for name in ("peer_id", "identity", "peerstore", "config", "set_stream_handler",
                 "remove_stream_handler", "new_stream", "connection", "connected_peers",
                 "add_connection_listener", "start_soon", "listen_addrs", "p2p_addrs", "protocols",
                 "set_identified", "report_protocols_updated"):
        assert hasattr(host, name), name
