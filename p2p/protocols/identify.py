"""identify (`/ipfs/id/1.0.0`) and identify push (`/ipfs/id/push/1.0.0`).

The peer that opens an identify stream reads; the one that accepts it writes one or more
uvarint-delimited `Identify` protobuf messages and closes its write side (go reads until EOF, so the
FIN is what ends go's read). Messages merge protobuf-style: repeated fields append, scalars overwrite.
Field numbers from go-libp2p p2p/protocol/identify/pb/identify.proto:
1 publicKey, 2 listenAddrs, 3 protocols, 4 observedAddr, 5 protocolVersion, 6 agentVersion,
7 delta (v0.24 only, ignored), 8 signedPeerRecord (kept as opaque bytes; go falls back to
listenAddrs when it is absent, so we never send one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from multiaddr import Multiaddr

from p2p import protobuf as pb
from p2p import varint
from p2p.errors import DecodeError, RemoteProtocolError

IDENTIFY = "/ipfs/id/1.0.0"
IDENTIFY_PUSH = "/ipfs/id/push/1.0.0"

MAX_ADDRS = 64  # ours: bound what a peer can make us store
MAX_PROTOCOLS = 256
MAX_PROTOCOL_LEN = 1023  # multistream's own cap on a protocol ID


class IdentifyError(RemoteProtocolError):
    """The remote's identify messages were malformed or too large."""


@dataclass
class IdentifyInfo:
    public_key: bytes | None = None
    listen_addrs: list[bytes] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    observed_addr: bytes | None = None
    protocol_version: str | None = None
    agent_version: str | None = None
    signed_peer_record: bytes | None = None

    def encode(self) -> bytes:
        head, tail = _fields_around_observed(self.public_key, tuple(self.listen_addrs),
                                             tuple(self.protocols), self.protocol_version,
                                             self.agent_version)
        out = [head]
        if self.observed_addr is not None:
            out.append(pb.field_bytes(4, self.observed_addr))
        out.append(tail)
        if self.signed_peer_record is not None:
            out.append(pb.field_bytes(8, self.signed_peer_record))
        return b"".join(out)

    def merge(self, data: bytes) -> None:
        """Merge one encoded Identify message into this one (protobuf merge semantics)."""
        try:
            for number, wtype, value in pb.iter_fields(data):
                if number == 1:
                    self.public_key = pb.expect_bytes(wtype, value, "publicKey")
                elif number == 2:
                    if len(self.listen_addrs) < MAX_ADDRS:
                        self.listen_addrs.append(pb.expect_bytes(wtype, value, "listenAddrs"))
                elif number == 3:
                    proto = pb.expect_bytes(wtype, value, "protocols")
                    if len(self.protocols) < MAX_PROTOCOLS and len(proto) <= MAX_PROTOCOL_LEN:
                        self.protocols.append(_text(proto))
                elif number == 4:
                    self.observed_addr = pb.expect_bytes(wtype, value, "observedAddr")
                elif number == 5:
                    self.protocol_version = _text(pb.expect_bytes(wtype, value, "protocolVersion"))
                elif number == 6:
                    self.agent_version = _text(pb.expect_bytes(wtype, value, "agentVersion"))
                elif number == 8:
                    self.signed_peer_record = pb.expect_bytes(wtype, value, "signedPeerRecord")
                # 7 (delta, go v0.24) and unknown fields are ignored, as go does.
        except DecodeError as exc:
            raise IdentifyError(f"invalid identify message: {exc}") from None

    def multiaddrs(self) -> list[Multiaddr]:
        """Listen addresses that decode; a bad one is skipped as go skips it."""
        out = []
        for raw in self.listen_addrs:
            ma = decode_multiaddr(raw)
            if ma is not None:
                out.append(ma)
        return out

    def observed_multiaddr(self) -> Multiaddr | None:
        return decode_multiaddr(self.observed_addr) if self.observed_addr else None


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise IdentifyError("identify string is not UTF-8") from None


@functools.lru_cache(maxsize=64)
def _fields_around_observed(public_key: bytes | None, listen_addrs: tuple[bytes, ...],
                            protocols: tuple[str, ...], protocol_version: str | None,
                            agent_version: str | None) -> tuple[bytes, bytes]:
    """Fields 1-3 and 5-6, encoded in field order: a host says the same on every connection
    but the observed address (field 4), so they are encoded once per change."""
    head = [] if public_key is None else [pb.field_bytes(1, public_key)]
    head.extend(pb.field_bytes(2, a) for a in listen_addrs)
    head.extend(pb.field_str(3, p) for p in protocols)
    tail = []
    if protocol_version is not None:
        tail.append(pb.field_str(5, protocol_version))
    if agent_version is not None:
        tail.append(pb.field_str(6, agent_version))
    return b"".join(head), b"".join(tail)


def decode_multiaddr(raw: bytes | None) -> Multiaddr | None:
    if not raw:
        return None
    raw = bytes(raw)
    # A peer sends the same few addresses on every identify and a Multiaddr is immutable:
    # parsed once (the multiaddr package's slow path), the usual sizes only (memory bound).
    return _decode_multiaddr(raw) if len(raw) <= _CACHED_ADDR_LEN else _parse_multiaddr(raw)


_CACHED_ADDR_LEN = 128


@functools.lru_cache(maxsize=1024)
def _decode_multiaddr(raw: bytes) -> Multiaddr | None:
    return _parse_multiaddr(raw)


def _parse_multiaddr(raw: bytes) -> Multiaddr | None:
    try:
        return Multiaddr(raw)
    except Exception:  # the multiaddr package raises several unrelated types on bad bytes
        return None


def encode_messages(info: IdentifyInfo) -> bytes:
    """Delimited message(s) as go writes them: one message, or two when a signed record makes
    it exceed 2048 bytes (everything else first, then the record alone)."""
    body = info.encode()
    if info.signed_peer_record is not None and len(body) > 2048:
        rest = IdentifyInfo(**{**info.__dict__, "signed_peer_record": None}).encode()
        rec = pb.field_bytes(8, info.signed_peer_record)
        return varint.encode(len(rest)) + rest + varint.encode(len(rec)) + rec
    return varint.encode(len(body)) + body


def decode_messages(data: bytes, *, max_message: int = 8192, max_messages: int = 9) -> IdentifyInfo:
    """Decode everything a responder wrote before its FIN."""
    info = IdentifyInfo()
    pos = 0
    count = 0
    while pos < len(data):
        try:
            res = varint.decode(data, pos)
        except DecodeError as exc:
            raise IdentifyError(f"bad identify length: {exc}") from None
        if res is None:
            raise IdentifyError("truncated identify length")
        length, pos = res
        if length > max_message:
            raise IdentifyError(f"identify message of {length} bytes exceeds {max_message}")
        if pos + length > len(data):
            raise IdentifyError("truncated identify message")
        count += 1
        if count > max_messages:
            raise IdentifyError("too many identify messages")
        info.merge(data[pos : pos + length])
        pos += length
    return info
