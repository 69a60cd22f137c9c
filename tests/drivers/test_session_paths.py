"""The yamux session's input paths (p2p/mux/yamux_session.py), on both backends: the fast paths
survive multistream-negotiated yamux, and the reader task pauses under an output flood as push
mode does."""

from __future__ import annotations

import socket
import struct

import anyio
import anyio.abc
import pytest

from p2p.config import HostConfig
from p2p.host import Host
from p2p.mux import yamux_session
from p2p.mux.yamux import YamuxConfig
from p2p.mux.yamux_session import YamuxSession
from p2p.protocols.echo import echo_handler, echo_roundtrip
from p2p.security.noise_stream import NoiseStream
from p2p.streams import NonBlockingWrites, PushReads
from tcppair import tcp_pair
from yamuxpair import yamux_pair

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("early", [True, False])
async def test_fast_paths_survive_multistream_negotiated_yamux(anyio_backend, early) -> None:
    """Before, yamux negotiated by multistream ran on a BufferedStream around Noise, which has
    neither fast path: the session silently fell back to its reader task and writer-only output.
    Now the session runs on the Noise stream itself whichever way yamux was chosen."""
    cfg = HostConfig(early_muxer_negotiation=early)
    with anyio.fail_after(20):
        async with Host(config=cfg) as server, Host(config=cfg) as client:
            server.set_stream_handler("/echo/1.0.0", echo_handler)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            assert await echo_roundtrip(client, peer, b"z" * 300_000) == b"z" * 300_000
            for host, other in ((client, peer), (server, client.peer_id)):
                muxed = host.connection(other).muxed
                assert muxed.early_muxer is early
                session = muxed.session
                assert isinstance(session._lower, NoiseStream)
                assert isinstance(session._lower, PushReads)
                assert isinstance(session._lower, NonBlockingWrites)
                # push mode and writes without waiting where the TCP stream below allows them
                # (our asyncio stream); trio keeps anyio's stream: a reader task, waited writes
                assert session._push is (anyio_backend == "asyncio")
                assert session._lower.send_ready() is (anyio_backend == "asyncio")


class StalledWrites:
    """A stream below with no fast path whose writes hang until `release` (a peer not reading),
    fed by the test through `inject`; counts the session's reads."""

    def __init__(self) -> None:
        self.inbox: list[bytes] = []
        self.arrived = anyio.Event()
        self.released = anyio.Event()
        self.written = 0
        self.reads = 0

    def inject(self, data: bytes) -> None:
        self.inbox.append(data)
        self.arrived.set()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while not self.inbox:
            self.arrived = anyio.Event()
            await self.arrived.wait()
        self.reads += 1
        return self.inbox.pop(0)

    async def send(self, item: bytes) -> None:
        await self.released.wait()
        self.written += len(item)

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.released.set()


def _syns(first: int, count: int) -> bytes:
    """SYNs for `count` new streams: past the session's stream cap each one earns an RST."""
    return b"".join(struct.pack(">BBHII", 0, 1, 1, 2 * i + 1, 0)
                    for i in range(first, first + count))


async def test_reader_task_pauses_under_an_output_flood_and_resumes(anyio_backend) -> None:
    """Pull mode shares push mode's backpressure: past the high-water mark of unsent output the
    reader stops reading until the writer has handed the output over."""
    lower = StalledWrites()
    per_chunk = 20_000  # 240 KB of SYNs earn 240 KB of RSTs
    config = YamuxConfig(enable_keepalive=False, max_inbound_streams=1, accept_backlog=1)
    with anyio.fail_after(20):
        async with YamuxSession(lower, is_client=False, config=config) as session:
            assert not session._push
            for i in range(8):
                lower.inject(_syns(i * per_chunk, per_chunk))
            while not session._recv_paused:
                await anyio.sleep(0.001)
            reads = lower.reads
            for _ in range(20):
                await anyio.sleep(0.001)
            assert lower.reads == reads < 8  # no read while paused
            assert session._core.pending_output > yamux_session._OUTPUT_HIGH_WATER
            lower.released.set()  # the peer reads again
            # every SYN past the first (which waits to be accepted) earns its RST, and they
            # all go out (plus the start-up RTT ping)
            while lower.written < 12 + (8 * per_chunk - 1) * 12:
                await anyio.sleep(0.001)
            assert lower.reads == 8
            assert not session.is_closed


async def test_both_sides_sending_past_the_high_water_mark_do_not_stop_reading(anyio_backend) -> None:
    """Both peers write more than the kernel's buffers hold on 8 streams each while reading the
    other's: each side's unsent output passes the high-water mark, yet neither may stop reading
    for it, or neither's writes ever drain (both ended at the 10 s write timeout). Only output
    that the peer's input caused (pongs, RSTs) pauses reading. Push mode and reader tasks alike."""
    per_stream, streams = 512 * 1024, 8
    with anyio.fail_after(30):
        async with tcp_pair(adopted=True) as (c, s):
            for end in (c, s):  # fixed, small kernel buffers: the writers block early
                sock = end.extra(anyio.abc.SocketAttribute.raw_socket)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            async with yamux_pair(c, s) as (a, b):
                assert a._push == b._push == (anyio_backend == "asyncio")  # else reader tasks
                received = {a: 0, b: 0}
                paused = []

                async def sink(session: YamuxSession) -> None:
                    async with anyio.create_task_group() as tg:
                        for _ in range(streams):
                            tg.start_soon(drain, session, await session.accept_stream())

                async def drain(session: YamuxSession, st: yamux_session.YamuxStream) -> None:
                    while True:
                        try:
                            n = len(await st.receive(1 << 20))
                        except anyio.EndOfStream:
                            return
                        received[session] += n
                        paused.append(a._recv_paused or b._recv_paused)

                async def send(session: YamuxSession) -> None:
                    st = await session.open_stream()
                    await st.send(bytes(per_stream))
                    await st.send_eof()

                async with anyio.create_task_group() as tg:
                    for session in (a, b):
                        tg.start_soon(sink, session)
                        for _ in range(streams):
                            tg.start_soon(send, session)
                assert received == {a: per_stream * streams, b: per_stream * streams}
                assert not any(paused)
                assert not a.is_closed and not b.is_closed
