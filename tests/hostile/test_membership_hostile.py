"""Hostile input on every membership handler (oracle_protocol, nodeDataSync, gossip).

An attacker host opens streams on a running OracleNode and sends what masa would choke on or what
could grow our memory: oversized bodies, truncated JSON, wrong types, node data about someone else,
bodies that never end, lines over Go's 64 KiB, a flood of pages. Each must end in a stream reset
(or, for a bad page line, being skipped as masa does), a count in the node's stats, a tracker that
stays bounded and unchanged - and the node must keep serving an honest announce afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from oracle.membership import MembershipConfig
from oracle.node import NodeConfig, OracleNode
from oracle.nodedata import NodeData, NodeDataPage
from p2p.errors import P2PError
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey

pytestmark = pytest.mark.anyio

LIMITS = MembershipConfig(max_node_data=4096, max_sync_bytes=256 * 1024, max_sync_entries=100,
                          read_timeout=1.0, sync_timeout=2.0)


def new_id() -> str:
    return str(PeerId.from_public_key(PrivateKey.generate(KeyType.Ed25519).public_key))


@asynccontextmanager
async def target_and_attacker() -> AsyncIterator[tuple[OracleNode, Host]]:
    config = NodeConfig(membership=LIMITS, tracker_size=64, serve_ping=False)
    async with OracleNode(PrivateKey.generate(KeyType.Ed25519), config) as node:
        async with Host(PrivateKey.generate(KeyType.Ed25519)) as attacker:
            await attacker.connect(node.host.p2p_addrs()[0])
            yield node, attacker


async def send(attacker: Host, node: OracleNode, protocol: str, body: bytes, *, eof: bool = True) -> str:
    """Send `body` on a new stream; returns how the node ended it: "reset", "closed" or "open"."""
    stream = await attacker.new_stream(node.peer_id, [protocol])
    await stream.send(body)
    if eof:
        await stream.send_eof()
    with anyio.move_on_after(LIMITS.sync_timeout + 3):
        try:
            while await stream.receive(65536):
                pass
        except anyio.EndOfStream:
            return "closed"
        except (P2PError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return "reset"
    return "open"


async def still_serves(node: OracleNode, attacker: Host) -> None:
    """An honest announce from the attacker's own ID is still taken in."""
    body = NodeData(peer_id=str(attacker.peer_id), is_staked=True, is_web_scraper=True).to_go_json()
    assert await send(attacker, node, node.membership.oracle_protocol, body) == "closed"
    with anyio.fail_after(5):
        await node.membership.wait_for_entry(attacker.peer_id, 5)
    assert node.tracker.get(attacker.peer_id).is_web_scraper


def _oracle_cases(sender: str) -> dict[str, tuple[bytes, bool]]:
    good = NodeData(peer_id=sender, is_staked=True).to_go_json()
    return {
        "oversized": (b" " * 5000 + good, True),
        "truncated": (good[: len(good) // 2], True),
        "wrong types": (b'{"peerId":"' + sender.encode() + b'","isStaked":"yes"}', True),
        "bad multiaddr": (b'{"peerId":"' + sender.encode() + b'","multiaddrs":["/ip4/999.1.1.1/tcp/1"]}', True),
        "someone else": (NodeData(peer_id=new_id(), is_staked=True).to_go_json(), True),
        "not json": (b"\xff\xfe\x00garbage", True),
        "never ends": (good[:-1], False),
    }


@pytest.mark.parametrize("case", list(_oracle_cases(new_id())))
async def test_oracle_protocol_bad_input(case: str) -> None:
    with anyio.fail_after(30):
        async with target_and_attacker() as (node, attacker):
            body, eof = _oracle_cases(str(attacker.peer_id))[case]
            before = len(node.tracker)
            assert await send(attacker, node, node.membership.oracle_protocol, body, eof=eof) == "reset"
            assert node.membership.stats["refused"] == 1 and len(node.tracker) == before
            await still_serves(node, attacker)


@pytest.mark.parametrize("case", ["oversized", "truncated", "wrong types", "not json", "never ends"])
async def test_gossip_bad_input(case: str) -> None:
    with anyio.fail_after(30):
        async with target_and_attacker() as (node, attacker):
            body, eof = _oracle_cases(new_id())[case]
            before = len(node.tracker)
            assert await send(attacker, node, node.membership.gossip_protocol, body, eof=eof) == "reset"
            assert node.membership.stats["refused"] == 1 and len(node.tracker) == before
            await still_serves(node, attacker)


async def test_gossip_about_the_sender_is_ignored() -> None:
    with anyio.fail_after(30):
        async with target_and_attacker() as (node, attacker):
            me = NodeData(peer_id=str(attacker.peer_id), is_staked=True, is_web_scraper=True).to_go_json()
            assert await send(attacker, node, node.membership.gossip_protocol, me) == "closed"
            assert attacker.peer_id not in node.tracker
            other = new_id()
            about = NodeData(peer_id=other, is_staked=True).to_go_json()
            assert await send(attacker, node, node.membership.gossip_protocol, about) == "closed"
            assert other in node.tracker


def _page(entries: list[NodeData]) -> bytes:
    return NodeDataPage(tuple(entries), 0, 1, len(entries)).to_go_json() + b"\n"


async def test_sync_bad_lines_are_skipped_as_masa_does() -> None:
    with anyio.fail_after(30):
        async with target_and_attacker() as (node, attacker):
            good = new_id()
            body = (b'{"data":[{"peerId":"' + new_id().encode() + b'","isStaked":"yes"}]}\n'  # wrong type
                    + b"not json\n" + b'{"data":{}}\n' + _page([NodeData(peer_id=good, is_staked=True)]))
            assert await send(attacker, node, node.membership.sync_protocol, body) == "closed"
            assert good in node.tracker and len(node.tracker) == 2
            assert node.membership.stats["sync_entries"] == 1


@pytest.mark.parametrize("case", ["line over 64 KiB", "flood of pages", "too many bytes", "never ends",
                                  "about us"])
async def test_sync_hostile(case: str) -> None:
    with anyio.fail_after(40):
        async with target_and_attacker() as (node, attacker):
            ours = node.tracker.self_data
            eof = True
            if case == "line over 64 KiB":
                body = b'{"data":[' + b" " * (64 * 1024) + b"]}\n"
            elif case == "flood of pages":
                body = b"".join(_page([NodeData(peer_id=new_id(), is_staked=True, last_updated=10**6 + i)
                                       for _ in range(25)]) for i in range(8))
            elif case == "too many bytes":
                body = b"\n" * (300 * 1024)
            elif case == "never ends":
                body, eof = _page([NodeData(peer_id=new_id())]), False
            else:
                body = _page([NodeData(peer_id=str(node.peer_id), is_staked=False)])
            expected = "closed" if case == "about us" else "reset"
            assert await send(attacker, node, node.membership.sync_protocol, body, eof=eof) == expected
            assert len(node.tracker) <= 64  # the tracker's bound holds whatever arrives
            assert node.tracker.self_data.is_staked == ours.is_staked  # nobody rewrites our own entry
            if expected == "reset":
                assert node.membership.stats["refused"] == 1
            await still_serves(node, attacker)


async def test_fat_entries_are_capped_in_the_tracker() -> None:
    """Entries whose text fields and records fill a 64 KiB line each: stored, but capped."""
    with anyio.fail_after(30):
        async with target_and_attacker() as (node, attacker):
            fat = [NodeData(peer_id=new_id(), last_updated=10**6, eth_address="e" * 20_000,
                            uptime_str="u" * 20_000, records={"r": "x" * 20_000}) for _ in range(4)]
            body = b"".join(_page([entry]) for entry in fat)
            assert await send(attacker, node, node.membership.sync_protocol, body) == "closed"
            stored = [node.tracker.get(entry.peer_id) for entry in fat]
            assert all(s is not None for s in stored)
            assert max(len(s.to_go_json()) for s in stored) < 2048


async def test_many_streams_at_once_do_not_break_the_node() -> None:
    """A burst of concurrent bad announces: every one refused, the node answers afterwards."""
    with anyio.fail_after(60):
        async with target_and_attacker() as (node, attacker):
            results: list[str] = []

            async def one(i: int) -> None:
                body = NodeData(peer_id=new_id()).to_go_json() if i % 2 else b"{" * 100
                results.append(await send(attacker, node, node.membership.oracle_protocol, body))

            async with anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(one, i)
            assert results == ["reset"] * 40 and node.membership.stats["refused"] == 40
            await still_serves(node, attacker)
