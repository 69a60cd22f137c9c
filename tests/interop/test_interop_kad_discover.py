"""masa's Discover loop against go-libp2p-kad-dht v0.26.1 (godht with `/masa`, K = 100, alpha = 100).

masa's pkg/network/discover.go advertises every node under its oracle protocol namespace
(`/masa/oracle_protocol/v0.8.4`: routing discovery's Provide of CIDv1(raw, sha2-256(namespace)),
i.e. ADD_PROVIDER to the closest peers) and reads the namespace's providers (GET_PROVIDERS). Here
Go nodes run go's own routing discovery (the same calls masa makes) and our node runs ours:

* Go's Advertise reaches our server (ADD_PROVIDER stored as go stores it) and our GET_PROVIDERS
  answer names those Go providers with their addresses;
* our FindPeers finds every Go provider and dials those we are not connected to;
* go's FindPeers finds our node among the namespace's providers, with our addresses;
* `python -m oracle node --bootnode GO` runs all of this by default (masa's settings, said in
  its start-up line), and `--no-dht` turns it off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from linequeue import stdout_lines

from godht import MASA_DHT, GoDht
from oracle.discovery import namespace_key
from oracle.node import NodeConfig, OracleNode
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.kad.config import masa_config
from p2p.kad.messages import Message, MessageType
from p2p.kad.service import KadService

pytestmark = pytest.mark.anyio

GO_NODES = 8
NAMESPACE = "/masa/oracle_protocol/v0.8.4"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def masa_net(start_godht) -> GoDht:
    return start_godht("-n", GO_NODES, *MASA_DHT, "-alpha", 100)


def test_namespace_key_is_the_multihash_go_provides():
    # CIDv1(raw, sha2-256("/masa/oracle_protocol/v0.8.4")).Hash(): 0x12 (sha2-256), 0x20 (32 bytes)
    key = namespace_key(NAMESPACE)
    assert key[:2] == b"\x12\x20" and len(key) == 34
    assert key.hex() == "1220" + __import__("hashlib").sha256(NAMESPACE.encode()).hexdigest()


async def _wait_in_go_table(net: GoDht, node: int, peer: PeerId, timeout: float = 15.0) -> None:
    with anyio.fail_after(timeout):
        while str(peer) not in (await net.acall("rt", node=node))["peers"]:
            await anyio.sleep(0.05)


async def _drop_until_gone(host: Host, net: GoDht, i: int) -> None:
    """Close our connection to Go node i until go has none to us (a Go task still busy with the
    old connection, its pubsub stream or kad check, may dial us again once)."""
    peer = PeerId.from_string(net.peer_id(i))
    with anyio.fail_after(15):
        while True:
            await host.disconnect(peer)
            with anyio.move_on_after(2):
                while str(host.peer_id) in (await net.acall("connected", node=i))["peers"]:
                    await anyio.sleep(0.02)
                return


async def _find_when_not_connected(host: Host, net: GoDht, i: int) -> dict[str, Any]:
    """Go node i's FindPeer of us, started while it has no connection to us. A Go task may dial
    us again between our drop and the FindPeer (seen under load: the FindPeer then answers from
    that connection, `queries: 0`); that answer says nothing of the lookup, so drop and ask again."""
    with anyio.fail_after(45):
        while True:
            await _drop_until_gone(host, net, i)
            res = await net.acall("findpeer", node=i, peer=str(host.peer_id), timeout_ms=10000)
            if not res["was_connected"]:
                return res
            print(f"go{i} dialled us again before its FindPeer: {res}")


async def _gone_at_go(net: GoDht, i: int, peer: PeerId) -> None:
    """Wait until Go node i has no connection to a peer whose host has exited; after 5 s, go
    closes it itself (seen once under full-suite load: a Go node still listed the exited node
    after 10 s)."""
    with anyio.fail_after(15):
        with anyio.move_on_after(5):
            while str(peer) in (await net.acall("connected", node=i))["peers"]:
                await anyio.sleep(0.02)
            return
        print(f"go{i} still connected to the exited {peer} after 5 s: go closes it")
        while str(peer) in (await net.acall("connected", node=i))["peers"]:
            await net.acall("disconnect", node=i, peer=str(peer), check=False)
            await anyio.sleep(0.1)


async def test_providers_of_the_masa_namespace_both_ways(masa_net: GoDht):
    net = masa_net
    go_ids = [net.peer_id(i) for i in range(GO_NODES)]
    with anyio.fail_after(90):
        config = NodeConfig(peers=(net.addr(0),), dht=True, gossip_interval=3600, discover_interval=0)
        async with OracleNode(PrivateKey.generate(KeyType.Secp256k1), config) as node:
            disc = node.discovery
            assert disc is not None and disc.namespace == NAMESPACE
            me = str(node.peer_id)
            for i in range(GO_NODES):  # our join's self lookup reached every Go node
                await _wait_in_go_table(net, i, node.peer_id)

            # Go nodes 1..7 advertise: go's Provide ADD_PROVIDERs at the closest peers, us included.
            async with anyio.create_task_group() as tg:
                for i in range(1, GO_NODES):
                    tg.start_soon(lambda i=i: net.acall("advertise", node=i, topic=NAMESPACE,
                                                        timeout_ms=20000))
            key = namespace_key(NAMESPACE)
            with anyio.fail_after(10):  # go sends ADD_PROVIDER without waiting for any answer
                while {str(p) for p in disc.kad.providers.get(key, disc.kad._now())} != set(go_ids[1:]):
                    await anyio.sleep(0.02)

            # Our server's GET_PROVIDERS answer, read by a plain client: each Go provider with the
            # addresses its ADD_PROVIDER carried.
            async with Host(PrivateKey.generate(KeyType.Ed25519)) as client:
                kad = KadService(client, masa_config(mode="client", auto_refresh=False))
                await client.connect(node.host.p2p_addrs()[0])
                reply = await kad.request(node.peer_id, Message(MessageType.GET_PROVIDERS, key=key))
                assert reply is not None and reply.type is MessageType.GET_PROVIDERS and reply.key == key
                answered = {str(PeerId(e.id)): e for e in reply.provider_peers}
                assert set(answered) == set(go_ids[1:])
                for i in range(1, GO_NODES):
                    want = net.nodes[i]["addrs"][0].rpartition("/p2p/")[0]
                    assert want in [str(a) for a in kad._referrals([answered[go_ids[i]]])[0][1]]

            # A provider that no lookup meets: a client-mode node (not in any routing table) that
            # joined through go0, advertised, and is not connected to us.
            async with Host(PrivateKey.generate(KeyType.Ed25519)) as other_host:
                await other_host.listen("/ip4/127.0.0.1/tcp/0")
                other = KadService(other_host, masa_config(mode="client", auto_refresh=False))
                await other.bootstrap([net.addr(0)])
                assert await other.provide(key) >= GO_NODES
                await node.host.disconnect(other_host.peer_id)
                with anyio.fail_after(10):
                    while other_host.connection(node.peer_id) is not None:
                        await anyio.sleep(0.02)

                # Our Discover round: Advertise (ADD_PROVIDER at every Go node), FindPeers (the Go
                # providers and the client-mode one), dial the providers we are not connected to.
                result = await disc.discover_once()
                assert result.advertised_to >= GO_NODES, result
                assert result.providers == GO_NODES, result
                assert result.dialled == 1 and result.dial_failures == 0, result
                assert node.host.connection(other_host.peer_id) is not None

                # go's FindPeers (masa's call) lists us among the providers, with our addresses; go0,
                # which never advertised, has us from our ADD_PROVIDER.
                ours = {str(a) for a in node.host.listen_addrs()}
                for i in (0, 4):
                    res = await net.acall("findpeers", node=i, topic=NAMESPACE, timeout_ms=10000)
                    found = {p["peer_id"]: p for p in res["providers"]}
                    assert me in found, res
                    assert ours & set(found[me]["addrs"]), (found[me], ours)
                    assert set(go_ids[1:]) - {go_ids[i]} <= set(found), res
                    assert str(other_host.peer_id) in found, res


class _CliNode:
    """`python -m oracle node ARGS` with its JSON lines in a queue."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PRIVATE_KEY", "MASA_PRIV_KEY_FILE")}
        env.update(PYTHONPATH=str(REPO), HOME=str(tmp_path / "home"),
                   MASA_PRIV_KEY_FILE=str(tmp_path / f"key-{os.urandom(3).hex()}"))
        self.err = tmp_path / f"node-{os.urandom(3).hex()}.log"
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "oracle", "--log-level", "INFO", "node", *args],
                                         cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err)
        self.lines = stdout_lines(self.proc)

    def first_line(self, timeout: float = 30) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        assert line, self.err.read_text(errors="replace")[-3000:]
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def test_oracle_node_runs_masas_dht_by_default(masa_net: GoDht, tmp_path: Path):
    net = masa_net
    node = _CliNode(tmp_path, "--worker", "web", "--bootnode", net.addr(0), "--listen", "/ip4/127.0.0.1/tcp/0")
    off = _CliNode(tmp_path, "--no-dht", "--worker", "web", "--bootnode", net.addr(0),
                   "--listen", "/ip4/127.0.0.1/tcp/0")
    try:
        info = await anyio.to_thread.run_sync(node.first_line)
        dht = info["dht"]
        assert (dht["protocol"], dht["mode"], dht["k"], dht["alpha"], dht["refresh_s"]) == \
            ("/masa/kad/1.0.0", "server", 100, 100, 300.0), dht
        assert dht["namespace"] == NAMESPACE and dht["discover_s"] == 60.0
        me = info["peer_id"]
        with anyio.fail_after(45):
            # joined through go0 (into its table after go's check) and, by its first Discover
            # round, a provider of the namespace that a Go node it never dialled lists
            await _wait_in_go_table(net, 0, PeerId.from_string(me), timeout=45)
            while True:
                res = await net.acall("findpeers", node=6, topic=NAMESPACE, timeout_ms=10000)
                if me in {p["peer_id"] for p in res["providers"]}:
                    break
                await anyio.sleep(0.5)

            while "joined the DHT through " + net.addr(0) not in node.err.read_text(errors="replace"):
                await anyio.sleep(0.1)  # the bootnode connection was followed by a join (self lookup)

        info_off = await anyio.to_thread.run_sync(off.first_line)
        assert info_off["dht"] is False
        with anyio.fail_after(20):
            while True:  # go0 identified it: no kad protocol listed
                res = await net.acall("protocols", node=0, peer=info_off["peer_id"], check=False)
                if "/ipfs/id/1.0.0" in res.get("protocols", []):
                    break
                await anyio.sleep(0.1)
        assert "/masa/kad/1.0.0" not in res["protocols"]
        assert "/masa/kad/1.0.0" in (await net.acall("protocols", node=0, peer=me))["protocols"]
    finally:
        node.stop()
        off.stop()
        print(node.err.read_text(errors="replace")[-2000:])


async def test_restarted_on_a_new_port_go_finds_it(masa_net: GoDht):
    """A Python node restarted with the same key on a NEW port is found by every Go node.

    What go does (kad-dht v0.26.1, seen here): a Go node whose routing table still holds our old
    address dials it first in its FindPeer lookup; the dial fails, go drops us from its table and
    never re-dials us in that lookup, even when another node refers us with the new address:
    `routing: not found`, once (its next FindPeer dials the referred address; under load its
    lookup may instead race the failing dial against the referral and find us). So a restarted
    node must reach the Go nodes itself: our join's self lookup (on every connection to a
    bootnode) queries the peers closest to us, K = 100 of them (here all), and their identify of
    the new connection replaces the address. Checked both ways: without the self lookup go's first
    FindPeer fails (or, racing, finds the new address); with our join every Go node finds the new
    address even after we drop the connection again.
    """
    net = masa_net
    key = PrivateKey.generate(KeyType.Secp256k1)
    me = PeerId.from_public_key(key.public_key)
    with anyio.fail_after(120):
        async with OracleNode(key, NodeConfig(peers=(net.addr(0),), dht=True, discover_interval=0,
                                              gossip_interval=3600)) as first:
            old = {str(a) for a in first.host.listen_addrs()}
            for i in range(GO_NODES):
                await _wait_in_go_table(net, i, me)
        for i in range(GO_NODES):
            await _gone_at_go(net, i, me)

        # The go behaviour: back on a new port, joined through go0 only (no self lookup).
        async with Host(key) as bare:
            await bare.listen("/ip4/127.0.0.1/tcp/0")
            assert not old & {str(a) for a in bare.listen_addrs()}
            await KadService(bare, masa_config()).bootstrap([net.addr(0)], self_lookup=False)
            bare_addrs = {str(a) for a in bare.listen_addrs()}
            first_try = await net.acall("findpeer", node=3, peer=str(me), timeout_ms=10000, check=False)
            if "error" in first_try:
                assert first_try["error"] == "routing: not found", first_try
            else:
                # go's lookup raced its failing dial of the old address against a referral of
                # the new one and dialled both (seen once under full-suite load: 9 queries,
                # 4.3 ms); it must then have the new address, never only the old one.
                print(f"go3 found the restarted node without our self lookup: {first_try}")
                assert bare_addrs & set(first_try["addrs"]), (first_try, bare_addrs)
        for i in (0, 3):
            await _gone_at_go(net, i, me)

        # Ours: restarted on another new port, our node's join reaches every Go node.
        async with OracleNode(key, NodeConfig(peers=(net.addr(0),), dht=True, discover_interval=0,
                                              gossip_interval=3600)) as again:
            new = {str(a) for a in again.host.listen_addrs()}
            assert not old & new
            for i in range(GO_NODES):  # each Go node's check of the new connection is done
                await _wait_in_go_table(net, i, me)
            for i in range(1, GO_NODES):
                res = await _find_when_not_connected(again.host, net, i)
                assert new & set(res["addrs"]), (i, res, new)
                assert str(me) in (await net.acall("connected", node=i))["peers"]


async def test_a_new_listen_address_reaches_go_by_identify_push(masa_net: GoDht):
    """A node that starts listening on another address pushes identify: the Go nodes it is
    connected to have it in their peerstore at once (go's FindPeer of a connected peer answers
    from there, and its DHT server hands those addresses to others)."""
    net = masa_net
    with anyio.fail_after(60):
        async with OracleNode(PrivateKey.generate(KeyType.Secp256k1),
                              NodeConfig(peers=(net.addr(0),), dht=True, discover_interval=0,
                                         gossip_interval=3600)) as node:
            me = str(node.peer_id)
            await _wait_in_go_table(net, 0, node.peer_id)  # go0 identified us
            (new,) = await node.listen("/ip4/127.0.0.1/tcp/0")
            while True:
                res = await net.acall("findpeer", node=0, peer=me, timeout_ms=5000)
                assert res["was_connected"], res
                if str(new) in res["addrs"]:
                    break
                await anyio.sleep(0.05)
