"""Fixtures for tests against the real go-libp2p peer (see gopeer.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from godht import MASA_DHT, GoDht, build_godht
from gomasa import build_gomasa
from gopeer import GoPeer, build_gopeer, build_goquic
from oracle.discovery import gossip_topic


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in this folder talks to the go peer: mark it so `-m "not interop"` works."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.interop)


class _GoProgram:
    """One Go program of the suite: built once per session, before the first test that needs it.

    A cold build (module download + compile) can take minutes on a busy 2-core machine, longer
    than the per-test timeout, which would otherwise be charged to whichever test first asks for
    the binary. A build failure fails the tests that need it (never a skip).
    """

    def __init__(self, what: str, build: Callable[[], Path], *file_words: str) -> None:
        self.what = what
        self._build = build
        self._file_words = file_words  # a test file whose name holds one of these needs it
        self._result: Path | RuntimeError | None = None

    def wanted_by(self, test_file: Path) -> bool:
        return not self._file_words or any(w in test_file.name for w in self._file_words)

    def build(self) -> None:
        if self._result is None:
            try:
                self._result = self._build()
            except RuntimeError as exc:
                self._result = exc

    def binary(self) -> Path:
        self.build()
        if isinstance(self._result, RuntimeError):
            pytest.fail(f"cannot build {self.what}:\n{self._result}", pytrace=False)
        assert self._result is not None
        return self._result


_GOPEER = _GoProgram("the go test peer", build_gopeer)
_GOQUIC = _GoProgram("the go QUIC listener", build_goquic, "quic")
_GODHT = _GoProgram("the go DHT network", build_godht, "kad", "pubsub")
_GOMASA = _GoProgram("the masa-like Go peer", build_gomasa, "membership")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build, before the first test runs, every Go program a selected interop test needs."""
    here = Path(__file__).parent
    files = {Path(item.fspath) for item in session.items}
    files = {f for f in files if here in f.parents}
    for program in (_GOPEER, _GOQUIC, _GODHT, _GOMASA):
        if any(program.wanted_by(f) for f in files):
            program.build()


def _serve_factory(binary: Path) -> Iterator[Callable[..., GoPeer]]:
    """Start `binary serve ...` peers; all are stopped after the test, and a test that failed
    gets their stderr in its report."""
    peers: list[GoPeer] = []

    def start(*args: str, start_timeout: float = 30.0) -> GoPeer:
        peer = GoPeer.serve(*args, start_timeout=start_timeout, binary=binary)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()
        print(f"--- {peer!r} stderr ---\n{peer.stderr_text()}")


@pytest.fixture(scope="session")
def gopeer_bin() -> Path:
    """The compiled go-libp2p v0.36.3 test peer (tests/interop/gopeer)."""
    return _GOPEER.binary()


@pytest.fixture(scope="session")
def godht_bin() -> Path:
    """The compiled Go DHT + GossipSub network program (tests/interop/godht)."""
    return _GODHT.binary()


@pytest.fixture(scope="session")
def goquic_bin() -> Path:
    """The go-libp2p v0.46.0 QUIC listener (tests/interop/goquic)."""
    return _GOQUIC.binary()


@pytest.fixture(scope="session")
def gomasa_bin() -> Path:
    """The compiled masa-like Go peer (tests/interop/gomasa)."""
    return _GOMASA.binary()


@pytest.fixture
def start_gopeer(gopeer_bin: Path) -> Iterator[Callable[..., GoPeer]]:
    """Factory: ``start_gopeer("--echo", ...)`` starts a `gopeer serve`."""
    yield from _serve_factory(gopeer_bin)


@pytest.fixture
def start_goquic(goquic_bin: Path) -> Iterator[Callable[..., GoPeer]]:
    """Factory like `start_gopeer` for `goquic serve` (a Go QUIC listener)."""
    yield from _serve_factory(goquic_bin)


@pytest.fixture
def start_godht(godht_bin: Path) -> Iterator[Callable[..., GoDht]]:
    """Factory: ``start_godht("-n", 8, ...)`` starts a `godht serve` network (flags as godht's);
    every network is stopped after the test, and the tail of its stderr goes to the report."""
    nets: list[GoDht] = []

    def start(*args: object, start_timeout: float = 60.0) -> GoDht:
        net = GoDht(*map(str, args), start_timeout=start_timeout, binary=godht_bin)
        nets.append(net)
        return net

    yield start
    for net in nets:
        net.stop()
        print("--- godht stderr ---\n" + net.stderr_text()[-5000:])


@pytest.fixture
def masa_gossip_net(start_godht: Callable[..., GoDht]) -> GoDht:
    """Eight Go nodes shaped as a masa network: the /masa DHT (K = 100, alpha 10) and masa's
    gossip topic (`oracle.discovery.gossip_topic()`) subscribed on every node."""
    return start_godht("-n", 8, *MASA_DHT, "-alpha", 10, "-topics", gossip_topic())
