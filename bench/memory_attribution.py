"""Where a listener's memory per idle connection goes: `python -m bench.memory_attribution`.

The bench's memory row reads the listener's RSS, which also moves with heap slack (a process that
compiled its modules from source at start-up has freed memory for the connections to reuse: RSS
per connection then reads ~5 KiB lower than with `make install`'s compiled modules). This tool
counts what RSS cannot attribute: it runs our bench listener in this process under tracemalloc,
has a `bench.ours_peer dial conns` process open N idle connections, and prints the traced bytes
per connection and, per function of p2p/ or oracle/ (the innermost such frame of each
allocation), the bytes per connection allocated there and still alive; then the live objects per
connection by type. Counts, not timings: the same on a loaded machine.
"""

from __future__ import annotations

import argparse
import ast
import collections
import functools
import gc
import json
import subprocess
import sys
import tracemalloc
from typing import Any

import anyio

from bench import ours_peer
from bench.peer_common import ECHO, SINK
from p2p.host import Host
from p2p.protocols.echo import make_echo_handler


@functools.lru_cache(maxsize=None)
def _functions(filename: str) -> list[tuple[int, int, str]]:
    with open(filename, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                out.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def function_at(filename: str, lineno: int) -> str:
    """`module.py:Class.method` of a source line (the innermost definition holding it)."""
    best: tuple[int, str] | None = None
    for first, last, name in _functions(filename):
        if first <= lineno <= last and (best is None or first >= best[0]):
            best = (first, name)
    return filename.rsplit("/", 1)[-1] + ":" + (best[1] if best else "<module>")


def _ours(filename: str) -> bool:
    return "/p2p/" in filename or "/oracle/" in filename


def by_function(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    """Bytes allocated between the snapshots and still alive, by our innermost function."""
    out: dict[str, int] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        frames = [f for f in stat.traceback if _ours(f.filename)]  # oldest first
        key = function_at(frames[-1].filename, frames[-1].lineno) if frames else "(outside)"
        out[key] += stat.size_diff
    return out


def _object_counts() -> collections.Counter[str]:
    return collections.Counter(type(o).__module__ + "." + type(o).__qualname__
                               for o in gc.get_objects())


async def measure(conns: int, scenario: str = "conns") -> dict[str, Any]:
    """Our bench listener, `conns` idle connections (or, with scenario `streams`, that many idle
    echo streams on one connection) to it: traced bytes and objects per one."""
    from oracle.gating import WorkerPolicy
    from oracle.handlers import handle_test
    from oracle.manager import WorkHandlerManager
    from oracle.protocol import WorkerProtocol

    async with Host(config=ours_peer.LISTENER_CONFIG) as host:
        host.set_stream_handler(ECHO, make_echo_handler(ours_peer.CHUNK))
        host.set_stream_handler(SINK, ours_peer.handle_sink)
        manager = WorkHandlerManager()
        manager.add_handler("test", handle_test)
        WorkerProtocol(manager, WorkerPolicy.open(max_concurrent_per_peer=256,
                                                  max_concurrent_total=256)).register(host)
        await host.listen("/ip4/127.0.0.1/tcp/0")
        dialer = subprocess.Popen(
            [sys.executable, "-m", "bench.ours_peer", "dial", scenario, "--addr",
             host.p2p_addrs()[0], "--params", json.dumps({"count": conns})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert dialer.stdin is not None and dialer.stdout is not None
        marks: dict[str, tuple[tracemalloc.Snapshot, int, collections.Counter[str]]] = {}
        try:
            with anyio.fail_after(120):
                for _ in range(2):
                    line = await anyio.to_thread.run_sync(dialer.stdout.readline)
                    if not line:
                        raise RuntimeError("the dialer ended early")
                    phase = json.loads(line)["phase"]
                    await anyio.sleep(0.3)  # let the last connection's identify finish
                    gc.collect()
                    marks[phase] = (tracemalloc.take_snapshot(),
                                    tracemalloc.get_traced_memory()[0], _object_counts())
                    dialer.stdin.write("\n")
                    dialer.stdin.flush()
        finally:
            dialer.stdin.close()
            await anyio.to_thread.run_sync(dialer.wait)
    (snap0, traced0, objs0), (snap1, traced1, objs1) = marks["warm"], marks["ready"]
    functions = by_function(snap0, snap1)
    return {
        "conns": conns,
        "traced_per_conn": (traced1 - traced0) / conns,
        "functions": {k: v / conns for k, v in sorted(functions.items(), key=lambda kv: -kv[1])},
        "objects": {k: (objs1[k] - objs0[k]) / conns
                    for k, _ in (objs1 - objs0).most_common() if objs1[k] - objs0[k] >= conns / 2},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--conns", type=int, default=200)
    p.add_argument("--streams", type=int, default=0,
                   help="idle echo streams on one connection instead of idle connections")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    args = p.parse_args()
    tracemalloc.start(30)
    if args.streams:
        result = anyio.run(measure, args.streams, "streams")
    else:
        result = anyio.run(measure, args.conns)
    if args.json:
        print(json.dumps(result))
        return
    what = "stream" if args.streams else "connection"
    print(f"traced bytes per idle {what}: {result['traced_per_conn']:.0f}"
          f" ({result['traced_per_conn'] / 1024:.2f} KiB, {result['conns']} {what}s)")
    shown = [(n, s) for n, s in result["functions"].items() if round(s)][:args.top]
    for name, size in shown:
        print(f"  {size:8.0f} B  {name}")
    print(f"live objects per {what}:")
    for name, count in result["objects"].items():
        print(f"  {count:6.2f}  {name}")


if __name__ == "__main__":
    main()
