"""Identify and ping as services taking a host (p2p/services/), on both anyio backends."""

from __future__ import annotations

import anyio
import pytest

from p2p.config import HostConfig
from p2p.errors import NegotiationFailed
from p2p.host import Host
from p2p.peerstore import Peerstore
from p2p.protocols import identify as idp
from p2p.protocols import ping as pingp
from p2p.services.identify import IdentifyService
from p2p.services.ping import PingService

pytestmark = pytest.mark.anyio


class FakeHost:
    """Just the HostLike words the services use: registration is all that happens here."""

    def __init__(self) -> None:
        self.config = HostConfig()
        self.peerstore = Peerstore()
        self.handlers: dict[str, object] = {}
        self.listeners: list[object] = []
        self.started: list[tuple] = []

    def set_stream_handler(self, protocol, handler) -> None:
        self.handlers[protocol] = handler

    def remove_stream_handler(self, protocol) -> None:
        self.handlers.pop(protocol, None)

    def add_connection_listener(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def start_soon(self, fn, *args) -> None:
        self.started.append((fn, args))


def test_services_register_on_any_hostlike_and_unregister():
    host = FakeHost()
    ident, ping = IdentifyService(host), PingService(host)
    assert set(host.handlers) == {idp.IDENTIFY, idp.IDENTIFY_PUSH, pingp.PING}
    assert host.listeners == [ident]
    ident.connected("conn")  # a new connection: the request runs as a host task
    assert host.started == [(ident._request, ("conn",))]
    ident.stop()
    ping.stop()
    assert host.handlers == {} and host.listeners == []
    ident.start()
    ident.start()  # twice: still one listener
    assert host.listeners == [ident] and idp.IDENTIFY in host.handlers


async def test_the_host_runs_identify_and_ping_services_by_default():
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            assert isinstance(server.identify_service, IdentifyService)
            assert isinstance(server.ping_service, PingService)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            info = await client.identify(peer)
            assert sorted(info.protocols) == [idp.IDENTIFY, idp.IDENTIFY_PUSH, pingp.PING]
            assert client.peerstore.get(peer).agent_version == server.config.agent_version
            assert len(await client.ping_service.ping(peer, 2)) == 2


async def test_identify_push_updates_the_peerstore():
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await client.identify(peer)
            await server.identify(client.peer_id)
            client.set_stream_handler("/new/1.0.0", lambda s: s.aclose())
            # the client pushes its new protocol list to the server
            stream = await client.new_stream(peer, [idp.IDENTIFY_PUSH])
            conn = client.connection(peer)
            await stream.send(idp.encode_messages(client.identify_service.info_for(conn)))
            await stream.aclose()
            while "/new/1.0.0" not in server.peerstore.protocols(client.peer_id):
                await anyio.sleep(0.01)


async def test_a_stopped_ping_service_is_not_offered():
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            server.ping_service.stop()
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            info = await client.identify(peer)
            assert pingp.PING not in info.protocols
            with pytest.raises(NegotiationFailed):
                await client.ping(peer, timeout=5)
