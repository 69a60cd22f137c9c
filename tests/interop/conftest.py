"""Fixtures for tests against the real go-libp2p peer (see gopeer.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gopeer import GoPeer, build_gopeer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in this folder talks to the go peer: mark it so `-m "not interop"` works."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session")
def gopeer_bin() -> Path:
    """The compiled go-libp2p test peer; a build failure fails the tests (never a skip)."""
    try:
        return build_gopeer()
    except RuntimeError as exc:
        pytest.fail(f"cannot build the go test peer:\n{exc}", pytrace=False)


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
