"""Fixtures for the hostile-peer tests: the node under attack (a child process), the go peer's
binary, and an honest host connected to the node. The attackers run on asyncio only: the code
under attack is the child node, whose backend each module chooses."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

from gopeer import build_gopeer  # noqa: E402
from kit import HonestPeer, NodeProcess, stop_checked  # noqa: E402,F401

from p2p.host import Host  # noqa: E402
from p2p.identity import PrivateKey  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def go_binary() -> Path:
    """The go-libp2p v0.36.3 peer; a build failure fails the tests (never a skip)."""
    try:
        return build_gopeer()
    except RuntimeError as exc:
        pytest.fail(f"cannot build the go test peer:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-logs")


@pytest.fixture
async def honest(request: pytest.FixtureRequest) -> AsyncIterator[HonestPeer]:
    """An honest host connected to the module's `node` for the whole test."""
    node: NodeProcess = request.getfixturevalue("node")
    async with Host(PrivateKey.generate()) as host:
        peer = await host.connect(node.addr)
        yield HonestPeer(host, peer)

