"""Bench peer processes: start, read their JSON lines with timeouts, measure RSS, stop.

Every wait on a peer is bounded: lines are read by a daemon thread into a queue, so the harness
waits with a timeout and never blocks on a silent child. Peers are stopped by closing their stdin
(the contract's "serve until stdin closes") and killed by PID if they linger.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class PeerError(RuntimeError):
    """A bench peer failed, printed an error line, or stayed silent past its timeout."""


@dataclass(eq=False)
class Peer:
    proc: subprocess.Popen
    name: str
    stderr_path: Path
    started: float
    lines: queue.Queue = field(default_factory=queue.Queue)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def next_json(self, timeout: float) -> dict:
        """The next JSON line on stdout (non-JSON lines are skipped), or PeerError."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerError(f"{self.name}: no answer within {timeout:.0f} s{self._stderr_tail()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                raise PeerError(f"{self.name}: exited ({self.proc.returncode}) without a result"
                                f"{self._stderr_tail()}")
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "error" in obj:
                raise PeerError(f"{self.name}: {obj['error']}{self._stderr_tail()}")
            if isinstance(obj, dict):
                return obj

    def go_ahead(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 5.0) -> None:
        """Close stdin, wait, then kill this peer's own PID."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        _live.discard(self)

    def _stderr_tail(self, n: int = 600) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return f"\n  stderr: ...{text[-n:]}" if text else ""


_live: set[Peer] = set()


def stop_all() -> None:
    """Stop every peer still running (the harness calls this on exit, SIGTERM included)."""
    for peer in list(_live):
        try:
            peer.stop(timeout=2.0)
        except Exception:
            pass


def start_peer(name: str, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None,
               log_dir: Path) -> Peer:
    log_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err)
    peer = Peer(proc, name, stderr_path, time.perf_counter())
    _live.add(peer)
    threading.Thread(target=_pump, args=(proc, peer.lines), daemon=True).start()
    return peer


def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        lines.put(raw.decode(errors="replace").strip())
    lines.put(None)


def rss_kib(pid: int) -> int:
    """Resident set size of a process from /proc (Linux), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise PeerError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_entries() -> int | None:
    """How many times the machine's CPUs have entered an idle state other than polling, in all
    (Linux cpuidle; on a virtual machine each is a halt of the virtual CPU, which another CPU must
    wake with an interrupt); None without cpuidle."""
    total, found = 0, False
    for state in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpuidle/state[0-9]*"):
        try:
            if (state / "name").read_text().strip() == "POLL":
                continue
            total += int((state / "usage").read_text())
            found = True
        except (OSError, ValueError):
            continue
    return total if found else None


def run_dialer(peer: Peer, timeout: float, on_phase: Callable[[dict], None] | None = None) -> dict:
    """Wait for the dialer's result, calling `on_phase` at each phase line before letting it go on."""
    try:
        while True:
            obj = peer.next_json(timeout)
            phase = obj.get("phase")
            if phase is None:
                return obj
            if on_phase is not None:
                on_phase(obj)
            peer.go_ahead()
    finally:
        peer.stop()


def environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env
