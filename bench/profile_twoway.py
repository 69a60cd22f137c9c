"""Count what the two-way (echo) path costs against the one-way sink, per MiB of payload.

    python -m bench.profile_twoway [--mib 64] [--chunk 262144]

Runs our listener and dialer (bench.ours_peer) for bulk (a sink), echo on one stream and echo on
16 streams, each side in turn under cProfile, and prints per MiB of payload: Python calls, event
loop turns, socket sends and receives, AEAD calls (open, seal), `bytes.join` calls (payload copies
outside the kernel and the AEAD) and futures created (task wake-ups), minus a 64 KiB run of the
same scenario (start-up, handshake, imports). Counts do not depend on the machine's load the way
times do, so they can be compared on a shared machine; times are printed for completeness only.

    python -m bench.profile_twoway --idle [--mib 64]

measures instead, without a profiler, the echo rows' time off the CPU: per MiB, the wall time, the
CPU time (user + system) of the listener (from /proc) and of the dialer (its own process_time over
the run) and the share of the wall time each process spent waiting. Two processes that keep a core
each would show little idle time; on a shared machine, waiting for a core counts as idle too.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: label -> substring of the profiled function's name ("" = every call, from the total).
COUNTED = {
    "py calls": "",
    "loop turns": "(_run_once)",
    "sock send": "method 'send' of '_socket.socket'",
    "sock recv": "method 'recv",  # recv, and recv_into where reads land in a reused buffer
    "AEAD open": "method 'decrypt' of",
    "AEAD seal": "method 'encrypt_into' of",
    "bytes.join": "method 'join' of 'bytes'",
    "futures": "(create_future)",
}
SCENARIOS = (("bulk", 1), ("echo", 1), ("echo", 16))


def _counts(path: Path) -> dict[str, float]:
    st = pstats.Stats(str(path))
    out = {"py calls": float(st.total_calls), "profiled s": st.total_tt}  # type: ignore[attr-defined]
    for (fn, line, name), (_cc, nc, _tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        label = name if fn == "~" else f"{fn}:{line}({name})"
        for key, pattern in COUNTED.items():
            if pattern and pattern in label:
                out[key] = out.get(key, 0) + nc
    return out


def profiled_pair(scenario: str, params: dict[str, Any], side: str, prof: Path, *,
                  env: dict[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
    """One `bench.ours_peer` listener + dialer run of `scenario`, `side` ("listen" or "dial")
    under cProfile writing to `prof`; the dialer's result line (an error line raises)."""
    py = sys.executable
    peer = ["-m", "bench.ours_peer"]
    profiled = ["-m", "cProfile", "-o", str(prof), *peer]
    listener = subprocess.Popen([py, *(profiled if side == "listen" else peer), "listen"], cwd=ROOT,
                                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdin is not None
        addr = json.loads(listener.stdout.readline())["addr"]
        dialer = subprocess.run([py, *(profiled if side == "dial" else peer), "dial", scenario,
                                 "--addr", addr, "--params", json.dumps(params)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=timeout)
        result: dict[str, Any] = json.loads(dialer.stdout.strip().splitlines()[-1])
        if "error" in result:
            raise RuntimeError(f"{scenario} dialer: {result['error']}")
        listener.stdin.close()
        listener.wait(60)
    finally:
        if listener.poll() is None:
            listener.kill()
    return result


def profile_once(scenario: str, size: int, streams: int, side: str, chunk: int,
                 tmp: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """One listener + dialer run with `side` ("listen" or "dial") under cProfile."""
    prof = tmp / f"{scenario}-{streams}-{side}-{size}.prof"
    result = profiled_pair(scenario, {"size": size, "streams": streams, "chunk": chunk}, side, prof,
                           env=dict(os.environ, BENCH_CHUNK=str(chunk)))
    return _counts(prof), result


def measure(mib: int, chunk: int,
            scenarios: tuple[tuple[str, int], ...] = SCENARIOS) -> dict[str, dict[str, float]]:
    """{"<scenario> x<streams> <side>": {label: per MiB}} for each scenario and side."""
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for scenario, streams in scenarios:
            for side in ("listen", "dial"):
                big, result = profile_once(scenario, mib << 20, streams, side, chunk, tmp)
                small, _ = profile_once(scenario, 64 << 10, streams, side, chunk, tmp)
                per = {k: (big.get(k, 0) - small.get(k, 0)) / mib for k in (*COUNTED, "profiled s")}
                per["profiled ms"] = per.pop("profiled s") * 1000
                per["wall MB/s"] = result["mb_per_s"]
                rows[f"{scenario} x{streams} {side}"] = per
    return rows


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_once(size: int, streams: int, chunk: int) -> dict[str, float]:
    """One unprofiled echo run: wall and CPU milliseconds per MiB of each process, idle shares."""
    py = sys.executable
    env = dict(os.environ, BENCH_CHUNK=str(chunk))
    listener = subprocess.Popen([py, "-m", "bench.ours_peer", "listen"], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdin is not None
        addr = json.loads(listener.stdout.readline())["addr"]
        before = _cpu_seconds(listener.pid)
        params = json.dumps({"size": size, "streams": streams, "chunk": chunk})
        dialer = subprocess.run([py, "-m", "bench.ours_peer", "dial", "echo", "--addr", addr,
                                 "--params", params], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=600)
        result = json.loads(dialer.stdout.strip().splitlines()[-1])
        if "error" in result:
            raise RuntimeError(f"echo dialer: {result['error']}")
        listener_cpu = _cpu_seconds(listener.pid) - before  # includes the handshake: ~ms
        listener.stdin.close()
        listener.wait(60)
    finally:
        if listener.poll() is None:
            listener.kill()
    mib = size / (1 << 20)
    wall = result["seconds"]
    return {"wall ms": wall / mib * 1000, "listener cpu ms": listener_cpu / mib * 1000,
            "dialer cpu ms": result["cpu_s"] / mib * 1000,
            "listener idle": max(0.0, 1 - listener_cpu / wall),
            "dialer idle": max(0.0, 1 - result["cpu_s"] / wall), "MB/s": result["mb_per_s"]}


def idle_table(mib: int) -> str:
    rows = {f"echo x{streams} {chunk >> 10} KiB": idle_once(mib << 20, streams, chunk)
            for streams in (1, 16) for chunk in (256 << 10, 1 << 20)}
    labels = ["wall ms", "listener cpu ms", "dialer cpu ms", "listener idle", "dialer idle",
              "MB/s"]
    head = ["per MiB of payload", *labels]
    lines = [head] + [[name, *(f"{v[k]:.2f}" for k in labels)] for name, v in rows.items()]
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                               enumerate(zip(r, widths))) for r in lines)


def table(rows: dict[str, dict[str, float]]) -> str:
    labels = [*COUNTED, "profiled ms", "wall MB/s"]
    head = ["per MiB of payload", *labels]
    lines = [head] + [[name, *(f"{v[k]:.1f}" for k in labels)] for name, v in rows.items()]
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                               enumerate(zip(r, widths))) for r in lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_twoway", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mib", type=int, default=64, help="payload per run (MiB)")
    p.add_argument("--chunk", type=int, default=256 << 10, help="read/write size (bytes)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    p.add_argument("--idle", action="store_true",
                   help="echo only, unprofiled: wall vs CPU time per MiB of each process")
    args = p.parse_args(argv)
    if args.idle:
        print(idle_table(args.mib))
        return 0
    rows = measure(args.mib, args.chunk)
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
