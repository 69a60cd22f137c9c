"""One Noise static key per identity (a key generation and a signature per identity, not per
handshake), and a peer's proof of its static key checked once per (identity key, signature, static
key): what a hit returns is what the full check gave, and nothing that failed is remembered."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from p2p.errors import HandshakeError, PeerIdMismatch
from p2p.identity import PeerId, PrivateKey
from p2p.security import noise_payload
from p2p.security.noise import HandshakeState, NoiseHandshake
from p2p.security.noise_payload import NoiseHandshakePayload, verify_payload


def handshake(init_key: PrivateKey, resp_key: PrivateKey) -> tuple[NoiseHandshake, NoiseHandshake]:
    init = NoiseHandshake(init_key, initiator=True)
    resp = NoiseHandshake(resp_key, initiator=False)
    resp.receive_data(init.data_to_send())
    init.receive_data(resp.data_to_send())
    resp.receive_data(init.data_to_send())
    assert init.complete and resp.complete
    return init, resp


def test_one_static_key_per_identity_and_fresh_ephemeral_keys() -> None:
    a, b, c = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    (i1, r1), (i2, r2) = handshake(a, b), handshake(a, b)
    assert i1._state.rs == i2._state.rs  # b's static key, as a saw it twice
    assert r1._state.rs == r2._state.rs  # and a's, as b saw it
    assert i1._state.re != i2._state.re and r1._state.re != r2._state.re  # ephemerals: fresh
    assert i1.to_transport().encrypt(b"x") != i2.to_transport().encrypt(b"x")  # other keys
    _, r3 = handshake(c, b)
    assert r3._state.rs != r1._state.rs  # another identity, another static key
    assert r1.remote_peer == PeerId.from_public_key(a.public_key)
    assert r3.remote_peer == PeerId.from_public_key(c.public_key)


def signed_payload(key: PrivateKey, static_pub: bytes) -> bytes:
    sig = key.sign(noise_payload.SIGNATURE_PREFIX + static_pub)
    return NoiseHandshakePayload(key.public_key.to_protobuf(), sig).encode()


def test_a_remembered_proof_still_checks_the_expected_peer() -> None:
    key = PrivateKey.generate()
    static = X25519PrivateKey.generate().public_key().public_bytes_raw()
    payload = signed_payload(key, static)
    peer = PeerId.from_public_key(key.public_key)
    assert verify_payload(payload, static, peer).peer_id == peer  # checked and remembered
    decoded = NoiseHandshakePayload.decode(payload)
    assert noise_payload._proof_key(decoded.identity_key, decoded.identity_sig,
                                    static) in noise_payload._VERIFIED
    again = verify_payload(payload, static, peer)  # remembered
    assert again.peer_id == peer and again.public_key == key.public_key
    other = PeerId.from_public_key(PrivateKey.generate().public_key)
    with pytest.raises(PeerIdMismatch):
        verify_payload(payload, static, other)


def test_a_failed_proof_is_never_remembered() -> None:
    key = PrivateKey.generate()
    static = X25519PrivateKey.generate().public_key().public_bytes_raw()
    other_static = X25519PrivateKey.generate().public_key().public_bytes_raw()
    payload = signed_payload(key, static)
    before = dict(noise_payload._VERIFIED)
    for _ in range(2):  # the same wrong inputs fail the full check every time
        with pytest.raises(HandshakeError, match="signature"):
            verify_payload(payload, other_static, None)
    assert noise_payload._VERIFIED == before
    verify_payload(payload, static, None)  # the right static key: accepted


def test_the_proof_key_keeps_the_inputs_apart() -> None:
    """Moving bytes from one input to the next gives another key (lengths go in first)."""
    keys = {noise_payload._proof_key(b"ab", b"c", b"d"), noise_payload._proof_key(b"a", b"bc", b"d"),
            noise_payload._proof_key(b"a", b"b", b"cd"), noise_payload._proof_key(b"abc", b"", b"d")}
    assert len(keys) == 4
    assert noise_payload._proof_key(b"a", b"b", bytearray(b"c")) == noise_payload._proof_key(
        b"a", b"b", b"c")


def test_the_remembered_proofs_are_bounded() -> None:
    key = PrivateKey.generate()
    for _ in range(noise_payload._MAX_VERIFIED + 10):
        static = X25519PrivateKey.generate().public_key().public_bytes_raw()
        verify_payload(signed_payload(key, static), static, None)
    assert len(noise_payload._VERIFIED) == noise_payload._MAX_VERIFIED


def test_an_injected_static_key_is_used_as_given() -> None:
    """Test vectors inject their static keys; the shared one is for the default only."""
    key = PrivateKey.generate()
    raw = bytes(range(32))
    hs = NoiseHandshake(key, initiator=False, static_key=raw)
    expected = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    assert hs._state.s.public_key().public_bytes_raw() == expected
    assert isinstance(hs._state, HandshakeState)
