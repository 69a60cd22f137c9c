"""Hostile Noise handshakes and transport frames, against `python -m p2p serve`.

The attacker does a real XX handshake (tests/hostile/kit.py `RawNoise`, built on our
HandshakeState) and lies only where the case says: the identity payload, the framing, or the
ciphertext. The node must close the connection (its debug log names the failure), keep answering
honest peers within 1 s, and stay within its RSS / fd bounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from kit import stop_checked
from kit import (
    REPO,
    NodeProcess,
    RawNoise,
    flood,
    honest_payload,
    honest_probes,
    p2p_node,
    run_case,
    select_noise,
    uvarint,
    yamux_frame,
)

from p2p.identity import PeerId, PrivateKey
from p2p.security.noise import NoiseHandshake
from p2p.security.noise_payload import SIGNATURE_PREFIX, NoiseExtensions, NoiseHandshakePayload

LIMITS = {"negotiation_timeout": 2.0, "inbound_upgrade_timeout": 3.0}
OFFENDERS = 6


@pytest.fixture(scope="module")
def node(log_dir: Path) -> Iterator[NodeProcess]:
    n = p2p_node(log_dir, LIMITS, debug=True)
    yield n
    stop_checked(n)


def key_pb(key_type: int, data: bytes) -> bytes:
    """A PublicKey protobuf written by hand (08 type 12 len data), so it can say anything."""
    return b"\x08" + uvarint(key_type) + b"\x12" + uvarint(len(data)) + data


def bad_signature(pub: bytes) -> bytes:
    identity = PrivateKey.generate()
    sig = identity.sign(SIGNATURE_PREFIX + bytes(32))  # signs a static key that is not ours
    return NoiseHandshakePayload(identity.public_key.to_protobuf(), sig,
                                 NoiseExtensions(stream_muxers=("/yamux/1.0.0",))).encode()


def unknown_key_type(pub: bytes) -> bytes:
    return NoiseHandshakePayload(key_pb(7, os.urandom(32)), os.urandom(64)).encode()


def huge_rsa(pub: bytes) -> bytes:
    """A 9000-bit RSA modulus (go v0.36 caps at 8192): refused before any signature check."""
    n = int.from_bytes(os.urandom(9000 // 8), "big") | (1 << 8999) | 1
    der = RSAPublicNumbers(65537, n).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return NoiseHandshakePayload(key_pb(0, der), os.urandom(1125)).encode()


def invalid_protobuf(pub: bytes) -> bytes:
    return b"\x0a\xff\xff\xff\xff\x0f" + os.urandom(40)  # field 1, length 2^32-1, 40 bytes follow


async def offend(node: NodeProcess, started: anyio.Event, make, *, expect: str,
                 close_within: float = 2.0, count: int = OFFENDERS) -> None:
    """`count` attackers keep doing `make(stream)` on fresh connections (kit.flood)."""
    closed: list[bool] = []

    async def negotiated(s) -> None:
        await select_noise(s)
        await make(s)

    try:
        await flood(node, started, negotiated, expect=expect, count=count, close_within=close_within,
                    source_base=10, closed=closed)
    finally:
        assert all(closed), f"{closed.count(False)} of {len(closed)} offenders not closed"


def with_payload(fn):
    async def make(s) -> None:
        await RawNoise(s).handshake(fn)
    return make


@pytest.mark.anyio
@pytest.mark.parametrize("name,fn,expect", [
    ("bad signature", bad_signature, "signature invalid"),
    ("unknown key type", unknown_key_type, "noise handshake"),
    ("RSA 9000 bits", huge_rsa, "8192"),
    ("invalid protobuf", invalid_protobuf, "invalid noise handshake payload"),
])
async def test_bad_identity_payload(node, honest, go_binary, name, fn, expect) -> None:
    await run_case(f"noise {name}", node, lambda ev: offend(node, ev, with_payload(fn), expect=expect),
                   honest_probes(node, honest, go_binary), rounds=1)


@pytest.mark.anyio
async def test_truncated_handshake_message(node, honest, go_binary) -> None:
    async def make(s) -> None:
        await s.send(b"\x00\x20" + os.urandom(10))  # msg1 announces 32 bytes, 10 come, then EOF
        await s.send_eof()
    await run_case("noise truncated msg1", node,
                   lambda ev: offend(node, ev, make, expect="noise handshake"),
                   honest_probes(node, honest, go_binary), rounds=1)


@pytest.mark.anyio
async def test_oversized_handshake_message(node, honest, go_binary) -> None:
    """msg3 as the biggest frame there is (65535 bytes of noise): authentication fails."""
    async def make(s) -> None:
        raw = RawNoise(s)
        await raw.send_msg1()
        await raw.read_msg2()
        await s.send(b"\xff\xff" + os.urandom(65535))
    await run_case("noise oversized msg3", node,
                   lambda ev: offend(node, ev, make, expect="failed authentication"),
                   honest_probes(node, honest, go_binary), rounds=1)


@pytest.mark.anyio
async def test_handshake_never_finishes(node, honest, go_binary) -> None:
    """msg1, then silence: cut off by inbound_upgrade_timeout (3 s here, go's 15 s by default)."""
    async def make(s) -> None:
        await RawNoise(s).send_msg1()
    await run_case("noise handshake never finishes", node,
                   lambda ev: offend(node, ev, make, expect="timed out after", close_within=5.0),
                   honest_probes(node, honest, go_binary), rounds=3)


async def _established(s) -> RawNoise:
    raw = RawNoise(s)
    await raw.handshake(lambda pub: honest_payload(PrivateKey.generate(), pub))
    return raw


@pytest.mark.anyio
async def test_flipped_ciphertext_bit(node, honest, go_binary) -> None:
    async def make(s) -> None:
        raw = await _established(s)
        assert raw.transport is not None
        frame = bytearray(raw.transport.encrypt(yamux_frame(2, 1, 0, 7)))  # a ping, then a flip
        frame[5] ^= 0x01
        await s.send(bytes(frame))
    await run_case("noise flipped bit after handshake", node,
                   lambda ev: offend(node, ev, make, expect="failed authentication"),
                   honest_probes(node, honest, go_binary), rounds=1)


@pytest.mark.anyio
async def test_bad_transport_frames(node, honest, go_binary) -> None:
    """After the handshake: a frame too short to hold a tag, and a truncated frame then EOF."""
    async def too_short(s) -> None:
        await _established(s)
        await s.send(b"\x00\x05hello")

    async def truncated(s) -> None:
        raw = await _established(s)
        assert raw.transport is not None
        frame = bytes(raw.transport.encrypt(yamux_frame(2, 1, 0, 9)))
        await s.send(frame[:-3])
        await s.send_eof()

    await run_case("noise frame shorter than a tag", node,
                   lambda ev: offend(node, ev, too_short, expect="cannot be authentic"),
                   honest_probes(node, honest, go_binary), rounds=1)
    await run_case("noise truncated transport frame", node,
                   lambda ev: offend(node, ev, truncated, expect="middle of a noise frame"),
                   honest_probes(node, honest, go_binary), rounds=1)


def test_peer_id_mismatch_cli(tmp_path: Path) -> None:
    """The node as dialer: a listener proving another identity than the /p2p/ part of the address
    gets no msg3 and the CLI says so in one JSON line, exit 1, no traceback."""
    async def main() -> tuple[dict, bytes]:
        impostor = PrivateKey.generate()
        expected = PeerId.from_public_key(PrivateKey.generate().public_key)
        seen = bytearray()
        done = anyio.Event()

        async def serve(sock) -> None:
            from p2p.streams import BufferedStream
            from kit import ms_message, read_ms
            s = BufferedStream(sock)
            await s.send(ms_message("/multistream/1.0.0"))
            assert await read_ms(s) == "/multistream/1.0.0"
            assert await read_ms(s) == "/noise"
            await s.send(ms_message("/noise"))
            hs = NoiseHandshake(impostor, initiator=False)
            with anyio.fail_after(10):
                while not hs.phase.name == "AWAIT_MSG3":
                    hs.receive_data(await s.receive(65536))
                await s.send(hs.data_to_send())
                try:
                    while True:
                        seen.extend(await s.receive(65536))
                except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                    pass
            done.set()

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            cmd = [sys.executable, "-m", "p2p", "ping", f"/ip4/127.0.0.1/tcp/{port}/p2p/{expected}",
                   "--timeout", "10"]
            proc = await anyio.run_process(cmd, cwd=REPO, check=False)
            with anyio.fail_after(10):
                await done.wait()
            tg.cancel_scope.cancel()
        out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        assert proc.returncode == 1, proc
        assert b"Traceback" not in proc.stderr, proc.stderr
        return out, bytes(seen)

    out, seen = anyio.run(main)
    assert "mismatch" in out["error"] or str(out["error"]).startswith("peer id"), out
    assert seen == b"", f"the dialer sent {len(seen)} bytes after msg2 (msg3 must not be sent)"
