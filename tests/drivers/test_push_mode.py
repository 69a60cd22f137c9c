"""Push mode on asyncio: reads handed to a callback as they arrive (`AsyncioTcpStream` and
`NoiseStream.set_receiver`) and the yamux session that parses them there instead of in a reader
task: order, end of stream, authentication failures, flow control under a ping flood, and a
protocol violation. Trio has no push mode (the session keeps its reader task there)."""

from __future__ import annotations

import socket
import struct

import anyio
import anyio.abc
import pytest

from p2p.identity import PeerId, PrivateKey
from p2p.mux import yamux_session
from p2p.transport import aio_stream
from p2p.mux.yamux_frame import YamuxProtocolError
from p2p.mux.yamux_session import YamuxConfig, YamuxSession
from p2p.security.noise import NoiseDecryptError
from p2p.security.noise_stream import secure_inbound, secure_outbound
from p2p.streams import BufferedStream
from tcppair import asyncio_tcp_pair

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

SERVER_KEY = PrivateKey.generate()
CLIENT_KEY = PrivateKey.generate()


class Collector:
    def __init__(self) -> None:
        self.data = bytearray()
        self.ended: list[BaseException | None] = []
        self.grew = anyio.Event()

    def on_data(self, chunk: bytes) -> None:
        self.data += chunk
        self.grew.set()

    def on_end(self, exc: BaseException | None) -> None:
        self.ended.append(exc)
        self.grew.set()

    async def wait_for(self, n: int) -> None:
        while len(self.data) < n and not self.ended:
            self.grew = anyio.Event()
            await self.grew.wait()


async def test_tcp_push_buffered_first_pause_resume_and_eof(anyio_backend) -> None:
    with anyio.fail_after(10):
        async with asyncio_tcp_pair() as (client, server):
            await client.send(b"early")
            assert await server.receive(2) == b"ea"  # pull mode first; b"rly" stays buffered
            got = Collector()
            assert server.set_receiver(got.on_data, got.on_end)
            assert bytes(got.data) == b"rly"  # handed over at once, before anything new
            await client.send(b" late")
            await got.wait_for(8)
            assert bytes(got.data) == b"rly late"

            server.pause_receiving()
            await client.send(b"held")
            await client.send_eof()
            for _ in range(20):  # the bytes are in our socket by now; none may be delivered
                await anyio.lowlevel.checkpoint()
            assert bytes(got.data) == b"rly late" and not got.ended
            server.resume_receiving()
            await got.wait_for(12)
            while not got.ended:
                await got.wait_for(1 << 20)
            assert bytes(got.data) == b"rly lateheld"
            assert got.ended == [None]  # clean EOF


async def test_tcp_push_back_to_pull_mode(anyio_backend) -> None:
    with anyio.fail_after(10):
        async with asyncio_tcp_pair() as (client, server):
            got = Collector()
            server.set_receiver(got.on_data, got.on_end)
            await client.send(b"one")
            await got.wait_for(3)
            server.set_receiver(None)
            await client.send(b"two")
            assert await server.receive(10) == b"two"
            assert got.ended == []


async def secure_pair(c, s):
    server_id = PeerId.from_public_key(SERVER_KEY.public_key)
    result = {}

    async def inbound() -> None:
        result["s"] = await secure_inbound(BufferedStream(s), SERVER_KEY, timeout=5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(inbound)
        client = await secure_outbound(BufferedStream(c), CLIENT_KEY, expected_peer=server_id,
                                       timeout=5)
    return client, result["s"]


async def test_noise_push_frames_in_order_then_eof_inside_a_frame_is_an_error(anyio_backend) -> None:
    with anyio.fail_after(10):
        async with asyncio_tcp_pair() as (c, s):
            client, server = await secure_pair(c, s)
            got = Collector()
            assert server.set_receiver(got.on_data, got.on_end)
            await client.send(b"a" * 70000)  # two frames (65519 + the rest)
            await client.send(b"b")
            await got.wait_for(70001)
            assert bytes(got.data) == b"a" * 70000 + b"b"
            await c.send(b"\x00\x30" + b"\x00" * 10)  # a frame's first 12 of 48 bytes, then EOF
            await c.send_eof()
            while not got.ended:
                await got.wait_for(1 << 30)
            assert isinstance(got.ended[0], NoiseDecryptError)


async def test_noise_push_tampered_frame_ends_with_decrypt_error(anyio_backend) -> None:
    with anyio.fail_after(10):
        async with asyncio_tcp_pair() as (c, s):
            client, server = await secure_pair(c, s)
            got = Collector()
            server.set_receiver(got.on_data, got.on_end)
            frame = bytearray(client._transport.encrypt(b"secret"))
            frame[5] ^= 1
            await c.send(bytes(frame))
            while not got.ended:
                await got.wait_for(1 << 30)
            assert got.data == b"" and isinstance(got.ended[0], NoiseDecryptError)


def _frame(ftype: int, flags: int, sid: int, length: int) -> bytes:
    return struct.pack(">BBHII", 0, ftype, flags, sid, length)


async def test_session_pauses_reading_under_a_syn_flood_and_resumes(anyio_backend) -> None:
    """A peer that floods SYNs past the stream cap without reading the RSTs they earn: the session
    stops reading once its queued output passes the high-water mark (memory stays bounded) and
    answers every SYN once the peer reads again."""
    count = 300_000  # 3.6 MB of SYNs earn 3.6 MB of RSTs: past the kernel's buffers and 1 MiB
    config = YamuxConfig(max_inbound_streams=1, accept_backlog=1)
    with anyio.fail_after(30):
        async with asyncio_tcp_pair() as (c, s):
            # fixed kernel buffers (no autotuning), so the unread RSTs push back on the session
            c.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            async with YamuxSession(s, is_client=False, config=config) as session:
                assert session._push  # push mode
                flood = b"".join(_frame(1, 1, 2 * i + 1, 0) for i in range(count))
                async with anyio.create_task_group() as tg:
                    tg.start_soon(c.send, flood)
                    while not session._recv_paused:
                        await anyio.sleep(0.005)
                    assert session._core.pending_output <= 2 * yamux_session._OUTPUT_HIGH_WATER
                    # the peer reads again: the session resumes and answers every SYN
                    # the first SYN waits to be accepted (its ACK comes then), the rest are
                    # reset: the session's first RTT ping + count - 1 RSTs
                    got = 0
                    while got < count * 12:
                        got += len(await c.receive(1 << 20))
                assert not session.is_closed


async def test_session_protocol_violation_sends_goaway_and_ends(anyio_backend) -> None:
    with anyio.fail_after(10):
        async with asyncio_tcp_pair() as (c, s):
            async with YamuxSession(s, is_client=False) as session:
                assert session._push
                await c.send(_frame(0, 0, 7, 0))  # data on a stream never opened... then
                await c.send(b"\x05" + b"\x00" * 11)  # a frame with yamux version 5
                out = b""
                while True:
                    try:
                        out += await c.receive(1 << 16)
                    except anyio.EndOfStream:
                        break
                await session.close()
            assert isinstance(session.error, YamuxProtocolError)
            assert out.endswith(_frame(3, 0, 0, 1))  # GoAway(protocol error)


async def test_bulk_reads_are_512_kib_and_pin_the_heap_once(anyio_backend, monkeypatch) -> None:
    """Reads stay 64 KiB until one fills that, then 512 KiB (16 echo streams keep more than
    256 KiB in the socket); that switch, and only it, pins glibc's heap thresholds."""
    pins: list[int] = []
    monkeypatch.setattr(aio_stream, "pin_heap_thresholds", lambda: pins.append(1) or True)
    with anyio.fail_after(20):
        async with asyncio_tcp_pair() as (client, server):

            async def transfer(data: bytes) -> None:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.send, data)
                    got = 0
                    while got < len(data):
                        got += len(await server.receive(1 << 20))

            await transfer(b"x" * 100)
            assert server._read_size == aio_stream._SMALL_READ and pins == []
            # a read fills 64 KiB once the socket holds that much: a MiB in one write does it
            # (a few more are allowed, for a reader that kept pace with the kernel each time)
            for _ in range(8):
                await transfer(b"y" * (1 << 20))
                if server._read_size != aio_stream._SMALL_READ:
                    break
            assert server._read_size == 512 * 1024
            assert server._transport.max_size == 512 * 1024
            await transfer(b"z" * (1 << 20))
            assert pins == [1]  # once per stream going bulk (the call: once per process)
            assert client._read_size == aio_stream._SMALL_READ  # it only wrote
