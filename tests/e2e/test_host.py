"""Two Hosts over loopback TCP, on both anyio backends: the whole stack end to end."""

from __future__ import annotations

import dataclasses
import os

import anyio
import pytest

from p2p.protocols.echo import echo_handler, echo_roundtrip
from p2p.config import HostConfig
from p2p.errors import DialError, NegotiationFailed, P2PError, PeerIdMismatch, StreamReset
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey

pytestmark = pytest.mark.anyio

ECHO = "/echo/1.0.0"


@pytest.fixture
def key_types():
    return [KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA, KeyType.RSA]


async def test_connect_echo_identify_ping():
    with anyio.fail_after(30):
        async with Host() as server, Host(PrivateKey.generate(KeyType.Secp256k1)) as client:
            server.set_stream_handler(ECHO, echo_handler)
            addrs = await server.listen("/ip4/127.0.0.1/tcp/0")
            assert addrs[0].value_for_protocol("tcp") != "0"  # a real port was assigned
            peer = await client.connect(server.p2p_addrs()[0])
            assert peer == server.peer_id
            payload = os.urandom(1 << 20)
            assert await echo_roundtrip(client, peer, payload) == payload
            info = await client.identify(peer)
            assert ECHO in info.protocols and "/ipfs/ping/1.0.0" in info.protocols
            assert ECHO in client.peerstore.protocols(peer)
            assert str(info.observed_multiaddr()).startswith("/ip4/127.0.0.1/tcp/")
            # the server identified the client too (identify runs on every new connection)
            sinfo = await server.identify(client.peer_id)
            assert sinfo.public_key == client.identity.public_key.to_protobuf()
            rtts = await client.ping(peer, 3)
            assert len(rtts) == 3 and all(0 < r < 5 for r in rtts)
            # one connection per peer is reused
            assert await client.connect(server.p2p_addrs()[0]) == peer
            assert len(client._conns[peer]) == 1


@pytest.mark.parametrize("early", [True, False])
@pytest.mark.parametrize("kt", list(KeyType))
async def test_key_types_and_muxer_negotiation(kt, early):
    cfg = HostConfig(early_muxer_negotiation=early)
    with anyio.fail_after(60):
        async with Host(PrivateKey.generate(kt), cfg) as server, Host(
            PrivateKey.generate(kt), cfg
        ) as client:
            server.set_stream_handler(ECHO, echo_handler)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            conn = client.connection(peer)
            assert conn is not None and conn.muxed.early_muxer is early
            assert await echo_roundtrip(client, peer, b"hello" * 1000) == b"hello" * 1000


async def test_concurrent_streams():
    with anyio.fail_after(60):
        async with Host() as server, Host() as client:
            server.set_stream_handler(ECHO, echo_handler)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            payloads = [os.urandom(256 * 1024) for _ in range(32)]
            results: list[bytes | None] = [None] * 32

            async def one(i: int) -> None:
                results[i] = await echo_roundtrip(client, peer, payloads[i])

            async with anyio.create_task_group() as tg:
                for i in range(32):
                    tg.start_soon(one, i)
            assert results == payloads


async def test_lazy_negotiation_after_identify():
    """After identify, new_stream is lazy: the proposal travels with the first write."""
    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            server.set_stream_handler(ECHO, echo_handler)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await client.identify(peer)
            stream = await client.new_stream(peer, [ECHO], timeout=0.5)
            assert stream.negotiating  # the proposal waits for the first write
            # the replies come with the answer: the short open timeout does not bound them
            assert stream.timeout == client.config.negotiation_timeout
            await stream.send(b"ping")
            await stream.send_eof()
            assert await stream.receive_until_eof(100) == b"ping"


@pytest.mark.parametrize("lazy", [True, False])
async def test_read_deadline_on_a_host_stream(lazy):
    """An application's read deadline bounds waiting for data (on a lazy stream it bounds the
    negotiation replies' wait too); lifted, the stream waits as long as it takes."""
    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            go_on = anyio.Event()

            async def slow(stream) -> None:
                await stream.receive(10)
                await go_on.wait()
                await stream.send(b"late")
                await stream.aclose()

            server.set_stream_handler("/slow/1.0.0", slow)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            if lazy:
                await client.identify(peer)
            stream = await client.new_stream(peer, ["/slow/1.0.0"])
            assert stream.negotiating == lazy
            start = anyio.current_time()
            assert stream.set_read_deadline(start + 0.2)
            await stream.send(b"x")
            with pytest.raises(TimeoutError):
                await stream.receive(10)
            assert 0.2 <= anyio.current_time() - start < 5
            stream.set_read_deadline(None)
            go_on.set()
            assert await stream.receive(10) == b"late"


async def test_unsupported_protocol_fails_cleanly():
    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            with pytest.raises(NegotiationFailed):
                await client.new_stream(peer, ["/nope/1.0.0", "/nope/2.0.0"])
            # the connection is still fine
            assert len(await client.ping(peer)) == 1


async def test_half_close_and_reset_both_ways():
    got = {}
    done = anyio.Event()
    reading = anyio.Event()

    async def halfclose(stream) -> None:
        data = await stream.receive_until_eof(1 << 20)  # client half-closed
        await stream.send(f"got {len(data)} bytes".encode())
        await stream.aclose()

    async def resetter(stream) -> None:
        await stream.receive(10)
        await stream.reset()

    async def reset_victim(stream) -> None:
        try:
            while True:
                await stream.receive(100)
                reading.set()
        except StreamReset as exc:
            got["remote_reset"] = exc.remote
        except P2PError as exc:
            got["other"] = exc
        done.set()

    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            server.set_stream_handler("/halfclose", halfclose)
            server.set_stream_handler("/reset", resetter)
            server.set_stream_handler("/victim", reset_victim)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            s = await client.new_stream(peer, ["/halfclose"])
            await s.send(b"x" * 5000)
            await s.send_eof()
            assert await s.receive_until_eof(100) == b"got 5000 bytes"
            # the server resets: our read fails with a remote reset
            s = await client.new_stream(peer, ["/reset"])
            await s.send(b"hi")
            with pytest.raises(StreamReset):
                while True:
                    await s.receive(100)
            # we reset: the server's handler sees a remote reset
            s = await client.new_stream(peer, ["/victim"])
            await s.send(b"hi")
            # SYN, data and RST written at once would reach the server together, and a RST drops
            # unread data (as in go-yamux): reset once the handler is reading.
            await reading.wait()
            await s.reset()
            await done.wait()
            assert got == {"remote_reset": True}


async def test_peer_id_mismatch_refused():
    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            await server.listen()
            other = PeerId.from_public_key(PrivateKey.generate().public_key)
            addr = f"{server.listen_addrs()[0]}/p2p/{other}"
            with pytest.raises(PeerIdMismatch) as info:
                await client.connect(addr)
            assert info.value.expected == other and info.value.actual == server.peer_id
            assert client.connected_peers() == []


async def test_dial_refused_and_timeout():
    with anyio.fail_after(30):
        async with Host() as client:
            # a port nobody listens on: bind then close to get one
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            await listener.aclose()
            with pytest.raises(DialError):
                await client.connect(f"/ip4/127.0.0.1/tcp/{port}")
            # a listener that never speaks: the dial times out with a DialError
            async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as silent:
                port = silent.extra(anyio.abc.SocketAttribute.local_port)
                cfg = dataclasses.replace(client.config, negotiation_timeout=0.5)
                client.config = cfg
                with pytest.raises(DialError):
                    await client.connect(f"/ip4/127.0.0.1/tcp/{port}", timeout=1.0)


async def test_ipv6_loopback():
    if not os.path.exists("/proc/net/if_inet6"):
        pytest.fail("this machine has no IPv6 support at all")
    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            server.set_stream_handler(ECHO, echo_handler)
            addrs = await server.listen("/ip6/::1/tcp/0")
            assert str(addrs[0]).startswith("/ip6/::1/tcp/")
            peer = await client.connect(server.p2p_addrs()[0])
            assert await echo_roundtrip(client, peer, b"six") == b"six"


async def test_close_is_clean_and_peer_notices():
    with anyio.fail_after(30):
        async with Host() as server:
            await server.listen()
            async with Host() as client:
                peer = await client.connect(server.p2p_addrs()[0])
                await client.identify(peer)
            # client is gone: the server's connection ends soon after
            with anyio.fail_after(5):
                while server.connected_peers():
                    await anyio.sleep(0.01)
