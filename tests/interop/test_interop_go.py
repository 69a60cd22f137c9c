"""Our stack against real go-libp2p v0.36.3 (the gopeer test program), in both directions.

The matrix: every key type on each side; go's default security order (TLS first: we answer `na`)
and masa's (Noise first); early muxer negotiation on and off on either side; echo of 1 MiB and
64 MiB; 32 concurrent streams; half-close and reset from either side; ping; identify both ways;
a peer-ID mismatch refused. Our side runs in-process (asyncio) while go runs as a subprocess; go's
one-shot commands run in a worker thread so our host keeps serving meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import anyio
import pytest

from gopeer import GoPeer, GoPeerError, run_gopeer
from p2p.protocols.echo import echo_handler, echo_roundtrip
from p2p.config import HostConfig
from p2p.errors import ConnectionClosed, PeerIdMismatch, StreamReset
from p2p.host import Host
from p2p.identity import PeerId, PrivateKey, parse_key_type

pytestmark = pytest.mark.anyio

KEY_TYPES = ["ed25519", "secp256k1", "ecdsa", "rsa"]
ECHO = "/echo/1.0.0"


@pytest.fixture
def anyio_backend():
    return "asyncio"  # the driver tests cover trio; interop runs once per case


async def go(gopeer_bin, *args: str, timeout: float = 60.0) -> dict:
    return await anyio.to_thread.run_sync(
        lambda: run_gopeer(*args, timeout=timeout, binary=gopeer_bin)
    )


def our_host(key_type: str = "ed25519", early: bool = True) -> Host:
    return Host(PrivateKey.generate(parse_key_type(key_type)), HostConfig(early_muxer_negotiation=early))


# ---- we dial go ------------------------------------------------------------------------------


@pytest.mark.parametrize("ours", KEY_TYPES)
@pytest.mark.parametrize("theirs", KEY_TYPES)
async def test_we_dial_go_all_key_types(start_gopeer: Callable[..., GoPeer], ours, theirs):
    peer = start_gopeer("--echo", "--key-type", theirs)
    with anyio.fail_after(60):
        async with our_host(ours) as host:
            pid = await host.connect(peer.addr)
            assert str(pid) == peer.peer_id
            assert await echo_roundtrip(host, pid, b"interop" * 100) == b"interop" * 100
            info = await host.identify(pid)
            assert ECHO in info.protocols and "/ipfs/id/1.0.0" in info.protocols
            assert info.agent_version.startswith("gopeer")


@pytest.mark.parametrize("go_early", [True, False])
@pytest.mark.parametrize("our_early", [True, False])
@pytest.mark.parametrize("security", ["noise-first", "tls-first"])
async def test_we_dial_go_muxer_negotiation(start_gopeer, go_early, our_early, security):
    args = ["--echo", "--security", security] + ([] if go_early else ["--no-early-muxer"])
    peer = start_gopeer(*args)
    with anyio.fail_after(60):
        async with our_host(early=our_early) as host:
            pid = await host.connect(peer.addr)
            conn = host.connection(pid)
            assert conn is not None and conn.muxed.early_muxer is (go_early and our_early)
            assert await echo_roundtrip(host, pid, b"m" * 70000) == b"m" * 70000


@pytest.mark.parametrize("size", [1 << 20, 64 << 20])
async def test_we_dial_go_echo_large(start_gopeer, size):
    peer = start_gopeer("--echo")
    payload = os.urandom(size)
    with anyio.fail_after(120):
        async with our_host() as host:
            pid = await host.connect(peer.addr)
            assert await echo_roundtrip(host, pid, payload) == payload


async def test_we_dial_go_32_concurrent_streams(start_gopeer):
    peer = start_gopeer("--echo")
    payloads = [os.urandom(128 * 1024) for _ in range(32)]
    results: list[bytes | None] = [None] * 32
    with anyio.fail_after(60):
        async with our_host() as host:
            pid = await host.connect(peer.addr)

            async def one(i: int) -> None:
                results[i] = await echo_roundtrip(host, pid, payloads[i])

            async with anyio.create_task_group() as tg:
                for i in range(32):
                    tg.start_soon(one, i)
    assert results == payloads


async def test_we_dial_go_ping_halfclose_reset(start_gopeer):
    peer = start_gopeer("--echo")
    with anyio.fail_after(60):
        async with our_host("secp256k1") as host:
            pid = await host.connect(peer.addr)
            rtts = await host.ping(pid, 3)
            assert len(rtts) == 3
            # half-close from our side: go reads to EOF, then answers on the same stream
            s = await host.new_stream(pid, ["/test/halfclose/1.0.0"])
            await s.send(b"z" * 12345)
            await s.send_eof()
            assert await s.receive_until_eof(1000) == b"got 12345 bytes"
            # reset from go's side: our read fails with a remote reset
            s = await host.new_stream(pid, ["/test/reset/1.0.0"])
            await s.send(b"x")
            with pytest.raises(StreamReset) as info:
                while True:
                    await s.receive(100)
            assert info.value.remote
            # reset from our side: the go echo handler sees it (logged), connection survives
            s = await host.new_stream(pid, [ECHO])
            await s.send(b"abc")
            assert await s.receive_exactly(3) == b"abc"
            await s.reset()
            assert len(await host.ping(pid)) == 1


async def test_we_dial_go_peer_id_mismatch(start_gopeer):
    peer = start_gopeer()
    wrong = PeerId.from_public_key(PrivateKey.generate().public_key)
    addr = peer.addr.rsplit("/p2p/", 1)[0] + f"/p2p/{wrong}"
    with anyio.fail_after(30):
        async with our_host() as host:
            with pytest.raises(PeerIdMismatch) as info:
                await host.connect(addr)
            assert str(info.value.actual) == peer.peer_id


# ---- go dials us -----------------------------------------------------------------------------


async def serve_ours(host: Host) -> str:
    host.set_stream_handler(ECHO, echo_handler)
    await host.listen("/ip4/127.0.0.1/tcp/0")
    return host.p2p_addrs()[0]


@pytest.mark.parametrize("ours", KEY_TYPES)
@pytest.mark.parametrize("theirs", KEY_TYPES)
async def test_go_dials_us_all_key_types(gopeer_bin, ours, theirs):
    with anyio.fail_after(60):
        async with our_host(ours) as host:
            addr = await serve_ours(host)
            res = await go(gopeer_bin, "echo", addr, "--size", "100000", "--key-type", theirs)
            assert res["ok"] is True and res["bytes"] == 100000
            # go identified us: our protocols and our key are what it stored
            ident = await go(gopeer_bin, "identify", addr, "--key-type", theirs)
            assert ident["peer_id"] == str(host.peer_id)
            assert ECHO in ident["protocols"] and "/ipfs/ping/1.0.0" in ident["protocols"]
            assert ident["public_key_hex"] == host.identity.public_key.to_protobuf().hex()
            assert ident["observed_addr"].startswith("/ip4/127.0.0.1/tcp/")


@pytest.mark.parametrize("go_early", [True, False])
@pytest.mark.parametrize("our_early", [True, False])
@pytest.mark.parametrize("security", ["noise-first", "tls-first"])
async def test_go_dials_us_security_and_muxer(gopeer_bin, go_early, our_early, security):
    with anyio.fail_after(60):
        async with our_host(early=our_early) as host:
            addr = await serve_ours(host)
            args = ["echo", addr, "--size", "70000", "--security", security]
            res = await go(gopeer_bin, *args, *([] if go_early else ["--no-early-muxer"]))
            assert res["ok"] is True
            peers = host.connected_peers() or []
            # the connection may already be gone (go closed it); check what we negotiated when present
            for p in peers:
                assert host.connection(p).muxed.early_muxer is (go_early and our_early)


async def test_go_dials_us_echo_ping_halfclose_reset(gopeer_bin):
    reset_seen = anyio.Event()
    ended_by: list[BaseException] = []

    async def victim(stream) -> None:
        # echo, then see the stream killed: go resets it and exits at once; go dials with
        # SO_LINGER=0, so the TCP RST may overtake the yamux RST (both kill the stream).
        try:
            while True:
                await stream.send(await stream.receive(100))
        except (StreamReset, ConnectionClosed) as exc:
            ended_by.append(exc)
            reset_seen.set()

    async def halfclose(stream) -> None:
        data = await stream.receive_until_eof(1 << 24)
        await stream.send(f"got {len(data)} bytes".encode())
        await stream.aclose()

    with anyio.fail_after(120):
        async with our_host("secp256k1") as host:
            host.set_stream_handler("/test/halfclose/1.0.0", halfclose)
            addr = await serve_ours(host)
            res = await go(gopeer_bin, "echo", addr, "--size", str(1 << 20))
            assert res["ok"] and res["bytes"] == 1 << 20
            res = await go(gopeer_bin, "echo", addr, "--size", str(64 << 20), timeout=120)
            assert res["ok"] and res["bytes"] == 64 << 20
            res = await go(gopeer_bin, "echo", addr, "--size", "65536", "--streams", "32")
            assert res["ok"] and res["bytes"] == 32 * 65536
            res = await go(gopeer_bin, "ping", addr, "--count", "3")
            assert len(res["rtt_ms"]) == 3 and res["peer_id"] == str(host.peer_id)
            res = await go(gopeer_bin, "halfclose", addr, "--size", "5000")
            assert res["reply"] == "got 5000 bytes"
            # go resets an echo stream of ours after reading the echo back
            res = await go(gopeer_bin, "reset", addr)
            host.set_stream_handler(ECHO, victim)
            res = await go(gopeer_bin, "reset", addr)
            assert res["echoed"] == "reset me" and res["reset"] is True
            with anyio.fail_after(10):
                await reset_seen.wait()
            assert not isinstance(ended_by[0], StreamReset) or ended_by[0].remote


async def test_go_dials_wrong_peer_id(gopeer_bin):
    with anyio.fail_after(30):
        async with our_host() as host:
            addr = await serve_ours(host)
            wrong = PeerId.from_public_key(PrivateKey.generate().public_key)
            bad = addr.rsplit("/p2p/", 1)[0] + f"/p2p/{wrong}"
            with pytest.raises(GoPeerError) as info:
                await go(gopeer_bin, "ping", bad)
            assert info.value.returncode == 1
            assert f"peer id mismatch: expected {wrong}" in info.value.result["error"]
            assert str(host.peer_id) in info.value.result["error"]


# ---- the conformance CLI against go --------------------------------------------------------


def run_cli(*args: str, timeout: float = 120.0) -> dict:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "p2p", *args], capture_output=True, text=True,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"no output; stderr:\n{proc.stderr}"
    out = json.loads(lines[-1])
    out["_rc"] = proc.returncode
    return out


def test_cli_against_go(start_gopeer):
    peer = start_gopeer("--echo", "--key-type", "secp256k1")
    res = run_cli("ping", peer.addr, "--count", "2")
    assert res["_rc"] == 0 and res["peer_id"] == peer.peer_id and len(res["rtt_ms"]) == 2
    res = run_cli("echo", peer.addr, "--size", str(1 << 20), "--streams", "4")
    assert res["_rc"] == 0 and res["ok"] is True and res["bytes"] == 4 << 20
    res = run_cli("identify", peer.addr)
    assert res["_rc"] == 0 and res["public_key_type"] == "Secp256k1" and ECHO in res["protocols"]
    wrong = PeerId.from_public_key(PrivateKey.generate().public_key)
    res = run_cli("ping", peer.addr.rsplit("/p2p/", 1)[0] + f"/p2p/{wrong}")
    assert res["_rc"] == 1 and "peer id mismatch" in res["error"]
