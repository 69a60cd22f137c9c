"""Count what one sequential request costs each side, in counts no load moves.

    python -m bench.profile_requests [--scenario rr|worker] [--count 3000] [--top 0]

Runs our listener and dialer (bench.ours_peer) for `count` sequential requests, each side in turn
under cProfile while the other runs unprofiled, and prints per request: Python calls (C builtins
included), event-loop turns, futures, clock reads, running-loop lookups (each a getpid system call
on Python 3.11), socket sends and receives, minus a run of count/10 (start-up, the handshake,
imports and first-call caches cancel out). `--top N` also lists, per side, the N functions with
the most calls per request.
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
from pathlib import Path

from bench.profile_twoway import profiled_pair

#: label -> substring of the profiled function's cProfile label ("" = every call, from the total).
COUNTED = {
    "py calls": "",
    "loop turns": "(_run_once)",
    "futures": "(create_future)",
    "clock": "time.monotonic",
    # asyncio.get_running_loop: a getpid system call each on Python 3.11
    "loop lookup": "_asyncio.get_running_loop",
    "sock send": "method 'send' of '_socket.socket'",
    "sock recv": "method 'recv",
}


def _label(fn: str, line: int, name: str) -> str:
    return name if fn == "~" else f"{Path(fn).name}:{line}({name})"


def _stats(path: Path) -> dict[str, int]:
    """Calls per function label (and the total under "")."""
    st = pstats.Stats(str(path))
    out: dict[str, int] = {"": st.total_calls}  # type: ignore[attr-defined]
    for (fn, line, name), (_cc, nc, _tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        label = _label(fn, line, name)
        out[label] = out.get(label, 0) + nc
    return out


def measure(scenario: str, count: int, side: str, tmp: Path) -> dict[str, float]:
    """Calls per request per function label: a run of `count` minus one of `count // 10`."""
    runs = []
    for n in (count, count // 10):
        prof = tmp / f"{scenario}-{side}-{n}.prof"
        params = {"count": n, "concurrency": 1, "budget_s": 600.0, "size": 1024}
        result = profiled_pair(scenario, params, side, prof)
        if result.get("count") != n:
            raise RuntimeError(f"{scenario} {side}: {result.get('count')} of {n} requests done")
        runs.append(_stats(prof))
    big, small = runs
    done = count - count // 10
    return {k: (big.get(k, 0) - small.get(k, 0)) / done for k in big.keys() | small.keys()}


def counted(per: dict[str, float]) -> dict[str, float]:
    return {key: per[""] if not pattern else sum(v for k, v in per.items() if pattern in k)
            for key, pattern in COUNTED.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_requests", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=("rr", "worker"), default="rr")
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--top", type=int, default=0, help="also list the N most called functions")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        sides = {side: measure(args.scenario, args.count, side, Path(d)) for side in ("dial", "listen")}
    print(f"{args.scenario} seq, per request ({args.count} minus {args.count // 10}):")
    print(f"{'':<12}" + "".join(f"{side:>10}" for side in sides))
    rows = {side: counted(per) for side, per in sides.items()}
    for key in COUNTED:
        print(f"{key:<12}" + "".join(f"{rows[side][key]:>10.2f}" for side in sides))
    for side, per in sides.items():
        if args.top:
            print(f"\n{side}: most called per request")
            top = sorted(((v, k) for k, v in per.items() if k), reverse=True)[:args.top]
            for v, k in top:
                print(f"  {v:7.2f}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
