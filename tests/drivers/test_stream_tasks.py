"""p2p.tasks.StreamTasks on asyncio (its own tasks; trio keeps anyio's group): a stream's task is
forgotten by its own last step (`ended`), in the turn it ends, with no callback left for the loop
to run, and `aclose` cancels and waits for the ones still running."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from p2p.tasks import StreamTasks

pytestmark = pytest.mark.anyio


class _Bodies:
    """Stream-task bodies that say how they ended: `quick` at once (noted in `done`), `waits`
    only when cancelled (`cancelled` set); each forgets itself in its last step."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.cancelled = anyio.Event()

    async def quick(self, tasks: StreamTasks, key: str) -> None:
        try:
            self.done.append(key)
        finally:
            tasks.ended(key)

    async def waits(self, tasks: StreamTasks, key: str) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled.set()
            tasks.ended(key)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tasks_end_and_are_cancelled(anyio_backend) -> None:
    bodies = _Bodies()
    quick, waits, done, cancelled = bodies.quick, bodies.waits, bodies.done, bodies.cancelled
    never_started = asyncio.Event()

    async def not_yet(tasks: StreamTasks, key: str) -> None:
        never_started.set()  # pragma: no cover (cancelled before its first step)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tasks = StreamTasks(tg)
            for key, fn in (("a", quick), ("b", waits), ("c", quick)):
                tasks.start_soon(key, fn, tasks, key)
            assert len(tasks) == 3
            await anyio.wait_all_tasks_blocked()
            assert done == ["a", "c"]
            assert len(tasks) == 1  # forgotten in their own last step, no turn later
            loop = asyncio.get_running_loop()
            assert not loop._ready  # type: ignore[attr-defined]  # no done callback scheduled
            tasks.start_soon("d", not_yet, tasks, "d")
            await tasks.aclose()  # cancels "b" and "d" ("d" before its first step)
            assert len(tasks) == 0
            tg.cancel_scope.cancel()
    assert cancelled.is_set() and not never_started.is_set()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_failing_inbound_stream_task_is_logged_and_forgotten(anyio_backend, caplog) -> None:
    """The Host's stream task handles its own failures (nobody awaits it): a bug below the
    handler is logged, and the task is forgotten all the same."""
    import logging

    from p2p.host import Host

    caplog.set_level(logging.ERROR, logger="p2p.host")

    class Broken:  # not a stream at all: NetStream's set-up fails on it
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("bug below the handler")

    async with Host() as host, anyio.create_task_group() as tg:
        tasks = StreamTasks(tg)
        conn = type("C", (), {"peer_id": "peer"})()
        ms = Broken()
        tasks.start_soon(ms, host._handle_inbound_stream, conn, ms, tasks)
        await anyio.wait_all_tasks_blocked()
        assert len(tasks) == 0
        tg.cancel_scope.cancel()
    assert "inbound stream from peer failed" in caplog.text
    assert "bug below the handler" in caplog.text


async def test_async_with_cancels_what_is_left_on_both_backends(anyio_backend) -> None:
    """`async with StreamTasks()`: its own lifetime, without an anyio group on asyncio (an idle
    connection kept an empty one, ~1 KiB), anyio's group elsewhere; leaving it cancels what is
    still running and waits for it."""
    bodies = _Bodies()
    quick, waits, done, cancelled = bodies.quick, bodies.waits, bodies.done, bodies.cancelled

    with anyio.fail_after(5):
        async with StreamTasks() as tasks:
            assert (tasks._tg is None) == (anyio_backend == "asyncio")
            for key, fn in (("a", quick), ("b", waits)):
                tasks.start_soon(key, fn, tasks, key)
            await anyio.wait_all_tasks_blocked()
            assert done == ["a"] and not cancelled.is_set()
    assert cancelled.is_set()
    if anyio_backend == "asyncio":
        assert len(tasks) == 0
    else:  # outside the block there is no group to start a task in
        with pytest.raises(RuntimeError, match="async with"):
            StreamTasks().start_soon("c", quick, tasks, "c")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_plain_tasks_without_a_factory_and_the_loops_own_with_one(anyio_backend) -> None:
    """Without a task factory (and with asyncio's own create_task) a stream's task is an
    asyncio.Task made directly, without loop.create_task's frame; a loop with a task factory
    gets its tasks from the factory, as before. Either way the task runs and forgets itself."""
    loop = asyncio.get_running_loop()
    bodies = _Bodies()
    made: list[asyncio.Task] = []

    def factory(loop_, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop_, **kwargs)
        made.append(task)
        return task

    calls: list[object] = []
    real_create_task = type(loop).create_task

    def counting_create_task(self, coro, **kwargs):
        calls.append(coro)
        return real_create_task(self, coro, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(loop), "create_task", counting_create_task)
        async with StreamTasks() as tasks:  # the loop's create_task is not asyncio's own now
            assert not tasks._plain_tasks
            tasks.start_soon("a", bodies.quick, tasks, "a")
            assert len(calls) == 1
            await asyncio.sleep(0)
    assert loop.get_task_factory() is None
    async with StreamTasks() as tasks:
        assert tasks._plain_tasks
        tasks.start_soon("b", bodies.quick, tasks, "b")
        assert len(calls) == 1 and made == []
        await asyncio.sleep(0)
    loop.set_task_factory(factory)
    try:
        async with StreamTasks() as tasks:
            assert not tasks._plain_tasks
            tasks.start_soon("c", bodies.quick, tasks, "c")
            assert len(made) == 1
            await asyncio.sleep(0)
    finally:
        loop.set_task_factory(None)
    assert bodies.done == ["a", "b", "c"]
