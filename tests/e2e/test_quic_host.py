"""Hosts over QUIC v1, on both anyio backends: one host listens on TCP and QUIC at once, identify
advertises both, `connect` takes either, one connection per peer holds whichever transport came
first, the protocols run unchanged on QUIC streams, and admission is asked before a handshake."""

from __future__ import annotations

import anyio
import pytest

from p2p.admission import ConnectionLimits
from p2p.connection import MuxedConnection
from p2p.host import Host
from p2p.identity import KeyType, PrivateKey
from p2p.multistream import PROTOCOL_ID, encode_message
from p2p.protocols.echo import echo_handler, echo_roundtrip
from p2p.transport.quic import QuicConn

pytestmark = pytest.mark.anyio

TCP = "/ip4/127.0.0.1/tcp/0"
QUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
QUIC6 = "/ip6/::1/udp/0/quic-v1"


def addr_of(host: Host, kind: str) -> str:
    return next(a for a in host.p2p_addrs() if kind in a)


async def test_one_host_on_tcp_and_quic_v4_and_v6() -> None:
    with anyio.fail_after(30):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as server:
            server.set_stream_handler("/echo/1.0.0", echo_handler)
            bound = await server.listen(TCP, QUIC, QUIC6)
            assert len(bound) == 3 and all("/0/" not in str(a) for a in bound)
            for kind in ("/udp/", "/ip6/", "/tcp/"):
                async with Host() as client:
                    peer = await client.connect(addr_of(server, kind))
                    conn = client.connection(peer)
                    assert conn is not None
                    assert conn.transport == ("tcp" if kind == "/tcp/" else "quic")
                    assert isinstance(conn.muxed, MuxedConnection)
                    assert await echo_roundtrip(client, peer, b"both" * 5000) == b"both" * 5000
                    info = await client.identify(peer)
                    listen = {str(a) for a in info.multiaddrs()}
                    assert {str(a) for a in bound} <= listen  # every transport advertised
                    assert len(await client.ping(peer, 2)) == 2


async def test_one_connection_per_peer_whichever_transport_came_first() -> None:
    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            await server.listen(TCP, QUIC)
            peer = await client.connect(addr_of(server, "/quic-v1"))
            first = client.connection(peer)
            assert first is not None and first.transport == "quic"
            assert await client.connect(addr_of(server, "/tcp/")) == peer
            assert client.connection(peer) is first  # the QUIC connection is reused
            assert len(client._conns[peer]) == 1


async def test_quic_connection_close_is_seen_by_both_hosts() -> None:
    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            await server.listen(QUIC)
            peer = await client.connect(server.p2p_addrs()[0])
            await client.identify(peer)
            await client.disconnect(peer)
            with anyio.fail_after(5):
                while server.connected_peers() or client.connected_peers():
                    await anyio.sleep(0.01)
            assert not server.connected_peers()


class Recording(ConnectionLimits):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.admitted: list[str] = []

    def try_admit(self, ip: str):
        self.admitted.append(ip)
        return super().try_admit(ip)


async def test_admission_is_asked_for_quic_too() -> None:
    with anyio.fail_after(30):
        probe = Host()
        adm = Recording(probe.config, probe._total_conns)
        async with Host(probe.identity, admission=adm) as server, Host() as client:
            await server.listen(QUIC)
            peer = await client.connect(server.p2p_addrs()[0])
            await client.identify(peer)
            assert adm.admitted == ["127.0.0.1"]
            conn = server.connection(client.peer_id)
            assert conn is not None and isinstance(conn.muxed, QuicConn)


async def test_oracle_nodes_over_quic_only_membership_and_work() -> None:
    """Two oracle nodes that speak QUIC only: the membership exchange (node data over
    oracle_protocol / nodeDataSync) makes the worker eligible, then DistributeWork reaches it."""
    from oracle.handlers import handle_test
    from oracle.node import NodeConfig, OracleNode

    with anyio.fail_after(30):
        async with OracleNode(None, NodeConfig(listen=(QUIC,)), handlers={"test": handle_test}) as w:
            quic = [a for a in w.host.p2p_addrs() if "/quic-v1/" in a]
            assert quic == w.host.p2p_addrs()
            async with OracleNode(None, NodeConfig(listen=(QUIC,), peers=tuple(quic))) as r:
                assert r.workers() == [w.peer_id]
                conn = r.host.connection(w.peer_id)
                assert conn is not None and conn.transport == "quic"
                with anyio.fail_after(10):
                    while True:
                        resp = await r.submit("test", "over quic")
                        if resp.error != "no eligible workers found":  # node data still coming
                            break
                        await anyio.sleep(0.05)
                assert resp.error == "" and resp.data == "over quic"
                assert resp.worker_peer_id == str(w.peer_id)


async def test_request_then_go_close_still_reaches_the_handler() -> None:
    """masa's nodeDataSync push over QUIC, as go-libp2p sends it: one write of header, proposal and
    the data, then Close = FIN + STOP_SENDING(0) at once. Our multistream reply cannot be written
    any more; as go's listener does, the host reads on and the handler gets the whole request."""
    proto = "/masa/nodeDataSync/v0.8.4"
    got: list[bytes] = []

    async def handler(stream) -> None:
        got.append(await stream.receive_until_eof(1 << 16))

    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            server.set_stream_handler(proto, handler)
            await server.listen(QUIC)
            peer = await client.connect(server.p2p_addrs()[0])
            conn = client.connection(peer)
            assert conn is not None and isinstance(conn.muxed, QuicConn)
            quic = conn.muxed
            st = await quic.open_stream()
            await st.send(encode_message(PROTOCOL_ID) + encode_message(proto) + b'{"data":[]}\n')
            await st.send_eof()
            quic.quic.stop_stream(st.stream_id, 0)  # go's Close: no linger for the reply
            quic._kick()
            while not got:
                await anyio.sleep(0.01)
            assert got == [b'{"data":[]}\n']
