"""IPNS records and their validator as go-libp2p-kad-dht v0.26.1 runs it (boxo v0.21.0 ipns).

Key `/ipns/<peer ID bytes>`; value an IpnsRecord protobuf {value 1, signatureV1 2, validityType 3,
validity 4, sequence 5, ttl 6, pubKey 7, signatureV2 8, data 9} of at most 10 KiB, whose `data` is
a DAG-CBOR map {Value bytes, Validity bytes, ValidityType int, Sequence int, TTL int}. Valid when:
signatureV2 and data are present; the signature over `ipns-signature:` + data verifies with the
record's pubKey (which must hash to the key's peer ID) or the key inlined in that peer ID; the
protobuf's value/validity/validityType/sequence/ttl equal the CBOR ones when signatureV1 or value
is present (v1-compatible records); ValidityType is 0 (EOL) and the EOL (RFC 3339) is in the
future. Select: a record with signatureV2 beats one without, then the higher sequence, then the
later EOL, then the larger bytes.

go also looks a key that is neither in the record nor inlined up in its peerstore; we do not (an
RSA or ECDSA name must carry its key in the record here).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from p2p import protobuf as pb
from p2p.errors import DecodeError, P2PError
from p2p.identity import PeerId, PrivateKey, PublicKey

MAX_RECORD_SIZE = 10 << 10  # boxo MaxRecordSize
SIGNATURE_PREFIX = b"ipns-signature:"
PREFIX = b"/ipns/"
_MAX_DEPTH = 16


class IpnsError(DecodeError):
    """An IPNS record that does not decode or is not valid."""


# ---- DAG-CBOR, the subset an IPNS record needs ---------------------------------------------------

CborValue = int | bytes | str | bool | None | float | list["CborValue"] | dict[str, "CborValue"]


def _cbor_item(data: bytes, pos: int, depth: int) -> tuple[CborValue, int]:
    if depth > _MAX_DEPTH:
        raise IpnsError("CBOR nested too deep")
    if pos >= len(data):
        raise IpnsError("CBOR truncated")
    major, info = data[pos] >> 5, data[pos] & 0x1F
    pos += 1
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        n = 1 << (info - 24)
        if pos + n > len(data):
            raise IpnsError("CBOR truncated")
        arg = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    else:
        raise IpnsError("CBOR indefinite lengths are not DAG-CBOR")
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        if pos + arg > len(data):
            raise IpnsError("CBOR truncated")
        raw = data[pos:pos + arg]
        if major == 2:
            return raw, pos + arg
        try:
            return raw.decode(), pos + arg
        except UnicodeDecodeError:
            raise IpnsError("CBOR text is not UTF-8") from None
    if major == 4:
        items = []
        for _ in range(min(arg, len(data))):
            item, pos = _cbor_item(data, pos, depth + 1)
            items.append(item)
        if len(items) != arg:
            raise IpnsError("CBOR truncated")
        return items, pos
    if major == 5:
        out: dict[str, CborValue] = {}
        for _ in range(arg):
            key, pos = _cbor_item(data, pos, depth + 1)
            if not isinstance(key, str):
                raise IpnsError("DAG-CBOR map keys are strings")
            if key in out:
                raise IpnsError("CBOR map with a repeated key")
            out[key], pos = _cbor_item(data, pos, depth + 1)
        return out, pos
    if major == 6:
        if arg != 42:
            raise IpnsError("DAG-CBOR allows tag 42 only")
        return _cbor_item(data, pos, depth + 1)  # a CID: kept as its bytes
    if info == 20 or info == 21:
        return info == 21, pos
    if info == 22:
        return None, pos
    if info == 27:
        import struct
        return struct.unpack(">d", arg.to_bytes(8, "big"))[0], pos
    raise IpnsError("CBOR simple value not in DAG-CBOR")


def cbor_decode(data: bytes) -> CborValue:
    value, end = _cbor_item(data, 0, 0)
    if end != len(data):
        raise IpnsError("bytes after the CBOR item")
    return value


def _cbor_head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes([major << 5 | arg])
    for info, n in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 1 << (8 * n):
            return bytes([major << 5 | info]) + arg.to_bytes(n, "big")
    raise ValueError("CBOR argument over 64 bits")


def cbor_encode_record_data(fields: dict[str, int | bytes]) -> bytes:
    """A DAG-CBOR map of ints and bytes, keys sorted as DAG-CBOR sorts them (length, then bytes)."""
    out = [_cbor_head(5, len(fields))]
    for key in sorted(fields, key=lambda k: (len(k.encode()), k.encode())):
        out.append(_cbor_head(3, len(key.encode())) + key.encode())
        value = fields[key]
        if isinstance(value, bytes):
            out.append(_cbor_head(2, len(value)) + value)
        elif value >= 0:
            out.append(_cbor_head(0, value))
        else:
            out.append(_cbor_head(1, -1 - value))
    return b"".join(out)


# ---- the record ------------------------------------------------------------------------------

@dataclass
class IpnsRecord:
    value: bytes | None = None
    signature_v1: bytes | None = None
    validity_type: int | None = None
    validity: bytes | None = None
    sequence: int | None = None
    ttl: int | None = None
    pub_key: bytes | None = None
    signature_v2: bytes | None = None
    data: bytes | None = None

    def encode(self) -> bytes:
        out = []
        for number, v in ((1, self.value), (2, self.signature_v1)):
            if v is not None:
                out.append(pb.field_bytes(number, v))
        if self.validity_type is not None:
            out.append(pb.field_varint(3, self.validity_type))
        if self.validity is not None:
            out.append(pb.field_bytes(4, self.validity))
        if self.sequence is not None:
            out.append(pb.field_varint(5, self.sequence))
        if self.ttl is not None:
            out.append(pb.field_varint(6, self.ttl))
        for number, v in ((7, self.pub_key), (8, self.signature_v2), (9, self.data)):
            if v is not None:
                out.append(pb.field_bytes(number, v))
        return b"".join(out)

    @classmethod
    def decode(cls, raw: bytes) -> IpnsRecord:
        if len(raw) > MAX_RECORD_SIZE:
            raise IpnsError(f"IPNS record of {len(raw)} bytes (max {MAX_RECORD_SIZE})")
        r = cls()
        try:
            for number, wtype, v in pb.iter_fields(raw):
                if number == 1:
                    r.value = pb.expect_bytes(wtype, v, "value")
                elif number == 2:
                    r.signature_v1 = pb.expect_bytes(wtype, v, "signatureV1")
                elif number == 3:
                    r.validity_type = pb.expect_varint(wtype, v, "validityType")
                elif number == 4:
                    r.validity = pb.expect_bytes(wtype, v, "validity")
                elif number == 5:
                    r.sequence = pb.expect_varint(wtype, v, "sequence")
                elif number == 6:
                    r.ttl = pb.expect_varint(wtype, v, "ttl")
                elif number == 7:
                    r.pub_key = pb.expect_bytes(wtype, v, "pubKey")
                elif number == 8:
                    r.signature_v2 = pb.expect_bytes(wtype, v, "signatureV2")
                elif number == 9:
                    r.data = pb.expect_bytes(wtype, v, "data")
        except IpnsError:
            raise
        except DecodeError as exc:
            raise IpnsError(f"invalid IPNS record: {exc}") from None
        return r

    def fields(self) -> dict[str, CborValue]:
        """The DAG-CBOR `data` map (go refuses a record without it)."""
        if not self.data:
            raise IpnsError("IPNS record without data")
        fields = cbor_decode(self.data)
        if not isinstance(fields, dict):
            raise IpnsError("IPNS data is not a map")
        return fields


def _int(fields: dict[str, CborValue], key: str) -> int:
    v = fields.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise IpnsError(f"IPNS data has no integer {key}")
    return v


def _bytes(fields: dict[str, CborValue], key: str) -> bytes:
    v = fields.get(key)
    if not isinstance(v, bytes):
        raise IpnsError(f"IPNS data has no bytes {key}")
    return v


_RFC3339 = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def parse_eol(raw: bytes) -> float:
    """go's time.Parse(RFC3339Nano): Unix seconds (float) of an RFC 3339 time."""
    m = _RFC3339.fullmatch(raw)
    if m is None:
        raise IpnsError(f"IPNS validity {raw[:64]!r} is not RFC 3339")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = int((m.group(7) or b"0").ljust(9, b"0"))
    zone = m.group(8)
    try:
        base = datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise IpnsError("IPNS validity is not a valid date") from None
    offset = 0 if zone == b"Z" else (int(zone[1:3]) * 60 + int(zone[4:6])) * 60 * (1 if zone[:1] == b"+" else -1)
    return base - offset + frac / 1e9


def format_eol(t: float) -> bytes:
    """An EOL as go's ipns package writes it (RFC3339Nano, UTC, trailing zeros dropped)."""
    ns = int(round(t * 1e9))
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
            + (f".{frac}" if frac else "") + "Z").encode()


def name_of(key: bytes) -> PeerId:
    """The peer ID of an `/ipns/<peer ID bytes>` routing key."""
    if not key.startswith(PREFIX):
        raise IpnsError("not an /ipns/ key")
    try:
        return PeerId(key[len(PREFIX):])
    except P2PError as exc:
        raise IpnsError(f"bad IPNS name: {exc}") from None


def check(key: bytes, raw: bytes, now: float) -> IpnsRecord:
    """boxo ipns Validator.Validate; returns the record or raises IpnsError."""
    name = name_of(key)
    rec = IpnsRecord.decode(raw)
    if not rec.signature_v2:
        raise IpnsError("IPNS record without signatureV2")
    fields = rec.fields()
    try:
        if rec.pub_key is not None:
            pk = PublicKey.from_protobuf(rec.pub_key)
            if PeerId.from_public_key(pk) != name:
                raise IpnsError("IPNS record key does not match its name")
        else:
            inlined = name.extract_public_key()
            if inlined is None:
                raise IpnsError("IPNS name does not inline its key and the record has none")
            pk = inlined
    except IpnsError:
        raise
    except (P2PError, ValueError) as exc:
        raise IpnsError(f"IPNS public key: {exc}") from None
    if not pk.verify(SIGNATURE_PREFIX + (rec.data or b""), rec.signature_v2):
        raise IpnsError("bad IPNS signatureV2")
    if rec.signature_v1 or rec.value:  # v1-compatible: the protobuf fields must match the CBOR
        if (rec.value or b"") != _bytes(fields, "Value") \
                or (rec.validity or b"") != _bytes(fields, "Validity") \
                or (rec.validity_type or 0) != _int(fields, "ValidityType") \
                or (rec.sequence or 0) != _int(fields, "Sequence") \
                or (rec.ttl or 0) != _int(fields, "TTL"):
            raise IpnsError("IPNS protobuf fields do not match its data")
    if _int(fields, "ValidityType") != 0:
        raise IpnsError("IPNS validity type is not EOL")
    if parse_eol(_bytes(fields, "Validity")) < now:
        raise IpnsError("IPNS record expired")
    return rec


def _rank(raw: bytes) -> tuple[int, int, float, bytes]:
    rec = IpnsRecord.decode(raw)
    fields = rec.fields()
    return (1 if rec.signature_v2 is not None else 0, _int(fields, "Sequence"),
            parse_eol(_bytes(fields, "Validity")), raw)


class IpnsValidator:
    """The `ipns` namespace (go's default validator, and masa's)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def validate(self, key: bytes, value: bytes) -> bool:
        try:
            check(key, value, self._clock())
        except IpnsError:
            return False
        return True

    def select(self, key: bytes, values: list[bytes]) -> int:
        """go's selectRecord: the first of the best (V2, sequence, EOL, then bytes)."""
        best, best_rank = 0, None
        for i, raw in enumerate(values):
            try:
                rank = _rank(raw)
            except IpnsError:
                continue
            if best_rank is None or rank > best_rank:
                best, best_rank = i, rank
        return best


def make_record(identity: PrivateKey, value: bytes, sequence: int, eol: float, ttl_ns: int, *,
                v1_compatible: bool = True) -> bytes:
    """An IPNS record signed by `identity` as go's ipns.NewRecord makes it (signatureV1 too when
    `v1_compatible`, over value ‖ validity ‖ "EOL"); the key goes in the record only when the
    peer ID cannot inline it."""
    validity = format_eol(eol)
    data = cbor_encode_record_data({"Value": value, "Validity": validity, "ValidityType": 0,
                                    "Sequence": sequence, "TTL": ttl_ns})
    rec = IpnsRecord(data=data, signature_v2=identity.sign(SIGNATURE_PREFIX + data))
    if v1_compatible:
        rec.value, rec.validity, rec.validity_type = value, validity, 0
        rec.sequence, rec.ttl = sequence, ttl_ns
        rec.signature_v1 = identity.sign(value + validity + b"EOL")
    if PeerId.from_public_key(identity.public_key).extract_public_key() is None:
        rec.pub_key = identity.public_key.to_protobuf()
    return rec.encode()


def routing_key(peer: PeerId) -> bytes:
    return PREFIX + peer.to_bytes()
