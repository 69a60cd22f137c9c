"""A peer program in another runtime, driven by JSON lines over its stdin/stdout.

Shared by the go-libp2p v0.24.2 (``gov024.py``) and js-libp2p (``jspeer.py``) harnesses. The
contract: the program prints one JSON line once it listens (``peer_id``, ``addrs``), then answers
each JSON command line on stdin with one JSON line (``{"error": ...}`` on failure), and exits when
stdin closes. Every wait has a timeout; the process is stopped by closing stdin, then killed by its
own PID. stderr goes to a temporary file that a failing test can print.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gopeer import ChildHarness, ChildStderr

__all__ = ["PeerProcess", "PeerProcessError"]


class PeerProcessError(RuntimeError):
    """The peer failed a command, printed something unreadable, exited, or stayed silent."""

    def __init__(self, message: str, *, result: dict[str, Any] | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.result = result
        self.stderr = stderr


class PeerProcess(ChildHarness):
    """One running peer program; use :meth:`start` (or it as a context manager)."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], stderr: ChildStderr) -> None:
        self.name = name
        self._proc = proc
        self._stderr = stderr
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._lock = threading.Lock()  # one command in flight: answers carry no id
        self._pump = threading.Thread(target=self._read_stdout, daemon=True)
        self._pump.start()
        self.info: dict[str, Any] = {}

    @classmethod
    def start(cls, name: str, argv: Sequence[str], *, cwd: Path | None = None,
              env: dict[str, str] | None = None, start_timeout: float = 30.0) -> PeerProcess:
        """Start ``argv`` and wait (at most ``start_timeout``) for its first JSON line."""
        stderr = ChildStderr()
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr.file, cwd=cwd, env=env)
        peer = cls(name, proc, stderr)
        try:
            info = peer._next_json(start_timeout, "start")
            if "peer_id" not in info or not info.get("addrs"):
                raise PeerProcessError(f"{name}: first line has no peer_id/addrs: {info}",
                                       result=info, stderr=peer.stderr_text())
        except BaseException:
            peer.stop()
            raise
        peer.info = info
        return peer

    @property
    def peer_id(self) -> str:
        return self.info["peer_id"]

    @property
    def addr(self) -> str:
        """The first listen address, with its /p2p/<peer id> suffix."""
        return self.info["addrs"][0]

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def request(self, cmd: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Send one command and return its answer; raise PeerProcessError on ``error``."""
        with self._lock:
            if self._proc.poll() is not None:
                raise PeerProcessError(f"{self.name} exited ({self._proc.returncode})",
                                       stderr=self.stderr_text())
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(json.dumps(cmd).encode() + b"\n")
                self._proc.stdin.flush()
            except OSError as exc:
                raise PeerProcessError(f"{self.name}: cannot send {cmd.get('cmd')}: {exc}",
                                       stderr=self.stderr_text()) from exc
            result = self._next_json(timeout, str(cmd.get("cmd")))
        if "error" in result:
            raise PeerProcessError(f"{self.name} {cmd.get('cmd')}: {result['error']}",
                                   result=result, stderr=self.stderr_text())
        return result

    def _next_json(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise PeerProcessError(f"{self.name}: no answer to {what} within {timeout} s",
                                   stderr=self.stderr_text()) from None
        if line is None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            raise PeerProcessError(f"{self.name}: exited ({self._proc.returncode}) during {what}",
                                   stderr=self.stderr_text())
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise PeerProcessError(f"{self.name}: not a JSON object: {line!r}",
                                   stderr=self.stderr_text())
        return value

    def _read_stdout(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            for line in iter(stream.readline, b""):
                if line.strip():
                    self._lines.put(line)
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Close stdin (the program then exits), wait, then SIGKILL this PID; exit status."""
        proc = self._proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._pump.join(timeout=timeout)
        if proc.stdout is not None and not self._pump.is_alive():
            proc.stdout.close()
        if proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except OSError:
                pass
        self._stderr.close()
        return proc.returncode


    def __repr__(self) -> str:
        return f"<{self.name} pid={self._proc.pid} {self.info.get('peer_id', '')}>"
