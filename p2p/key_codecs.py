"""Per-key-type behaviour of libp2p keys: how each type's `Data` is parsed, re-encoded, used.

One `KeyKind` row per `KeyType` (https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md,
"Key Types"; go core/crypto ed25519.go, secp256k1.go, ecdsa.go, rsa_common.go). `p2p.identity`
holds the public API on top of this table, so adding a key type is one row here. Loaders take the
protobuf `Data`, validate it as go does (plus a few stricter checks noted inline) and return
(canonical Data, cryptography key object); they raise only `KeyDecodeError`. Verifiers raise on a
bad signature; the caller turns any exception into False.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from p2p import der
from p2p.errors import DecodeError


class KeyType(enum.IntEnum):
    """`KeyType` enum of core/crypto/pb/crypto.proto."""

    RSA = 0
    Ed25519 = 1
    Secp256k1 = 2
    ECDSA = 3


class KeyDecodeError(DecodeError):
    """A key (protobuf or its `Data`) is malformed, of a forbidden size, or not on its curve."""


class UnsupportedKeyType(KeyDecodeError):
    """The key type number (or name) is not one of the four libp2p knows."""


MIN_RSA_BITS = 2048  # go core/crypto MinRsaKeyBits
MAX_RSA_BITS = 8192  # go v0.27.8+ maxRsaKeyBits (CVE-2023-39533)
MAX_PUBLIC_PROTOBUF = 4096  # an 8192-bit RSA PKIX key is ~1.1 KB; anything larger is refused unread
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# The curves Go's crypto/x509 parses for ECDSA keys.
_ECDSA_CURVES = frozenset({"secp224r1", "secp256r1", "secp384r1", "secp521r1"})

_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_SHA256_ECDSA = ec.ECDSA(hashes.SHA256())
_SHA256_ECDSA_RFC6979 = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_LOAD_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


def _ed25519_public(raw: bytes) -> tuple[bytes, Any]:
    if len(raw) != 32:
        raise KeyDecodeError(f"Ed25519 public key must be 32 bytes, got {len(raw)}")
    try:
        return raw, ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except _LOAD_ERRORS as exc:
        raise KeyDecodeError(f"bad Ed25519 public key: {exc}") from None


def _secp256k1_public(raw: bytes) -> tuple[bytes, Any]:
    # go (decred ParsePubKey) takes compressed 02/03, uncompressed 04 and hybrid 06/07 points.
    if len(raw) == 33 and raw[0] in (2, 3):
        point = raw
    elif len(raw) == 65 and raw[0] == 4:
        point = raw
    elif len(raw) == 65 and raw[0] in (6, 7):
        if raw[64] & 1 != raw[0] & 1:
            raise KeyDecodeError("secp256k1 hybrid key: y parity does not match its prefix")
        point = b"\x04" + raw[1:]
    else:
        raise KeyDecodeError("secp256k1 public key must be a 33- or 65-byte SEC1 point")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), point)
    except _LOAD_ERRORS:
        raise KeyDecodeError("secp256k1 public key is not a point on the curve") from None
    return _secp256k1_compressed(key), key


def _secp256k1_compressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


def _pkix_public(raw: bytes, kind: str) -> Any:
    """Load a PKIX public key, insisting on canonical DER (what Go's strict x509 parser accepts)."""
    if len(raw) > MAX_PUBLIC_PROTOBUF:
        raise KeyDecodeError(f"{kind} public key too large")
    try:
        key = serialization.load_der_public_key(raw)
    except _LOAD_ERRORS:
        raise KeyDecodeError(f"bad {kind} PKIX public key") from None
    if kind == "ECDSA":
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _ECDSA_CURVES:
            raise KeyDecodeError("ECDSA key is not on P-224/256/384/521")
    elif not isinstance(key, rsa.RSAPublicKey):
        raise KeyDecodeError("RSA key data holds another key type")
    if key.public_bytes(_DER, _SPKI) != raw:
        raise KeyDecodeError(f"{kind} public key is not canonical PKIX DER")
    return key


def _ecdsa_public(raw: bytes) -> tuple[bytes, Any]:
    return raw, _pkix_public(raw, "ECDSA")


def _rsa_public(raw: bytes) -> tuple[bytes, Any]:
    key = _pkix_public(raw, "RSA")
    _check_rsa_bits(key.key_size)
    return raw, key


def _check_rsa_bits(bits: int) -> None:
    if bits < MIN_RSA_BITS:
        raise KeyDecodeError(f"RSA key of {bits} bits is below the {MIN_RSA_BITS}-bit minimum")
    if bits > MAX_RSA_BITS:
        raise KeyDecodeError(f"RSA key of {bits} bits is above the {MAX_RSA_BITS}-bit maximum")


def _ed25519_private(raw: bytes) -> tuple[bytes, Any]:
    if len(raw) == 96:  # legacy seed || pub || pub, accepted by go when both copies agree
        if raw[64:] != raw[32:64]:
            raise KeyDecodeError("legacy Ed25519 private key has two different public keys")
        raw = raw[:64]
    if len(raw) != 64:
        raise KeyDecodeError(f"Ed25519 private key must be 64 bytes, got {len(raw)}")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    # go trusts the stored public half and would sign garbage with a wrong one; we refuse it.
    if key.public_key().public_bytes_raw() != raw[32:]:
        raise KeyDecodeError("Ed25519 private key: public half does not match the seed")
    return raw, key


def _secp256k1_private(raw: bytes) -> tuple[bytes, Any]:
    if len(raw) != 32:
        raise KeyDecodeError(f"secp256k1 private key must be 32 bytes, got {len(raw)}")
    scalar = int.from_bytes(raw, "big")
    if not 1 <= scalar < SECP256K1_ORDER:
        raise KeyDecodeError("secp256k1 private scalar out of range")
    return raw, ec.derive_private_key(scalar, ec.SECP256K1())


def traditional_der(key: Any) -> bytes:
    der: bytes = key.private_bytes(
        _DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return der


def _ecdsa_private(raw: bytes) -> tuple[bytes, Any]:
    # SEC1 ECPrivateKey starts with INTEGER 1; this refuses PKCS#8, as Go's ParseECPrivateKey does.
    try:
        if der.sequence_integers_prefix(raw, 1) != [1]:
            raise KeyDecodeError("ECDSA private key is not SEC1 (version 1)")
        key = serialization.load_der_private_key(raw, password=None)
    except (der.DERError, *_LOAD_ERRORS):
        raise KeyDecodeError("bad SEC1 ECDSA private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _ECDSA_CURVES:
        raise KeyDecodeError("ECDSA private key is not on P-224/256/384/521")
    return traditional_der(key), key


def _rsa_private(raw: bytes) -> tuple[bytes, Any]:
    # Read the modulus size from the DER before OpenSSL validates (and so exponentiates) anything.
    try:
        version, modulus = der.sequence_integers_prefix(raw, 2)
    except der.DERError:
        raise KeyDecodeError("RSA private key is not PKCS#1 DER") from None
    if version not in (0, 1) or modulus <= 0:
        raise KeyDecodeError("RSA private key is not PKCS#1 DER")
    _check_rsa_bits(modulus.bit_length())
    try:
        # OpenSSL's own validation runs primality tests (~0.7 s for 4096 bits); Go's `Validate`
        # only checks consistency, so we do Go's checks ourselves instead.
        key = serialization.load_der_private_key(
            raw, password=None, unsafe_skip_rsa_key_validation=True
        )
    except _LOAD_ERRORS:
        raise KeyDecodeError("bad PKCS#1 RSA private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyDecodeError("RSA key data holds another key type")
    nums = key.private_numbers()
    p, q, d, e = nums.p, nums.q, nums.d, nums.public_numbers.e
    if (
        p <= 1
        or q <= 1
        or p * q != nums.public_numbers.n
        or (d * e) % (p - 1) != 1
        or (d * e) % (q - 1) != 1
    ):
        raise KeyDecodeError("inconsistent RSA private key")
    return traditional_der(key), key


def _secp256k1_sign(key: Any, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, _SHA256_ECDSA_RFC6979))
    if s > SECP256K1_ORDER // 2:  # low-S, as decred's signer emits
        s = SECP256K1_ORDER - s
    return encode_dss_signature(r, s)


def _secp256k1_verify(key: Any, data: bytes, sig: bytes) -> None:
    rs = der.parse_secp256k1_signature(sig, SECP256K1_ORDER)
    if rs is None:
        raise ValueError("malformed secp256k1 signature")
    key.verify(encode_dss_signature(*rs), data, _SHA256_ECDSA)


def _ecdsa_verify(key: Any, data: bytes, sig: bytes) -> None:
    rs = der.parse_go_asn1_ecdsa_signature(sig)
    # OpenSSL checks r, s < order; sign and size we check, so nothing odd reaches the encoder.
    if rs is None or not all(0 < v and v.bit_length() <= 528 for v in rs):
        raise ValueError("malformed ECDSA signature")
    key.verify(encode_dss_signature(*rs), data, _SHA256_ECDSA)


def _ed25519_verify(key: Any, data: bytes, sig: bytes) -> None:
    key.verify(sig, data)


def _rsa_verify(key: Any, data: bytes, sig: bytes) -> None:
    key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())


@dataclass(frozen=True)
class KeyKind:
    """One key type's behaviour: how its Data is loaded, re-encoded, used."""

    load_public: Callable[[bytes], tuple[bytes, Any]]
    load_private: Callable[[bytes], tuple[bytes, Any]]
    public_raw: Callable[[Any], bytes]
    sign: Callable[[Any, bytes], bytes]
    verify: Callable[[Any, bytes, bytes], None]  # raises on a bad signature


KINDS: dict[KeyType, KeyKind] = {
    KeyType.Ed25519: KeyKind(
        _ed25519_public,
        _ed25519_private,
        lambda k: k.public_bytes_raw(),
        lambda k, d: k.sign(d),
        _ed25519_verify,
    ),
    KeyType.Secp256k1: KeyKind(
        _secp256k1_public, _secp256k1_private, _secp256k1_compressed, _secp256k1_sign,
        _secp256k1_verify,
    ),
    KeyType.ECDSA: KeyKind(
        _ecdsa_public,
        _ecdsa_private,
        lambda k: k.public_bytes(_DER, _SPKI),
        lambda k, d: k.sign(d, _SHA256_ECDSA),
        _ecdsa_verify,
    ),
    KeyType.RSA: KeyKind(
        _rsa_public,
        _rsa_private,
        lambda k: k.public_bytes(_DER, _SPKI),
        lambda k, d: k.sign(d, padding.PKCS1v15(), hashes.SHA256()),
        _rsa_verify,
    ),
}
