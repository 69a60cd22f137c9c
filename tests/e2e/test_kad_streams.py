"""Kad requests reuse one stream per peer (go's message manager), on both anyio backends: counted
streams and requests, a kept stream the server reset is retried once on a new one, idle streams
are closed, and the number of kept streams is bounded."""

from __future__ import annotations

import contextlib

import anyio
import pytest

from p2p.host import Host
from p2p.kad.config import KadConfig
from p2p.kad.messages import Message, MessageType
from p2p.kad.service import KadService

pytestmark = pytest.mark.anyio


async def _pair(stack: contextlib.AsyncExitStack, client_cfg: KadConfig, server_cfg: KadConfig):
    server = await stack.enter_async_context(Host())
    client = await stack.enter_async_context(Host())
    await server.listen()
    sdht = KadService(server, server_cfg)
    cdht = KadService(client, client_cfg)
    await client.connect(server.p2p_addrs()[0])
    with anyio.fail_after(10):  # the client's check of the server (go's lookupCheck) is done
        while server.peer_id not in cdht.routing_table:
            await anyio.sleep(0.01)
    return client, server, cdht, sdht


async def test_sequential_requests_share_one_stream():
    with anyio.fail_after(30):
        async with contextlib.AsyncExitStack() as stack:
            client, server, cdht, _ = await _pair(stack, KadConfig(), KadConfig())
            for _ in range(20):
                reply = await cdht.request(server.peer_id, Message(MessageType.FIND_NODE, key=b"k"))
                assert reply is not None and reply.type is MessageType.FIND_NODE
            await cdht.request(server.peer_id, Message(MessageType.ADD_PROVIDER, key=b"k"))
            reply = await cdht.request(server.peer_id, Message(MessageType.PING))
            assert reply is not None and reply.type is MessageType.PING  # in order after it
            assert cdht.sender.requests == 1 + 22 and cdht.sender.streams_opened == 1  # check too
            assert len(cdht.sender) == 1


async def test_without_reuse_every_request_opens_a_stream():
    with anyio.fail_after(30):
        async with contextlib.AsyncExitStack() as stack:
            _, server, cdht, _ = await _pair(stack, KadConfig(stream_reuse=False), KadConfig())
            for _ in range(5):
                await cdht.request(server.peer_id, Message(MessageType.PING))
            assert cdht.sender.streams_opened == 1 + 5 and len(cdht.sender) == 0


async def test_a_kept_stream_the_server_reset_is_retried_once_on_a_new_one():
    with anyio.fail_after(30):
        async with contextlib.AsyncExitStack() as stack:
            # the server resets a stream quiet for 0.2 s (go: 1 min); ours would keep it 30 s
            _, server, cdht, _ = await _pair(stack, KadConfig(), KadConfig(stream_idle_timeout=0.2))
            await cdht.request(server.peer_id, Message(MessageType.PING))
            await anyio.sleep(0.5)
            reply = await cdht.request(server.peer_id, Message(MessageType.PING))
            assert reply is not None and reply.type is MessageType.PING
            assert cdht.sender.streams_opened == 2 and cdht.sender.retries == 1  # check, PING, PING


async def test_idle_streams_are_closed_and_kept_streams_are_bounded():
    with anyio.fail_after(30):
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(Host())
            cdht = KadService(client, KadConfig(client_stream_idle=0.3, max_client_streams=2))
            servers = []
            for _ in range(4):
                s = await stack.enter_async_context(Host())
                await s.listen()
                KadService(s, KadConfig())
                await client.connect(s.p2p_addrs()[0])
                servers.append(s)
            with anyio.fail_after(10):  # the client's checks of the servers are done
                while len(cdht.routing_table) < 4:
                    await anyio.sleep(0.01)
            for s in servers:
                await cdht.request(s.peer_id, Message(MessageType.PING))
            base = cdht.sender.streams_opened
            for s in servers:  # 4 peers through 2 kept streams, least recently used closed
                await cdht.request(s.peer_id, Message(MessageType.PING))
                assert len(cdht.sender) <= 2
            assert cdht.sender.streams_opened == base + 4
            with anyio.fail_after(5):  # the sweep (every idle/2) closes what stayed idle
                while len(cdht.sender):
                    await anyio.sleep(0.05)
            await cdht.request(servers[-1].peer_id, Message(MessageType.PING))
            assert cdht.sender.streams_opened == base + 5 and cdht.sender.retries == 0


async def test_close_closes_the_kept_streams():
    with anyio.fail_after(30):
        async with contextlib.AsyncExitStack() as stack:
            _, server, cdht, _ = await _pair(stack, KadConfig(), KadConfig())
            await cdht.request(server.peer_id, Message(MessageType.PING))
            assert len(cdht.sender) == 1
            cdht.close()
            with anyio.fail_after(5):
                while len(cdht.sender):
                    await anyio.sleep(0.01)
