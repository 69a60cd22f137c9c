"""Fuzz every target for a fixed budget: `python -m fuzz [--seconds N] [--engine atheris|random] [names]`.

Each target runs in its own subprocess (a crash or a hang cannot take the others down) with its
seeds as the starting corpus. Exit status is non-zero if any target found an input that raised an
untyped exception or ran past the per-input timeout; the crashing input is kept under --artifacts.
The `random` engine (mutation without coverage feedback) is the fallback where atheris is missing.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fuzz.targets import TARGETS

#: per-input limit: every parser here is linear in its input, so a second is already a hang
INPUT_TIMEOUT_S = 5
MAX_INPUT_LEN = 4096


def _write_corpus(name: str, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(TARGETS[name].seeds()):
        (directory / f"seed-{i}").write_bytes(seed)


def run_atheris(name: str, seconds: float, work: Path, artifacts: Path) -> tuple[bool, str]:
    corpus = work / name
    _write_corpus(name, corpus)
    cmd = [sys.executable, "-m", "fuzz.one", name, f"-max_total_time={max(1, int(seconds))}",
           f"-timeout={INPUT_TIMEOUT_S}", f"-max_len={MAX_INPUT_LEN}", "-rss_limit_mb=1024",
           f"-artifact_prefix={artifacts}/{name}-", "-print_final_stats=1", str(corpus)]
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", cwd=root, env=env,
                          timeout=seconds + 60, stdin=subprocess.DEVNULL)
    out = proc.stderr + proc.stdout
    runs = [line for line in out.splitlines() if line.startswith("stat::number_of_executed_units")]
    summary = runs[-1].split(":")[-1].strip() + " inputs" if runs else "no stats"
    return proc.returncode == 0, summary if proc.returncode == 0 else out[-4000:]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 2:
            del buf[pos : pos + rng.randint(1, 16)]
        else:
            buf[pos:pos] = buf[rng.randint(0, len(buf)):][: rng.randint(1, 64)]
    return bytes(buf[:MAX_INPUT_LEN])


def run_random(name: str, seconds: float, seed: int = 0) -> tuple[bool, str]:
    """Fallback engine: seeds mutated at random, in-process, for `seconds`."""
    target = TARGETS[name]
    allowed = target.allowed()
    pool = target.seeds() or [b""]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        data = _mutate(rng, rng.choice(pool)) if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 64))
        n += 1
        started = time.monotonic()
        try:
            target.run(data)
        except allowed:
            pass
        except Exception:
            return False, f"input {data.hex()}\n{traceback.format_exc()}"
        if time.monotonic() - started > INPUT_TIMEOUT_S:
            return False, f"input took > {INPUT_TIMEOUT_S}s: {data.hex()}"
    return True, f"{n} inputs"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0, help="budget per target")
    ap.add_argument("--engine", choices=("atheris", "random"), default=None,
                    help="default: atheris when it is installed, else random")
    ap.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once")
    ap.add_argument("--artifacts", default=None, help="where crashing inputs go (default: a temp dir)")
    ap.add_argument("targets", nargs="*", help=f"default: all of {', '.join(TARGETS)}")
    args = ap.parse_args(argv)
    names = args.targets or [n for n in TARGETS if not n.startswith("_")]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown targets: {unknown}")
    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            print("atheris is not installed: falling back to the random engine", file=sys.stderr)
            engine = "random"
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        artifacts = Path(args.artifacts or tmp) / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)

        def one(name: str) -> tuple[str, bool, str]:
            if engine == "atheris":
                return name, *run_atheris(name, args.seconds, Path(tmp) / "corpus", artifacts)
            return name, *run_random(name, args.seconds)

        # threads only wait on subprocesses (atheris); the random engine runs one at a time
        jobs = max(1, args.jobs) if engine == "atheris" else 1
        with ThreadPoolExecutor(jobs) as pool:
            for name, ok, summary in pool.map(one, names):
                print(f"{'ok  ' if ok else 'FAIL'} {name:22} {summary}", flush=True)
                if not ok:
                    failed.append(name)
    print(f"fuzz: {len(names) - len(failed)} of {len(names)} targets clean ({engine}, "
          f"{args.seconds:g} s each)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
