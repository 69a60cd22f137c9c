"""Both ends of one loopback TCP connection, for the driver tests that need a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

from p2p.transport.aio_stream import AsyncioTcpStream, adopt


@asynccontextmanager
async def tcp_pair(*, adopted: bool = False) -> AsyncIterator[tuple[Any, Any]]:
    """(dialer, listener) streams: anyio's, or with `adopted` what `adopt` makes of them (our
    asyncio TCP stream on asyncio, anyio's own on trio). Both are closed on the way out."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        sub = listener.listeners[0]
        port = sub.extra(anyio.abc.SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        server = await sub.accept()  # already queued by the kernel
        if adopted:
            client, server = adopt(client), adopt(server)
        try:
            yield client, server
        finally:
            await client.aclose()
            await server.aclose()


@asynccontextmanager
async def asyncio_tcp_pair() -> AsyncIterator[tuple[AsyncioTcpStream, AsyncioTcpStream]]:
    """`tcp_pair(adopted=True)` for asyncio-only tests: both ends are our asyncio TCP stream."""
    async with tcp_pair(adopted=True) as (client, server):
        assert isinstance(client, AsyncioTcpStream) and isinstance(server, AsyncioTcpStream)
        yield client, server
