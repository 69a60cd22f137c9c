"""Hostile yamux sessions (inside a real Noise channel) against `python -m p2p serve` on trio.

Protocol violations must end the session with GoAway(1) and a close; floods must be bounded (RST
for streams over the limits, ping replies capped, output high-water mark); a peer that stops
reading must stall only itself (flow control blocks the writer, memory stays flat).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from kit import stop_checked
from kit import (
    ACK,
    DATA,
    FIN,
    GO_AWAY,
    PING,
    RST,
    SYN,
    WINDOW_UPDATE,
    Bounds,
    FrameReader,
    NodeProcess,
    honest_probes,
    ms_message,
    noise_session,
    p2p_node,
    run_case,
    yamux_frame,
)

LIMITS = {"negotiation_timeout": 2.0, "inbound_upgrade_timeout": 3.0}
WINDOW = 256 * 1024


@pytest.fixture(scope="module")
def node(log_dir: Path) -> Iterator[NodeProcess]:
    n = p2p_node(log_dir, LIMITS, backend="trio", debug=True)
    yield n
    stop_checked(n)


def violation(frames: bytes, rounds: list[list]) -> object:
    """Attack: sessions that send `frames` must each get GoAway(1) and a close; repeats."""
    async def attack(started: anyio.Event) -> None:
        while True:
            noise = await noise_session("127.0.0.1", NODE_PORT[0], source="127.0.0.20")
            await noise.send(frames)
            got = await FrameReader(noise).until_closed(timeout=5.0)
            rounds.append(got)
            await noise.stream.aclose()
            assert any(f[0] == GO_AWAY and f[3] == 1 for f in got), got[-5:]
            started.set()
    return attack


NODE_PORT: list[int] = [0]


@pytest.fixture(autouse=True)
def _port(node: NodeProcess) -> None:
    NODE_PORT[0] = node.port


SYN1 = yamux_frame(WINDOW_UPDATE, SYN, 1, 0)
CASES = {
    "window overrun": SYN1 + yamux_frame(DATA, 0, 1, WINDOW + 1, bytes(WINDOW + 1)),
    "Data+SYN beyond initial credit (rust-yamux CVE-2026-32314)":
        yamux_frame(DATA, SYN, 1, WINDOW + 1, bytes(WINDOW + 1)),
    "bad version": yamux_frame(PING, SYN, 0, 1, version=1),
    "bad type": yamux_frame(4, 0, 0, 0),
    "wrong stream parity": yamux_frame(WINDOW_UPDATE, SYN, 2, 0),
    "duplicate SYN": SYN1 + SYN1,
    "data after FIN": SYN1 + yamux_frame(DATA, FIN, 1, 3, b"abc") + yamux_frame(DATA, 0, 1, 3, b"def"),
    "SYN after GoAway(1)": SYN1 + SYN1 + b"".join(yamux_frame(WINDOW_UPDATE, SYN, i, 0)
                                                  for i in range(3, 200, 2)),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(CASES))
async def test_protocol_violation(node, honest, go_binary, name) -> None:
    rounds: list[list] = []
    log_start = node.log_size()
    await run_case(f"yamux {name}", node, violation(CASES[name], rounds),
                   honest_probes(node, honest, go_binary), rounds=1)
    assert "YamuxProtocolError" in node.stderr()[log_start:]
    if name == "SYN after GoAway(1)":  # nothing after the GoAway: no ACK for the later SYNs
        for got in rounds:
            acked = {f[2] for f in got if f[1] & ACK and f[0] in (DATA, WINDOW_UPDATE)}
            assert not acked & set(range(3, 200, 2)), acked


@pytest.mark.anyio
async def test_syn_flood(node, honest, go_binary) -> None:
    """10,000 SYNs in one burst: at most 1024 live inbound streams, the rest RST; nothing grows
    without bound, and the streams that were accepted die at the 2 s negotiation timeout."""
    seen: dict[str, int] = {"rst": 0, "ack": 0}

    async def attack(started: anyio.Event) -> None:
        noise = await noise_session("127.0.0.1", node.port, source="127.0.0.21")
        await noise.send(b"".join(yamux_frame(WINDOW_UPDATE, SYN, i, 0)
                                  for i in range(1, 20001, 2)))
        reader = FrameReader(noise)
        with anyio.move_on_after(30):
            while seen["rst"] + seen["ack"] < 10_000:
                f = await reader.next(10)
                if f[0] == WINDOW_UPDATE and f[1] & RST:
                    seen["rst"] += 1
                elif f[0] == WINDOW_UPDATE and f[1] & ACK:
                    seen["ack"] += 1
                if seen["rst"] + seen["ack"] >= 2000:
                    started.set()
        started.set()
        await anyio.sleep_forever()

    await run_case("yamux SYN flood 10000", node, attack, honest_probes(node, honest, go_binary),
                   bounds=Bounds(rss_growth_kib=48 * 1024), rounds=2)
    print(f"SYN flood: {seen}")
    assert seen["ack"] <= 1024 + 256, seen  # max_inbound_streams (+ streams freed meanwhile)
    assert seen["rst"] >= 10_000 - seen["ack"] - 256, seen


@pytest.mark.anyio
async def test_reader_that_never_reads(node, honest, go_binary) -> None:
    """An echo stream whose client writes (up to 1 GiB) but never reads or grants window: the
    node's echo writer blocks at our 256 KiB window, the node stops reading, and our writer is
    held at the node's window. We stop once the window is provably full (no credit for 1 s)."""
    state = {"sent": 0, "window": WINDOW}

    async def attack(started: anyio.Event) -> None:
        noise = await noise_session("127.0.0.1", node.port, source="127.0.0.22")
        await noise.send(SYN1 + yamux_frame(DATA, 0, 1, 0) +
                         yamux_frame(DATA, 0, 1, len(ms := ms_message("/multistream/1.0.0") +
                                                     ms_message("/echo/1.0.0")), ms))
        state["window"] -= len(ms)
        reader = FrameReader(noise)
        credit = anyio.Event()

        async def read_frames() -> None:
            nonlocal credit
            while True:
                f = await reader.next(60)
                if f[0] == WINDOW_UPDATE and f[2] == 1 and f[3]:
                    state["window"] += f[3]
                    credit.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_frames)
            chunk = bytes(60_000)
            while state["sent"] < 1 << 30:
                if state["window"] <= 0:
                    credit = anyio.Event()
                    with anyio.move_on_after(1.0) as scope:
                        await credit.wait()
                    if scope.cancelled_caught:
                        break  # a whole second without credit: the writer is blocked
                    continue
                n = min(len(chunk), state["window"])
                await noise.send(yamux_frame(DATA, 0, 1, n, chunk[:n]))
                state["window"] -= n
                state["sent"] += n
            started.set()
            await anyio.sleep_forever()

    await run_case("yamux never-reading reader vs 1 GiB writer", node, attack,
                   honest_probes(node, honest, go_binary), rounds=2,
                   note="(writer stopped once blocked)")
    # echo buffer (256 KiB read) + node's receive window (256 KiB) + echo in flight (256 KiB)
    assert state["sent"] <= 4 * WINDOW, state
    print(f"never-reading reader: writer blocked after {state['sent']} bytes")


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["rst", "ping"])
async def test_control_floods(node, honest, go_binary, kind) -> None:
    """20,000 SYN+RST pairs, or 100,000 pings whose replies we never read."""
    if kind == "rst":
        burst = b"".join(yamux_frame(WINDOW_UPDATE, SYN, i, 0) + yamux_frame(WINDOW_UPDATE, RST, i, 0)
                         for i in range(1, 40001, 2))
    else:
        burst = b"".join(yamux_frame(PING, SYN, 0, i) for i in range(100_000))

    async def attack(started: anyio.Event) -> None:
        noise = await noise_session("127.0.0.1", node.port, source="127.0.0.23")
        async with anyio.create_task_group() as tg:
            tg.start_soon(noise.send, burst)  # may block: we never read, the node may stop too
            started.set()
            await anyio.sleep_forever()

    await run_case(f"yamux {kind} flood", node, attack, honest_probes(node, honest, go_binary), rounds=2)
