"""p2p.sync: Flag and LazyLock on both anyio backends (wake-ups, cancellation, mutual exclusion)."""

import anyio
import pytest

from p2p.sync import Flag, LazyLock

pytestmark = pytest.mark.anyio


async def _wait_and_note(flag: Flag, i: int, woken: list[int]) -> None:
    """Wait on `flag`, then note `i` in `woken`: which waiters woke, in order."""
    await flag.wait()
    woken.append(i)


async def test_flag_wakes_every_waiter_and_stays_set():
    flag = Flag()
    woken: list[int] = []

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(_wait_and_note, flag, i, woken)
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
        if not isinstance(flag._waiters, anyio.Event):  # asyncio: the cancelled future is gone
            assert flag._waiters is None
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            flag.set()
        assert got == [True]


async def test_flag_waiters_cancelled_in_any_order_leave_nothing_behind():
    """One waiter is kept alone, more in a list: cancelling some and setting wakes the rest."""
    flag = Flag()
    woken: list[int] = []

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            scopes = []
            for i in range(4):
                scope = anyio.CancelScope()
                scopes.append(scope)

                async def run(i: int = i, scope: anyio.CancelScope = scope) -> None:
                    with scope:
                        await _wait_and_note(flag, i, woken)

                tg.start_soon(run)
            await anyio.wait_all_tasks_blocked()
            scopes[0].cancel()
            scopes[2].cancel()
            await anyio.wait_all_tasks_blocked()
            flag.set()
        assert sorted(woken) == [1, 3]
        late = Flag()  # a lone waiter cancelled, then another one woken
        async with anyio.create_task_group() as tg:
            with anyio.move_on_after(0.01):
                await late.wait()
            if not isinstance(late._waiters, anyio.Event):
                assert late._waiters is None
            tg.start_soon(_wait_and_note, late, 9, woken)
            await anyio.wait_all_tasks_blocked()
            assert woken[-1] != 9
            late.set()
        assert woken[-1] == 9


async def test_flag_wake_wakes_the_waiters_and_leaves_it_unset():
    flag = Flag()
    woken: list[int] = []

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(_wait_and_note, flag, i, woken)
            await anyio.wait_all_tasks_blocked()
            flag.wake()
        assert sorted(woken) == [0, 1] and not flag.is_set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_wait_and_note, flag, 2, woken)  # a later wait waits again
            await anyio.wait_all_tasks_blocked()
            assert sorted(woken) == [0, 1]
            flag.set()
        assert woken[-1] == 2 and flag.is_set()


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


async def test_lazy_lock_held_is_locked_as_an_attribute():
    """`held` (read on every write of a session, without a call) says what `locked()` says,
    free, held, and free again, also while a second task waits for it."""
    lock = LazyLock()
    seen: list[tuple[bool, bool]] = []

    async def second() -> None:
        async with lock:
            seen.append((lock.held, lock.locked()))

    with anyio.fail_after(5):
        assert (lock.held, lock.locked()) == (False, False)
        async with anyio.create_task_group() as tg:
            async with lock:
                assert (lock.held, lock.locked()) == (True, True)
                tg.start_soon(second)
                await anyio.wait_all_tasks_blocked()
                assert seen == []
        assert seen == [(True, True)]
        assert (lock.held, lock.locked()) == (False, False)
