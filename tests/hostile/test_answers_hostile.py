"""Costly and unread work answers, and a legitimate burst, against a default
`python -m oracle node --worker test` (open to any peer, default WorkerPolicy).

- Costly answers: a go requester keeps 4 requests of ~786 kB of zero bytes in flight (a 1 MiB
  request frame whose answer is 4.7 MB: each byte becomes `\\u0000`); an honest peer's pings over
  its own connection must each stay under 100 ms all the while, not counting the time the OS
  kept the pinging or the node's threads waiting for a CPU.
- Unread answers: 12 peers x 4 streams send such requests and never read; the node's RSS must
  stay within the worker's answer budget plus a stated overhead, and come back once the streams
  are gone.
- A burst: a go requester written as masa's sendWorkToWorker sends 16 requests at once; all are
  served.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from kit import REPORT, NodeProcess, OffCpuClock, stop_checked, wait_for

from gopeer import run_gopeer
from oracle.framing import write_message
from oracle.messages import WorkRequest
from p2p.host import Host
from p2p.identity import PrivateKey

PROTO = "/masa/worker_protocol/v0.8.4"
BIG = 786_000  # the largest data whose request frame fits the default 1 MiB request limit
PING_LIMIT = 0.100
#: RSS the unread-answers attack may add over the node's baseline: the answer budget
#: (WorkerPolicy.max_answer_bytes_total, 64 MiB) plus requests in flight, yamux buffers, and the
#: one answer being built at a time (its pieces, then the one buffer they are joined into).
UNREAD_RSS_BOUND_KIB = 64 * 1024 + 48 * 1024
#: What may stay over the baseline once every stream is gone.
SETTLED_RSS_KIB = 24 * 1024


def report(line: str) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    with open(REPORT, "a") as f:
        f.write(line + "\n")
    print(line)


@pytest.fixture(scope="module")
def node(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    home = tmp_path_factory.mktemp("oracle-home")
    n = NodeProcess(["-m", "oracle", "--log-level", "INFO", "node", "--key-type", "ed25519",
                     "--worker", "test"], log_dir=log_dir, env={"HOME": str(home)})
    yield n
    stop_checked(n)


def go_bench_work(node: NodeProcess, binary: Path, **params: float) -> dict:
    return run_gopeer("bench", "dial", "worker", "--addr", node.addr, "--params",
                      json.dumps(params), binary=binary, timeout=120)


@pytest.mark.anyio
async def test_costly_answers_do_not_stall_pings(node, honest, go_binary) -> None:
    result: dict = {}

    async def attack() -> None:
        result.update(await anyio.to_thread.run_sync(
            lambda: go_bench_work(node, go_binary, size=BIG, concurrency=4, count=10_000,
                                  budget_s=4)))

    # A ping's path: this process's loop writes, the node's loop answers, this loop reads. The
    # time their threads spent runnable but kept off the CPU (by other work on the machine, or
    # the go requester reading its answers) is the OS's, not a stall of the node's loop.
    clock = OffCpuClock([os.getpid(), node.pid])

    async def probe() -> tuple[float, float]:
        return await clock.time(lambda: honest.probe(deadline=5))

    # The same probes without an attack first: what this machine's load alone costs a ping.
    baseline = []
    for _ in range(30):
        baseline.append(await probe())
        await anyio.sleep(0.02)  # the probes' pace
    pings: list[tuple[float, float]] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(attack)
        with anyio.fail_after(60):
            while not result:
                pings.append(await probe())
                await anyio.sleep(0.02)  # the probes' pace
    times = [wall for wall, _ in pings]
    own = [wall - waited for wall, waited in pings]
    report(f"costly answers: {result['count']} answers of 4.7 MB in {result['seconds']:.1f} s"
           f" (failures {result['failures']}); honest ping over {len(times)} probes: median"
           f" {statistics.median(times) * 1000:.1f} ms, p90"
           f" {sorted(times)[int(len(times) * 0.9)] * 1000:.1f} ms, max {max(times) * 1000:.1f} ms,"
           f" max without the time waiting for a CPU {max(own) * 1000:.1f} ms"
           f" (without the attack: median {statistics.median(w for w, _ in baseline) * 1000:.1f}"
           f" ms, max {max(w for w, _ in baseline) * 1000:.1f} ms)")
    assert result["failures"] == 0, result
    assert result["count"] >= 8, result
    assert len(times) >= 10
    # Every ping under 100 ms once the time the OS kept either loop's thread waiting for a CPU
    # is taken out: a machine loaded by other work holds the loop's thread off the CPU for
    # 100-260 ms at times (seen with probes inside the node: no long callback, the longest
    # 3.4-4.4 ms), while a long callback or a blocking call in the node's loop is time running
    # or sleeping, which stays in. On a quiet machine the pings take 8-12 ms all told; a loop
    # stalled by building answers fails (before 0831fe7: p90 1151 ms, max 1476 ms, one answer
    # blocked it 0.6 s).
    slow = [(round(wall, 4), round(waited, 4)) for wall, waited in pings
            if wall - waited >= PING_LIMIT]
    assert not slow, f"pings (wall s, of which waiting for a CPU s) over {PING_LIMIT} s: {slow}" \
        f"; slowest walls {[round(t, 4) for t in sorted(times)[-8:]]}"


@pytest.mark.anyio
async def test_burst_of_sixteen_is_served(node, go_binary) -> None:
    """Requests of 200 kB take the node a few ms each, so the 16 overlap (tiny ones may not)."""
    result = await anyio.to_thread.run_sync(
        lambda: go_bench_work(node, go_binary, size=200_000, concurrency=16, count=16,
                              budget_s=30))
    report(f"burst of 16 from one go requester: {result['count']} served,"
           f" {result['failures']} failed ({result['first_error']})")
    assert result["failures"] == 0 and result["count"] == 16, result


@pytest.mark.anyio
async def test_unread_answers_are_bounded_and_return(node) -> None:
    base = node.rss_kib()
    body = WorkRequest("test", "unread", b"<" * BIG).to_go_json()
    peak = base
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(12):
            host = await stack.enter_async_context(Host(PrivateKey.generate()))
            peer = await host.connect(node.addr)
            for _ in range(4):
                s = await host.new_stream(peer, [PROTO], timeout=5)
                await write_message(s, body)
        # Poll RSS until it has not grown for a second (every answer built or refused).
        last_growth = time.monotonic()
        with anyio.move_on_after(15):
            while time.monotonic() - last_growth < 1.0:
                rss = node.rss_kib()
                if rss > peak:
                    peak, last_growth = rss, time.monotonic()
                await anyio.sleep(0.05)
        held = peak
    settled = True
    gone = time.monotonic()
    try:
        await wait_for(lambda: node.rss_kib() <= base + SETTLED_RSS_KIB, 15, "RSS settled")
    except AssertionError:
        settled = False
    after = node.rss_kib()
    report(f"unread answers (48 streams x 4.7 MB answers): RSS KiB before {base}, peak {held}"
           f" (+{(held - base) // 1024} MiB), {after} {time.monotonic() - gone:.1f} s after the"
           f" streams are gone")
    assert held - base <= UNREAD_RSS_BOUND_KIB, (base, held)
    assert settled, f"RSS not back within {SETTLED_RSS_KIB} KiB of {base} KiB: {after}"
