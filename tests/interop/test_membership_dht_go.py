"""End to end with masa's membership and Kademlia: a Go masa-like node (gomasa with `-dht`:
go-libp2p-kad-dht v0.26.1 as masa configures it) that never dialled our worker learns of it
through the network, finds it through the DHT and sends it work, with masa's DistributeWork
budgets (FindPeer 50 ms, Connect 75 ms).

Go node A has no bootnodes. Our worker (`OracleNode`, `dht=True`) joins through A only and
announces its NodeData to A. Go node B joins through A: A's nodeDataSync push tells B about our
worker, and B's DistributeWork finds it with FindPeer through the DHT (A answers with its address),
connects and sends it web work over the worker protocol.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from gomasa import GoMasa
from oracle.messages import WorkResponse
from oracle.node import NodeConfig, OracleNode
from p2p.identity import KeyType, PeerId, PrivateKey

pytestmark = pytest.mark.anyio


async def fake_web(data: bytes) -> WorkResponse:
    return WorkResponse(data={"crawled": json.loads(data)["url"]})


async def _call(go: GoMasa, **cmd):
    return await anyio.to_thread.run_sync(lambda: go.command(**cmd))


async def _wait(go: GoMasa, predicate, what: str, timeout: float = 20.0) -> dict:
    with anyio.fail_after(timeout):
        while True:
            state = await _call(go, cmd="tracker")
            if predicate(state):
                return state
            await anyio.sleep(0.1)


async def test_go_masa_node_finds_our_worker_through_the_dht(gomasa_bin: Path):
    a = GoMasa("-dht")
    b = None
    try:
        with anyio.fail_after(120):
            config = NodeConfig(peers=(a.addr,), dht=True)
            async with OracleNode(PrivateKey.generate(KeyType.Secp256k1), config,
                                  handlers={"web": fake_web}) as worker:
                me = str(worker.peer_id)
                await _wait(a, lambda t: t["announces"].get(me, 0) >= 1, "our announce at A")
                # B with masa's own budgets: FindPeer 50 ms, then Connect 75 ms
                b = await anyio.to_thread.run_sync(lambda: GoMasa("-dht", "-bootnode", a.addr))
                state = await _wait(b, lambda t: any(n["peerId"] == me and n["isWebScraper"]
                                                     for n in t["nodes"]),
                                    "our NodeData at B (A's nodeDataSync push)")
                # B's own DHT bootstrap may have dialled us already (its lookups query every
                # peer A names): drop that before every attempt, so that DistributeWork must find
                # us through the DHT within masa's 50 ms (a lookup whose dial to us is our Noise
                # and yamux handshake, then our kad server's FIND_NODE answer). An attempt can miss
                # the 50 ms on a loaded machine; it must succeed within a few.
                result = None
                misses: list[str] = []
                with anyio.fail_after(60):
                    while True:  # B's table takes A in once identify and its check are done
                        await worker.host.disconnect(PeerId.from_string(b.peer_id))
                        await _wait(b, lambda t: me not in t["connected"], "B no longer connected to us")
                        result = await _call(b, cmd="distribute", type="web",
                                             data=json.dumps({"url": "http://127.0.0.1:9/", "depth": 1}))
                        if result.get("worker") == me:
                            break
                        misses.append(result["response"].get("error", ""))
                        assert len(misses) <= 8, misses
                        await anyio.sleep(0.5)
                print(f"B's DistributeWork (FindPeer 50 ms, Connect 75 ms): {len(misses)} misses before "
                      f"the hit: {misses}; its FindPeer of our worker took {result['find_ms']} ms")
                assert result["found_via_dht"] == [me], result
                response = result["response"]
                assert response["workerPeerId"] == me and not response.get("error"), result
                assert response["data"] == {"crawled": "http://127.0.0.1:9/"}
                print("B's DistributeWork through the DHT ->", json.dumps(result)[:400])
    finally:
        for go in (a, b):
            if go is not None:
                go.stop()
                print(f"--- gomasa {go.peer_id} ---\n{go.stderr_text()[-2000:]}")
