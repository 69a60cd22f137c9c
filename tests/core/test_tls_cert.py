"""libp2p TLS certificates: go's own certificates (known answers), ours, and the ones go refuses.

The vectors in tls_vectors.py were made by go-libp2p v0.36.3 for fixed identity keys. For the key
types whose signatures are deterministic (Ed25519, secp256k1 with RFC 6979, RSA PKCS#1 v1.5) our
extension for go's certificate key must equal go's byte for byte. The refusal cases mirror go's
PubKeyFromCertChain; tests/interop/test_tls_cert_go.py runs the same cases through go itself.
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tls_cases import accepted_certificates, identity, refused_certificates
from tls_vectors import GO_CERTIFICATES

from p2p.errors import HandshakeError, PeerIdMismatch
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.security import tls_cert
from p2p.security.tls_cert import (
    LIBP2P_EXTENSION_OID,
    BadExtension,
    CertificateChainError,
    CertificateExpired,
    decode_signed_key,
    encode_signed_key,
    make_certificate,
    signed_key_extension,
    verify_certificate_chain,
)

H = bytes.fromhex
KEY_NAMES = list(GO_CERTIFICATES)
UTC = datetime.timezone.utc


def go_cert(name: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(H(GO_CERTIFICATES[name]["cert"]))


@pytest.mark.parametrize("name", KEY_NAMES)
def test_go_certificate_proves_its_peer(name: str) -> None:
    vector = GO_CERTIFICATES[name]
    proved = verify_certificate_chain([H(vector["cert"])])
    assert str(proved.peer_id) == vector["peer_id"]
    assert proved.public_key == identity(name).public_key
    # with the expected peer given (a dial of /p2p/ID) it passes too
    expected = PeerId.from_string(vector["peer_id"])
    assert verify_certificate_chain([H(vector["cert"])], expected_peer=expected).peer_id == expected


@pytest.mark.parametrize("name", KEY_NAMES)
def test_extension_matches_go(name: str) -> None:
    vector = GO_CERTIFICATES[name]
    key = identity(name)
    go_ext = H(vector["extension"])
    ext = go_cert(name).extensions.get_extension_for_oid(LIBP2P_EXTENSION_OID)
    assert ext.critical is False
    assert ext.value.value == go_ext
    public_pb, signature = decode_signed_key(go_ext)
    assert public_pb == key.public_key.to_protobuf()
    ours = signed_key_extension(key, go_cert(name).public_key())
    if name == "ecdsa":  # go signs ECDSA with a random nonce: same key, different signature
        assert decode_signed_key(ours)[0] == public_pb
        assert encode_signed_key(public_pb, signature) == go_ext
    else:
        assert ours == go_ext


def test_our_certificate_has_gos_shape() -> None:
    go = go_cert("ed25519")
    ours = make_certificate(identity("ed25519")).certificate
    for cert in (go, ours):
        assert cert.version == x509.Version.v3
        assert cert.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ECDSA_WITH_SHA256
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"
        assert [a.oid for a in cert.subject] == [NameOID.SERIAL_NUMBER]
        assert cert.issuer == cert.subject
        assert [e.oid for e in cert.extensions] == [LIBP2P_EXTENSION_OID]
        assert 0 < cert.serial_number < 1 << 62
        span = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert span == datetime.timedelta(days=100 * 365, hours=1)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_our_certificate_round_trip(key_type: KeyType) -> None:
    key = PrivateKey.generate(key_type)
    cert = make_certificate(key)
    proved = verify_certificate_chain([cert.der])
    assert proved.peer_id == PeerId.from_public_key(key.public_key)
    assert proved.public_key == key.public_key


# --- what go refuses, and what it lets through --------------------------------------------------
def _other_peer() -> PeerId:
    return PeerId.from_public_key(PrivateKey.generate(KeyType.Ed25519).public_key)


def test_chain_of_two_is_refused() -> None:
    cert = make_certificate(identity("ed25519")).der
    with pytest.raises(CertificateChainError):
        verify_certificate_chain([cert, cert])
    with pytest.raises(CertificateChainError):
        verify_certificate_chain([])


def test_peer_id_mismatch_is_typed() -> None:
    cert = make_certificate(identity("secp256k1")).der
    other = _other_peer()
    with pytest.raises(PeerIdMismatch) as info:
        verify_certificate_chain([cert], expected_peer=other)
    assert info.value.expected == other
    assert str(info.value.actual) == GO_CERTIFICATES["secp256k1"]["peer_id"]


REFUSED = refused_certificates()
ACCEPTED = accepted_certificates()


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused(case: str) -> None:
    der, error = REFUSED[case]
    with pytest.raises(error) as info:
        verify_certificate_chain([der])
    assert isinstance(info.value, HandshakeError)


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_accepted(case: str) -> None:
    proved = verify_certificate_chain([ACCEPTED[case]])
    assert str(proved.peer_id) == GO_CERTIFICATES["ed25519"]["peer_id"]


def test_validity_edges_follow_the_clock() -> None:
    cert = go_cert("rsa")
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    assert verify_certificate_chain([cert], now=start).peer_id
    assert verify_certificate_chain([cert], now=end).peer_id
    for outside in (start - datetime.timedelta(seconds=1), end + datetime.timedelta(seconds=1)):
        with pytest.raises(CertificateExpired):
            verify_certificate_chain([cert], now=outside)


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x00", b"\x31\x02\x04\x00",
                                  b"\x30\x02\x04\x00", b"\x30\x80\x04\x00\x04\x00\x00\x00",
                                  b"\x30\x04\x24\x00\x04\x00"])
def test_signed_key_decoding_refuses(data: bytes) -> None:
    with pytest.raises(BadExtension):
        decode_signed_key(data)


def test_signed_key_encoding_long_lengths() -> None:
    pub, sig = b"\x01" * 300, b"\x02" * 70000
    assert decode_signed_key(encode_signed_key(pub, sig)) == (pub, sig)
    assert tls_cert.encode_signed_key(b"", b"") == b"\x30\x04\x04\x00\x04\x00"
