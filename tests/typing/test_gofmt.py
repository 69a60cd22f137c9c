"""The Go test peers under tests/interop/*/ and their shared package (gokit) are gofmt-clean. Part
of the suite (CI installs Go for the interop tests anyway), so a missing gofmt fails here rather
than skipping the check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GO_PEERS = ("gopeer", "goquic", "gomasa", "godht", "gokit")


def _gofmt() -> str:
    found = shutil.which("gofmt")
    if found:
        return found
    go = shutil.which("go")  # gofmt ships in GOROOT/bin, which is not always on PATH
    assert go, "neither gofmt nor go is on PATH: the Go toolchain is needed (CI installs it)"
    goroot = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True, timeout=60,
                            check=True).stdout.strip()
    candidate = Path(goroot, "bin", "gofmt")
    assert candidate.is_file(), f"no gofmt in {candidate.parent} (go is {go})"
    return str(candidate)


def test_go_test_peers_are_gofmt_clean() -> None:
    sources = sorted(ROOT.glob("tests/interop/*/*.go"))
    assert {p.parent.name for p in sources} >= set(GO_PEERS), sources  # the check sees every peer
    done = subprocess.run([_gofmt(), "-l", *map(str, sources)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    unformatted = done.stdout.split()
    assert not unformatted, f"not gofmt-clean (run `gofmt -w` on them): {unformatted}"
