"""Hostile multistream-select on the connection's first bytes, against `python -m p2p serve`.

Each case: the offender's connection is closed by the node (the node's debug log names the typed
error), an honest host (fresh and already connected) and the go peer are answered within 1 s while
the attack runs, and RSS / fds stay within the case's bounds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from p2p.errors import P2PError

from kit import stop_checked
from kit import (
    MULTISTREAM,
    NodeProcess,
    flood,
    honest_probes,
    ms_message,
    p2p_node,
    raw_connect,
    read_ms,
    run_case,
)

# Short timeouts so slow attackers are cut off inside the test's time; the rest are defaults.
LIMITS = {"negotiation_timeout": 2.0, "inbound_upgrade_timeout": 3.0, "max_negotiation_rounds": 32}
OFFENDERS = 8  # concurrent offending connections per case (from 127.0.0.2..)


@pytest.fixture(scope="module")
def node(log_dir: Path) -> Iterator[NodeProcess]:
    n = p2p_node(log_dir, LIMITS, debug=True)
    yield n
    stop_checked(n)


async def offend(node: NodeProcess, payload: bytes, started: anyio.Event, *, close_within: float,
                 expect: str, count: int = OFFENDERS) -> None:
    """`count` attackers keep sending `payload` on fresh connections (kit.flood)."""
    closed: list[bool] = []

    async def make(s) -> None:
        await s.send(payload)

    try:
        await flood(node, started, make, expect=expect, count=count, close_within=close_within,
                    closed=closed)
    finally:
        assert all(closed), f"{closed.count(False)} of {len(closed)} offenders not closed"


@pytest.mark.anyio
async def test_garbage(node, honest, go_binary) -> None:
    payload = os.urandom(4096)
    await run_case("multistream garbage", node,
                   lambda ev: offend(node, payload, ev, close_within=2.0, expect="UpgradeError"),
                   honest_probes(node, honest, go_binary))


@pytest.mark.anyio
async def test_oversized_length(node, honest, go_binary) -> None:
    # go's limit is 1024 bytes per message; announce 1025 and 2^40 (the body never comes).
    for length in (1025, 1 << 40):
        payload = ms_message(MULTISTREAM) + bytes.fromhex("818008" if length == 1025 else "8080808080 20")
        await run_case(f"multistream length {length}", node,
                       lambda ev: offend(node, payload, ev, close_within=2.0, expect="UpgradeError"),
                       honest_probes(node, honest, go_binary), rounds=1)


@pytest.mark.anyio
async def test_non_minimal_varint(node, honest, go_binary) -> None:
    # 0x13 (19, the header's length) written as 93 00: go-varint rejects it, so must we.
    payload = bytes.fromhex("9300") + b"/multistream/1.0.0\n"
    await run_case("multistream non-minimal varint", node,
                   lambda ev: offend(node, payload, ev, close_within=2.0, expect="UpgradeError"),
                   honest_probes(node, honest, go_binary))


@pytest.mark.anyio
async def test_header_then_silence(node, honest, go_binary) -> None:
    """Slowloris: a header, then nothing; cut off by the 2 s negotiation timeout."""
    payload = ms_message(MULTISTREAM)
    await run_case("multistream slowloris", node,
                   lambda ev: offend(node, payload, ev, close_within=4.0,
                                     expect="negotiation (listener) timed out"),
                   honest_probes(node, honest, go_binary), rounds=3)


@pytest.mark.anyio
async def test_thousands_of_na_rounds(node, honest, go_binary) -> None:
    """3000 unknown proposals in one write: 32 `na`s (max_negotiation_rounds), then a close."""
    proposals = b"".join(ms_message(f"/nope/{i}") for i in range(3000))
    got: list[int] = []

    async def attack(started: anyio.Event) -> None:
        s = await raw_connect(node.host, node.port, source="127.0.0.9")
        await s.send(ms_message(MULTISTREAM) + proposals)
        started.set()
        assert await read_ms(s) == MULTISTREAM
        nas = 0
        try:
            while True:
                msg = await read_ms(s)
                assert msg == "na"
                nas += 1
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError, P2PError):
            pass  # the node closed the connection: what we want
        got.append(nas)
        await anyio.sleep_forever()

    await run_case("multistream 3000 na rounds", node, attack, honest_probes(node, honest, go_binary))
    assert got and 1 <= got[0] <= LIMITS["max_negotiation_rounds"] + 1, got
