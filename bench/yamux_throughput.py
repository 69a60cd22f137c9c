"""Throughput sanity check: N MiB through one yamux stream over loopback TCP (no Noise).

    .venv/bin/python -m bench.yamux_throughput [--mib 256] [--backend asyncio|trio] [--chunk 1048576]

Prints MB/s. Both sessions run in this one process, so the figure includes both ends' CPU.
"""

from __future__ import annotations

import argparse
import time

import anyio

from p2p.mux.yamux_session import YamuxConfig, YamuxSession


async def measure(total: int, chunk: int, read_size: int, config: YamuxConfig) -> float:
    payload = b"\xab" * chunk
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    result: dict[str, float] = {}
    done = anyio.Event()

    async def serve() -> None:
        async def handler(sock: anyio.abc.SocketStream) -> None:
            async with YamuxSession(sock, is_client=False, config=config) as server:
                stream = await server.accept_stream()
                got = 0
                t0 = time.perf_counter()
                while True:
                    try:
                        got += len(await stream.receive(read_size))
                    except anyio.EndOfStream:
                        break
                result["elapsed"] = time.perf_counter() - t0
                result["bytes"] = got
                await stream.aclose()
                done.set()

        await listener.serve(handler)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        sock = await anyio.connect_tcp("127.0.0.1", port)
        async with YamuxSession(sock, is_client=True, config=config) as client:
            stream = await client.open_stream()
            sent = 0
            while sent < total:
                await stream.send(payload)
                sent += len(payload)
            await stream.send_eof()
            with anyio.fail_after(600):
                await done.wait()
        tg.cancel_scope.cancel()
    await listener.aclose()
    assert result["bytes"] == total, result
    return total / result["elapsed"] / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--read", type=int, default=1 << 20)
    ap.add_argument("--frame", type=int, default=YamuxConfig().max_frame_payload)
    ap.add_argument("--backend", default="asyncio")
    args = ap.parse_args()
    config = YamuxConfig(max_frame_payload=args.frame)
    mbps = anyio.run(measure, args.mib << 20, args.chunk, args.read, config, backend=args.backend)
    print(f"{args.mib} MiB through one yamux stream over loopback TCP ({args.backend}, "
          f"frame payload {args.frame}): {mbps:.1f} MB/s")


if __name__ == "__main__":
    main()
