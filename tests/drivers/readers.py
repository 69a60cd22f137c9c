"""Reading helpers the driver tests share (any anyio-style byte stream)."""

from __future__ import annotations

from typing import Any

import anyio


async def read_all(stream: Any, limit: int = 1 << 30) -> bytes:
    """Everything up to the stream's EOF; more than `limit` bytes fails the test."""
    parts: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = await stream.receive(1 << 20)
        except anyio.EndOfStream:
            return b"".join(parts)
        parts.append(chunk)
        total += len(chunk)
        assert total <= limit


async def receive_n(stream: Any, n: int) -> bytes:
    """At least `n` bytes (whatever the reads bring)."""
    out = bytearray()
    while len(out) < n:
        out += await stream.receive(1 << 20)
    return bytes(out)
