"""A peer whose identify answer is garbage: the node resets its identify stream at once (go's
identify resets the stream on a failed read) instead of leaving it open until the connection ends.
Node: `python -m p2p serve --echo`; the attacker answers the node's identify request by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit import (
    ACK,
    DATA,
    FIN,
    MULTISTREAM,
    PROBE_DEADLINE,
    REPORT,
    RST,
    SYN,
    FrameReader,
    NodeProcess,
    ms_message,
    net_probe,
    noise_session,
    p2p_node,
    stop_checked,
    yamux_frame,
)

IDENTIFY = "/ipfs/id/1.0.0"


@pytest.fixture(scope="module")
def node(log_dir: Path) -> Iterator[NodeProcess]:
    n = p2p_node(log_dir)
    yield n
    stop_checked(n)


@pytest.mark.anyio
@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff\x0f" + bytes(64), b"\x10\x0a\x03abc"],
                         ids=["length over the limit", "truncated message"])
async def test_failed_identify_read_resets_the_stream(node, honest, garbage) -> None:
    noise = await noise_session(node.host, node.port)
    frames = FrameReader(noise)
    # The node opens its identify stream to us (SYN) and proposes the protocol.
    syn = await frames.until(lambda f: f[2] != 0 and bool(f[1] & SYN), timeout=5)
    sid = syn[2]
    proposal = syn[4]
    while IDENTIFY.encode() not in proposal:
        frame = await frames.until(lambda f: f[2] == sid and f[0] == DATA, timeout=5)
        proposal += frame[4]
    answer = ms_message(MULTISTREAM) + ms_message(IDENTIFY) + garbage
    sent = time.perf_counter()
    await noise.send(yamux_frame(DATA, ACK | FIN, sid, len(answer), answer))
    reset = await frames.until(lambda f: f[2] == sid and bool(f[1] & RST), timeout=5)
    took = time.perf_counter() - sent
    with open(REPORT, "a") as f:
        f.write(f"identify garbage ({garbage[:8]!r}...): stream reset after {took * 1000:.0f} ms\n")
    assert reset[2] == sid and took < 2.0
    # the node still answers an honest peer
    await net_probe(lambda: honest.probe(deadline=PROBE_DEADLINE), node)
    await noise.stream.aclose()
