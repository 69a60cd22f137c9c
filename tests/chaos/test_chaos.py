"""Chaos: ten worker processes SIGKILLed and restarted at random while two requesters distribute a
fixed number of requests.

Each request must end within its bound with the right answer or a typed error (an error response in
Go's words, or a P2PError); none may hang or be answered with another request's data. Afterwards
the test process is back to its starting file descriptors and tasks, and its memory near it.
The bound per request follows from the requesters' WorkerConfig: at most MAX_ATTEMPTS remote
attempts of at most WORKER_TIMEOUT each.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from oracle.manager import WorkerConfig
from oracle.node import NodeConfig, OracleNode
from p2p.errors import P2PError

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 10
REQUESTERS = 2
REQUESTS = 1000  # in total, split between the requesters (enough to outlast restarts: ~1 s each)
CONCURRENCY = 8  # per requester
MIN_ALIVE = 3
MAX_ATTEMPTS = 4
WORKER_TIMEOUT = 5.0
REQUEST_BOUND = MAX_ATTEMPTS * WORKER_TIMEOUT + 5.0  # + slack for a loaded 2-core machine
SEED = 20240605


@pytest.fixture
def anyio_backend():
    return "asyncio"  # one backend: the run is long; the drivers' own tests cover trio


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Slot:
    """One worker position: a key file (its identity survives restarts) and its current process."""

    index: int
    workdir: Path
    proc: anyio.abc.Process | None = None
    addr: str = ""
    kills: int = 0
    starts: int = 0

    @property
    def key_file(self) -> Path:
        return self.workdir / f"worker{self.index}.key"

    async def start(self) -> str:
        cmd = [sys.executable, "-m", "oracle", "--log-level", "ERROR", "node", "--listen",
               "/ip4/127.0.0.1/tcp/0", "--key-file", str(self.key_file), "--worker", "test"]
        with open(self.workdir / f"worker{self.index}.log", "ab") as log:
            proc = await anyio.open_process(cmd, stdin=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        assert proc.stdout is not None
        try:
            with anyio.fail_after(30):
                line = await BufferedByteReceiveStream(proc.stdout).receive_until(b"\n", 1 << 16)
        except BaseException:
            proc.kill()
            await proc.aclose()
            raise
        self.proc, self.starts = proc, self.starts + 1
        self.addr = json.loads(line)["addrs"][0]
        return self.addr

    async def kill(self) -> None:
        """SIGKILL: no goodbye on any connection, the kernel resets them."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            with anyio.CancelScope(shield=True):
                await proc.aclose()
            self.kills += 1

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(10):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
            await proc.aclose()


@dataclass
class Tally:
    ok: int = 0
    error_responses: int = 0
    p2p_errors: int = 0
    hung: int = 0
    wrong_answer: int = 0
    answered: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    done: int = 0
    progress: anyio.Event = field(default_factory=anyio.Event)

    def finished_one(self) -> None:
        self.done += 1
        self.progress.set()
        self.progress = anyio.Event()

    async def wait_for(self, count: int, stop: anyio.Event) -> None:
        """Wait until `count` requests have ended (or the run stops): chaos paced by progress."""
        while self.done < count and not stop.is_set():
            await self.progress.wait()


async def one_request(node: OracleNode, rid: str, tally: Tally) -> None:
    started = time.monotonic()
    try:
        with anyio.fail_after(REQUEST_BOUND):
            response = await node.submit("test", rid, request_id=rid)
    except TimeoutError:
        tally.hung += 1
        return
    except P2PError:
        tally.p2p_errors += 1
        return
    finally:
        tally.slowest = max(tally.slowest, time.monotonic() - started)
        tally.finished_one()
    tally.answered[rid] = tally.answered.get(rid, 0) + 1
    if response.error:
        tally.error_responses += 1
    elif response.data == rid:
        tally.ok += 1
    else:
        tally.wrong_answer += 1


async def run_requester(node: OracleNode, ids: list[str], tally: Tally) -> None:
    limit = anyio.Semaphore(CONCURRENCY)

    async def guarded(rid: str) -> None:
        async with limit:
            await one_request(node, rid, tally)

    async with anyio.create_task_group() as tg:
        for rid in ids:
            await limit.acquire()  # keep at most CONCURRENCY tasks alive, not one per request
            limit.release()
            tg.start_soon(guarded, rid)


async def chaos(slots: list[Slot], requesters: list[OracleNode], rng: random.Random,
                tally: Tally, stop: anyio.Event, log: list[str]) -> None:
    """Kill a random live worker every 4-14 finished requests; restart it 0-5 requests later (it then takes ~1 s to
    come up, so several are down at once)."""

    async def restart(slot: Slot, at: int) -> None:
        await tally.wait_for(at, stop)
        addr = await slot.start()
        for node in requesters:
            with anyio.move_on_after(10):
                try:
                    await node.connect(addr)
                except (P2PError, OSError, TimeoutError):
                    pass  # a requester that cannot reach it now will retry on the next request

    async with anyio.create_task_group() as tg:
        while not stop.is_set():
            await tally.wait_for(tally.done + rng.randint(4, 14), stop)
            if stop.is_set():
                break
            alive = [s for s in slots if s.proc is not None]
            if len(alive) <= MIN_ALIVE:
                continue
            victim = rng.choice(alive)
            await victim.kill()
            log.append(f"killed worker {victim.index}")
            tg.start_soon(restart, victim, tally.done + rng.randint(0, 5))


@pytest.mark.anyio
@pytest.mark.timeout(240)
async def test_workers_killed_and_restarted_while_requests_flow(tmp_path, capsys):
    gc.collect()
    base = {"fds": fds(), "tasks": len(asyncio.all_tasks()), "rss": rss_mib()}
    slots = [Slot(i, tmp_path) for i in range(WORKERS)]
    tally, log = Tally(), []
    peak_fds = 0
    started = time.monotonic()
    try:
        async with anyio.create_task_group() as tg:
            for slot in slots:
                tg.start_soon(slot.start)
        config = NodeConfig(listen=(), worker=WorkerConfig(
            connection_timeout=2.0, worker_timeout=WORKER_TIMEOUT, worker_response_timeout=4.0,
            max_remote_workers=MAX_ATTEMPTS, failure_backoff=2.0))
        async with OracleNode(None, config) as r1, OracleNode(None, config) as r2:
            requesters = [r1, r2]
            for node in requesters:
                results = await node.connect_all([s.addr for s in slots])
                assert all(not isinstance(v, BaseException) for v in results.values()), results
                assert len(node.workers()) == WORKERS
            ids = [f"req-{i}" for i in range(REQUESTS)]
            stop = anyio.Event()
            rng = random.Random(SEED)
            async with anyio.create_task_group() as tg:
                tg.start_soon(chaos, slots, requesters, rng, tally, stop, log)
                async with anyio.create_task_group() as work:
                    for k, node in enumerate(requesters):
                        work.start_soon(run_requester, node, ids[k::REQUESTERS], tally)
                peak_fds = fds()
                stop.set()
                tally.progress.set()  # wake the chaos loop and pending restarts
            during = {"fds": peak_fds, "tasks": len(asyncio.all_tasks()), "rss": rss_mib()}
    finally:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for slot in slots:
                    tg.start_soon(slot.stop)
    elapsed = time.monotonic() - started
    gc.collect()
    after = {"fds": fds(), "tasks": len(asyncio.all_tasks()), "rss": rss_mib()}
    kills = sum(s.kills for s in slots)
    with capsys.disabled():
        print(f"\nchaos: {REQUESTS} requests in {elapsed:.1f} s, {kills} SIGKILLs, "
              f"{sum(s.starts for s in slots) - WORKERS} restarts; ok {tally.ok}, error responses "
              f"{tally.error_responses}, P2P errors {tally.p2p_errors}, hung {tally.hung}, wrong "
              f"{tally.wrong_answer}; slowest {tally.slowest:.2f} s (bound {REQUEST_BOUND:.0f} s); "
              f"fds {base['fds']} -> {during['fds']} -> {after['fds']}, tasks {base['tasks']} -> "
              f"{during['tasks']} -> {after['tasks']}, RSS {base['rss']:.0f} -> {during['rss']:.0f} "
              f"-> {after['rss']:.0f} MiB")
    assert kills >= 8, log  # the chaos really happened (25 seen; skipped while <= 3 are up)
    assert tally.hung == 0 and tally.wrong_answer == 0
    assert tally.ok + tally.error_responses + tally.p2p_errors == REQUESTS
    assert sorted(tally.answered) == sorted(f"req-{i}" for i in range(REQUESTS)
                                            if f"req-{i}" in tally.answered)
    assert all(n == 1 for n in tally.answered.values())  # nobody answered twice
    assert tally.ok >= REQUESTS * 0.8  # with >= 3 workers always up, most requests succeed
    assert tally.slowest < REQUEST_BOUND
    assert after["fds"] <= base["fds"] + 2
    assert after["tasks"] <= base["tasks"]
    assert after["rss"] - base["rss"] < 64
