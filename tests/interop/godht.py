"""Build and drive the Go DHT + GossipSub network (``tests/interop/godht/``).

One `godht serve` process hosts several go-libp2p v0.36.3 nodes with go-libp2p-kad-dht v0.26.1
and go-libp2p-pubsub v0.12.0 (a process per node would cost seconds of start-up each). It prints
one JSON line with every node's ID and addresses, then answers JSON commands on stdin, one JSON
line each, matched by "id". `call` is synchronous (a reader thread routes the answers); `acall`
runs it in a worker thread so that Python nodes on the same event loop keep running.
"""

from __future__ import annotations

import itertools
import json
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio.to_thread

from gopeer import ChildHarness, ChildStderr, GoPeerError, build_go_program

GODHT_SRC = Path(__file__).resolve().parent / "godht"
#: `godht serve` flags for a DHT shaped as masa's: protocol prefix /masa, K = 100.
MASA_DHT = ("-prefix", "/masa", "-bucket", 100)


def build_godht() -> Path:
    return build_go_program(GODHT_SRC)


def godht_vectors(binary: Path | None = None, timeout: float = 60.0) -> dict[str, str]:
    """The byte vectors go's own types encode (``godht vectors``): name -> hex."""
    exe = binary or build_godht()
    proc = subprocess.run([str(exe), "vectors"], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise GoPeerError(f"godht vectors failed: {proc.stdout}{proc.stderr}",
                          returncode=proc.returncode, result=None, stderr=proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


class GoDhtError(RuntimeError):
    pass


class GoDht(ChildHarness):
    """A running `godht serve`: `nodes` = [{"peer_id", "addrs"}], commands by `call`."""

    def __init__(self, *args: object, start_timeout: float = 60.0, binary: Path | None = None) -> None:
        exe = binary or build_godht()
        self._stderr = ChildStderr()
        self._proc = subprocess.Popen([str(exe), "serve", *map(str, args)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr.file)
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._first: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            first = self._first.get(timeout=start_timeout)
        except queue.Empty:
            first = None
        if not first or "nodes" not in first:
            self.stop()
            raise GoDhtError(f"godht did not start within {start_timeout} s: {first}\n"
                             f"{self.stderr_text()[-3000:]}")
        self.nodes: list[dict[str, Any]] = first["nodes"]

    def _read(self) -> None:
        assert self._proc.stdout is not None
        started = False
        for line in iter(self._proc.stdout.readline, b""):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if not started:
                started = True
                self._first.put(obj)
                continue
            with self._lock:
                q = self._waiting.get(obj.get("id"))
            if q is not None:
                q.put(obj)
        self._first.put(None)
        with self._lock:
            for q in self._waiting.values():
                q.put({"error": "godht exited"})

    def __repr__(self) -> str:
        return f"<GoDht pid={self._proc.pid} {len(getattr(self, 'nodes', []))} nodes>"

    def peer_id(self, i: int) -> str:
        return self.nodes[i]["peer_id"]

    def addr(self, i: int) -> str:
        return self.nodes[i]["addrs"][0]

    def call(self, cmd: str, *, timeout: float = 30.0, check: bool = True, **kw: Any) -> dict[str, Any]:
        ident = next(self._ids)
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._waiting[ident] = q
        try:
            line = json.dumps({"id": ident, "cmd": cmd, **kw}) + "\n"
            assert self._proc.stdin is not None
            with self._lock:
                self._proc.stdin.write(line.encode())
                self._proc.stdin.flush()
            try:
                reply = q.get(timeout=timeout)
            except queue.Empty:
                raise GoDhtError(f"godht {cmd} {kw} got no answer within {timeout} s") from None
        finally:
            with self._lock:
                self._waiting.pop(ident, None)
        if check and "error" in reply:
            raise GoDhtError(f"godht {cmd} {kw}: {reply['error']}")
        return reply

    async def acall(self, cmd: str, **kw: Any) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(lambda: self.call(cmd, **kw))

    def stop(self, timeout: float = 10.0) -> int | None:
        proc = self._proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()  # EOF: the nodes close and the process exits
                proc.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        self._stderr.close()
        return proc.returncode
