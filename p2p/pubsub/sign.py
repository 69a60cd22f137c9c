"""Message signing as go-libp2p-pubsub v0.12.0 does it (sign.go), and StrictSign verification.

Signed bytes = `libp2p-pubsub:` + the protobuf of the message with only from, data, seqno, topic
(ascending field order). `key` is carried only when the peer ID does not inline the public key
(RSA, ECDSA). Verification takes the key from `key` (which must match `from`) or from `from`.
"""

from __future__ import annotations

from p2p.errors import P2PError
from p2p.identity import PeerId, PrivateKey, PublicKey
from p2p.pubsub.rpc import PubMessage

SIGN_PREFIX = b"libp2p-pubsub:"


class SignatureError(P2PError):
    """A message failed StrictSign: unsigned, unparsable key or peer, or a bad signature."""


def signed_bytes(msg: PubMessage) -> bytes:
    return SIGN_PREFIX + msg.encode(signed_part_only=True)


def sign(msg: PubMessage, identity: PrivateKey) -> None:
    """Fill in `from`, `signature` (and `key` when the peer ID cannot carry it)."""
    peer = PeerId.from_public_key(identity.public_key)
    msg.from_peer = peer.to_bytes()
    msg.signature = identity.sign(signed_bytes(msg))
    msg.key = None if peer.extract_public_key() is not None else identity.public_key.to_protobuf()


def verify(msg: PubMessage) -> PeerId:
    """Check a received message under StrictSign; returns its author or raises SignatureError."""
    if not msg.signature or not msg.from_peer:
        raise SignatureError("unsigned message (StrictSign wants from and signature)")
    try:
        author = PeerId(msg.from_peer)
        if msg.key is not None:
            key = PublicKey.from_protobuf(msg.key)
            if not author.matches(key):
                raise SignatureError("message key does not match its author")
        else:
            inlined = author.extract_public_key()
            if inlined is None:
                raise SignatureError("no key in the message and none inlined in its author's ID")
            key = inlined
    except P2PError as exc:
        if isinstance(exc, SignatureError):
            raise
        raise SignatureError(f"bad author or key: {exc}") from None
    if not key.verify(signed_bytes(msg), msg.signature):
        raise SignatureError("bad message signature")
    return author
