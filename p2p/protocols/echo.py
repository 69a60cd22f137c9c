"""`/echo/1.0.0`: copy every byte back until the remote half-closes, then close our side.

Not a libp2p standard protocol: the conformance CLI and the benchmarks use it to move bytes.
"""

from __future__ import annotations

import anyio

ECHO = "/echo/1.0.0"
CHUNK = 256 * 1024


async def echo_handler(stream) -> None:
    while True:
        try:
            data = await stream.receive(CHUNK)
        except anyio.EndOfStream:
            break
        await stream.send(data)
    await stream.aclose()
