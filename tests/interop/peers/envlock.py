"""Install-once helpers for the interop peers' isolated environments under ``<repo>/.cache/peers``.

Each environment is keyed by a digest of the committed manifest it is built from and marked
complete only after its installer succeeded, so an interrupted install is redone, an edited
manifest triggers a fresh install, and concurrent test processes serialise on a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PEERS_CACHE = REPO_ROOT / ".cache" / "peers"

__all__ = ["PEERS_CACHE", "REPO_ROOT", "digest_files", "install_lock", "run_installer"]


def digest_files(*paths: Path) -> str:
    """SHA-256 over the names and contents of ``paths`` (short form: 16 hex digits)."""
    h = hashlib.sha256()
    for path in paths:
        data = path.read_bytes()
        h.update(f"{path.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


@contextmanager
def install_lock(name: str) -> Iterator[None]:
    """An exclusive lock on ``.cache/peers/<name>.lock`` for the duration of a check/install."""
    PEERS_CACHE.mkdir(parents=True, exist_ok=True)
    with open(PEERS_CACHE / f"{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_installer(what: str, argv: Sequence[str], *, cwd: Path | None = None,
                  timeout: float) -> None:
    """Run one install step; any failure raises RuntimeError carrying the tool's output."""
    try:
        proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError(f"{what}: {argv[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what}: exceeded {timeout:.0f} s\n{exc.stdout or ''}{exc.stderr or ''}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                           f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
