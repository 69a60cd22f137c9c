"""go peer vs go peer: proves the gopeer program and its harness before our stack uses them.

Every command the Python-side interop tests will rely on is exercised here between two go
processes, with expectations taken from go-libp2p and masa-oracle behaviour (byte-exact
worker responses, key-type prefixes of the key protobuf, negotiated security), not from the
program's own output alone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import base58
import pytest

import gopeer
from gopeer import CACHE_DIR, GoPeer, GoPeerError, build_gopeer, run_gopeer, source_digest

# First bytes of the canonical PublicKey protobuf: field 1 (Type) = 08 <type>, then field 2 tag
# 0x12 (libp2p peer-id spec; RSA=0, Ed25519=1, Secp256k1=2, ECDSA=3).
KEY_PB_PREFIX = {"rsa": "0800", "ed25519": "08011220", "secp256k1": "08021221", "ecdsa": "0803"}
# base58btc peer-ID prefixes: identity multihash of 36 bytes (ed25519) and 37 bytes
# (secp256k1), sha2-256 multihash (rsa, ecdsa).
PEER_ID_PREFIX = {"ed25519": "12D3KooW", "secp256k1": "16Uiu2HA", "rsa": "Qm", "ecdsa": "Qm"}


def peer_id_from_pubkey_pb(pb: bytes) -> str:
    """libp2p peer-id spec: identity multihash when the key protobuf is <= 42 bytes."""
    if len(pb) <= 42:
        mh = bytes([0x00, len(pb)]) + pb
    else:
        mh = bytes([0x12, 0x20]) + hashlib.sha256(pb).digest()
    return base58.b58encode(mh).decode()


def wait_for_log(peer: GoPeer, needle: str, timeout: float = 10.0) -> str:
    """Poll the peer's stderr until ``needle`` shows up (an event, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        text = peer.stderr_text()
        if needle in text:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not logged within {timeout} s:\n{text}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def server(gopeer_bin: Path) -> Iterator[GoPeer]:
    """One go listener with echo and the masa worker protocol, shared by this module."""
    with GoPeer.serve("--echo", "--worker", binary=gopeer_bin) as peer:
        yield peer


# --- build and process control -------------------------------------------------------------

def test_build_is_cached_by_source_digest(gopeer_bin: Path) -> None:
    assert gopeer_bin == CACHE_DIR / source_digest() / "gopeer"
    assert os.access(gopeer_bin, os.X_OK)
    assert build_gopeer() == gopeer_bin


@pytest.mark.parametrize("program", ["gopeer", "goquic", "gomasa", "godht"])
def test_shared_go_code_is_part_of_every_programs_digest(program: str, tmp_path: Path) -> None:
    """A change to tests/interop/gokit (taken through `replace gokit => ../gokit`) must rebuild
    every Go program, or a test would run a binary built from the old shared code."""
    here = Path(gopeer.__file__).resolve().parent
    for folder in (program, "gokit"):
        shutil.copytree(here / folder, tmp_path / folder)
    src, shared = tmp_path / program, tmp_path / "gokit" / "handlers.go"
    assert "replace gokit => ../gokit" in (src / "go.mod").read_text()
    before = source_digest(src)
    assert source_digest(src) == before  # the digest depends on the sources only
    shared.write_text(shared.read_text() + "\n// changed\n")
    assert source_digest(src) != before


def test_a_rebuild_keeps_the_two_newest_other_builds(tmp_path: Path) -> None:
    """An A/B checkout of an older commit sharing the cache must not delete the binary another
    checkout (or a suite still running) uses: only builds older than the two newest others go."""
    cache = tmp_path / "cache"
    for age, digest in enumerate(["new", "b", "c", "d", "e"]):
        (cache / digest).mkdir(parents=True)
        (cache / digest / "gopeer").write_bytes(b"x")
        os.utime(cache / digest, (time.time() - 60 * age, time.time() - 60 * age))
    gopeer._prune_old_builds(keep=cache / "new", cache=cache)
    assert sorted(p.name for p in cache.iterdir()) == ["b", "c", "new"]


def test_build_failure_raises_with_go_output(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "go.mod").write_text("module broken\n\ngo 1.22\n")
    (src / "main.go").write_text("package main\n\nfunc main() { undefinedThing() }\n")
    monkeypatch.setattr(gopeer, "GOPEER_SRC", src)
    monkeypatch.setattr(gopeer, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(RuntimeError, match="undefined: undefinedThing"):
        build_gopeer(timeout=120)
    assert not any((tmp_path / "cache").rglob("gopeer*"))  # no half-built binary left behind


def test_serve_reports_its_listen_addresses(start_gopeer: Callable[..., GoPeer]) -> None:
    peer = start_gopeer("--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/tcp/0")
    assert peer.peer_id.startswith("12D3KooW")  # Ed25519 by default
    assert len(peer.addrs) == 2
    ports = set()
    for addr in peer.addrs:
        prefix, _, pid = addr.rpartition("/p2p/")
        assert pid == peer.peer_id
        assert prefix.startswith("/ip4/127.0.0.1/tcp/")
        ports.add(int(prefix.rsplit("/", 1)[1]))
    assert len(ports) == 2 and 0 not in ports
    assert peer.stop() == 0  # SIGTERM is a clean shutdown
    assert "shutting down" in peer.stderr_text()


def test_serve_failure_is_reported(gopeer_bin: Path) -> None:
    with pytest.raises(GoPeerError, match="unknown key type"):
        GoPeer.serve("--key-type", "dsa", binary=gopeer_bin)


def test_command_errors_raise_with_go_message(gopeer_bin: Path) -> None:
    with pytest.raises(GoPeerError) as info:
        run_gopeer("bogus", binary=gopeer_bin)
    assert info.value.returncode == 2
    assert info.value.result == {"error": 'unknown command "bogus"'}


def test_dial_to_stopped_peer_fails(start_gopeer: Callable[..., GoPeer]) -> None:
    peer = start_gopeer()
    peer.stop()
    with pytest.raises(GoPeerError, match="connect") as info:
        run_gopeer("ping", peer.addr, "--timeout", "5")
    assert info.value.returncode == 1


# --- ping, echo, half-close, reset ---------------------------------------------------------

def test_ping(server: GoPeer) -> None:
    res = run_gopeer("ping", server.addr, "--count", "4")
    assert res["peer_id"] == server.peer_id
    assert len(res["rtt_ms"]) == 4
    assert all(0 < rtt < 5000 for rtt in res["rtt_ms"])
    assert res["connect_ms"] > 0


def test_ping_reports_the_run_queue_wait_of_the_processes_it_is_given(server: GoPeer) -> None:
    """`--runq-pids` (the hostile kit's go probe): per process, the ms its threads waited for a
    CPU between the connect and the last pong, go's own as "go". Two busy processes pinned to one
    CPU take turns on it, so at every moment one of them waits: their two waits add up to about
    the window's length (a wait still under way at either end is not counted yet: a scheduler
    slice each, a few ms). Without the option, no such field."""
    assert "runq_wait_ms" not in run_gopeer("ping", server.addr, "--count", "1")
    cpu = min(os.sched_getaffinity(0))
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        for proc in busy:
            os.sched_setaffinity(proc.pid, {cpu})
        res = run_gopeer("ping", server.addr, "--count", "1000", "--runq-pids",
                         ",".join(str(proc.pid) for proc in busy))
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    window = res["connect_ms"] + sum(res["rtt_ms"])
    waited = res["runq_wait_ms"]
    assert set(waited) == {"go", *(str(proc.pid) for proc in busy)}, waited
    assert waited["go"] >= 0
    assert sum(waited[str(proc.pid)] for proc in busy) >= 0.5 * window, (waited, window)
    with pytest.raises(GoPeerError, match="runq-pids") as info:
        run_gopeer("ping", server.addr, "--runq-pids", "1,x")
    assert info.value.returncode == 2


@pytest.mark.parametrize(("size", "streams"), [(0, 1), (1, 1), (300_000, 1), (65_536, 32)])
def test_echo(server: GoPeer, size: int, streams: int) -> None:
    res = run_gopeer("echo", server.addr, "--size", str(size), "--streams", str(streams))
    assert res["ok"] is True
    assert res["bytes"] == size * streams
    assert res["streams"] == streams
    assert res["seconds"] > 0


def test_echo_needs_the_echo_protocol(start_gopeer: Callable[..., GoPeer]) -> None:
    peer = start_gopeer()  # no --echo
    with pytest.raises(GoPeerError, match="protocols not supported"):
        run_gopeer("echo", peer.addr, "--size", "10")


@pytest.mark.parametrize("size", [0, 12_345, 1_000_000])
def test_halfclose(server: GoPeer, size: int) -> None:
    res = run_gopeer("halfclose", server.addr, "--size", str(size))
    assert res["reply"] == f"got {size} bytes"
    assert res["ok"] is True


def test_reset_reaches_the_remote_handler(start_gopeer: Callable[..., GoPeer]) -> None:
    peer = start_gopeer("--echo")
    res = run_gopeer("reset", peer.addr)
    assert res == {"ok": True, "written": 8, "echoed": "reset me", "reset": True}
    log = wait_for_log(peer, "echo: ")
    assert "reset" in log.split("echo: ", 1)[1].splitlines()[0]


# --- identify, keys, security --------------------------------------------------------------

@pytest.mark.parametrize("key_type", ["ed25519", "secp256k1", "ecdsa", "rsa"])
def test_identify_reports_what_go_learned(start_gopeer: Callable[..., GoPeer], key_type: str) -> None:
    peer = start_gopeer("--echo", "--worker", "--env", "test", "--key-type", key_type)
    assert peer.peer_id.startswith(PEER_ID_PREFIX[key_type])
    res = run_gopeer("identify", peer.addr, "--key-type", key_type)
    assert res["peer_id"] == peer.peer_id
    assert res["protocols"] == [
        "/echo/1.0.0", "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0",
        "/masa/worker_protocol/v0.8.4-test", "/test/halfclose/1.0.0", "/test/reset/1.0.0",
    ]
    assert res["protocol_version"] == ""  # v0.36.3 sends an empty protocol version
    assert res["agent_version"].startswith("gopeer@")
    assert res["public_key_type"] == key_type
    assert res["public_key_hex"].startswith(KEY_PB_PREFIX[key_type])
    assert peer_id_from_pubkey_pb(bytes.fromhex(res["public_key_hex"])) == peer.peer_id
    assert res["listen_addrs"] == [a.rsplit("/p2p/", 1)[0] for a in peer.addrs]
    assert res["observed_addr"].startswith("/ip4/127.0.0.1/tcp/")
    assert res["signed_peer_record"] is True


def test_no_ping_hides_the_ping_protocol(start_gopeer: Callable[..., GoPeer]) -> None:
    peer = start_gopeer("--no-ping")
    res = run_gopeer("identify", peer.addr)
    assert "/ipfs/ping/1.0.0" not in res["protocols"]
    assert "/ipfs/id/1.0.0" in res["protocols"]
    with pytest.raises(GoPeerError, match="protocols not supported"):
        run_gopeer("ping", peer.addr, "--count", "1")


@pytest.mark.parametrize(
    ("server_sec", "client_sec", "expected"),
    [
        ("noise-first", "noise-first", "/noise"),
        ("noise-first", "tls-first", "/tls/1.0.0"),  # the dialer's order wins
        ("noise-only", "tls-first", "/noise"),  # listener says na to TLS, dialer falls back
        ("tls-first", "noise-only", "/noise"),
    ],
)
def test_security_order(start_gopeer: Callable[..., GoPeer], server_sec: str, client_sec: str,
                        expected: str) -> None:
    peer = start_gopeer("--echo", "--security", server_sec)
    res = run_gopeer("echo", peer.addr, "--size", "50000", "--security", client_sec)
    assert res["ok"] is True
    log = wait_for_log(peer, "connected ")
    assert f"({expected})" in log


@pytest.mark.parametrize(("server_flags", "client_flags"), [
    (["--no-early-muxer"], []),
    ([], ["--no-early-muxer"]),
    (["--no-early-muxer"], ["--no-early-muxer", "--security", "noise-only"]),
])
def test_without_early_muxer_negotiation(start_gopeer: Callable[..., GoPeer],
                                         server_flags: list[str], client_flags: list[str]) -> None:
    peer = start_gopeer("--echo", *server_flags)
    res = run_gopeer("echo", peer.addr, "--size", "100000", "--streams", "4", *client_flags)
    assert res["ok"] is True and res["bytes"] == 400_000


@pytest.mark.parametrize("key_type", ["secp256k1", "ed25519"])
@pytest.mark.parametrize("hex_text", [False, True])
def test_keygen_and_key_file(start_gopeer: Callable[..., GoPeer], tmp_path: Path,
                             key_type: str, hex_text: bool) -> None:
    path = tmp_path / "key"
    res = run_gopeer("keygen", "--key-type", key_type, "--out", str(path),
                     *(["--hex"] if hex_text else []))
    assert res["peer_id"].startswith(PEER_ID_PREFIX[key_type])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    pb = bytes.fromhex(raw.decode()) if hex_text else raw
    # PrivateKey protobuf: Type field then Data (secp256k1 private key: 32 bytes; ed25519: 64).
    assert pb[:4] == {"secp256k1": b"\x08\x02\x12\x20", "ed25519": b"\x08\x01\x12\x40"}[key_type]
    peer = start_gopeer("--key-file", str(path))
    assert peer.peer_id == res["peer_id"]
    # The same file also works as a dialer identity: the listener logs the dialer's peer id.
    other = start_gopeer()
    run_gopeer("ping", other.addr, "--count", "1", "--key-file", str(path))
    wait_for_log(other, f"connected {res['peer_id']} ")


# --- masa worker protocol ------------------------------------------------------------------

def test_work_test_handler_echoes_data_as_go_json(server: GoPeer) -> None:
    res = run_gopeer("work", server.addr, "--type", "test", "--data", "hi <&> \u00e9\u2028")
    # Go's encoding/json: <, >, & and U+2028 escaped, other non-ASCII raw, no spaces,
    # struct order (data, error, workerPeerId), empty fields omitted.
    assert res["raw"] == ('{"data":"hi \\u003c\\u0026\\u003e \u00e9\\u2028",'
                          f'"workerPeerId":"{server.peer_id}"}}')
    assert res["response"] == {"data": "hi <&> \u00e9\u2028", "workerPeerId": server.peer_id}
    assert res["protocol"] == "/masa/worker_protocol/v0.8.4"


def test_work_unknown_type(server: GoPeer) -> None:
    res = run_gopeer("work", server.addr, "--type", "nope", "--data", "x", "--request-id", "r-1")
    assert res["raw"] == f'{{"error":"work handler not found","workerPeerId":"{server.peer_id}"}}'


def test_work_protocol_follows_version_and_env(start_gopeer: Callable[..., GoPeer]) -> None:
    peer = start_gopeer("--worker", "--protocol-version", "v0.9.0", "--env", "dev")
    res = run_gopeer("work", peer.addr, "--type", "test", "--data", "ok",
                     "--protocol-version", "v0.9.0", "--env", "dev")
    assert res["protocol"] == "/masa/worker_protocol/v0.9.0-dev"
    assert res["response"]["data"] == "ok"
    with pytest.raises(GoPeerError, match="protocols not supported"):
        run_gopeer("work", peer.addr, "--type", "test", "--data", "ok")
