"""Our stack against real go-libp2p over QUIC v1 (`/udp/PORT/quic-v1`), in both directions.

Go as the dialler is gopeer (go-libp2p v0.36.3, masa's version). Go as the listener is goquic
(go-libp2p v0.46.0): v0.36.3's quic-go (v0.45/v0.46) built with this machine's Go 1.26 panics on the
first inbound QUIC handshake (quic-go#5572, fixed in v0.57.1); the QUIC v1 + libp2p TLS wire is the
same. js-libp2p has no QUIC in Node.js, so there is no js column here.

The matrix: all four key types on both sides, echo of 1 MiB and 64 MiB, 32 concurrent streams,
half-close and reset both ways, ping, identify both ways, a peer-ID mismatch refused both ways, the
masa worker protocol both ways, and one Host listening on TCP and QUIC reached by go over each.
"""

from __future__ import annotations

import os

import anyio
import pytest

from go_exchanges import (ECHO, KEY_TYPES, echo_32_concurrent_streams, go, go_dials_a_wrong_peer_id,
                          go_echoes_pings_halfcloses_resets, go_identifies_us,
                          ping_halfclose_reset)
from gopeer import GoPeer, run_gopeer
from oracle.handlers import handle_test
from oracle.node import NodeConfig, OracleNode
from p2p.errors import P2PError, PeerIdMismatch
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey, parse_key_type
from p2p.protocols.echo import echo_handler, echo_roundtrip

pytestmark = pytest.mark.anyio

QUIC_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1"


def our_host(key_type: str = "ed25519") -> Host:
    return Host(PrivateKey.generate(parse_key_type(key_type)))


def quic_addr(peer: GoPeer) -> str:
    addr = peer.addr
    assert "/udp/" in addr and "/quic-v1/p2p/" in addr, addr
    return addr


# ---- we dial go ------------------------------------------------------------------------------


@pytest.mark.parametrize("ours", KEY_TYPES)
@pytest.mark.parametrize("theirs", KEY_TYPES)
async def test_we_dial_go_all_key_types(start_goquic, ours, theirs):
    peer = start_goquic("--echo", "--key-type", theirs)
    with anyio.fail_after(60):
        async with our_host(ours) as host:
            pid = await host.connect(quic_addr(peer))
            assert str(pid) == peer.peer_id
            assert host.connection(pid).remote_addr.protocols()[1].name == "udp"
            assert await echo_roundtrip(host, pid, b"quic" * 1000) == b"quic" * 1000
            info = await host.identify(pid)
            assert ECHO in info.protocols and "/ipfs/id/1.0.0" in info.protocols
            assert info.agent_version.startswith("goquic")


@pytest.mark.parametrize("size", [1 << 20, 64 << 20])
async def test_we_dial_go_echo_large(start_goquic, size):
    peer = start_goquic("--echo")
    payload = os.urandom(size)
    with anyio.fail_after(240):
        async with our_host() as host:
            pid = await host.connect(quic_addr(peer))
            # on loopback we send as large datagrams as go accepts (its max_udp_payload_size)
            assert host.connection(pid).muxed.quic.datagram_size == 1452
            assert await echo_roundtrip(host, pid, payload) == payload


async def test_we_dial_go_32_concurrent_streams(start_goquic):
    peer = start_goquic("--echo")
    with anyio.fail_after(120):
        async with our_host() as host:
            await echo_32_concurrent_streams(host, await host.connect(quic_addr(peer)))


async def test_we_dial_go_ping_halfclose_reset(start_goquic):
    peer = start_goquic("--echo")
    with anyio.fail_after(60):
        async with our_host("secp256k1") as host:
            await ping_halfclose_reset(host, await host.connect(quic_addr(peer)))


async def test_we_dial_go_peer_id_mismatch(start_goquic):
    peer = start_goquic()
    wrong = PeerId.from_public_key(PrivateKey.generate().public_key)
    addr = quic_addr(peer).rsplit("/p2p/", 1)[0] + f"/p2p/{wrong}"
    with anyio.fail_after(30):
        async with our_host() as host:
            with pytest.raises(PeerIdMismatch) as info:
                await host.connect(addr)
            assert str(info.value.actual) == peer.peer_id
            assert host.connected_peers() == []


async def test_go_worker_answers_our_distribute_work_over_quic(start_goquic):
    go_worker = start_goquic("--worker", "--key-type", "secp256k1")
    with anyio.fail_after(60):
        async with OracleNode(PrivateKey.generate(KeyType.Secp256k1),
                              NodeConfig(listen=(QUIC_LISTEN,)), handlers={}) as node:
            peer = await node.connect(quic_addr(go_worker))
            assert [str(p) for p in node.workers()] == [go_worker.peer_id]
            node.directory.add_worker(peer)  # a plain go worker announces no masa node data
            resp = await node.submit("test", b"over quic <&>")
            assert resp.error == "" and resp.data == "over quic <&>"
            assert resp.worker_peer_id == go_worker.peer_id


# ---- go dials us -----------------------------------------------------------------------------


async def serve_ours(host: Host, *listen: str) -> str:
    host.set_stream_handler(ECHO, echo_handler)
    await host.listen(*(listen or (QUIC_LISTEN,)))
    quic = [a for a in host.p2p_addrs() if "/quic-v1" in a]
    assert quic, host.p2p_addrs()
    return quic[0]


@pytest.mark.parametrize("ours", KEY_TYPES)
@pytest.mark.parametrize("theirs", KEY_TYPES)
async def test_go_dials_us_all_key_types(gopeer_bin, ours, theirs):
    with anyio.fail_after(60):
        async with our_host(ours) as host:
            addr = await serve_ours(host)
            observed = await go_identifies_us(gopeer_bin, host, addr, theirs)
            assert observed.startswith("/ip4/127.0.0.1/udp/") and observed.endswith("/quic-v1")


async def test_go_dials_us_echo_ping_halfclose_reset(gopeer_bin):
    with anyio.fail_after(300):
        async with our_host("secp256k1") as host:
            addr = await serve_ours(host)
            await go_echoes_pings_halfcloses_resets(gopeer_bin, host, addr, big_echo_timeout=220)


async def test_go_dials_wrong_peer_id(gopeer_bin):
    with anyio.fail_after(30):
        async with our_host() as host:
            addr = await serve_ours(host)
            _, error = await go_dials_a_wrong_peer_id(gopeer_bin, addr)
            assert f"but remote key matches {host.peer_id}" in error  # go's sec.ErrPeerIDMismatch
            assert host.connected_peers() == []


async def test_go_requester_uses_our_worker_over_quic(gopeer_bin):
    with anyio.fail_after(60):
        async with OracleNode(PrivateKey.generate(KeyType.Secp256k1),
                              NodeConfig(listen=(QUIC_LISTEN,)),
                              handlers={"test": handle_test}) as node:
            ours = [a for a in node.host.p2p_addrs() if "/quic-v1" in a][0]
            res = await go(gopeer_bin, "work", ours, "--type", "test", "--data", "<a&b>")
            assert res["raw"] == ('{"data":"\\u003ca\\u0026b\\u003e","workerPeerId":"%s"}'
                                  % node.host.peer_id)


async def test_one_host_on_tcp_and_quic_reached_over_each(gopeer_bin):
    with anyio.fail_after(60):
        async with our_host() as host:
            await serve_ours(host, "/ip4/127.0.0.1/tcp/0", QUIC_LISTEN)
            addrs = host.p2p_addrs()
            tcp = [a for a in addrs if "/tcp/" in a]
            quic = [a for a in addrs if "/quic-v1" in a]
            assert len(tcp) == 1 and len(quic) == 1
            for addr in (tcp[0], quic[0]):
                res = await go(gopeer_bin, "identify", addr)
                # identify advertises both listen addresses, whichever transport carried it
                listen = {a.rsplit("/p2p/", 1)[0] for a in res["listen_addrs"]}
                assert {tcp[0].rsplit("/p2p/", 1)[0], quic[0].rsplit("/p2p/", 1)[0]} <= listen
                assert res["observed_addr"].startswith("/ip4/127.0.0.1/" + (
                    "tcp/" if addr is tcp[0] else "udp/"))


# ---- the command lines over QUIC ---------------------------------------------------------------


def run_cli(module: str, *args: str, timeout: float = 120.0) -> dict:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"no output; stderr:\n{proc.stderr}"
    out = json.loads(lines[-1])
    out["_rc"] = proc.returncode
    return out


def test_p2p_cli_dials_go_over_quic(start_goquic):
    peer = start_goquic("--echo", "--key-type", "rsa")
    addr = quic_addr(peer)
    res = run_cli("p2p", "ping", addr, "--count", "2")
    assert res["_rc"] == 0 and res["peer_id"] == peer.peer_id and len(res["rtt_ms"]) == 2
    res = run_cli("p2p", "echo", addr, "--size", str(1 << 20), "--streams", "4")
    assert res["_rc"] == 0 and res["ok"] is True and res["bytes"] == 4 << 20
    res = run_cli("p2p", "identify", addr)
    assert res["_rc"] == 0 and res["public_key_type"] == "RSA" and ECHO in res["protocols"]


def test_oracle_node_listens_on_tcp_and_quic_by_default(gopeer_bin, tmp_path):
    import json
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "oracle", "--log-level", "WARNING", "node",
                             "--key-file", str(tmp_path / "node.key")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        addrs = info["addrs"]
        assert any("/tcp/" in a for a in addrs) and any("/udp/" in a and "/quic-v1/" in a
                                                      for a in addrs), addrs
        quic = next(a for a in addrs if "/quic-v1/" in a)
        res = run_gopeer("work", quic, "--type", "test", "--data", "q", timeout=60,
                         binary=gopeer_bin)
        assert res["response"]["data"] == "q"
        assert res["response"]["workerPeerId"] == info["peer_id"]
        # and our own requester command reaches it over QUIC
        res = run_cli("oracle", "work", "--type", "test", "--data", "via quic", "--peer", quic)
        assert res["_rc"] == 0 and res["data"] == "via quic", res
        assert res["workerPeerId"] == info["peer_id"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_p2p_serve_on_quic_answers_go(gopeer_bin):
    import json
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "p2p", "serve", "--echo", "--key-type", "ecdsa",
                             "--listen", QUIC_LISTEN, "--listen", "/ip6/::1/udp/0/quic-v1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        addrs = [a for a in info["addrs"] if "/quic-v1/" in a]
        assert len(addrs) == 2 and any(a.startswith("/ip6/::1/") for a in addrs), info
        for addr in addrs:
            res = run_gopeer("echo", addr, "--size", "200000", timeout=60, binary=gopeer_bin)
            assert res["ok"] is True and res["bytes"] == 200000
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("idle", [False, True])
async def test_go_restarted_on_the_same_port_resets_our_connection(start_goquic, tmp_path, idle):
    """A go node killed and restarted with the same key on the same port holds no state for our
    connection; quic-go answers our next packet over 42 bytes with a stateless reset, its reset key
    derived from the identity key: a stream write, or (idle) our padded keep-alive PING. The
    connection ends at once and the next stream dials the new process. aioquic ignores stateless
    resets by itself: the connection used to hang until the idle timeout (~35 s after a real masa
    node restarted)."""
    import signal
    import time

    key_file = tmp_path / "go.key"
    key_file.write_bytes(PrivateKey.generate(KeyType.Ed25519).to_protobuf())
    first = start_goquic("--echo", "--key-file", str(key_file))
    port = quic_addr(first).split("/udp/")[1].split("/")[0]
    with anyio.fail_after(60):
        async with our_host() as host:
            pid = await host.connect(quic_addr(first))
            assert await echo_roundtrip(host, pid, b"before") == b"before"
            conn = host.connection(pid)
            os.kill(first.pid, signal.SIGKILL)  # no CONNECTION_CLOSE, as a crash or masa's exit
            await anyio.to_thread.run_sync(first.stop)
            second = await anyio.to_thread.run_sync(lambda: start_goquic(
                "--echo", "--key-file", str(key_file), "--listen", f"/ip4/127.0.0.1/udp/{port}/quic-v1"))
            assert second.peer_id == first.peer_id
            started = time.monotonic()
            if idle:
                conn.muxed._keepalive = 0.5  # go's and ours: 15 s, scaled down
                conn.muxed._kick()
            else:
                # ConnectionClosed: at the first write of a lazy stream, or at new_stream's own
                # proposal when identify had not yet told us go serves ECHO (seen once under load)
                with pytest.raises(P2PError):
                    stream = await host.new_stream(pid, [ECHO])
                    await stream.send(b"x" * 200)
                    await stream.receive(200)
            while host.connection(pid) is conn:
                await anyio.sleep(0.01)
            assert time.monotonic() - started < 5, "ended by the stateless reset, not the idle timeout"
            assert "stateless reset" in str(conn.muxed.error)
            assert await echo_roundtrip(host, pid, b"after") == b"after"  # the new process
