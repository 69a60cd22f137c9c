"""A go-libp2p v0.24.2 peer (PyPI ``libp2p-go``, ctypes over cgo) driven by JSON lines.

Runs in its own virtual environment (see ``tests/interop/gov024.py``): the wrapper imports as
``libp2p`` and needs ``multiaddr==0.0.9``, both of which clash with the project's environment.

    python gov024_peer.py [--key-type ed25519|secp256k1|ecdsa|rsa]

Prints one JSON line once listening: ``{"peer_id": ..., "addrs": [...]}``. It serves
``/echo/1.0.0`` (echo until EOF, then close). Then it reads one JSON command per line on stdin
and answers each with one JSON line (``{"error": ...}`` on failure); commands run one at a time:

* ``{"cmd": "echo", "addr": A, "size": N, "streams": K, "proto": P}``: connect to A, open K
  streams on P, write N random bytes on each and read N back (go's wrapper has no half-close:
  the reply length is known), then close. -> ``{"ok", "bytes", "peer_id"}``
* ``{"cmd": "ping", "addr": A, "count": C}``: go's ping service. -> ``{"rtt_ms": [...]}``
* ``{"cmd": "quit"}`` or end of stdin: close the host and exit.

Exit goes through ``os._exit`` after closing the host: cgo threads may otherwise call into a
finalising interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from libp2p import (DefaultMuxers, DefaultTransports, Host, Identity, ListenAddrStrings,
                    SecurityNoise)
from libp2p.crypto import KeyType, crypto_generate_keypair
from libp2p.peer import addr_info_from_p2p_addr
from libp2p.ping import PingService
from libp2p.utils import LibP2PError

KEY_TYPES = {"ed25519": KeyType.Ed25519, "secp256k1": KeyType.Secp256k1,
             "ecdsa": KeyType.ECDSA, "rsa": KeyType.RSA}
ECHO = "/echo/1.0.0"
CHUNK = 1 << 16


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    print(f"gov024: {msg}", file=sys.stderr, flush=True)


def is_eof(exc: LibP2PError) -> bool:
    return "EOF" in str(exc)  # the wrapper reports end of stream as 'io.ReadAll: EOF'


async def serve_echo(stream) -> None:
    try:
        while True:
            try:
                _, data = await stream.read_bytes(CHUNK)
            except LibP2PError as exc:
                if is_eof(exc):
                    break
                raise
            if data:
                await stream.write(data)
        await stream.close()
    except Exception as exc:  # noqa: BLE001 - log and reset, like go's echo examples
        log(f"echo handler: {exc!r}")
        await stream.reset()


async def read_exactly(stream, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        _, data = await stream.read_bytes(min(CHUNK, n - len(got)))
        got += data
    return bytes(got)


SMALL = 64 * 1024


async def echo_one(host, peer, proto: str, size: int) -> int:
    stream = await host.new_stream(peer, proto)
    payload = os.urandom(size)
    try:
        async def writer() -> None:
            for off in range(0, size, CHUNK):
                await stream.write(payload[off:off + CHUNK])

        if size <= SMALL:
            # Write before reading: a read started first would make go's lazy multistream client
            # flush its header and proposal on its own, and the data would follow separately.
            # (The echo of a small payload fits the yamux window, so nothing can block.)
            await writer()
            got = await read_exactly(stream, size)
        else:
            _, got = await asyncio.gather(writer(), read_exactly(stream, size))
    except BaseException:
        await stream.reset()
        raise
    await stream.close()
    if got != payload:
        raise RuntimeError(f"echo mismatch on {proto}: {len(got)} bytes back")
    return size


async def connect(host, addr: str):
    info = addr_info_from_p2p_addr(addr)
    await host.connect(info)
    return info.id


async def run_command(host, cmd: dict) -> dict:
    name = cmd.get("cmd")
    if name == "echo":
        peer = await connect(host, cmd["addr"])
        size, streams = int(cmd.get("size", 1000)), int(cmd.get("streams", 1))
        done = await asyncio.gather(*(echo_one(host, peer, cmd.get("proto", ECHO), size)
                                      for _ in range(streams)))
        return {"ok": True, "bytes": sum(done), "peer_id": peer.string}
    if name == "ping":
        peer = await connect(host, cmd["addr"])
        # The wrapper casts its argument to a peer.ID without decoding: pass the raw bytes.
        chan = PingService(host).ping(peer.bytes)
        rtts = []
        async for res in chan:
            if res.error:
                raise RuntimeError(f"ping: {res.error}")
            rtts.append(res.rtt / 1e6)  # nanoseconds
            if len(rtts) >= int(cmd.get("count", 1)):
                break
        return {"rtt_ms": rtts, "peer_id": peer.string}
    raise ValueError(f"unknown command {name!r}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--key-type", default="ed25519", choices=sorted(KEY_TYPES))
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    # Every wrapper call blocks an executor thread (reads held by yamux flow control included):
    # the stock pool of 6 deadlocks with a few dozen streams.
    loop.set_default_executor(ThreadPoolExecutor(256))
    priv, _ = crypto_generate_keypair(KEY_TYPES[args.key_type], 2048)
    host = Host(ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), Identity(priv), SecurityNoise(),
                DefaultMuxers(), DefaultTransports())
    host.set_stream_handler(ECHO, serve_echo)
    pid = host.id.string
    addrs = [f"{a}/p2p/{pid}" for a in host.network.listen_addresses() if "p2p-circuit" not in a]
    emit({"peer_id": pid, "addrs": addrs, "key_type": args.key_type})
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if not line.strip():
                continue
            started = time.monotonic()
            try:
                cmd = json.loads(line)
                if cmd.get("cmd") == "quit":
                    break
                result = await run_command(host, cmd)
            except Exception as exc:  # noqa: BLE001 - reported to the harness, which fails the test
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["elapsed_s"] = round(time.monotonic() - started, 4)
            emit(result)
    finally:
        await host.close()


if __name__ == "__main__":
    code = 0
    try:
        asyncio.run(main())
    except Exception as exc:  # noqa: BLE001
        emit({"error": f"{type(exc).__name__}: {exc}"})
        code = 1
    sys.stdout.flush()
    os._exit(code)
