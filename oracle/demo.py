"""`python -m oracle demo` (`make demo`): work distribution across real local nodes, with a failover.

The worker nodes are subprocesses running `python -m oracle node`, so killing one is a real kill
(SIGKILL: no goodbye on the wire, the kernel closes its sockets). The requester runs in this process
as an OracleNode with no handlers of its own, next to a bystander Host that serves only identify
and ping: connect + identify is what tells the requester which peers are workers.

Why the failover is certain and not a matter of luck: the kill waits for a moment when the victim
has just accepted a `slow` item (its handler sleeps at least 20 ms), so that item is in flight when
the worker dies; its requester sees the stream break and moves on to the next worker.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from p2p.host import Host

from oracle.messages import WorkRequest, WorkResponse
from oracle.node import NodeConfig, OracleNode

__all__ = ["DemoOptions", "run_demo", "slow_handler"]

_MAX_LINE = 1 << 20
_ERR_WIDTH = 70


async def slow_handler(data: bytes) -> dict[str, Any]:
    """The demo's `slow` work type: sleeps 20-49 ms (a function of the item number), echoes the text."""
    text = bytes(data).decode("utf-8", "replace")
    number = int("".join(ch for ch in text if ch.isdigit()) or 0)
    delay_ms = 20 + (number * 7) % 30
    await anyio.sleep(delay_ms / 1000)
    return {"item": text, "slept_ms": delay_ms}


@dataclass(frozen=True)
class DemoOptions:
    workers: int = 4
    items: int = 48
    concurrency: int = 4
    kill: bool = True
    startup_timeout: float = 30.0
    item_timeout: float = 20.0
    trace: Any = None  # a p2p.trace.Tracer for the requester's connections (`demo --trace`)


# ---- worker subprocesses ------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    label: str
    process: anyio.abc.Process
    stdout: BufferedByteReceiveStream
    stderr_path: Path
    peer_id: str = ""
    addrs: list[str] = field(default_factory=list)
    killed: bool = False
    final: dict[str, Any] | None = None

    async def read_json_line(self) -> dict[str, Any]:
        line = await self.stdout.receive_until(b"\n", _MAX_LINE)
        return json.loads(line)  # type: ignore[no-any-return]


async def start_worker(label: str, workdir: Path, timeout: float) -> WorkerProcess:
    """Start `python -m oracle node` and wait (bounded) for its listening line."""
    stderr_path = workdir / f"{label}.log"
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
               ORACLE_PARENT_PID=str(os.getpid()))  # the node exits when this process dies
    cmd = [
        sys.executable, "-m", "oracle", "--log-level", "WARNING", "node",
        "--listen", "/ip4/127.0.0.1/tcp/0", "--key-type", "secp256k1",
        "--worker", "test", "--handler", "slow=oracle.demo:slow_handler",
    ]
    with open(stderr_path, "wb") as err:
        process = await anyio.open_process(cmd, stdin=subprocess.DEVNULL, stderr=err, env=env)
    assert process.stdout is not None
    worker = WorkerProcess(label, process, BufferedByteReceiveStream(process.stdout), stderr_path)
    try:
        with anyio.fail_after(timeout):
            info = await worker.read_json_line()
    except (TimeoutError, anyio.EndOfStream, anyio.IncompleteRead, ValueError) as exc:
        process.kill()
        log_tail = stderr_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"worker {label} did not start ({exc!r}); its log:\n{log_tail}") from None
    worker.peer_id, worker.addrs = info["peer_id"], list(info["addrs"])
    return worker


async def stop_worker(worker: WorkerProcess, timeout: float = 10.0) -> None:
    """SIGTERM, then collect the `stopped` line with the worker's handler metrics."""
    if worker.process.returncode is not None:
        return
    worker.process.send_signal(signal.SIGTERM)
    with anyio.move_on_after(timeout):
        try:
            while worker.final is None:
                line = await worker.read_json_line()
                if line.get("stopped"):
                    worker.final = line
        except (anyio.EndOfStream, anyio.IncompleteRead, ValueError):
            pass
        await worker.process.wait()
    if worker.process.returncode is None:
        worker.process.kill()
        with anyio.CancelScope(shield=True):
            await worker.process.wait()


# ---- recording attempts -------------------------------------------------------------------------


@dataclass
class Attempt:
    request_id: str
    work_type: str
    peer: str
    started: float
    seconds: float = 0.0
    error: str | None = None  # None while in flight


class RecordingDirectory:
    """Wraps the node's WorkerDirectory to see every attempt: who, how long, with what outcome."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.attempts: list[Attempt] = []
        self.attempt_started = anyio.Event()

    @property
    def local_peer_id(self) -> Hashable:
        return self.inner.local_peer_id  # type: ignore[no-any-return]

    def eligible_peers(self, work_type: str) -> Iterable[Hashable]:
        return self.inner.eligible_peers(work_type)  # type: ignore[no-any-return]

    async def send_work(self, peer: Any, request: WorkRequest, **timeouts: float) -> WorkResponse:
        attempt = Attempt(request.request_id, request.work_type, str(peer), time.monotonic())
        self.attempts.append(attempt)
        self.attempt_started.set()
        self.attempt_started = anyio.Event()
        try:
            response: WorkResponse = await self.inner.send_work(peer, request, **timeouts)
        except BaseException as exc:
            attempt.error = str(exc) or type(exc).__name__
            raise
        finally:
            attempt.seconds = time.monotonic() - attempt.started
        attempt.error = response.error
        return response

    def in_flight(self) -> list[Attempt]:
        return [a for a in self.attempts if a.error is None]


# ---- output -------------------------------------------------------------------------------------


class Progress:
    """A plain-text progress bar: redrawn in place on a TTY, printed at each quarter otherwise."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.out, self.done = total, out, 0
        self.tty = out.isatty()
        self._quarter = 0

    def bar(self) -> str:
        width = 30
        filled = width * self.done // max(1, self.total)
        pct = 100 * self.done // max(1, self.total)
        return f"[{'#' * filled}{'.' * (width - filled)}] {self.done:>3}/{self.total} {pct:>3}%"

    def println(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K" + text + "\n" + self.bar())
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def advance(self) -> None:
        self.done += 1
        if self.tty:
            self.out.write("\r\x1b[2K" + self.bar())
        elif 4 * self.done // max(1, self.total) > self._quarter:
            self._quarter = 4 * self.done // max(1, self.total)
            self.out.write(self.bar() + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def _short(peer: str) -> str:
    return f"…{peer[-6:]}"


def _clip(text: str) -> str:
    return text if len(text) <= _ERR_WIDTH else text[: _ERR_WIDTH - 1] + "…"


# ---- the demo -----------------------------------------------------------------------------------


async def run_demo(options: DemoOptions = DemoOptions(), out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if options.workers < 2 or options.items < 2 or options.concurrency < 1:
        raise ValueError("the demo needs at least 2 workers, 2 items and a concurrency of 1")

    def say(text: str = "") -> None:
        out.write(text + "\n")
        out.flush()

    say(f"masa oracle demo: {options.workers} worker nodes (subprocesses), 1 requester, 1 bystander, "
        f"{options.items} work items")
    workers: list[WorkerProcess] = []
    with tempfile.TemporaryDirectory(prefix="oracle-demo-") as tmp:
        try:
            t0 = time.monotonic()
            async with anyio.create_task_group() as tg:
                async def launch(label: str) -> None:
                    workers.append(await start_worker(label, Path(tmp), options.startup_timeout))

                for i in range(options.workers):
                    tg.start_soon(launch, f"w{i + 1}")
            workers.sort(key=lambda w: w.label)
            say(f"\nstarted {len(workers)} worker nodes in {time.monotonic() - t0:.1f} s:")
            for w in workers:
                say(f"  {w.label}  pid {w.process.pid:<7} {w.addrs[0]}")
            return await _run_with_workers(options, workers, say, out)
        finally:
            with anyio.CancelScope(shield=True):
                for w in workers:
                    if w.process.returncode is None:
                        w.process.kill()
                        await w.process.wait()


async def _run_with_workers(options: DemoOptions, workers: list[WorkerProcess], say: Any, out: TextIO) -> int:
    by_peer = {w.peer_id: w for w in workers}
    config = NodeConfig(listen=())
    async with Host() as bystander, OracleNode(config=config, rng=random.Random(7), trace=options.trace) as node:
        await bystander.listen("/ip4/127.0.0.1/tcp/0")
        labels = {**{w.peer_id: w.label for w in workers}, str(bystander.peer_id): "bystander"}
        say("\ndiscovery (connect + identify):")
        results = await node.connect_all([a for w in workers for a in w.addrs[:1]] + bystander.p2p_addrs())
        for addr, peer in results.items():
            if isinstance(peer, BaseException):
                say(f"  {addr}: could not connect: {peer}")
                continue
            info = node.host.peerstore.get(peer)
            agent = info.agent_version if info is not None else "?"
            verdict = "serves " + node.worker.protocol_id if node.serves_worker(peer) else "not a worker"
            say(f"  {labels.get(str(peer), '?'):<9} {_short(str(peer))}  agent {agent:<18} {verdict}")
        if len(node.workers()) < len(workers):
            say("some workers were not discovered")
            return 1

        recorder = RecordingDirectory(node.manager.directory)
        node.manager.directory = recorder
        say(f"\ndistributing {options.items} items, {options.concurrency} in flight:")
        progress = Progress(options.items, out)
        half_done = anyio.Event()
        failures: list[str] = []
        failovers = 0
        next_item = iter(range(1, options.items + 1))

        async def run_items() -> None:
            nonlocal failovers
            for number in next_item:
                work_type = "test" if number % 3 == 0 else "slow"
                request = WorkRequest(work_type=work_type, request_id=f"item-{number:02d}", data=f"item {number}".encode())
                start = time.monotonic()
                with anyio.move_on_after(options.item_timeout):
                    response = await node.distribute_work(request)
                    ms = (time.monotonic() - start) * 1000
                    failed = [a for a in recorder.attempts if a.request_id == request.request_id and a.error]
                    served = labels.get(response.worker_peer_id, response.worker_peer_id or "-")
                    text = f"  #{number:02d} {work_type:<4} -> {served:<3} {ms:6.1f} ms"
                    if response.error:
                        failures.append(request.request_id)
                        text += f"  FAILED: {_clip(response.error)}"
                    elif failed:
                        failovers += 1
                        text += "  after failover from " + ", ".join(
                            f"{labels.get(a.peer, '?')} ({_clip(a.error or '')})" for a in failed)
                    progress.println(text)
                    progress.advance()
                    if progress.done >= options.items // 2:
                        half_done.set()
                    continue
                failures.append(request.request_id)
                progress.println(f"  #{number:02d} {work_type:<4} -> no answer within {options.item_timeout} s")
                progress.advance()

        killed: list[WorkerProcess] = []

        async def kill_midway() -> None:
            await half_done.wait()
            victim, serving = None, "an item"
            with anyio.move_on_after(5):
                while victim is None:
                    now = time.monotonic()
                    fresh = [a for a in recorder.in_flight() if a.work_type == "slow" and now - a.started < 0.015
                             and a.peer in by_peer]
                    if fresh:
                        victim, serving = by_peer[fresh[-1].peer], fresh[-1].request_id
                        break
                    await recorder.attempt_started.wait()
            victim = victim or workers[0]
            victim.process.kill()  # SIGKILL: a crash, not a shutdown
            victim.killed = True
            killed.append(victim)
            progress.println(f"  !! killed {victim.label} (pid {victim.process.pid}) with SIGKILL "
                             f"while it was serving {serving}")
            await victim.process.wait()

        with anyio.fail_after(options.item_timeout * options.items):
            async with anyio.create_task_group() as tg:
                if options.kill:
                    tg.start_soon(kill_midway)
                async with anyio.create_task_group() as runners:
                    for _ in range(options.concurrency):
                        runners.start_soon(run_items)
                half_done.set()
        progress.finish()

        say(f"\nfailover: {failovers} item(s) moved to another worker after "
            f"{', '.join(w.label for w in killed) or 'no worker'} died; {len(failures)} item(s) failed")
        _print_worker_table(workers, recorder, say)
        async with anyio.create_task_group() as tg:
            for w in workers:
                tg.start_soon(stop_worker, w)
        _print_handler_table(workers, say)
    ok = not failures
    say("\ndemo " + ("finished: every item was served" if ok else f"FAILED: {len(failures)} item(s) not served"))
    return 0 if ok else 1


def _print_worker_table(workers: list[WorkerProcess], recorder: RecordingDirectory, say: Any) -> None:
    say("\nper worker (measured by the requester):")
    say(f"  {'worker':<7} {'state':<7} {'served':>6} {'mean latency':>13} {'failed attempts':>16}")
    for w in workers:
        ok = [a for a in recorder.attempts if a.peer == w.peer_id and a.error == ""]
        bad = [a for a in recorder.attempts if a.peer == w.peer_id and a.error]
        mean = f"{1000 * sum(a.seconds for a in ok) / len(ok):.1f} ms" if ok else "-"
        state = "killed" if w.killed else "alive"
        say(f"  {w.label:<7} {state:<7} {len(ok):>6} {mean:>13} {len(bad):>16}")


def _print_handler_table(workers: list[WorkerProcess], say: Any) -> None:
    say("\nper handler (each worker's WorkHandlerManager, reported at shutdown):")
    say(f"  {'worker':<7} {'work type':<10} {'calls':>5} {'mean runtime':>13} {'errors':>6} {'timeouts':>8}")
    for w in workers:
        if w.final is None:
            say(f"  {w.label:<7} (no metrics: {'killed' if w.killed else 'did not report'})")
            continue
        for work_type, m in w.final["metrics"]["handlers"].items():
            say(f"  {w.label:<7} {work_type:<10} {m['calls']:>5} {1000 * m['mean_runtime']:>10.1f} ms "
                f"{m['errors']:>6} {m['timeouts']:>8}")
