"""p2p.transport.aio_stream: the asyncio TCP stream behaves as anyio's SocketStream (over loopback).

On trio `adopt` hands the anyio stream back untouched, which the last test checks.
"""


import anyio
import anyio.abc
import pytest

from p2p.transport import aio_stream
from p2p.transport.aio_stream import AsyncioTcpStream, adopt
from tcppair import tcp_pair
from readers import read_all

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_echo_half_close_and_max_bytes(anyio_backend):
    with anyio.fail_after(10):
        async with tcp_pair(adopted=True) as (client, server):
            assert isinstance(client, AsyncioTcpStream) and isinstance(server, AsyncioTcpStream)
            await client.send(b"hello world")
            got = b""
            while len(got) < 11:
                part = await server.receive(4)
                assert 1 <= len(part) <= 4
                got += part
            assert got == b"hello world"
            await client.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await server.receive()
            await server.send(b"still open")  # half-close: the other direction works
            await server.send_eof()
            assert await read_all(client) == b"still open"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_large_transfer_with_read_backpressure(anyio_backend, monkeypatch):
    monkeypatch.setattr(aio_stream, "_READ_HIGH_WATER", 64 * 1024)
    data = bytes(range(256)) * (16 * 1024)  # 4 MiB: the kernel buffers fill, sends must wait
    with anyio.fail_after(20):
        async with tcp_pair(adopted=True) as (client, server):
            async def writer():
                for i in range(0, len(data), 100_000):
                    await client.send(data[i:i + 100_000])
                await client.send_eof()

            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                await anyio.wait_all_tasks_blocked()
                assert server._buffered <= 64 * 1024 + 256 * 1024  # reading paused at the mark
                assert await read_all(server) == data


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aclose_and_peer_abort(anyio_backend):
    with anyio.fail_after(10):
        async with tcp_pair(adopted=True) as (client, server):
            await client.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await client.receive()
            with pytest.raises(anyio.ClosedResourceError):
                await client.send(b"x")
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await server.receive()  # the peer aborted: EOF or reset, never a hang


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_extra_socket_attributes(anyio_backend):
    async with tcp_pair(adopted=True) as (client, server):
        local = client.extra(anyio.abc.SocketAttribute.local_address)
        remote = server.extra(anyio.abc.SocketAttribute.remote_address)
        assert local == remote and local[0] == "127.0.0.1"
        assert client.extra(anyio.abc.SocketAttribute.raw_socket).fileno() >= 0
        assert client.extra(anyio.abc.SocketAttribute.local_port) == local[1]
        assert server.extra(anyio.abc.SocketAttribute.remote_port) == local[1]
        with pytest.raises(anyio.TypedAttributeLookupError):
            client.extra(anyio.abc.SocketAttribute.local_address.__class__)  # not a socket attribute
        await client.aclose()  # the socket is gone: missing, or the default when one is given
        with pytest.raises(anyio.TypedAttributeLookupError):
            client.extra(anyio.abc.SocketAttribute.remote_address)
        assert client.extra(anyio.abc.SocketAttribute.remote_address, None) is None


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_keeps_anyios_stream(anyio_backend):
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            assert adopt(stream) is stream


async def test_tcp_dial_takes_the_loops_connect_on_asyncio_and_anyios_on_trio(anyio_backend):
    """p2p.transport.tcp.dial: an IP address on asyncio goes through aio_stream.connect (what the
    listener wrote before the stream took the connection over is kept); trio keeps anyio's."""
    from p2p.transport.tcp import TcpAddress, dial

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def speak_first(stream: anyio.abc.SocketStream) -> None:
        await stream.send(b"header first")
        await stream.send_eof()
        assert await read_all(stream) == b"bye"

    with anyio.fail_after(10):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, speak_first)
            client = await dial(TcpAddress("127.0.0.1", port, "ip4"), timeout=5)
            try:
                assert isinstance(client, AsyncioTcpStream) == (anyio_backend == "asyncio")
                await anyio.sleep(0.05)  # the header may well arrive before anyone reads it
                assert await read_all(client) == b"header first"
                await client.send(b"bye")
                await client.send_eof()
                await anyio.sleep(0.05)
            finally:
                await client.aclose()
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_connect_refused_is_an_oserror_named_by_dial(anyio_backend):
    from p2p.errors import DialError
    from p2p.transport.tcp import TcpAddress, dial

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there any more
    with pytest.raises(OSError):
        await aio_stream.connect("127.0.0.1", port)
    with pytest.raises(DialError, match="connection refused"):
        await dial(TcpAddress("127.0.0.1", port, "ip4"), timeout=5)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_read_size_follows_the_reads(anyio_backend):
    """64 KiB reads while reads are small (asyncio allocates a block of the read size per read:
    256 KiB ones were mmap + mremap + munmap each), 256 KiB once a read fills 64 KiB (bulk), and
    no going back: a bulk transfer has small reads too, and switching at each made glibc grow and
    trim its heap around the two sizes by turns."""
    small, large = aio_stream._SMALL_READ, aio_stream._LARGE_READ
    with anyio.fail_after(10):
        async with tcp_pair(adopted=True) as (client, server):
            assert server._transport.max_size == small
            sizes = set()

            async def read_bulk() -> None:
                got = 0
                while got < 4 * large:
                    got += len(await server.receive(large))
                    sizes.add(server._transport.max_size)

            async with anyio.create_task_group() as tg:
                tg.start_soon(read_bulk)
                await client.send(b"x" * (4 * large))
            assert large in sizes  # a read filled 64 KiB
            for _ in range(20):
                await client.send(b"y")
                assert await server.receive() == b"y"
                assert server._transport.max_size == large


class _TransportWithoutReadSize:
    """A transport that does not let its read size be set (as uvloop's)."""

    def __init__(self) -> None:
        self.protocol = None

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def resume_reading(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_transport_without_a_read_size_keeps_its_own(anyio_backend):
    transport = _TransportWithoutReadSize()
    stream = AsyncioTcpStream(transport, [], False, None)  # type: ignore[arg-type]
    transport.protocol.data_received(b"z" * (1 << 20))
    assert not hasattr(transport, "max_size")
    assert await stream.receive(1 << 20) == b"z" * (1 << 20)
