"""Fixtures for tests against the real go-libp2p peer (see gopeer.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from godht import MASA_DHT, GoDht, build_godht
from gomasa import GoMasa, build_gomasa
from gopeer import ChildHarness, GoPeer, build_gopeer, build_goquic
from oracle.discovery import gossip_topic

H = TypeVar("H", bound=ChildHarness)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in this folder talks to the go peer: mark it so `-m "not interop"` works."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.interop)


@pytest.fixture
def anyio_backend() -> str:
    """Interop tests run once per case, on asyncio: the driver and e2e tests cover trio (a module
    that wants both backends says so with its own fixture)."""
    return "asyncio"


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


def stopped_after_test(start: Callable[..., H], tail: int = 0) -> Iterator[Callable[..., H]]:
    """The body of a factory fixture: the test calls it to start Go children (`start(...)`);
    all are stopped after the test, and a test that failed gets their stderr (its last `tail`
    characters, or all of it) in its report."""
    started: list[H] = []

    def started_by_test(*args: Any, **kwargs: Any) -> H:
        child = start(*args, **kwargs)
        started.append(child)
        return child

    yield started_by_test
    for child in started:
        child.stop()
        print(f"--- {child!r} stderr ---\n{child.stderr_text()[-tail:]}")


def _serve_factory(binary: Path) -> Iterator[Callable[..., GoPeer]]:
    """Start `binary serve ...` peers (GoPeer.serve's arguments)."""
    yield from stopped_after_test(functools.partial(GoPeer.serve, binary=binary))


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
    yield from stopped_after_test(functools.partial(GoDht, binary=godht_bin), tail=5000)


@pytest.fixture
def masa_gossip_net(start_godht: Callable[..., GoDht]) -> GoDht:
    """Eight Go nodes shaped as a masa network: the /masa DHT (K = 100, alpha 10) and masa's
    gossip topic (`oracle.discovery.gossip_topic()`) subscribed on every node."""
    return start_godht("-n", 8, *MASA_DHT, "-alpha", 10, "-topics", gossip_topic())


@pytest.fixture
def start_gomasa(gomasa_bin: Path) -> Iterator[Callable[..., GoMasa]]:
    """Factory: ``start_gomasa("--web", ...)`` starts a `gomasa serve` (a masa-like Go node)."""
    yield from stopped_after_test(GoMasa, tail=4000)
