"""IPNS records and the `ipns` validator (p2p/kad/ipns.py) from records go's boxo v0.21.0 makes
(`godht vectors`: a fixed Ed25519 key, so the signatures are deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.kad.ipns import (IpnsError, IpnsRecord, IpnsValidator, cbor_decode, check, make_record,
                          parse_eol, routing_key)

VEC = {k: bytes.fromhex(v) for k, v in
       json.loads((Path(__file__).parent / "godht_vectors.json").read_text()).items()}
EOL_2100 = 4102444800.0  # 2100-01-01T00:00:00Z
NOW = 1795939526.0  # 2026-11-29


def _key() -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = bytes(range(1, 33))
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return PrivateKey.from_protobuf(b"\x08\x01\x12\x40" + seed + pub)


def test_go_records_are_valid_and_ours_are_byte_identical():
    key = VEC["ipns_key"]
    assert key == routing_key(PeerId(VEC["peer_id"]))
    v = IpnsValidator(clock=lambda: NOW)
    for name, v1 in (("ipns_record", True), ("ipns_record_v2only", False)):
        raw = VEC[name]
        assert v.validate(key, raw)
        rec = check(key, raw, NOW)
        assert rec.fields() == {"Value": b"/ipfs/bafkqaaa", "Validity": b"2100-01-01T00:00:00Z",
                                "ValidityType": 0, "Sequence": 7, "TTL": 3600 * 10**9}
        assert (rec.signature_v1 is not None) == v1 and rec.pub_key is None  # Ed25519: inlined
        assert make_record(_key(), b"/ipfs/bafkqaaa", 7, EOL_2100, 3600 * 10**9,
                           v1_compatible=v1) == raw
        assert IpnsRecord.decode(raw).encode() == raw


def test_invalid_records_are_refused():
    key, raw = VEC["ipns_key"], VEC["ipns_record"]
    v = IpnsValidator(clock=lambda: NOW)
    assert not IpnsValidator(clock=lambda: EOL_2100 + 1).validate(key, raw)  # expired
    other = PrivateKey.generate(KeyType.Ed25519)
    assert not v.validate(routing_key(PeerId.from_public_key(other.public_key)), raw)  # other name
    rec = IpnsRecord.decode(raw)
    rec.value = b"/ipfs/other"  # protobuf no longer matches the signed data
    assert not v.validate(key, rec.encode())
    rec = IpnsRecord.decode(VEC["ipns_record_v2only"])
    rec.signature_v2 = bytes(64)
    assert not v.validate(key, rec.encode())
    rec.signature_v2 = None
    assert not v.validate(key, rec.encode())
    assert not v.validate(key, raw + b"\x52" + bytes([0xff]) + b"\x01" + bytes(10 << 10))  # > 10 KiB
    assert not v.validate(b"/pk/" + VEC["peer_id"], raw) and not v.validate(b"/ipns/xx", raw)
    # an RSA name carries its key in the record; a record whose key is not the name's is refused
    rsa = PrivateKey.generate(KeyType.RSA)
    rsa_raw = make_record(rsa, b"/ipfs/x", 1, EOL_2100, 0)
    rsa_key = routing_key(PeerId.from_public_key(rsa.public_key))
    assert IpnsRecord.decode(rsa_raw).pub_key is not None and v.validate(rsa_key, rsa_raw)
    assert not v.validate(key, rsa_raw)


def test_select_prefers_v2_then_sequence_then_eol():
    k = _key()
    v = IpnsValidator(clock=lambda: NOW)
    low = make_record(k, b"/ipfs/a", 1, EOL_2100, 0)
    high = make_record(k, b"/ipfs/b", 2, EOL_2100 - 10, 0)
    later = make_record(k, b"/ipfs/c", 2, EOL_2100, 0)
    assert v.select(VEC["ipns_key"], [low, high]) == 1
    assert v.select(VEC["ipns_key"], [high, low]) == 0
    assert v.select(VEC["ipns_key"], [high, later, low]) == 1
    assert v.select(VEC["ipns_key"], [b"garbage", low]) == 1


def test_eol_parsing_as_go():
    assert parse_eol(b"2100-01-01T00:00:00Z") == EOL_2100
    assert parse_eol(b"2100-01-01T01:00:00.5+01:00") == EOL_2100 + 0.5
    for bad in (b"2100-01-01", b"2100-13-01T00:00:00Z", b"", b"2100-01-01T00:00:00"):
        with pytest.raises(IpnsError):
            parse_eol(bad)


@pytest.mark.parametrize("data", [
    b"\x9f\x01\xff",  # indefinite array
    b"\xa1\x01\x01",  # integer map key
    b"\xa2\x61a\x01\x61a\x02",  # repeated key
    b"\xc1\x01",  # tag other than 42
    b"\x81" * 100 + b"\x01",  # nested too deep
    b"\x5a\xff\xff\xff\xff",  # byte string longer than the data
    b"\x01\x02",  # trailing bytes
    b"\xf7",  # undefined
])
def test_cbor_bounds(data):
    with pytest.raises(IpnsError):
        cbor_decode(data)


@given(st.binary(max_size=200))
def test_decode_never_raises_anything_else(data):
    try:
        IpnsRecord.decode(data).fields()
    except IpnsError:
        pass
    assert not IpnsValidator().validate(VEC["ipns_key"], data) or data == VEC["ipns_record"]
