"""Fair admission against `python -m p2p serve`: five addresses (127.0.0.2-6) open connections
that never send a byte, 4 each (their per-address cap), and reconnect whenever the node closes
one (a patient attacker refilling its slots). With 16 pending-handshake slots, they hold every one
(each until the node's 10 s negotiation timeout, then at once again). A new honest address
(127.0.0.1: an in-process host, then go-libp2p v0.36.3) must still connect and ping within 1 s: the
node evicts an attacker's pending handshake for it. Before fair admission it was closed at once:
an honest host retrying every 0.2 s got in after 20.2 s (96 attempts), winning a refill race.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from kit import (
    PROBE_DEADLINE,
    REPORT,
    NodeProcess,
    closed_by_peer,
    go_probe,
    honest_ping,
    net_probe,
    p2p_node,
    raw_connect,
    run_case,
    stop_checked,
)

LIMITS = {"max_pending_inbound": 16, "max_pending_inbound_per_ip": 4,
          "inbound_upgrade_timeout": 30.0}
ATTACKERS = [f"127.0.0.{i}" for i in range(2, 7)]


@pytest.fixture(scope="module")
def node(log_dir: Path) -> Iterator[NodeProcess]:
    n = p2p_node(log_dir, LIMITS)
    yield n
    stop_checked(n)


@pytest.mark.anyio
async def test_new_address_connects_while_others_hold_every_pending_slot(node, go_binary) -> None:
    held = [0]
    closes = [0]
    connected = [0]

    async def holder(source: str) -> None:
        while True:
            s = await raw_connect(node.host, node.port, source=source)
            connected[0] += 1
            held[0] += 1
            try:
                await closed_by_peer(s, 120)  # hold it until the node closes it
            finally:
                held[0] -= 1
                closes[0] += 1
                await s.aclose()
            await anyio.sleep(0.05)  # the attacker's refill pace

    async def attack(started: anyio.Event) -> None:
        async with anyio.create_task_group() as tg:
            for source in ATTACKERS:
                for _ in range(LIMITS["max_pending_inbound_per_ip"]):
                    tg.start_soon(holder, source)
            # Every slot is held once 20 connections were made and the 4 the node had no slot
            # for were closed at once (the other 16 stay open until the negotiation timeout).
            with anyio.fail_after(10):
                while not (connected[0] >= 20 and closes[0] >= 4 and held[0] >= 16):
                    await anyio.sleep(0.02)
            started.set()

    waits: list[float] = []

    async def honest() -> float:
        # connect + ping from a new address within 1 s (net of waiting for a CPU)
        took = await net_probe(lambda: honest_ping(node.addr, deadline=PROBE_DEADLINE), node)
        waits.append(took)
        return took

    async def go() -> float:
        took = await go_probe(node.addr, go_binary, off_cpu_of=[node.pid])
        waits.append(took)
        return took

    start = time.perf_counter()
    result = await run_case("fair admission: 5 addresses hold all 16 pending slots", node, attack,
                            [honest, go], rounds=3)
    with open(REPORT, "a") as f:
        f.write(f"fair admission: a new address waited {min(waits) * 1000:.0f}-"
                f"{max(waits) * 1000:.0f} ms to connect + ping (in-process and go, 3 rounds);"
                f" attackers' connections closed {closes[0]} times in"
                f" {time.perf_counter() - start:.1f} s\n")
    assert len(result.honest) == 6  # each within its bound (net_probe, go_ping)
