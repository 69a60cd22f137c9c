"""Build and drive the go-libp2p v0.36.3 test peer (``tests/interop/gopeer/``).

The Go program prints exactly one JSON line on stdout per run (for ``serve``: once it is
listening), logs on stderr, and on failure prints ``{"error": ...}`` and exits non-zero.
This module compiles it once per source digest (its sources and those of ``gokit/``, the package
the Go peers share) into ``<repo>/.cache/gopeer/<sha256>/gopeer`` and wraps its two shapes: a
long-running listener (:class:`GoPeer`) and one-shot dialer commands (:func:`run_gopeer`).
Everything is synchronous and subprocess-based, so tests on either anyio backend (or none) can
use it; every wait has a timeout, and a missing or failing Go toolchain is an error, never a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Self

__all__ = ["GOPEER_SRC", "GOQUIC_SRC", "ChildHarness", "ChildStderr", "GoPeer", "GoPeerError",
           "build_go_program", "build_gopeer", "build_goquic", "run_gopeer", "source_digest"]

GOPEER_SRC = Path(__file__).resolve().parent / "gopeer"
# The QUIC listener (go-libp2p v0.46.0: v0.36.3's quic-go panics as a server with Go 1.26).
GOQUIC_SRC = Path(__file__).resolve().parent / "goquic"
REPO_ROOT = GOPEER_SRC.parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "gopeer"
# The first build downloads go-libp2p's whole module graph (about 35 s here, far more on a
# slow proxy); later builds with a warm module and build cache take seconds.
BUILD_TIMEOUT = 600.0
# Reproducible output: no VCS stamp (so identify's agent version is "gopeer@(devel)"), no
# local paths, no cgo (a static binary that needs no C compiler), never fetch a toolchain.
_BUILD_ENV = {"GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
_BUILD_ARGS = ["-trimpath", "-ldflags=-s -w"]

_built: dict[tuple[str, str], Path] = {}
_build_lock = threading.Lock()


class GoPeerError(RuntimeError):
    """A gopeer run failed: carries its exit status, JSON result (if any) and stderr."""

    def __init__(self, message: str, *, returncode: int | None, result: dict[str, Any] | None,
                 stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.result = result
        self.stderr = stderr


def source_digest(src: Path = GOPEER_SRC) -> str:
    """SHA-256 over the Go sources, go.mod and go.sum (names and contents, sorted) of `src` and of
    the local modules its go.mod replaces (``=> ../gokit``, the peers' shared code), so that a
    change to shared code rebuilds every program that uses it."""
    h = hashlib.sha256()
    for prefix, folder in [("", src), *_local_replacements(src)]:
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and (p.suffix == ".go" or p.name in ("go.mod", "go.sum")))
        for path in files:
            data = path.read_bytes()
            h.update(f"{prefix}{path.name}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def _local_replacements(src: Path) -> list[tuple[str, Path]]:
    """(the path as go.mod writes it + "/", the folder) of each ``replace X => ./dir|../dir``."""
    mod = src / "go.mod"
    text = mod.read_text() if mod.is_file() else ""
    found = sorted(set(re.findall(r"=>\s*(\.\.?/[^\s)]+)", text)))
    return [(f"{rel}/", (src / rel).resolve()) for rel in found]


def build_gopeer(*, timeout: float = BUILD_TIMEOUT) -> Path:
    """Return the path of the gopeer binary, compiling it first if this digest is new.

    The binary goes to a temporary name and is renamed into place, so concurrent builders
    (other processes) never see a half-written file. Raises RuntimeError with go's output
    when go is missing, the build fails or it exceeds ``timeout``.
    """
    return build_go_program(GOPEER_SRC, timeout=timeout, cache=CACHE_DIR, name="gopeer")


def build_goquic(*, timeout: float = BUILD_TIMEOUT) -> Path:
    """The goquic binary (QUIC listener, same contract as ``gopeer serve``), built as gopeer is."""
    return build_go_program(GOQUIC_SRC, timeout=timeout)


def build_go_program(src: Path, *, timeout: float = BUILD_TIMEOUT, cache: Path | None = None,
                     name: str | None = None) -> Path:
    """Build the Go program in `src`, cached by source digest under
    ``<cache or .cache/<dir name>>/<digest>/<name or dir name>``."""
    digest = source_digest(src)
    name = name or src.name
    cache = cache or REPO_ROOT / ".cache" / src.name
    with _build_lock:
        if (name, digest) in _built:
            return _built[(name, digest)]
        target = cache / digest / name
        if not target.is_file():
            _compile(target, timeout, src)
            _prune_old_builds(keep=target.parent, cache=cache)
        _built[(name, digest)] = target
        return target


def _compile(target: Path, timeout: float, src: Path = GOPEER_SRC) -> None:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain ('go') is not on PATH: the interop tests need it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    cmd = [go, "build", *_BUILD_ARGS, "-o", str(tmp), "."]
    try:
        proc = subprocess.run(cmd, cwd=src, env={**os.environ, **_BUILD_ENV},
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"go build of {src.name} exceeded {timeout:.0f} s:\n{exc.stderr or ''}") from exc
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"go build of {src.name} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr}{proc.stdout}")
    os.replace(tmp, target)


#: Builds of other source digests kept beside the newest: another checkout sharing this cache
#: (an A/B worktree of an older commit, or a suite still running with the previous source) keeps
#: its binary instead of losing it to each rebuild.
KEEP_OTHER_BUILDS = 2


def _prune_old_builds(keep: Path, cache: Path = CACHE_DIR, others: int = KEEP_OTHER_BUILDS) -> None:
    """Drop the binaries of all but the `others` most recently built other source digests
    (about 25 MB each); best effort."""
    def built_at(entry: Path) -> float:
        try:
            return entry.stat().st_mtime
        except OSError:
            return 0.0
    old = sorted((e for e in cache.iterdir() if e.is_dir() and e != keep), key=built_at, reverse=True)
    for entry in old[others:]:
        shutil.rmtree(entry, ignore_errors=True)


def _parse_result(stdout: str) -> dict[str, Any] | None:
    """The last non-empty stdout line as a JSON object, or None."""
    for line in reversed(stdout.splitlines()):
        if line.strip():
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def run_gopeer(*args: str, timeout: float = 60.0, binary: Path | None = None) -> dict[str, Any]:
    """Run a one-shot gopeer command (ping, echo, identify, ...) and return its JSON result.

    Raises GoPeerError when it exits non-zero (message = its ``error`` field), prints no
    JSON, or runs past ``timeout`` (it is killed then).
    """
    exe = binary or build_gopeer()
    cmd = [str(exe), *map(str, args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise GoPeerError(f"gopeer {' '.join(cmd[1:])} timed out after {timeout} s",
                          returncode=None, result=None, stderr=_text(exc.stderr)) from exc
    result = _parse_result(proc.stdout)
    if proc.returncode != 0:
        reason = result.get("error") if result else proc.stdout.strip()
        raise GoPeerError(f"gopeer {args[0] if args else ''} failed (exit {proc.returncode}): "
                          f"{reason}", returncode=proc.returncode, result=result,
                          stderr=proc.stderr)
    if result is None:
        raise GoPeerError(f"gopeer printed no JSON result: {proc.stdout!r}",
                          returncode=proc.returncode, result=None, stderr=proc.stderr)
    return result


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


class ChildStderr:
    """A child process's stderr, kept in an unnamed temporary file (``file``, for Popen).

    `text` reads everything written so far with `os.pread`, so it never moves the file offset the
    child writes at (a seek and read could let a child's write land over earlier lines); after
    `close` it returns what was written until then.
    """

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()
        self._final: str | None = None

    def text(self) -> str:
        if self._final is not None:
            return self._final
        fd = self.file.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def close(self) -> None:
        if self._final is None:
            self._final = self.text()
            self.file.close()


class ChildHarness:
    """What the classes driving one child process share: its stderr (``_stderr``, a ChildStderr)
    and `with`, which stops the child on the way out (each subclass's `stop` says how)."""

    _stderr: ChildStderr

    def stop(self, timeout: float = 5.0) -> int | None:
        raise NotImplementedError

    def stderr_text(self) -> str:
        """Everything the child logged so far."""
        return self._stderr.text()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GoPeer(ChildHarness):
    """A running ``gopeer serve`` process; use :meth:`serve` (or it as a context manager)."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: ChildStderr, pump: threading.Thread,
                 info: dict[str, Any]) -> None:
        self._proc = proc
        self._stderr = stderr
        self._pump = pump
        self.info = info
        self.peer_id: str = info["peer_id"]
        self.addrs: list[str] = list(info["addrs"])

    @classmethod
    def serve(cls, *args: str, start_timeout: float = 30.0, binary: Path | None = None) -> GoPeer:
        """Start ``gopeer serve ARGS`` and wait (at most ``start_timeout``) until it listens."""
        exe = binary or build_gopeer()
        stderr = ChildStderr()
        proc = subprocess.Popen([str(exe), "serve", *map(str, args)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=stderr.file)
        lines: queue.Queue[bytes] = queue.Queue()
        # A reader thread turns the blocking pipe into a queue we can wait on with a timeout;
        # it keeps draining stdout so the child never blocks on a full pipe.
        pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        pump.start()
        try:
            first = lines.get(timeout=start_timeout)
        except queue.Empty:
            first = None
        info = _parse_result(first.decode(errors="replace")) if first else None
        if info is None or "peer_id" not in info:
            peer = cls(proc, stderr, pump, {"peer_id": "", "addrs": []})
            peer.stop()
            why = info.get("error") if info else (
                "no output" if first is None else repr(first))
            raise GoPeerError(f"gopeer serve did not start within {start_timeout} s: {why}",
                              returncode=proc.returncode, result=info,
                              stderr=peer.stderr_text())
        return cls(proc, stderr, pump, info)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def addr(self) -> str:
        """The first listen address, with its /p2p/<peer id> suffix."""
        return self.addrs[0]

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit status."""
        proc = self._proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        # The child is gone, so the pump sees EOF at once; then release the pipe and the log.
        self._pump.join(timeout=timeout)
        if proc.stdout is not None and not self._pump.is_alive():
            proc.stdout.close()
        self._stderr.close()
        return proc.returncode

    def __repr__(self) -> str:
        return f"<GoPeer pid={self._proc.pid} {self.peer_id} {self.addrs}>"


def _pump(stream: Any, lines: queue.Queue[bytes]) -> None:
    try:
        for line in iter(stream.readline, b""):
            lines.put(line)
    except (OSError, ValueError):
        pass  # the pipe was closed by stop()
