"""Build and drive the masa-like Go test peer (``tests/interop/gomasa/``).

``gomasa serve`` prints ``{"peer_id", "addrs"}`` once listening, then answers JSON commands on stdin
with one JSON line each (``tracker``, ``distribute``, ``connect``, ``disconnect``, ``announce``,
``sync``, ``handlers``: registers the masa handlers of a node started with ``-late-handlers``); ``gomasa nodedata`` and ``gomasa decode`` are one-shot. Built like the go-libp2p
test peer (cached by source digest under ``<repo>/.cache/gomasa/``); a failed build fails the tests.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from gopeer import ChildHarness, ChildStderr, GoPeerError, build_go_program

__all__ = ["GOMASA_SRC", "GoMasa", "build_gomasa", "run_gomasa"]

GOMASA_SRC = Path(__file__).resolve().parent / "gomasa"


def build_gomasa() -> Path:
    return build_go_program(GOMASA_SRC)


def run_gomasa(*args: str, stdin: bytes = b"", timeout: float = 30.0) -> dict[str, Any]:
    """A one-shot command; its JSON line (raises GoPeerError on a non-zero exit)."""
    proc = subprocess.run([str(build_gomasa()), *args], input=stdin, capture_output=True,
                          timeout=timeout, check=False)
    out = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0:
        raise GoPeerError(f"gomasa {args[:1]} failed: {out}", returncode=proc.returncode,
                          result=None, stderr=proc.stderr.decode(errors="replace"))
    return {"line": out[-1] if out else ""}


class GoMasa(ChildHarness):
    """A running ``gomasa serve``; commands are synchronous with a timeout."""

    def __init__(self, *args: str, start_timeout: float = 30.0) -> None:
        self._stderr = ChildStderr()
        self._proc = subprocess.Popen([str(build_gomasa()), "serve", *args], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr.file)
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()
        self._lock = threading.Lock()
        first = self._next(start_timeout)
        info = json.loads(first) if first else {}
        if "peer_id" not in info:
            self.stop()
            raise GoPeerError(f"gomasa did not start: {info or 'no output'}", returncode=self._proc.returncode,
                              result=info or None, stderr=self.stderr_text())
        self.peer_id: str = info["peer_id"]
        self.addrs: list[str] = info["addrs"]

    def __repr__(self) -> str:
        return f"<GoMasa pid={self._proc.pid} {getattr(self, 'peer_id', '')}>"

    @property
    def addr(self) -> str:
        return self.addrs[0]

    def _read(self) -> None:
        assert self._proc.stdout is not None
        try:
            for line in iter(self._proc.stdout.readline, b""):
                self._lines.put(line)
        except (OSError, ValueError):
            pass

    def _next(self, timeout: float) -> bytes | None:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def command(self, timeout: float = 60.0, **cmd: Any) -> dict[str, Any]:
        with self._lock:
            assert self._proc.stdin is not None
            if self._proc.poll() is not None:
                raise GoPeerError(f"gomasa exited ({self._proc.returncode})", returncode=self._proc.returncode,
                                  result=None, stderr=self.stderr_text())
            self._proc.stdin.write(json.dumps(cmd).encode() + b"\n")
            self._proc.stdin.flush()
            line = self._next(timeout)
        if line is None:
            raise GoPeerError(f"gomasa gave no answer to {cmd} within {timeout} s", returncode=None,
                              result=None, stderr=self.stderr_text())
        return json.loads(line)

    def tracker(self) -> dict[str, Any]:
        return self.command(cmd="tracker")

    def entry(self, peer_id: str) -> dict[str, Any] | None:
        for node in self.tracker()["nodes"]:
            if node["peerId"] == peer_id:
                return node
        return None

    def wait_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0,
                   what: str = "condition") -> dict[str, Any]:
        """Poll the tracker until `predicate(tracker)` holds; AssertionError with the state otherwise."""
        deadline = time.monotonic() + timeout
        state = self.tracker()
        while not predicate(state):
            if time.monotonic() > deadline:
                raise AssertionError(f"gomasa: {what} not reached in {timeout} s; tracker {state}\n"
                                     f"stderr:\n{self.stderr_text()[-3000:]}")
            time.sleep(0.1)
            state = self.tracker()
        return state

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=timeout)
        for f in (self._proc.stdin, self._proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        self._stderr.close()
