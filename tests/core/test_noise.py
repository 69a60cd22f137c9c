"""Noise core: published and derived vectors, hostile payloads, framing, nonces, early muxers.

Every expected byte string below is copied from flynn/noise v1.1.0's vectors.txt
(https://github.com/flynn/noise), from a libp2p vector derived from the same X25519 keys and the
peer-ids spec's test keys, or from those keys (peer-ids.md, "Test vectors"), never from the
module's own constants.
"""

from __future__ import annotations

import ast
import pathlib

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p import varint
from p2p.errors import (
    DecodeError,
    HandshakeError,
    LocalProtocolError,
    PeerIdMismatch,
    RemoteProtocolError,
)
from p2p.identity import KeyType, PeerId, PrivateKey, PublicKey
from p2p.security import noise, noise_payload
from p2p.security.noise import (
    MAX_PLAINTEXT,
    CipherState,
    HandshakeComplete,
    HandshakeState,
    NoiseDecryptError,
    NoiseHandshake,
    NoiseTransport,
    NonceExhausted,
    RemoteNonceExhausted,
)
from p2p.security.noise_payload import (
    NoiseExtensions,
    NoiseHandshakePayload,
    select_muxer,
)

h = bytes.fromhex

# --- flynn/noise v1.1.0 vectors.txt, Noise_XX_25519_ChaChaPoly_SHA256, empty prologue/payloads ---
INIT_STATIC = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
RESP_STATIC = h("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20")
INIT_EPHEMERAL = h("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
RESP_EPHEMERAL = h("4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60")
FLYNN_MSG1 = h("358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254")
FLYNN_MSG2 = h(
    "64b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d484663414af878d3e46a2f58911a8"
    "16d6e8346d4ea17a6f2a0bb4ef4ed56c133cff4560a34e36ea82109f26cf2e5a5caf992b608d55c747f615e5"
    "a3425a7a19eefb8f"
)
FLYNN_MSG3 = h(
    "87f864c11ba449f46a0a4f4e2eacbb7b0457784f4fca1937f572c93603e9c4d97e5ea11b16f3968710b23a3b"
    "e3202dc1b5e1ce3c963347491e74f5c0768a9b42"
)
FLYNN_I2R = h("a52ef02ba60e12696d1d6b9ef4245c88fca757b6134ad6e76b56e310a6adf6")  # "yellowsubmarine"
FLYNN_R2I = h("2445aa438ebd649281c636cc7269ca82f1d9023d72520943aeabf909cdf521")  # "submarineyellow"

# --- DERIVED libp2p vector: flynn/noise's X25519 keys, identities from the peer-ids spec's test keys ---
ED25519_PRIV = h(
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144"
    "b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
ED25519_PEER = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
SECP_PRIV = h("080212203141bd606a504c44f23494d8f3174ef25b1fb9b52daa07d058be83b6e046b158")
SECP_PUB = h("08021221023540ad842af8a43551a94d8383a555a99226506b88f953d2e70316a3a1b3d6a2")
INIT_STATIC_PUB = h("8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f")
RESP_STATIC_PUB = h("07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c")
RESP_SIG = h(
    "304402205a890aa85fcb9c55267eff92395e28fb1a41d6029227187d06e29654f335e8c902202606d5eb0ff5"
    "61090b6a479d3cc9d8658d0105bcf26dad39f847bc69278c54d9"
)
INIT_SIG = h(
    "a0381ec5f8954ac607c1059e453ca7d6bf2456009e8b7c262b06a418f3685dfc951b443e04084e41bbc282b6"
    "387462059ee65bc28d5b286d804a25f5c0916507"
)
RESP_PAYLOAD = h(
    "0a2508021221023540ad842af8a43551a94d8383a555a99226506b88f953d2e70316a3a1b3d6a21246304402"
    "205a890aa85fcb9c55267eff92395e28fb1a41d6029227187d06e29654f335e8c902202606d5eb0ff561090b"
    "6a479d3cc9d8658d0105bcf26dad39f847bc69278c54d9220e120c2f79616d75782f312e302e30"
)
INIT_PAYLOAD = h(
    "0a24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e1240a0381ec5"
    "f8954ac607c1059e453ca7d6bf2456009e8b7c262b06a418f3685dfc951b443e04084e41bbc282b6387462059e"
    "e65bc28d5b286d804a25f5c0916507220e120c2f79616d75782f312e302e30"
)
WIRE_MSG1 = h("0020358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254")
WIRE_MSG2 = h(
    "00df64b101b1d0be5a8704bd078f9895001fc03e8e9f9522f188dd128d9846d484663414af878d3e46a2f589"
    "11a816d6e8346d4ea17a6f2a0bb4ef4ed56c133cff4560a34e36ea82109f26cf2e5a5caf992b8b4cc7d45b04"
    "4b977450ac168d8b660c01f0671da84af67f8f7f8c55358efa7e7e443773f7c537ba112370736df340cbc75c"
    "2091a7d033a453755074880975ba34014a49cf2a3c3115891ac7cae063012e6c4ea11a72407d9826edb6069e"
    "dfeab642e065026132a9f1931d3b69d08afed7199c85d42255e3b6f02990ad4e781043c2f90e2741bd4e140a"
    "400fdb1f25"
)
WIRE_MSG3 = h(
    "00b887f864c11ba449f46a0a4f4e2eacbb7b0457784f4fca1937f572c93603e9c4d9333b2cc0a9d46e5888f1"
    "567ce254936902320cd7b9b479fd98c480fafdd61f5e93858f566ed8b6e39a20b486d45185eb32978db15c65"
    "5ce1de6fbbdffb953a0c39f0b45a87a12bdc01aee67172c64b22b78e1170970225393bcdaf4d88e502fc1b16"
    "0fd8ebc2f9bab60db8d2f09cc148c20dbe810831018a8cbc9debef6fdb1c510dfc961b06f8a76bc143b2a556"
    "19f512383643d71201c8"
)
HANDSHAKE_HASH = h("ceb032e72717a7d9e05e580a36f71644345c198c195a9e5eec1b31a088a39324")
FIRST_FRAME = h(
    "0024cf64f132a50d086f7b026f8df065084c87a8a25d8a9eb4e94b8be0063936e0a8f326b7a9"
)  # carries b"\x13/multistream/1.0.0\n"

YAMUX = "/yamux/1.0.0"
MPLEX = "/mplex/6.7.0"


def x25519(raw: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(raw)


@pytest.fixture(scope="module")
def keys() -> dict[KeyType, tuple[PrivateKey, PrivateKey]]:
    """Two identities per key type; RSA generation is slow, so once per module."""
    return {kt: (PrivateKey.generate(kt), PrivateKey.generate(kt)) for kt in KeyType}


def run_handshake(
    initiator: NoiseHandshake, responder: NoiseHandshake
) -> tuple[HandshakeComplete, HandshakeComplete]:
    """Shuttle bytes between two cores until both complete; return their completion events."""
    events: dict[str, list[HandshakeComplete]] = {"i": [], "r": []}
    for _ in range(4):
        to_r = initiator.data_to_send()
        if to_r:
            events["r"] += responder.receive_data(to_r)
        to_i = responder.data_to_send()
        if to_i:
            events["i"] += initiator.receive_data(to_i)
    assert initiator.complete and responder.complete
    assert len(events["i"]) == 1 and len(events["r"]) == 1
    return events["i"][0], events["r"][0]


# ------------------------------------------------------------------ the pure Noise layer


def test_flynn_vector_messages_and_transport() -> None:
    init = HandshakeState(
        initiator=True, static_key=x25519(INIT_STATIC), ephemeral_key=x25519(INIT_EPHEMERAL)
    )
    resp = HandshakeState(
        initiator=False, static_key=x25519(RESP_STATIC), ephemeral_key=x25519(RESP_EPHEMERAL)
    )
    msg1 = init.write_message(b"")
    assert msg1 == FLYNN_MSG1
    assert resp.read_message(msg1) == b""
    msg2 = resp.write_message(b"")
    assert msg2 == FLYNN_MSG2
    assert init.read_message(msg2) == b""
    msg3 = init.write_message(b"")
    assert msg3 == FLYNN_MSG3
    assert resp.read_message(msg3) == b""
    assert init.finished and resp.finished
    assert init.handshake_hash == resp.handshake_hash
    i_send, i_recv = init.split()
    r_send, r_recv = resp.split()
    assert i_send.encrypt_with_ad(b"", b"yellowsubmarine") == FLYNN_I2R
    assert r_recv.decrypt_with_ad(b"", FLYNN_I2R) == b"yellowsubmarine"
    assert r_send.encrypt_with_ad(b"", b"submarineyellow") == FLYNN_R2I
    assert i_recv.decrypt_with_ad(b"", FLYNN_R2I) == b"submarineyellow"


def test_handshake_state_rejects_out_of_turn_use() -> None:
    init = HandshakeState(initiator=True, static_key=x25519(INIT_STATIC))
    with pytest.raises(LocalProtocolError):
        init.read_message(FLYNN_MSG2)
    init.write_message(b"")
    with pytest.raises(LocalProtocolError):
        init.write_message(b"")


def test_nonce_limit_is_typed_and_final() -> None:
    key = bytes(range(32))
    sender = CipherState(key, nonce=2**64 - 2)
    receiver = CipherState(key, nonce=2**64 - 2)
    ct = sender.encrypt_with_ad(b"", b"last")  # nonce 2^64-2 is the last usable one
    assert receiver.decrypt_with_ad(b"", ct) == b"last"
    with pytest.raises(NonceExhausted):
        sender.encrypt_with_ad(b"", b"one too many")
    with pytest.raises(RemoteNonceExhausted) as info:
        receiver.decrypt_with_ad(b"", ct)
    assert isinstance(info.value, RemoteProtocolError)
    assert sender.n == receiver.n == 2**64 - 1


def test_nonce_is_little_endian_after_four_zero_bytes() -> None:
    # Cross-check against the AEAD called with the Noise spec's nonce layout (section 5.1: 32 zero
    # bits, then the little-endian counter) written out by hand.
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    key = bytes(range(32))
    cs = CipherState(key, nonce=0x0102030405)
    expected = ChaCha20Poly1305(key).encrypt(
        b"\x00\x00\x00\x00" + b"\x05\x04\x03\x02\x01\x00\x00\x00", b"x", b"ad"
    )
    assert cs.encrypt_with_ad(b"ad", b"x") == expected


def test_failed_decrypt_does_not_advance_nonce() -> None:
    key = bytes(32)
    sender, receiver = CipherState(key), CipherState(key)
    ct = sender.encrypt_with_ad(b"", b"hello")
    forged = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(NoiseDecryptError):
        receiver.decrypt_with_ad(b"", forged)
    assert receiver.n == 0
    assert receiver.decrypt_with_ad(b"", ct) == b"hello"
    assert receiver.n == 1


# ------------------------------------------------------------------ the libp2p vector


def vector_pair() -> tuple[NoiseHandshake, NoiseHandshake]:
    init = NoiseHandshake(
        PrivateKey.from_protobuf(ED25519_PRIV),
        initiator=True,
        static_key=INIT_STATIC,
        ephemeral_key=INIT_EPHEMERAL,
    )
    resp = NoiseHandshake(
        PrivateKey.from_protobuf(SECP_PRIV),
        initiator=False,
        static_key=RESP_STATIC,
        ephemeral_key=RESP_EPHEMERAL,
    )
    return init, resp


def test_libp2p_vector_payloads_decode() -> None:
    resp = NoiseHandshakePayload.decode(RESP_PAYLOAD)
    assert resp.identity_key == SECP_PUB
    assert resp.identity_sig == RESP_SIG
    assert resp.extensions == NoiseExtensions(stream_muxers=(YAMUX,))
    assert resp.encode() == RESP_PAYLOAD
    init = NoiseHandshakePayload.decode(INIT_PAYLOAD)
    assert init.identity_sig == INIT_SIG
    assert init.encode() == INIT_PAYLOAD
    # the signed input is the 24-byte prefix and the static key (libp2p noise spec, "Static Key
    # Authentication")
    signed = h("6e6f6973652d6c69627032702d7374617469632d6b65793a") + RESP_STATIC_PUB
    assert PublicKey.from_protobuf(SECP_PUB).verify(signed, RESP_SIG)


def test_libp2p_vector_wire_bytes() -> None:
    init, resp = vector_pair()
    msg1 = init.data_to_send()
    assert msg1 == WIRE_MSG1
    assert resp.receive_data(msg1) == []
    msg2 = resp.data_to_send()
    assert msg2 == WIRE_MSG2
    [done_i] = init.receive_data(msg2)
    msg3 = init.data_to_send()
    assert msg3 == WIRE_MSG3
    [done_r] = resp.receive_data(msg3)
    assert init.handshake_hash == resp.handshake_hash == HANDSHAKE_HASH
    assert str(done_r.remote_peer) == ED25519_PEER
    assert done_i.remote_peer.to_bytes() == h("0025") + SECP_PUB  # identity multihash (peer-ids.md)
    assert done_i.remote_public_key == PublicKey.from_protobuf(SECP_PUB)
    assert done_i.selected_muxer == done_r.selected_muxer == YAMUX
    assert init.leftover == resp.leftover == b""
    i_t, r_t = init.to_transport(), resp.to_transport()
    frame = i_t.encrypt(b"\x13/multistream/1.0.0\n")
    assert frame == FIRST_FRAME
    assert r_t.decrypt(frame) == b"\x13/multistream/1.0.0\n"


def test_libp2p_vector_fed_byte_by_byte_with_pipelined_transport() -> None:
    init, resp = vector_pair()
    for b in init.data_to_send():
        assert resp.receive_data(bytes([b])) == []
    msg2 = resp.data_to_send()
    for i in range(len(msg2) - 1):
        assert init.receive_data(msg2[i : i + 1]) == []
    assert len(init.receive_data(msg2[-1:])) == 1
    # msg3 and the first transport frame in one read: the surplus is kept as leftover
    assert len(resp.receive_data(init.data_to_send() + FIRST_FRAME)) == 1
    assert resp.leftover == FIRST_FRAME
    assert resp.to_transport().decrypt(resp.leftover) == b"\x13/multistream/1.0.0\n"


def test_initiator_expecting_other_peer_aborts_before_msg3() -> None:
    init, resp = vector_pair()
    wrong = PeerId.from_string(ED25519_PEER)
    init.expected_peer = wrong
    resp.receive_data(init.data_to_send())
    with pytest.raises(PeerIdMismatch) as info:
        init.receive_data(resp.data_to_send())
    assert info.value.expected == wrong
    assert info.value.actual == PeerId(h("0025") + SECP_PUB)
    assert init.data_to_send() == b""  # go closes without sending msg3
    assert not init.complete
    with pytest.raises(LocalProtocolError):
        init.receive_data(b"\x00")


# ------------------------------------------------------------------ every key type pair


@pytest.mark.parametrize("init_type", list(KeyType))
@pytest.mark.parametrize("resp_type", list(KeyType))
def test_handshake_between_every_key_type_pair(
    keys: dict[KeyType, tuple[PrivateKey, PrivateKey]], init_type: KeyType, resp_type: KeyType
) -> None:
    ik, rk = keys[init_type][0], keys[resp_type][1]
    init = NoiseHandshake(ik, initiator=True, expected_peer=PeerId.from_public_key(rk.public_key))
    resp = NoiseHandshake(rk, initiator=False)
    done_i, done_r = run_handshake(init, resp)
    assert done_i.remote_peer == PeerId.from_public_key(rk.public_key)
    assert done_r.remote_peer == PeerId.from_public_key(ik.public_key)
    assert done_r.remote_public_key == ik.public_key
    it, rt = init.to_transport(), resp.to_transport()
    assert rt.decrypt(it.encrypt(b"ping")) == b"ping"
    assert it.decrypt(rt.encrypt(b"pong")) == b"pong"


# ------------------------------------------------------------------ hostile payloads


class RawResponder:
    """A responder that sends a hand-made payload in msg2 (what a malicious peer can do)."""

    def __init__(self) -> None:
        self.static = X25519PrivateKey.generate()
        self.state = HandshakeState(initiator=False, static_key=self.static)

    @property
    def static_pub(self) -> bytes:
        return self.static.public_key().public_bytes_raw()

    def msg2(self, msg1_wire: bytes, payload: bytes) -> bytes:
        self.state.read_message(msg1_wire[2:])
        body = self.state.write_message(payload)
        return len(body).to_bytes(2, "big") + body


def attack_initiator(payload_for: object, expected: PeerId | None = None) -> NoiseHandshake:
    """Run an initiator against a RawResponder whose payload is `payload_for(static_pub)`."""
    init = NoiseHandshake(PrivateKey.generate(), initiator=True, expected_peer=expected)
    raw = RawResponder()
    payload = payload_for(raw.static_pub)  # type: ignore[operator]
    init.receive_data(raw.msg2(init.data_to_send(), payload))
    return init


def signed(key: PrivateKey, static_pub: bytes, **kw: object) -> bytes:
    sig = key.sign(b"noise-libp2p-static-key:" + static_pub)
    pk = key.public_key.to_protobuf()
    payload = NoiseHandshakePayload(pk, sig, **kw)  # type: ignore[arg-type]
    return payload.encode()


def test_valid_hand_made_payload_is_accepted() -> None:
    key = PrivateKey.generate()
    init = attack_initiator(lambda pub: signed(key, pub))
    assert init.complete and init.remote_peer == PeerId.from_public_key(key.public_key)
    assert init.selected_muxer is None  # no extensions -> multistream fallback


def test_bad_signature_rejected() -> None:
    key = PrivateKey.generate()

    def flipped(pub: bytes) -> bytes:
        sig = bytearray(key.sign(b"noise-libp2p-static-key:" + pub))
        sig[5] ^= 0x40
        return NoiseHandshakePayload(key.public_key.to_protobuf(), bytes(sig)).encode()

    with pytest.raises(HandshakeError, match="signature"):
        attack_initiator(flipped)


def test_signature_over_another_static_key_rejected() -> None:
    key = PrivateKey.generate()
    other_static = X25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(HandshakeError, match="signature"):
        attack_initiator(lambda pub: signed(key, other_static))


def test_mismatch_is_reported_before_signature_check() -> None:
    key = PrivateKey.generate()
    expected = PeerId.from_public_key(PrivateKey.generate().public_key)
    with pytest.raises(PeerIdMismatch):  # go order: the peer id check precedes the signature
        attack_initiator(
            lambda pub: NoiseHandshakePayload(key.public_key.to_protobuf(), b"x").encode(), expected
        )


@pytest.mark.parametrize(
    "payload",
    [
        b"\x0a\x05abc",  # truncated length-delimited field
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # over-long varint
        b"\x08\x01",  # identity_key with the varint wire type
        b"\x0b",  # wire type 3 (groups) is not supported
        b"",  # no identity key at all
        b"\x22\x03\x12\x05a",  # extensions with a truncated muxer string
    ],
)
def test_invalid_protobuf_payload_rejected(payload: bytes) -> None:
    with pytest.raises(HandshakeError) as info:
        attack_initiator(lambda pub: payload)
    assert isinstance(info.value, DecodeError)


def test_unknown_key_type_rejected() -> None:
    key_pb = b"\x08\x07\x12\x20" + bytes(32)  # KeyType 7 does not exist
    with pytest.raises(HandshakeError) as info:
        attack_initiator(lambda pub: NoiseHandshakePayload(key_pb, b"sig").encode())
    assert isinstance(info.value, DecodeError)


def test_rsa_identity_over_8192_bits_rejected() -> None:
    # A 9000-bit modulus (never generated: only its size matters) in a canonical PublicKey.
    n = (1 << 8999) | 0xF1
    der = rsa.RSAPublicNumbers(65537, n).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    key_pb = b"\x08\x00\x12" + varint.encode(len(der)) + der
    with pytest.raises(HandshakeError) as info:
        attack_initiator(lambda pub: NoiseHandshakePayload(key_pb, bytes(1024)).encode())
    assert isinstance(info.value, DecodeError)


def test_bad_payload_in_msg3_rejected_by_responder() -> None:
    resp = NoiseHandshake(PrivateKey.generate(), initiator=False)
    init_state = HandshakeState(initiator=True, static_key=X25519PrivateKey.generate())
    m1 = init_state.write_message(b"")
    resp.receive_data(len(m1).to_bytes(2, "big") + m1)
    init_state.read_message(resp.data_to_send()[2:])
    m3 = init_state.write_message(b"\x0a\x01")  # truncated identity_key
    with pytest.raises(HandshakeError):
        resp.receive_data(len(m3).to_bytes(2, "big") + m3)
    assert not resp.complete


def test_short_and_tampered_handshake_messages() -> None:
    init = NoiseHandshake(PrivateKey.generate(), initiator=True)
    init.data_to_send()
    with pytest.raises(HandshakeError, match="short"):
        init.receive_data(b"\x00\x40\x09" + bytes(63))  # e = basepoint, then too few bytes
    init2, resp = vector_pair()
    resp.receive_data(init2.data_to_send())
    msg2 = bytearray(resp.data_to_send())
    msg2[60] ^= 1  # inside the encrypted static key
    with pytest.raises(HandshakeError):
        init2.receive_data(bytes(msg2))


def test_low_order_ephemeral_key_rejected() -> None:
    resp = NoiseHandshake(PrivateKey.generate(), initiator=False)
    with pytest.raises(HandshakeError):  # e = 0 is a low-order point: the ee DH output is all zero
        resp.receive_data(b"\x00\x20" + bytes(32))
    init = NoiseHandshake(PrivateKey.generate(), initiator=True)
    init.data_to_send()
    with pytest.raises(HandshakeError):
        init.receive_data(b"\x00\x60" + bytes(96))  # responder e = 0 -> all-zero DH output


# ------------------------------------------------------------------ early muxer selection


@pytest.mark.parametrize(
    ("initiator", "responder", "expected"),
    [
        ([YAMUX], [YAMUX], YAMUX),
        ([MPLEX, YAMUX], [YAMUX, MPLEX], MPLEX),  # the initiator's order wins
        ([YAMUX, MPLEX], [MPLEX, YAMUX], YAMUX),
        ([MPLEX], [YAMUX], None),  # no overlap -> multistream fallback, no failure
        ([], [YAMUX], None),
    ],
)
def test_select_muxer(initiator: list[str], responder: list[str], expected: str | None) -> None:
    assert select_muxer(initiator, responder) == expected


@pytest.mark.parametrize(
    ("init_muxers", "resp_muxers", "expected"),
    [
        ((MPLEX, YAMUX), (YAMUX, MPLEX), MPLEX),
        ((YAMUX,), (MPLEX,), None),
        ((YAMUX,), (), None),  # responder sends no extensions
        ((), (YAMUX,), None),
        ((YAMUX,), tuple(f"/x/{i}" for i in range(99)) + (YAMUX,), YAMUX),  # 100 entries: fine
        (tuple(f"/x/{i}" for i in range(99)) + (YAMUX,), (YAMUX,), YAMUX),
    ],
)
def test_early_muxer_negotiated_identically_on_both_sides(
    init_muxers: tuple[str, ...], resp_muxers: tuple[str, ...], expected: str | None
) -> None:
    init = NoiseHandshake(PrivateKey.generate(), initiator=True, muxers=init_muxers)
    resp = NoiseHandshake(PrivateKey.generate(), initiator=False, muxers=resp_muxers)
    done_i, done_r = run_handshake(init, resp)
    assert done_i.selected_muxer == done_r.selected_muxer == expected


def test_received_muxer_list_over_100_entries_is_ignored() -> None:
    key = PrivateKey.generate()
    many = tuple(f"/x/{i}" for i in range(100)) + (YAMUX,)
    init = attack_initiator(
        lambda pub: signed(key, pub, extensions=NoiseExtensions(stream_muxers=many))
    )
    assert init.complete and init.selected_muxer is None
    init = attack_initiator(
        lambda pub: signed(key, pub, extensions=NoiseExtensions(stream_muxers=many[1:]))
    )
    assert init.selected_muxer == YAMUX  # exactly 100 entries are still honoured


def test_offering_over_100_muxers_is_refused_locally() -> None:
    with pytest.raises(ValueError):
        NoiseHandshake(
            PrivateKey.generate(), initiator=True, muxers=[f"/x/{i}" for i in range(101)]
        )


# ------------------------------------------------------------------ transport framing


def transport_pair() -> tuple[NoiseTransport, NoiseTransport]:
    key1, key2 = bytes(range(32)), bytes(range(1, 33))
    return (
        NoiseTransport(CipherState(key1), CipherState(key2)),
        NoiseTransport(CipherState(key2), CipherState(key1)),
    )


def test_transport_chunks_at_65519_plaintext_bytes() -> None:
    a, b = transport_pair()
    data = bytes(range(256)) * 256 + b"xyz"  # 65539 bytes = 65519 + 20
    wire = a.encrypt(data)
    assert wire[:2] == b"\xff\xff"  # first frame: 65519 + 16 = 65535 bytes
    assert wire[65537:65539] == (20 + 16).to_bytes(2, "big")
    assert len(wire) == 2 + 65535 + 2 + 36
    assert b.decrypt(wire) == data
    assert a.encrypt(b"") == b""  # an empty write sends nothing, as go's Write loop


def test_transport_buffers_partial_frames() -> None:
    a, b = transport_pair()
    wire = a.encrypt(b"hello") + a.encrypt(b"world")
    assert b.decrypt(wire[:1]) == b""
    assert b.decrypt(wire[1:25]) == b"hello"  # frame 1 is 2 + 21 bytes
    assert b.buffered == 2  # the next length prefix
    assert b.decrypt(wire[25:]) == b"world"
    assert b.buffered == 0


def _seal_pieces(pieces: list[bytes | memoryview], spare: int = 0) -> bytes:
    """`encrypt_pieces_into` on a fresh transport, into a buffer `spare` bytes too large."""
    a, _ = transport_pair()
    total = sum(len(p) for p in pieces)
    out = bytearray(b"\xee" * (NoiseTransport.sealed_size(total) + spare))
    n = a.encrypt_pieces_into(pieces, out, bytearray(MAX_PLAINTEXT))
    assert n == NoiseTransport.sealed_size(total)
    assert out[n:] == b"\xee" * spare  # nothing written past the frames
    return bytes(out[:n])


def test_pieces_of_yamux_frames_seal_as_their_join() -> None:
    # a 256 KiB yamux write: four (12-byte header, 65507-byte payload) pairs, each exactly one
    # noise frame, then a 12 + 116 byte tail: the frames fall on the pieces' own boundaries
    pieces: list[bytes | memoryview] = []
    for i in range(4):
        pieces += [bytes([i]) * 12, memoryview(bytes([i + 100]) * 65507)]
    pieces += [b"h" * 12, memoryview(b"t" * 116)]
    a, b = transport_pair()
    assert _seal_pieces(pieces, spare=40) == a.encrypt(b"".join(pieces))
    assert b.decrypt(_seal_pieces(pieces)) == b"".join(pieces)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 140_000), max_size=7), st.integers(0, 100))
def test_pieces_seal_exactly_as_their_join(sizes: list[int], spare: int) -> None:
    pieces: list[bytes | memoryview] = [
        memoryview(bytes([i % 251]) * n) if i % 2 else bytes([i % 251]) * n
        for i, n in enumerate(sizes)]
    a, _ = transport_pair()
    assert _seal_pieces(pieces, spare) == a.encrypt(b"".join(pieces))


@pytest.mark.parametrize("frame", [b"\x00\x00", b"\x00\x0f" + bytes(15)])
def test_frames_too_short_to_authenticate_are_rejected(frame: bytes) -> None:
    _, b = transport_pair()
    with pytest.raises(NoiseDecryptError):
        b.decrypt(frame)


def test_flipped_ciphertext_bit_is_a_typed_error_and_fatal() -> None:
    a, b = transport_pair()
    wire = bytearray(a.encrypt(b"attack at dawn"))
    wire[7] ^= 0x01
    with pytest.raises(NoiseDecryptError):
        b.decrypt(bytes(wire))
    with pytest.raises(NoiseDecryptError):  # the transport stays failed
        b.decrypt(a.encrypt(b"later"))


def test_transport_nonce_exhaustion() -> None:
    key = bytes(32)
    t = NoiseTransport(CipherState(key, nonce=2**64 - 2), CipherState(key, nonce=2**64 - 1))
    t.encrypt(b"ok")
    with pytest.raises(NonceExhausted):
        t.encrypt(b"no")
    with pytest.raises(RemoteNonceExhausted):
        t.decrypt(b"\x00\x10" + bytes(16))


def test_pieces_seal_up_to_the_last_nonce_then_refuse() -> None:
    key = bytes(32)
    t = NoiseTransport(CipherState(key, nonce=2**64 - 3), CipherState(key))
    out, stage = bytearray(200_000), bytearray(MAX_PLAINTEXT)
    assert t.encrypt_pieces_into([bytes(MAX_PLAINTEXT + 5)], out, stage) > 0  # two frames
    with pytest.raises(NonceExhausted):
        t.encrypt_pieces_into([b"no"], out, stage)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_a_split_frame_decrypts_whole_and_never_reads_a_reused_buffer(kind: type) -> None:
    """The start of a frame whose end is in the next read is kept by the transport, not read
    again from the caller's buffer, which a caller may reuse for its next read."""
    a, b = transport_pair()
    data = bytes(range(256)) * 600  # 153600 bytes: three frames, the last one short
    wire = bytes(a.encrypt(data))
    out = []
    for lo, hi in ((0, 70_000), (70_000, 140_000)):  # cuts inside the second and third frame
        buf = bytearray(wire[lo:hi])
        out.append(b.decrypt(buf if kind is bytearray else kind(buf)))
        buf[:] = bytes(len(buf))  # the caller reuses its buffer
    out.append(b.decrypt(kind(bytearray(wire[140_000:]))))
    assert b"".join(out) == data
    assert b.buffered == 0


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200_000), st.lists(st.integers(0, 200_000), max_size=8))
def test_transport_roundtrip_any_split(data: bytes, cuts: list[int]) -> None:
    a, b = transport_pair()
    wire = a.encrypt(data)
    points = sorted({min(c, len(wire)) for c in cuts})
    out, prev = [], 0
    for p in points + [len(wire)]:
        out.append(b.decrypt(wire[prev:p]))
        prev = p
    assert b"".join(out) == data
    assert b.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_transport_decrypt_arbitrary_bytes(chunks: list[bytes]) -> None:
    _, b = transport_pair()
    try:
        for chunk in chunks:
            b.decrypt(chunk)
    except RemoteProtocolError:
        pass
    assert b.buffered <= 65537


# ------------------------------------------------------------------ hostile handshake bytes

_RESPONDER_KEY = PrivateKey.from_protobuf(ED25519_PRIV)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=4))
def test_responder_with_arbitrary_bytes(chunks: list[bytes]) -> None:
    resp = NoiseHandshake(_RESPONDER_KEY, initiator=False, static_key=RESP_STATIC)
    try:
        for chunk in chunks:
            resp.receive_data(chunk)
    except RemoteProtocolError:
        assert not resp.complete


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_responder_with_arbitrary_msg3(body: bytes, framed: bool) -> None:
    resp = NoiseHandshake(_RESPONDER_KEY, initiator=False, static_key=RESP_STATIC)
    resp.receive_data(WIRE_MSG1)
    data = len(body).to_bytes(2, "big") + body if framed else body
    try:
        resp.receive_data(data)
    except RemoteProtocolError:
        assert not resp.complete
    else:
        assert not resp.complete  # nobody can forge msg3 without the initiator's keys


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_initiator_with_arbitrary_msg2(body: bytes) -> None:
    init = NoiseHandshake(_RESPONDER_KEY, initiator=True)
    init.data_to_send()
    try:
        init.receive_data(len(body).to_bytes(2, "big") + body)
    except RemoteProtocolError:
        pass
    assert not init.complete


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_payload_decoder_arbitrary_bytes(data: bytes) -> None:
    try:
        NoiseHandshakePayload.decode(data)
    except RemoteProtocolError:
        pass


# ------------------------------------------------------------------ the sans-IO rule


@pytest.mark.parametrize("module", [noise, noise_payload])
def test_core_modules_do_no_io(module: object) -> None:
    tree = ast.parse(pathlib.Path(module.__file__).read_text())  # type: ignore[attr-defined]
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"anyio", "trio", "asyncio", "socket", "time", "select"}
