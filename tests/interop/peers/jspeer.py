"""js-libp2p 2.9 (npm) as a third interop peer: its installation and process.

The committed ``js/package.json`` and ``js/package-lock.json`` pin libp2p 2.9.0 and the 2.x
modules that run on Node 20 (3.x needs Node 22). On first use they are copied to
``.cache/peers/js`` and installed there with ``npm ci`` (exactly the locked tree); ``js/peer.mjs``
is copied beside them on every run (node resolves its imports from the script's own folder). An
install failure raises: the tests fail, they never skip.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

from envlock import PEERS_CACHE, digest_files, install_lock, run_installer
from peerproc import PeerProcess

__all__ = ["ensure_js", "start_js", "JS_DIR", "JS_SRC"]

JS_SRC = Path(__file__).resolve().parent / "js"
JS_DIR = PEERS_CACHE / "js"
MANIFESTS = ("package.json", "package-lock.json")
# A cold `npm ci` fetches about 115 packages (about 20 s here).
INSTALL_TIMEOUT = 600.0
MIN_NODE_MAJOR = 20

_ready: list[Path] = []
_lock = threading.Lock()


def _node_major(node: str) -> int:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,
                         check=True).stdout.strip()
    return int(out.lstrip("v").split(".")[0])


def ensure_js() -> Path:
    """The folder holding the installed js peer (``peer.mjs`` + ``node_modules``)."""
    with _lock:
        if _ready:
            return _ready[0]
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            raise RuntimeError("node and npm must be on PATH for the js-libp2p interop tests")
        if (major := _node_major(node)) < MIN_NODE_MAJOR:
            raise RuntimeError(f"js-libp2p 2.9 needs Node >= {MIN_NODE_MAJOR}; found {major}")
        marker = JS_DIR / f".installed-{digest_files(*(JS_SRC / m for m in MANIFESTS))}"
        with install_lock("js"):
            if not marker.is_file():
                shutil.rmtree(JS_DIR, ignore_errors=True)
                JS_DIR.mkdir(parents=True)
                for name in MANIFESTS:
                    shutil.copyfile(JS_SRC / name, JS_DIR / name)
                run_installer("npm ci of the js-libp2p peer",
                              [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=JS_DIR, timeout=INSTALL_TIMEOUT)
                marker.touch()
            script = (JS_SRC / "peer.mjs").read_bytes()
            target = JS_DIR / "peer.mjs"
            if not target.is_file() or target.read_bytes() != script:
                target.write_bytes(script)
        _ready.append(JS_DIR)
        return JS_DIR


def start_js(key_type: str = "ed25519", *, monitor_interval_ms: int = 10_000,
             monitor_timeout_ms: int = 5_000, max_stream_window: int | None = None,
             start_timeout: float = 30.0) -> PeerProcess:
    """Start a js-libp2p peer with a fresh key; it serves ``/echo/1.0.0`` and ping.

    ``monitor_*`` set js's connection monitor (a ping on every connection each interval; the
    connection is aborted when one is not answered within the timeout); ``max_stream_window``
    caps its yamux receive windows (js's default lets them grow to 16 MiB).
    """
    folder = ensure_js()
    node = shutil.which("node") or "node"
    window = [] if max_stream_window is None else ["--max-stream-window", str(max_stream_window)]
    return PeerProcess.start(
        f"js[{key_type}]",
        [node, str(folder / "peer.mjs"), "--key-type", key_type,
         "--monitor-interval-ms", str(monitor_interval_ms),
         "--monitor-timeout-ms", str(monitor_timeout_ms), *window],
        cwd=folder, start_timeout=start_timeout,
    )
