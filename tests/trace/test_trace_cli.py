"""`--trace`, `--trace-format`, `--trace-file` on both command lines, as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from linequeue import stdout_lines

REPO = Path(__file__).resolve().parents[2]


def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("PRIVATE_KEY", "MASA_PRIV_KEY_FILE")}
    out.update(PYTHONPATH=str(REPO), HOME=str(tmp_path / "home"),
               MASA_PRIV_KEY_FILE=str(tmp_path / "node_key"))
    return out


class Server:
    """A long-running command (`p2p serve`, `oracle node`) whose first stdout line is JSON."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env(tmp_path),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.lines = stdout_lines(self.proc)

    def first_json(self) -> dict:
        line = self.lines.get(timeout=30)
        assert line, f"exited with {self.proc.poll()} before printing its address"
        return json.loads(line)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=15)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def servers():
    started: list[Server] = []
    yield started
    for s in started:
        s.kill()


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env(tmp_path),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_p2p_commands_trace(tmp_path, servers):
    server_trace = tmp_path / "serve.jsonl"
    server = Server(tmp_path, "p2p", "serve", "--echo", "--trace-format", "jsonl",
                    "--trace-file", str(server_trace))
    servers.append(server)
    addr = server.first_json()["addrs"][0]

    # --trace alone: readable, on stderr; stdout keeps its one JSON result
    ping = run(tmp_path, "p2p", "ping", addr, "--count", "2", "--trace")
    assert ping.returncode == 0, ping.stderr
    assert len(json.loads(ping.stdout)["rtt_ms"]) == 2
    assert " → tcp data length=62" in ping.stderr  # header, /noise, Noise message 1
    assert "noise handshake message=2" in ping.stderr and "ping[" in ping.stderr
    assert "\x1b[" not in ping.stderr  # not a terminal: no colour

    # --trace-file alone: readable, into the file
    echo_trace = tmp_path / "echo.txt"
    echo = run(tmp_path, "p2p", "echo", addr, "--size", "1000", "--trace-file", str(echo_trace))
    assert echo.returncode == 0 and json.loads(echo.stdout)["ok"] is True
    assert 'app[' in echo_trace.read_text() and echo.stderr == ""

    # --trace-format alone: JSON lines on stderr
    ident = run(tmp_path, "p2p", "identify", addr, "--trace-format", "jsonl")
    assert ident.returncode == 0
    records = [json.loads(line) for line in ident.stderr.splitlines()]
    assert {r["layer"] for r in records} >= {"tcp", "multistream", "noise", "yamux", "identify"}

    server.stop()
    served = jsonl(server_trace)
    directions = [r["direction"] for r in served if r["event"] == "open"]
    assert directions == ["inbound"] * 3
    assert {r["conn"] for r in served} == {"c1", "c2", "c3"}
    assert [r["protocol"] for r in served if r["layer"] == "app"] and all(
        r["protocol"] == "/echo/1.0.0" for r in served if r["layer"] == "app")


def test_oracle_work_and_node_trace_the_worker_protocol(tmp_path, servers):
    node_trace = tmp_path / "node.jsonl"
    node = Server(tmp_path, "oracle", "node", "--worker", "test", "--key-type", "ed25519",
                  "--trace-format", "jsonl", "--trace-file", str(node_trace))
    servers.append(node)
    started = node.first_json()
    addr, node_id = started["addrs"][0], started["peer_id"]
    work_trace = tmp_path / "work.jsonl"
    work = run(tmp_path, "oracle", "work", "--type", "test", "--data", "hello", "--peer", addr,
               "--timeout", "30", "--trace-format", "jsonl", "--trace-file", str(work_trace))
    assert work.returncode == 0, work.stdout + work.stderr
    assert json.loads(work.stdout)["data"] == "hello"
    frames = [r for r in jsonl(work_trace) if r["layer"] == "worker"]
    request, response = frames
    assert (request["dir"], request["role"], request["json"]["workType"]) == ("out", "request", "test")
    assert request["json"]["data"] == "aGVsbG8="  # Go's encoding/json writes []byte as base64
    assert int(request["prefix"], 16) == request["length"]
    assert (response["dir"], response["role"], response["json"]["data"]) == ("in", "response", "hello")
    peers_trace = tmp_path / "peers.jsonl"
    peers = run(tmp_path, "oracle", "peers", "--peer", addr, "--wait", "3", "--trace-format", "jsonl",
                "--trace-file", str(peers_trace))
    assert peers.returncode == 0, peers.stdout + peers.stderr
    announced = [r for r in jsonl(peers_trace) if r["layer"] == "membership"]
    assert any(r["dir"] == "in" and r["json"].get("peerId") == node_id for r in announced
               if isinstance(r.get("json"), dict))
    node.stop()
    served = [r for r in jsonl(node_trace) if r["layer"] == "worker"]
    assert [(r["dir"], r["role"]) for r in served] == [("in", "request"), ("out", "response")]


def test_an_unwritable_trace_file_is_an_expected_error(tmp_path):
    bad = tmp_path / "missing" / "trace.jsonl"
    out = run(tmp_path, "p2p", "ping", "/ip4/127.0.0.1/tcp/1", "--trace-file", str(bad))
    assert out.returncode == 1 and "error" in json.loads(out.stdout)
    out = run(tmp_path, "oracle", "work", "--type", "x", "--trace-file", str(bad))
    assert out.returncode == 1 and "error" in json.loads(out.stdout)
