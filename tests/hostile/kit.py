"""The hostile-peer kit: raw attackers built on our own sans-IO cores, a node-process wrapper with
resource probes, and honest-peer probes that must keep getting answers while an attack runs.

Attackers speak bytes directly: `raw_connect` (optionally from another 127.0.0.x address, so one
machine looks like many), `ms_message`/`read_ms` for multistream, `RawNoise` for a Noise XX
initiator whose identity payload is whatever the test says (built from
`p2p.security.noise.HandshakeState`, so the crypto is real and only the payload lies), and
`yamux_frame`/`FrameReader` for hand-made yamux frames inside the Noise channel.

`NodeProcess` runs `python -m p2p serve` or `python -m oracle node` as a child, waits for its JSON
line, and reads RSS and open file descriptors from /proc and its stderr from a file.
`honest_ping` and `go_ping` are the honest peers: each must be answered within `HONEST_DEADLINE`,
counted without the time the OS kept the peers' threads runnable but off the CPU (`net_probe`,
`OffCpuClock`, `go_ping(off_cpu_of=...)`: what a loaded machine adds, which no code of ours can
prevent); their wall clock is bounded by `PROBE_DEADLINE`.
Nothing here sleeps for a fixed time: waits are on events, subprocess lines or polled conditions
with a deadline.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from linequeue import stdout_lines

from p2p.errors import P2PError, StreamReset
from p2p.host import Host
from p2p.identity import PeerId, PrivateKey
from p2p.mux.yamux_frame import HEADER_SIZE, decode_header, encode_header
from p2p.security.noise import HandshakeState, NoiseTransport
from p2p.security.noise_payload import SIGNATURE_PREFIX, NoiseExtensions, NoiseHandshakePayload
from p2p.streams import BufferedStream

REPO = Path(__file__).resolve().parents[2]
HONEST_DEADLINE = 1.0  # seconds an honest peer may wait for its answer during an attack
#: a probe's wall clock: what no load excuses (an attacker holds a slot 10-30 s, go's --timeout)
PROBE_DEADLINE = 10.0
#: Log lines a node may print while attacked; anything else at WARNING or above is a finding.
EXPECTED_LOG = re.compile(r"refused work from|bad work request from|could not answer|requester .* went away")

# ---- multistream ---------------------------------------------------------------------------

MULTISTREAM = "/multistream/1.0.0"


def uvarint(n: int) -> bytes:
    """Minimal unsigned varint, written out here so attackers do not trust p2p.varint."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ms_message(text: str | bytes) -> bytes:
    body = (text.encode() if isinstance(text, str) else text) + b"\n"
    return uvarint(len(body)) + body


async def read_ms(stream: BufferedStream, timeout: float = 5.0) -> str:
    """One multistream message (without its newline)."""
    with anyio.fail_after(timeout):
        n = shift = 0
        while True:
            (b,) = await stream.receive_exactly(1)
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return (await stream.receive_exactly(n)).decode().rstrip("\n")


async def raw_connect(host: str, port: int, *, source: str | None = None,
                      timeout: float = 5.0) -> BufferedStream:
    """A plain TCP connection, from `source` (e.g. "127.0.0.7") when given."""
    with anyio.fail_after(timeout):
        sock = await anyio.connect_tcp(host, port, local_host=source)
    return BufferedStream(sock)


async def closed_by_peer(stream: BufferedStream, timeout: float) -> bool:
    """True when the peer closes (EOF or reset) within `timeout`; whatever it sends is drained.

    An end already in the socket when the deadline is handled counts. When this process is held
    longer than `timeout` (a generation-2 collection or no CPU: up to 1.2 s and 1.9 s seen in a
    loaded full-suite run), the peer's end and the deadline are both due once it runs again, and
    both backends deliver the deadline first: the receive raised TimeoutError although the end
    had come long before it (tests/hostile/test_kit.py: an end at 0.1 s, this loop held from
    0.05 s to 1.05 s, a 0.5 s deadline)."""
    if await _ended_within(stream, timeout,
                           (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError)):
        return True
    return _socket_ended(stream)


def _socket_ended(stream: BufferedStream) -> bool:
    """Whether the socket under `stream` already holds the peer's end, without waiting (what it
    sends before is drained)."""
    fd = stream.inner.extra(anyio.abc.SocketAttribute.raw_socket).fileno()
    if fd < 0:
        return True  # asyncio's transport closed it on a reset (we did not: the stream is open)
    with socket.socket(fileno=os.dup(fd)) as sock:  # asyncio lends a wrapper only
        try:
            while sock.recv(65536, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            return False
        except ConnectionError:
            return True  # reset
        return True  # EOF


async def reset_seen(stream: Any, timeout: float = 5.0) -> bool:
    """True when the remote resets (or closes) a libp2p stream within `timeout`; whatever it
    sends is drained."""
    return await _ended_within(stream, timeout, (StreamReset, anyio.EndOfStream,
                                                 anyio.BrokenResourceError, anyio.ClosedResourceError))


async def _ended_within(stream: Any, timeout: float,
                        ends: tuple[type[BaseException], ...]) -> bool:
    try:
        with anyio.fail_after(timeout):
            while True:
                await stream.receive(65536)
    except ends:
        return True
    except TimeoutError:
        return False


async def select_noise(stream: BufferedStream) -> None:
    await stream.send(ms_message(MULTISTREAM) + ms_message("/noise"))
    assert await read_ms(stream) == MULTISTREAM
    assert await read_ms(stream) == "/noise"


# ---- Noise with a payload of our choosing ---------------------------------------------------


def honest_payload(identity: PrivateKey, static_pub: bytes,
                   muxers: Sequence[str] = ("/yamux/1.0.0",)) -> bytes:
    sig = identity.sign(SIGNATURE_PREFIX + static_pub)
    ext = NoiseExtensions(stream_muxers=tuple(muxers)) if muxers else None
    return NoiseHandshakePayload(identity.public_key.to_protobuf(), sig, ext).encode()


PayloadFn = Callable[[bytes], bytes]  # our static X25519 public key -> msg3 payload


class RawNoise:
    """A Noise XX initiator on a raw connection: real crypto, a payload the test chooses."""

    def __init__(self, stream: BufferedStream) -> None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        self.stream = stream
        self.static = X25519PrivateKey.generate()
        self.static_pub = self.static.public_key().public_bytes_raw()
        self.state = HandshakeState(initiator=True, static_key=self.static)
        self.transport: NoiseTransport | None = None
        self._plain = bytearray()

    async def send_msg1(self) -> None:
        msg1 = self.state.write_message(b"")
        await self.stream.send(len(msg1).to_bytes(2, "big") + msg1)

    async def read_msg2(self, timeout: float = 5.0) -> bytes:
        with anyio.fail_after(timeout):
            size = int.from_bytes(await self.stream.receive_exactly(2), "big")
            return self.state.read_message(await self.stream.receive_exactly(size))

    def msg3(self, payload: bytes) -> bytes:
        body = self.state.write_message(payload)
        self.transport = NoiseTransport(*self.state.split())
        return len(body).to_bytes(2, "big") + body

    async def handshake(self, payload_fn: PayloadFn, *, pipelined: bytes = b"") -> None:
        """All three messages; `pipelined` plaintext is sent in the same write as msg3."""
        await self.send_msg1()
        await self.read_msg2()
        out = self.msg3(payload_fn(self.static_pub))
        if pipelined:
            assert self.transport is not None
            out += bytes(self.transport.encrypt(pipelined))
        await self.stream.send(out)

    async def send(self, plaintext: bytes) -> None:
        assert self.transport is not None
        await self.stream.send(bytes(self.transport.encrypt(plaintext)))

    async def receive(self, timeout: float = 5.0) -> bytes:
        """Decrypted bytes as they come (EndOfStream when the node closes)."""
        assert self.transport is not None
        with anyio.fail_after(timeout):
            while True:
                if self._plain:
                    out = bytes(self._plain)
                    self._plain.clear()
                    return out
                self._plain += self.transport.decrypt(await self.stream.receive(65536))


async def noise_session(host: str, port: int, identity: PrivateKey | None = None, *,
                        source: str | None = None) -> RawNoise:
    """Connect, select /noise, finish an honest handshake offering yamux early."""
    identity = identity or PrivateKey.generate()
    stream = await raw_connect(host, port, source=source)
    await select_noise(stream)
    noise = RawNoise(stream)
    await noise.handshake(lambda pub: honest_payload(identity, pub))
    return noise


# ---- yamux frames -----------------------------------------------------------------------------

DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8


def yamux_frame(ftype: int, flags: int, sid: int, length: int, payload: bytes = b"", *,
                version: int = 0) -> bytes:
    """Any header at all, even one our own encoder would refuse (bad version, bad type)."""
    head = bytes([version, ftype]) + flags.to_bytes(2, "big") + sid.to_bytes(4, "big") + \
        length.to_bytes(4, "big")
    return head + payload


@dataclass
class FrameReader:
    """Parses the node's yamux frames out of the decrypted stream."""

    noise: RawNoise
    buf: bytearray = field(default_factory=bytearray)
    frames: list[tuple[int, int, int, int, bytes]] = field(default_factory=list)

    async def next(self, timeout: float = 5.0) -> tuple[int, int, int, int, bytes]:
        with anyio.fail_after(timeout):
            while True:
                if len(self.buf) >= HEADER_SIZE:
                    h = decode_header(self.buf)
                    size = h.length if h.type == DATA else 0
                    if len(self.buf) >= HEADER_SIZE + size:
                        frame = (h.type, h.flags, h.stream_id, h.length,
                                 bytes(self.buf[HEADER_SIZE:HEADER_SIZE + size]))
                        del self.buf[:HEADER_SIZE + size]
                        self.frames.append(frame)
                        return frame
                self.buf += await self.noise.receive(timeout)

    async def until(self, pred: Callable[[tuple[int, int, int, int, bytes]], bool],
                    timeout: float = 5.0) -> tuple[int, int, int, int, bytes]:
        """The first frame matching `pred`; raises EndOfStream if the node closes first."""
        with anyio.fail_after(timeout):
            while True:
                frame = await self.next(timeout)
                if pred(frame):
                    return frame

    async def until_closed(self, timeout: float = 5.0) -> list[tuple[int, int, int, int, bytes]]:
        """Read frames until the node closes the connection; returns them all."""
        try:
            with anyio.fail_after(timeout):
                while True:
                    await self.next(timeout)
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            return self.frames


def is_goaway(code: int) -> Callable[[tuple[int, int, int, int, bytes]], bool]:
    return lambda f: f[0] == GO_AWAY and f[3] == code


# ---- the node under test ---------------------------------------------------------------------


@dataclass
class Sample:
    label: str
    rss_kib: int
    fds: int


class NodeProcess:
    """A node in a child process: its address, RSS, open fds and stderr."""

    def __init__(self, argv: Sequence[str], *, log_dir: Path, start_timeout: float = 30.0,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log_dir / f"node-{os.getpid()}-{time.monotonic_ns()}.log"
        child_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=child_env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err)
        self._lines = stdout_lines(self.proc)
        try:
            line = self._lines.get(timeout=start_timeout)
        except queue.Empty:
            line = b""
        if not line:
            self.kill()
            raise RuntimeError(f"node did not start: {self.stderr()[-2000:]}")
        self.info: dict[str, Any] = json.loads(line)
        self.addr: str = self.info["addrs"][0]
        self.peer_id = PeerId.from_string(self.info["peer_id"])
        parts = self.addr.split("/")
        self.host, self.port = parts[2], int(parts[4])
        self.samples: list[Sample] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def sample(self, label: str) -> Sample:
        s = Sample(label, self.rss_kib(), self.fds())
        self.samples.append(s)
        return s

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def unexpected_log(self, since: int = 0) -> list[str]:
        """Lines at WARNING or above (or any traceback) that the attacks may not cause."""
        bad = []
        for line in self.stderr()[since:].splitlines():
            if "Traceback" in line or "Error:" in line.split(" ", 1)[0]:
                bad.append(line)
            elif re.search(r" (WARNING|ERROR|CRITICAL) ", line) and not EXPECTED_LOG.search(line):
                bad.append(line)
        return bad

    def log_size(self) -> int:
        return len(self.stderr())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def p2p_node(log_dir: Path, limits: dict[str, Any] | None = None, *,
             backend: str = "asyncio", debug: bool = False,
             listen: Sequence[str] = ()) -> NodeProcess:
    """`python -m p2p serve --echo`; with `debug` its log names each offender's typed error;
    `listen` replaces the default TCP address (e.g. a QUIC one)."""
    level = "DEBUG" if debug else "INFO"
    argv = ["-m", "p2p", "--log-level", level, "--backend", backend, "serve", "--echo"]
    for addr in listen:
        argv += ["--listen", addr]
    if limits:
        argv += ["--limits", json.dumps(limits)]
    return NodeProcess(argv, log_dir=log_dir)


async def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `cond` (cheap, e.g. /proc reads) until true; AssertionError naming `what` otherwise."""
    with anyio.move_on_after(timeout):
        while not cond():
            await anyio.sleep(0.05)
        return
    raise AssertionError(f"not within {timeout} s: {what}")


# ---- honest peers ------------------------------------------------------------------------------


async def honest_ping(addr: str, *, deadline: float = HONEST_DEADLINE) -> float:
    """A fresh in-process host: connect (TCP, Noise, yamux) and ping; seconds taken."""
    start = time.perf_counter()
    async with Host(PrivateKey.generate()) as host:
        with anyio.fail_after(deadline):
            peer = await host.connect(addr)
            await host.ping(peer, 1, timeout=deadline)
        took = time.perf_counter() - start
    return took


class HonestPeer:
    """A long-lived honest host connected to the node; `probe()` pings over its connection."""

    def __init__(self, host: Host, peer: PeerId) -> None:
        self.host = host
        self.peer = peer
        self.times: list[float] = []

    async def probe(self, deadline: float = HONEST_DEADLINE) -> float:
        start = time.perf_counter()
        with anyio.fail_after(deadline):
            await self.host.ping(self.peer, 1, timeout=deadline)
        took = time.perf_counter() - start
        self.times.append(took)
        return took


def go_ping(addr: str, binary: Path, *, deadline: float = HONEST_DEADLINE,
            off_cpu_of: Sequence[int] = (), seen: list[tuple[float, float]] | None = None) -> float:
    """go-libp2p v0.36.3 dials and pings; its own connect + RTT must fit in `deadline`.

    The process start-up is not counted (go's figures are measured inside the peer). With
    `off_cpu_of` (the node's pid), the time go's threads and those processes' threads spent
    waiting for a CPU within that window is not counted either, as OffCpuClock does for a probe
    of ours: go reads them itself, around its connect and ping (this process cannot read a
    thread of go's once it has exited). Every thread of go's counts, as its goroutines move
    between them; so a moment two of them wait at once counts twice (loaded: their sum came to
    1.5-2.6x go's wall time), and under load the bound is looser than our probes' but still
    on what the peers did besides waiting for a CPU (a wait on a timer or a slot counts in
    full). `seen` gets (wall s, of which waiting for a CPU s).
    """
    sys.path.insert(0, str(REPO / "tests" / "interop"))
    from gopeer import run_gopeer

    extra = ["--runq-pids", ",".join(map(str, off_cpu_of))] if off_cpu_of else []
    result = run_gopeer("ping", addr, "--count", "1", "--timeout", f"{PROBE_DEADLINE:g}", *extra,
                        binary=binary, timeout=PROBE_DEADLINE + 20)
    took = (result["connect_ms"] + result["rtt_ms"][0]) / 1000
    waited = sum(result["runq_wait_ms"].values()) / 1000 if off_cpu_of else 0.0
    if seen is not None:
        seen.append((took, waited))
    assert took - waited < deadline, (
        f"go peer took {took:.3f} s, of which {waited:.3f} s waiting for a CPU: {result}")
    return took


def run_queue_waits(pids: Sequence[int]) -> dict[int, int]:
    """Nanoseconds the main thread of each of `pids` (where its event loop runs) has spent
    runnable but off the CPU, waiting for the OS to run it (Linux
    /proc/<pid>/task/<pid>/schedstat, 2nd field), keyed by pid."""
    waits = {}
    for pid in pids:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
            waits[pid] = int(f.read().split()[1])
    return waits


class OffCpuClock:
    """Times an exchange between processes in wall-clock seconds and in the seconds their main
    threads, where their event loops run, spent waiting for a CPU meanwhile: what a machine
    loaded by other work adds, which no code of ours can prevent. The exchange's path runs
    through those loops (other threads are not on it); when both wait at once (each busy with
    an attack's traffic too) a moment counts twice: under load the sum came to 1.1-1.4x the
    wall time of the QUIC admission probes. A stalled event loop is not waiting for a CPU (it
    runs a long callback, or sleeps in a blocking call), so wall minus that wait still shows
    it, loaded or quiet, as does a wait on a timer or a slot (nothing is runnable then)."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(dict.fromkeys(pids))
        run_queue_waits(self.pids)  # fails early, naming the file, where schedstat is missing

    async def time(self, exchange: Callable[[], Any]) -> tuple[float, float]:
        """(wall seconds, seconds of run-queue wait summed over the loops) of `exchange()`."""
        before = run_queue_waits(self.pids)
        start = time.perf_counter()
        await exchange()
        wall = time.perf_counter() - start
        after = run_queue_waits(self.pids)
        waited = sum(ns - before[pid] for pid, ns in after.items())
        return wall, waited / 1e9


async def go_probe(addr: str, binary: Path, *, off_cpu_of: Sequence[int] = (),
                   seen: list[tuple[float, float]] | None = None) -> float:
    """go_ping in a worker thread."""
    return await anyio.to_thread.run_sync(
        functools.partial(go_ping, addr, binary, off_cpu_of=off_cpu_of, seen=seen))


async def net_probe(exchange: Callable[[], Awaitable[Any]], node: NodeProcess | None,
                    deadline: float = HONEST_DEADLINE) -> float:
    """Run `exchange()` (an in-process probe, bounded itself by PROBE_DEADLINE) and check it took
    under `deadline` net of the time this process's and the node's (if any: None for a node in
    this process) event loops waited for a CPU (OffCpuClock); its wall seconds. A wait on a timer or a slot and a stalled event loop still
    count in full (nothing waits for a CPU then); on a quiet machine nothing changes."""
    pids = [os.getpid()] if node is None else [os.getpid(), node.pid]
    wall, waited = await OffCpuClock(pids).time(exchange)
    assert wall - waited < deadline, (
        f"honest probe took {wall:.3f} s, of which {waited:.3f} s waiting for a CPU")
    return wall


def honest_probes(node: NodeProcess, honest: HonestPeer,
                  go_binary: Path) -> list[Callable[[], Any]]:
    """The three honest peers a case checks: a new connection of ours, our long-lived one, go's,
    each within HONEST_DEADLINE net of waiting for a CPU (net_probe, go_ping)."""
    return [lambda: net_probe(lambda: honest_ping(node.addr, deadline=PROBE_DEADLINE), node),
            lambda: net_probe(lambda: honest.probe(deadline=PROBE_DEADLINE), node),
            lambda: go_probe(node.addr, go_binary, off_cpu_of=[node.pid])]


async def probe_during(attack: Callable[[anyio.Event], Any], probes: Sequence[Callable[[], Any]],
                       *, rounds: int = 2) -> list[Any]:
    """Start `attack(started)`; once it sets `started`, run every probe `rounds` times while it
    goes on; then cancel the attack. Returns the probes' results."""
    results: list[Any] = []
    started = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(attack, started)
        with anyio.fail_after(30):
            await started.wait()
        for _ in range(rounds):
            for probe in probes:
                results.append(await probe())
        tg.cancel_scope.cancel()
    return results


# ---- one case: attack, honest probes, bounds, log ----------------------------------------------


@dataclass
class Bounds:
    """How much a case may cost the node while it runs (RSS in KiB, extra fds)."""

    rss_growth_kib: int = 24 * 1024
    extra_fds: int = 40
    settle_fds: int = 4  # fds above the baseline once the attack is over
    settle_timeout: float = 10.0


@dataclass
class CaseResult:
    name: str
    before: Sample
    during: Sample
    after: Sample
    honest: list[float]
    note: str = ""

    def line(self) -> str:
        worst = max(self.honest) if self.honest else float("nan")
        return (f"{self.name}: rss KiB {self.before.rss_kib}/{self.during.rss_kib}/{self.after.rss_kib}"
                f" fds {self.before.fds}/{self.during.fds}/{self.after.fds}"
                f" honest max {worst * 1000:.0f} ms over {len(self.honest)} probes {self.note}")


REPORT = REPO / ".cache" / "hostile-report.txt"


async def run_case(name: str, node: NodeProcess, attack: Callable[[anyio.Event], Any],
                   probes: Sequence[Callable[[], Any]], *, bounds: Bounds = Bounds(),
                   rounds: int = 2, note: str = "") -> CaseResult:
    """Run `attack` against `node` while honest `probes` must each answer within 1 s; check RSS,
    fds and the node's log; append a line to .cache/hostile-report.txt."""
    log_start = node.log_size()
    before = node.sample(f"{name}: before")
    peak: list[Sample] = []

    async def sampled_attack(started: anyio.Event) -> None:
        inner = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(attack, inner)
            await inner.wait()
            peak.append(node.sample(f"{name}: during"))
            started.set()

    async def sample_probe() -> None:
        peak.append(node.sample(f"{name}: during"))

    results = await probe_during(sampled_attack, [*probes, sample_probe], rounds=rounds)
    honest = [r for r in results if isinstance(r, float)]
    during = Sample(f"{name}: during", max(p.rss_kib for p in peak), max(p.fds for p in peak))
    assert node.alive(), f"{name}: node died: {node.stderr()[-2000:]}"
    await wait_for(lambda: node.fds() <= before.fds + bounds.settle_fds, bounds.settle_timeout,
                   f"{name}: fds back near {before.fds} (now {node.fds()})")
    after = node.sample(f"{name}: after")
    result = CaseResult(name, before, during, after, honest, note)
    REPORT.parent.mkdir(exist_ok=True)
    with open(REPORT, "a") as f:
        f.write(result.line() + "\n")
    print(result.line())
    assert during.rss_kib - before.rss_kib <= bounds.rss_growth_kib, result.line()
    assert during.fds - before.fds <= bounds.extra_fds, result.line()
    bad = node.unexpected_log(log_start)
    assert not bad, f"{name}: unexpected log lines: {bad[:5]}"
    return result


async def flood(node: NodeProcess, started: anyio.Event, make: Callable[[BufferedStream], Any], *,
                expect: str, count: int, close_within: float, source_base: int = 2,
                closed: list[bool] | None = None) -> None:
    """`count` attackers from 127.0.0.<source_base..+3>, each looping: connect, `make(stream)`,
    wait for the node to close it. `started` is set once the first round is over (every offender
    was closed and the node's log names `expect`); the attack then goes on until cancelled.
    Every round's outcome is appended to `closed` (the caller asserts all True)."""
    closed = closed if closed is not None else []
    log_start = node.log_size()
    first = anyio.Event()

    async def one(i: int) -> None:
        while True:
            s = await raw_connect(node.host, node.port, source=f"127.0.0.{source_base + i % 4}")
            try:
                await make(s)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError, P2PError):
                pass  # the node hung up while we were still talking: also a close
            closed.append(await closed_by_peer(s, close_within))
            await s.aclose()
            if len(closed) >= count:
                first.set()

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
        await first.wait()
        assert all(closed), f"{closed.count(False)} of {len(closed)} offenders not closed"
        log = node.stderr()[log_start:]
        assert expect in log, f"no {expect!r} in the node's log: {log[-1500:]}"
        started.set()


def stop_checked(node: NodeProcess) -> None:
    """Stop a node: it must exit cleanly and its log must hold nothing unexpected."""
    code = node.stop()
    bad = node.unexpected_log()
    assert code == 0, f"node exited {code}: {node.stderr()[-3000:]}"
    assert not bad, f"unexpected log lines: {bad[:5]}"
