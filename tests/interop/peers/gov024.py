"""go-libp2p v0.24.2 (PyPI ``libp2p-go``) as a second interop peer: its environment and process.

The wrapper is a ctypes binding of a cgo build of go-libp2p v0.24.2 (x86_64 Linux only). It imports
as ``libp2p`` and needs ``multiaddr==0.0.9``, both clashing with this project's environment, so it
gets a virtual environment of its own under ``.cache/peers/gov024-venv``, installed on first use
from the committed ``gov024-requirements.txt``; the peer program ``gov024_peer.py``
runs there as a subprocess speaking JSON lines (see ``peerproc.py``). An install failure raises:
the tests fail, they never skip.
"""

from __future__ import annotations

import platform
import shutil
import sys
import threading
from pathlib import Path

from envlock import PEERS_CACHE, digest_files, install_lock, run_installer
from peerproc import PeerProcess

__all__ = ["ensure_gov024", "start_gov024", "GOV024_PROGRAM", "GOV024_VENV"]

PEERS_DIR = Path(__file__).resolve().parent
GOV024_PROGRAM = PEERS_DIR / "gov024_peer.py"
REQUIREMENTS = PEERS_DIR / "gov024-requirements.txt"
GOV024_VENV = PEERS_CACHE / "gov024-venv"
# A cold install is one 23 MB wheel plus six small ones (about 30 s here).
INSTALL_TIMEOUT = 600.0

_ready: list[Path] = []
_lock = threading.Lock()


def ensure_gov024() -> Path:
    """The python of the wrapper's venv, creating and installing it first if needed."""
    with _lock:
        if _ready:
            return _ready[0]
        if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
            raise RuntimeError(f"libp2p-go ships an x86_64 Linux build only; this is "
                               f"{sys.platform}/{platform.machine()}")
        python = GOV024_VENV / "bin" / "python"
        marker = GOV024_VENV / f".installed-{digest_files(REQUIREMENTS)}"
        with install_lock("gov024"):
            if not marker.is_file():
                shutil.rmtree(GOV024_VENV, ignore_errors=True)
                run_installer("creating the gov024 venv", [sys.executable, "-m", "venv",
                              str(GOV024_VENV)], timeout=120)
                run_installer("pip install of libp2p-go", [str(python), "-m", "pip", "install",
                              "--disable-pip-version-check", "-q", "-r", str(REQUIREMENTS)],
                              timeout=INSTALL_TIMEOUT)
                run_installer("importing libp2p-go", [str(python), "-c",
                              "import libp2p, libp2p.ping, libp2p.crypto"], timeout=60)
                marker.touch()
        _ready.append(python)
        return python


def start_gov024(key_type: str = "ed25519", *, start_timeout: float = 30.0) -> PeerProcess:
    """Start a v0.24.2 peer with a fresh key of ``key_type``; it serves ``/echo/1.0.0``."""
    python = ensure_gov024()
    return PeerProcess.start(f"gov024[{key_type}]",
                             [str(python), str(GOV024_PROGRAM), "--key-type", key_type],
                             start_timeout=start_timeout)
