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

from go_exchanges import (ECHO, KEY_TYPES, echo_32_concurrent_streams, go, go_dials_a_wrong_peer_id,
                          go_echoes_pings_halfcloses_resets, go_identifies_us,
                          ping_halfclose_reset)
from gopeer import GoPeer
from p2p.protocols.echo import echo_handler, echo_roundtrip
from p2p.config import HostConfig
from p2p.errors import PeerIdMismatch
from p2p.host import Host
from p2p.identity import PeerId, PrivateKey, parse_key_type

pytestmark = pytest.mark.anyio


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
    with anyio.fail_after(60):
        async with our_host() as host:
            await echo_32_concurrent_streams(host, await host.connect(peer.addr))


async def test_we_dial_go_ping_halfclose_reset(start_gopeer):
    peer = start_gopeer("--echo")
    with anyio.fail_after(60):
        async with our_host("secp256k1") as host:
            await ping_halfclose_reset(host, await host.connect(peer.addr))


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
            observed = await go_identifies_us(gopeer_bin, host, addr, theirs)
            assert observed.startswith("/ip4/127.0.0.1/tcp/")


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
    with anyio.fail_after(120):
        async with our_host("secp256k1") as host:
            addr = await serve_ours(host)
            await go_echoes_pings_halfcloses_resets(gopeer_bin, host, addr, big_echo_timeout=30)


async def test_go_dials_wrong_peer_id(gopeer_bin):
    with anyio.fail_after(30):
        async with our_host() as host:
            addr = await serve_ours(host)
            wrong, error = await go_dials_a_wrong_peer_id(gopeer_bin, addr)
            assert f"peer id mismatch: expected {wrong}" in error
            assert str(host.peer_id) in error


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
