"""Peer identities: libp2p keys, signatures and peer IDs, byte-compatible with go core/crypto.

Theory of operation (https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md,
"Keys" and "Peer Ids"):

* A key travels as a protobuf `{1: KeyType, 2: Data}`. We parse any valid protobuf encoding of
  it, but always re-encode canonically (`08 <type> 12 <len> <data>`, `Data` itself in its canonical
  form), because go re-marshals a parsed key before hashing it into a peer ID: two encodings of one
  key must name one peer.
* Per-type behaviour is data: a `KeyKind` row per `KeyType` (in `p2p.key_codecs`) holds loaders,
  signer and verifier, so `PublicKey` and `PrivateKey` are two small classes over that table.
* Signatures follow go exactly, including its quirks: secp256k1 signs with RFC 6979 and low S and
  verifies strict DER (see `p2p.der`) while accepting high S; ECDSA verifies Go-asn1 DER and ignores
  trailing bytes; RSA is PKCS#1 v1.5/SHA-256 with 2048..8192-bit keys, size checked before OpenSSL
  does any work (CVE-2023-39533).
* A peer ID is a multihash of the canonical public key protobuf: identity when it is at most 42
  bytes, else sha2-256. It prints as base58btc and also parses the CIDv1 (`libp2p-key`) form.

Parsing network bytes raises `KeyDecodeError` / `InvalidPeerId` (both `DecodeError`), nothing else;
`verify` never raises. Parsed public keys are cached, since every handshake parses one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from typing import Any

import base58
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from p2p import protobuf, varint
from p2p.errors import DecodeError
from p2p.key_codecs import (
    KINDS,
    MAX_PUBLIC_PROTOBUF,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    KeyDecodeError,
    KeyType,
    UnsupportedKeyType,
    traditional_der,
)

__all__ = [
    "InvalidPeerId",
    "KeyDecodeError",
    "KeyType",
    "PeerId",
    "PrivateKey",
    "PublicKey",
    "UnsupportedKeyType",
    "load_private_key_file",
    "parse_key_type",
    "save_private_key_file",
]


class InvalidPeerId(DecodeError):
    """A peer ID (bytes or string) is not a multihash libp2p accepts."""


# --- limits: each a choice, with where it came from -------------------------------------------
MAX_INLINE_KEY_LEN = 42  # go core/peer maxInlineKeyLength: larger keys are sha256-hashed
MAX_PRIVATE_PROTOBUF = 16384  # an 8192-bit PKCS#1 private key is ~4.8 KB
MAX_PEER_ID_BYTES = 1024  # go has no cap on identity multihashes; we bound memory and CPU
MAX_PEER_ID_STRING = 2 * MAX_PEER_ID_BYTES
MAX_KEY_FILE = 64 * 1024

_KEY_TYPE_NAMES = {
    "rsa": KeyType.RSA,
    "ed25519": KeyType.Ed25519,
    "secp256k1": KeyType.Secp256k1,
    "ecdsa": KeyType.ECDSA,
}


def parse_key_type(name: str) -> KeyType:
    """Map a configuration name ("ed25519", "secp256k1", "ecdsa", "rsa"; any case) to a KeyType."""
    try:
        return _KEY_TYPE_NAMES[name.strip().lower()]
    except KeyError:
        raise UnsupportedKeyType(f"unknown key type name {name!r}") from None


# --- the key protobuf --------------------------------------------------------------------------
def _encode_key(key_type: KeyType, data: bytes) -> bytes:
    return protobuf.field_varint(1, int(key_type)) + protobuf.field_bytes(2, data)


def _decode_key(data: bytes, limit: int) -> tuple[KeyType, bytes]:
    """Decode `{1: Type, 2: Data}` like proto2: any order, last duplicate wins, unknowns skipped."""
    if len(data) > limit:
        raise KeyDecodeError(f"key protobuf of {len(data)} bytes exceeds {limit}")
    type_num: int | None = None
    raw: bytes | None = None
    try:
        for number, wtype, value in protobuf.iter_fields(data):
            if number == 1:
                type_num = protobuf.expect_varint(wtype, value, "Type")
            elif number == 2:
                raw = protobuf.expect_bytes(wtype, value, "Data")
    except DecodeError as exc:
        raise KeyDecodeError(f"bad key protobuf: {exc}") from None
    if type_num is None or raw is None:
        raise KeyDecodeError("key protobuf lacks a required field (Type, Data)")
    if type_num not in KeyType._value2member_map_:
        raise UnsupportedKeyType(f"unsupported key type {type_num}")
    return KeyType(type_num), raw


def _key_type(value: KeyType | int) -> KeyType:
    try:
        return KeyType(value)
    except ValueError:
        raise UnsupportedKeyType(f"unsupported key type {value!r}") from None


class PublicKey:
    """A libp2p public key; immutable, equal and hashed by its canonical protobuf."""

    __slots__ = ("key_type", "_raw", "_key", "_pb")

    def __init__(self, key_type: KeyType, raw: bytes, key: Any) -> None:
        """Internal: use `from_protobuf`, `from_raw` or `PrivateKey.public_key`."""
        self.key_type = key_type
        self._raw = raw
        self._key = key
        self._pb = _encode_key(key_type, raw)

    @classmethod
    def from_protobuf(cls, data: bytes) -> PublicKey:
        """Parse a (possibly non-canonical) PublicKey protobuf; raises KeyDecodeError."""
        data = bytes(data)
        if len(data) > MAX_PUBLIC_PROTOBUF:
            raise KeyDecodeError(f"public key protobuf of {len(data)} bytes is too large")
        return _public_from_protobuf(data)

    @classmethod
    def from_raw(cls, key_type: KeyType | int, data: bytes) -> PublicKey:
        """Build from a key type and its protobuf `Data` field; raises KeyDecodeError."""
        kt = _key_type(key_type)
        raw, key = KINDS[kt].load_public(bytes(data))
        return cls(kt, raw, key)

    def raw(self) -> bytes:
        """The canonical `Data` field (e.g. 32 bytes for Ed25519, 33 compressed for secp256k1)."""
        return self._raw

    def to_protobuf(self) -> bytes:
        """The canonical protobuf: what peer IDs hash and Noise payloads carry."""
        return self._pb

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True only for a valid signature of `data`; any malformed input is just False."""
        try:
            KINDS[self.key_type].verify(self._key, bytes(data), bytes(signature))
        except Exception:  # InvalidSignature, or OpenSSL refusing odd input: all mean "no"
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self._pb == other._pb

    def __hash__(self) -> int:
        return hash(self._pb)

    def __repr__(self) -> str:
        return f"PublicKey({self.key_type.name}, {self._raw[:8].hex()}...)"


@functools.lru_cache(maxsize=1024)
def _public_from_protobuf(data: bytes) -> PublicKey:
    # Failures raise and are not cached; the input size is bounded by the caller.
    key_type, raw = _decode_key(data, MAX_PUBLIC_PROTOBUF)
    return PublicKey.from_raw(key_type, raw)


class PrivateKey:
    """A libp2p private key. Equality compares canonical protobufs in constant time."""

    __slots__ = ("key_type", "_raw", "_key", "_public")

    def __init__(self, key_type: KeyType, raw: bytes, key: Any) -> None:
        """Internal: use `generate` or `from_protobuf`."""
        self.key_type = key_type
        self._raw = raw
        self._key = key
        pub = key.public_key()
        self._public = PublicKey(key_type, KINDS[key_type].public_raw(pub), pub)

    @classmethod
    def generate(cls, key_type: KeyType = KeyType.Ed25519, *, rsa_bits: int = 2048) -> PrivateKey:
        """A fresh key: Ed25519 by default; ECDSA is P-256, as go generates."""
        kt = _key_type(key_type)
        key: Any
        if kt is KeyType.Ed25519:
            key = ed25519.Ed25519PrivateKey.generate()
            raw = key.private_bytes_raw() + key.public_key().public_bytes_raw()
        elif kt is KeyType.Secp256k1:
            key = ec.generate_private_key(ec.SECP256K1())
            raw = key.private_numbers().private_value.to_bytes(32, "big")
        elif kt is KeyType.ECDSA:
            key = ec.generate_private_key(ec.SECP256R1())
            raw = traditional_der(key)
        else:
            if not MIN_RSA_BITS <= rsa_bits <= MAX_RSA_BITS:
                raise ValueError(f"rsa_bits must be within {MIN_RSA_BITS}..{MAX_RSA_BITS}")
            key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
            raw = traditional_der(key)
        return cls(kt, raw, key)

    @classmethod
    def from_protobuf(cls, data: bytes) -> PrivateKey:
        """Parse a PrivateKey protobuf (e.g. a key file); raises KeyDecodeError."""
        key_type, raw = _decode_key(bytes(data), MAX_PRIVATE_PROTOBUF)
        raw, key = KINDS[key_type].load_private(raw)
        return cls(key_type, raw, key)

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def raw(self) -> bytes:
        """The canonical `Data` field."""
        return self._raw

    def to_protobuf(self) -> bytes:
        return _encode_key(self.key_type, self._raw)

    def sign(self, data: bytes) -> bytes:
        """Sign as go does for this key type (see the module docstring)."""
        return KINDS[self.key_type].sign(self._key, bytes(data))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self.to_protobuf(), other.to_protobuf())

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:  # never print secret material
        return f"PrivateKey({self.key_type.name}, peer={PeerId.from_public_key(self._public)})"


# --- peer IDs ----------------------------------------------------------------------------------
MH_IDENTITY = 0x00
MH_SHA2_256 = 0x12
CID_V1 = 0x01
CODEC_LIBP2P_KEY = 0x72
_B58_ALPHABET = frozenset("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")
_B32_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_B32_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_B16_LOWER = frozenset("0123456789abcdef")
_B16_UPPER = frozenset("0123456789ABCDEF")


def _read_uvarint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    try:
        res = varint.decode(buf, pos)
    except varint.VarintError as exc:
        raise InvalidPeerId(f"bad {what} varint: {exc}") from None
    if res is None:
        raise InvalidPeerId(f"truncated {what}")
    return res


def _split_multihash(mh: bytes) -> tuple[int, bytes]:
    """Validate a peer-ID multihash: identity, or sha2-256 with a 32-byte digest."""
    if not mh:
        raise InvalidPeerId("empty peer ID")
    if len(mh) > MAX_PEER_ID_BYTES:
        raise InvalidPeerId(f"peer ID of {len(mh)} bytes is too long")
    code, pos = _read_uvarint(mh, 0, "multihash code")
    length, pos = _read_uvarint(mh, pos, "multihash length")
    if len(mh) - pos != length:
        raise InvalidPeerId("multihash length does not match its digest")
    if code == MH_IDENTITY:
        if length == 0:
            raise InvalidPeerId("empty identity multihash")
    elif code == MH_SHA2_256:
        if length != 32:
            raise InvalidPeerId("sha2-256 multihash digest must be 32 bytes")
    else:
        raise InvalidPeerId(f"unsupported multihash code {code:#x}")
    return code, mh[pos:]


def _multibase_decode(s: str) -> bytes:
    """Decode the multibases a CID peer ID may use: base32 (b/B), base58btc (z), base16 (f/F)."""
    prefix, body = s[0], s[1:]
    if prefix in "bB":
        if not set(body) <= (_B32_LOWER if prefix == "b" else _B32_UPPER):
            raise InvalidPeerId("bad base32 character")
        if len(body) % 8 in (1, 3, 6):
            raise InvalidPeerId("impossible base32 length")
        padded = body.upper() + "=" * (-len(body) % 8)
        return base64.b32decode(padded)
    if prefix == "z":
        return _b58decode(body)
    if prefix in "fF":
        if len(body) % 2 or not set(body) <= (_B16_LOWER if prefix == "f" else _B16_UPPER):
            raise InvalidPeerId("bad base16 peer ID")
        return bytes.fromhex(body)
    raise InvalidPeerId(f"unsupported multibase prefix {prefix!r}")


def _b58decode(s: str) -> bytes:
    if not s or not set(s) <= _B58_ALPHABET:
        raise InvalidPeerId("bad base58btc peer ID")
    return base58.b58decode(s)


class PeerId:
    """A peer ID: the multihash bytes of a public key. Immutable; validated on construction."""

    __slots__ = ("_bytes", "_b58")

    def __init__(self, multihash: bytes) -> None:
        if not isinstance(multihash, (bytes, bytearray, memoryview)):
            raise TypeError("PeerId takes multihash bytes; use from_string for text")
        mh = bytes(multihash)
        _split_multihash(mh)
        self._bytes = mh
        self._b58: str | None = None

    @classmethod
    def from_public_key(cls, key: PublicKey) -> PeerId:
        pb = key.to_protobuf()
        if len(pb) <= MAX_INLINE_KEY_LEN:
            return cls(bytes((MH_IDENTITY,)) + varint.encode(len(pb)) + pb)
        return cls(bytes((MH_SHA2_256, 32)) + hashlib.sha256(pb).digest())

    @classmethod
    def from_bytes(cls, data: bytes) -> PeerId:
        return cls(data)

    @classmethod
    def from_string(cls, s: str) -> PeerId:
        """Parse base58btc (go's `Qm…`/`1…` rule) or a CIDv1 with codec libp2p-key."""
        if not isinstance(s, str):
            raise TypeError("peer ID string expected")
        if not s or len(s) > MAX_PEER_ID_STRING:
            raise InvalidPeerId("peer ID string empty or too long")
        if s.startswith(("Qm", "1")):
            return cls(_b58decode(s))
        try:
            data = _multibase_decode(s)
        except ValueError:  # binascii.Error from base32 padding/bits
            raise InvalidPeerId("bad multibase peer ID") from None
        version, pos = _read_uvarint(data, 0, "CID version")
        if version != CID_V1:
            raise InvalidPeerId(f"CID version {version} is not 1")
        codec, pos = _read_uvarint(data, pos, "CID codec")
        if codec != CODEC_LIBP2P_KEY:
            raise InvalidPeerId(f"CID codec {codec:#x} is not libp2p-key")
        return cls(data[pos:])

    def to_bytes(self) -> bytes:
        return self._bytes

    def to_base58(self) -> str:
        if self._b58 is None:
            self._b58 = base58.b58encode(self._bytes).decode("ascii")
        return self._b58

    def to_cid(self) -> str:
        """CIDv1 libp2p-key in multibase base32 (lower case, unpadded): `bafz…` / `bafzaa…`."""
        b32 = base64.b32encode(bytes((CID_V1, CODEC_LIBP2P_KEY)) + self._bytes)
        return "b" + b32.decode("ascii").rstrip("=").lower()

    def extract_public_key(self) -> PublicKey | None:
        """The inlined key of an identity-multihash ID; None for hashed IDs.

        Raises KeyDecodeError if the inlined bytes are not a valid key.
        """
        code, digest = _split_multihash(self._bytes)
        if code != MH_IDENTITY:
            return None
        return PublicKey.from_protobuf(digest)

    def matches(self, key: PublicKey) -> bool:
        """Whether `key` is this peer's key (go compares derived IDs, so we do too)."""
        return PeerId.from_public_key(key) == self

    def __bytes__(self) -> bytes:
        return self._bytes

    #: str(peer) is to_base58 itself, not a method calling it: services key their tables by
    #: the string (the worker's gate, per request)
    __str__ = to_base58

    def __repr__(self) -> str:
        return f"PeerId({self.to_base58()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._bytes == other._bytes

    def __lt__(self, other: PeerId) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._bytes < other._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)


# --- key files ---------------------------------------------------------------------------------
def load_private_key_file(path: str | os.PathLike[str]) -> PrivateKey:
    """Load a key file: binary protobuf (go's own) or masa's hex text of it (auto-detected).

    A binary key protobuf starts with the tag byte 0x08, which is never a hex digit.
    """
    with open(path, "rb") as fh:
        content = fh.read(MAX_KEY_FILE + 1)
    if len(content) > MAX_KEY_FILE:
        raise KeyDecodeError(f"key file {path} is too large")
    if content[:1] != b"\x08":
        try:
            content = bytes.fromhex(content.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            raise KeyDecodeError(f"key file {path} is neither a key protobuf nor its hex") from None
    return PrivateKey.from_protobuf(content)


def save_private_key_file(
    path: str | os.PathLike[str], key: PrivateKey, *, hex_text: bool = False
) -> None:
    """Write `key` with mode 0600, atomically (temp file + rename): a crash never leaves half a key.

    `hex_text=True` writes masa's format: lower-case hex of the protobuf, no newline.
    """
    pb = key.to_protobuf()
    content = pb.hex().encode("ascii") if hex_text else pb
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
