"""A transparent TCP relay that records the first bytes each way (the plaintext negotiation).

Put between a remote dialer and our listener, it shows on the wire what multistream-select said
before Noise took over, without touching either stack. One connection at a time is enough here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import anyio.abc


@dataclass
class Recording:
    to_listener: bytearray = field(default_factory=bytearray)
    to_dialer: bytearray = field(default_factory=bytearray)
    connections: int = 0


async def _pump(src: anyio.abc.ByteStream, dst: anyio.abc.ByteStream, log: bytearray,
                keep: int) -> None:
    try:
        while True:
            data = await src.receive(65536)
            if len(log) < keep:
                log += data[: keep - len(log)]
            await dst.send(data)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        try:
            await dst.send_eof()  # relay the half-close, keep the other direction flowing
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


async def serve_recorder(tg: anyio.abc.TaskGroup, target_port: int, keep: int = 256
                         ) -> tuple[int, Recording]:
    """Listen on 127.0.0.1:0 in ``tg``, relay every connection to ``target_port``; (port, log)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    rec = Recording()

    async def relay(client: anyio.abc.SocketStream) -> None:
        rec.connections += 1
        async with client, await anyio.connect_tcp("127.0.0.1", target_port) as upstream:
            async with anyio.create_task_group() as inner:
                inner.start_soon(_pump, client, upstream, rec.to_listener, keep)
                inner.start_soon(_pump, upstream, client, rec.to_dialer, keep)

    tg.start_soon(listener.serve, relay)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    return port, rec
