"""The hostile kit's own measurements: `closed_by_peer` after this process was held, and
`net_probe`'s bound net of waiting for a CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import anyio
import pytest
from kit import closed_by_peer, net_probe

from p2p.streams import BufferedStream

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _closed_after_hold(close_after: float | None, hold: float, timeout: float) -> bool:
    """A peer in a thread of its own that closes `close_after` s after accepting (None: when
    the check is over), while our loop is held `hold` s (time.sleep: what a long collection
    or a starved process does to it)."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def peer() -> None:
        conn, _ = server.accept()
        with conn:
            if done.wait(1e9 if close_after is None else close_after):
                return
            conn.sendall(b"bye")  # drained before the end is seen

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    try:
        stream = BufferedStream(await anyio.connect_tcp("127.0.0.1", server.getsockname()[1]))

        async def held() -> None:
            await anyio.sleep(0.05)  # once closed_by_peer waits
            time.sleep(hold)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(held)
                return await closed_by_peer(stream, timeout)
        finally:
            done.set()
            await stream.aclose()
    finally:
        thread.join(5)
        server.close()


async def test_an_end_that_came_while_we_were_held_counts():
    """The peer closed at 0.1 s; our loop was held until 1.05 s, past the 0.5 s deadline (which
    alone was delivered before the socket check: False)."""
    with anyio.fail_after(10):
        assert await _closed_after_hold(0.1, 1.0, 0.5)


async def test_a_peer_that_does_not_close_is_still_caught():
    with anyio.fail_after(10):
        assert not await _closed_after_hold(None, 0.0, 0.3)
        assert not await _closed_after_hold(None, 1.0, 0.5)  # held too: nothing there
        assert not await _closed_after_hold(1.5, 0.0, 0.5)  # closes, but too late


async def test_a_probe_kept_off_the_cpu_is_not_charged_for_it():
    """0.1 s of CPU work while this thread shares one CPU with two busy processes: three times
    that or more in wall time, over a 0.2 s bound, yet within it net of this loop's waits (the
    busy processes are not the probe's: their waits are not counted)."""
    cpu = min(os.sched_getaffinity(0))
    mine = os.sched_getaffinity(0)
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]

    async def work() -> None:
        start = time.thread_time()
        while time.thread_time() - start < 0.1:
            pass

    try:
        for proc in busy:
            os.sched_setaffinity(proc.pid, {cpu})
        os.sched_setaffinity(0, {cpu})  # this thread only
        wall = await net_probe(work, None, deadline=0.2)
    finally:
        os.sched_setaffinity(0, mine)
        for proc in busy:
            proc.kill()
            proc.wait()
    assert wall > 0.2  # the wall clock alone would have failed it


async def test_a_probe_waiting_on_a_timer_is_charged_in_full():
    """Nothing runnable waits while a timer runs: that time counts, loaded or not."""
    with pytest.raises(AssertionError, match="honest probe took"):
        await net_probe(lambda: anyio.sleep(0.4), None, deadline=0.2)
