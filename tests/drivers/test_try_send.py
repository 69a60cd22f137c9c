"""The no-wait write path the yamux writer uses: `AsyncioTcpStream.send_ready/try_send` and
`NoiseStream.try_send` (asyncio only: on trio the anyio stream has neither and `send` is used)."""

from __future__ import annotations


import anyio
import anyio.abc
import pytest
from memstream import memory_stream_pair
from readers import receive_n

from p2p.identity import PeerId, PrivateKey
from p2p.security.noise_stream import secure_inbound, secure_outbound
from p2p.streams import BufferedStream
from tcppair import asyncio_tcp_pair

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

SERVER_KEY = PrivateKey.generate()
CLIENT_KEY = PrivateKey.generate()


async def test_tcp_try_send_delivers_and_refuses_after_close(anyio_backend) -> None:
    with anyio.fail_after(10):
        async with asyncio_tcp_pair() as (client, server):
            assert client.send_ready()
            assert client.try_send(b"abc")
            assert await receive_n(server, 3) == b"abc"
            await client.aclose()
            assert not client.send_ready()
            assert not client.try_send(b"late")


async def test_tcp_try_send_past_the_kernel_buffer_makes_send_wait(anyio_backend) -> None:
    big = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than loopback's socket buffers
    with anyio.fail_after(20):
        async with asyncio_tcp_pair() as (client, server):
            assert client.try_send(big)
            assert not client.send_ready()  # the rest sits in the transport: no second one
            assert not client.try_send(b"x")
            got = bytearray()

            async def drain() -> None:
                got.extend(await receive_n(server, len(big) + 4))

            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                await client.send(b"tail")  # returns once the kernel has everything
            assert bytes(got) == big + b"tail"
            assert client.send_ready()


async def test_noise_try_send_over_tcp_and_refusal_without_send_ready(anyio_backend) -> None:
    server_id = PeerId.from_public_key(SERVER_KEY.public_key)
    with anyio.fail_after(10):
        async with asyncio_tcp_pair() as (c, s):
            result = {}

            async def inbound() -> None:
                result["s"] = await secure_inbound(BufferedStream(s), SERVER_KEY, timeout=5)

            async with anyio.create_task_group() as tg:
                tg.start_soon(inbound)
                client = await secure_outbound(BufferedStream(c), CLIENT_KEY,
                                               expected_peer=server_id, timeout=5)
            server = result["s"]
            assert client.try_send(b"hello")
            assert client.try_send(b"")  # nothing to send: done
            await client.send(b" world")  # the nonces stay in step across both paths
            assert await receive_n(server, 11) == b"hello world"

    a, b = memory_stream_pair()  # a connection without send_ready: always refused, nonce unused
    async with anyio.create_task_group() as tg:
        result = {}

        async def inbound_mem() -> None:
            result["s"] = await secure_inbound(BufferedStream(b), SERVER_KEY, timeout=5)

        tg.start_soon(inbound_mem)
        client = await secure_outbound(BufferedStream(a), CLIENT_KEY, expected_peer=server_id,
                                       timeout=5)
    assert not client.try_send(b"nope")
    await client.send(b"yes")
    assert await receive_n(result["s"], 3) == b"yes"
