"""The masa worker protocol against real go-libp2p: a go worker written as masa's HandleWorkerStream
answers our DistributeWork, and a go requester written as masa's sendWorkToWorker gets from our
worker the same bytes a Go worker writes (Go's encoding/json, byte for byte)."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import anyio
import pytest

from gopeer import GoPeer, run_gopeer
from oracle.handlers import handle_test
from oracle.node import NodeConfig, OracleNode
from p2p.identity import KeyType, PrivateKey

pytestmark = pytest.mark.anyio

# Characters Go's json.Marshal escapes (<, >, &, U+2028) or writes raw (é), plus a control char.
TRICKY = "<hi> & bye \u2028 caf\u00e9 \x01"


async def go(gopeer_bin, *args: str) -> dict:
    return await anyio.to_thread.run_sync(lambda: run_gopeer(*args, timeout=60, binary=gopeer_bin))


@pytest.mark.parametrize("env", ["", "test"])
async def test_go_worker_answers_our_distribute_work(start_gopeer, env):
    go_worker: GoPeer = start_gopeer("--worker", "--key-type", "secp256k1", *(["--env", env] if env else []))
    with anyio.fail_after(60):
        async with OracleNode(PrivateKey.generate(KeyType.Secp256k1), NodeConfig(env=env), handlers={}) as node:
            peer = await node.connect(go_worker.addr)
            assert [str(p) for p in node.workers()] == [go_worker.peer_id]  # found through identify
            # it announces no node data, so masa's rules find no worker for it...
            assert (await node.submit("test", b"x")).error == "no eligible workers found"
            node.directory.add_worker(peer)  # ...until it is named as a worker explicitly
            resp = await node.submit("test", TRICKY.encode())
            assert resp.error == ""
            assert resp.data == TRICKY
            assert resp.worker_peer_id == go_worker.peer_id
            # an unknown work type: the go worker's error, aggregated as masa words it
            resp = await node.submit("nope", b"x")
            assert resp.error == f"All workers failed. Errors: Worker {go_worker.peer_id}: work handler not found"


async def test_go_requester_gets_go_identical_bytes(gopeer_bin, start_gopeer):
    go_worker: GoPeer = start_gopeer("--worker")
    with anyio.fail_after(60):
        async with OracleNode(PrivateKey.generate(KeyType.Secp256k1), handlers={"test": handle_test}) as node:
            ours = node.host.p2p_addrs()[0]
            for work_type, data in (("test", TRICKY), ("test", ""), ("missing", "x")):
                mine = await go(gopeer_bin, "work", ours, "--type", work_type, "--data", data)
                theirs = await go(gopeer_bin, "work", go_worker.addr, "--type", work_type, "--data", data)
                # identical bytes once each worker's own peer ID is put aside
                assert mine["raw"].replace(str(node.host.peer_id), "PEER") == theirs["raw"].replace(
                    go_worker.peer_id, "PEER"
                ), (mine["raw"], theirs["raw"])
                assert mine["response"]["workerPeerId"] == str(node.host.peer_id)
            # and the exact bytes, written by hand from Go's rules
            mine = await go(gopeer_bin, "work", ours, "--type", "test", "--data", "<a&b>")
            assert mine["raw"] == '{"data":"\\u003ca\\u0026b\\u003e","workerPeerId":"%s"}' % node.host.peer_id


async def test_go_requester_refused_by_allowlist(gopeer_bin):
    allowed = PrivateKey.generate()
    from p2p.identity import PeerId

    cfg = NodeConfig(allowed_peers=(str(PeerId.from_public_key(allowed.public_key)),))
    with anyio.fail_after(60):
        async with OracleNode(None, cfg, handlers={"test": handle_test}) as node:
            ours = node.host.p2p_addrs()[0]
            res = await go(gopeer_bin, "work", ours, "--type", "test", "--data", "x")
            assert res["response"].get("error"), res
            assert "data" not in res["response"]
            assert json.loads(res["raw"])["workerPeerId"] == str(node.host.peer_id)
