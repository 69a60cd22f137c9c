"""Fixtures for the further interop peers: go-libp2p v0.24.2 (PyPI) and js-libp2p 2.9 (npm).

Their environments are installed before the first test runs (outside the per-test timeout: a cold
install takes tens of seconds), once per session; an install failure fails every test that needs
the peer, with the installer's output, never a skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from peerproc import PeerProcess

HERE = Path(__file__).parent
_installed: dict[str, Path | RuntimeError] = {}


def _install(name: str) -> Path | RuntimeError:
    if name not in _installed:
        if name == "gov024":
            from gov024 import ensure_gov024 as ensure
        else:
            from jspeer import ensure_js as ensure
        try:
            _installed[name] = ensure()
        except RuntimeError as exc:
            _installed[name] = exc
    return _installed[name]


def pytest_collection_finish(session: pytest.Session) -> None:
    files = {Path(item.fspath).name for item in session.items if HERE in Path(item.fspath).parents}
    if "test_interop_gov024.py" in files:
        _install("gov024")
    if "test_interop_js.py" in files:
        _install("js")


def _require(name: str) -> Path:
    result = _install(name)
    if isinstance(result, RuntimeError):
        pytest.fail(f"cannot install the {name} interop peer:\n{result}", pytrace=False)
    return result


@pytest.fixture(scope="session")
def gov024_python() -> Path:
    return _require("gov024")


@pytest.fixture(scope="session")
def js_node_dir() -> Path:
    return _require("js")


def _stop_all(peers: list[PeerProcess]) -> None:
    for peer in peers:
        code = peer.stop()
        print(f"--- {peer!r} exit {code} stderr ---\n{peer.stderr_text()[-20000:]}")


@pytest.fixture(scope="module")
def gov024_peers(gov024_python: Path) -> Iterator[Callable[[str], PeerProcess]]:
    """``get(key_type)``: one long-running v0.24.2 peer per key type, shared by a module."""
    from gov024 import start_gov024

    peers: dict[str, PeerProcess] = {}

    def get(key_type: str = "ed25519") -> PeerProcess:
        peer = peers.get(key_type)
        if peer is None or peer.returncode is not None:
            peer = peers[key_type] = start_gov024(key_type)
        return peer

    yield get
    _stop_all(list(peers.values()))


@pytest.fixture(scope="module")
def js_peers(js_node_dir: Path) -> Iterator[Callable[..., PeerProcess]]:
    """``get(key_type, **monitor)``: one long-running js-libp2p peer per settings, per module."""
    from jspeer import start_js

    peers: dict[tuple, PeerProcess] = {}

    def get(key_type: str = "ed25519", **monitor: int) -> PeerProcess:
        key = (key_type, tuple(sorted(monitor.items())))
        peer = peers.get(key)
        if peer is None or peer.returncode is not None:
            peer = peers[key] = start_js(key_type, **monitor)
        return peer

    yield get
    _stop_all(list(peers.values()))
