"""mypy (pinned in the test extra, configured in pyproject.toml: strict) finds no error in p2p/ and
oracle/. Part of the suite, so a type error fails the build like any other test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_reports_no_error_on_both_packages() -> None:
    import importlib.util

    assert importlib.util.find_spec("mypy"), "mypy (the test extra) is not installed here: `make install`"
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert done.stdout.startswith("Success: no issues found"), done.stdout
