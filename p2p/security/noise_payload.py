"""The libp2p Noise handshake payload: who we are, proof that we own the Noise static key, muxers.

Wire format (https://github.com/libp2p/specs/blob/master/noise/README.md, "The libp2p Handshake
Payload" and "Noise Extensions"; go-libp2p p2p/security/noise/pb/payload.proto, proto2):
`NoiseHandshakePayload { bytes identity_key = 1; bytes identity_sig = 2; NoiseExtensions
extensions = 4; }`, `NoiseExtensions { repeated bytes webtransport_certhashes = 1; repeated string
stream_muxers = 2; }`. The signature covers "noise-libp2p-static-key:" || X25519 static public key.

`verify_payload` follows go's order exactly (go-libp2p p2p/security/noise/handshake.go): decode,
identity key, peer id, expected-id check, signature, and only then the extensions, so we never
spend a signature verification on a peer we did not dial and never act on extensions from an
unauthenticated one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from p2p import protobuf
from p2p.errors import DecodeError, HandshakeError, PeerIdMismatch
from p2p.identity import PeerId, PrivateKey, PublicKey

SIGNATURE_PREFIX = b"noise-libp2p-static-key:"
MAX_MUXERS = 100  # go ignores a longer stream_muxers list (inlined muxer negotiation)


class PayloadDecodeError(HandshakeError, DecodeError):
    """The handshake payload (or the identity key inside it) could not be decoded."""


@dataclass(frozen=True)
class NoiseExtensions:
    webtransport_certhashes: tuple[bytes, ...] = ()
    stream_muxers: tuple[str, ...] = ()

    def encode(self) -> bytes:
        parts = [protobuf.field_bytes(1, h) for h in self.webtransport_certhashes]
        parts += [protobuf.field_str(2, m) for m in self.stream_muxers]
        return b"".join(parts)


@dataclass(frozen=True)
class NoiseHandshakePayload:
    identity_key: bytes = b""
    identity_sig: bytes = b""
    extensions: NoiseExtensions | None = None

    def encode(self) -> bytes:
        """Fields in number order, as go's marshaller writes them."""
        out = protobuf.field_bytes(1, self.identity_key)
        out += protobuf.field_bytes(2, self.identity_sig)
        if self.extensions is not None:
            out += protobuf.field_bytes(4, self.extensions.encode())
        return out

    @classmethod
    def decode(cls, data: bytes) -> NoiseHandshakePayload:
        """Parse like a protobuf decoder: unknown fields skipped, repeated messages merged."""
        try:
            key = sig = b""
            ext_seen = False
            hashes: list[bytes] = []
            muxers: list[str] = []
            for number, wtype, value in protobuf.iter_fields(data):
                if number == 1:
                    key = protobuf.expect_bytes(wtype, value, "identity_key")
                elif number == 2:
                    sig = protobuf.expect_bytes(wtype, value, "identity_sig")
                elif number == 4:
                    ext_seen = True
                    ext = protobuf.expect_bytes(wtype, value, "extensions")
                    for enum_, etype, evalue in protobuf.iter_fields(ext):
                        if enum_ == 1:
                            hashes.append(protobuf.expect_bytes(etype, evalue, "certhash"))
                        elif enum_ == 2:
                            raw = protobuf.expect_bytes(etype, evalue, "stream_muxers")
                            # proto2 strings are not UTF-8 checked by go; keep them lossless.
                            muxers.append(raw.decode("utf-8", "surrogateescape"))
        except DecodeError as exc:
            raise PayloadDecodeError(f"invalid noise handshake payload: {exc}") from exc
        extensions = NoiseExtensions(tuple(hashes), tuple(muxers)) if ext_seen else None
        return cls(key, sig, extensions)


def build_payload(identity: PrivateKey, static_public: bytes, muxers: Sequence[str]) -> bytes:
    """Our payload: identity key, signature over our static key, and our muxers (if any)."""
    signature = identity.sign(SIGNATURE_PREFIX + static_public)
    extensions = NoiseExtensions(stream_muxers=tuple(muxers)) if muxers else None
    return NoiseHandshakePayload(
        identity.public_key.to_protobuf(), signature, extensions
    ).encode()


@dataclass(frozen=True)
class VerifiedPeer:
    """What a valid payload proved; `muxers` is None when the peer offered no usable list."""

    peer_id: PeerId
    public_key: PublicKey
    muxers: tuple[str, ...] | None


#: `_proof_key(identity key protobuf, signature, remote static key)` -> the peer that payload
#: proved. A peer that reconnects with the same static key (ours keeps one per identity:
#: `noise._local_static`) is verified once: the three inputs decide the result, so a hit is the
#: answer the full check gave. Only valid payloads are kept, the oldest dropped first.
_VERIFIED: dict[bytes, tuple[PeerId, PublicKey]] = {}
_MAX_VERIFIED = 256


def _proof_key(identity_key: bytes, signature: bytes, remote_static: bytes) -> bytes:
    """The three inputs as one SHA-256 digest (unambiguous: each length goes in first). A
    remembered proof is 32 bytes instead of a tuple of the three (~0.3 KiB with a 64-byte
    signature); hitting another payload's entry would take a second SHA-256 preimage."""
    h = hashlib.sha256()
    for part in (identity_key, signature, remote_static):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def verify_payload(
    data: bytes, remote_static: bytes, expected_peer: PeerId | None
) -> VerifiedPeer:
    """Validate a received payload in go's order; raise a HandshakeError subclass on failure."""
    payload = NoiseHandshakePayload.decode(data)  # 1. decode
    known_key = _proof_key(payload.identity_key, payload.identity_sig, remote_static)
    known = _VERIFIED.get(known_key)
    if known is not None:
        peer_id, public_key = known
        if expected_peer is not None and peer_id != expected_peer:
            raise PeerIdMismatch(expected_peer, peer_id)
    else:
        try:  # 2. identity key (p2p.identity refuses RSA > 8192 bits before any OpenSSL work)
            public_key = PublicKey.from_protobuf(payload.identity_key)
        except DecodeError as exc:
            raise PayloadDecodeError(f"invalid identity key in noise payload: {exc}") from exc
        peer_id = PeerId.from_public_key(public_key)  # 3. peer id
        if expected_peer is not None and peer_id != expected_peer:  # 4. the peer we dialled?
            raise PeerIdMismatch(expected_peer, peer_id)
        if not public_key.verify(SIGNATURE_PREFIX + remote_static, payload.identity_sig):  # 5.
            raise HandshakeError("noise handshake signature invalid")
        if len(_VERIFIED) >= _MAX_VERIFIED:
            del _VERIFIED[next(iter(_VERIFIED))]
        _VERIFIED[known_key] = (peer_id, public_key)
    muxers = None  # 6. extensions, only for an authenticated peer
    ext = payload.extensions
    if ext is not None and 0 < len(ext.stream_muxers) <= MAX_MUXERS:
        muxers = ext.stream_muxers
    return VerifiedPeer(peer_id, public_key, muxers)


def select_muxer(initiator_muxers: Sequence[str], responder_muxers: Sequence[str]) -> str | None:
    """First initiator muxer the responder also offers (both sides compute the same answer)."""
    offered = set(responder_muxers)
    for muxer in initiator_muxers:
        if muxer in offered:
            return muxer
    return None
