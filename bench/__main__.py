"""`python -m bench`: set up the comparison stacks and run interleaved rounds of every scenario.

Each round runs every selected scenario on every stack, one after the other (the stack order
rotates between rounds), so ours, py-libp2p and go are measured under the same background load and
their ratios are taken within a round. Prints a table of medians [min-max] and the targets, writes
bench/results/<timestamp>.json and latest.json, and prints the change against the previous latest.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path

from bench import report
from bench.procs import PeerError, stop_all
from bench.scenarios import SCENARIO_NAMES, Runner, sizes
from bench.stacks import ROOT, Stack, aead_bound, go_libp2p, go_quic, ours, ours_quic, py_libp2p

STACK_NAMES = ("ours", "py", "go", "quic")  # quic: ours and go over QUIC v1
QUIC_STACKS = ("ours-quic", "go-quic")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--stacks", default=",".join(STACK_NAMES), help="comma list of ours,py,go,quic (quic: ours and go-libp2p over QUIC v1)")
    p.add_argument("--scenarios", default=",".join((*SCENARIO_NAMES, "dht")),
                   help="comma list of " + ",".join(SCENARIO_NAMES) + " (and `load`: ours only, "
                   "200 connections x 5,000 streams held for a minute; not run by default; and "
                   "`dht`: lookups and gossip in a network of 8 Go nodes and 2 of ours, "
                   "bench/dht.py, run by default)")
    p.add_argument("--uvloop", action="store_true", help="also run ours with uvloop, if installed")
    p.add_argument("--no-bound", action="store_true",
                   help="skip the AEAD bound (ChaCha20-Poly1305's own speed) in bulk and echo")
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    args.stacks = [s for s in args.stacks.split(",") if s]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    for s in args.stacks:
        if s not in STACK_NAMES:
            p.error(f"unknown stack {s!r} (choose from {', '.join(STACK_NAMES)})")
    args.load = "load" in args.scenarios
    args.dht = "dht" in args.scenarios
    args.scenarios = [s for s in args.scenarios if s not in ("load", "dht")]
    for s in args.scenarios:
        if s not in SCENARIO_NAMES:
            p.error(f"unknown scenario {s!r} (choose from {', '.join(SCENARIO_NAMES)})")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def build_stacks(args: argparse.Namespace) -> list[Stack]:
    stacks = [ours()] if "ours" in args.stacks else []
    if args.uvloop:
        stacks.append(ours(uvloop=True))
    if "py" in args.stacks:
        stacks.append(py_libp2p(log))
    if "go" in args.stacks:
        stacks.append(go_libp2p(log))
    if "quic" in args.stacks:
        stacks.append(ours_quic())
        stacks.append(go_quic(log))
    if {"bulk", "echo"} & set(args.scenarios) and not args.no_bound:
        stacks.append(aead_bound())
    return stacks


def _fresh_log_dir(keep: int = 10) -> Path:
    """A stderr-log folder per run (peers' logs, for post-mortems); only the last few are kept."""
    base = ROOT / ".cache" / "bench" / "logs"
    base.mkdir(parents=True, exist_ok=True)
    for old in sorted(p for p in base.iterdir() if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return base / datetime.datetime.now().strftime("%Y%m%dT%H%M%S.%f")


def main(argv=None) -> int:
    args = parse_args(argv)
    atexit.register(stop_all)  # no peer outlives the harness, whatever ends it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stacks = build_stacks(args)
    for s in stacks:
        if not s.available:
            log(f"stack {s.name}: unavailable ({s.reason})")
    live = [s for s in stacks if s.available]
    runner = Runner(args.quick, _fresh_log_dir())
    rounds: report.Rounds = []
    errors: list[str] = []
    started = time.perf_counter()
    for rnd in range(args.rounds):
        shift = rnd % max(1, len(live))
        order = live[shift:] + live[:shift]
        measured: dict[str, dict[str, float]] = {}
        for scenario in args.scenarios:
            for stack in order:
                if scenario not in stack.scenarios and not (scenario == "memory" and
                                                            "conns" in stack.scenarios):
                    continue
                t0 = time.perf_counter()
                try:
                    values = runner.run(stack, scenario)
                except (PeerError, KeyError, OSError) as exc:
                    msg = f"round {rnd + 1} {scenario} {stack.name}: {exc}"
                    errors.append(msg)
                    log("  FAILED " + msg)
                    runner.errors.clear()  # already part of the message
                    continue
                for msg in runner.errors:
                    errors.append(f"round {rnd + 1} {scenario} {msg}")
                    log(f"  FAILED round {rnd + 1} {scenario} {msg}")
                runner.errors.clear()
                for metric, value in values.items():
                    measured.setdefault(metric, {})[stack.name] = value
                shown = ", ".join(f"{k}={v}" for k, v in values.items())
                log(f"  round {rnd + 1}/{args.rounds} {scenario:<10} {stack.name:<12} "
                    f"{shown}  ({time.perf_counter() - t0:.1f} s)")
        rounds.append(measured)

    quic_names = [s.name for s in live if s.name in QUIC_STACKS]
    names = [s.name for s in live if s.name not in QUIC_STACKS]
    base = "ours"
    others = [n for n in names if n != base]
    summary = report.summarize(rounds, base, others)
    quic_others = [n for n in ("go-quic", "ours") if n in quic_names + names]
    if "ours-quic" in quic_names:  # the QUIC rows: ours over QUIC against go's QUIC and our TCP
        summary["quic"] = report.summarize(rounds, "ours-quic", quic_others)
    verdicts = report.judge(summary, base)
    na = {s.name: {"worker"} for s in stacks if "worker" not in s.scenarios and s.name != "bound"}
    dht_summary = None
    if args.dht:
        from bench import dht

        log("dht: lookups and gossip, 8 Go nodes and 2 of ours (bench/dht.py) ...")
        dht_summary = dht.measure(["--quick"] if args.quick else [], log)
        errors.extend(f"dht: {e}" for e in dht_summary["errors"])
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    doc = {
        "timestamp": stamp,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_avg": os.getloadavg()},
        "options": {"rounds": args.rounds, "quick": args.quick, "scenarios": args.scenarios,
                    "sizes": sizes(args.quick)},
        "stacks": {s.name: {"available": s.available, "reason": s.reason, "version": s.version}
                   for s in stacks},
        "rounds": rounds,
        "summary": summary,
        "targets": verdicts,
        "echo_runs": runner.echo_runs,
        "dht": dht_summary,
        "errors": errors,
        "seconds": round(time.perf_counter() - started, 1),
    }
    path, previous = report.write_results(args.results_dir, stamp, doc)

    print(f"\nbench: {args.rounds} round(s){' (quick sizes)' if args.quick else ''}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end "
          f"(other work on the machine makes these numbers noisy)")
    print("median [min-max] over rounds; ratios are ours/other within a round\n")
    print(report.table(summary, names, base, others, na))
    if "py" in names and any(m.startswith("worker") for m in summary["values"]):
        print("(worker: py-libp2p has no masa worker protocol: n/a)")
    best = report.echo_best_chunks(runner.echo_runs)
    if best:
        print("echo: best read/write size per stack (KiB, by median MB/s over rounds): " + best)
    if "quic" in summary:
        print("\nQUIC v1: ours over QUIC against go-libp2p over QUIC and against our TCP stack")
        print(report.table(summary["quic"], ["ours-quic", *quic_others], "ours-quic", quic_others,
                           {n: {"worker"} for n in ("ours-quic", "go-quic")}))
    print("\ntargets (median of same-round ratios):")
    for v in verdicts:
        extra = "" if v["ratio"] is None else f"  ({report._fmt(v['ratio'])})"
        print(f"  {v['result']:>4}  {v['target']}{extra}")
    unavailable = [s for s in stacks if not s.available]
    for s in unavailable:
        print(f"  stack {s.name} unavailable: {s.reason}")
    if args.load:
        from bench import load

        print("\nload (ours): connections and streams held open while echoing", flush=True)
        quick = ["--connections", "20", "--streams", "500", "--hold", "3"] if args.quick else []
        if load.main(quick) != 0:
            errors.append("load scenario failed")
    if dht_summary is not None:
        from bench import dht

        print("\nDHT and gossip (bench/dht.py): ours against go-libp2p-kad-dht / go-libp2p-pubsub, "
              "A/B in one network")
        print(dht.table(dht_summary))
    if errors:
        print(f"\n{len(errors)} measurement(s) failed:")
        for e in errors:
            print("  " + e.splitlines()[0])
    print("\nchange against the previous latest.json:")
    for line in report.changes(previous, summary, args.quick):
        print("  " + line)
    print(f"\nresults: {path}")
    return 1 if errors and not any(rounds) and not (dht_summary and not dht_summary["errors"]) else 0


if __name__ == "__main__":
    sys.exit(main())
