"""Hostile peers against our GossipSub (in-process hosts writing raw RPC bytes).

Oversized and malformed RPCs reset the stream and the node keeps serving honest peers; a flood of
RPCs to a slow peer is dropped at its bounded queue; IDONTWANT floods cost bounded memory; IHAVE floods and GRAFTs during backoff are in
the router's own tests (tests/core/test_pubsub_router.py).
"""

from __future__ import annotations

import anyio
import pytest

from kit import reset_seen

from p2p import delimited
from p2p.host import Host
from p2p.pubsub.router import MESHSUB_11, MESHSUB_12
from p2p.pubsub.rpc import RPC, Control, SubOpts
from p2p.pubsub.service import PubSubService

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("payload", [
    delimited.varint.encode((1 << 20) + 1),  # over go's 1 MiB: refused before buffering
    delimited.encode(b"\x0a\x03\x12\x01\xff"),  # topic not UTF-8
    delimited.encode(b"\x1a\x02\x0a\x09"),  # truncated control entry
    b"\xff" * 10,  # malformed length
])
async def test_bad_rpcs_reset_the_stream(payload):
    with anyio.fail_after(30):
        async with Host() as victim, Host() as attacker, Host() as honest:
            await victim.listen()
            ps = PubSubService(victim)
            ps.subscribe("t")
            peer = await attacker.connect(victim.p2p_addrs()[0])
            s = await attacker.new_stream(peer, [MESHSUB_11])
            await s.send(delimited.encode(RPC(subscriptions=[SubOpts(True, "t")]).encode()) + payload)
            assert await reset_seen(s)
            # an honest peer still gets through: it subscribes and receives a message
            hps = PubSubService(honest)
            sub = hps.subscribe("t")
            await honest.connect(victim.p2p_addrs()[0])
            with anyio.fail_after(10):
                while honest.peer_id not in ps.mesh_peers("t") or victim.peer_id not in hps.mesh_peers("t"):
                    await anyio.sleep(0.02)
                await ps.publish("t", b"still here")
                assert (await sub.receive()).data == b"still here"


async def test_slow_peer_queue_is_bounded():
    """A peer that never reads: what we send it waits in a queue of 32 RPCs, the rest is dropped."""
    with anyio.fail_after(30):
        async with Host() as us, Host() as sink:
            await us.listen()
            ps = PubSubService(us, outbound_queue_size=32)
            ps.subscribe("t")

            async def never_read(stream):
                await anyio.sleep(3600)
            sink.set_stream_handler(MESHSUB_11, never_read)
            peer = await sink.connect(us.p2p_addrs()[0])
            s = await sink.new_stream(peer, [MESHSUB_11])
            await s.send(delimited.encode(RPC(subscriptions=[SubOpts(True, "t")]).encode()))
            with anyio.fail_after(10):
                while sink.peer_id not in ps.topic_peers("t") or sink.peer_id not in ps._outbound \
                        or not ps._outbound[sink.peer_id].ready:
                    await anyio.sleep(0.02)
            for i in range(3000):
                await ps.publish("t", bytes(2000) + i.to_bytes(4, "big"))
                if i % 100 == 0:
                    await anyio.sleep(0)
            out = ps._outbound[sink.peer_id]
            assert out.dropped > 0
            assert out.send.statistics().current_buffer_used <= 32


async def test_peer_writing_on_our_outbound_stream_is_dropped():
    """We only write on the stream we open (go likewise): bytes coming back on it end the peer."""
    with anyio.fail_after(30):
        async with Host() as us, Host() as odd:
            await us.listen()
            ps = PubSubService(us)
            ps.subscribe("t")
            got_stream = anyio.Event()

            async def talk_back(stream):
                await stream.send(b"\x00")  # writes on the stream we opened to it
                got_stream.set()
                await anyio.sleep(3600)
            odd.set_stream_handler(MESHSUB_11, talk_back)
            await odd.connect(us.p2p_addrs()[0])
            await got_stream.wait()
            with anyio.fail_after(10):
                while odd.peer_id in ps._outbound:
                    await anyio.sleep(0.02)
            assert odd.peer_id not in ps.router.peers


async def test_rpc_flood_resets_the_stream():
    with anyio.fail_after(30):
        async with Host() as victim, Host() as attacker:
            await victim.listen()
            ps = PubSubService(victim, rpc_rate=50, rpc_burst=100)
            ps.subscribe("t")
            handled = []
            real = ps._on_rpc
            ps._on_rpc = lambda *a: handled.append(1) or real(*a)
            peer = await attacker.connect(victim.p2p_addrs()[0])
            s = await attacker.new_stream(peer, [MESHSUB_11])
            await s.send(delimited.encode(RPC(subscriptions=[SubOpts(True, "t")]).encode()) * 1000)
            assert await reset_seen(s)
            assert 90 <= len(handled) <= 110  # the burst, then the reset


async def test_idontwant_flood_costs_bounded_memory_and_oversized_lists_reset():
    """IDONTWANT (v1.2) from a hostile peer: 300 RPCs of 1000 fresh IDs each (within the RPC rate)
    leave at most 1000 IDs remembered for it per heartbeat (3000 at most, over go's 3-heartbeat
    TTL), long IDs are kept as 32-byte digests, and one RPC listing more than 5000 IDs resets the
    stream; honest traffic flows meanwhile."""
    with anyio.fail_after(60):
        async with Host() as victim, Host() as attacker, Host() as honest:
            await victim.listen()
            ps = PubSubService(victim)
            ps.subscribe("t")
            hps = PubSubService(honest)
            sub = hps.subscribe("t")
            await honest.connect(victim.p2p_addrs()[0])
            peer = await attacker.connect(victim.p2p_addrs()[0])
            s = await attacker.new_stream(peer, [MESHSUB_12])
            await s.send(delimited.encode(RPC(subscriptions=[SubOpts(True, "t")]).encode()))
            for n in range(300):
                ids = [n.to_bytes(4, "big") + i.to_bytes(60, "big") for i in range(1000)]
                await s.send(delimited.encode(RPC(control=Control(idontwant=[ids])).encode()))
                if n % 50 == 0:
                    await anyio.sleep(0)
            with anyio.fail_after(10):
                while ps.router._dontwant_ids.get(attacker.peer_id, 0) == 0 and \
                        not ps.router.unwanted.get(attacker.peer_id):
                    await anyio.sleep(0.01)
            await anyio.sleep(0.5)  # the rest of the flood is read
            kept = ps.router.unwanted.get(attacker.peer_id, {})
            assert 1000 <= len(kept) <= 3 * 1000 and all(len(k) == 33 for k in kept)
            assert len(victim.connected_peers()) == 2
            # over the decoder's 5000 IDs per RPC: the stream is reset
            await s.send(delimited.encode(RPC(control=Control(idontwant=[[b"%06d" % i for i in range(5001)]])).encode()))
            assert await reset_seen(s)
            with anyio.fail_after(10):
                while honest.peer_id not in ps.mesh_peers("t") or victim.peer_id not in hps.mesh_peers("t"):
                    await anyio.sleep(0.02)
            await ps.publish("t", b"still here")
            assert (await sub.receive()).data == b"still here"
