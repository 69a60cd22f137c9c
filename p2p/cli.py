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

import anyio
from multiaddr import Multiaddr

from p2p.config import HostConfig
from p2p.errors import P2PError
from p2p.host import Host
from p2p.trace.cli import add_trace_options, tracer_from_args
from p2p.protocols.echo import CHUNK, ECHO, echo_handler
from p2p.identity import KeyType, PeerId, PrivateKey, load_private_key_file, parse_key_type, save_private_key_file



class CliError(Exception):
    """An expected failure: printed as {"error": ...}, exit status 1."""


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def load_identity(args: argparse.Namespace) -> PrivateKey:
    if getattr(args, "key_file", None):
        return load_private_key_file(args.key_file)
    return PrivateKey.generate(parse_key_type(getattr(args, "key_type", None) or "ed25519"))


# ---- commands ------------------------------------------------------------------------------


def parse_limits(text: str | None) -> HostConfig:
    """`--limits` value: a JSON object of HostConfig fields, or `@path` of a file holding one."""
    if not text:
        return HostConfig()
    try:
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CliError(f"--limits: {exc}") from None
    if not isinstance(data, dict):
        raise CliError("--limits: expected a JSON object")
    try:
        return HostConfig.from_mapping(data)
    except ValueError as exc:
        raise CliError(f"--limits: {exc}") from None


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
    async with Host(load_identity(args), config, trace=args.tracer) as host:
        if args.echo:
            host.set_stream_handler(ECHO, echo_handler)
        await host.listen(*(args.listen or ["/ip4/127.0.0.1/tcp/0"]))
        emit({"peer_id": str(host.peer_id), "addrs": host.p2p_addrs(), "pid": os.getpid(),
              "fd_limit": fd_limit})
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                logging.getLogger("p2p.cli").info("signal %s: shutting down", signum)
                break
        await host.close()
    return 0


async def _connect(host: Host, addr: str, timeout: float) -> tuple[PeerId, float]:
    # Parse first: the multiaddr package imports its codecs on first use (~60 ms), which is not
    # connection time. connect_ms is TCP + multistream + Noise + yamux.
    ma = Multiaddr(addr)
    start = time.perf_counter()
    peer = await host.connect(ma, timeout=timeout)
    return peer, (time.perf_counter() - start) * 1000


async def cmd_ping(args: argparse.Namespace) -> int:
    async with Host(load_identity(args), trace=args.tracer) as host:
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
    async with Host(load_identity(args), trace=args.tracer) as host:
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
    async with Host(load_identity(args), trace=args.tracer) as host:
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
    key = PrivateKey.generate(parse_key_type(args.key_type))
    save_private_key_file(args.out, key, hex_text=args.hex)
    emit({"peer_id": str(PeerId.from_public_key(key.public_key)), "key_type": args.key_type,
          "path": args.out})
    return 0


# ---- plumbing ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m p2p", description=__doc__)
    p.add_argument("--log-level", default=os.environ.get("P2P_LOG", "WARNING"))
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    p.add_argument("--uvloop", action="store_true", help="asyncio backend with uvloop, if installed")
    sub = p.add_subparsers(dest="command", required=True)

    def key_opts(sp: argparse.ArgumentParser) -> None:
        g = sp.add_mutually_exclusive_group()
        g.add_argument("--key-type", choices=["ed25519", "secp256k1", "ecdsa", "rsa"])
        g.add_argument("--key-file")

    s = sub.add_parser("serve", help="listen, serve identify and ping (and echo), until a signal")
    s.add_argument("--listen", action="append")
    s.add_argument("--echo", action="store_true")
    add_trace_options(s)
    s.add_argument("--limits", metavar="JSON",
                   help="HostConfig fields as a JSON object (or @file), e.g. "
                        "'{\"max_connections\": 100, \"negotiation_timeout\": 2}'")
    key_opts(s)

    for name, extra in (("ping", "count"), ("echo", "size"), ("identify", None)):
        c = sub.add_parser(name)
        c.add_argument("addr")
        c.add_argument("--timeout", type=float, default=30.0)
        add_trace_options(c)
        key_opts(c)
        if extra == "count":
            c.add_argument("--count", type=int, default=1)
        if extra == "size":
            c.add_argument("--size", type=int, default=1 << 20)
            c.add_argument("--streams", type=int, default=1)

    k = sub.add_parser("keygen")
    k.add_argument("--key-type", choices=["ed25519", "secp256k1", "ecdsa", "rsa"], default="ed25519")
    k.add_argument("--out", required=True)
    k.add_argument("--hex", action="store_true", help="masa's format: hex text of the protobuf")
    return p


COMMANDS = {"serve": cmd_serve, "ping": cmd_ping, "echo": cmd_echo, "identify": cmd_identify}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("multiaddr").setLevel(logging.INFO)  # its DEBUG traces every address parse
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
    except BaseException as exc:  # expected failures become one JSON line
        err = _flatten(exc)
        if not isinstance(err, (P2PError, CliError, TimeoutError, OSError, ValueError)):
            logging.getLogger("p2p.cli").debug("unexpected failure", exc_info=err)
        msg = str(err) or type(err).__name__
        if isinstance(err, TimeoutError):
            msg = f"timeout: {msg}" if str(err) else "timeout"
        emit({"error": msg})
        return 1
    finally:
        close_trace()


def _flatten(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) >= 1:
        exc = exc.exceptions[0]
    return exc
