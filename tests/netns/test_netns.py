"""Three hosts in their own network namespaces on a private 10.77.0.0/24 that exists only inside
them (a bridge in a fourth, hub namespace; veth pairs to each host). A requester in A sends work;
as soon as it starts an attempt, the hub takes that worker's link down: the attempt must fail by the
response timeout, and DistributeWork must move to the other worker and succeed.

Needs root and `ip netns` (iproute2); skipped with the reason otherwise. Namespaces, links and
processes are removed even when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TAG = f"p2pt{os.getpid() % 100000}"
HUB = f"{TAG}hub"
HOSTS = {"a": "10.77.0.1", "b": "10.77.0.2", "c": "10.77.0.3"}
PORT = 4001
RESPONSE_TIMEOUT = 3.0  # netns_requester.RESPONSE_TIMEOUT


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def ns(host: str) -> str:
    return f"{TAG}{host}"


@pytest.fixture
def topology():
    reason = _why_not()
    if reason:
        if os.environ.get("CI"):  # CI runs as root: a netns test that cannot run there is a failure
            pytest.fail(f"netns test cannot run in CI: {reason}")
        print(f"netns test skipped: {reason}")
        pytest.skip(reason)
    made: list[str] = []
    try:
        ip("netns", "add", HUB)
        made.append(HUB)
        ip("-n", HUB, "link", "add", "br0", "type", "bridge")
        ip("-n", HUB, "link", "set", "br0", "up")
        for host, addr in HOSTS.items():
            ip("netns", "add", ns(host))
            made.append(ns(host))
            ip("-n", HUB, "link", "add", f"h{host}", "type", "veth", "peer", "name", "eth0",
               "netns", ns(host))
            ip("-n", HUB, "link", "set", f"h{host}", "master", "br0")
            ip("-n", HUB, "link", "set", f"h{host}", "up")
            ip("-n", ns(host), "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", ns(host), "link", "set", "eth0", "up")
            ip("-n", ns(host), "link", "set", "lo", "up")
        yield
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def spawn(host: str, args: list[str], log: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    with open(log, "w") as err:
        return subprocess.Popen(["ip", "netns", "exec", ns(host), sys.executable, *args], cwd=ROOT,
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, text=True)


def read_json(proc: subprocess.Popen[str], log: Path) -> dict:
    line = proc.stdout.readline()  # type: ignore[union-attr]  (bounded by the test timeout)
    if not line:
        raise AssertionError(f"process ended early; its log:\n{log.read_text()[-3000:]}")
    return json.loads(line)


@pytest.mark.timeout(120)
def test_link_down_mid_transfer_fails_by_timeout_and_work_moves_on(topology, tmp_path):
    procs: list[subprocess.Popen[str]] = []
    try:
        peers: dict[str, str] = {}
        for host in ("b", "c"):
            log = tmp_path / f"{host}.log"
            proc = spawn(host, ["-m", "oracle", "--log-level", "WARNING", "node", "--listen",
                                f"/ip4/{HOSTS[host]}/tcp/{PORT}", "--key-type", "ed25519",
                                "--handler", "bulk=netns_handlers:bulk"], log)
            procs.append(proc)
            info = read_json(proc, log)
            peers[info["peer_id"]] = host
            assert any(f"/ip4/{HOSTS[host]}/tcp/{PORT}" in a for a in info["addrs"])
        log = tmp_path / "a.log"
        addrs = [f"/ip4/{HOSTS[h]}/tcp/{PORT}/p2p/{pid}" for pid, h in peers.items()]
        requester = spawn("a", [str(HERE / "netns_requester.py"), *addrs], log)
        procs.append(requester)
        assert sorted(read_json(requester, log)["workers"]) == sorted(peers)
        line = read_json(requester, log)
        assert "attempt" in line, line
        first = line["attempt"]
        cut = time.monotonic()
        ip("-n", HUB, "link", "set", f"h{peers[first]}", "down")  # mid-transfer
        line = read_json(requester, log)
        while "attempt" in line:
            line = read_json(requester, log)
        waited = time.monotonic() - cut
        attempts = line["attempts"]
        print(f"\nnetns: first worker {peers[first]} cut; attempts "
              f"{[(peers[a['peer']], a['error'], round(a['seconds'], 2)) for a in attempts]}; "
              f"answer from {peers.get(line['worker'])} after {line['elapsed']:.2f} s")
        assert attempts[0]["peer"] == first and attempts[0]["error"]
        assert RESPONSE_TIMEOUT - 0.5 <= attempts[0]["seconds"] <= RESPONSE_TIMEOUT + 2.0
        assert len(attempts) == 2 and attempts[1]["peer"] != first and not attempts[1]["error"]
        assert line["error"] == "" and line["worker"] == attempts[1]["peer"]
        assert line["data_len"] == len("job-1") + (1 << 20)
        assert waited < RESPONSE_TIMEOUT + 10
        assert requester.wait(timeout=20) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=20)
            if proc.stdout:
                proc.stdout.close()
