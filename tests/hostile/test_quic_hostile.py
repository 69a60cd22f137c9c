"""Hostile QUIC peers against our QUIC listener (in-process, asyncio).

Attackers are our own QUIC dialler with a lying configuration (a certificate go would refuse, no
certificate, another ALPN, a stream limit it ignores) or raw UDP datagrams. Each attack must be
refused inside the handshake (CRYPTO_ERROR, before any stream data), or with the QUIC error go
uses, holding bounded state, while an honest dialler still gets through.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import pytest
from aioquic.buffer import Buffer
from aioquic.quic.packet import QuicProtocolVersion
from kit import net_probe
from quic_context import QuicTestContext

from p2p.errors import DialError
from p2p.identity import KeyType, PrivateKey
from p2p.security.tls_cert import (
    TlsIdentity,
    decode_signed_key,
    encode_signed_key,
    make_certificate,
    signed_key_extension,
)
from p2p.transport.quic import QuicConn, QuicStream, QuicTransport, parse_quic_multiaddr
from p2p.transport.quic_core import QuicLimits, make_configuration

pytestmark = pytest.mark.anyio

CRYPTO_ERROR = 0x100
BAD_CERTIFICATE = CRYPTO_ERROR + 42
CERTIFICATE_REQUIRED = CRYPTO_ERROR + 116
STREAM_LIMIT_ERROR = 0x4


@dataclass
class Target:
    transport: QuicTransport
    addr: str
    accepted: list[QuicConn] = field(default_factory=list)
    streams: list[QuicStream] = field(default_factory=list)


@asynccontextmanager
async def target(config: Any = None) -> AsyncIterator[tuple[Target, Callable[[], QuicTransport]]]:
    """Our listener (streams are taken and never read) and a factory of dialling transports."""
    async with anyio.create_task_group() as tg:
        server = QuicTransport(QuicTestContext(PrivateKey.generate(KeyType.Ed25519), tg.start_soon, config))
        made: list[QuicTransport] = [server]
        t = Target(server, "")

        async def on_connection(conn: QuicConn) -> None:
            t.accepted.append(conn)
            conn.set_stream_handler(t.streams.append)
            await conn.run()

        listener = await server.listen("/ip4/127.0.0.1/udp/0/quic-v1", on_connection)
        t.addr = f"{listener.addrs[0]}/p2p/{server.local_peer}"

        def dialler() -> QuicTransport:
            d = QuicTransport(QuicTestContext(PrivateKey.generate(KeyType.Ed25519), tg.start_soon))
            made.append(d)
            return d

        try:
            yield t, dialler
        finally:
            for tr in made:
                await tr.aclose()
            tg.cancel_scope.cancel()


async def refused_with(attacker: QuicTransport, addr: str) -> int | None:
    """Dial; return the QUIC close code the attacker's connection ended with."""
    try:
        conn = await attacker.dial(addr, None, 5)
    except DialError as exc:
        text = str(exc)
        assert "code 0x" in text, text
        return int(text.split("code 0x", 1)[1].split(")")[0].split(",")[0], 16)
    with anyio.fail_after(5):  # the client's handshake ended first; the server's refusal follows
        while not conn.is_closed:
            await anyio.sleep(0.01)
    return conn.close_code


def lying_identity(identity: PrivateKey, case: str) -> TlsIdentity:
    now = datetime.datetime.now(datetime.timezone.utc)
    if case == "no extension":
        return make_certificate(identity, with_extension=False)
    if case == "expired":
        return make_certificate(identity, not_before=now - datetime.timedelta(days=2),
                                not_after=now - datetime.timedelta(days=1))
    if case == "wrong signature":
        from cryptography.hazmat.primitives.asymmetric import ec
        key = ec.generate_private_key(ec.SECP256R1())
        other = PrivateKey.generate()
        sig = decode_signed_key(signed_key_extension(other, key.public_key()))[1]
        ext = encode_signed_key(identity.public_key.to_protobuf(), sig)
        return make_certificate(identity, cert_key=key, extension_value=ext)
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["no extension", "expired", "wrong signature"])
async def test_bad_client_certificate_refused_in_handshake(case: str) -> None:
    with anyio.fail_after(30):
        async with target() as (t, dialler):
            attacker = dialler()
            attacker.client_configuration = make_configuration(
                lying_identity(attacker.identity, case), is_client=True)
            assert await refused_with(attacker, t.addr) == BAD_CERTIFICATE
            assert t.accepted == [] and t.streams == []
            honest = await dialler().dial(t.addr, None, 5)
            assert honest.remote_peer == t.transport.local_peer


async def test_client_without_certificate_refused() -> None:
    with anyio.fail_after(30):
        async with target() as (t, dialler):
            attacker = dialler()
            conf = make_configuration(attacker.tls_identity, is_client=True)
            conf.certificate = None
            conf.private_key = None
            attacker.client_configuration = conf
            assert await refused_with(attacker, t.addr) == CERTIFICATE_REQUIRED
            assert t.accepted == []


async def test_chain_of_two_certificates_refused() -> None:
    with anyio.fail_after(30):
        async with target() as (t, dialler):
            attacker = dialler()
            conf = make_configuration(attacker.tls_identity, is_client=True)
            conf.certificate_chain = [make_certificate(attacker.identity).certificate]
            attacker.client_configuration = conf
            assert await refused_with(attacker, t.addr) == BAD_CERTIFICATE
            assert t.accepted == []


async def test_wrong_alpn_refused() -> None:
    with anyio.fail_after(30):
        async with target() as (t, dialler):
            attacker = dialler()
            conf = make_configuration(attacker.tls_identity, is_client=True)
            conf.alpn_protocols = ["h3"]
            attacker.client_configuration = conf
            code = await refused_with(attacker, t.addr)
            assert code is not None and CRYPTO_ERROR <= code < CRYPTO_ERROR + 256
            assert t.accepted == []


def junk_initial(dcid: bytes) -> bytes:
    """A long-header Initial of QUIC v1 with a random payload (undecryptable), padded to 1200."""
    buf = Buffer(capacity=1300)
    buf.push_uint8(0xC3)  # long header, fixed bit, Initial, 4-byte packet number
    buf.push_uint32(QuicProtocolVersion.VERSION_1)
    buf.push_uint8(len(dcid))
    buf.push_bytes(dcid)
    buf.push_uint8(8)
    buf.push_bytes(os.urandom(8))
    buf.push_uint_var(0)  # token length
    payload = os.urandom(1200 - buf.tell() - 2)
    buf.push_uint16(0x4000 | len(payload))
    buf.push_bytes(payload)
    return buf.data


async def test_initial_flood_from_many_ports_keeps_no_state() -> None:
    with anyio.fail_after(60):
        async with target() as (t, dialler):
            host, port, _ = parse_quic_multiaddr(t.addr)
            socks = [await anyio.create_udp_socket(local_host="127.0.0.1") for _ in range(100)]
            for _round in range(3):
                for sock in socks:
                    await sock.sendto(junk_initial(os.urandom(8)), host, port)
            endpoint = t.transport._endpoints[0]
            honest = await dialler().dial(t.addr, None, 5)  # served despite the flood
            assert honest.remote_peer == t.transport.local_peer
            with anyio.fail_after(5):  # the listener finishes its side of the handshake
                while not t.accepted:
                    await anyio.sleep(0.01)
            # no connection state left behind by the junk: only the honest connection lives
            assert len(endpoint._live) == 1 and t.transport.admission.pending == 0
            for sock in socks:
                await sock.aclose()


async def test_handshake_flood_is_bounded_per_address() -> None:
    """Real ClientHellos from many ports of 127.0.0.2 that never finish: at most the per-address
    handshake slots hold state, and a dialler from 127.0.0.1 is still served."""
    from p2p.transport.quic_core import Libp2pQuicConnection
    with anyio.fail_after(60):
        async with target() as (t, dialler):
            host, port, _ = parse_quic_multiaddr(t.addr)
            hello_conf = make_configuration(make_certificate(PrivateKey.generate()), is_client=True)
            socks = []
            for _ in range(40):
                sock = await anyio.create_udp_socket(local_host="127.0.0.2")
                quic = Libp2pQuicConnection(configuration=hello_conf)
                quic.connect((host, port), anyio.current_time())
                for data, _addr in quic.datagrams_to_send(anyio.current_time()):
                    await sock.sendto(data, host, port)
                socks.append(sock)
            await anyio.sleep(0.2)
            admission = t.transport.admission
            per_ip = admission.config.max_pending_inbound_per_ip
            assert admission.pending == admission.pending_per_ip["127.0.0.2"] == per_ip
            honest = await dialler().dial(t.addr, None, 5)
            assert honest.remote_peer == t.transport.local_peer
            for sock in socks:
                await sock.aclose()
            # the half-open handshakes time out (go's 5 s handshake idle timeout)
            with anyio.fail_after(QuicLimits.handshake_idle_timeout + 5):
                while admission.pending:
                    await anyio.sleep(0.1)


async def test_full_handshake_slots_evict_for_a_new_address() -> None:
    """Every pending slot (4) held by stalled ClientHellos from 127.0.0.2: a dialler from
    127.0.0.1 still connects at once, the oldest stalled handshake is closed with a transport
    CONNECTION_CLOSE (CONNECTION_REFUSED, "evicted") its sender reads, and undecryptable Initials
    from a third address evict nothing."""
    from p2p.config import HostConfig
    from p2p.transport.quic import EVICTED_ERROR, EVICTED_REASON
    from p2p.transport.quic_core import Libp2pQuicConnection
    config = HostConfig(max_pending_inbound=4, max_pending_inbound_per_ip=4)
    with anyio.fail_after(30):
        async with target(config) as (t, dialler):
            host, port, _ = parse_quic_multiaddr(t.addr)
            admission = t.transport.admission
            hello_conf = make_configuration(make_certificate(PrivateKey.generate()), is_client=True)
            sock = await anyio.create_udp_socket(local_host="127.0.0.2")
            stalled = {}
            for _ in range(4):
                quic = Libp2pQuicConnection(configuration=hello_conf)
                quic.connect((host, port), anyio.current_time())
                for data, _addr in quic.datagrams_to_send(anyio.current_time()):
                    await sock.sendto(data, host, port)
                stalled[quic.host_cid] = quic
            with anyio.fail_after(5):
                while admission.pending < 4:
                    await anyio.sleep(0.01)
            junk = await anyio.create_udp_socket(local_host="127.0.0.3")
            for _ in range(10):
                await junk.sendto(junk_initial(os.urandom(8)), host, port)
            await anyio.sleep(0.1)
            assert admission.evictions == 0 and admission.pending_per_ip == {"127.0.0.2": 4}
            dialled: list[QuicConn] = []

            async def dial() -> None:
                dialled.append(await dialler().dial(t.addr, None, 5))

            # at once: within 1 s net of this loop's waits for a CPU (both ends run on it)
            await net_probe(dial, None)
            honest = dialled[0]
            assert honest.remote_peer == t.transport.local_peer
            assert admission.evictions == 1
            closes = []
            with anyio.fail_after(5):  # the evicted handshake's CONNECTION_CLOSE reaches its sender
                while not closes:
                    data, _addr = await sock.receive()
                    from aioquic.quic.packet import pull_quic_header
                    cid = pull_quic_header(Buffer(data=data), host_cid_length=8).destination_cid
                    quic = stalled[cid]
                    quic.receive_datagram(data, (host, port), anyio.current_time())
                    if quic._close_event is not None:  # (its event waits for the drain timer)
                        closes.append(quic._close_event)
            assert (closes[0].error_code, closes[0].reason_phrase) == (EVICTED_ERROR, EVICTED_REASON)
            assert admission.pending_per_ip["127.0.0.2"] == 3
            await sock.aclose()
            await junk.aclose()


async def test_stream_flood_beyond_the_limit_closes_the_connection() -> None:
    with anyio.fail_after(30):
        async with target() as (t, dialler):
            conn = await dialler().dial(t.addr, None, 5)
            conn.quic._remote_max_streams_bidi = 10_000  # ignore the 256 the listener allows
            for _ in range(QuicLimits.max_incoming_streams + 20):
                st = await conn.open_stream(timeout=1)
                await st.send(b"x")
            with anyio.fail_after(5):
                while not conn.is_closed:
                    await anyio.sleep(0.01)
            assert conn.close_code == STREAM_LIMIT_ERROR
            assert len(t.streams) <= QuicLimits.max_incoming_streams


async def test_unread_streams_buffer_at_most_the_connection_window() -> None:
    """32 streams push 256 KiB each at a listener that reads nothing: it buffers what its
    connection window allows (768 KiB, go's initial value), no more, and the pushers wait."""
    with anyio.fail_after(60):
        async with target() as (t, dialler):
            conn = await dialler().dial(t.addr, None, 5)
            chunk = os.urandom(64 * 1024)
            for _ in range(32):
                st = await conn.open_stream()
                for _ in range(4):
                    await st.send(chunk)
            last, stable_since = -1, anyio.current_time()
            while anyio.current_time() - stable_since < 0.5:  # until nothing more arrives
                await anyio.sleep(0.05)
                buffered = sum(st._recv.size for st in t.streams)
                if buffered != last:
                    last, stable_since = buffered, anyio.current_time()
            assert t.accepted and not conn.is_closed
            assert QuicLimits.connection_window // 2 <= last <= QuicLimits.connection_window
