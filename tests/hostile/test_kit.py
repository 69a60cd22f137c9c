"""The hostile kit's own measurements: `closed_by_peer` after this process was held."""

from __future__ import annotations

import socket
import threading
import time

import anyio
import pytest
from kit import closed_by_peer

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
