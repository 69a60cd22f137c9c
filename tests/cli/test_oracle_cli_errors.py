"""Every error path of `python -m oracle` a user can hit: one JSON line on stdout, exit status 1, saying
what failed and why; for `work`, which worker (peer ID or address) and the reason. Plus the start-up
line's identity source and the demo leaving no worker behind however it is stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oracle import cli

from tests.cli.test_p2p_cli_errors import assert_help_everywhere

REPO = Path(__file__).resolve().parents[2]
WORKER_PROTOCOL = "/masa/worker_protocol/v0.8.4"
OTHER_PEER = "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"  # nobody here has this key


def child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PRIVATE_KEY", "MASA_PRIV_KEY_FILE")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]), HOME=str(tmp_path / "home"),
               MASA_PRIV_KEY_FILE=str(tmp_path / "node_key"))
    return env


def run_oracle(tmp_path: Path, *argv: str, timeout: float = 60) -> tuple[int, list[str]]:
    done = subprocess.run([sys.executable, "-m", "oracle", *argv], cwd=REPO, env=child_env(tmp_path),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout.splitlines()


def error_line(text: str) -> list[str]:
    return [json.dumps({"error": text})]


class Served:
    """A child that prints one JSON line once listening (`p2p serve`, `oracle node`)."""

    def __init__(self, tmp_path: Path, *argv: str) -> None:
        self.proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=child_env(tmp_path),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.info: dict[str, Any] = json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Any]:
    children: list[Served] = []

    def start(*argv: str) -> Served:
        children.append(Served(tmp_path, *argv))
        return children[-1]

    yield start
    for child in children:
        child.stop()


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--log-level", "chatty", "node"],
         "argument --log-level: unknown log level 'chatty': use one of debug, info, warning, error, "
         "critical (see python -m oracle --help)"),
        (["node", "--allow", "notapeerid"],
         "argument --allow: 'notapeerid' is not a peer ID (unsupported multibase prefix 'n'): expected "
         "base58 like 12D3KooW... / 16Uiu2HAm... / Qm..., or a CIDv1 like bafz... "
         "(see python -m oracle node --help)"),
        (["node", "--max-concurrent-total", "0"],
         "argument --max-concurrent-total: '0' must be at least 1 (see python -m oracle node --help)"),
        (["work", "--data", "x"],
         "the following arguments are required: --type (see python -m oracle work --help)"),
        (["work", "--type", "test", "--timeout", "soon"],
         "argument --timeout: 'soon' is not a number (see python -m oracle work --help)"),
        (["demo", "--workers", "many"],
         "argument --workers: 'many' is not a whole number (see python -m oracle demo --help)"),
    ],
)
def test_bad_arguments_are_one_json_line_and_exit_1(capsys, argv, line) -> None:
    assert run_main(capsys, *argv) == (1, error_line(line))


def test_every_option_has_help_text() -> None:
    assert_help_everywhere(cli.build_parser())


def test_work_without_peer_gives_a_hint(tmp_path: Path) -> None:
    assert run_oracle(tmp_path, "work", "--type", "test", "--timeout", "10") == (1, error_line(
        "no eligible workers found: no --peer given (name a worker node with --peer "
        "/ip4/HOST/tcp/PORT/p2p/PEER_ID)"))


def test_work_names_each_worker_and_why_it_was_not_used(tmp_path: Path, served: Any) -> None:
    not_worker = served("-m", "p2p", "serve").info  # identify and ping only
    peer = not_worker["peer_id"]
    good_addr = not_worker["addrs"][0]
    wrong_id_addr = good_addr.replace(peer, OTHER_PEER)
    tcp_part = good_addr.split("/p2p/")[0]
    with socket.socket() as refused, socket.socket() as silent:
        refused.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts at the TCP level, never speaks: the handshake times out
        rport, sport = refused.getsockname()[1], silent.getsockname()[1]
        code, lines = run_oracle(
            tmp_path, "work", "--type", "test", "--timeout", "5",
            "--peer", f"/ip4/127.0.0.1/tcp/{rport}/p2p/{OTHER_PEER}",
            "--peer", wrong_id_addr,
            "--peer", f"/ip4/127.0.0.1/tcp/{sport}",
            "--peer", good_addr,
        )
    assert (code, lines) == (1, error_line(
        "no eligible workers found: "
        f"worker {OTHER_PEER} (/ip4/127.0.0.1/tcp/{rport}): tcp connect to 127.0.0.1:{rport} failed: "
        "connection refused; "
        f"worker {OTHER_PEER} ({tcp_part}): peer ID mismatch: the node there is {peer}; "
        f"worker at /ip4/127.0.0.1/tcp/{sport}: timeout (dial 127.0.0.1:{sport} timed out after 2.0s); "
        f"peer {peer} at {good_addr}: does not serve {WORKER_PROTOCOL}"))


def test_work_reports_the_workers_own_error_unescaped(tmp_path: Path, served: Any) -> None:
    (tmp_path / "boomh.py").write_text("def boom(data):\n    raise ValueError('boom <bad> & worse')\n")
    worker = served("-m", "oracle", "node", "--key-type", "ed25519", "--handler", "boom=boomh:boom").info
    assert worker["identity"] == "ephemeral ed25519 key"
    code, lines = run_oracle(tmp_path, "work", "--type", "boom", "--peer", worker["addrs"][0],
                             "--timeout", "20")
    assert (code, lines) == (1, error_line(
        f"All workers failed. Errors: Worker {worker['peer_id']}: boom <bad> & worse"))
    assert "\\u003c" not in lines[0]


def test_node_start_up_line_says_where_the_identity_came_from(tmp_path: Path, served: Any) -> None:
    created = served("-m", "oracle", "node").info
    assert created["identity"] == f"new key file {tmp_path / 'node_key'}"
    served_again = served("-m", "oracle", "node").info
    assert served_again["identity"] == f"existing key file {tmp_path / 'node_key'}"
    assert served_again["peer_id"] == created["peer_id"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopping_the_demo_stops_its_workers(tmp_path: Path, signum: int) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "oracle", "demo", "--workers", "2", "--items", "100000", "--no-kill"],
        cwd=REPO, env=child_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None
        pids = []
        for line in demo.stdout:
            if line.startswith("  w") and " pid " in line:
                pids.append(int(line.split(" pid ")[1].split()[0]))
            if line.startswith("distributing"):
                break
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        demo.send_signal(signum)
        _, err = demo.communicate(timeout=30)
        if signum != signal.SIGKILL:
            assert demo.returncode == 128 + signum, err
            assert f"demo stopped by {signal.Signals(signum).name}: stopping its workers" in err
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids), pids
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
