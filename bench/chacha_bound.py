"""The ceiling for bulk transfer in Python: asyncio TCP + ChaCha20-Poly1305 framing, no muxer.

What a Noise transport over asyncio cannot beat: each 65519-byte chunk is sealed with
ChaCha20Poly1305 (from cryptography, as our stack uses it), written as a 2-byte length plus the
65535-byte ciphertext (Noise's frame size), read back and opened on the other side. No handshake
(both sides get the key on the command line: this measures framing, not security), no muxer, no
flow control. Same contract as the bench peers, scenario `bulk` only:

    python -m bench.chacha_bound listen            -> {"addr": "/ip4/127.0.0.1/tcp/N", "key": hex}
    python -m bench.chacha_bound dial bulk --addr ADDR --params '{"size": N, "key": hex}'
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bench.peer_common import emit, parse_args

PLAINTEXT = 65519  # Noise: 65535-byte message minus the 16-byte tag
TAG = 16


def _nonce(n: int) -> bytes:
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


async def _serve(key: bytes) -> None:
    aead = ChaCha20Poly1305(key)

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = total = 0
        try:
            while True:
                try:
                    head = await reader.readexactly(2)
                except asyncio.IncompleteReadError:
                    break
                frame = await reader.readexactly(int.from_bytes(head, "big"))
                total += len(aead.decrypt(_nonce(n), frame, None))
                n += 1
            writer.write(total.to_bytes(8, "big"))
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    emit({"addr": f"/ip4/127.0.0.1/tcp/{port}", "key": key.hex()})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()


async def _bulk(addr: str, params: dict) -> dict:
    parts = addr.strip("/").split("/")
    host, port = parts[1], int(parts[3])
    aead = ChaCha20Poly1305(bytes.fromhex(params["key"]))
    size = params["size"]
    block = bytes(PLAINTEXT)
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    sent = n = 0
    while sent < size:
        chunk = min(PLAINTEXT, size - sent)
        sealed = aead.encrypt(_nonce(n), block if chunk == PLAINTEXT else block[:chunk], None)
        writer.write(len(sealed).to_bytes(2, "big") + sealed)
        await writer.drain()
        sent += chunk
        n += 1
    writer.write_eof()
    count = int.from_bytes(await reader.readexactly(8), "big")
    seconds = time.perf_counter() - start
    writer.close()
    if count != size:
        raise ValueError(f"listener counted {count} of {size} bytes")
    return {"bytes": size, "seconds": round(seconds, 6), "mb_per_s": round(size / seconds / 1e6, 3)}


def main() -> None:
    args = parse_args()
    try:
        if args.role == "listen":
            asyncio.run(_serve(os.urandom(32)))
            return
        if args.scenario != "bulk":
            raise ValueError("the ChaCha bound only has the bulk scenario")
        emit(asyncio.run(_bulk(args.addr, args.params)))
    except Exception as exc:
        emit({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
