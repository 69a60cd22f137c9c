"""Tracing a QUIC connection (both backends): datagrams with their packet types, the TLS-proved
peer, and each QUIC stream dissected like a yamux stream."""

from __future__ import annotations

import anyio
import pytest
from quic_context import QuicTestContext

from p2p.identity import KeyType, PrivateKey
from p2p.negotiate import handle_protocol, select_protocol
from p2p.streams import BufferedStream
from p2p.trace import Tracer
from p2p.trace.quic import packet_kind
from p2p.transport.quic import LOOPBACK_DATAGRAM, QuicConn, QuicTransport

pytestmark = pytest.mark.anyio


def find(records, **match):
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def test_packet_kind_from_the_first_byte():
    # RFC 9000 17.2: long header (0x80) with the fixed bit (0x40), type in bits 4-5
    assert [packet_kind(b) for b in (0xC3, 0xD0, 0xE1, 0xF0, 0x43)] == [
        "initial", "0rtt", "handshake", "retry", "1rtt"]


async def exchange(client_tracer=None) -> QuicConn:
    async with anyio.create_task_group() as tg:
        server_t = QuicTransport(QuicTestContext(PrivateKey.generate(KeyType.Secp256k1),
                                                 tg.start_soon))
        client_t = QuicTransport(QuicTestContext(PrivateKey.generate(KeyType.Ed25519),
                                                 tg.start_soon, tracer=client_tracer))

        async def echo(stream) -> None:
            buffered = BufferedStream(stream)
            await handle_protocol(buffered, ["/echo/1.0.0"], timeout=10)
            await buffered.send(await buffered.receive(100))
            await buffered.send_eof()

        async def on_connection(conn) -> None:
            conn.set_stream_handler(lambda st: tg.start_soon(echo, st))
            await conn.run()

        listener = await server_t.listen("/ip4/127.0.0.1/udp/0/quic-v1", on_connection)
        with anyio.fail_after(20):
            conn = await client_t.dial(f"{listener.addrs[0]}/p2p/{server_t.local_peer}", None, 10)
            tg.start_soon(conn.run)
            stream = BufferedStream(await conn.open_stream())
            await select_protocol(stream, ["/echo/1.0.0"], timeout=10)
            await stream.send(b"hello quic")
            await stream.send_eof()
            assert await stream.receive_until_eof(100) == b"hello quic"
            await conn.close()
        await server_t.aclose()
        await client_t.aclose()
        tg.cancel_scope.cancel()
    return conn


async def test_a_traced_quic_dial():
    tracer = Tracer()
    conn = await exchange(tracer)
    assert type(conn).__name__ == "TracedQuicConn"
    records = tracer.records
    assert (records[0]["layer"], records[0]["event"], records[0]["direction"]) == (
        "quic", "open", "outbound")
    datagrams = find(records, layer="quic", event="datagram")
    kinds = {(d["dir"], d["packet"]) for d in datagrams}
    assert ("out", "initial") in kinds and ("in", "initial") in kinds and ("out", "1rtt") in kinds
    assert all(d["length"] <= LOOPBACK_DATAGRAM for d in datagrams)  # a loopback dial's size
    (done,) = find(records, layer="quic", event="handshake_complete")
    assert done["alpn"] == "libp2p" and done["identity_key_type"] == "Secp256k1"
    assert done["remote_peer"].startswith("16Uiu2HA")
    ms = find(records, layer="multistream", stream=0, event="message")
    assert [(r["dir"], r["kind"]) for r in ms] == [
        ("out", "header"), ("out", "proposal"), ("in", "header"), ("in", "accept")]
    data = find(records, layer="app", stream=0)
    assert [(r["dir"], r["hex"]) for r in data] == [("out", b"hello quic".hex()),
                                                    ("in", b"hello quic".hex())]
    assert find(records, layer="quic", event="close")
    assert not find(records, layer="tcp") and not find(records, layer="noise")


async def test_untraced_quic_connections_are_the_plain_class():
    conn = await exchange(None)
    assert type(conn) is QuicConn
