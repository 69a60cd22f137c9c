"""Hostile peers against our Kademlia (in-process hosts; the attacker writes raw kad bytes).

As a server: oversized, malformed and unknown requests and request floods get the stream reset and
the node keeps answering honest requests. As a client: a peer answering with thousands of peers,
garbage, nothing at all, or addresses of other peers is dropped from the table, its stream reset,
and it poisons neither the lookup nor the peerstore.
"""

from __future__ import annotations

import anyio
import pytest
from multiaddr import Multiaddr

from kit import reset_seen

from p2p import delimited
from p2p.host import Host
from p2p.identity import PeerId
from p2p.kad.config import KadConfig
from p2p.kad.messages import KadDecodeError, Message, MessageType, PeerEntry
from p2p.kad.service import KadService, PeerNotFound

pytestmark = pytest.mark.anyio
PROTO = "/ipfs/kad/1.0.0"


@pytest.mark.parametrize("payload", [
    delimited.varint.encode(5 << 20),  # announces 5 MiB (> go's 4 MiB): refused before buffering
    delimited.encode(b"\x08\x09"),  # unknown message type
    delimited.encode(b"\x12\x05ab"),  # truncated field
    delimited.encode(b"\x08\x04"),  # FIND_NODE without a key (go: error -> reset)
    delimited.encode(b"\x08\x03\x12" + bytes([81]) + bytes(81)),  # GET_PROVIDERS key > 80 bytes
    delimited.encode(b"\x12\x07/nope/x\x1a\x0b\x0a\x07/nope/x\x12\x00"),  # PUT_VALUE, no validator
    b"\xff" * 10,  # malformed length
])
async def test_bad_requests_reset_the_stream(payload):
    with anyio.fail_after(30):
        async with Host() as victim, Host() as attacker:
            await victim.listen()
            KadService(victim)
            peer = await attacker.connect(victim.p2p_addrs()[0])
            s = await attacker.new_stream(peer, [PROTO])
            await s.send(payload)
            assert await reset_seen(s)
            # and the victim still answers an honest request on a new stream
            honest = KadService(attacker, KadConfig(mode="client"))
            await honest.ping(peer, timeout=5)


async def test_request_flood_is_cut_off():
    with anyio.fail_after(30):
        async with Host() as victim, Host() as attacker:
            await victim.listen()
            svc = KadService(victim, KadConfig(requests_per_second=10, request_burst=20))
            answered = []
            real = svc.handle_request
            svc.handle_request = lambda *a, **kw: answered.append(1) or real(*a, **kw)
            peer = await attacker.connect(victim.p2p_addrs()[0])
            s = await attacker.new_stream(peer, [PROTO])
            await s.send(delimited.encode(Message(MessageType.PING).encode()) * 500)
            assert await reset_seen(s)
            assert 20 <= len(answered) < 30  # the burst is served, then the stream is reset


async def _liar(host: Host, reply_for: callable) -> None:
    """Serve the kad protocol on `host` with hand-made replies."""
    async def handler(stream):
        reader = delimited.DelimitedReader(1 << 22)
        pending: list[bytes] = []
        while True:
            try:
                req = Message.decode(await delimited.read_message(stream, reader, pending))
            except anyio.EndOfStream:
                return
            data = reply_for(req)
            if data is None:
                await anyio.sleep(3600)  # never answers
            await stream.send(data)
    host.set_stream_handler(PROTO, handler)


async def test_reply_with_thousands_of_peers_drops_the_liar():
    with anyio.fail_after(30):
        async with Host() as us, Host() as liar:
            await liar.listen()
            fake = [PeerEntry(PeerId(b"\x12\x20" + i.to_bytes(32, "big")).to_bytes(),
                              [Multiaddr("/ip4/127.0.0.1/tcp/1").to_bytes()]) for i in range(5000)]
            big = delimited.encode(Message(MessageType.FIND_NODE, closer_peers=fake).encode())
            await _liar(liar, lambda req: big)
            dht = KadService(us, KadConfig(request_timeout=5))
            await dht.bootstrap(liar.p2p_addrs(), self_lookup=False)
            assert liar.peer_id in dht.routing_table
            with pytest.raises(KadDecodeError, match="more than 256 peers"):
                await dht.find_node(liar.peer_id, b"key")
            assert liar.peer_id not in dht.routing_table
            assert len(us.peerstore.peers()) <= 3  # nothing of the 5000 was stored


async def test_garbage_and_silent_peers_fail_the_query_not_the_lookup():
    with anyio.fail_after(30):
        async with Host() as us, Host() as junk, Host() as mute, Host() as honest:
            for h in (junk, mute, honest):
                await h.listen()
            await _liar(junk, lambda req: b"\x05\xff\xff\xff\xff\xff")
            await _liar(mute, lambda req: None)
            KadService(honest)
            dht = KadService(us, KadConfig(request_timeout=1.0))
            for h in (junk, mute, honest):
                await us.connect(h.p2p_addrs()[0])
                dht.routing_table.try_add(h.peer_id, 0.0)
            t0 = anyio.current_time()
            closest = await dht.get_closest_peers(b"anything", timeout=10)
            assert closest == [honest.peer_id]
            assert dht.last_lookup is not None and dht.last_lookup.failures == 2
            assert anyio.current_time() - t0 < 5  # the silent peer cost one request timeout
            assert junk.peer_id not in dht.routing_table


async def test_addresses_of_other_peers_do_not_poison_the_peerstore():
    """A liar claims that `victim` listens at the liar's own address (and at a dead port)."""
    with anyio.fail_after(30):
        async with Host() as us, Host() as liar, Host() as victim:
            await liar.listen()
            await victim.listen()
            KadService(victim)
            lie = [PeerEntry(victim.peer_id.to_bytes(),
                             [a.to_bytes() for a in liar.listen_addrs()]
                             + [Multiaddr("/ip4/127.0.0.1/tcp/9").to_bytes(),
                                Multiaddr("/dns4/example.com/tcp/80").to_bytes()])]
            await _liar(liar, lambda req: delimited.encode(
                Message(MessageType.FIND_NODE, closer_peers=lie).encode()))
            dht = KadService(us, KadConfig(request_timeout=3))
            await dht.bootstrap(liar.p2p_addrs(), self_lookup=False)
            with pytest.raises(PeerNotFound):
                await dht.find_peer(victim.peer_id, timeout=8)
            assert us.peerstore.addrs(victim.peer_id) == []  # no unproven address kept
            assert us.connection(victim.peer_id) is None
