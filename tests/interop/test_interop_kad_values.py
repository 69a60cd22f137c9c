"""GET_VALUE / PUT_VALUE between our kad client/server and go-libp2p-kad-dht v0.26.1 as masa runs
it (godht, `/masa/kad/1.0.0`, K = 100, validators `pk`, `ipns` and masa's `db` that accepts
anything and selects index 0).

IPNS both ways: a Go node's record (boxo's NewRecord, via go's PutValue) is stored by our server
and found by our GetValue; ours (make_record, secp256k1 name) is accepted by every Go node and a
higher sequence replaces it there, while a lower one is refused (go: "old record", stream reset).

We put a `db` record (masa's validators write `/db/<peerId>` -> NodeData) and a `pk` record (our
public key under our peer ID): go's GetValue finds both and the Go nodes closest to the key hold
them. Go puts a `db` record: our GetValue finds it, and our server stored go's PUT_VALUE. A newer
`db` value replaces the old one everywhere (select index 0). A `pk` record naming another peer's
key is refused by go (it resets the stream: nobody stores it) and by us.
"""

from __future__ import annotations

import json
import time

import anyio
import pytest

from godht import MASA_DHT, GoDhtError
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.kad.config import masa_config
from p2p.kad.ipns import IpnsRecord, make_record, routing_key
from p2p.kad.messages import Message, MessageType, Record
from p2p.kad.service import KadService, ValueNotFound

pytestmark = pytest.mark.anyio

GO_NODES = 8


async def test_values_both_ways_with_masa_validators(start_godht):
    net = start_godht("-n", GO_NODES, *MASA_DHT, "-alpha", 10)
    with anyio.fail_after(120):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as h:
            await h.listen()
            dht = KadService(h, masa_config())
            await dht.bootstrap([net.addr(0)])
            with anyio.fail_after(20):  # every Go node's table holds us (they PUT to us too)
                for i in range(GO_NODES):
                    while str(h.peer_id) not in (await net.acall("rt", node=i))["peers"]:
                        await anyio.sleep(0.05)

            # ours -> go: db and pk
            db_key = f"/db/{h.peer_id}".encode()
            node_data = json.dumps({"peerId": str(h.peer_id), "isStaked": True}).encode()
            stored = await dht.put_value(db_key, node_data, timeout=20)
            assert stored == GO_NODES  # with K = 100 every Go node is among the closest
            pk_key = b"/pk/" + h.peer_id.to_bytes()
            pk_value = h.identity.public_key.to_protobuf()
            assert await dht.put_value(pk_key, pk_value, timeout=20) == GO_NODES
            for i in (1, 5):
                got = await net.acall("getvalue", node=i, key=db_key.hex())
                assert bytes.fromhex(got["data"]) == node_data
                assert bytes.fromhex((await net.acall("getlocal", node=i, key=pk_key.hex()))["data"]) == pk_value

            # go -> ours: go's PutValue reaches our server; our GetValue finds it
            go3 = net.peer_id(3)
            go_key = f"/db/{go3}".encode()
            go_data = json.dumps({"peerId": go3, "isWebScraper": True}).encode()
            await net.acall("putvalue", node=3, key=go_key.hex(), data=go_data.hex(), timeout_ms=20000)
            held = dht.records.get(go_key, dht._now())
            assert held is not None and held[0] == go_data  # go's PUT_VALUE to us, stored
            dht.records._records.pop(go_key)  # forget it: the next answer comes from go
            assert await dht.get_value(go_key, timeout=20) == go_data

            # a newer db value replaces the old one at go (select index 0) and here
            newer = json.dumps({"peerId": str(h.peer_id), "isStaked": False}).encode()
            assert await dht.put_value(db_key, newer, timeout=20) == GO_NODES
            got = await net.acall("getlocal", node=2, key=db_key.hex())
            assert bytes.fromhex(got["data"]) == newer
            assert await dht.get_value(db_key, quorum=3, timeout=20) == newer

            # a pk record whose key is not the one of the peer ID in its key
            liar_key = b"/pk/" + PeerId.from_string(go3).to_bytes()
            assert not dht.records.validate(liar_key, pk_value)
            go0 = PeerId.from_string(net.peer_id(0))
            with pytest.raises(Exception):  # go resets the stream on a refused record
                await dht.request(go0, Message(MessageType.PUT_VALUE, key=liar_key,
                                               record=Record(liar_key, pk_value, "")), timeout=5)
            with pytest.raises(GoDhtError):
                await net.acall("getlocal", node=0, key=liar_key.hex())
            # IPNS: go -> ours
            put = await net.acall("putipns", node=4, count=5, timeout_ms=20000)
            go4_key = bytes.fromhex(put["key"])
            assert go4_key == routing_key(PeerId.from_string(net.peer_id(4)))
            held = dht.records.get(go4_key, dht._now())
            assert held is not None and held[0] == bytes.fromhex(put["data"])  # our server
            dht.records._records.pop(go4_key)
            got_ipns = await dht.get_value(go4_key, timeout=20)
            assert IpnsRecord.decode(got_ipns).fields()["Sequence"] == 5
            # IPNS: ours -> go
            my_ipns = routing_key(h.peer_id)
            now = time.time()
            rec3 = make_record(h.identity, b"/ipfs/bafkqaaa", 3, now + 3600, 3600 * 10**9)
            assert await dht.put_value(my_ipns, rec3, timeout=20) == GO_NODES
            got = await net.acall("getvalue", node=6, key=my_ipns.hex())
            assert bytes.fromhex(got["data"]) == rec3
            rec4 = make_record(h.identity, b"/ipfs/bafkqaaa", 4, now + 3600, 3600 * 10**9)
            assert await dht.put_value(my_ipns, rec4, timeout=20) == GO_NODES
            got = await net.acall("getlocal", node=6, key=my_ipns.hex())
            assert bytes.fromhex(got["data"]) == rec4
            with pytest.raises(Exception):  # a lower sequence: go's "old record", a reset
                await dht.request(PeerId.from_string(net.peer_id(6)), Message(
                    MessageType.PUT_VALUE, key=my_ipns, record=Record(my_ipns, rec3, "")), timeout=5)
            got = await net.acall("getlocal", node=6, key=my_ipns.hex())
            assert bytes.fromhex(got["data"]) == rec4
            # a newer record held by one Go node only: our GetValue (a GET_VALUE lookup) picks
            # it by sequence and, as go's updatePeerValues, gives it to the closest peers
            # that answered with an older one
            rec5 = make_record(h.identity, b"/ipfs/bafkqaaa", 5, now + 3600, 3600 * 10**9)
            await dht.request(PeerId.from_string(net.peer_id(7)), Message(
                MessageType.PUT_VALUE, key=my_ipns, record=Record(my_ipns, rec5, "")))
            before = dht.sender.requests
            assert await dht.get_value(my_ipns, timeout=20) == rec5
            print(f"kad GetValue: {dht.sender.requests - before} requests "
                  f"({GO_NODES} Go nodes, K = 100)")
            assert dht.sender.requests - before <= GO_NODES  # GET_VALUEs only, no FIND_NODE pass
            with anyio.fail_after(10):
                while bytes.fromhex((await net.acall("getlocal", node=6, key=my_ipns.hex()))["data"]) != rec5:
                    await anyio.sleep(0.05)

            # a key nobody holds: ValueNotFound once the peers closest to it were asked
            with pytest.raises(ValueNotFound):
                await dht.get_value(b"/db/nobody-put-this", timeout=20)
