"""Our GossipSub in a network of go-libp2p-pubsub v0.12.0 nodes (the godht program, default
NewGossipSub options as masa runs them: StrictSign, no scoring, no PX, no flood publishing).

Eight Go nodes and two Python nodes subscribe to one topic; every message published by any of them
reaches every subscriber exactly once; a message with a forged signature is neither delivered nor
relayed by anyone, Go or Python. Go's RPC encodings are the core vectors (test_interop_kad checks
the whole vector file against go).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import anyio
import pytest

from godht import GoDht
from p2p import delimited
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.pubsub.rpc import RPC, PubMessage
from p2p.pubsub.service import PubSubService
from p2p.pubsub.sign import sign

pytestmark = pytest.mark.anyio

GO_NODES = 8
TOPIC = "/masa/gossip/v0.8.4"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def gossip_net(godht_bin: Path):
    net = GoDht("-n", GO_NODES, "-topics", TOPIC, binary=godht_bin)
    yield net
    net.stop()
    print("--- godht stderr ---\n" + net.stderr_text()[-5000:])


async def _go_messages(net: GoDht, i: int) -> list[dict]:
    return (await net.acall("messages", node=i, topic=TOPIC))["messages"]


async def test_every_subscriber_gets_every_message_once(gossip_net: GoDht):
    net = gossip_net
    latencies: dict[str, list[float]] = {"go->go": [], "go->py": [], "py->go": [], "py->py": []}
    with anyio.fail_after(90):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as h1, \
                Host(PrivateKey.generate(KeyType.Secp256k1)) as h2:
            ps = {}
            subs = {}
            received: dict[Host, list] = {h1: [], h2: []}
            for h in (h1, h2):
                await h.listen()
                ps[h] = PubSubService(h)
                subs[h] = ps[h].subscribe(TOPIC)
            await h1.connect(net.addr(0))
            await h1.connect(net.addr(3))
            await h2.connect(net.addr(5))
            await h2.connect(h1.p2p_addrs()[0])
            # Go sees our subscriptions (hello) and we see theirs; meshes form on the heartbeat.
            with anyio.fail_after(15):
                for i in (0, 3, 5):
                    while str(h1.peer_id if i != 5 else h2.peer_id) not in \
                            (await net.acall("topicpeers", node=i, topic=TOPIC))["peers"]:
                        await anyio.sleep(0.05)
                while not (ps[h1].mesh_peers(TOPIC) and ps[h2].mesh_peers(TOPIC)):
                    await anyio.sleep(0.05)
            # One more heartbeat everywhere: the Go nodes' meshes take us in (go has no API to
            # watch its mesh). A message published into a mesh still being built reaches only
            # part of the network, in go as here: flood publishing is off by default.
            await anyio.sleep(1.2)

            async def collect(h: Host) -> None:
                async for msg in subs[h]:
                    received[h].append((msg, time.time() * 1000))

            async with anyio.create_task_group() as tg:
                for h in (h1, h2):
                    tg.start_soon(collect, h)
                published = {}  # data -> (publisher, wall ms)
                for n in range(3):
                    for i in (1, 6):
                        data = f"go{i}-{n}".encode()
                        res = await net.acall("publish", node=i, topic=TOPIC, data=data.hex())
                        published[data] = (f"go{i}", res["at_ms"])
                    for name, h in (("py1", h1), ("py2", h2)):
                        data = f"{name}-{n}".encode()
                        published[data] = (name, time.time() * 1000)
                        await ps[h].publish(TOPIC, data)

                # Every Go node and every Python node gets each message exactly once.
                with anyio.move_on_after(20):
                    while True:
                        go_got = [await _go_messages(net, i) for i in range(GO_NODES)]
                        if all(len(m) >= len(published) for m in go_got) and \
                                all(len(received[h]) >= len(published) for h in (h1, h2)):
                            break
                        await anyio.sleep(0.1)
                go_got = [await _go_messages(net, i) for i in range(GO_NODES)]
                missing = {f"go{i}": set(published) - {bytes.fromhex(m["data"]) for m in msgs}
                           for i, msgs in enumerate(go_got)}
                missing.update({name: set(published) - {m.data for m, _ in received[h]}
                                for name, h in (("py1", h1), ("py2", h2))})
                assert not any(missing.values()), (missing, ps[h1].mesh_peers(TOPIC),
                                                   ps[h2].mesh_peers(TOPIC))
                await anyio.sleep(0.5)  # duplicates, if any, would arrive now
                go_got = [await _go_messages(net, i) for i in range(GO_NODES)]
                tg.cancel_scope.cancel()

            for i, msgs in enumerate(go_got):
                datas = [bytes.fromhex(m["data"]) for m in msgs]
                assert sorted(datas) == sorted(published), (i, datas)  # go delivers its own too
                assert len(datas) == len(set(datas))
                assert all(m["signed"] for m in msgs)
                for m in msgs:
                    who, at = published[bytes.fromhex(m["data"])]
                    latencies[("go" if who.startswith("go") else "py") + "->go"].append(m["at_ms"] - at)
            for h in (h1, h2):
                datas = [m.data for m, _ in received[h]]
                assert sorted(datas) == sorted(published) and len(datas) == len(set(datas))
                for m, at in received[h]:
                    who, t0 = published[m.data]
                    latencies[("go" if who.startswith("go") else "py") + "->py"].append(at - t0)
                    assert str(m.author).startswith("16Uiu2") and len(m.seqno) == 8

            # A forged message (signed by another key) pushed by h1 straight to its Go peers and
            # to h2: nobody delivers it, nobody relays it; a good one sent after it arrives.
            forger = PrivateKey.generate(KeyType.Secp256k1)
            forged = PubMessage(data=b"forged", seqno=(1).to_bytes(8, "big"), topic=TOPIC)
            sign(forged, forger)
            forged.from_peer = PeerId.from_string(net.peer_id(2)).to_bytes()  # claims go2 wrote it
            rpc = delimited.encode(RPC(publish=[forged]).encode())
            for peer, out in ps[h1]._outbound.items():
                out.send.send_nowait(rpc)
            await ps[h1].publish(TOPIC, b"after-forgery")
            with anyio.fail_after(10):
                while True:
                    go_got = [await _go_messages(net, i) for i in range(GO_NODES)]
                    if all(any(bytes.fromhex(m["data"]) == b"after-forgery" for m in msgs)
                           for msgs in go_got):
                        break
                    await anyio.sleep(0.1)
            await anyio.sleep(0.5)
            go_got = [await _go_messages(net, i) for i in range(GO_NODES)]
            assert not any(bytes.fromhex(m["data"]) == b"forged" for msgs in go_got for m in msgs)
            assert ps[h2].router.dropped_invalid >= 1  # h2 saw it and refused it
            with anyio.move_on_after(1):
                while True:
                    msg = await subs[h2].receive()
                    assert msg.data != b"forged"
    for k, v in latencies.items():
        v.sort()
        print(f"gossip {k}: n={len(v)} p50 {statistics.median(v):.1f} ms, "
              f"p99 {v[min(len(v) - 1, int(len(v) * 0.99))]:.1f} ms")
