"""WorkHandlerManager: execution, timeouts, metrics, distribution order and Go's error texts."""

from __future__ import annotations

import functools

import random
import threading
from typing import Any

import anyio
import pytest

from oracle.manager import WorkerConfig, WorkHandlerManager
from oracle.messages import WorkRequest, WorkResponse
from p2p.errors import DialError


class NoShuffle(random.Random):
    def shuffle(self, x: Any) -> None:  # type: ignore[override]
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeDirectory:
    """Scripted remote workers: peer -> WorkResponse, or an exception to raise."""

    def __init__(self, local: str, script: dict[str, Any]) -> None:
        self.local_peer_id = local
        self.script = script
        self.attempts: list[str] = []
        self.timeouts: list[tuple[float, float]] = []

    def eligible_peers(self, work_type: str) -> list[str]:
        return list(self.script)

    async def send_work(
        self, peer: str, request: WorkRequest, *, connect_timeout: float, response_timeout: float
    ) -> WorkResponse:
        self.attempts.append(peer)
        self.timeouts.append((connect_timeout, response_timeout))
        outcome = self.script[peer]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_config_defaults_are_gos() -> None:
    cfg = WorkerConfig()
    assert (cfg.worker_timeout, cfg.worker_response_timeout) == (55.0, 45.0)
    assert (cfg.connection_timeout, cfg.find_peer_timeout) == (0.075, 0.05)
    assert (cfg.max_retries, cfg.max_remote_workers) == (1, 10)


@pytest.mark.parametrize(
    "kwargs",
    [{"worker_response_timeout": 0}, {"connection_timeout": -1}, {"worker_timeout": float("nan")},
     {"max_remote_workers": -1}, {"failure_backoff": -1}, {"max_handler_threads": 0}],
)
def test_config_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WorkerConfig(**kwargs)


# --- execute_work -----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_handler_not_found() -> None:
    resp = await WorkHandlerManager().execute_work(WorkRequest(work_type="twitter"))
    assert resp == WorkResponse(error="work handler not found")


@pytest.mark.anyio
async def test_sync_async_and_response_handlers() -> None:
    mgr = WorkHandlerManager()
    caller_threads: list[int] = []

    def sync_handler(data: bytes) -> dict[str, str]:
        caller_threads.append(threading.get_ident())
        return {"echo": data.decode()}

    async def async_handler(data: bytes) -> list[int]:
        return [len(data)]

    mgr.add_handler("sync", sync_handler)
    mgr.add_handler("async", async_handler)
    mgr.add_handler("full", lambda data: WorkResponse(data="x", record_count=2))
    assert (await mgr.execute_work(WorkRequest("sync", data=b"hi"))).data == {"echo": "hi"}
    assert caller_threads and caller_threads[0] != threading.get_ident()  # ran in a worker thread
    assert (await mgr.execute_work(WorkRequest("async", data=b"abc"))).data == [3]
    assert await mgr.execute_work(WorkRequest("full")) == WorkResponse(data="x", record_count=2)
    assert mgr.work_types() == ["async", "full", "sync"]


@pytest.mark.anyio
async def test_handler_exception_becomes_error_and_is_counted() -> None:
    mgr = WorkHandlerManager()

    def broken(data: bytes) -> None:
        raise RuntimeError("scraper blew up")

    mgr.add_handler("x", broken)
    assert (await mgr.execute_work(WorkRequest("x"))).error == "scraper blew up"
    m = mgr.metrics("x")
    assert (m.calls, m.errors, m.timeouts) == (1, 1, 0)


@pytest.mark.anyio
async def test_async_handler_timeout() -> None:
    mgr = WorkHandlerManager()
    cancelled = anyio.Event()

    async def stuck(data: bytes) -> None:
        try:
            await anyio.Event().wait()
        finally:
            cancelled.set()

    mgr.add_handler("stuck", stuck)
    resp = await mgr.execute_work(WorkRequest("stuck"), timeout=0.05)
    assert resp == WorkResponse(error="work execution timed out")
    assert cancelled.is_set()  # the async handler was cancelled, not left running
    m = mgr.metrics("stuck")
    assert (m.calls, m.errors, m.timeouts) == (1, 1, 1)


@pytest.mark.anyio
async def test_work_in_the_callers_scope_times_out_or_is_cancelled() -> None:
    """A caller's scope (the worker protocol's) carries the timeout as its deadline; cancelled
    by the caller before then, the work ends as `work cancelled`, counted as no timeout."""
    mgr = WorkHandlerManager()

    async def stuck(data: bytes) -> None:
        await anyio.Event().wait()

    mgr.add_handler("stuck", stuck)
    resp = await mgr.execute_work(WorkRequest("stuck"), timeout=0.05, scope=anyio.CancelScope())
    assert resp == WorkResponse(error="work execution timed out")
    assert mgr.metrics("stuck").timeouts == 1

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(mgr.execute_work, WorkRequest("stuck"), timeout=30,
                                        scope=scope))
        await anyio.wait_all_tasks_blocked()
        assert 29 < scope.deadline - anyio.current_time() <= 30
        scope.cancel()
    m = mgr.metrics("stuck")
    assert (m.calls, m.errors, m.timeouts) == (2, 1, 1)


@pytest.mark.anyio
async def test_sync_handler_timeout_abandons_the_thread() -> None:
    mgr = WorkHandlerManager()
    release = threading.Event()
    mgr.add_handler("block", lambda data: release.wait(10))
    try:
        resp = await mgr.execute_work(WorkRequest("block"), timeout=0.05)
        assert resp.error == "work execution timed out"
        assert mgr.metrics("block").timeouts == 1
    finally:
        release.set()


@pytest.mark.anyio
async def test_metrics_runtime() -> None:
    clock = FakeClock()
    mgr = WorkHandlerManager(clock=clock)

    async def takes_time(data: bytes) -> str:
        clock.now += float(data.decode())
        return "done"

    mgr.add_handler("t", takes_time)
    await mgr.execute_work(WorkRequest("t", data=b"2.5"))
    await mgr.execute_work(WorkRequest("t", data=b"0.5"))
    m = mgr.metrics("t")
    assert (m.calls, m.errors) == (2, 0)
    assert m.total_runtime == pytest.approx(3.0) and m.mean_runtime == pytest.approx(1.5)
    assert mgr.all_metrics()["t"].calls == 2


# --- distribute_work --------------------------------------------------------------------------------------


def _manager(directory: FakeDirectory, **kwargs: Any) -> WorkHandlerManager:
    return WorkHandlerManager(WorkerConfig(**kwargs), directory=directory, rng=NoShuffle())


@pytest.mark.anyio
async def test_remote_success_first() -> None:
    d = FakeDirectory("me", {"w1": WorkResponse(data="r1", worker_peer_id="w1"), "w2": WorkResponse(data="r2")})
    mgr = _manager(d)
    mgr.add_handler("test", lambda data: "local")
    resp = await mgr.distribute_work(WorkRequest("test"))
    assert resp == WorkResponse(data="r1", worker_peer_id="w1")
    assert d.attempts == ["w1"]
    assert d.timeouts == [(0.075, 45.0)]


@pytest.mark.anyio
async def test_failover_to_next_remote() -> None:
    d = FakeDirectory("me", {"w1": WorkResponse(error="boom"), "w2": WorkResponse(data="ok", worker_peer_id="w2")})
    resp = await _manager(d).distribute_work(WorkRequest("test"))
    assert resp.data == "ok" and d.attempts == ["w1", "w2"]


@pytest.mark.anyio
async def test_all_remote_fail_then_local() -> None:
    d = FakeDirectory("me", {"w1": WorkResponse(error="boom"), "w2": DialError("unreachable")})
    mgr = _manager(d)
    mgr.add_handler("test", lambda data: data.decode())
    resp = await mgr.distribute_work(WorkRequest("test", data=b"payload"))
    assert resp == WorkResponse(data="payload", worker_peer_id="me")
    assert d.attempts == ["w1", "w2"]


@pytest.mark.anyio
async def test_everything_fails_exact_error_text() -> None:
    d = FakeDirectory(
        "me",
        {"w1": WorkResponse(error="boom"), "w2": DialError("unreachable"), "me": WorkResponse(data="never")},
    )
    mgr = _manager(d)

    def local(data: bytes) -> None:
        raise ValueError("local broke")

    mgr.add_handler("test", local)
    resp = await mgr.distribute_work(WorkRequest("test"))
    assert resp == WorkResponse(
        error="All workers failed. Errors: Worker w1: boom; Worker w2: unreachable; Local worker: local broke"
    )
    assert d.attempts == ["w1", "w2"]  # the local peer is never dialled as a remote


@pytest.mark.anyio
async def test_remote_failures_without_local_handler() -> None:
    d = FakeDirectory("me", {"w1": WorkResponse(error="work handler not found")})
    resp = await _manager(d).distribute_work(WorkRequest("test"))
    assert resp.error == "All workers failed. Errors: Worker w1: work handler not found"


@pytest.mark.anyio
async def test_no_eligible_workers() -> None:
    assert (await _manager(FakeDirectory("me", {})).distribute_work(WorkRequest("test"))).error == (
        "no eligible workers found"
    )
    assert (await _manager(FakeDirectory("me", {"me": WorkResponse()})).distribute_work(WorkRequest("x"))).error == (
        "no eligible workers found"
    )
    assert (await WorkHandlerManager().distribute_work(WorkRequest("x"))).error == "no eligible workers found"


@pytest.mark.anyio
async def test_local_only_when_no_remote() -> None:
    mgr = _manager(FakeDirectory("me", {}))
    mgr.add_handler("test", lambda data: "local")
    assert await mgr.distribute_work(WorkRequest("test")) == WorkResponse(data="local", worker_peer_id="me")


@pytest.mark.anyio
async def test_at_most_max_remote_workers_attempts() -> None:
    d = FakeDirectory("me", {f"w{i:02d}": WorkResponse(error="no") for i in range(15)})
    resp = await _manager(d).distribute_work(WorkRequest("test"))
    assert d.attempts == [f"w{i:02d}" for i in range(10)]
    assert resp.error.count("Worker w") == 10
    d2 = FakeDirectory("me", {f"w{i}": WorkResponse(error="no") for i in range(5)})
    await _manager(d2, max_remote_workers=3).distribute_work(WorkRequest("test"))
    assert len(d2.attempts) == 3


@pytest.mark.anyio
async def test_remote_attempt_bounded_by_worker_timeout() -> None:
    class Hanging(FakeDirectory):
        async def send_work(self, peer: str, request: WorkRequest, **kw: float) -> WorkResponse:
            self.attempts.append(peer)
            if peer == "slow":
                await anyio.Event().wait()
            return WorkResponse(data="fast")

    d = Hanging("me", {"slow": None, "fast": None})
    resp = await _manager(d, worker_timeout=0.05).distribute_work(WorkRequest("test"))
    assert resp.data == "fast" and d.attempts == ["slow", "fast"]


@pytest.mark.anyio
async def test_recently_failed_workers_go_last_until_backoff_expires() -> None:
    clock = FakeClock()
    d = FakeDirectory("me", {"a": WorkResponse(error="down"), "b": WorkResponse(data="b"), "c": WorkResponse(data="c")})
    mgr = WorkHandlerManager(WorkerConfig(failure_backoff=60), directory=d, rng=NoShuffle(), clock=clock)
    assert (await mgr.distribute_work(WorkRequest("t"))).data == "b"
    assert d.attempts == ["a", "b"]
    d.attempts.clear()
    clock.now += 10
    assert (await mgr.distribute_work(WorkRequest("t"))).data == "b"
    assert d.attempts == ["b"]  # a failed 10 s ago: tried after b and c
    # b fails now (c answers), so a (failed at t+0) and b (failed at t+11) are both in backoff.
    d.script["b"] = WorkResponse(error="down too")
    d.attempts.clear()
    clock.now += 1
    assert (await mgr.distribute_work(WorkRequest("t"))).data == "c"
    assert d.attempts == ["b", "c"]
    # Next: the healthy c first, then the failed ones, the most recent failure (b) last.
    d.script["c"] = WorkResponse(error="down three")
    d.attempts.clear()
    clock.now += 1
    await mgr.distribute_work(WorkRequest("t"))
    assert d.attempts == ["c", "a", "b"]
    d.attempts.clear()
    clock.now += 61
    d.script["a"] = WorkResponse(data="a")
    assert (await mgr.distribute_work(WorkRequest("t"))).data == "a"  # backoff over: shuffled order again


@pytest.mark.anyio
async def test_shuffled_order_uses_rng() -> None:
    d = FakeDirectory("me", {f"w{i}": WorkResponse(error="no") for i in range(6)})
    mgr = WorkHandlerManager(directory=d, rng=random.Random(7))
    await mgr.distribute_work(WorkRequest("t"))
    expected = [f"w{i}" for i in range(6)]
    random.Random(7).shuffle(expected)
    assert d.attempts == expected


class _Handlers:
    async def method_at_once(self, data: bytes) -> str:
        return "m"


async def _at_once(data: bytes) -> str:
    return data.decode() + "!"


async def _awaits(data: bytes) -> None:
    await anyio.sleep(0)


async def _async_with(data: bytes) -> None:
    async with anyio.Lock():
        pass


async def _async_for(data: bytes) -> None:
    async for _ in _agen():
        pass


async def _async_comprehension(data: bytes) -> list[int]:
    return [x async for x in _agen()]


async def _agen() -> Any:
    yield 1


def test_handlers_that_cannot_wait_are_told_apart() -> None:
    """Only an `async def` with no await, async for or async with in its own code answers at
    once; anything else (or anything we cannot read) takes the scoped path."""
    from oracle.handlers import handle_test

    mgr = WorkHandlerManager()
    for name, handler, at_once in [
        ("test", handle_test, True), ("plain", _at_once, True),
        ("method", _Handlers().method_at_once, True), ("awaits", _awaits, False),
        ("with", _async_with, False), ("for", _async_for, False),
        ("comprehension", _async_comprehension, False), ("sync", lambda data: "x", False),
        ("returns a coroutine", lambda data: _at_once(data), False),
        ("partial", functools.partial(_at_once), False),
    ]:
        mgr.add_handler(name, handler)
        assert mgr.answers_at_once(name) is at_once, name
    assert not mgr.answers_at_once("unknown")


@pytest.mark.anyio
async def test_at_once_work_runs_in_no_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work that cannot wait gets no cancel scope (no deadline timer); its errors and metrics
    are those of any work, and work that can wait still gets its scope."""
    mgr = WorkHandlerManager()
    mgr.add_handler("ok", _at_once)

    async def fails(data: bytes) -> str:
        raise ValueError("bad input")

    mgr.add_handler("fails", fails)
    mgr.add_handler("waits", _awaits)
    scopes: list[float] = []
    real = anyio.move_on_after

    def counted(delay: float) -> anyio.CancelScope:
        scopes.append(delay)
        return real(delay)

    monkeypatch.setattr(anyio, "move_on_after", counted)
    assert await mgr.execute_work(WorkRequest("ok", data=b"hi")) == WorkResponse(data="hi!")
    assert (await mgr.execute_work(WorkRequest("fails"))).error == "bad input"
    assert scopes == []
    m = mgr.metrics("ok"), mgr.metrics("fails")
    assert (m[0].calls, m[0].errors, m[1].calls, m[1].errors) == (1, 0, 1, 1)
    await mgr.execute_work(WorkRequest("waits"), timeout=7)
    assert scopes == [7]


@pytest.mark.anyio
async def test_an_awaitable_from_at_once_work_is_awaited_under_the_timeout() -> None:
    """An at-once handler may return an awaitable, which may wait: it is bounded by the
    work's timeout."""
    mgr = WorkHandlerManager()

    async def stuck() -> str:
        await anyio.sleep(30)
        return "unreachable"

    async def hands_over(data: bytes) -> Any:
        return stuck()

    async def finishes() -> WorkResponse:
        await anyio.sleep(0)
        return WorkResponse(data="later")

    async def hands_over_done(data: bytes) -> Any:
        return finishes()

    mgr.add_handler("stuck", hands_over)
    mgr.add_handler("done", hands_over_done)
    assert mgr.answers_at_once("stuck")
    with anyio.fail_after(10):
        resp = await mgr.execute_work(WorkRequest("stuck"), timeout=0.05)
    assert resp == WorkResponse(error="work execution timed out")
    assert mgr.metrics("stuck").timeouts == 1
    assert await mgr.execute_work(WorkRequest("done")) == WorkResponse(data="later")


@pytest.mark.anyio
async def test_at_once_work_whose_awaitable_fails_or_gives_a_value() -> None:
    """An at-once handler's awaitable that raises is the response's error; one that gives a
    plain value is the response's data; a WorkResponse subclass is kept as it is."""
    mgr = WorkHandlerManager()

    async def fails_later() -> str:
        await anyio.sleep(0)
        raise RuntimeError("late failure")

    async def value_later() -> list[int]:
        await anyio.sleep(0)
        return [1, 2]

    class Special(WorkResponse):
        pass

    async def hands_over_failure(data: bytes) -> Any:
        return fails_later()

    async def hands_over_value(data: bytes) -> Any:
        return value_later()

    async def special(data: bytes) -> WorkResponse:
        return Special(data="s")

    for name, handler in [("fails", hands_over_failure), ("value", hands_over_value),
                          ("special", special)]:
        mgr.add_handler(name, handler)
        assert mgr.answers_at_once(name)
    assert await mgr.execute_work(WorkRequest("fails")) == WorkResponse(error="late failure")
    assert mgr.metrics("fails").errors == 1
    assert await mgr.execute_work(WorkRequest("value")) == WorkResponse(data=[1, 2])
    got = await mgr.execute_work(WorkRequest("special"))
    assert type(got) is Special and got.data == "s"
