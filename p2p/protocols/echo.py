"""`/echo/1.0.0`: copy every byte back until the remote half-closes, then close our side.

Not a libp2p standard protocol: the conformance CLI and the benchmarks use it to move bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from p2p.streams import ByteStream

if TYPE_CHECKING:
    from p2p.hostapi import HostLike
    from p2p.identity import PeerId

ECHO = "/echo/1.0.0"
CHUNK = 256 * 1024


def make_echo_handler(chunk: int = CHUNK) -> Callable[[ByteStream], Awaitable[None]]:
    """An echo handler reading at most `chunk` bytes at a time (the benchmarks vary it)."""

    async def echo_handler(stream: ByteStream) -> None:
        while True:
            try:
                data = await stream.receive(chunk)
            except anyio.EndOfStream:
                break
            await stream.send(data)
        await stream.aclose()

    return echo_handler


echo_handler = make_echo_handler()


async def echo_roundtrip(host: HostLike, peer: PeerId, payload: bytes, *, chunk: int = CHUNK) -> bytes:
    """Client side: send `payload` while reading the echo, half-close, return what came back."""
    stream = await host.new_stream(peer, [ECHO])
    got = bytearray()

    async def reader() -> None:
        while True:
            try:
                got.extend(await stream.receive(chunk))
            except anyio.EndOfStream:
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        view = memoryview(payload)
        for off in range(0, len(payload), chunk):
            await stream.send(view[off : off + chunk])
        await stream.send_eof()
    await stream.aclose()
    return bytes(got)
