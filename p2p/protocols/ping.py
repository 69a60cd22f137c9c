"""ping (`/ipfs/ping/1.0.0`): the initiator writes 32 random bytes, the responder echoes them.

The responder loops until the initiator closes its write side, with go v0.36's bounds: at most
`gap_timeout` between pings and `stream_timeout` for the whole stream.
"""

from __future__ import annotations

import os
import time
from typing import Protocol

import anyio

from p2p.errors import RemoteProtocolError
from p2p.streams import ResettableStream


class PingStream(ResettableStream, Protocol):
    """What ping needs of a stream (a host stream has it)."""

    async def receive_exactly(self, n: int) -> bytes: ...

PING = "/ipfs/ping/1.0.0"
PING_SIZE = 32


class PingMismatch(RemoteProtocolError):
    """The echo did not match what we sent."""


async def serve_ping(stream: PingStream, *, gap_timeout: float = 10.0, stream_timeout: float = 30.0) -> None:
    """Echo 32-byte pings until EOF; reset on a partial ping or a timeout."""
    try:
        with anyio.fail_after(stream_timeout):
            while True:
                with anyio.fail_after(gap_timeout):
                    try:
                        first = await stream.receive(PING_SIZE)
                    except anyio.EndOfStream:
                        break
                    if len(first) < PING_SIZE:
                        first += await stream.receive_exactly(PING_SIZE - len(first))
                await stream.send(first)
    except (TimeoutError, RemoteProtocolError):
        await stream.reset()
        return
    await stream.aclose()


async def ping_rtts(stream: PingStream, count: int, *, timeout: float = 10.0) -> list[float]:
    """Send `count` pings on one stream; return each round trip in seconds."""
    rtts = []
    try:
        for _ in range(count):
            payload = os.urandom(PING_SIZE)
            start = time.perf_counter()
            with anyio.fail_after(timeout):
                await stream.send(payload)
                echo = await stream.receive_exactly(PING_SIZE)
            rtts.append(time.perf_counter() - start)
            if echo != payload:
                raise PingMismatch("ping packet was incorrect")
    except BaseException:
        await stream.reset()
        raise
    await stream.aclose()
    return rtts
