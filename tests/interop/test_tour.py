"""docs/tour.md against the real go peers: its commands run, and its trace excerpts are still true.

Each record line of the tour's excerpts must be found in a fresh trace of the same dials (the
tour's `oracle work` against the masa-like go node, `p2p ping` and `identify` against the plain
go-libp2p peer): same direction, layer, event, stream, and the same values of the fields that do
not change from run to run (protocol texts, message kinds, frame types and flags, key types,
muxers, roles)."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from gomasa import GoMasa, build_gomasa
from gopeer import GoPeer

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tour_doc", REPO / "tests" / "trace" / "tour.py")
tour = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tour)

STABLE = ("text", "kind", "type", "flags", "message", "identity_key_type", "early_muxer",
          "protocol", "role", "code", "direction", "has_extensions", "stream_muxers", "matches",
          "public_key_type", "agent_version")


def run(cwd: Path, command: str, go: GoPeer, gomasa: GoMasa) -> subprocess.CompletedProcess[str]:
    args = shlex.split(command.replace("$GO_PEER", go.addr).replace("$GO_MASA", gomasa.addr))
    assert args[:2] == ["python", "-m"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(cwd)}
    return subprocess.run([sys.executable, *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL)


def test_tour_commands_run_and_excerpts_match_a_fresh_trace(start_gopeer, tmp_path):
    go: GoPeer = start_gopeer("--key-type", "secp256k1")
    build_gomasa()
    gomasa = GoMasa("--web")
    try:
        seen = run_all(tmp_path, go, gomasa)
    finally:
        gomasa.stop()
    missing = []
    for record in tour.excerpt_records():
        want = {k: record.get(k) for k in ("dir", "layer", "event", "stream", *STABLE) if k in record}
        if not any(all(r.get(k) == v for k, v in want.items()) for r in seen):
            missing.append(want)
    assert missing == []


def run_all(tmp_path: Path, go: GoPeer, gomasa: GoMasa) -> list[dict]:
    seen: list[dict] = []
    commands = [line for body in tour.blocks("sh") for line in body.splitlines() if line.strip()]
    assert len(commands) >= 3
    for command in commands:
        done = run(tmp_path, command, go, gomasa)
        assert done.returncode == 0, (command, done.stdout, done.stderr[-2000:])
        assert json.loads(done.stdout.splitlines()[-1])  # the command's own result, on stdout
        if "--trace-file" in command:
            path = tmp_path / command.split("--trace-file ")[1].split()[0]
            fresh = [json.loads(line) for line in path.read_text().splitlines()]
        else:
            fresh = [tour.parse_line(line) for line in done.stderr.splitlines()]
            fresh = [r for r in fresh if r is not None]
        assert fresh and fresh[0]["layer"] == "tcp"
        seen += fresh
    return seen
