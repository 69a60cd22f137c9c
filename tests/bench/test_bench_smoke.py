"""Smoke test of the benchmark harness, so it cannot rot: one quick round of ours only.

Not a timed test: it asserts that the harness runs the scenarios end to end and writes well-formed
results, never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_round_of_ours_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--rounds", "1", "--stacks", "ours",
         "--scenarios", "bulk,rr,memory,startup", "--results-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    latest = json.loads((out / "latest.json").read_text())
    stamped = [p for p in out.glob("*.json") if p.name != "latest.json"]
    assert len(stamped) == 1 and json.loads(stamped[0].read_text()) == latest
    assert latest["errors"] == []
    values = latest["summary"]["values"]
    for metric in ("bulk", "rr seq", "rr 64", "mem/conn", "mem/stream", "startup"):
        assert values[metric]["ours"]["median"] > 0, metric
    assert values["bulk"]["bound"]["median"] > 0  # the ChaCha bound ran beside ours
    assert values["rr 64 failures"]["ours"]["max"] == 0
    assert 0 < latest["summary"]["ratios"]["bulk"]["ours/bound"]["median"]
    assert {t["target"] for t in latest["targets"]} >= {"bulk >= 70% of the ChaCha bound"}
    assert "ours/bound" in proc.stdout and "targets" in proc.stdout
