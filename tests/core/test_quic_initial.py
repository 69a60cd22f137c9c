"""`initial_decrypts`: the check a QUIC listener makes before admission, so that noise can neither
take nor evict a handshake slot (p2p/transport/quic.py)."""

from __future__ import annotations

import os

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.packet import pull_quic_header

from p2p.identity import PrivateKey
from p2p.security.tls_cert import make_certificate
from p2p.transport.quic_core import Libp2pQuicConnection, initial_decrypts, make_configuration


def client_hello() -> bytes:
    conf = make_configuration(make_certificate(PrivateKey.generate()), is_client=True)
    quic = Libp2pQuicConnection(configuration=conf)
    quic.connect(("127.0.0.1", 4001), 0.0)
    return quic.datagrams_to_send(0.0)[0][0]


def test_a_real_client_hello_decrypts() -> None:
    assert initial_decrypts(client_hello(), 8)


def test_a_flipped_bit_or_a_cut_datagram_does_not() -> None:
    data = client_hello()
    end = pull_quic_header(Buffer(data=data), host_cid_length=8).packet_length
    assert 300 < end < len(data)  # the Initial packet, then the datagram's padding
    # header (connection ID), protected payload, its last byte (the AEAD tag)
    for pos in (20, 100, end - 1):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        assert not initial_decrypts(bytes(bad), 8), pos
    assert not initial_decrypts(data[:300], 8)
    assert not initial_decrypts(b"", 8)
    assert not initial_decrypts(os.urandom(1200), 8)


def test_a_packet_of_another_type_does_not() -> None:
    data = bytearray(client_hello())
    data[0] = (data[0] & ~0x30) | 0x20  # long-header type 2: Handshake
    assert not initial_decrypts(bytes(data), 8)
