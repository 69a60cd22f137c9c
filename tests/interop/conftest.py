"""Fixtures for tests against the real go-libp2p peer (see gopeer.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from godht import build_godht
from gomasa import build_gomasa
from gopeer import GoPeer, build_gopeer, build_goquic


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in this folder talks to the go peer: mark it so `-m "not interop"` works."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.interop)


_build_result: list[Path | RuntimeError] = []
_goquic_result: list[Path | RuntimeError] = []
_godht_result: list[Path | RuntimeError] = []
_gomasa_result: list[Path | RuntimeError] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build before the first test runs when any interop test is selected.

    A cold build (module download + compile) can take minutes on a busy 2-core machine,
    longer than the per-test timeout, which would otherwise be charged to whichever test
    first asks for the binary.
    """
    here = Path(__file__).parent
    if any(here in Path(item.fspath).parents for item in session.items):
        try:
            _build_result.append(build_gopeer())
        except RuntimeError as exc:
            _build_result.append(exc)
    if any(here in Path(item.fspath).parents and "quic" in Path(item.fspath).name
           for item in session.items):
        try:
            _goquic_result.append(build_goquic())
        except RuntimeError as exc:
            _goquic_result.append(exc)
    if any(here in Path(item.fspath).parents and any(w in Path(item.fspath).name
                                                      for w in ("kad", "pubsub"))
           for item in session.items):
        try:
            _godht_result.append(build_godht())
        except RuntimeError as exc:
            _godht_result.append(exc)
    if any(here in Path(item.fspath).parents and "membership" in Path(item.fspath).name
           for item in session.items):
        try:
            _gomasa_result.append(build_gomasa())
        except RuntimeError as exc:
            _gomasa_result.append(exc)


@pytest.fixture(scope="session")
def gopeer_bin() -> Path:
    """The compiled go-libp2p test peer; a build failure fails the tests (never a skip)."""
    try:
        result = _build_result[0] if _build_result else build_gopeer()
    except RuntimeError as exc:
        result = exc
    if isinstance(result, RuntimeError):
        pytest.fail(f"cannot build the go test peer:\n{result}", pytrace=False)
    return result


@pytest.fixture(scope="session")
def godht_bin() -> Path:
    """The compiled Go DHT + GossipSub network program; a build failure fails the tests."""
    try:
        result = _godht_result[0] if _godht_result else build_godht()
    except RuntimeError as exc:
        result = exc
    if isinstance(result, RuntimeError):
        pytest.fail(f"cannot build the go DHT network:\n{result}", pytrace=False)
    return result


@pytest.fixture
def start_gopeer(gopeer_bin: Path) -> Iterator[Callable[..., GoPeer]]:
    """Factory: ``start_gopeer("--echo", ...)`` starts a `gopeer serve`; all are stopped after
    the test, and a test that failed gets their stderr in its report."""
    peers: list[GoPeer] = []

    def start(*args: str, start_timeout: float = 30.0) -> GoPeer:
        peer = GoPeer.serve(*args, start_timeout=start_timeout, binary=gopeer_bin)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()
        print(f"--- {peer!r} stderr ---\n{peer.stderr_text()}")


@pytest.fixture(scope="session")
def goquic_bin() -> Path:
    """The go-libp2p v0.46.0 QUIC listener (tests/interop/goquic); a build failure fails."""
    try:
        result = _goquic_result[0] if _goquic_result else build_goquic()
    except RuntimeError as exc:
        result = exc
    if isinstance(result, RuntimeError):
        pytest.fail(f"cannot build the go QUIC listener:\n{result}", pytrace=False)
    return result


@pytest.fixture
def start_goquic(goquic_bin: Path) -> Iterator[Callable[..., GoPeer]]:
    """Factory like `start_gopeer` for `goquic serve` (a Go QUIC listener)."""
    peers: list[GoPeer] = []

    def start(*args: str, start_timeout: float = 30.0) -> GoPeer:
        peer = GoPeer.serve(*args, start_timeout=start_timeout, binary=goquic_bin)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()
        print(f"--- {peer!r} stderr ---\n{peer.stderr_text()}")


@pytest.fixture(scope="session")
def gomasa_bin() -> Path:
    """The compiled masa-like Go peer (tests/interop/gomasa); a build failure fails the tests."""
    try:
        result = _gomasa_result[0] if _gomasa_result else build_gomasa()
    except RuntimeError as exc:
        result = exc
    if isinstance(result, RuntimeError):
        pytest.fail(f"cannot build the masa-like Go peer:\n{result}", pytrace=False)
    return result
