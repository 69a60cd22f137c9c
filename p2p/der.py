"""The few ASN.1 DER shapes libp2p keys need, parsed as strictly as go parses them.

Why our own parser rather than `cryptography`'s: OpenSSL is lenient where go is strict and strict
where go is lenient, and a signature go rejects must be rejected here too (and vice versa), or a
Python and a go node disagree about who someone is. Three readers live here:

* `parse_secp256k1_signature`: decred's strict DER (dcrec/secp256k1/ecdsa `ParseDERSignature`),
  which go-libp2p uses for secp256k1: 8..72 bytes, exact lengths, no negative or zero-padded
  integers, 1 <= r, s < n (high S accepted).
* `parse_go_asn1_ecdsa_signature`: what Go's `encoding/asn1.Unmarshal` accepts for
  `struct{R, S *big.Int}`: DER lengths and minimal integers, but extra bytes inside the SEQUENCE
  and after it are ignored, and negative integers parse (the verifier then rejects them).
* `read_tlv` / `sequence_integers_prefix`: enough to sniff PKCS#1 and SEC1 private keys (version,
  RSA modulus size) before handing them to OpenSSL, so oversized keys are refused cheaply.

Every failure returns None or raises `DERError` (a `DecodeError`): never IndexError.
"""

from __future__ import annotations

from p2p.errors import DecodeError

TAG_INTEGER = 0x02
TAG_SEQUENCE = 0x30
MAX_LENGTH_BYTES = 3  # lengths below 2**24: Go's asn1 rejects >= 1<<23 anyway; keys are a few KiB


class DERError(DecodeError):
    """Malformed DER."""


def read_tlv(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    """Read one DER element at `pos`: return (tag, content_start, content_end).

    Only single-byte tags (all that keys and signatures use). Lengths must be definite and minimal.
    """
    end = len(buf)
    if pos + 2 > end:
        raise DERError("truncated DER header")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte DER tag")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0:
            raise DERError("indefinite DER length")
        if n > MAX_LENGTH_BYTES:
            raise DERError("DER length too large")
        if pos + n > end:
            raise DERError("truncated DER length")
        if buf[pos] == 0:
            raise DERError("non-minimal DER length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        if length < 0x80:
            raise DERError("non-minimal DER length")
        pos += n
    if length > end - pos:
        raise DERError("truncated DER content")
    return tag, pos, pos + length


def _minimal_integer(body: bytes) -> bool:
    """DER INTEGER contents: non-empty and minimally encoded (as Go's asn1 `checkInteger`)."""
    if not body:
        return False
    if len(body) > 1 and (
        (body[0] == 0x00 and body[1] < 0x80) or (body[0] == 0xFF and body[1] >= 0x80)
    ):
        return False
    return True


def read_integer(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a minimal DER INTEGER (two's complement) at `pos`; return (value, next_pos)."""
    tag, start, end = read_tlv(buf, pos)
    if tag != TAG_INTEGER:
        raise DERError("expected DER INTEGER")
    body = buf[start:end]
    if not _minimal_integer(body):
        raise DERError("non-minimal DER INTEGER")
    return int.from_bytes(body, "big", signed=True), end


def sequence_integers_prefix(buf: bytes, count: int) -> list[int]:
    """Return the first `count` INTEGERs of the outer SEQUENCE that must span all of `buf`."""
    tag, start, end = read_tlv(buf, 0)
    if tag != TAG_SEQUENCE or end != len(buf):
        raise DERError("expected one DER SEQUENCE")
    values = []
    pos = start
    for _ in range(count):
        if pos >= end:
            raise DERError("DER SEQUENCE too short")
        value, pos = read_integer(buf, pos)
        values.append(value)
    return values


def parse_go_asn1_ecdsa_signature(sig: bytes) -> tuple[int, int] | None:
    """Parse `SEQUENCE { INTEGER r, INTEGER s }` the way Go's `asn1.Unmarshal` does.

    Trailing bytes (after the SEQUENCE, and after `s` inside it) are ignored, as go-libp2p ignores
    them. Returns None when Go would return an error.
    """
    try:
        tag, start, end = read_tlv(sig, 0)
        if tag != TAG_SEQUENCE:
            return None
        inner = sig[:end]
        r, pos = read_integer(inner, start)
        s, _ = read_integer(inner, pos)
    except DERError:
        return None
    return r, s


def parse_secp256k1_signature(sig: bytes, order: int) -> tuple[int, int] | None:
    """Parse a secp256k1 signature with decred's strict DER rules; None if they are broken."""
    n = len(sig)
    if n < 8 or n > 72:
        return None
    if sig[0] != TAG_SEQUENCE or sig[1] != n - 2 or sig[2] != TAG_INTEGER:
        return None
    r_len = sig[3]
    r_end = 4 + r_len
    # r must leave room for the `02 len` header of s and at least one byte of s.
    if r_len == 0 or r_end + 3 > n:
        return None
    if sig[r_end] != TAG_INTEGER:
        return None
    s_len = sig[r_end + 1]
    s_start = r_end + 2
    if s_len == 0 or s_start + s_len != n:
        return None
    r_body = sig[4:r_end]
    s_body = sig[s_start:n]
    for body in (r_body, s_body):
        if body[0] & 0x80:  # negative
            return None
        if len(body) > 1 and body[0] == 0x00 and body[1] < 0x80:  # excess padding
            return None
    r = int.from_bytes(r_body, "big")
    s = int.from_bytes(s_body, "big")
    if not (1 <= r < order and 1 <= s < order):
        return None
    return r, s
