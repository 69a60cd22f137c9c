"""Every ```python block of README.md runs here, as a user would run it (a script of its own), so the
examples cannot rot. A placeholder peer address is replaced by a local peer's (`python -m p2p serve
--echo` on 127.0.0.1); a wildcard listen address by loopback (tests stay on loopback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"/ip4/127\.0\.0\.1/tcp/4001/p2p/[1-9A-HJ-NP-Za-km-z]+\.\.\.")


def python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def run_block(code: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"{name}.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def echo_peer() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "p2p", "serve", "--echo"], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["addrs"][0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_readme_has_the_examples_this_file_knows() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2
    assert PLACEHOLDER.search(blocks[0]), "the first example dials a placeholder address"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index: int, echo_peer: str, tmp_path: Path) -> None:
    code = python_blocks()[index]
    code = PLACEHOLDER.sub(echo_peer, code).replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/")
    done = run_block(code, tmp_path, f"readme_{index}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip(), "every example prints its result"
    if PLACEHOLDER.search(python_blocks()[index]):
        assert done.stdout.strip().splitlines()[-1] == "b'hello'"  # echoed by the local peer


def test_first_example_as_is_prints_one_clear_error(tmp_path: Path) -> None:
    done = run_block(python_blocks()[0], tmp_path, "readme_as_is")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: bad multiaddr '/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2HAm...': invalid CID: 16Uiu2HAm..."]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert done.stderr.strip() in readme  # the README quotes what it prints


def test_first_example_against_nobody_prints_one_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: refused
        port = s.getsockname()[1]
        code = PLACEHOLDER.sub(f"/ip4/127.0.0.1/tcp/{port}", python_blocks()[0])
        done = run_block(code.replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/"), tmp_path, "readme_nobody")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"error: tcp connect to 127.0.0.1:{port} failed: connection refused"]
