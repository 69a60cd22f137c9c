"""DHT and gossip rows (issue 11): lookups and GossipSub in one local network of Go and Python nodes.

`python -m bench.dht` (or `python -m bench --scenarios dht`) starts the interop tests' Go network
(tests/interop/godht: go-libp2p v0.36.3, go-libp2p-kad-dht v0.26.1 and go-libp2p-pubsub v0.12.0, N
nodes in one process, DHT as masa runs it: `/masa`, K = 100, alpha = 100) and two of our nodes in
this process (Host + KadService(masa_config()) + PubSubService), all subscribed to masa's gossip
topic. Then, A/B within the same run so both sides see the same load:

* lookups: FindPeer of a node the finder is not connected to (the connection is dropped first),
  ours and go's alternating, target by target: milliseconds, FIND_NODE queries sent, and for ours
  the hops to the target (referrals from our routing table to it: 0 when the table held it, as
  every node's does in a network this small with K = 100, and then we dial it without a lookup;
  go's FindPeer does not report hops), and ours again from a client-mode node whose table holds
  only the bootnode (1 hop: the bootnode refers the target);
* gossip, one message at a time: a Python node and a Go node publish in turn (100-byte messages,
  a pause between): delivery latency to every other subscriber, p50 and p99;
* gossip, bursts: `--burst` messages back to back from a Python node, then from a Go node (the
  order alternates per round): messages published per second, share delivered, latency p50/p99.

Latency is the receiver's clock minus the sender's, both wall clocks of this machine. Prints a
table (and the JSON with --json). Exit status 1 when a measurement failed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "/masa/gossip/v0.8.4"
PAYLOAD = 100


def _godht() -> Any:
    """The interop tests' driver of the Go network (it builds the Go program, cached)."""
    interop = str(ROOT / "tests" / "interop")
    if interop not in sys.path:
        sys.path.insert(0, interop)
    import godht

    return godht


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@dataclass
class Results:
    lookup_ms: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "go": []})
    lookup_queries: dict[str, list[int]] = field(default_factory=lambda: {"ours": [], "go": []})
    lookup_hops: list[int] = field(default_factory=list)
    lookup_failures: dict[str, int] = field(default_factory=lambda: {"ours": 0, "go": 0})
    go_finds_ours_ms: list[float] = field(default_factory=list)
    fresh_ms: list[float] = field(default_factory=list)
    fresh_queries: list[int] = field(default_factory=list)
    fresh_hops: list[int] = field(default_factory=list)
    gossip_ms: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "go": []})
    gossip_missing: dict[str, int] = field(default_factory=lambda: {"ours": 0, "go": 0})
    burst_rate: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "go": []})
    burst_delivered: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "go": []})
    burst_ms: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "go": []})
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for side in ("ours", "go"):
            ms = self.lookup_ms[side]
            out[side] = {
                "lookup_p50_ms": pct(ms, 0.5), "lookup_p99_ms": pct(ms, 0.99), "lookups": len(ms),
                "lookup_failures": self.lookup_failures[side],
                "lookup_queries_median": statistics.median(self.lookup_queries[side])
                if self.lookup_queries[side] else None,
                "gossip_p50_ms": pct(self.gossip_ms[side], 0.5),
                "gossip_p99_ms": pct(self.gossip_ms[side], 0.99),
                "gossip_deliveries": len(self.gossip_ms[side]),
                "gossip_missing": self.gossip_missing[side],
                "burst_msgs_per_s": statistics.median(self.burst_rate[side]) if self.burst_rate[side] else None,
                "burst_delivered": statistics.median(self.burst_delivered[side])
                if self.burst_delivered[side] else None,
                "burst_p50_ms": pct(self.burst_ms[side], 0.5),
                "burst_p99_ms": pct(self.burst_ms[side], 0.99),
            }
        out["ours"]["lookup_hops_max"] = max(self.lookup_hops) if self.lookup_hops else None
        out["ours"]["lookup_hops_median"] = statistics.median(self.lookup_hops) if self.lookup_hops else None
        out["go_finds_ours_p50_ms"] = pct(self.go_finds_ours_ms, 0.5)
        out["ours_from_bootnode_only"] = {
            "lookup_p50_ms": pct(self.fresh_ms, 0.5), "lookup_p99_ms": pct(self.fresh_ms, 0.99),
            "lookups": len(self.fresh_ms),
            "queries_median": statistics.median(self.fresh_queries) if self.fresh_queries else None,
            "hops_median": statistics.median(self.fresh_hops) if self.fresh_hops else None,
            "hops_max": max(self.fresh_hops) if self.fresh_hops else None}
        out["errors"] = list(self.errors)
        return out


async def _drop(host: Any, net: Any, peer_id: str, node: int) -> None:
    """Close our connection to Go node `node` and wait (bounded) until go saw it end."""
    from p2p.identity import PeerId

    await host.disconnect(PeerId.from_string(peer_id))
    with anyio.fail_after(10):
        while str(host.peer_id) in (await net.acall("connected", node=node))["peers"]:
            await anyio.sleep(0.01)


async def _go_disconnect(net: Any, node: int, other: int) -> None:
    await net.acall("disconnect", node=node, peer=net.peer_id(other))
    with anyio.fail_after(10):
        while net.peer_id(other) in (await net.acall("connected", node=node))["peers"]:
            await anyio.sleep(0.01)


async def measure_lookups(res: Results, net: Any, hosts: list[Any], kads: list[Any], rounds: int) -> None:
    """Ours (node P1) and go's (the Go node after the target) find each Go node in turn, target
    by target, alternating who goes first; then each Go node finds P2 once."""
    from p2p.identity import PeerId

    n = len(net.nodes)
    for rnd in range(rounds):
        for target in range(1, n):
            finder = (target % (n - 1)) + 1  # another Go node, never node 0 (the bootnode)
            if finder == target:
                finder = 1 if target != 1 else 2
            order = ("ours", "go") if (rnd + target) % 2 == 0 else ("go", "ours")
            for side in order:
                try:
                    if side == "ours":
                        gid = PeerId.from_string(net.peer_id(target))
                        await _drop(hosts[0], net, net.peer_id(target), target)
                        t0 = time.perf_counter()
                        await kads[0].find_peer(gid, timeout=10)
                        res.lookup_ms["ours"].append((time.perf_counter() - t0) * 1000)
                        stats = kads[0].last_lookup
                        res.lookup_queries["ours"].append(stats.queries)
                        if stats.hops is not None:
                            res.lookup_hops.append(stats.hops)
                    else:
                        await _go_disconnect(net, finder, target)
                        got = await net.acall("findpeer", node=finder, peer=net.peer_id(target),
                                              timeout_ms=10000)
                        if got.get("was_connected"):
                            raise RuntimeError("go was still connected to the target")
                        res.lookup_ms["go"].append(got["ms"])
                        res.lookup_queries["go"].append(got["queries"])
                except Exception as exc:  # one failed lookup is a figure, not the end of the run
                    res.lookup_failures[side] += 1
                    res.errors.append(f"lookup {side} -> go{target}: {exc!r}"[:300])
    # From a table holding only the bootnode (a client-mode node that just joined): hops > 0.
    boot = PeerId.from_string(net.peer_id(0))
    fresh = kads[2]
    for rnd in range(rounds):
        for target in range(1, n):
            gid = PeerId.from_string(net.peer_id(target))
            try:
                for p in fresh.routing_table.peers():
                    if p != boot:
                        fresh.routing_table.remove(p)
                await _drop(hosts[2], net, net.peer_id(target), target)
                t0 = time.perf_counter()
                await fresh.find_peer(gid, timeout=10)
                res.fresh_ms.append((time.perf_counter() - t0) * 1000)
                stats = fresh.last_lookup
                res.fresh_queries.append(stats.queries)
                if stats.hops is not None:
                    res.fresh_hops.append(stats.hops)
            except Exception as exc:
                res.errors.append(f"lookup from a bootnode-only table -> go{target}: {exc!r}"[:300])
    for i in range(1, n):  # go finding a Python node it is not connected to
        try:
            await _drop(hosts[1], net, net.peer_id(i), i)
            got = await net.acall("findpeer", node=i, peer=str(hosts[1].peer_id), timeout_ms=10000)
            res.go_finds_ours_ms.append(got["ms"])
        except Exception as exc:
            res.errors.append(f"go{i} finding ours: {exc!r}"[:300])


async def _go_messages(net: Any, n: int) -> list[list[tuple[bytes, float]]]:
    out = []
    for i in range(n):
        msgs = (await net.acall("messages", node=i, topic=TOPIC))["messages"]
        out.append([(bytes.fromhex(m["data"]), m["at_ms"]) for m in msgs])
    return out


async def _collect(net: Any, got: dict[Any, list[tuple[bytes, float]]], tag: bytes, count: int,
                   publisher: Any, settle: float = 1.0, limit: float = 15.0) -> list[list[tuple[bytes, float]]]:
    """Every subscriber's deliveries of messages tagged `tag` (the publisher's own left out), once
    all `count` arrived everywhere or nothing new came for `settle` seconds."""
    n = len(net.nodes)
    deliveries: list[list[tuple[bytes, float]]] = []
    seen, stable = -1, time.monotonic()
    with anyio.move_on_after(limit):
        while time.monotonic() - stable < settle:
            await anyio.sleep(0.1)
            go = await _go_messages(net, n)
            deliveries = [[(d, at) for d, at in msgs if d[8:12] == tag]
                          for i, msgs in enumerate(go) if publisher != i]
            deliveries += [[(d, at) for d, at in got[h] if d[8:12] == tag] for h in got if h is not publisher]
            if all(len(d) >= count for d in deliveries):
                break
            total = sum(len(d) for d in deliveries)
            if total != seen:
                seen, stable = total, time.monotonic()
    return deliveries


async def measure_gossip(res: Results, net: Any, hosts: list[Any], pss: list[Any],
                         got: dict[Any, list[tuple[bytes, float]]], messages: int, burst: int,
                         rounds: int, gap: float) -> None:
    go_pub = 3 % len(net.nodes)
    # one at a time, Python and Go publishers in turn
    sent: dict[bytes, tuple[str, float]] = {}
    for k in range(messages):
        for side in (("ours", "go") if k % 2 == 0 else ("go", "ours")):
            data = k.to_bytes(8, "big") + (b"1py " if side == "ours" else b"1go ") + bytes(PAYLOAD - 12)
            if side == "ours":
                sent[data] = (side, time.time() * 1000)
                await pss[0].publish(TOPIC, data)
            else:
                r = await net.acall("publish", node=go_pub, topic=TOPIC, data=data.hex())
                sent[data] = (side, r["at_ms"])
            await anyio.sleep(gap)
    for side, tag, publisher in (("ours", b"1py ", hosts[0]), ("go", b"1go ", go_pub)):
        deliveries = await _collect(net, got, tag, messages, publisher)
        for d in deliveries:
            res.gossip_missing[side] += max(0, messages - len({data for data, _ in d}))
            res.gossip_ms[side].extend(at - sent[data][1] for data, at in d if data in sent)
    # bursts
    for rnd in range(rounds):
        for side in (("ours", "go") if rnd % 2 == 0 else ("go", "ours")):
            tag = (b"b%dp " if side == "ours" else b"b%dg ") % (rnd % 10)
            if side == "ours":
                sent_at: dict[bytes, float] = {}
                t0 = time.time() * 1000
                for i in range(burst):
                    data = i.to_bytes(8, "big") + tag + bytes(PAYLOAD - 12)
                    sent_at[data] = time.time() * 1000
                    await pss[0].publish(TOPIC, data)
                t_end = time.time() * 1000
                publisher: Any = hosts[0]
            else:
                r = await net.acall("publishmany", node=go_pub, topic=TOPIC, count=burst, size=PAYLOAD,
                                    data=(tag + bytes(PAYLOAD - 12)).hex(), timeout_ms=60000, timeout=90)
                t0, t_end = r["at_ms"], r["end_ms"]
                sent_at = {i.to_bytes(8, "big") + tag + bytes(PAYLOAD - 12): at
                           for i, at in enumerate(r["sent_ms"])}
                publisher = go_pub
            deliveries = await _collect(net, got, tag, burst, publisher, settle=1.5, limit=30)
            total = sum(len({data for data, _ in d}) for d in deliveries)
            res.burst_rate[side].append(burst / max(t_end - t0, 1e-3) * 1000)
            res.burst_delivered[side].append(total / (burst * max(1, len(deliveries))))
            res.burst_ms[side].extend(at - sent_at[data] for d in deliveries for data, at in d if data in sent_at)


async def run(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    from p2p.host import Host
    from p2p.identity import KeyType, PrivateKey
    from p2p.kad.config import masa_config
    from p2p.kad.service import KadService
    from p2p.pubsub.service import PubSubService

    godht = _godht()
    log(f"dht bench: building and starting {args.go_nodes} Go nodes (tests/interop/godht) ...")
    net = await anyio.to_thread.run_sync(lambda: godht.GoDht(
        "-n", args.go_nodes, "-prefix", "/masa", "-bucket", 100, "-alpha", 100, "-topics", TOPIC))
    res = Results()
    started = time.perf_counter()
    try:
        with anyio.fail_after(args.timeout):
            async with Host(PrivateKey.generate(KeyType.Secp256k1)) as h1, \
                    Host(PrivateKey.generate(KeyType.Secp256k1)) as h2, \
                    Host(PrivateKey.generate(KeyType.Secp256k1)) as h3:
                hosts = [h1, h2]
                kads = [KadService(h, masa_config()) for h in hosts]
                pss = [PubSubService(h) for h in hosts]
                # h3: a client-mode node that joined through the bootnode only (lookup hops)
                kads.append(KadService(h3, masa_config(mode="client", auto_refresh=False)))
                await h3.listen("/ip4/127.0.0.1/tcp/0")
                await kads[2].bootstrap([net.addr(0)], self_lookup=False)
                got: dict[Any, list[tuple[bytes, float]]] = {h: [] for h in hosts}
                subs = {h: ps.subscribe(TOPIC) for h, ps in zip(hosts, pss)}
                for h in hosts:
                    await h.listen("/ip4/127.0.0.1/tcp/0")
                await kads[0].bootstrap([net.addr(0)])
                await kads[1].bootstrap([net.addr(len(net.nodes) // 2)])
                with anyio.fail_after(20):
                    while not all(ps.mesh_peers(TOPIC) for ps in pss):
                        await anyio.sleep(0.05)
                await anyio.sleep(1.2)  # a heartbeat everywhere: the meshes are built

                async def collect(h: Any) -> None:
                    async for msg in subs[h]:
                        got[h].append((msg.data, time.time() * 1000))

                async with anyio.create_task_group() as tg:
                    for h in hosts:
                        tg.start_soon(collect, h)
                    log("dht bench: lookups ...")
                    await measure_lookups(res, net, [*hosts, h3], kads, args.rounds)
                    log("dht bench: gossip ...")
                    await measure_gossip(res, net, hosts, pss, got, args.messages, args.burst,
                                         args.rounds, args.gap)
                    tg.cancel_scope.cancel()
    except Exception as exc:
        res.errors.append(f"dht bench aborted: {exc!r}"[:500])
    finally:
        await anyio.to_thread.run_sync(net.stop)
    out = res.summary()
    out["setup"] = {"go_nodes": args.go_nodes, "python_nodes": 2, "rounds": args.rounds,
                    "messages": args.messages, "burst": args.burst, "payload": PAYLOAD,
                    "seconds": round(time.perf_counter() - started, 1)}
    return out


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(s: dict[str, Any]) -> str:
    o, g = s["ours"], s["go"]
    setup = s["setup"]
    rows = [
        ("FindPeer, not connected: p50 / p99 ms",
         f"{_f(o['lookup_p50_ms'])} / {_f(o['lookup_p99_ms'])}", f"{_f(g['lookup_p50_ms'])} / {_f(g['lookup_p99_ms'])}"),
        ("  lookups (failed)", f"{o['lookups']} ({o['lookup_failures']})", f"{g['lookups']} ({g['lookup_failures']})"),
        ("  FIND_NODE queries per lookup (median)", _f(o["lookup_queries_median"]), _f(g["lookup_queries_median"])),
        ("  hops to the target, median / max (0: in the table)", f"{_f(o['lookup_hops_median'])} / {_f(o['lookup_hops_max'])}",
         "n/a"),
        ("  from a table holding only the bootnode: p50 / p99 ms",
         f"{_f(s['ours_from_bootnode_only']['lookup_p50_ms'])} / {_f(s['ours_from_bootnode_only']['lookup_p99_ms'])}",
         "n/a"),
        ("    its queries / hops (median, max hops)",
         f"{_f(s['ours_from_bootnode_only']['queries_median'])} / {_f(s['ours_from_bootnode_only']['hops_median'])}"
         f", {_f(s['ours_from_bootnode_only']['hops_max'])}", "n/a"),
        ("go's FindPeer of our node: p50 ms", "", _f(s["go_finds_ours_p50_ms"])),
        ("gossip one at a time: p50 / p99 ms",
         f"{_f(o['gossip_p50_ms'])} / {_f(o['gossip_p99_ms'])}", f"{_f(g['gossip_p50_ms'])} / {_f(g['gossip_p99_ms'])}"),
        ("  deliveries (missing)", f"{o['gossip_deliveries']} ({o['gossip_missing']})",
         f"{g['gossip_deliveries']} ({g['gossip_missing']})"),
        (f"gossip burst of {setup['burst']}: published msg/s", _f(o["burst_msgs_per_s"], 0), _f(g["burst_msgs_per_s"], 0)),
        ("  delivered", _f(None if o["burst_delivered"] is None else 100 * o["burst_delivered"]) + " %",
         _f(None if g["burst_delivered"] is None else 100 * g["burst_delivered"]) + " %"),
        ("  latency p50 / p99 ms", f"{_f(o['burst_p50_ms'], 0)} / {_f(o['burst_p99_ms'], 0)}",
         f"{_f(g['burst_p50_ms'], 0)} / {_f(g['burst_p99_ms'], 0)}"),
    ]
    width = max(len(r[0]) for r in rows)
    head = (f"DHT and gossip: {setup['go_nodes']} Go nodes (kad-dht v0.26.1, pubsub v0.12.0) + 2 of ours "
            "(+ 1 client-mode for the bootnode-only row), "
            f"/masa K=100 alpha=100, {setup['rounds']} round(s), {setup['seconds']} s; publisher of a row "
            "is ours or go, receivers are every other node")
    lines = [head, f"{'':<{width}}  {'ours':>16}  {'go':>16}"]
    lines += [f"{name:<{width}}  {a:>16}  {b:>16}" for name, a, b in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dht", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--go-nodes", type=int, default=8, help="Go nodes in the network (default 8)")
    p.add_argument("--rounds", type=int, default=3, help="lookup rounds over every Go node, and bursts per side")
    p.add_argument("--messages", type=int, default=40, help="one-at-a-time messages per publisher")
    p.add_argument("--burst", type=int, default=200, help="messages per burst")
    p.add_argument("--gap", type=float, default=0.03, help="seconds between one-at-a-time messages")
    p.add_argument("--timeout", type=float, default=300.0, help="bound on the whole run, seconds")
    p.add_argument("--quick", action="store_true", help="4 Go nodes, 1 round, 6 messages, bursts of 20")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = p.parse_args(argv)
    if args.quick:
        args.go_nodes, args.rounds, args.messages, args.burst = 4, 1, 6, 20
    if args.go_nodes < 3 or args.rounds < 1 or args.messages < 1 or args.burst < 1:
        p.error("--go-nodes >= 3, --rounds, --messages and --burst >= 1")
    return args


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(argv: list[str] | None = None, log: Any = _stderr) -> dict[str, Any]:
    """Run the DHT and gossip measurements with these command-line options; the summary."""
    args = parse_args(argv)
    return anyio.run(run, args, log)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = anyio.run(run, args, _stderr)
    print(table(summary))
    for err in summary["errors"]:
        print("  error: " + err)
    if args.json:
        print(json.dumps(summary))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
