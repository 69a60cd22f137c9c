"""The conformance command line: `python -m p2p serve|ping|echo|identify|keygen`.

Other tools drive the stack through this interface, so it is stable: results are one JSON line on
stdout, logs go to stderr, and every expected failure exits 1 with `{"error": "..."}` (no traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio

from p2p.config import HostConfig
from p2p.errors import P2PError
from p2p.host import Host
from p2p.trace.cli import add_trace_options, tracer_from_args
from p2p.transport.tcp import os_reason
from p2p.protocols.echo import CHUNK, ECHO, echo_handler
from p2p.identity import (
    InvalidPeerId,
    KeyType,
    PeerId,
    PrivateKey,
    load_private_key_file,
    parse_key_type,
    save_private_key_file,
)

KEY_TYPES = ("ed25519", "secp256k1", "ecdsa", "rsa")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


T = TypeVar("T")

class CliError(Exception):
    """An expected failure: printed as {"error": ...}, exit status 1."""


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ---- argument parsing shared by `python -m p2p` and `python -m oracle` ------------------------


class JsonArgumentParser(argparse.ArgumentParser):
    """argparse under the conformance contract: a bad argument is one JSON line and exit status 1
    (argparse's own is usage text on stderr and status 2). Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        emit({"error": f"{message} (see {self.prog} --help)"})
        raise SystemExit(1)


def prog_name(default: str) -> str:
    """`python -m p2p` when run as a module, else the console script's own name (`masa-p2p`)."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return default if not argv0 or argv0 == "__main__.py" or argv0.endswith(".py") else argv0


def log_level(text: str) -> str:
    """`--log-level` value: a logging level name, any case."""
    name = text.strip().lower()
    if name not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r}: use one of {', '.join(LOG_LEVELS)}")
    return name


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds > 0")
    return value


def peer_id_arg(text: str) -> str:
    """A peer ID option value, checked at parse time (`--allow notapeerid` says what is wrong)."""
    try:
        PeerId.from_string(text)
    except (InvalidPeerId, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a peer ID ({exc}): expected base58 like 12D3KooW... / 16Uiu2HAm... / "
            "Qm..., or a CIDv1 like bafz..."
        ) from None
    return text


def metrics_address(text: str) -> str:
    """`--metrics` value: HOST:PORT ([V6]:PORT for IPv6; port 0 picks a free one)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9100)")
    return text


class MetricsEndpoint:
    """`--metrics`: the node's Metrics and their HTTP endpoint (prometheus_client imported only here)."""

    def __init__(self, address: str | None) -> None:
        self.metrics: Any = None
        self.server: Any = None
        if address:
            from p2p.metrics import Metrics, serve_metrics

            self.metrics = Metrics()
            try:
                self.server = serve_metrics(self.metrics, address)
            except ValueError as exc:
                raise CliError(f"--metrics {address}: {exc}") from None
            except OSError as exc:
                raise CliError(f"--metrics {address}: cannot serve metrics there: {os_reason(exc)}") from None

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def setup_logging(level: str) -> None:
    """Logs to stderr; the multiaddr package's DEBUG lines (one per address parse) stay out."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("multiaddr").setLevel(max(logging.INFO, logging.getLogger().level))


def error_text(err: BaseException) -> str:
    """One line saying what failed and why, for `{"error": ...}`."""
    msg = str(err) or type(err).__name__
    if isinstance(err, TimeoutError):
        msg = f"timeout: {msg}" if str(err) else "timeout"
    return " ".join(msg.split())


def load_identity(args: argparse.Namespace) -> tuple[PrivateKey, str]:
    """The host's key and where it came from (for the start-up line)."""
    if getattr(args, "key_file", None):
        try:
            return load_private_key_file(args.key_file), f"key file {args.key_file}"
        except OSError as exc:
            raise CliError(f"--key-file {args.key_file}: {exc.strerror or exc}") from None
        except P2PError as exc:
            raise CliError(f"--key-file {args.key_file}: not a key file ({exc})") from None
    key_type = getattr(args, "key_type", None) or "ed25519"
    return PrivateKey.generate(parse_key_type(key_type)), f"new {key_type} key"


# ---- commands ------------------------------------------------------------------------------


def config_option(option: str, value: object, build: Callable[[dict[str, Any]], T]) -> T:
    """A JSON-object option (`--limits`, `--work-limits`): JSON text, `@path` of a file holding
    one, or a mapping already read from a config file; its fields go to `build`, whose
    TypeError/ValueError becomes a CliError naming the option."""
    data: object = value
    if not isinstance(value, dict):
        text = str(value)
        try:
            if text.startswith("@"):
                with open(text[1:], encoding="utf-8") as f:
                    text = f.read()
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            raise CliError(f"{option}: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"{option}: expected a JSON object")
    try:
        return build(data)
    except (TypeError, ValueError) as exc:
        raise CliError(f"{option}: {exc}") from None


def parse_limits(text: str | None) -> HostConfig:
    """`--limits` value: a JSON object of HostConfig fields, or `@path` of a file holding one."""
    if not text:
        return HostConfig()
    return config_option("--limits", text, HostConfig.from_mapping)


def raise_fd_limit(config: HostConfig) -> int:
    """Lift the soft RLIMIT_NOFILE towards the hard one so the configured limits fit.

    A listener holds at most max_connections + max_pending_inbound sockets, each a file
    descriptor (connections over a limit are accepted and closed at once); 256 more cover the
    interpreter, the listeners and outbound dials. Returns the soft limit now in force.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = config.max_connections + config.max_pending_inbound + 256
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (OSError, ValueError) as exc:
            logging.getLogger("p2p.cli").warning("cannot raise RLIMIT_NOFILE to %d: %s", want, exc)
    return soft


async def cmd_serve(args: argparse.Namespace) -> int:
    config = parse_limits(args.limits)
    fd_limit = raise_fd_limit(config)
    identity, source = load_identity(args)
    endpoint = MetricsEndpoint(args.metrics)
    try:
        # Signals are ours from before the start-up line: a SIGTERM right after it stops us cleanly.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with Host(identity, config, trace=args.tracer, metrics=endpoint.metrics) as host:
                if args.echo:
                    host.set_stream_handler(ECHO, echo_handler)
                await host.listen(*(args.listen or ["/ip4/127.0.0.1/tcp/0"]))
                line = {"peer_id": str(host.peer_id), "addrs": host.p2p_addrs(), "pid": os.getpid(),
                        "fd_limit": fd_limit, "identity": source}
                if endpoint.url:
                    line["metrics"] = endpoint.url
                emit(line)
                async for signum in signals:
                    logging.getLogger("p2p.cli").info("signal %s: shutting down", signum)
                    break
                await host.close()
    finally:
        endpoint.close()
    return 0


async def _connect(host: Host, addr: str, timeout: float) -> tuple[PeerId, float]:
    # Parse first: the multiaddr package imports its codecs on first use (~60 ms), which is not
    # connection time. connect_ms is TCP + multistream + Noise + yamux.
    host.can_dial(addr)  # parses (and caches) the address; InvalidMultiaddr says what is wrong
    start = time.perf_counter()
    peer = await host.connect(addr, timeout=timeout)
    return peer, (time.perf_counter() - start) * 1000


async def cmd_ping(args: argparse.Namespace) -> int:
    async with Host(load_identity(args)[0], trace=args.tracer) as host:
        peer, connect_ms = await _connect(host, args.addr, args.timeout)
        rtts = await host.ping(peer, args.count, timeout=args.timeout)
        emit({"peer_id": str(peer), "rtt_ms": [round(r * 1000, 3) for r in rtts],
              "connect_ms": round(connect_ms, 3)})
    return 0


async def _echo_one(host: Host, peer: PeerId, payload: bytes, timeout: float) -> None:
    stream = await host.new_stream(peer, [ECHO], timeout=timeout)
    view = memoryview(payload)
    size = len(payload)

    async def writer() -> None:
        for off in range(0, size, CHUNK):
            await stream.send(view[off : off + CHUNK])
        await stream.send_eof()

    async def reader() -> None:
        got = 0
        while True:
            try:
                data = await stream.receive(CHUNK)
            except anyio.EndOfStream:
                break
            if data != view[got : got + len(data)]:
                raise CliError(f"echo mismatch at byte {got}")
            got += len(data)
        if got != size:
            raise CliError(f"echo returned {got} of {size} bytes")

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            tg.start_soon(reader)
    except BaseException:
        with anyio.CancelScope(shield=True):
            try:
                await stream.reset()
            except Exception:
                pass
        raise
    await stream.aclose()


async def cmd_echo(args: argparse.Namespace) -> int:
    payload = os.urandom(args.size)
    async with Host(load_identity(args)[0], trace=args.tracer) as host:
        peer, connect_ms = await _connect(host, args.addr, args.timeout)
        start = time.perf_counter()
        with anyio.fail_after(args.timeout + args.size * args.streams / 5e6):
            async with anyio.create_task_group() as tg:
                for _ in range(args.streams):
                    tg.start_soon(_echo_one, host, peer, payload, args.timeout)
        seconds = time.perf_counter() - start
        total = args.size * args.streams
        emit({"ok": True, "bytes": total, "seconds": round(seconds, 6),
              "mb_per_s": round(total / seconds / 1e6, 3) if seconds else None,
              "connect_ms": round(connect_ms, 3)})
    return 0


async def cmd_identify(args: argparse.Namespace) -> int:
    async with Host(load_identity(args)[0], trace=args.tracer) as host:
        peer, connect_ms = await _connect(host, args.addr, args.timeout)
        info = await host.identify(peer, timeout=args.timeout)
        key_type = None
        if info.public_key is not None:
            from p2p.identity import PublicKey

            key_type = KeyType(PublicKey.from_protobuf(info.public_key).key_type).name
        observed = info.observed_multiaddr()
        emit({
            "peer_id": str(peer),
            "protocols": sorted(info.protocols),
            "agent_version": info.agent_version,
            "protocol_version": info.protocol_version,
            "public_key_type": key_type,
            "public_key": info.public_key.hex() if info.public_key else None,
            "listen_addrs": [str(a) for a in info.multiaddrs()],
            "observed_addr": str(observed) if observed else None,
            "connect_ms": round(connect_ms, 3),
        })
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise CliError(f"--out {args.out}: folder {folder} does not exist")
    if out.exists() and not args.force:
        raise CliError(f"--out {args.out}: the file exists; not replacing a key without --force")
    if out.is_dir():
        raise CliError(f"--out {args.out}: is a folder")
    key = PrivateKey.generate(parse_key_type(args.key_type))
    try:
        save_private_key_file(out, key, hex_text=args.hex)
    except OSError as exc:
        raise CliError(f"--out {args.out}: {exc.strerror or exc}") from None
    emit({"peer_id": str(PeerId.from_public_key(key.public_key)), "key_type": args.key_type,
          "path": args.out})
    return 0


# ---- plumbing ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = JsonArgumentParser(prog=prog_name("python -m p2p"), description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-level", type=log_level, default=os.environ.get("P2P_LOG", "warning"),
                   metavar="LEVEL", help=f"stderr log level: {', '.join(LOG_LEVELS)} (default: $P2P_LOG "
                                         "or warning)")
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio",
                   help="event loop the stack runs on (default asyncio)")
    p.add_argument("--uvloop", action="store_true", help="asyncio backend with uvloop, if installed")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    def key_opts(sp: argparse.ArgumentParser, default_help: str) -> None:
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--key-type", choices=KEY_TYPES, help=f"a new key of this type ({default_help})")
        g.add_argument("--key-file", metavar="PATH",
                       help="load the identity from this key file (go's protobuf bytes or masa's hex)")

    s = sub.add_parser("serve", help="listen, serve identify and ping (and echo), until a signal")
    s.add_argument("--listen", action="append", metavar="MULTIADDR",
                   help="address to listen on, repeatable (default /ip4/127.0.0.1/tcp/0)")
    s.add_argument("--echo", action="store_true", help="also serve /echo/1.0.0")
    add_trace_options(s)
    s.add_argument("--metrics", type=metrics_address, metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")
    s.add_argument("--limits", metavar="JSON",
                   help="HostConfig fields as a JSON object (or @file), e.g. "
                        "'{\"max_connections\": 100, \"negotiation_timeout\": 2}'")
    key_opts(s, "default: a new ed25519 key")

    helps = {"ping": "connect, ping, print the round-trip times",
             "echo": "connect, send bytes to /echo/1.0.0, check they come back",
             "identify": "connect, print what the peer's identify says"}
    for name, extra in (("ping", "count"), ("echo", "size"), ("identify", None)):
        c = sub.add_parser(name, help=helps[name])
        c.add_argument("addr", metavar="MULTIADDR", help="the peer, e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...")
        c.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS",
                       help="bound on each step: connect, each ping, each stream (default 30)")
        add_trace_options(c)
        key_opts(c, "default: a new ed25519 key")
        if extra == "count":
            c.add_argument("--count", type=positive_int, default=1, metavar="N", help="pings to send (default 1)")
        if extra == "size":
            c.add_argument("--size", type=positive_int, default=1 << 20, metavar="BYTES",
                           help="bytes per stream (default 1 MiB)")
            c.add_argument("--streams", type=positive_int, default=1, metavar="K",
                           help="streams at once (default 1)")

    k = sub.add_parser("keygen", help="write a new private key file and print its peer ID")
    k.add_argument("--key-type", choices=KEY_TYPES, default="ed25519", help="key type (default ed25519)")
    k.add_argument("--out", required=True, metavar="PATH", help="key file to write (mode 0600)")
    k.add_argument("--hex", action="store_true", help="masa's format: hex text of the protobuf")
    k.add_argument("--force", action="store_true", help="replace PATH if it exists")
    return p


COMMANDS = {"serve": cmd_serve, "ping": cmd_ping, "echo": cmd_echo, "identify": cmd_identify}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    close_trace: Callable[[], None] = lambda: None
    try:
        if args.command == "keygen":
            return cmd_keygen(args)
        args.tracer, close_trace = tracer_from_args(args)
        backend_options = {"use_uvloop": True} if args.uvloop and args.backend == "asyncio" else {}
        return anyio.run(COMMANDS[args.command], args, backend=args.backend,
                         backend_options=backend_options)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        return report_failure(exc, logging.getLogger("p2p.cli").debug)
    finally:
        close_trace()


def report_failure(exc: BaseException, log_unexpected: Callable[..., None]) -> int:
    """How `python -m p2p` and `python -m oracle` end on a failure: one `{"error": ...}` line and
    exit status 1. An exception group stands for its first error (a SystemExit in it goes on);
    a failure that is not one a command may meet (ours, a timeout, the OS, a bad value) is also
    given to `log_unexpected` with its traceback."""
    err = exc
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    if isinstance(err, SystemExit):
        raise err
    if not isinstance(err, (P2PError, CliError, TimeoutError, OSError, ValueError)):
        log_unexpected("unexpected failure", exc_info=err)
    emit({"error": error_text(err)})
    return 1
