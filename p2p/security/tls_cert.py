"""The libp2p TLS certificate: made as go-libp2p makes it, checked as go-libp2p checks it.

libp2p TLS (specs tls/tls.md; go-libp2p p2p/security/tls crypto.go) authenticates a peer with a
self-signed X.509 certificate whose key is a throw-away TLS key, plus one extension (OID
1.3.6.1.4.1.53594.1.1) binding that key to the libp2p identity:

    SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }

`publicKey` is the identity key in libp2p protobuf form, `signature` the identity key's signature
over ``b"libp2p-tls-handshake:" + DER SubjectPublicKeyInfo of the certificate key``. Any of the
four identity key types works: the certificate key itself is always ECDSA P-256, as go's (aioquic
and Go's TLS both sign CertificateVerify with it).

`verify_certificate_chain` repeats go's `PubKeyFromCertChain` check for check, in go's order
(exactly one certificate, a key Go's x509 can parse, the extension present, validity window and no
unhandled critical extension or serverAuth-less EKU as `x509.Verify` with the certificate as its own
root, the SignedKey decoded as Go's encoding/asn1 decodes it, the signature), then the expected
peer ID. Each failure is a typed `CertificateError` (a `HandshakeError`), or `PeerIdMismatch`.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from p2p import der
from p2p.errors import DecodeError, HandshakeError, PeerIdMismatch
from p2p.identity import PeerId, PrivateKey, PublicKey

__all__ = [
    "CERT_VALIDITY",
    "LIBP2P_EXTENSION_OID",
    "SIGNATURE_PREFIX",
    "BadExtension",
    "BadExtensionSignature",
    "CertificateChainError",
    "CertificateError",
    "CertificateExpired",
    "CertificateParseError",
    "CertificateRejected",
    "MissingExtension",
    "TlsIdentity",
    "VerifiedPeer",
    "decode_signed_key",
    "encode_signed_key",
    "make_certificate",
    "signed_key_extension",
    "verify_certificate_chain",
]

LIBP2P_EXTENSION_OID = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.1")
SIGNATURE_PREFIX = b"libp2p-tls-handshake:"
CERT_VALIDITY = datetime.timedelta(days=100 * 365)  # go: certValidityPeriod
CLOCK_SKEW_ALLOWANCE = datetime.timedelta(hours=1)  # go: NotBefore = now - 1 h
_SERIAL_BOUND = 1 << 62  # go: rand.Int(rand.Reader, 1<<62) for serial and subject serialNumber
# The extensions Go's x509 parser understands, so that marking them critical is not "unhandled"
# (crypto/x509 parser.go processExtensions): SKI, KU, SAN, BC, NC, CRL DP, policies, policy
# mappings, AKI, policy constraints, EKU, inhibit anyPolicy.
_GO_HANDLED_EXTENSIONS = frozenset(
    x509.ObjectIdentifier(f"2.5.29.{n}") for n in (14, 15, 17, 19, 30, 31, 32, 33, 35, 36, 37, 54)
)
_GO_ECDSA_CURVES = (ec.SECP224R1, ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_TAG_OCTET_STRING = 0x04
_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


class CertificateError(HandshakeError):
    """The peer's certificate does not prove a libp2p identity (go would refuse it too)."""


class CertificateChainError(CertificateError):
    """Not exactly one certificate (go: "expected one certificates in the chain")."""


class CertificateParseError(CertificateError):
    """Go's x509 would not parse it: bad DER, negative serial, or a key type it does not know."""


class MissingExtension(CertificateError):
    """No libp2p public key extension."""


class CertificateExpired(CertificateError):
    """The current time is outside NotBefore..NotAfter."""


class CertificateRejected(CertificateError):
    """x509.Verify refuses it: an unhandled critical extension, or an EKU without serverAuth."""


class BadExtension(CertificateError):
    """The extension is not a SignedKey Go can decode, or its public key is not a libp2p key."""


class BadExtensionSignature(CertificateError):
    """The identity key's signature over the certificate key does not verify."""


CertKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class TlsIdentity:
    """A host's certificate and the TLS key it certifies (made once per host, as go does)."""

    certificate: x509.Certificate
    private_key: CertKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(_DER)


@dataclass(frozen=True)
class VerifiedPeer:
    """What a valid certificate proves: the peer's libp2p key and its peer ID."""

    public_key: PublicKey
    peer_id: PeerId


# --- SignedKey: DER as Go's encoding/asn1 writes and reads it ---------------------------------
def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _der_length(len(content)) + content


def encode_signed_key(public_key_protobuf: bytes, signature: bytes) -> bytes:
    """`SEQUENCE { OCTET STRING publicKey, OCTET STRING signature }` in DER."""
    inner = _tlv(_TAG_OCTET_STRING, public_key_protobuf) + _tlv(_TAG_OCTET_STRING, signature)
    return _tlv(der.TAG_SEQUENCE, inner)


def decode_signed_key(data: bytes) -> tuple[bytes, bytes]:
    """Decode a SignedKey as Go's `asn1.Unmarshal` into `struct{PubKey, Signature []byte}` does.

    Strict DER lengths, primitive OCTET STRINGs; extra elements at the end of the SEQUENCE and
    bytes after it are ignored (Go allows both). Raises `BadExtension`.
    """
    data = bytes(data)
    try:
        tag, start, end = der.read_tlv(data, 0)
        if tag != der.TAG_SEQUENCE:
            raise BadExtension("SignedKey is not a SEQUENCE")
        fields = []
        pos = start
        for name in ("publicKey", "signature"):
            if pos >= end:
                raise BadExtension(f"SignedKey lacks {name}")
            tag, fstart, fend = der.read_tlv(data[:end], pos)
            if tag != _TAG_OCTET_STRING:
                raise BadExtension(f"SignedKey {name} is not an OCTET STRING (tag {tag:#x})")
            fields.append(data[fstart:fend])
            pos = fend
    except der.DERError as exc:
        raise BadExtension(f"SignedKey is not valid DER: {exc}") from None
    return fields[0], fields[1]


def _spki(public_key: object) -> bytes:
    """DER SubjectPublicKeyInfo, re-marshalled from the key as go's MarshalPKIXPublicKey does."""
    return public_key.public_bytes(_DER, _SPKI)  # type: ignore[attr-defined, no-any-return]


def signed_key_extension(identity: PrivateKey, cert_public_key: object) -> bytes:
    """The extension value binding `cert_public_key` to `identity` (go GenerateSignedExtension)."""
    signature = identity.sign(SIGNATURE_PREFIX + _spki(cert_public_key))
    return encode_signed_key(identity.public_key.to_protobuf(), signature)


# --- making a certificate -----------------------------------------------------------------------
def _random_below(bound: int) -> int:
    return secrets.randbelow(bound)


def make_certificate(
    identity: PrivateKey,
    *,
    now: datetime.datetime | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    cert_key: CertKey | None = None,
    extension_value: bytes | None = None,
    critical: bool = False,
    with_extension: bool = True,
    extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> TlsIdentity:
    """A fresh self-signed certificate for `identity`, shaped like go's certTemplate.

    ECDSA P-256 key, ECDSA-SHA256 self-signature, random serial below 2^62 (positive, as x509
    requires), subject and issuer = one serialNumber attribute, NotBefore = now - 1 h, NotAfter =
    now + 100 years, the libp2p extension non-critical; no SAN, key usage or EKU. The keyword
    arguments exist so tests can make the certificates go refuses (expired, no or a foreign
    extension, other extensions, another certificate key type).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = cert_key or ec.generate_private_key(ec.SECP256R1())
    if extension_value is None:
        extension_value = signed_key_extension(identity, key.public_key())
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(_random_below(_SERIAL_BOUND)))])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1 + _random_below(_SERIAL_BOUND - 1))
        .not_valid_before(not_before or now - CLOCK_SKEW_ALLOWANCE)
        .not_valid_after(not_after or now + CERT_VALIDITY)
    )
    if with_extension:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(LIBP2P_EXTENSION_OID, extension_value), critical=critical
        )
    for extension, is_critical in extra_extensions:
        builder = builder.add_extension(extension, critical=is_critical)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return TlsIdentity(builder.sign(key, algorithm), key)


# --- verifying a peer's certificate -------------------------------------------------------------
def _load(cert: bytes | x509.Certificate) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    try:
        return x509.load_der_x509_certificate(bytes(cert))
    except ValueError as exc:
        raise CertificateParseError(f"certificate does not parse: {exc}") from None


def _check_go_parsable(cert: x509.Certificate) -> object:
    """Refuse what Go's x509.ParseCertificate refuses that cryptography accepts; return the key."""
    if cert.serial_number < 0:
        raise CertificateParseError("negative serial number")
    try:
        key = cert.public_key()
    except ValueError as exc:  # includes cryptography's UnsupportedAlgorithm
        raise CertificateParseError(f"certificate key not supported: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - odd keys raise odd errors; all mean "refuse"
        raise CertificateParseError(f"certificate key not supported: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _GO_ECDSA_CURVES):
            raise CertificateParseError(f"x509: unsupported elliptic curve {key.curve.name}")
    elif not isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise CertificateParseError(f"x509: unsupported certificate key {type(key).__name__}")
    return key


def _find_extension(cert: x509.Certificate) -> x509.Extension[x509.ExtensionType]:
    try:
        extensions = cert.extensions
    except (ValueError, x509.DuplicateExtension) as exc:
        raise CertificateParseError(f"certificate extensions do not parse: {exc}") from None
    found: x509.Extension[x509.ExtensionType] | None = None
    for ext in extensions:
        if ext.oid == LIBP2P_EXTENSION_OID:
            if found is None:
                found = ext
        elif ext.critical and ext.oid not in _GO_HANDLED_EXTENSIONS:
            raise CertificateRejected(f"unhandled critical extension {ext.oid.dotted_string}")
    if found is None:
        raise MissingExtension("certificate lacks the libp2p public key extension")
    for ext in extensions:
        if ext.oid == x509.oid.ExtensionOID.EXTENDED_KEY_USAGE:
            usages = list(ext.value)
            if not (ExtendedKeyUsageOID.SERVER_AUTH in usages
                    or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages):
                raise CertificateRejected("extended key usage does not allow serverAuth")
    return found


def verify_certificate_chain(
    chain: Sequence[bytes | x509.Certificate],
    *,
    expected_peer: PeerId | None = None,
    now: datetime.datetime | None = None,
) -> VerifiedPeer:
    """Check a peer's certificate chain exactly as go-libp2p does and return who it proves.

    Raises a `CertificateError` subclass, or `PeerIdMismatch` when `expected_peer` is given and
    the certificate proves another peer.
    """
    if len(chain) != 1:
        raise CertificateChainError(f"expected one certificate in the chain, got {len(chain)}")
    cert = _load(chain[0])
    cert_key = _check_go_parsable(cert)
    ext = _find_extension(cert)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
        raise CertificateExpired(
            f"certificate valid {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}.."
            f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}, now {now:%Y-%m-%dT%H:%M:%SZ}")
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    public_key_pb, signature = decode_signed_key(raw)
    try:
        public_key = PublicKey.from_protobuf(public_key_pb)
    except DecodeError as exc:
        raise BadExtension(f"extension public key: {exc}") from None
    if not public_key.verify(SIGNATURE_PREFIX + _spki(cert_key), signature):
        raise BadExtensionSignature("libp2p extension signature does not verify")
    peer_id = PeerId.from_public_key(public_key)
    if expected_peer is not None and peer_id != expected_peer:
        raise PeerIdMismatch(expected_peer, peer_id)
    return VerifiedPeer(public_key, peer_id)
