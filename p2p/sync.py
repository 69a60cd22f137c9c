"""Small synchronisation primitives for per-connection and per-stream state, cheap when idle.

Why: an idle connection or stream holds its events and locks for its whole life. On asyncio an
`anyio.Event` or `anyio.Lock` carries a `collections.deque` (~760 bytes even when empty), which
was a large share of our memory per idle connection. These keep only a flag until something has to
wait, and on asyncio a waiter is one future (a list only for a second one); other backends use
`anyio.Event`.

They have anyio's semantics where it matters here: waiting honours cancel scopes (a cancelled
waiter leaves nothing behind), and `set()`/release never block. Unlike `anyio.Event.wait`,
`Flag.wait` on a flag that is already set returns without yielding; callers that need a checkpoint
take one themselves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio

__all__ = ["Flag", "LazyLock", "current_time"]


def current_time() -> float:
    """`anyio.current_time()` without its backend lookup on asyncio (the loop's own clock, the
    same value): a per-request deadline reads the clock once per request."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # no asyncio loop running here: trio
        return anyio.current_time()


class Flag:
    """A one-shot event: `set()` wakes every waiter; later waits return at once."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        #: None; on asyncio one future, or a list of them; on other backends an anyio.Event
        self._waiters: Any = None

    @classmethod
    def around(cls, waiter: asyncio.Future[None]) -> Flag:
        """An unset Flag whose first waiter is `waiter`, an asyncio future a task already awaits:
        for a wait that began as one bare future (a stream's only reader) when a second task
        comes to wait too; `set()` wakes both."""
        flag = cls()
        flag._waiters = waiter
        return flag

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        self.wake()

    def wake(self) -> None:
        """Wake the current waiters without setting the flag: a timer's way to have a waiter
        look again (one timer handle instead of a cancel scope around the wait)."""
        waiters, self._waiters = self._waiters, None
        if waiters is None:
            return
        if type(waiters) is list:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        elif isinstance(waiters, asyncio.Future):
            if not waiters.done():
                waiters.set_result(None)
        else:
            waiters.set()

    async def wait(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Wait until set. `loop`: the running asyncio loop, when the caller knows it (asking
        asyncio for it reads the process ID on Python 3.11, a getpid system call per wait)."""
        if self._set:
            return
        if loop is None:
            try:
                # A running asyncio loop means anyio runs on asyncio (trio runs none in its
                # thread); asking sniffio instead cost ~1 us on every wait.
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        if loop is None:
            if self._waiters is None:
                self._waiters = anyio.Event()
            await self._waiters.wait()
            return
        fut = loop.create_future()
        waiters = self._waiters
        if waiters is None:  # the usual case: one waiter, kept without a list
            self._waiters = fut
        elif type(waiters) is list:
            waiters.append(fut)
        else:
            self._waiters = [waiters, fut]
        try:
            await fut
        except BaseException:  # cancelled: forget this waiter
            waiters = self._waiters
            if waiters is fut:
                self._waiters = None
            elif type(waiters) is list and fut in waiters:
                waiters.remove(fut)
            raise


class LazyLock:
    """A non-reentrant lock that never yields when free (anyio's `fast_acquire`) and allocates
    nothing until a second task has to wait. Not FIFO: every waiter is woken on release and the
    first one scheduled takes it.

    `held` is `locked()` as an attribute, for the checks on every write of a session (the yamux
    output's and Noise's, on both sides of every request): read it, never set it."""

    __slots__ = ("held", "_released")

    def __init__(self) -> None:
        self.held = False
        self._released: Flag | None = None

    def locked(self) -> bool:
        return self.held

    async def __aenter__(self) -> None:
        while self.held:
            if self._released is None:
                self._released = Flag()
            await self._released.wait()
        self.held = True

    async def __aexit__(self, *exc_info: object) -> None:
        self.held = False
        released, self._released = self._released, None
        if released is not None:
            released.set()
