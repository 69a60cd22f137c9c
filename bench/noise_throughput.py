"""Bulk throughput of NoiseStream over one loopback TCP connection (not a test; prints MB/s).

usage: python bench/noise_throughput.py [MiB] [asyncio|trio] [write-size-KiB]
"""

from __future__ import annotations

import sys
import time

import anyio
from anyio.abc import SocketAttribute

from p2p.identity import PeerId, PrivateKey
from p2p.security.noise_stream import secure_inbound, secure_outbound
from p2p.streams import BufferedStream


async def main(mib: int, write_kib: int) -> None:
    client_key, server_key = PrivateKey.generate(), PrivateKey.generate()
    block = bytes(range(256)) * (write_kib * 4)
    total = mib * 1024 * 1024
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
        port = listener.extra(SocketAttribute.local_port)
        raw_c = await anyio.connect_tcp("127.0.0.1", port)
        raw_s = await listener.listeners[0].accept()
        done: dict[str, float] = {}

        async def sink() -> None:
            server = await secure_inbound(BufferedStream(raw_s), server_key)
            got = 0
            while True:
                try:
                    got += len(await server.receive(1 << 20))
                except anyio.EndOfStream:
                    break
            done["end"] = time.perf_counter()
            assert got == total, got

        async with anyio.create_task_group() as tg:
            tg.start_soon(sink)
            client = await secure_outbound(
                BufferedStream(raw_c), client_key,
                expected_peer=PeerId.from_public_key(server_key.public_key),
            )
            start = time.perf_counter()
            sent = 0
            while sent < total:
                n = min(len(block), total - sent)
                await client.send(block if n == len(block) else block[:n])
                sent += n
            await client.send_eof()
        await client.aclose()
    secs = done["end"] - start
    print(f"{mib} MiB in {secs:.2f} s = {total / secs / 1e6:.0f} MB/s "
          f"({write_kib} KiB writes)")


if __name__ == "__main__":
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    backend = sys.argv[2] if len(sys.argv) > 2 else "asyncio"
    write_kib = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    anyio.run(main, mib, write_kib, backend=backend)
