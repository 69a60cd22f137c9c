"""p2p.sync: Flag and LazyLock on both anyio backends (wake-ups, cancellation, mutual exclusion)."""

import anyio
import pytest

from p2p.sync import Flag, LazyLock

pytestmark = pytest.mark.anyio


async def test_flag_wakes_every_waiter_and_stays_set():
    flag = Flag()
    woken = []

    async def waiter(i: int) -> None:
        await flag.wait()
        woken.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(waiter, i)
            await anyio.wait_all_tasks_blocked()
            assert woken == [] and not flag.is_set()
            flag.set()
            flag.set()  # idempotent
        assert sorted(woken) == [0, 1, 2] and flag.is_set()
        await flag.wait()  # already set: returns at once


async def test_cancelled_waiter_leaves_nothing_behind_and_others_still_wake():
    flag = Flag()
    got = []

    async def waiter() -> None:
        await flag.wait()
        got.append(True)

    with anyio.fail_after(5):
        with anyio.move_on_after(0.01) as scope:
            await flag.wait()
        assert scope.cancelled_caught and not flag.is_set()
        if isinstance(flag._waiters, list):  # asyncio: the cancelled future was removed
            assert flag._waiters == []
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            flag.set()
        assert got == [True]


async def test_lazy_lock_excludes_and_hands_over():
    lock = LazyLock()
    inside = 0
    most = 0
    order = []

    async def worker(i: int) -> None:
        nonlocal inside, most
        async with lock:
            inside += 1
            most = max(most, inside)
            await anyio.sleep(0)  # yield while holding it
            order.append(i)
            inside -= 1

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(worker, i)
    assert most == 1 and sorted(order) == list(range(5)) and not lock.locked()


async def test_lazy_lock_released_when_the_holder_is_cancelled():
    lock = LazyLock()
    with anyio.fail_after(5):
        with anyio.move_on_after(0.01):
            async with lock:
                await anyio.sleep(10)
        assert not lock.locked()
        async with lock:
            assert lock.locked()
