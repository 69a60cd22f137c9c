"""Noise_XX_25519_ChaChaPoly_SHA256 with the libp2p handshake payload: a sans-IO core.

Theory of operation (Noise spec rev 34 §5, §7.5, https://noiseprotocol.org/noise.html; libp2p
noise, https://github.com/libp2p/specs/blob/master/noise/README.md, "Wire Format" and
"Encryption and I/O"):

* `CipherState`, `SymmetricState`, `HandshakeState` are the Noise spec objects, XX pattern only,
  empty prologue. Static and ephemeral X25519 keys may be injected so published vectors replay.
* `NoiseHandshake` wraps them in the libp2p framing (u16 big-endian length prefix) and payload
  (`noise_payload`): feed it bytes with `receive_data`, send what `data_to_send` returns, and when
  `complete` call `to_transport()`. Bytes that arrived after the last handshake message are in
  `leftover` (the peer may pipeline transport frames right behind msg3).
* `NoiseTransport` frames application bytes: at most 65519 plaintext bytes (65535 - tag) per
  frame, empty associated data, one nonce per frame. It buffers at most one partial frame.

Security properties kept here rather than in drivers: a failed decrypt never advances the nonce
(flynn/noise GHSA-g9mp-8g3h-3c5c), nonces stop at 2^64-1 with a typed error instead of wrapping,
and every malformed input raises a `RemoteProtocolError` subclass. No I/O, no clock.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from p2p.errors import HandshakeError, LocalProtocolError, P2PError, RemoteProtocolError
from p2p.identity import PeerId, PrivateKey, PublicKey
from p2p.security.noise_payload import MAX_MUXERS, build_payload, select_muxer, verify_payload

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"  # 32 bytes, so h0 = the name itself
DH_LEN = 32
TAG_LEN = 16
MAX_FRAME = 65535  # u16 length prefix
MAX_PLAINTEXT = MAX_FRAME - TAG_LEN  # 65519, go's write chunk size
MAX_NONCE = (1 << 64) - 1  # reserved by the Noise spec; flynn/noise returns ErrMaxNonce here


class NoiseDecryptError(RemoteProtocolError):
    """A Noise frame failed authentication or was malformed (e.g. zero length)."""


class NonceExhausted(P2PError):
    """A cipher state used its last nonce (2^64-2); the connection must be closed, no rekey."""


class RemoteNonceExhausted(NonceExhausted, NoiseDecryptError):
    """The peer sent more frames than the receive nonce space allows."""


#: The 96-bit nonce of counter `n`: 4 zero bytes, then `n` little-endian (one C call per frame).
_nonce = struct.Struct("<4xQ").pack


class CipherState:
    """Noise CipherState: one ChaCha20-Poly1305 object per key, a 64-bit counter nonce."""

    __slots__ = ("_aead", "n")

    def __init__(self, key: bytes | None = None, nonce: int = 0) -> None:
        self._aead = ChaCha20Poly1305(key) if key is not None else None
        self.n = nonce

    @property
    def has_key(self) -> bool:
        return self._aead is not None

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes | memoryview) -> bytes:
        if self._aead is None:
            return bytes(plaintext)
        if self.n >= MAX_NONCE:
            raise NonceExhausted("send nonce exhausted")
        out = self._aead.encrypt(_nonce(self.n), plaintext, ad)
        self.n += 1
        return out

    def encrypt_into(self, ad: bytes, plaintext: memoryview, out: memoryview) -> None:
        """Encrypt into `out` (len(plaintext) + 16 bytes): the transport's zero-copy path."""
        assert self._aead is not None
        if self.n >= MAX_NONCE:
            raise NonceExhausted("send nonce exhausted")
        self._aead.encrypt_into(_nonce(self.n), plaintext, ad, out)
        self.n += 1

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes | memoryview) -> bytes:
        if self._aead is None:
            return bytes(ciphertext)
        if self.n >= MAX_NONCE:
            raise RemoteNonceExhausted("receive nonce exhausted")
        try:
            out = self._aead.decrypt(_nonce(self.n), ciphertext, ad)
        except InvalidTag:
            raise NoiseDecryptError("noise message failed authentication") from None
        self.n += 1  # only after success: a forged frame must not desynchronise us
        return out


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def _hkdf2(ck: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    temp = _hmac(ck, ikm)
    out1 = _hmac(temp, b"\x01")
    return out1, _hmac(temp, out1 + b"\x02")


class SymmetricState:
    """Noise SymmetricState over SHA-256: chaining key `ck`, handshake hash `h`."""

    def __init__(self, protocol_name: bytes = PROTOCOL_NAME) -> None:
        if len(protocol_name) <= 32:
            self.h = protocol_name.ljust(32, b"\x00")
        else:
            self.h = hashlib.sha256(protocol_name).digest()
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, key = _hkdf2(self.ck, ikm)
        self.cipher = CipherState(key)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = _hkdf2(self.ck, b"")
        return CipherState(k1), CipherState(k2)


_XX = (("e",), ("e", "ee", "s", "es"), ("s", "se"))  # Noise spec §7.5, messages alternate I, R, I


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:  # low-order point gives an all-zero secret; cryptography refuses it
        raise HandshakeError("invalid X25519 public key from peer") from None


def _raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


class HandshakeState:
    """XX handshake state machine; `write_message`/`read_message` in strict turn order."""

    def __init__(
        self,
        *,
        initiator: bool,
        static_key: X25519PrivateKey,
        ephemeral_key: X25519PrivateKey | None = None,
        prologue: bytes = b"",
    ) -> None:
        self.initiator = initiator
        self.symmetric = SymmetricState()
        self.symmetric.mix_hash(prologue)
        self.s = static_key
        self.e = ephemeral_key
        self.rs: bytes | None = None
        self.re: bytes | None = None
        self._index = 0

    @property
    def finished(self) -> bool:
        return self._index == len(_XX)

    @property
    def our_turn(self) -> bool:
        return not self.finished and (self._index % 2 == 0) == self.initiator

    @property
    def handshake_hash(self) -> bytes:
        return self.symmetric.h

    def _mix_dh(self, token: str) -> None:
        assert self.e is not None and self.re is not None
        if token == "ee":
            secret = _dh(self.e, self.re)
        elif (token == "es") == self.initiator:  # initiator "es", responder "se": our e, their s
            assert self.rs is not None
            secret = _dh(self.e, self.rs)
        else:  # our s, their e
            secret = _dh(self.s, self.re)
        self.symmetric.mix_key(secret)

    def write_message(self, payload: bytes) -> bytes:
        if not self.our_turn:
            raise LocalProtocolError("not our turn to write a handshake message")
        parts = []
        for token in _XX[self._index]:
            if token == "e":
                if self.e is None:
                    self.e = X25519PrivateKey.generate()
                pub = _raw_public(self.e)
                self.symmetric.mix_hash(pub)
                parts.append(pub)
            elif token == "s":
                parts.append(self.symmetric.encrypt_and_hash(_raw_public(self.s)))
            else:
                self._mix_dh(token)
        parts.append(self.symmetric.encrypt_and_hash(payload))
        self._index += 1
        return b"".join(parts)

    def read_message(self, message: bytes) -> bytes:
        """Process one peer message and return its (decrypted) payload."""
        if self.finished or self.our_turn:
            raise LocalProtocolError("not expecting a handshake message")
        pos = 0
        for token in _XX[self._index]:
            if token in ("e", "s"):
                size = DH_LEN + (TAG_LEN if token == "s" and self.symmetric.cipher.has_key else 0)
                if len(message) - pos < size:
                    raise HandshakeError("handshake message too short")
                chunk = message[pos : pos + size]
                pos += size
                if token == "e":
                    self.re = chunk
                    self.symmetric.mix_hash(chunk)
                else:
                    self.rs = self._decrypt(chunk)
            else:
                self._mix_dh(token)
        if self.symmetric.cipher.has_key and len(message) - pos < TAG_LEN:
            raise HandshakeError("handshake message too short")
        payload = self._decrypt(message[pos:])
        self._index += 1
        return payload

    def _decrypt(self, data: bytes) -> bytes:
        try:
            return self.symmetric.decrypt_and_hash(data)
        except NoiseDecryptError:
            raise HandshakeError("handshake message failed authentication") from None

    def split(self) -> tuple[CipherState, CipherState]:
        """(send, receive) cipher states for our role."""
        if not self.finished:
            raise LocalProtocolError("handshake not finished")
        c1, c2 = self.symmetric.split()
        return (c1, c2) if self.initiator else (c2, c1)


class NoiseTransport:
    """Post-handshake framing: `encrypt` makes whole frames, `decrypt` consumes a byte stream."""

    __slots__ = ("_send", "_recv", "_buf", "_failed")

    def __init__(self, send: CipherState, recv: CipherState) -> None:
        self._send = send
        self._recv = recv
        self._buf = b""  # one incomplete frame at most (<= 65537 bytes)
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame waiting for the rest (non-zero at EOF = truncation)."""
        return len(self._buf)

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytearray:
        """Frame `data` into chunks of <= 65519 bytes; empty data yields no frame (as go).

        Frames are sealed in place into one preallocated buffer (one AEAD call per chunk, no
        join). It is returned as that bytearray, bytes-like for any socket: copying it to
        `bytes` cost ~10% of bulk throughput in measurement.
        """
        src = memoryview(data).cast("B")
        total = len(src)
        if total == 0:
            return bytearray()
        frames = -(-total // MAX_PLAINTEXT)
        out = bytearray(total + frames * (2 + TAG_LEN))
        dst = memoryview(out)
        pos = 0
        for start in range(0, total, MAX_PLAINTEXT):
            chunk = src[start : start + MAX_PLAINTEXT]
            size = len(chunk) + TAG_LEN
            out[pos] = size >> 8
            out[pos + 1] = size & 0xFF
            self._send.encrypt_into(b"", chunk, dst[pos + 2 : pos + 2 + size])
            pos += 2 + size
        dst.release()
        return out

    @staticmethod
    def sealed_size(total: int) -> int:
        """Wire bytes `encrypt` makes of `total` plaintext bytes."""
        return total + -(-total // MAX_PLAINTEXT) * (2 + TAG_LEN)

    def encrypt_pieces_into(self, pieces: Sequence[bytes | memoryview], out: bytearray,
                            stage: bytearray) -> int:
        """Frame the concatenation of `pieces` into `out` exactly as `encrypt` frames their join
        (same frames, same bytes); return the bytes written (`sealed_size` of their total).

        Each frame's plaintext is gathered in `stage` (at least MAX_PLAINTEXT bytes, reused
        by the caller) instead of joining everything first: a caller that also reuses `out`
        then allocates nothing per write. A large buffer allocated and freed on every write made
        glibc grow and trim its heap (brk) around each one, page-faulting fresh pages in.
        """
        dst = memoryview(out)
        st = memoryview(stage)
        send = self._send
        # CipherState.encrypt_into, inline: once per frame (the nonce is stored at the end)
        seal, nonce = send._aead.encrypt_into, send.n  # type: ignore[union-attr]
        pos = fill = 0
        for piece in pieces:
            n = len(piece)
            if fill + n < MAX_PLAINTEXT:  # the common case: the piece fits the frame whole
                st[fill:fill + n] = piece
                fill += n
                continue
            src = memoryview(piece)
            off = 0
            while off < n:
                k = min(n - off, MAX_PLAINTEXT - fill)
                st[fill:fill + k] = src[off:off + k]
                fill += k
                off += k
                if fill == MAX_PLAINTEXT:
                    if nonce >= MAX_NONCE:
                        raise NonceExhausted("send nonce exhausted")
                    size = MAX_PLAINTEXT + TAG_LEN
                    out[pos] = size >> 8
                    out[pos + 1] = size & 0xFF
                    seal(_nonce(nonce), st, b"", dst[pos + 2:pos + 2 + size])
                    nonce += 1
                    pos += 2 + size
                    fill = 0
        if fill:
            if nonce >= MAX_NONCE:
                raise NonceExhausted("send nonce exhausted")
            size = fill + TAG_LEN
            out[pos] = size >> 8
            out[pos + 1] = size & 0xFF
            seal(_nonce(nonce), st[:fill], b"", dst[pos + 2:pos + 2 + size])
            nonce += 1
            pos += 2 + size
        send.n = nonce
        st.release()
        dst.release()
        return pos

    def decrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """Return the plaintext of every complete frame now available; keep a partial one."""
        parts = self.decrypt_frames(data)
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def decrypt_frames(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Like `decrypt`, but one plaintext per frame: lets a driver hand frames on unjoined.

        Complete frames are decrypted in place through a memoryview, so a 256 KiB read is never
        copied whole. The start of a frame whose end has not arrived is copied, and joined once
        with the bytes it lacked when they come (not copied first, then joined). Keeping the
        start as a view of its read instead (no copy) made the bulk sink's CPU per MiB ~40%
        higher: each 256 KiB read then outlived the next one's allocation, and glibc grew and
        trimmed its heap around them (as with reused read buffers, 3f5017a).
        """
        if self._failed:
            raise NoiseDecryptError("noise transport already failed")
        view = memoryview(data).cast("B")
        parts: list[bytes] = []
        recv = self._recv
        try:
            pending = self._buf
            while pending and view:
                have = len(pending)
                need = 2 - have if have < 2 else 2 + _frame_size(pending) - have
                pending = b"".join((pending, view[:need]))
                view = view[need:]
                if len(pending) >= 2 and len(pending) == 2 + _frame_size(pending):
                    parts.append(recv.decrypt_with_ad(b"", memoryview(pending)[2:]))
                    pending = b""
            end = len(view)
            pos = 0
            # CipherState.decrypt_with_ad, inline: once per frame
            open_, n = recv._aead.decrypt, recv.n  # type: ignore[union-attr]
            while end - pos >= 2:
                size = view[pos] << 8 | view[pos + 1]  # _frame_size, inline
                if size < TAG_LEN:
                    raise NoiseDecryptError(f"noise frame of {size} bytes cannot be authentic")
                if end - pos - 2 < size:
                    break
                if n >= MAX_NONCE:
                    raise RemoteNonceExhausted("receive nonce exhausted")
                try:
                    parts.append(open_(_nonce(n), view[pos + 2:pos + 2 + size], b""))
                except InvalidTag:
                    raise NoiseDecryptError("noise message failed authentication") from None
                n += 1  # only after success: a forged frame must not desynchronise us
                pos += 2 + size
            recv.n = n
            self._buf = pending or bytes(view[pos:])
        except NoiseDecryptError:
            self._failed = True
            raise
        return parts


def _frame_size(header: bytes | memoryview) -> int:
    size = header[0] << 8 | header[1]
    if size < TAG_LEN:
        raise NoiseDecryptError(f"noise frame of {size} bytes cannot be authentic")
    return size


class Phase(enum.Enum):
    AWAIT_MSG1 = "await msg1"  # responder
    AWAIT_MSG2 = "await msg2"  # initiator
    AWAIT_MSG3 = "await msg3"  # responder
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class HandshakeComplete:
    """Event: the peer proved `remote_peer`; `selected_muxer` None means multistream fallback."""

    remote_peer: PeerId
    remote_public_key: PublicKey
    selected_muxer: str | None


#: (our identity, the muxers we offer) -> our static key and the payload signing it. The static
#: key is authenticated by that signature alone, and forward secrecy comes from the ephemeral
#: keys, so one per identity serves every handshake, as rust-libp2p (substrate) and js-libp2p's
#: `staticNoiseKey` keep theirs; go makes one per handshake, a key generation and a signature
#: more per connection (and a peer that keeps its static key is verified once:
#: `noise_payload._VERIFIED`).
_LOCAL_STATICS: dict[tuple[PublicKey, tuple[str, ...]], tuple[X25519PrivateKey, bytes]] = {}
_MAX_LOCAL_STATICS = 64


def _local_static(identity: PrivateKey, muxers: tuple[str, ...]) -> tuple[X25519PrivateKey, bytes]:
    key = (identity.public_key, muxers)
    found = _LOCAL_STATICS.get(key)
    if found is None:
        if len(_LOCAL_STATICS) >= _MAX_LOCAL_STATICS:
            del _LOCAL_STATICS[next(iter(_LOCAL_STATICS))]
        static = X25519PrivateKey.generate()
        found = _LOCAL_STATICS[key] = (static, build_payload(identity, _raw_public(static), muxers))
    return found


class NoiseHandshake:
    """The libp2p Noise handshake (XX + signed identity payload) as a byte-in/byte-out machine."""

    def __init__(
        self,
        identity: PrivateKey,
        *,
        initiator: bool,
        expected_peer: PeerId | None = None,
        muxers: Sequence[str] = ("/yamux/1.0.0",),
        static_key: bytes | None = None,
        ephemeral_key: bytes | None = None,
    ) -> None:
        ephemeral = None
        if ephemeral_key is not None:  # only for test vectors; normally generated at msg1/msg2
            ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_key)
        self.identity = identity
        self.initiator = initiator
        self.expected_peer = expected_peer
        self.muxers = tuple(muxers)
        if len(self.muxers) > MAX_MUXERS:
            # go ignores a received list this long but never limits its own, so the two sides
            # would disagree on the result; refusing to send one keeps both answers equal.
            raise ValueError(f"at most {MAX_MUXERS} muxers can be offered early")
        if static_key is None:
            static, self._payload = _local_static(identity, self.muxers)
        else:
            static = X25519PrivateKey.from_private_bytes(static_key)
            self._payload = build_payload(identity, _raw_public(static), self.muxers)
        self._state = HandshakeState(
            initiator=initiator, static_key=static, ephemeral_key=ephemeral
        )
        self._in = b""
        self._out: list[bytes] = []
        self.leftover = b""
        self.remote_peer: PeerId | None = None
        self.remote_public_key: PublicKey | None = None
        self.selected_muxer: str | None = None
        if initiator:
            self._queue(self._state.write_message(b""))  # msg1 carries no payload (go sends none)
            self.phase = Phase.AWAIT_MSG2
        else:
            self.phase = Phase.AWAIT_MSG1

    @property
    def complete(self) -> bool:
        return self.phase is Phase.COMPLETE

    @property
    def handshake_hash(self) -> bytes:
        return self._state.handshake_hash

    def _queue(self, message: bytes) -> None:
        if len(message) > MAX_FRAME:
            raise LocalProtocolError("handshake message exceeds 65535 bytes")
        self._out.append(len(message).to_bytes(2, "big") + message)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> list[HandshakeComplete]:
        """Feed bytes from the peer; returns [HandshakeComplete] once, when the handshake ends."""
        if self.phase is Phase.COMPLETE:
            raise LocalProtocolError("handshake already complete; use the transport")
        if self.phase is Phase.FAILED:
            raise LocalProtocolError("handshake already failed")
        self._in += data
        try:
            # mypy narrows self.phase from the check above; _process changes it
            while self.phase is not Phase.COMPLETE and len(self._in) >= 2:  # type: ignore[comparison-overlap]
                size = self._in[0] << 8 | self._in[1]
                if len(self._in) < 2 + size:
                    break
                message, self._in = self._in[2 : 2 + size], self._in[2 + size :]
                self._process(message)
        except P2PError:
            self.phase = Phase.FAILED
            raise
        except ValueError as exc:  # defensive: a crypto library complaint about peer bytes
            self.phase = Phase.FAILED
            raise HandshakeError(f"noise handshake failed: {exc}") from exc
        if self.phase is Phase.COMPLETE:  # type: ignore[comparison-overlap]  # set by _process
            self.leftover, self._in = self._in, b""
            assert self.remote_peer is not None and self.remote_public_key is not None
            done = HandshakeComplete(self.remote_peer, self.remote_public_key, self.selected_muxer)
            return [done]
        return []

    def _process(self, message: bytes) -> None:
        state = self._state
        if self.phase is Phase.AWAIT_MSG1:
            state.read_message(message)  # any payload is ignored, as go does
            self._queue(state.write_message(self._payload))
            self.phase = Phase.AWAIT_MSG3
        elif self.phase is Phase.AWAIT_MSG2:
            self._accept_payload(state.read_message(message))
            self._queue(state.write_message(self._payload))
            self.phase = Phase.COMPLETE
        else:
            self._accept_payload(state.read_message(message))
            self.phase = Phase.COMPLETE

    def _accept_payload(self, payload: bytes) -> None:
        assert self._state.rs is not None
        verified = verify_payload(payload, self._state.rs, self.expected_peer)
        self.remote_peer = verified.peer_id
        self.remote_public_key = verified.public_key
        if verified.muxers is not None:
            if self.initiator:
                self.selected_muxer = select_muxer(self.muxers, verified.muxers)
            else:
                self.selected_muxer = select_muxer(verified.muxers, self.muxers)

    def to_transport(self) -> NoiseTransport:
        if not self.complete:
            raise LocalProtocolError("handshake not complete")
        return NoiseTransport(*self._state.split())
