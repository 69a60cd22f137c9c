"""Larger QUIC datagrams on a path known to carry them (Libp2pQuicConnection.set_datagram_size).

Sans-IO, two connections in memory: the size moves only after the handshake, never past the
peer's max_udp_payload_size (quic-go says 1452) nor the largest UDP payload, and a stream moved in
large datagrams arrives whole, in about size/datagram-size datagrams: past 16 KiB its frames carry
a 4-byte length (aioquic writes 2 bytes), while smaller packets are aioquic's own, byte for byte.
"""

from __future__ import annotations

import os

import pytest
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_transport_parameters, push_quic_transport_parameters

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
    assert client.set_datagram_size(70000) == MAX_DATAGRAM_SIZE == 65507
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
    assert moved.datagrams <= len(payload) / (MAX_DATAGRAM_SIZE - 100) * 1.1 + 2  # (window edges)
    client, server = pair()  # the same at 1200 bytes: ~13x the datagrams
    small = transfer(client, server, payload)
    assert bytes(small.received) == payload
    assert small.datagrams >= len(payload) / MSS


@pytest.mark.parametrize(("size", "aioquic_only"),
                         [(1452, True), (16384, True), (16500, False), (65000, False),
                          (MAX_DATAGRAM_SIZE, False)])
def test_frames_past_16_kib_carry_a_longer_length(size: int, aioquic_only: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame that fills a datagram of `size`: aioquic's own writer while it fits a 2-byte
    length (16383 bytes of data), ours (a 4-byte length) once it may not; aioquic, receiving,
    reads both. The payload crosses the 16383-byte mark inside a frame and ends in a short one."""
    aioquic_frames: list[int] = []
    original = QuicConnection._write_stream_frame

    def counting(self: QuicConnection, builder: object, space: object, stream: object,
                 max_offset: int) -> int:
        used = original(self, builder, space, stream, max_offset)  # type: ignore[arg-type]
        aioquic_frames.append(used)
        return int(used)

    monkeypatch.setattr(QuicConnection, "_write_stream_frame", counting)
    payload = os.urandom(1 << 20 | 12345)
    client, server = pair()
    assert client.set_datagram_size(size) == size
    moved = transfer(client, server, payload)
    assert bytes(moved.received) == payload
    assert moved.datagrams <= len(payload) / (size - 100) * 1.1 + 2
    if aioquic_only:  # a packet's room holds no more than 16383 bytes of data
        assert sum(aioquic_frames) == len(payload)
    else:  # full datagrams are ours; aioquic's writer sends at most the short leftovers
        assert sum(aioquic_frames) < 16384


def test_at_1452_against_a_peer_that_says_so() -> None:
    payload = os.urandom(256 << 10)
    client, server = pair(server_class=_Says1452)
    client.set_datagram_size(MAX_DATAGRAM_SIZE)
    moved = transfer(client, server, payload)
    assert bytes(moved.received) == payload
    assert len(payload) / 1452 <= moved.datagrams <= len(payload) / 1400 * 1.1


class _AsksWhenComplete(Libp2pQuicConnection):
    """A client asking for 16 KiB as our driver does: when its handshake completes, before its
    last flight (Initial ACK + Handshake Finished) leaves; it records what it sends after."""

    asked_got: int | None = None
    sizes_after_ask: list[int]

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        if self._handshake_complete and self.asked_got is None:
            self.asked_got = self.set_datagram_size(MAX_DATAGRAM_SIZE)
            self.sizes_after_ask = []
        out = super().datagrams_to_send(now)
        if self.asked_got is not None:
            self.sizes_after_ask += [len(data) for data, _ in out]
        return out


def test_asked_during_the_handshake_it_waits_for_the_initial_space_to_go() -> None:
    """A datagram holding an Initial packet is padded to the whole size: at 16 KiB the server
    would skip ~15 KB of PADDING frames one byte at a time in aioquic. The last flight keeps
    the old size; the new one applies once the Initial space is gone."""
    client, server = pair(client_class=_AsksWhenComplete)
    assert isinstance(client, _AsksWhenComplete)
    assert client.asked_got == MSS  # not yet: the Initial space was live
    assert client.sizes_after_ask and max(client.sizes_after_ask) <= MSS, client.sizes_after_ask
    assert client.datagram_size == MAX_DATAGRAM_SIZE  # applied once the Initial space went
    payload = os.urandom(256 * 1024)
    moved = transfer(client, server, payload)
    assert bytes(moved.received) == payload
    assert moved.datagrams < 256 * 1024 // MSS  # large datagrams carried it
