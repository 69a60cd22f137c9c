"""Per-connection tasks for inbound streams: one task each, all cancelled when the connection ends.

Why not simply anyio's `TaskGroup.start_soon`: on asyncio, anyio (4.14+) gives every task a
TaskHandle with its own CancelScope, Event and wrapper coroutine, plus a name found by
introspection. For a short request/response stream that cost about twice the work of negotiating
and serving the stream itself (profile of the sequential request benchmark: 11% of the listener's
time in `start_soon` against 6% in the stream's task). On asyncio a stream therefore gets a plain
`asyncio.Task`, which anyio's cancel scopes inside it support like any task anyio did not start;
the set keeps the structure anyio would: nothing outlives `aclose()`. Other backends (trio) keep
anyio's task group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import sniffio

__all__ = ["StreamTasks"]

#: How long `aclose` waits for cancelled tasks to finish (a handler that swallows cancellation
#: must not hold a connection's teardown forever).
_CANCEL_GRACE = 5.0


class StreamTasks:
    """Run coroutines as tasks tied to `tg`'s lifetime; `aclose()` cancels and waits for all.

    A task is forgotten by its own coroutine: it calls `ended(key)` in its last step (a `finally`
    of the coroutine itself) and handles its own failures. Neither a done callback (asyncio runs
    it one loop turn after the task ends: a turn more per request on a listener) nor a wrapper
    coroutine (its frame stays alive, ~0.3 KiB, for every stream whose handler waits: bench
    mem/stream 3.03 -> 3.47 KiB in 85dd50f) is needed for it.

    Without a `tg`, `async with StreamTasks() as tasks:` is the lifetime: on asyncio no task
    group at all (the tasks are this object's own; an idle connection kept an empty anyio group,
    ~1 KiB, for nothing), elsewhere anyio's group, entered and left with the block."""

    __slots__ = ("_tg", "_own_tg", "_loop", "_plain_tasks", "_tasks")

    def __init__(self, tg: anyio.abc.TaskGroup | None = None) -> None:
        self._tg = tg
        self._own_tg = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: asyncio, and the loop makes plain asyncio.Tasks (no task factory): a stream's task is
        #: made as loop.create_task would make it, without its Python frame and closed check
        #: (two calls per inbound stream; a closed loop still refuses the task's first step)
        self._plain_tasks = False
        if sniffio.current_async_library() == "asyncio":
            self._loop = loop = asyncio.get_running_loop()
            self._plain_tasks = (loop.get_task_factory() is None
                                 and type(loop).create_task is asyncio.BaseEventLoop.create_task)
        self._tasks: dict[object, asyncio.Task[Any]] = {}

    async def __aenter__(self) -> StreamTasks:
        if self._loop is None and self._tg is None:
            tg = anyio.create_task_group()
            await tg.__aenter__()
            self._tg, self._own_tg = tg, True
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        """Every task still running is cancelled and waited for (`aclose`), then the group."""
        await self.aclose()
        tg = self._tg
        if not self._own_tg or tg is None:
            return None
        tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)

    def __len__(self) -> int:
        return len(self._tasks)

    def start_soon(self, key: object, fn: Callable[..., Coroutine[Any, Any, Any]],
                   *args: Any) -> None:
        """Run `fn(*args)` as a task known by `key` (unique among the running ones) until it
        calls `ended(key)`. It must handle its own exceptions: nobody awaits the task."""
        if self._loop is None:
            if self._tg is None:
                raise RuntimeError("StreamTasks without a task group: use `async with`")
            self._tg.start_soon(fn, *args)
            return
        if self._plain_tasks:
            task: asyncio.Task[Any] = asyncio.Task(fn(*args), loop=self._loop)
        else:
            task = self._loop.create_task(fn(*args))
        if not task.done():  # an eager task factory may have run it to its end already
            self._tasks[key] = task

    def ended(self, key: object) -> None:
        """The task of `key` is in its last step: forget it."""
        self._tasks.pop(key, None)

    async def aclose(self) -> None:
        """Cancel every task still running and wait (at most `_CANCEL_GRACE`) until they end."""
        if not self._tasks:
            return
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait(tasks, timeout=_CANCEL_GRACE)
        # a task cancelled before its first step never ran its coroutine's `ended`
        self._tasks = {k: t for k, t in self._tasks.items() if not t.done()}
