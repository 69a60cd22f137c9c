"""The yamux writer's batching, on both backends: what tasks queue in the same turns leaves in one
write (a request's SYN + data + FIN; eight streams opened by eight tasks at once)."""

from __future__ import annotations

import anyio
import pytest
from memstream import memory_stream_pair

from p2p.mux.yamux_session import YamuxSession

pytestmark = pytest.mark.anyio


class Counting:
    """A connection that counts its writes."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        self.writes.append(bytes(item))
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _read_all(stream) -> bytes:
    buf = bytearray()
    while True:
        try:
            buf += await stream.receive(65536)
        except anyio.EndOfStream:
            return bytes(buf)


async def test_request_and_parallel_opens_leave_in_one_write_each() -> None:
    a, b = memory_stream_pair()
    conn = Counting(a)
    with anyio.fail_after(10):
        async with YamuxSession(conn, is_client=True) as client, \
                YamuxSession(b, is_client=False) as server:
            await client.ping()  # the start-up RTT ping and its pong are out of the way
            conn.writes.clear()
            st = await client.open_stream()
            await st.send(b"request")
            await st.send_eof()
            peer = await server.accept_stream()
            assert await _read_all(peer) == b"request"
            assert len(conn.writes) == 1
            # WindowUpdate(SYN) 12 + Data header 12 + 7 bytes + WindowUpdate(FIN) 12
            assert len(conn.writes[0]) == 12 + 12 + 7 + 12

            conn.writes.clear()

            async def one(i: int) -> None:
                s = await client.open_stream()
                await s.send(b"%d" % i)

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
            got = []
            for _ in range(8):
                got.append(await (await server.accept_stream()).receive(10))
            assert sorted(got) == [b"%d" % i for i in range(8)]
            assert len(conn.writes) == 1
