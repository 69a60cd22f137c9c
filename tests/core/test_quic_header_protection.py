"""Header protection without whole-packet copies (quic_core._LeanHeaderProtection).

It must give the bytes aioquic's own HeaderProtection gives, both ways, for every cipher and
header shape; and a connection must use it for the keys TLS installs.
"""

from __future__ import annotations

import os
import random

import pytest
from aioquic._crypto import CryptoError, HeaderProtection
from aioquic.tls import Epoch

from quic_memory import pair, transfer

from p2p.transport.quic_core import _LeanHeaderProtection

CIPHERS = [(b"aes-128-ecb", 16), (b"aes-256-ecb", 32), (b"chacha20", 32)]


def _header(rng: random.Random, long: bool, pn_length: int) -> bytes:
    """A plain header: first byte (form, fixed bit, packet number length), some connection ID
    and version bytes, then the packet number."""
    first = (0xC0 if long else 0x40) | rng.randrange(0, 4) << 2 | (pn_length - 1)
    middle = os.urandom(rng.choice([8, 9, 20, 30]))
    return bytes([first]) + middle + os.urandom(pn_length)


@pytest.mark.parametrize(("cipher", "key_size"), CIPHERS)
def test_same_bytes_as_aioquic_both_ways(cipher: bytes, key_size: int) -> None:
    rng = random.Random(cipher)
    key = os.urandom(key_size)
    ours, theirs = _LeanHeaderProtection(cipher, key), HeaderProtection(cipher, key)
    for _ in range(300):
        long = rng.random() < 0.5
        pn_length = rng.randrange(1, 5)
        header = _header(rng, long, pn_length)
        payload = os.urandom(rng.choice([20, 21, 100, 1200, 16384, 65000]))
        protected = ours.apply(header, payload)
        assert protected == theirs.apply(header, payload)
        pn_offset = len(header) - pn_length
        assert ours.remove(protected, pn_offset) == theirs.remove(protected, pn_offset)
        plain, _pn = ours.remove(protected, pn_offset)
        assert plain == header  # and it undoes what it did


def test_too_short_to_sample_is_refused_alike() -> None:
    key = os.urandom(16)
    ours, theirs = _LeanHeaderProtection(b"aes-128-ecb", key), HeaderProtection(b"aes-128-ecb", key)
    packet = bytes([0x41]) + os.urandom(8 + 4 + 15)  # one byte short of the 16-byte sample
    for hp in (ours, theirs):
        with pytest.raises(CryptoError):
            hp.remove(packet, 9)


def test_connections_use_it_for_the_keys_tls_installs() -> None:
    client, server = pair()
    for conn in (client, server):
        for epoch in (Epoch.HANDSHAKE, Epoch.ONE_RTT):
            crypto = conn._cryptos[epoch]
            for context in (crypto.send, crypto.recv):
                if context.hp is not None:  # (the handshake keys may be discarded already)
                    assert type(context.hp) is _LeanHeaderProtection, (epoch, context)
        one_rtt = conn._cryptos[Epoch.ONE_RTT]
        assert type(one_rtt.send.hp) is type(one_rtt.recv.hp) is _LeanHeaderProtection
    payload = os.urandom(300_000)
    assert bytes(transfer(client, server, payload).received) == payload
