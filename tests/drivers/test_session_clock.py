"""The yamux session's clock on asyncio: `time.monotonic` itself for asyncio's own loop clock, the
loop's `time` for a loop with a clock of its own; read deadlines hold on both paths."""

from __future__ import annotations

import asyncio
import time

import anyio
from yamuxpair import yamux_pair

from p2p.mux.yamux_session import loop_clock


class _ShiftedClockLoop(asyncio.SelectorEventLoop):
    """A loop whose clock is its own (here asyncio's shifted by 1000 s), as uvloop's is."""

    def time(self) -> float:
        return time.monotonic() + 1000.0


async def _deadline_passes(expect_monotonic: bool) -> float:
    """Open a stream nobody answers, read with a 0.2 s deadline; the seconds it took."""
    with anyio.fail_after(10):
        async with yamux_pair() as (client, _server):
            assert (client._clock is time.monotonic) is expect_monotonic
            st = await client.open_stream()
            await st.send(b"hello")
            start = anyio.current_time()
            st.set_read_deadline(start + 0.2)
            try:
                await st.receive()
            except TimeoutError:
                return anyio.current_time() - start
            raise AssertionError("the read returned without data or deadline")


def test_asyncio_own_clock_is_time_monotonic_and_deadlines_hold() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert loop_clock(loop) is time.monotonic
    finally:
        loop.close()
    took = anyio.run(_deadline_passes, True, backend="asyncio")
    assert 0.2 <= took < 5


def test_a_loop_with_its_own_clock_keeps_it_and_deadlines_hold() -> None:
    loop = _ShiftedClockLoop()
    try:
        assert loop_clock(loop) == loop.time
    finally:
        loop.close()
    # time.monotonic here would put every deadline 1000 s away: the read would never time out
    took = anyio.run(_deadline_passes, False, backend="asyncio",
                     backend_options={"loop_factory": _ShiftedClockLoop})
    assert 0.2 <= took < 5
