"""Our side of the cross-implementation tests (js-libp2p, go-libp2p v0.24): a host of a given key
type, our echo listener, a command to the other peer that leaves our host serving, and the stream
work both suites run against a peer we dialled."""

from __future__ import annotations

import os
from typing import Any

import anyio

from p2p.config import HostConfig
from p2p.host import Host
from p2p.identity import PrivateKey, parse_key_type
from p2p.protocols.echo import ECHO, echo_handler, echo_roundtrip
from peerproc import PeerProcess

__all__ = ["ECHO", "our_host", "call", "serve_ours", "echo_streams_and_ping"]


def our_host(key_type: str = "ed25519") -> Host:
    return Host(PrivateKey.generate(parse_key_type(key_type)), HostConfig())


async def call(peer: PeerProcess, timeout: float = 60.0, **cmd: Any) -> dict:
    """Run one command on the other peer in a worker thread, so our host keeps serving meanwhile."""
    return await anyio.to_thread.run_sync(lambda: peer.request(cmd, timeout=timeout))


async def serve_ours(host: Host) -> str:
    host.set_stream_handler(ECHO, echo_handler)
    await host.listen("/ip4/127.0.0.1/tcp/0")
    return host.p2p_addrs()[0]


async def echo_streams_and_ping(host: Host, pid: Any) -> None:
    """8 concurrent 200 kB echoes, then one of 4 MiB, then 3 pings, on our connection to `pid`."""
    payloads = [os.urandom(200_000) for _ in range(8)]
    results: list[bytes | None] = [None] * len(payloads)

    async def one(i: int) -> None:
        results[i] = await echo_roundtrip(host, pid, payloads[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(payloads)):
            tg.start_soon(one, i)
    assert results == payloads
    big = os.urandom(4 << 20)
    assert await echo_roundtrip(host, pid, big) == big
    assert len(await host.ping(pid, 3)) == 3
