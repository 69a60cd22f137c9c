"""Larger QUIC datagrams on a path known to carry them (Libp2pQuicConnection.set_datagram_size).

Sans-IO, two connections in memory: the size moves only after the handshake, never past the
peer's max_udp_payload_size (quic-go says 1452) nor aioquic's 16 KiB frame bound, and a stream
moved in large datagrams arrives whole, in about size/16 KiB datagrams.
"""

from __future__ import annotations

import os

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.packet import (pull_quic_header, pull_quic_transport_parameters,
                                 push_quic_transport_parameters)

from quic_memory import MSS, pair, transfer

from p2p.identity import PrivateKey
from p2p.security.tls_cert import make_certificate
from p2p.transport.quic_core import (MAX_DATAGRAM_SIZE, Libp2pQuicConnection,
                                     make_configuration)


class _Says1452(Libp2pQuicConnection):
    """A peer advertising max_udp_payload_size 1452, as quic-go does."""

    def _serialize_transport_parameters(self) -> bytes:
        params = pull_quic_transport_parameters(Buffer(data=super()._serialize_transport_parameters()))
        params.max_udp_payload_size = 1452
        buf = Buffer(capacity=4096)
        push_quic_transport_parameters(buf, params)
        return bytes(buf.data)


def test_not_before_the_handshake() -> None:
    conn = Libp2pQuicConnection(configuration=make_configuration(
        make_certificate(PrivateKey.generate()), is_client=True))
    assert conn.set_datagram_size(16384) == MSS
    assert conn.datagram_size == MSS


def test_bounded_by_the_peer_and_by_aioquic_frames() -> None:
    client, server = pair()
    assert client.peer_max_udp_payload == 65527  # aioquic sends none: the RFC's default
    assert client.set_datagram_size(60000) == MAX_DATAGRAM_SIZE
    assert client._loss.congestion_window >= 10 * MAX_DATAGRAM_SIZE
    assert client.set_datagram_size(500) == MSS  # never below QUIC's 1200
    client, server = pair(server_class=_Says1452)
    assert client.peer_max_udp_payload == 1452
    assert client.set_datagram_size(16384) == 1452
    assert client.datagram_size == 1452
    # in slow start the window holds at least the initial 10 datagrams; the pacer counts in them
    assert client._loss.congestion_window >= 10 * 1452
    assert client._loss._pacer._max_datagram_size == 1452


def test_a_stream_in_large_datagrams_arrives_whole() -> None:
    payload = os.urandom(1 << 20)
    client, server = pair()
    assert client.set_datagram_size(MAX_DATAGRAM_SIZE) == MAX_DATAGRAM_SIZE
    moved = transfer(client, server, payload)
    assert bytes(moved.received) == payload
    assert moved.datagrams <= len(payload) / (MAX_DATAGRAM_SIZE - 100) * 1.1
    client, server = pair()  # the same at 1200 bytes: ~13x the datagrams
    small = transfer(client, server, payload)
    assert bytes(small.received) == payload
    assert small.datagrams >= len(payload) / MSS


def test_at_1452_against_a_peer_that_says_so() -> None:
    payload = os.urandom(256 << 10)
    client, server = pair(server_class=_Says1452)
    client.set_datagram_size(MAX_DATAGRAM_SIZE)
    moved = transfer(client, server, payload)
    assert bytes(moved.received) == payload
    assert len(payload) / 1452 <= moved.datagrams <= len(payload) / 1400 * 1.1


def test_asked_during_the_handshake_it_waits_for_the_initial_space_to_go() -> None:
    """The driver asks for a loopback peer's size when the client's handshake completes, before
    its last flight (Initial ACK + Handshake Finished) leaves: a datagram holding an Initial
    packet is padded to the whole size, which would make the server skip ~15 KB of PADDING
    frames one byte at a time in aioquic. That flight keeps the old size; later ones grow."""
    client = Libp2pQuicConnection(configuration=make_configuration(
        make_certificate(PrivateKey.generate()), is_client=True))
    server_conf = make_configuration(make_certificate(PrivateKey.generate()), is_client=False)
    now = 0.0
    client.connect(("127.0.0.1", 2), now)
    server: Libp2pQuicConnection | None = None
    asked = False
    sizes_after_ask: list[int] = []
    for _ in range(20):
        now += 0.001
        for data, _ in client.datagrams_to_send(now):
            if asked:
                sizes_after_ask.append(len(data))
            if server is None:
                header = pull_quic_header(Buffer(data=data), host_cid_length=8)
                server = Libp2pQuicConnection(
                    configuration=server_conf,
                    original_destination_connection_id=header.destination_cid)
            server.receive_datagram(data, ("127.0.0.1", 1), now)
        assert server is not None
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, ("127.0.0.1", 2), now)
        if client.handshake_complete and not asked:
            assert client.set_datagram_size(MAX_DATAGRAM_SIZE) == MSS  # not yet: Initial is live
            asked = True
        if asked and server.handshake_complete and sizes_after_ask:
            break
    assert sizes_after_ask and max(sizes_after_ask) <= MSS, sizes_after_ask
    assert client.datagram_size == MAX_DATAGRAM_SIZE  # applied once the Initial space went
    payload = os.urandom(256 * 1024)
    assert bytes(transfer(client, server, payload).received) == payload
