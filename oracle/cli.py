"""The oracle command line: `python -m oracle node|work|peers|demo`.

Same contract as `python -m p2p`: results are JSON lines on stdout, logs go to stderr, an expected
failure exits 1 with `{"error": "..."}` and no traceback.

- `node` prints `{"peer_id", "addrs", ...}` once listening, connects to its `--peer`s, serves the
  worker protocol until SIGINT/SIGTERM, then prints `{"stopped": true, "metrics": ...}` and exits 0.
  Its identity persists like a masa node's: `--key-file`, else env PRIVATE_KEY (hex), else the file
  named by env MASA_PRIV_KEY_FILE or ~/.masa/masa_oracle_key (created with a new secp256k1 key).
- `node` announces its node data (staked unless `--no-staked`, category flags from its handlers) to
  every peer serving masa's oracle protocol and keeps its `--peer`/`--bootnode`s connected: a Go
  masa node connected to it selects it for work of those categories.
- `peers` connects to its `--peer`s, waits for their node data (a masa node pushes its view of the
  network through nodeDataSync) and prints the network as JSON.
- `work` starts a client node, connects, runs DistributeWork and prints the WorkResponse as Go's
  encoding/json writes it; exit 0 only when the response carries no error.
- `demo` runs several nodes on this machine and distributes work across them (oracle/demo.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from p2p.cli import (
    LOG_LEVELS,
    CliError,
    JsonArgumentParser,
    MetricsEndpoint,
    emit,
    error_text,
    log_level,
    metrics_address,
    config_option,
    peer_id_arg,
    positive_float,
    positive_int,
    prog_name,
    report_failure,
    setup_logging,
)
from p2p.config import HostConfig
from p2p.errors import P2PError, PeerIdMismatch
from p2p.identity import KeyType, PeerId, PrivateKey, load_private_key_file, parse_key_type, save_private_key_file
from p2p.host import Host
from p2p.trace.cli import add_trace_options, tracer_from_args

from oracle.gating import WorkLimits
from oracle.handlers import HandlerLoadError, default_handlers, handle_test, load_handler
from oracle.manager import ERR_NO_WORKERS, WorkerConfig, WorkHandler
from oracle.memory import return_large_blocks
from oracle.messages import WorkResponse
from oracle.node import NodeConfig, OracleNode, SelfConnectError
from oracle.protocol import PROTOCOL_VERSION

__all__ = ["CliError", "build_handlers", "build_parser", "main", "resolve_identity"]

log = logging.getLogger("oracle.cli")

KEY_TYPES = ("ed25519", "secp256k1", "ecdsa", "rsa")
# TCP and QUIC, as a masa node with TCP turned on (masa listens on QUIC by default).
DEFAULT_LISTEN = ("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1")
KEY_FILE_NAME = "masa_oracle_key"  # masa pkg/config constants: KeyFileName


# ---- identity -----------------------------------------------------------------------------------


def default_key_path(environ: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """masa's key file location: $MASA_PRIV_KEY_FILE, else ~/.masa/masa_oracle_key."""
    explicit = environ.get("MASA_PRIV_KEY_FILE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(environ.get("HOME") or Path.home()) / ".masa" / KEY_FILE_NAME


def load_or_create_key(path: Path) -> tuple[PrivateKey, bool]:
    """Load a key file (masa's hex or go's binary); create it with a new secp256k1 key if missing."""
    if path.exists():
        return load_private_key_file(path), False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = PrivateKey.generate(KeyType.Secp256k1)
    save_private_key_file(path, key, hex_text=True)
    return key, True


def resolve_identity(
    key_type: str | None,
    key_file: str | None,
    *,
    persistent: bool = True,
    environ: os._Environ[str] | dict[str, str] = os.environ,
) -> tuple[PrivateKey, str]:
    """Pick the node's key and say where it came from.

    Order: --key-type (ephemeral), --key-file, env PRIVATE_KEY, then the default key file. With
    `persistent=False` (the `work` client) the fallback is an ephemeral secp256k1 key instead.
    """
    if key_type:
        return PrivateKey.generate(parse_key_type(key_type)), f"ephemeral {key_type} key"
    if key_file:
        key, created = load_or_create_key(Path(key_file).expanduser())
        return key, f"{'new' if created else 'existing'} key file {key_file}"
    if not persistent:
        return PrivateKey.generate(KeyType.Secp256k1), "ephemeral secp256k1 key"
    hex_key = environ.get("PRIVATE_KEY", "").strip()
    if hex_key:
        try:
            raw = bytes.fromhex(hex_key)
        except ValueError:
            raise CliError("env PRIVATE_KEY is not hex") from None
        return PrivateKey.from_protobuf(raw), "env PRIVATE_KEY"
    path = default_key_path(environ)
    key, created = load_or_create_key(path)
    return key, f"{'new' if created else 'existing'} key file {path}"


# ---- handlers -----------------------------------------------------------------------------------


def build_handlers(workers: Sequence[str], specs: Sequence[str], *, default_test: bool = True) -> dict[str, WorkHandler]:
    """--worker TYPE enables a built-in handler; --handler TYPE=module:callable plugs one in.

    With neither (and `default_test`), the node serves `test` so that a bare node is a worker.
    """
    builtin = default_handlers()
    handlers: dict[str, WorkHandler] = {}
    for spec in specs:
        work_type, sep, target = spec.partition("=")
        if not sep or not work_type.strip() or not target.strip():
            raise CliError(f"--handler {spec!r}: expected TYPE=package.module:callable")
        try:
            handlers[work_type.strip()] = load_handler(target.strip())
        except HandlerLoadError as exc:
            raise CliError(f"--handler {spec!r}: {exc}") from None
    for work_type in workers:
        if work_type in handlers:
            continue
        if work_type not in builtin:
            raise CliError(
                f"unknown work type {work_type!r}: built-in types are {', '.join(sorted(builtin))}; "
                "add others with --handler TYPE=package.module:callable"
            )
        handlers[work_type] = builtin[work_type]
    if not handlers and not workers and default_test:
        handlers["test"] = handle_test
    return handlers


# ---- config file --------------------------------------------------------------------------------

_LIST_KEYS = {"listen", "worker", "peer", "bootnode", "allow", "handler"}
_SCALAR_KEYS = {
    "key_type", "key_file", "protocol_version", "env", "connect_timeout",
    "max_concurrent_per_peer", "max_concurrent_total", "limits", "staked", "metrics", "dht", "work_limits",
    "gossip_third_party",
}


def apply_config_file(args: argparse.Namespace, path: str) -> None:
    """Merge a JSON config (keys as the long options, `-` or `_`): lists extend, flags win."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CliError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"config file {path}: expected a JSON object")
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key == "bootnode":
            key = "peer"  # masa's name for the peers a node joins through
        if key == "handler" and isinstance(value, dict):
            value = [f"{k}={v}" for k, v in value.items()]
        if key in _LIST_KEYS:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CliError(f"config file {path}: {raw_key!r} must be a list of strings")
            setattr(args, key, value + list(getattr(args, key) or []))
        elif key in _SCALAR_KEYS:
            if getattr(args, key, None) in (None, ""):
                setattr(args, key, value)
        else:
            raise CliError(f"config file {path}: unknown key {raw_key!r}")
    if args.key_type and args.key_file:
        raise CliError("key_type and key_file are mutually exclusive")


# ---- commands -----------------------------------------------------------------------------------


def _check_addrs(option: str, addrs: Sequence[str]) -> None:
    """Refuse a malformed multiaddr, or one no transport of the host handles, before anything
    starts (a node should not die after its first line)."""
    if not addrs:
        return
    host = Host()  # not started: only its transports' address checks are used
    listen = option == "--listen"
    for addr in addrs:
        try:
            usable = host.can_listen(addr) if listen else host.can_dial(addr)
        except (ValueError, P2PError) as exc:
            raise CliError(f"{option} {addr!r}: {exc}") from None
        if not usable:
            names = ", ".join(t.name for t in host.transports)
            raise CliError(f"{option} {addr!r}: no transport ({names}) can "
                           f"{'listen on' if listen else 'dial'} it")


def _host_config(limits: Any) -> HostConfig:
    """`--limits` (JSON text, `@file`, or a mapping from --config): HostConfig fields."""
    if limits is None:
        return HostConfig()
    return config_option("--limits", limits, HostConfig.from_mapping)


def _refuse_own_peer_id(identity: PrivateKey, addrs: Sequence[str]) -> None:
    """A --peer with our own peer ID: two processes share a key file, or a copy-paste slip."""
    own = PeerId.from_public_key(identity.public_key)
    for addr in addrs:
        peer = addr.rsplit("/p2p/", 1)[1].split("/")[0] if "/p2p/" in addr else ""
        if peer and peer == str(own):
            raise CliError(str(SelfConnectError(
                f"--peer {addr} is this node's own peer ID {own}: refusing to connect to ourselves "
                "(is another process using the same key file?)")))


def _work_limits(value: Any) -> WorkLimits:
    """`--work-limits` (JSON text, `@file`, or a mapping from --config): WorkLimits fields."""
    if value is None:
        return WorkLimits()
    return config_option("--work-limits", value, WorkLimits.from_mapping)


def _dht_on(args: argparse.Namespace) -> bool:
    """`node` runs the DHT unless --no-dht (every masa node runs it); `work` and `peers` only with --dht."""
    flag = getattr(args, "dht", None)
    if getattr(args, "command", None) == "node":
        return flag is not False
    return bool(flag)


def _node_config(args: argparse.Namespace, **overrides: Any) -> NodeConfig:
    _check_addrs("--peer", args.peer or [])
    _check_addrs("--listen", args.listen or [])
    allowed = tuple(args.allow) if args.allow else None
    fields: dict[str, Any] = dict(
        listen=tuple(args.listen or DEFAULT_LISTEN),
        protocol_version=args.protocol_version or PROTOCOL_VERSION,
        env=args.env or "",
        allowed_peers=allowed,
        is_staked=args.staked is not False,
        dht=_dht_on(args),
    )
    third_party = getattr(args, "gossip_third_party", None)
    if third_party is not None:  # `node` only; from --config it must be a JSON bool
        if not isinstance(third_party, bool):
            raise CliError(f"gossip_third_party must be true or false, not {third_party!r}")
        if third_party and not fields["dht"]:
            raise CliError("--gossip-third-party needs the DHT and its gossip topic (drop --no-dht)")
        fields["gossip_third_party"] = third_party
    fields.update(overrides)
    try:
        return NodeConfig(**fields)
    except (ValueError, P2PError) as exc:
        raise CliError(f"bad node configuration: {exc}") from None


async def cmd_node(args: argparse.Namespace) -> int:
    return_large_blocks()  # answers' memory goes back to the system once they are gone
    config = _node_config(
        args,
        connect_timeout=float(args.connect_timeout or 10.0),
        max_concurrent_per_peer=int(args.max_concurrent_per_peer or 4),
        max_concurrent_total=int(args.max_concurrent_total or 32),
        host=_host_config(args.limits),
        work_limits=_work_limits(args.work_limits),
    )
    handlers = build_handlers(args.worker or [], args.handler or [])
    identity, source = resolve_identity(args.key_type, args.key_file)  # last: may create the key file
    _refuse_own_peer_id(identity, args.peer or [])
    endpoint = MetricsEndpoint(args.metrics)
    with contextlib.ExitStack() as stack:
        stack.callback(endpoint.close)
        signals = stack.enter_context(anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        async with OracleNode(identity, config, handlers=handlers, trace=args.tracer,
                              metrics=endpoint.metrics) as node:
            log.info("identity from %s", source)
            line = {**node.info(), "protocol": node.worker.protocol_id,
                    "work_types": node.manager.work_types(),
                    "membership": list(node.membership.protocols), "identity": source}
            if endpoint.url:
                line["metrics"] = endpoint.url
            emit(line)
            node.keep_connected(list(args.peer or []))  # connects in the background, redials
            async for signum in signals:
                log.info("signal %s: shutting down", signum)
                break
            emit({"stopped": True, "peer_id": str(node.peer_id), "metrics": node.metrics()})
    return 0


async def cmd_work(args: argparse.Namespace) -> int:
    timeout = float(args.timeout)
    if not timeout > 0:
        raise CliError("--timeout must be > 0")
    identity, _ = resolve_identity(args.key_type, args.key_file, persistent=False)
    handlers = build_handlers(args.worker or [], args.handler or [], default_test=False)
    worker = WorkerConfig(
        worker_timeout=timeout, worker_response_timeout=timeout, connection_timeout=min(5.0, timeout)
    )
    # Connecting gets a share of the budget, so that a peer that never answers is reported as such
    # (a timeout, named) before the whole command's deadline ends everything.
    config = _node_config(args, listen=(), worker=worker, connect_timeout=0.4 * timeout,
                          identify_timeout=0.4 * timeout, keep_connected=False)
    _refuse_own_peer_id(identity, args.peer or [])
    response: WorkResponse | None = None
    peers = list(args.peer or [])
    connected: dict[str, PeerId | BaseException] = {}
    protocol_id = ""
    not_workers: set[str] = set()
    with anyio.move_on_after(timeout):
        async with OracleNode(identity, config, handlers=handlers, trace=args.tracer) as node:
            protocol_id = node.worker.protocol_id
            connected = await node.connect_all(peers)
            not_workers = {str(p) for p in connected.values()
                           if isinstance(p, PeerId) and not node.serves_worker(p)}
            response = await node.submit(args.type, args.data, request_id=args.request_id or "")
    if response is None:
        emit({"error": f"no response within {timeout} s" + _peer_report(peers, connected, set(), protocol_id)})
        return 1
    if response.error:
        text = response.error
        if text == ERR_NO_WORKERS:
            text += _peer_report(peers, connected, not_workers, protocol_id) if peers else (
                ": no --peer given (name a worker node with --peer /ip4/HOST/tcp/PORT/p2p/PEER_ID)")
        # Human-facing: plain JSON, not Go's \u003c escapes (a success prints Go's bytes below).
        emit({"error": " ".join(text.split())})
        return 1
    sys.stdout.write(response.to_go_json().decode("utf-8") + "\n")
    sys.stdout.flush()
    return 0


def _peer_report(peers: Sequence[str], connected: Mapping[str, PeerId | BaseException],
                 not_workers: set[str], protocol_id: str) -> str:
    """Why each --peer is not a worker we could use: `: worker <id> (<addr>): connection refused; ...`."""
    parts = []
    for addr in peers:
        result = connected.get(str(addr))
        where, _, claimed = addr.partition("/p2p/")
        if isinstance(result, BaseException):
            who = f"worker {claimed} ({where})" if claimed else f"worker at {addr}"
            parts.append(f"{who}: {_connect_reason(result)}")
        elif result is None:
            parts.append(f"worker at {addr}: not reached in time")
        elif str(result) in not_workers:
            parts.append(f"peer {result} at {addr}: does not serve {protocol_id}")
    return (": " + "; ".join(parts)) if parts else ""


def _connect_reason(exc: BaseException) -> str:
    if isinstance(exc, PeerIdMismatch):
        return f"peer ID mismatch: the node there is {exc.actual}"
    text = error_text(exc)
    if isinstance(exc, TimeoutError) or "timed out" in text:
        return f"timeout ({text})" if not text.startswith("timeout") else text
    return text


async def cmd_peers(args: argparse.Namespace) -> int:
    """Join through --peer, wait for node data, print the network as our tracker knows it."""
    wait = float(args.wait)
    if not wait > 0:
        raise CliError("--wait must be > 0")
    if not args.peer:
        raise CliError("peers needs at least one --peer (or --bootnode)")
    identity, _ = resolve_identity(args.key_type, args.key_file, persistent=False)
    config = _node_config(args, listen=(), keep_connected=False, node_data_wait=wait, is_staked=False)
    _refuse_own_peer_id(identity, args.peer or [])
    async with OracleNode(identity, config, trace=args.tracer) as node:
        await node.connect_all(list(args.peer))  # each waits (bounded) for that peer's node data
        connected = list(node.host.connected_peers())
        if not connected:
            raise CliError("could not connect to any --peer")
        # a masa node pushes its view (nodeDataSync) about 1 s after our announce: give it time
        await node.membership.wait_for(lambda: node.membership.stats["sync_entries"] > 0, wait)
        emit({"peer_id": str(node.peer_id), "connected": [str(p) for p in connected],
              "peers": node.network()})
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from oracle.demo import DemoOptions, run_demo

    options = DemoOptions(
        workers=args.workers, items=args.items, concurrency=args.concurrency, kill=not args.no_kill,
        trace=args.tracer,
    )
    result = 1
    # SIGINT/SIGTERM cancel the demo, whose clean-up kills its worker processes (a SIGKILL of the
    # demo itself reaches them through PR_SET_PDEATHSIG, see exit_with_parent).
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                nonlocal result
                async for signum in signals:
                    sys.stderr.write(f"demo stopped by {signal.Signals(signum).name}: stopping its workers\n")
                    result = 128 + signum
                    tg.cancel_scope.cancel()
                    return

            tg.start_soon(stop_on_signal)
            result = await run_demo(options)
            tg.cancel_scope.cancel()
    return result


def exit_with_parent(environ: Mapping[str, str] = os.environ) -> None:
    """A demo worker (env ORACLE_PARENT_PID) asks Linux for SIGTERM when its parent dies, so even a
    SIGKILL of the demo leaves no node behind. Elsewhere, or without the variable, nothing happens."""
    parent = environ.get("ORACLE_PARENT_PID", "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


# ---- plumbing -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = JsonArgumentParser(prog=prog_name("python -m oracle"), description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    level_help = f"stderr log level: {', '.join(LOG_LEVELS)} (default: $ORACLE_LOG or warning)"
    p.add_argument("--log-level", type=log_level, default=os.environ.get("ORACLE_LOG", "warning"),
                   metavar="LEVEL", help=level_help)
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio",
                   help="event loop the stack runs on (default asyncio)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    def common(sp: argparse.ArgumentParser) -> None:
        keys = sp.add_mutually_exclusive_group()
        keys.add_argument("--key-type", choices=KEY_TYPES, help="use a new ephemeral key of this type")
        keys.add_argument("--key-file", metavar="PATH",
                          help="masa key file (hex of the protobuf key); created if missing")
        sp.add_argument("--peer", "--bootnode", action="append", dest="peer", metavar="MULTIADDR",
                        help="connect to this peer, repeatable (/ip4/HOST/tcp/PORT/p2p/PEER_ID; "
                             "a node keeps it connected)")
        sp.add_argument("--worker", action="append", metavar="TYPE",
                        help="serve this built-in work type, repeatable (test, web)")
        sp.add_argument("--handler", action="append", metavar="TYPE=MODULE:CALLABLE",
                        help="serve TYPE with a plug-in handler, repeatable")
        sp.add_argument("--protocol-version", metavar="VERSION",
                        help=f"worker protocol version (default {PROTOCOL_VERSION})")
        sp.add_argument("--env", help="environment suffix of the protocol IDs (default none)")
        sp.add_argument("--allow", action="append", metavar="PEER_ID", type=peer_id_arg,
                        help="only these peers may submit work, repeatable (default: any)")
        sp.add_argument("--log-level", type=log_level, default=argparse.SUPPRESS, metavar="LEVEL",
                        help=level_help)
        sp.add_argument("--staked", action=argparse.BooleanOptionalAction, default=None,
                        help="announce isStaked (default: yes, as every masa node does)")
        add_trace_options(sp)

    n = sub.add_parser("node", help="run a worker node until SIGINT/SIGTERM")
    common(n)
    n.add_argument("--listen", action="append", metavar="MULTIADDR",
                   help=f"address to listen on, repeatable (default {' and '.join(DEFAULT_LISTEN)})")
    n.add_argument("--connect-timeout", type=positive_float, metavar="SECONDS",
                   help="per --peer, seconds (default 10)")
    n.add_argument("--max-concurrent-per-peer", type=positive_int, metavar="N",
                   help="work requests per peer at once (default 4)")
    n.add_argument("--max-concurrent-total", type=positive_int, metavar="N",
                   help="work requests at once (default 32)")
    n.add_argument("--limits", metavar="JSON",
                   help="host limits and timeouts: a JSON object of p2p HostConfig fields, or @FILE")
    n.add_argument("--work-limits", metavar="JSON",
                   help="worker limits: a JSON object of oracle.gating.WorkLimits fields (queue"
                        " bounds and timeout, answer memory budgets), or @FILE")
    n.add_argument("--config", metavar="FILE", help="JSON file with the same keys as the options")
    n.add_argument("--metrics", type=metrics_address, metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")
    n.add_argument("--dht", action=argparse.BooleanOptionalAction, default=None,
                   help="masa's Kademlia (/masa/kad/1.0.0, server, K=100, alpha=100, refresh 5 min), "
                        "its Discover loop (advertise and find providers of /masa/oracle_protocol/"
                        "VERSION[-ENV] every minute) and gossip topic: join through the --peer/--bootnode "
                        "nodes, be found by the whole network, find workers by ID (default: on, as "
                        "every masa node runs it; --no-dht: only the peers named and those that dial us)")
    n.add_argument("--gossip-third-party", action=argparse.BooleanOptionalAction, default=None,
                   help="also take node data about OTHER peers from the gossip topic into the node "
                        "tracker, as masa's resolver merges it (default: off: only an author's own "
                        "entry; needs the DHT)")

    w = sub.add_parser("work", help="distribute one piece of work and print the WorkResponse")
    common(w)
    w.add_argument("--type", required=True, metavar="TYPE", help="work type, e.g. test")
    w.add_argument("--data", default="", metavar="TEXT", help="the request's data (default empty)")
    w.add_argument("--request-id", default="", metavar="ID", help="request ID (default a new UUID)")
    w.add_argument("--timeout", type=positive_float, default=60.0, metavar="SECONDS",
                   help="bound on the whole exchange (default 60)")
    w.add_argument("--dht", action="store_true", default=None,
                   help="join masa's DHT through the --peer nodes and find a chosen worker we are "
                        "not connected to by its ID, as a masa requester does (default: off: only "
                        "the workers we are connected to are tried)")

    ps = sub.add_parser("peers", help="print the masa network as a peer's node data shows it (JSON)")
    common(ps)
    ps.add_argument("--wait", type=positive_float, default=5.0, metavar="SECONDS",
                    help="how long to wait for node data (default 5)")

    d = sub.add_parser("demo", help="several local nodes, a batch of work, a failover, metrics")
    d.add_argument("--workers", type=positive_int, default=4, metavar="N",
                   help="worker node subprocesses (default 4, at least 2)")
    d.add_argument("--items", type=positive_int, default=48, metavar="N",
                   help="work items to distribute (default 48, at least 2)")
    d.add_argument("--concurrency", type=positive_int, default=4, metavar="N",
                   help="items in flight at once (default 4)")
    d.add_argument("--no-kill", action="store_true", help="do not kill a worker midway")
    d.add_argument("--log-level", type=log_level, default=argparse.SUPPRESS, metavar="LEVEL",
                   help=level_help)
    add_trace_options(d)
    return p


COMMANDS = {"node": cmd_node, "work": cmd_work, "peers": cmd_peers, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    exit_with_parent()
    args = build_parser().parse_args(argv)
    for name in ("listen", "allow", "peer", "worker", "handler"):
        if not hasattr(args, name):
            setattr(args, name, None)
    for name in ("config", "key_type", "key_file", "protocol_version", "env", "connect_timeout",
                 "max_concurrent_per_peer", "max_concurrent_total", "staked", "metrics",
                 "work_limits"):
        if not hasattr(args, name):
            setattr(args, name, None)
    setup_logging(args.log_level)
    close_trace: Callable[[], None] = lambda: None
    try:
        if args.config:
            apply_config_file(args, args.config)
        args.tracer, close_trace = tracer_from_args(args)
        return anyio.run(COMMANDS[args.command], args, backend=args.backend)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        return report_failure(exc, log.error)
    finally:
        close_trace()

