"""Count what one handshake costs each side: Python calls, loop turns, cancel scopes, tasks.

    python -m bench.profile_handshakes [--conns 400] [--top 25] [--side dial|listen|both]

Runs our listener and dialer (bench.ours_peer, the bench's handshakes scenario: new TCP
connection, Noise XX, yamux, identify, one echo stream, close) with one side under cProfile, once
with `--conns` connections and once with a tenth of them, and prints per connection the
difference (so start-up, imports and the listener's set-up drop out). Counts do not depend on the
machine's load the way times do, so they can be compared on a shared machine. `--top` lists the
functions called most per connection. BENCH_TRANSPORT=quic profiles the QUIC handshake instead.
"""

from __future__ import annotations

import argparse
import json
import pstats
import sys
import tempfile
from pathlib import Path

from bench.profile_twoway import profiled_pair


#: label -> substring of the profiled function's label ("" = every call, from the total).
COUNTED = {
    "py calls": "",
    "loop turns": "(_run_once)",
    "cancel scopes": "CancelScope.__enter__",  # matched by _SCOPE_ENTERS
    "backend lookups": "(get_async_backend)",
    "tasks": "(create_task)",
    "futures": "(create_future)",
    "sock send": "method 'send' of '_socket.socket'",
    "sock recv": "method 'recv",  # recv, and recv_into once reads land in a reused buffer
}


def _label(fn: str, line: int, name: str) -> str:
    return name if fn == "~" else f"{fn}:{line}({name})"


def _stats(path: Path) -> dict[str, int]:
    st = pstats.Stats(str(path))
    out: dict[str, int] = {}
    for (fn, line, name), (_cc, nc, _tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        label = _label(fn, line, name)
        out[label] = out.get(label, 0) + nc
    return out


def _counts(calls: dict[str, int]) -> dict[str, int]:
    out = {"py calls": sum(calls.values())}
    for label, n in calls.items():
        for key, pattern in COUNTED.items():
            if pattern and (pattern in label if key != "cancel scopes" else label in _SCOPE_ENTERS):
                out[key] = out.get(key, 0) + n
    return out


#: cProfile's labels of the anyio backends' CancelScope.__enter__ (file:line(name)).
_SCOPE_ENTERS: set[str] = set()


def _find_scope_enters() -> None:
    from anyio._backends import _asyncio, _trio

    for cls in (_asyncio.CancelScope, _trio.CancelScope):
        code = cls.__enter__.__code__
        _SCOPE_ENTERS.add(_label(code.co_filename, code.co_firstlineno, "__enter__"))


def profile_once(conns: int, side: str, tmp: Path) -> dict[str, int]:
    """One listener + dialer run of `conns` handshakes with `side` under cProfile: call counts."""
    prof = tmp / f"{side}-{conns}.prof"
    result = profiled_pair("handshakes", {"count": conns, "budget_s": 600}, side, prof, timeout=900)
    if result["count"] != conns:
        raise RuntimeError(f"only {result['count']} of {conns} handshakes in the budget")
    return _stats(prof)


def measure(conns: int,
            sides: tuple[str, ...]) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """{side: (counted labels per connection, every function's calls per connection)}."""
    _find_scope_enters()
    small_n = max(1, conns // 10)
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for side in sides:
            big = profile_once(conns, side, tmp)
            small = profile_once(small_n, side, tmp)
            per_fn = {k: (big.get(k, 0) - small.get(k, 0)) / (conns - small_n)
                      for k in big.keys() | small.keys()}
            cb, cs = _counts(big), _counts(small)
            counted = {k: (cb.get(k, 0) - cs.get(k, 0)) / (conns - small_n) for k in COUNTED}
            rows[side] = (counted, per_fn)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_handshakes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conns", type=int, default=400, help="connections in the larger run")
    p.add_argument("--top", type=int, default=0, help="list the N functions called most")
    p.add_argument("--side", choices=("dial", "listen", "both"), default="both")
    p.add_argument("--json", action="store_true", help="print the counts as JSON instead")
    args = p.parse_args(argv)
    sides = ("dial", "listen") if args.side == "both" else (args.side,)
    rows = measure(args.conns, sides)
    if args.json:
        print(json.dumps({side: counted for side, (counted, _) in rows.items()}, indent=1))
        return 0
    for side, (counted, per_fn) in rows.items():
        print(f"{side}: " + ", ".join(f"{k} {v:.1f}" for k, v in counted.items()))
        for label, n in sorted(per_fn.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"  {n:8.2f}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
