"""What each side runs on a sequential request's critical path, and what after it.

    python -m bench.profile_critical [--scenario rr|worker] [--count 2000] [--show N] [--times]

A sequential request is serial: the listener's work from the request's bytes arriving (its socket
`recv`) to the answer's `send`, and the dialer's from the answer's `recv` to the next request's
`send`, add up to the request's time with the kernel's; what a side runs after its `send`, until
its event loop polls again, overlaps the other side's work. Runs our listener and dialer
(bench.ours_peer) for `count` requests, one side at a time measured while the other runs as it
is, and prints per side the median over the middle of the run (the first and last tenth left
out) of:

* default: Python calls (C builtins included, from a `sys.setprofile` hook) from the last socket
  `recv` to the next `send` ("before send") and from that `send` to the next poll ("after
  send"); `--show N` lists the calls of request N's windows in order. Counts: no load moves them.
* `--times`: this thread's CPU microseconds (`time.thread_time_ns`: a process waiting for a core
  spends none) of each phase of a request: poll -> recv (the wake-up and the read), recv -> poll
  (the input handled in the read's callback), poll -> send (the tasks it woke, up to the send),
  send -> sent (the system call) and sent -> poll; the sockets and the selector are timed, no
  profile hook.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class WindowCounter:
    """A `sys.setprofile` hook: calls between a socket recv and the next send, and between that
    send and the next poll (`epoll.poll` / `select`)."""

    def __init__(self, show: int) -> None:
        self.phase = ""  # "", "before" (after a recv) or "after" (after the send)
        self.calls = 0
        self.before: list[int] = []
        self.after: list[int] = []
        self.show = show
        self.shown: list[str] = []

    def _showing(self) -> bool:
        return len(self.after) + 1 == self.show

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "c_call":
            name = getattr(arg, "__name__", "")
            owner = getattr(arg, "__self__", None)
            if name in ("recv", "recv_into") and isinstance(owner, socket.socket):
                self.phase, self.calls = "before", 0
                if self._showing():
                    self.shown = []
                return
            if name == "send" and isinstance(owner, socket.socket) and self.phase == "before":
                self.before.append(self.calls)
                self.phase, self.calls = "after", 0
                if self._showing():
                    self.shown.append("---- send ----")
                return
            if name in ("poll", "select") and self.phase == "after":
                self.after.append(self.calls)
                self.phase = ""
                return
        if self.phase and event in ("call", "c_call"):
            self.calls += 1
            if self._showing():
                if event == "c_call":
                    self.shown.append(f"  [C] {getattr(arg, '__qualname__', arg)}")
                else:
                    code = frame.f_code
                    self.shown.append(
                        f"{Path(code.co_filename).name}:{code.co_firstlineno}({code.co_name})")

    def result(self) -> dict[str, Any]:
        return {"before send": self.before, "after send": self.after, "shown": self.shown}


class _TimedSocket:
    """A connection's socket under asyncio's transport, marking its recv and send calls."""

    def __init__(self, sock: socket.socket, marks: list[tuple[str, int]]) -> None:
        self._sock = sock
        self._marks = marks

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        self._marks.append(("recv", time.thread_time_ns()))
        return data

    def send(self, data: Any) -> int:
        self._marks.append(("send", time.thread_time_ns()))
        n = self._sock.send(data)
        self._marks.append(("sent", time.thread_time_ns()))
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _phases(marks: list[tuple[str, int]]) -> dict[str, list[float]]:
    """CPU microseconds between consecutive marks, by the pair of marks (`recv -> poll`...)."""
    out: dict[str, list[float]] = {}
    for (a, ta), (b, tb) in zip(marks, marks[1:]):
        out.setdefault(f"{a} -> {b}", []).append((tb - ta) / 1000)
    return out


def _install_timing(marks: list[tuple[str, int]]) -> None:
    """Time the TCP streams' sockets (`AsyncioTcpStream`) and the selector's polls."""
    from p2p.transport import aio_stream

    init = aio_stream.AsyncioTcpStream.__init__

    def timed_init(self: Any, transport: Any, *args: Any) -> None:
        transport._sock = _TimedSocket(transport._sock, marks)
        init(self, transport, *args)

    select = selectors.EpollSelector.select

    def timed_select(self: Any, timeout: float | None = None) -> Any:
        marks.append(("poll", time.thread_time_ns()))
        return select(self, timeout)

    aio_stream.AsyncioTcpStream.__init__ = timed_init  # type: ignore[method-assign]
    selectors.EpollSelector.select = timed_select  # type: ignore[method-assign]


def run_measured(out: str, show: int, times: bool, argv: list[str]) -> None:
    """Run `bench.ours_peer` with `argv`, measured; the figures go to `out` (JSON)."""
    import runpy

    counter = WindowCounter(show)
    marks: list[tuple[str, int]] = []
    if times:
        _install_timing(marks)
    else:
        sys.setprofile(counter)
    sys.argv = ["bench.ours_peer", *argv]
    try:
        runpy.run_module("bench.ours_peer", run_name="__main__")
    except SystemExit:
        pass
    finally:
        sys.setprofile(None)
        Path(out).write_text(json.dumps(_phases(marks) if times else counter.result()))


def pair(scenario: str, count: int, side: str, out: Path, show: int, times: bool) -> dict[str, Any]:
    """One listener + dialer run, `side` measured; its figures."""
    py = sys.executable
    peer = ["-m", "bench.ours_peer"]
    measured = ["-m", "bench.profile_critical", "--measured", str(out), str(show),
                "1" if times else "0", "--"]
    params = json.dumps({"count": count, "concurrency": 1, "budget_s": 600.0, "size": 1024})
    listener = subprocess.Popen([py, *(measured if side == "listen" else peer), "listen"],
                                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdin is not None
        addr = json.loads(listener.stdout.readline())["addr"]
        dialer = subprocess.run([py, *(measured if side == "dial" else peer), "dial", scenario,
                                 "--addr", addr, "--params", params], cwd=ROOT,
                                capture_output=True, text=True, timeout=600)
        result = json.loads(dialer.stdout.strip().splitlines()[-1])
        if "error" in result:
            raise RuntimeError(f"{scenario} dialer: {result['error']}")
        listener.stdin.close()
        listener.wait(60)
    finally:
        if listener.poll() is None:
            listener.kill()
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _median_of_middle(xs: list[float], count: int) -> float:
    """The median, the first and last tenth of `count` requests left out."""
    cut = count // 10
    xs = sorted(xs[cut:len(xs) - cut])
    return xs[len(xs) // 2] if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--measured":
        out, show, times = argv[1], int(argv[2]), argv[3] == "1"
        run_measured(out, show, times, argv[argv.index("--") + 1:])
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.profile_critical", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=("rr", "worker"), default="rr")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--show", type=int, default=0, help="list the calls of request N, per side")
    p.add_argument("--times", action="store_true", help="CPU microseconds per phase instead")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        for side in ("listen", "dial"):
            data = pair(args.scenario, args.count, side, Path(d) / f"{side}.json", args.show,
                        args.times)
            shown = data.pop("shown", [])
            # phases that happen once a request (others: start-up, the end)
            rows = {k: _median_of_middle(v, args.count) for k, v in data.items()
                    if len(v) >= args.count * 0.9}
            unit = " us CPU" if args.times else " calls"
            print(f"{args.scenario} {side}: " + ", ".join(f"{k} {v:.1f}" for k, v in rows.items())
                  + unit)
            if args.show:
                print("\n".join(f"    {line}" for line in shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
