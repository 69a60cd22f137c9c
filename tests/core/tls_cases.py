"""Certificates go-libp2p refuses and unusual ones it accepts, shared by the unit tests, the go
cross-check (tests/interop/test_tls_cert_go.py) and the QUIC hostile tests.

Each accepted one proves the ed25519 identity of tls_vectors.IDENTITY_KEYS.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID
from tls_vectors import IDENTITY_KEYS

from p2p.identity import KeyType, PrivateKey
from p2p.security.tls_cert import (
    BadExtension,
    BadExtensionSignature,
    CertificateExpired,
    CertificateParseError,
    CertificateRejected,
    MissingExtension,
    decode_signed_key,
    encode_signed_key,
    make_certificate,
    signed_key_extension,
)

UTC = datetime.timezone.utc


def identity(name: str) -> PrivateKey:
    """The fixed identity key `name` (ed25519, secp256k1, ecdsa, rsa) of the vectors."""
    return PrivateKey.from_protobuf(bytes.fromhex(IDENTITY_KEYS[name]))


def refused_certificates() -> dict[str, tuple[bytes, type[Exception]]]:
    """Certificates go-libp2p refuses, each with the error we must raise for it."""
    key = identity("ed25519")
    other = PrivateKey.generate(KeyType.Ed25519)
    now = datetime.datetime.now(UTC)
    cert_key = ec.generate_private_key(ec.SECP256R1())
    wrong_sig = signed_key_extension(other, cert_key.public_key())  # other key signs ...
    forged = encode_signed_key(key.public_key.to_protobuf(), decode_signed_key(wrong_sig)[1])
    good = signed_key_extension(key, cert_key.public_key())
    pub, sig = decode_signed_key(good)
    bit_string = bytes((0x30, len(good) - 2)) + bytes((0x03,)) + good[3:]  # publicKey as BIT STRING
    ekus = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00")
    k1 = ec.generate_private_key(ec.SECP256K1())
    k1_ext = signed_key_extension(key, k1.public_key())
    return {
        "no extension": (make_certificate(key, with_extension=False).der, MissingExtension),
        "expired": (make_certificate(key, not_before=now - datetime.timedelta(days=3),
                                     not_after=now - datetime.timedelta(days=1)).der,
                    CertificateExpired),
        "not yet valid": (make_certificate(key, not_before=now + datetime.timedelta(days=1)).der,
                          CertificateExpired),
        "wrong signature": (make_certificate(key, cert_key=cert_key, extension_value=forged).der,
                            BadExtensionSignature),
        "signature over another key": (make_certificate(key, extension_value=good).der,
                                       BadExtensionSignature),
        "extension not DER": (make_certificate(key, extension_value=b"\x30\x81\x02ab").der,
                              BadExtension),
        "publicKey as BIT STRING": (make_certificate(key, cert_key=cert_key,
                                                     extension_value=bit_string).der, BadExtension),
        "publicKey not a key": (make_certificate(
            key, cert_key=cert_key, extension_value=encode_signed_key(b"\x08\x01\x12\x01x", sig)).der,
            BadExtension),
        "EKU without serverAuth": (make_certificate(key, extra_extensions=[(ekus, False)]).der,
                                   CertificateRejected),
        "unknown critical extension": (make_certificate(key, extra_extensions=[(unknown, True)]).der,
                                       CertificateRejected),
        "secp256k1 certificate key": (make_certificate(key, cert_key=k1, extension_value=k1_ext).der,
                                      CertificateParseError),
        "not a certificate": (b"\x30\x03\x02\x01\x01", CertificateParseError),
    }


def accepted_certificates() -> dict[str, bytes]:
    """Unusual certificates go-libp2p accepts (so we must too)."""
    key = identity("ed25519")
    cert_key = ec.generate_private_key(ec.SECP256R1())
    good = signed_key_extension(key, cert_key.public_key())
    pub, sig = decode_signed_key(good)
    inner = good[2:] + b"\x04\x00"  # one more OCTET STRING inside the SEQUENCE
    assert good[1] < 0x80 and len(inner) < 0x80  # short DER lengths (Ed25519: 104 bytes)
    extra_inside = bytes((0x30, len(inner))) + inner
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ekus = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])
    return {
        "critical libp2p extension": make_certificate(key, critical=True).der,
        "bytes after the SignedKey": make_certificate(key, cert_key=cert_key,
                                                      extension_value=good + b"\x00\x01").der,
        "element after the signature": make_certificate(key, cert_key=cert_key,
                                                        extension_value=extra_inside).der,
        "Ed25519 certificate key": make_certificate(
            key, cert_key=ed_key, extension_value=signed_key_extension(key, ed_key.public_key())).der,
        "EKU with serverAuth": make_certificate(key, extra_extensions=[(ekus, False)]).der,
        "critical basic constraints": make_certificate(
            key, extra_extensions=[(x509.BasicConstraints(ca=False, path_length=None), True)]).der,
    }
