"""Entering and leaving `async with Host` (and OracleNode) in every order, on both backends: a clean
exit, the block's exception coming out as itself (never an ExceptionGroup), and the library's own
errors typed, so that `except DialError` around the block works."""

from __future__ import annotations

import socket

import anyio
import pytest

from p2p.errors import DialError, InvalidMultiaddr, ListenError, P2PError, PeerIdMismatch
from p2p.host import Host
from p2p.identity import PeerId
from p2p.protocols.echo import echo_handler, echo_roundtrip

from oracle.handlers import handle_test
from oracle.node import NodeConfig, OracleNode

pytestmark = pytest.mark.anyio

ECHO = "/echo/1.0.0"
OTHER_PEER = "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"


class Mine(Exception):
    pass


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_enter_and_leave_with_or_without_listening() -> None:
    with anyio.fail_after(20):
        async with Host():
            pass
        async with Host() as host:
            await host.listen("/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0")
        async with Host() as host:
            await host.listen()
            await host.close()  # an explicit close, then the exit
        host = Host()
        async with host:
            pass
        with pytest.raises(P2PError, match="runs once"):
            async with host:
                pass


@pytest.mark.parametrize("leave_first", ["listener", "dialer"])
async def test_leave_with_connections_and_streams_open(leave_first: str) -> None:
    server, client = Host(), Host()
    outer, inner = (client, server) if leave_first == "listener" else (server, client)
    with anyio.fail_after(30):
        async with outer, inner:  # the inner one leaves first, with everything open
            server.set_stream_handler(ECHO, echo_handler)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            assert await echo_roundtrip(client, peer, b"x" * 1000) == b"x" * 1000
            idle = await client.new_stream(peer, [ECHO])  # left open on purpose
            await idle.send(b"pending")
            assert client.connected_peers() == [server.peer_id]
        assert server.connected_peers() == [] and client.connected_peers() == []


@pytest.mark.parametrize("with_connection", [False, True])
async def test_the_blocks_exception_comes_out_as_itself(with_connection: bool) -> None:
    with anyio.fail_after(30):
        async with Host() as server:
            await server.listen()
            with pytest.raises(Mine) as caught:
                async with Host() as client:
                    await client.listen()
                    if with_connection:
                        await client.connect(server.p2p_addrs()[0])
                    raise Mine("from the block")
            assert type(caught.value) is Mine and str(caught.value) == "from the block"
        # an exception in the outer block, with the inner host long gone
        with pytest.raises(KeyError):
            async with Host() as host:
                await host.listen()
                raise KeyError("k")


async def test_cancellation_of_the_block_is_clean() -> None:
    with anyio.fail_after(20):
        async with Host() as server:
            await server.listen()
            with anyio.move_on_after(0.2) as scope:
                async with Host() as client:
                    await client.connect(server.p2p_addrs()[0])
                    await anyio.sleep_forever()
            assert scope.cancelled_caught


async def test_library_errors_are_typed_and_catchable_around_the_block() -> None:
    port = refused_port()
    with anyio.fail_after(30):
        with pytest.raises(DialError, match=f"tcp connect to 127.0.0.1:{port} failed: connection refused"):
            async with Host() as host:
                await host.connect(f"/ip4/127.0.0.1/tcp/{port}")
        async with Host() as server:
            await server.listen()
            wrong = server.p2p_addrs()[0].replace(str(server.peer_id), OTHER_PEER)
            with pytest.raises(PeerIdMismatch) as mismatch:
                async with Host() as host:
                    await host.connect(wrong)
            assert mismatch.value.actual == server.peer_id
            assert mismatch.value.expected == PeerId.from_string(OTHER_PEER)
        for bad, why in (("/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2HAm...", "invalid CID"),
                         ("/ip4/300.0.0.1/tcp/1", "300.0.0.1"), ("not a multiaddr", "bad multiaddr 'not a multiaddr'")):
            with pytest.raises(InvalidMultiaddr, match=why) as caught:
                async with Host() as host:
                    await host.connect(bad)
            assert isinstance(caught.value, ValueError) and caught.value.addr == bad
        with pytest.raises(InvalidMultiaddr):
            async with Host() as host:
                await host.listen("/ip4/127.0.0.1/tcp/x")
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(ListenError, match=f"cannot listen on /ip4/127.0.0.1/tcp/{port}: "
                                                  "address already in use"):
                async with Host() as host:
                    await host.listen(f"/ip4/127.0.0.1/tcp/{port}")


async def test_oracle_node_lifecycle() -> None:
    with anyio.fail_after(30):
        async with OracleNode(handlers={"test": handle_test}) as worker:
            config = NodeConfig(peers=(worker.host.p2p_addrs()[0],))
            with pytest.raises(Mine):
                async with OracleNode(config=config) as requester:
                    response = await requester.submit("test", b"data")
                    assert response.error == "" and response.worker_peer_id == str(worker.peer_id)
                    raise Mine()
        async with OracleNode():
            pass
        with pytest.raises(InvalidMultiaddr):
            async with OracleNode(config=NodeConfig(listen=("/ip4/1.2.3/tcp/0",))):
                pass
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(ListenError):
                async with OracleNode(config=NodeConfig(listen=(f"/ip4/127.0.0.1/tcp/{port}",))):
                    pass


@pytest.mark.parametrize("leave_first", ["listener", "dialer"])
async def test_leave_with_quic_connections_open(leave_first: str) -> None:
    """A QUIC socket whose last connection ends while the host closes cleans up without an error."""
    from p2p.transport.quic import QuicTransport
    from p2p.transport.tcp import TcpTransport

    transports = (TcpTransport, QuicTransport)
    server, client = Host(transports=transports), Host(transports=transports)
    outer, inner = (client, server) if leave_first == "listener" else (server, client)
    with anyio.fail_after(30):
        async with outer, inner:
            server.set_stream_handler(ECHO, echo_handler)
            await server.listen("/ip4/127.0.0.1/udp/0/quic-v1")
            peer = await client.connect(server.p2p_addrs()[0])
            assert await echo_roundtrip(client, peer, b"q" * 100) == b"q" * 100
        assert server.connected_peers() == [] and client.connected_peers() == []
