"""Kad records: the validators (`pk` as go-libp2p-record, masa's `db`), GET_VALUE / PUT_VALUE as a
server (select against what we hold), from bytes go writes (`godht vectors`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.kad.config import KadConfig, masa_config
from p2p.kad.messages import Message, MessageType, Record
from p2p.kad.service import KadRequestError, KadService, _rfc3339_now
from p2p.kad.store import RecordStore
from p2p.kad.validators import AcceptAll, PublicKeyValidator, split_key

VEC = {k: bytes.fromhex(v) for k, v in
       json.loads((Path(__file__).parent / "godht_vectors.json").read_text()).items()}


def test_go_pk_record_is_valid_and_reencodes():
    msg = Message.decode(VEC["kad_put_value_pk"])
    assert msg.type is MessageType.PUT_VALUE and msg.record is not None
    assert msg.key == b"/pk/" + VEC["peer_id"] == msg.record.key
    assert PublicKeyValidator().validate(msg.key, msg.record.value)
    assert msg.encode() == VEC["kad_put_value_pk"]
    get = Message.decode(VEC["kad_get_value"])
    assert get.type is MessageType.GET_VALUE and get.key.startswith(b"/db/") and get.record is None
    assert Message(MessageType.GET_VALUE, key=get.key).encode() == VEC["kad_get_value"]


def test_pk_validator_refuses_what_go_refuses():
    v = PublicKeyValidator()
    value = Message.decode(VEC["kad_put_value_pk"]).record.value  # type: ignore[union-attr]
    other = PrivateKey.generate(KeyType.Secp256k1)
    other_id = PeerId.from_public_key(other.public_key).to_bytes()
    assert not v.validate(b"/pk/" + other_id, value)  # someone else's key
    assert v.validate(b"/pk/" + other_id, other.public_key.to_protobuf())
    assert not v.validate(b"/pk/not-a-multihash", value)
    assert not v.validate(b"/pk/" + VEC["peer_id"], b"\x08\x01\x12")  # truncated key
    assert not v.validate(b"/db/" + VEC["peer_id"], value)  # other namespace
    assert v.select(b"/pk/x", [b"a", b"b"]) == 0
    assert split_key(b"/db/a/b") == ("db", b"a/b") and split_key(b"db/x") is None
    assert split_key(b"/db") is None and split_key(b"//x") is None


def test_store_selects_by_namespace():
    store = RecordStore({"db": AcceptAll(), "legacy": lambda k, v: v == b"ok"})
    assert store.validate(b"/legacy/x", b"ok") and not store.validate(b"/legacy/x", b"no")
    assert store.select(b"/legacy/x", [b"ok", b"ok"]) == 0
    assert not store.validate(b"/other/x", b"anything")  # no validator: refused, as go
    with pytest.raises(ValueError):
        store.select(b"/other/x", [b"a"])


class NewestByNumber:
    """A test namespace whose select picks the largest number (as ipns picks the highest sequence)."""

    def validate(self, key: bytes, value: bytes) -> bool:
        return value.isdigit()

    def select(self, key: bytes, values: list[bytes]) -> int:
        return max(range(len(values)), key=lambda i: int(values[i]))


@pytest.mark.anyio
async def test_server_put_value_keeps_the_best_and_echoes_with_time_received():
    async with Host() as host:
        _server_put_value(KadService(host, KadConfig(validators={"n": NewestByNumber(),
                                                                 "db": AcceptAll()})))


def _server_put_value(dht: KadService) -> None:
    sender = PeerId.from_public_key(PrivateKey.generate().public_key)

    def put(key: bytes, value: bytes) -> Message | None:
        return dht.handle_request(sender, Message(MessageType.PUT_VALUE, key=key,
                                                  record=Record(key, value, "")))

    reply = put(b"/n/a", b"5")
    assert reply is not None and reply.record is not None and reply.record.value == b"5"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", reply.record.time_received)
    with pytest.raises(KadRequestError):
        put(b"/n/a", b"3")  # worse than the one held: go's "old record", stream reset
    put(b"/n/a", b"7")
    got = dht.handle_request(sender, Message(MessageType.GET_VALUE, key=b"/n/a"))
    assert got is not None and got.record is not None and got.record.value == b"7"
    put(b"/db/x", b"first")
    put(b"/db/x", b"second")  # masa's db: select index 0, the new one
    got = dht.handle_request(sender, Message(MessageType.GET_VALUE, key=b"/db/x"))
    assert got is not None and got.record is not None and got.record.value == b"second"
    with pytest.raises(KadRequestError):
        put(b"/n/a", b"not a number")
    with pytest.raises(KadRequestError):
        put(b"/unknown/a", b"1")
    missing = dht.handle_request(sender, Message(MessageType.GET_VALUE, key=b"/db/none"))
    assert missing is not None and missing.record is None


def test_default_validators_are_go_s_pk_and_ipns_and_masa_adds_db():
    assert set(KadConfig().validators) == {"pk", "ipns"}
    assert set(masa_config().validators) == {"pk", "ipns", "db"}
    assert _rfc3339_now().endswith("Z")
