"""p2p.tasks.StreamTasks on asyncio (its own tasks; trio keeps anyio's group): a stream's task is
forgotten when it ends (a failure logged, never raised into the connection), and `aclose` cancels
and waits for the ones still running."""

from __future__ import annotations

import logging

import anyio
import pytest

from p2p.tasks import StreamTasks

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tasks_end_fail_and_are_cancelled(anyio_backend, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="p2p.tasks")
    done: list[str] = []
    cancelled = anyio.Event()

    async def quick() -> None:
        done.append("quick")

    async def fails() -> None:
        raise ValueError("handler bug")

    async def waits() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tasks = StreamTasks(tg)
            for fn in (quick, fails, waits):
                tasks.start_soon(fn)
            await anyio.wait_all_tasks_blocked()
            assert done == ["quick"]
            await anyio.sleep(0)  # their done callbacks run in the next loop turn
            assert len(tasks) == 1  # the two that ended are forgotten
            await tasks.aclose()
            tg.cancel_scope.cancel()
    assert cancelled.is_set()
    assert "stream task failed" in caplog.text and "handler bug" in caplog.text
