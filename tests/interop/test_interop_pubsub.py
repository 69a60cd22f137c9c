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


@pytest.fixture(params=["gossipsub", "mixed"])
def gossip_net(request, start_godht):
    """Eight go-libp2p-pubsub nodes: all GossipSub with go's defaults (as masa), or six of them
    and one speaking only /meshsub/1.0.0 (node 6) and one FloodSub node (node 7)."""
    extra = ["-meshsub10", 1, "-floodsub", 1] if request.param == "mixed" else []
    net = start_godht("-n", GO_NODES, "-topics", TOPIC, *extra)
    net.kind = request.param
    return net


async def _go_messages(net: GoDht, i: int) -> list[dict]:
    return (await net.acall("messages", node=i, topic=TOPIC))["messages"]


async def _go_lost(net: GoDht) -> list[set[str]]:
    """Per Go node, the message IDs (hex) go's tracer saw lost at it or dropped on the way to it
    by a Go sender (godht's trace "lost")."""
    index = {net.peer_id(i): i for i in range(GO_NODES)}
    lost: list[set[str]] = [set() for _ in range(GO_NODES)]
    for i in range(GO_NODES):
        for key, ids in (await net.acall("pubsubtrace", node=i))["lost"].items():
            if key == "here":
                lost[i].update(ids)
            elif key in index:
                lost[index[key]].update(ids)
    return lost


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
            await h1.connect(net.addr(6))
            await h2.connect(net.addr(5))
            await h2.connect(net.addr(7))
            await h2.connect(h1.p2p_addrs()[0])
            # Go sees our subscriptions (hello) and we see theirs; meshes form on the heartbeat.
            with anyio.fail_after(15):
                for i in (0, 3, 5):
                    while str(h1.peer_id if i != 5 else h2.peer_id) not in \
                            (await net.acall("topicpeers", node=i, topic=TOPIC))["peers"]:
                        await anyio.sleep(0.05)
                while not (ps[h1].mesh_peers(TOPIC) and ps[h2].mesh_peers(TOPIC)):
                    await anyio.sleep(0.05)
            if net.kind == "mixed":  # we speak each Go node's own protocol
                assert ps[h1].router.peers[PeerId.from_string(net.peer_id(6))].protocol == "/meshsub/1.0.0"
                assert ps[h2].router.peers[PeerId.from_string(net.peer_id(7))].protocol == "/floodsub/1.0.0"
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
                    for i in (1, 6, 7):
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


async def test_gossip_throughput_ours_and_go(start_godht):
    """Benchmark (printed): 200 messages of 100 bytes published back to back by a Python node,
    then by a Go node, into the same network; how fast all ten subscribers get them. Asserted:
    no subscriber gets a message twice under load; most of a Python burst arrives (we drop RPCs to
    a peer whose 32-RPC queue is full, as go does: a burst may lose a few), where a message a Go
    subscriber misses counts as arrived when go's own tracer saw it lost at that node (its
    validation or subscriber queue full) or dropped on the way to it (a Go sender's full queue);
    of a Go burst, each of our subscribers gets at least 0.8x what the median Go subscriber gets."""
    n_msgs = 200
    net = start_godht("-n", GO_NODES, "-topics", TOPIC)
    with anyio.fail_after(120):
        async with Host(PrivateKey.generate(KeyType.Secp256k1)) as h1, \
                Host(PrivateKey.generate(KeyType.Secp256k1)) as h2:
            ps = {h: PubSubService(h) for h in (h1, h2)}
            for h in (h1, h2):
                await h.listen()
            got: dict[Host, list[tuple[bytes, float]]] = {h1: [], h2: []}
            subs = {h: ps[h].subscribe(TOPIC) for h in (h1, h2)}
            await h1.connect(net.addr(0))
            await h1.connect(net.addr(3))
            await h2.connect(net.addr(5))
            await h2.connect(h1.p2p_addrs()[0])
            with anyio.fail_after(15):
                while not (ps[h1].mesh_peers(TOPIC) and ps[h2].mesh_peers(TOPIC)):
                    await anyio.sleep(0.05)
            await anyio.sleep(1.2)

            async def collect(h: Host) -> None:
                async for msg in subs[h]:
                    got[h].append((msg.data, time.time() * 1000))

            results = {}
            per_node: dict[str, list[int]] = {}
            py_ids: dict[bytes, str] = {}  # data -> message ID (hex), as go's tracer names it
            excused: dict[int, int] = {}  # go node -> our messages it missed that go lost itself
            async with anyio.create_task_group() as tg:
                for h in (h1, h2):
                    tg.start_soon(collect, h)
                for who in ("py", "go"):
                    tag = who.encode()
                    sent_at: dict[bytes, float] = {}
                    if who == "py":
                        t0 = time.time() * 1000
                        for i in range(n_msgs):
                            data = i.to_bytes(8, "big") + tag + bytes(90)
                            sent_at[data] = time.time() * 1000
                            py_ids[data] = (await ps[h1].publish(TOPIC, data)).hex()
                        t_end = time.time() * 1000
                    else:
                        res = await net.acall("publishmany", node=1, topic=TOPIC, count=n_msgs,
                                              size=100, data=tag.hex())
                        t0, t_end = res["at_ms"], res["end_ms"]
                        sent_at = {i.to_bytes(8, "big") + tag + bytes(90): at
                                   for i, at in enumerate(res["sent_ms"])}
                    deliveries: list[list[tuple[bytes, float]]] = []
                    seen_total, stable_since = -1, time.monotonic()
                    with anyio.move_on_after(15):
                        while time.monotonic() - stable_since < 1.5:  # until nothing new
                            await anyio.sleep(0.2)
                            go_msgs = [[(bytes.fromhex(m["data"]), m["at_ms"])
                                        for m in await _go_messages(net, i)]
                                       for i in range(GO_NODES)]
                            deliveries = [[(d, at) for d, at in msgs if d[8:10] == tag]
                                          for msgs in go_msgs]
                            deliveries += [[(d, at) for d, at in got[h] if d[8:10] == tag]
                                           for h in (h1, h2)]
                            if all(len(d) >= n_msgs for d in deliveries):
                                break
                            total = sum(len(d) for d in deliveries)
                            if total != seen_total:
                                seen_total, stable_since = total, time.monotonic()
                    total = sum(len(d) for d in deliveries)
                    for d in deliveries:
                        assert len(d) == len({data for data, _ in d})  # exactly once
                    if who == "py":
                        lost_by_go = await _go_lost(net)
                        for i, d in enumerate(deliveries[:GO_NODES]):
                            missed = set(py_ids.values()) - {py_ids[data] for data, _ in d}
                            excused[i] = len(missed & lost_by_go[i])
                    lat = sorted(at - sent_at[data] for d in deliveries for data, at in d)
                    per_node[who] = [len(d) for d in deliveries]  # GO_NODES go, then ours
                    results[who] = (total / (n_msgs * len(deliveries)),
                                    n_msgs / max(t_end - t0, 1e-3) * 1000,
                                    lat[len(lat) // 2], lat[int(len(lat) * 0.99)])
                tg.cancel_scope.cancel()
    for who, (ratio, rate, p50, p99) in results.items():
        print(f"gossip burst from {who}: published at {rate:.0f} msg/s; {ratio:.1%} of "
              f"{n_msgs} x 10 deliveries; latency p50 {p50:.0f} ms, p99 {p99:.0f} ms")
        print(f"  delivered per subscriber (8 go, then 2 ours): {per_node[who]}")
    print(f"  of the Python burst, missed by go subscribers but traced as lost by go: {excused}")
    assert results["py"][0] + sum(excused.values()) / (n_msgs * (GO_NODES + 2)) > 0.8
    # From a Go publisher, how much arrives is go's own doing: publishing 200 messages at
    # 1300-3000 msg/s it drops RPCs at every subscriber's full 32-RPC queue, Go subscribers
    # included (about half on a quiet machine, where it publishes fastest). What is ours is
    # that our subscribers take in as much as Go's do.
    go_median = statistics.median(per_node["go"][:GO_NODES])
    assert go_median > 0, per_node["go"]
    assert min(per_node["go"][GO_NODES:]) >= 0.8 * go_median, per_node["go"]
