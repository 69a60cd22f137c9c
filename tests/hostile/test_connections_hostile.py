"""Connection-level floods against `python -m p2p serve`: idle TCP connections, one address over
its limit, the whole node at its connection limit. Host limits (p2p/config.py HostConfig) are set
small through `--limits` so that each is reached within the test:

    max_pending_inbound 48, max_pending_inbound_per_ip 8, max_connections_per_ip 8,
    max_connections 40, negotiation_timeout 2 s, inbound_upgrade_timeout 3 s.

File-descriptor bound: the node holds at most max_connections + max_pending_inbound sockets plus
its listener and interpreter files (a connection over a limit is accepted and closed at once), so
1,000 idle connections cost at most 48 descriptors here (go's defaults: 64 + 64 and 16 per address).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from kit import stop_checked
from kit import (
    PROBE_DEADLINE,
    Bounds,
    HonestPeer,
    NodeProcess,
    closed_by_peer,
    honest_ping,
    honest_probes,
    net_probe,
    noise_session,
    p2p_node,
    raw_connect,
    run_case,
)

from p2p.errors import P2PError

LIMITS = {
    "negotiation_timeout": 2.0,
    "inbound_upgrade_timeout": 3.0,
    "max_pending_inbound": 48,
    "max_pending_inbound_per_ip": 8,
    "max_connections_per_ip": 8,
    "max_connections": 40,
}


@pytest.fixture(scope="module")
def node(log_dir: Path) -> Iterator[NodeProcess]:
    n = p2p_node(log_dir, LIMITS)
    yield n
    stop_checked(n)


@pytest.mark.anyio
async def test_thousand_idle_connections(node, honest, go_binary) -> None:
    """1,000 TCP connections from 4 addresses that never send a byte."""
    conns = []

    async def attack(started: anyio.Event) -> None:
        for i in range(1000):
            conns.append(await raw_connect(node.host, node.port, source=f"127.0.0.{30 + i % 4}"))
        started.set()
        await anyio.sleep_forever()

    try:
        await run_case("1000 idle TCP connections", node, attack,
                       honest_probes(node, honest, go_binary),
                       bounds=Bounds(extra_fds=4 * 8 + 12), rounds=2)
        # every one is closed: at once (over the per-address cap) or at the 2 s negotiation timeout
        with anyio.fail_after(10):
            results = [await closed_by_peer(c, 8.0) for c in conns]
        assert all(results), f"{results.count(False)} idle connections left open"
    finally:
        for c in conns:
            await c.aclose()


async def established(source: str) -> object | None:
    """An upgraded (Noise + yamux) session from `source`, or None if the node refused us."""
    try:
        return await noise_session("127.0.0.1", NODE[0].port, source=source)
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError, P2PError, AssertionError):
        return None


NODE: list[NodeProcess] = []


async def hold(sessions: list) -> None:
    """Keep the attack's sessions open until the attack is cancelled, then close them."""
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            for s in sessions:
                await s.stream.aclose()


@pytest.fixture(autouse=True)
def _node(node: NodeProcess) -> None:
    NODE[:] = [node]


@pytest.mark.anyio
async def test_per_address_limit(node, honest, go_binary) -> None:
    """One address may hold 8 connections (max_connections_per_ip); the 9th is closed at once."""
    sessions: list = []
    refused: list[bool] = []

    async def attack(started: anyio.Event) -> None:
        for _ in range(8):
            s = await established("127.0.0.40")
            assert s is not None, "a connection under the per-address limit was refused"
            sessions.append(s)
        for _ in range(3):
            extra = await raw_connect(node.host, node.port, source="127.0.0.40")
            refused.append(await closed_by_peer(extra, 1.0))
            await extra.aclose()
        started.set()
        await hold(sessions)

    await run_case("per-address limit (8)", node, attack,
                   honest_probes(node, honest, go_binary), rounds=2)
    assert refused == [True, True, True]


@pytest.mark.anyio
async def test_total_connection_limit(node, honest) -> None:
    """40 connections in all (max_connections): the next is closed at once, whoever it is; the
    connected honest peer keeps its answers. (A new honest peer has to wait for a free slot:
    that is the limit doing its job.)"""
    sessions: list = []
    opened: list[int] = []

    async def attack(started: anyio.Event) -> None:
        for i in range(60):
            s = await established(f"127.0.0.{50 + i % 8}")
            if s is None:
                break
            sessions.append(s)
        opened.append(len(sessions))
        started.set()
        await hold(sessions)

    await run_case("total connection limit (40)", node, attack,
                   [lambda: net_probe(lambda: honest.probe(deadline=PROBE_DEADLINE), node)],
                   bounds=Bounds(extra_fds=40 + 8), rounds=3)
    assert opened and 36 <= opened[0] <= 39, opened  # 40 minus the honest peer (and stragglers)
    # a slot is free again: a new peer connects at once
    await net_probe(lambda: honest_ping(node.addr, deadline=PROBE_DEADLINE), node)
