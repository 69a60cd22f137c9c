"""The stacks under test and how each is set up: ours, py-libp2p, go-libp2p, the AEAD bound.

Set-up is part of the bench (one command does everything): py-libp2p gets its own virtual
environment under .cache/bench (it is trio-based and pins other versions of our dependencies), the
go peer is built by the interop tests' own `build_gopeer()`. A stack that cannot be set up is
reported as unavailable with the reason, and the rest of the run goes on.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
PY_LIBP2P = "libp2p==0.8.1"
PY_VENV = CACHE / "pylibp2p-venv"

# Scenarios each stack can run (py-libp2p has no masa worker protocol; the bound: bulk and echo).
ALL = frozenset({"bulk", "echo", "handshakes", "rr", "worker", "conns", "streams", "startup"})
# The QUIC rows: one-stream bulk, handshakes, a new stream per request (sequential, 64 in flight).
QUIC = frozenset({"bulk", "handshakes", "rr"})


@dataclass
class Stack:
    name: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    scenarios: frozenset[str] = ALL
    available: bool = True
    reason: str = ""
    version: str = ""
    listen_cmd: list[str] | None = None  # when the listener is another program than the dialer

    def listen_argv(self) -> list[str]:
        return list(self.listen_cmd) if self.listen_cmd else [*self.argv, "listen"]

    def dial_argv(self, scenario: str, addr: str, params_json: str) -> list[str]:
        return [*self.argv, "dial", scenario, "--addr", addr, "--params", params_json]


def ours(uvloop: bool = False) -> Stack:
    if uvloop:
        if importlib.util.find_spec("uvloop") is None:
            return Stack("ours-uvloop", available=False, reason="uvloop is not installed")
        return Stack("ours-uvloop", [sys.executable, "-m", "bench.ours_peer"], {"BENCH_UVLOOP": "1"},
                     version="uvloop")
    return Stack("ours", [sys.executable, "-m", "bench.ours_peer"], version="working tree")


def ours_quic() -> Stack:
    return Stack("ours-quic", [sys.executable, "-m", "bench.ours_peer"], {"BENCH_TRANSPORT": "quic"},
                 scenarios=QUIC, version="working tree, QUIC v1 (aioquic)")


def go_quic(log) -> Stack:
    """go-libp2p over QUIC: gopeer (v0.36.3) dials goquic (v0.46.0), since v0.36.3's quic-go
    built with Go 1.26 panics as a QUIC server (tests/interop/goquic/main.go says why)."""
    try:
        sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None
        from tests.interop.gopeer import build_gopeer, build_goquic
        log("building the go QUIC peers (tests/interop/gopeer, tests/interop/goquic) ...")
        dialer, listener = Path(build_gopeer()), Path(build_goquic())
    except Exception as exc:  # a missing toolchain or module proxy: report, do not abort
        return Stack("go-quic", available=False, reason=f"go QUIC peer build failed: {exc}")
    return Stack("go-quic", [str(dialer), "bench"], listen_cmd=[str(listener), "bench", "listen"],
                 scenarios=QUIC, version="go-libp2p v0.36.3 dialling v0.46.0 over QUIC v1")


def aead_bound() -> Stack:
    return Stack("bound", [sys.executable, "-m", "bench.aead_bound"],
                 scenarios=frozenset({"bulk", "echo"}),
                 version="ChaCha20-Poly1305 on 65519-byte frames, one core per peer (bench/aead_bound.py)")


def py_libp2p(log) -> Stack:
    python = PY_VENV / "bin" / "python"
    marker = PY_VENV / f".installed-{PY_LIBP2P}"
    try:
        if not marker.exists():
            log(f"setting up py-libp2p in {PY_VENV} (pip install {PY_LIBP2P}) ...")
            CACHE.mkdir(parents=True, exist_ok=True)
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(PY_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", PY_LIBP2P], check=True,
                           stdout=subprocess.DEVNULL)
            marker.touch()
    except (OSError, subprocess.CalledProcessError) as exc:
        return Stack("py", available=False, reason=f"py-libp2p set-up failed: {exc}")
    return Stack("py", [str(python), str(ROOT / "bench" / "py_peer.py")],
                 scenarios=ALL - {"worker"}, version=PY_LIBP2P)


def go_libp2p(log) -> Stack:
    try:
        sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None
        from tests.interop.gopeer import build_gopeer  # the interop tests' own build
    except ImportError as exc:
        return Stack("go", available=False, reason=f"no go peer build: {exc}")
    try:
        log("building the go peer (tests/interop/gopeer) ...")
        binary = Path(build_gopeer())
    except Exception as exc:  # a missing toolchain or module proxy: report, do not abort
        return Stack("go", available=False, reason=f"go peer build failed: {exc}")
    probe = subprocess.run([str(binary), "bench", "--help"], capture_output=True, timeout=30)
    if b"unknown command" in probe.stdout + probe.stderr:
        return Stack("go", available=False, reason="the go peer has no bench mode")
    return Stack("go", [str(binary), "bench"], version="go-libp2p v0.36.3 (tests/interop/gopeer)")
