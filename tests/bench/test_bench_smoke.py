"""Smoke tests of the benchmark harness, so it cannot rot: quick rounds, seconds each.

Not timed tests: they assert that the harness runs the scenarios end to end on each peer and
writes well-formed results, never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
PY_VENV_PYTHON = ROOT / ".cache" / "bench" / "pylibp2p-venv" / "bin" / "python"


def run_bench(tmp_path: Path, *args: str, timeout: float = 120) -> tuple[dict, str]:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--rounds", "1", *args, "--results-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    latest = json.loads((out / "latest.json").read_text())
    stamped = [p for p in out.glob("*.json") if p.name != "latest.json"]
    assert len(stamped) == 1 and json.loads(stamped[0].read_text()) == latest
    return latest, proc.stdout


def test_quick_round_of_ours_writes_results(tmp_path: Path) -> None:
    latest, stdout = run_bench(tmp_path, "--stacks", "ours",
                               "--scenarios", "bulk,echo,rr,memory,startup")
    assert latest["errors"] == []
    values = latest["summary"]["values"]
    for metric in ("bulk", "echo 1", "echo 16", "rr seq", "rr 64", "mem/conn", "mem/stream",
                   "startup"):
        assert values[metric]["ours"]["median"] > 0, metric
    for metric in ("bulk", "echo 1", "echo 16"):  # the AEAD bound ran beside ours
        assert values[metric]["bound"]["median"] > 0, metric
        assert latest["summary"]["ratios"][metric]["ours/bound"]["median"] > 0, metric
    assert values["rr 64 failures"]["ours"]["max"] == 0
    # CPU per request of both processes. The listener's is read from /proc in clock ticks
    # (10 ms): over a quick row's 100 requests it may round to 0. The dialer's own clock is exact.
    assert values["rr seq listener cpu"]["ours"]["median"] >= 0
    assert values["rr seq dialer cpu"]["ours"]["median"] > 0
    # Every echo row ran at each of the quick chunk sizes, and the figure is the best of them.
    runs = [r for r in latest["echo_runs"] if r["stack"] == "ours"]
    assert {(r["metric"], r["chunk"]) for r in runs} == {
        (m, c) for m in ("echo 1", "echo 16") for c in latest["options"]["sizes"]["echo chunks"]}
    for metric in ("echo 1", "echo 16"):
        assert values[metric]["ours"]["median"] == max(r["mb_per_s"] for r in runs
                                                       if r["metric"] == metric)
    targets = {t["target"] for t in latest["targets"]}
    assert {"echo 1 stream >= 3x py-libp2p", "echo 16 streams >= 1.0x go"} <= targets
    assert not any("ChaCha" in t for t in targets)
    assert "ours/bound" in stdout and "targets" in stdout and "echo: best read/write size" in stdout


def _echo_rows_of(tmp_path: Path, stack: str) -> None:
    latest, stdout = run_bench(tmp_path, "--stacks", f"ours,{stack}", "--scenarios", "echo",
                               "--no-bound", timeout=300)
    if stack == "py" and latest["errors"] and all(map(_py_echo_16_stall, latest["errors"])):
        # py-libp2p 0.8.1 itself now and then stalls an echo of 16 streams: its own dialer and
        # listener, none of our code on the data path (bench/README.md). Seen once in many loaded
        # full-suite runs, in none of 45 quick runs at load 7-9. Such a run, and only such a run,
        # is tried once more: a harness that cannot drive py's echo fails both.
        latest, stdout = run_bench(tmp_path / "again", "--stacks", f"ours,{stack}", "--scenarios",
                                   "echo", "--no-bound", timeout=300)
    assert latest["errors"] == []
    for metric in ("echo 1", "echo 16"):
        assert latest["summary"]["values"][metric][stack]["median"] > 0, metric
        assert latest["summary"]["ratios"][metric][f"ours/{stack}"]["median"] > 0, metric
    assert {r["chunk"] for r in latest["echo_runs"] if r["stack"] == stack} == set(
        latest["options"]["sizes"]["echo chunks"])
    assert f"ours/{stack}" in stdout


def _py_echo_16_stall(error: str) -> bool:
    """The bench's report of py's own dialer going silent in its 16-stream echo."""
    return " echo py echo 16 chunk " in error and ": py-echo: no answer within " in error


def test_go_peer_echo_rows(tmp_path: Path) -> None:
    """The go bench peer's echo (built like the interop tests' go peer: a failed build fails)."""
    _echo_rows_of(tmp_path, "go")


def test_go_peer_rr_rows_give_both_sides_cpu(tmp_path: Path) -> None:
    """The go dialer reports its own CPU time over the run (getrusage), as ours does, so the
    sequential row has the dialer's CPU per request for both stacks."""
    latest, stdout = run_bench(tmp_path, "--stacks", "ours,go", "--scenarios", "rr", timeout=300)
    assert latest["errors"] == []
    values = latest["summary"]["values"]
    for stack in ("ours", "go"):
        # the listener's from /proc in 10 ms ticks (a quick row may round to 0); the dialer's exact
        assert values["rr seq listener cpu"][stack]["median"] >= 0, stack
        assert values["rr seq dialer cpu"][stack]["median"] > 0, stack
    assert "rr seq dialer cpu" in stdout


def test_py_libp2p_peer_echo_rows(tmp_path: Path) -> None:
    """py-libp2p's echo rows; its venv is set up here as the bench does it (a failed install fails)."""
    from bench import stacks

    stack = stacks.py_libp2p(lambda msg: None)
    assert stack.available, stack.reason
    assert PY_VENV_PYTHON.exists()
    _echo_rows_of(tmp_path, "py")


def test_dht_rows_ours_and_go_in_one_network(tmp_path: Path) -> None:
    """`--scenarios dht` (bench/dht.py): lookups and gossip among Go nodes (godht) and ours, each
    figure present for both sides, in the results JSON and the printed table."""
    latest, stdout = run_bench(tmp_path, "--stacks", "ours", "--scenarios", "dht", timeout=300)
    dht = latest["dht"]
    assert dht["errors"] == [] and latest["errors"] == [], dht["errors"]
    for side in ("ours", "go"):
        s = dht[side]
        assert s["lookups"] == dht["setup"]["go_nodes"] - 1 and s["lookup_failures"] == 0, s
        assert 0 < s["lookup_p50_ms"] <= s["lookup_p99_ms"]
        assert s["lookup_queries_median"] >= (1 if side == "go" else 0)  # ours dials a table peer first
        assert s["gossip_deliveries"] > 0 and s["gossip_p50_ms"] is not None
        assert s["burst_msgs_per_s"] > 0 and 0 < s["burst_delivered"] <= 1
    assert dht["ours"]["lookup_hops_max"] is not None and dht["go_finds_ours_p50_ms"] > 0
    fresh = dht["ours_from_bootnode_only"]  # the bootnode refers each target: one hop
    assert fresh["lookups"] == dht["setup"]["go_nodes"] - 1 and fresh["hops_max"] == 1
    assert fresh["queries_median"] >= 1
    assert "FindPeer, not connected" in stdout and "gossip burst of" in stdout
