"""Turn rounds of measurements into medians, same-round ratios, target verdicts, a table and JSON.

A ratio is always ours/other of the same metric taken in the same round (so both stacks saw the
same background load), and its median over rounds is what the targets are judged on. For
lower-is-better metrics (latency, memory, start-up) a ratio below 1 is good.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from bench.scenarios import METRICS

Rounds = list[dict[str, dict[str, float]]]  # per round: metric -> stack -> value


def spread(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(rounds: Rounds, base: str, others: list[str]) -> dict:
    """{"values": metric -> stack -> spread, "ratios": metric -> "base/other" -> spread}."""
    values: dict[str, dict[str, dict]] = {}
    ratios: dict[str, dict[str, dict]] = {}
    for metric in METRICS:
        stacks = sorted({s for r in rounds for s in r.get(metric, {})})
        for stack in stacks:
            sp = spread([r[metric][stack] for r in rounds if stack in r.get(metric, {})])
            if sp:
                values.setdefault(metric, {})[stack] = sp
        for other in others:
            per_round = [r[metric][base] / r[metric][other] for r in rounds
                         if r.get(metric, {}).get(base) is not None
                         and r.get(metric, {}).get(other) not in (None, 0)]
            sp = spread(per_round)
            if sp:
                ratios.setdefault(metric, {})[f"{base}/{other}"] = sp
    return {"values": values, "ratios": ratios}


@dataclass(frozen=True)
class Target:
    label: str
    metric: str
    other: str
    op: str  # ">=" or "<="
    threshold: float


TARGETS = (
    Target("bulk >= 3x py-libp2p", "bulk", "py", ">=", 3.0),
    Target("bulk >= 1.0x go", "bulk", "go", ">=", 1.0),
    Target("echo 1 stream >= 3x py-libp2p", "echo 1", "py", ">=", 3.0),
    Target("echo 1 stream >= 1.0x go", "echo 1", "go", ">=", 1.0),
    Target("echo 16 streams >= 3x py-libp2p", "echo 16", "py", ">=", 3.0),
    Target("echo 16 streams >= 1.0x go", "echo 16", "go", ">=", 1.0),
    Target("handshakes >= 10x py-libp2p", "handshakes", "py", ">=", 10.0),
    Target("handshakes >= 1.0x go", "handshakes", "go", ">=", 1.0),
    Target("request/response seq >= 10x py-libp2p", "rr seq", "py", ">=", 10.0),
    Target("request/response seq >= 1.0x go", "rr seq", "go", ">=", 1.0),
    Target("request/response 64 in flight >= 10x py-libp2p", "rr 64", "py", ">=", 10.0),
    Target("request/response 64 in flight >= 1.0x go", "rr 64", "go", ">=", 1.0),
    Target("worker seq >= 1.0x go", "worker seq", "go", ">=", 1.0),
    Target("worker 64 in flight >= 1.0x go", "worker 64", "go", ">=", 1.0),
    Target("memory per idle conn <= 1/2 of py-libp2p", "mem/conn", "py", "<=", 0.5),
    Target("start-up <= 1/3 of py-libp2p", "startup", "py", "<=", 1 / 3),
)


def judge(summary: dict, base: str = "ours") -> list[dict]:
    verdicts = []
    for t in TARGETS:
        sp = summary["ratios"].get(t.metric, {}).get(f"{base}/{t.other}")
        if sp is None:
            verdicts.append({"target": t.label, "result": "n/a", "ratio": None})
            continue
        r = sp["median"]
        ok = r >= t.threshold if t.op == ">=" else r <= t.threshold
        verdicts.append({"target": t.label, "result": "pass" if ok else "miss", "ratio": r,
                         "threshold": t.threshold})
    fails = summary["values"].get("rr 64 failures", {}).get(base)
    verdicts.append({"target": "no request/response failures at 64 in flight",
                     "result": "n/a" if fails is None else ("pass" if fails["max"] == 0 else "miss"),
                     "ratio": None if fails is None else fails["max"]})
    return verdicts


def echo_best_chunks(runs: list[dict]) -> str:
    """`stack: row=KiB ...` for the chunk size with the best median echo rate per stack and row."""
    by: dict[tuple[str, str], dict[int, list[float]]] = {}
    for r in runs:
        by.setdefault((r["stack"], r["metric"]), {}).setdefault(r["chunk"], []).append(r["mb_per_s"])
    parts = []
    for (stack, metric), chunks in sorted(by.items()):
        best = max(chunks, key=lambda c: statistics.median(chunks[c]))
        parts.append(f"{stack} {metric}={best >> 10}")
    return ", ".join(parts)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def table(summary: dict, stacks: list[str], base: str, others: list[str], na: dict[str, set]) -> str:
    """Median [min-max] per stack, then the same-round ratios."""
    head = ["metric", "unit"] + stacks + [f"{base}/{o}" for o in others]
    rows = [head]
    for metric, m in METRICS.items():
        vals = summary["values"].get(metric)
        if not vals:
            continue
        row = [metric, m.unit + ("" if m.higher_is_better or not m.unit else " (lower better)")]
        for s in stacks:
            sp = vals.get(s)
            if sp is None:
                row.append("n/a" if metric.split()[0] in na.get(s, set()) else "-")
            else:
                row.append(f"{_fmt(sp['median'])} [{_fmt(sp['min'])}-{_fmt(sp['max'])}]")
        for o in others:
            sp = summary["ratios"].get(metric, {}).get(f"{base}/{o}")
            row.append("-" if sp is None else f"{_fmt(sp['median'])}x [{_fmt(sp['min'])}-{_fmt(sp['max'])}]")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def changes(previous: dict | None, summary: dict, quick: bool) -> list[str]:
    """Median changes against the previous latest.json (same metric, same stack)."""
    if not previous:
        return ["(no previous results to compare with)"]
    out = []
    if previous.get("options", {}).get("quick") != quick:
        out.append("note: the previous run used other sizes (--quick differs): changes mix sizes")
    old_values = previous.get("summary", {}).get("values", {})
    for metric, stacks in summary["values"].items():
        for stack, sp in stacks.items():
            old = old_values.get(metric, {}).get(stack)
            if not old or not old.get("median"):
                continue
            pct = (sp["median"] - old["median"]) / old["median"] * 100
            better = pct > 0 if METRICS[metric].higher_is_better else pct < 0
            mark = "" if abs(pct) < 5 else (" (better)" if better else " (worse)")
            out.append(f"{metric:>20} {stack:<12} {_fmt(old['median']):>8} -> "
                       f"{_fmt(sp['median']):>8}  {pct:+6.1f}%{mark}")
    if not any(line.startswith(" ") for line in out):
        out.append("(nothing comparable in the previous results)")
    return out


def write_results(result_dir: Path, stamp: str, doc: dict) -> tuple[Path, dict | None]:
    """Write <stamp>.json and latest.json; return the path and the previous latest (if any)."""
    result_dir.mkdir(parents=True, exist_ok=True)
    latest = result_dir / "latest.json"
    previous = None
    if latest.exists():
        try:
            previous = json.loads(latest.read_text())
        except ValueError:
            previous = None
    path = result_dir / f"{stamp}.json"
    text = json.dumps(doc, indent=1, sort_keys=True)
    path.write_text(text)
    latest.write_text(text)
    return path, previous
