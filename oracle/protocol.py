"""The worker protocol on a libp2p host: the stream handler (worker side) and the client call.

One stream carries one exchange (masa pkg/workers/worker_manager.go, HandleWorkerStream and
sendWorkToWorker): the requester writes a frame holding a JSON WorkRequest, the worker answers with a
frame holding a JSON WorkResponse whose workerPeerId is its own peer ID, then closes the stream.

What we add to Go's handler, in order: admission by the WorkerPolicy before reading anything (a
request over its peer's share waits in a bounded queue for a bounded time; refusal = an error
response), a size limit and a read timeout on the request (malformed or slow input = stream reset,
no answer), cancellation of the work when the requester goes away (EOF or reset on the stream while
the work runs: a Go requester only closes its side once it has given up or read the answer), a large
request decoded and a large answer built in steps with a turn of the event loop between two (other
peers are not stalled by one answer; a worker thread would make the loop wait for the GIL, longest
on a loaded machine), the answer held within the policy's answer memory budget, and a bounded
write of it in slices. The request's slot is kept
until its answer is written or the stream is gone, so a requester that never reads holds at most its
share of slots and of the answer budget.

Written against the Host/NetStream API of p2p/host.py (structural types below), so it can be
exercised with in-memory fakes.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import Any, Awaitable, Callable, Generator, Hashable, Iterable, Protocol as _Protocol, Sequence, TypeVar

import anyio
import anyio.lowlevel

from p2p.errors import P2PError
from p2p.host import NetStream
from p2p.logtext import bounded
from p2p.streams import BufferedStream
from oracle.framing import (
    DEFAULT_MAX_REQUEST_SIZE,
    DEFAULT_MAX_RESPONSE_SIZE,
    encode_frame,
    frame_prefix,
    read_message,
    take_frame,
    write_message,
)
from oracle.gating import Admission, WorkerPolicy, WorkRefused
from oracle.gojson import GoJSONEncodeError
from oracle.manager import WorkHandlerManager
from oracle.messages import MessageError, WorkRequest, WorkResponse

__all__ = [
    "PROTOCOL_VERSION",
    "WORKER_PROTOCOL_ID",
    "HostWorkerDirectory",
    "Protocol",
    "WorkerProtocol",
    "protocol_with_version",
    "send_work_to_worker",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PROTOCOL_VERSION = "v0.8.4"  # masa internal/versioning ProtocolVersion
WORKER_PROTOCOL_NAME = "worker_protocol"
# Bytes a requester may send after its request before we call it a protocol violation.
_MAX_TRAILING_BYTES = 64 * 1024
# Answers whose data/error strings are at most this long are encoded in one go (well under a
# millisecond even when every character needs an escape); larger ones in pieces.
_ENCODE_AT_ONCE = 16 * 1024
# A large answer's builder gives the event loop a turn after this many bytes (~0.2-0.5 ms of CPU).
_BUILD_SLICE = 256 * 1024
# A large answer goes to the stream in slices of this size, so no single write of the layers
# below (framing, encryption, the socket) holds the loop for long.
_WRITE_SLICE = 256 * 1024
# Errors a stream or host may raise for network reasons (everything else is a bug and propagates).
_NET_ERRORS = (
    P2PError,
    OSError,
    TimeoutError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


def protocol_with_version(name: str, version: str = PROTOCOL_VERSION, env: str = "") -> str:
    """masa's config.ProtocolWithVersion: `/masa/<name>/<version>[-<env>]`."""
    return f"/masa/{name}/{version}-{env}" if env else f"/masa/{name}/{version}"


WORKER_PROTOCOL_ID = protocol_with_version(WORKER_PROTOCOL_NAME)


class NetStreamLike(_Protocol):
    """The part of p2p.host.NetStream the worker protocol uses."""

    remote_peer: Any
    #: bytes a new stream sends without waiting for the peer (p2p.connection's promise): a
    #: message this small needs no write timeout of its own
    initial_send_window: int

    def current_time(self) -> float: ...
    async def receive(self, max_bytes: int = 65536) -> bytes: ...
    async def receive_exactly(self, n: int) -> bytes: ...
    async def send(self, item: bytes | memoryview) -> None: ...
    async def send_eof(self) -> None: ...
    async def reset(self) -> None: ...
    async def aclose(self) -> None: ...


class HostLike(_Protocol):
    """The part of p2p.host.Host the worker protocol uses."""

    @property
    def peer_id(self) -> Any: ...

    def set_stream_handler(self, protocol: str, handler: Callable[[Any], Awaitable[None]]) -> None: ...
    def remove_stream_handler(self, protocol: str) -> None: ...
    async def new_stream(self, peer: Any, protocols: Sequence[str], *, timeout: float = 10.0) -> Any: ...


class Protocol(abc.ABC):
    """An application protocol the oracle registers on its node at start-up (the spike's interface)."""

    @property
    @abc.abstractmethod
    def protocol_id(self) -> str:
        """The libp2p protocol ID this protocol serves, e.g. `/masa/worker_protocol/v0.8.4`."""

    @abc.abstractmethod
    def register(self, node: HostLike) -> None:
        """Install this protocol's stream handler(s) on `node`."""


async def _stepwise(steps: Generator[None, None, _T]) -> _T:
    """Run a sans-IO computation that yields between its steps, giving the loop a turn at each."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await anyio.lowlevel.checkpoint()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _reset(stream: NetStreamLike) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        try:
            await stream.reset()
        except _NET_ERRORS:
            pass


async def _close(stream: NetStreamLike, timeout: float) -> None:
    if isinstance(stream, NetStream):
        # A host stream's close queues its FIN and returns (p2p.connection.MuxedStream.aclose
        # never waits for the peer): no shield or timeout scope needed, two fewer scopes per
        # request on either side (worker seq +10%).
        try:
            await stream.aclose()
        except _NET_ERRORS:
            pass
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
        try:
            await stream.aclose()
        except _NET_ERRORS:
            pass


class WorkerProtocol(Protocol):
    """Serves `/masa/worker_protocol/<version>[-<env>]` with a WorkHandlerManager behind a policy."""

    def __init__(
        self,
        manager: WorkHandlerManager,
        policy: WorkerPolicy | None = None,
        *,
        version: str = PROTOCOL_VERSION,
        env: str = "",
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
        work_timeout: float | None = None,
    ) -> None:
        self.manager = manager
        self.policy = policy if policy is not None else WorkerPolicy.open()
        self._protocol_id = protocol_with_version(WORKER_PROTOCOL_NAME, version, env)
        self.max_request_size = max_request_size
        self.max_response_size = max_response_size
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.work_timeout = work_timeout
        limits = self.policy.limits
        if limits.max_answer_bytes_per_peer < max_response_size + 4:
            raise ValueError(
                f"the policy's max_answer_bytes_per_peer ({limits.max_answer_bytes_per_peer}) must"
                f" hold one answer of max_response_size ({max_response_size}) bytes and its prefix")
        #: our peer ID as the answers carry it (once registered on a host; it never changes)
        self._local_id = ""
        self._build_lock: anyio.Lock | None = None

    @property
    def protocol_id(self) -> str:
        return self._protocol_id

    def register(self, node: HostLike) -> None:
        self._local_id = str(node.peer_id)
        node.set_stream_handler(self._protocol_id, self.handle_stream)

    def unregister(self, node: HostLike) -> None:
        node.remove_stream_handler(self._protocol_id)

    async def handle_stream(self, stream: NetStreamLike) -> None:
        """Serve one request on `stream`; never raises for anything the remote does."""
        try:
            admission = self.policy.request(stream.remote_peer)
        except WorkRefused as refused:
            log.info("refused work from %s: %s", stream.remote_peer, refused.reason)
            await self._refuse(stream, refused.reason)
            return
        # The slot (queued or held) is given back only once the answer is written or the stream
        # is gone: what the answer holds in memory stays under the policy's limits.
        try:
            if not admission.granted and not await self._wait_turn(admission):
                expired = self.policy.expire(admission)
                log.info("refused work from %s: %s", stream.remote_peer, expired.reason)
                await self._refuse(stream, expired.reason)
                return
            try:
                # (usually the request came whole with the stream's first bytes: no coroutine)
                body = (take_frame(stream, self.max_request_size)
                        if isinstance(stream, BufferedStream) else None)
                if body is None:
                    body = await read_message(stream, max_size=self.max_request_size,
                                              timeout=self.read_timeout)
                if len(body) <= _ENCODE_AT_ONCE:
                    request = WorkRequest.from_json(body)
                else:  # ~4 ms of CPU for 1 MiB: in steps, with a turn of the loop between two
                    request = await _stepwise(WorkRequest.decode_steps(body))
            except _NET_ERRORS as exc:  # MessageError and frame errors are P2PErrors too
                log.info("bad work request from %s: %s", stream.remote_peer, bounded(exc))
                await _reset(stream)
                return
            del body
            try:
                self.policy.check_work_type(request.work_type)
            except WorkRefused as refused:
                response: WorkResponse | None = WorkResponse(error=refused.reason)
            else:
                if self.manager.answers_at_once(request.work_type):
                    # Its handler cannot wait: the work ends in this turn, before a watcher
                    # could start (no cancel scope, no watcher, no timer).
                    response = await self.manager.execute_work(request, timeout=self.work_timeout)
                else:
                    response = await self._execute_watching(stream, request)
            if response is None:
                log.info("requester %s went away; work %s cancelled", stream.remote_peer,
                         bounded(repr(request.request_id)))
                await _reset(stream)
                return
            del request
            if self._at_once(response):
                frame = self._encode_at_once(response)
            else:
                frame = await self._build_answer(response)
            del response  # only the encoded answer is kept while it waits on its reader
            await self._write_answer(stream, frame, admission)
        finally:
            admission.release()

    async def _wait_turn(self, admission: Admission) -> bool:
        """Wait in the policy's queue (bounded by its queue_timeout); True once granted a slot."""
        granted = anyio.Event()
        admission.on_grant = granted.set
        with anyio.move_on_after(self.policy.limits.queue_timeout):
            await granted.wait()
        return admission.granted

    async def _execute_watching(self, stream: NetStreamLike, request: WorkRequest) -> WorkResponse | None:
        """Run the work (whose handler can wait) while watching the stream; None if the
        requester left (work cancelled)."""
        gone = False
        result: WorkResponse | None = None

        async def watch(scope: anyio.CancelScope) -> None:
            nonlocal gone
            trailing = 0
            try:
                while trailing <= _MAX_TRAILING_BYTES:
                    trailing += len(await stream.receive(4096))
            except _NET_ERRORS:
                pass  # EOF (Go's requester closes only once it gave up), reset, broken
            gone = True
            scope.cancel()

        try:  # one lookup (Python 3.11 makes a getpid system call for each: sniffio's is another)
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no asyncio loop running here: trio
            pass
        else:
            # A plain task watches (anyio's task spawn costs more than a quick handler's work),
            # started at the next loop turn, when the work's deadline is set too: work done
            # before then (a handler that never waits) needs no watcher and no timer at all.
            # Once the work is done the watcher is cancelled.
            scope = anyio.CancelScope()
            watcher: asyncio.Task[None] | None = None
            deadline = loop.time() + self.manager.work_timeout(self.work_timeout)  # from now

            def start_watching() -> None:
                nonlocal watcher
                scope.deadline = deadline
                watcher = loop.create_task(watch(scope))

            pending = loop.call_soon(start_watching)
            try:  # the watcher cancels the scope the work runs in (no scope of ours around it)
                result = await self.manager.execute_work(request, timeout=self.work_timeout,
                                                         scope=scope, deadline_by_caller=True)
            finally:
                pending.cancel()
                if watcher is not None:
                    watcher.cancel()
            return None if gone else result
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, tg.cancel_scope)
            result = await self.manager.execute_work(request, timeout=self.work_timeout)
            tg.cancel_scope.cancel()
        return None if gone else result

    def _small_answer(self, error: str) -> bytes:
        return encode_frame(WorkResponse(error=error, worker_peer_id=self._local_id).to_go_json())

    def _too_large(self, size: int) -> bytes:
        return self._small_answer(
            f"work response of {size} bytes exceeds the limit of {self.max_response_size} bytes")

    @staticmethod
    def _at_once(response: WorkResponse) -> bool:
        """Whether `response` is small enough to encode in one go (`_encode_at_once`)."""
        data = response.data
        return ((data is None or (type(data) in (str, bytes) and len(data) <= _ENCODE_AT_ONCE))
                and len(response.error) <= _ENCODE_AT_ONCE and response.work_request is None)

    def _encode_at_once(self, response: WorkResponse) -> bytes:
        """A small answer's frame (length prefix + Go JSON), or an error answer's when it cannot
        be encoded or is over the response size limit."""
        try:
            body = response.to_go_json(self._local_id)  # our ID stamped as it is encoded
        except GoJSONEncodeError as exc:
            return self._small_answer(f"error marshaling work response: {exc}")
        if len(body) > self.max_response_size:
            return self._too_large(len(body))
        return encode_frame(body)

    async def _build_answer(self, response: WorkResponse) -> bytes:
        """A large answer's frame, as `_encode_at_once` gives a small one's.

        Built in pieces (`go_json_pieces`: escaped and encoded a bounded slice at a time) with a
        turn of the event loop every `_BUILD_SLICE` bytes, one large answer at a time (its
        transient pieces cost the memory of one), then joined with its prefix once: the one
        copy of the whole answer (the one-go encoder made six), into a block the allocator
        gives back to the system when the answer is gone (pieces held until then would stay in
        the heap as RSS).
        """
        try:
            if self._build_lock is None:
                self._build_lock = anyio.Lock()
            async with self._build_lock:
                pieces = [b""]  # the length prefix, once the size is known
                size = unyielded = 0
                for piece in response.go_json_pieces(self._local_id):
                    size += len(piece)
                    if size <= self.max_response_size:
                        pieces.append(piece)
                    elif len(pieces) > 1:
                        del pieces[1:]  # too large: only its size is still counted, for the error
                    unyielded += len(piece)
                    if unyielded >= _BUILD_SLICE:
                        unyielded = 0
                        await anyio.lowlevel.checkpoint()
                del piece
                if size > self.max_response_size:
                    return self._too_large(size)
                pieces[0] = frame_prefix(size)
                await anyio.lowlevel.checkpoint()  # the join (~1 ms for 4.7 MB) is a step alone
                return b"".join(pieces)
        except GoJSONEncodeError as exc:
            return self._small_answer(f"error marshaling work response: {exc}")

    async def _refuse(self, stream: NetStreamLike, reason: str) -> None:
        """Answer a refusal, then read the request it refused (bounded by the request size limit
        and the read timeout) before closing: a requester that writes its whole request before
        reading (Go's sendWorkToWorker) would otherwise wait forever on a stream window that a
        closed stream never reopens, and never see the refusal."""
        await self._write_answer(stream, self._small_answer(reason), None, drain=True)

    async def _write_answer(self, stream: NetStreamLike, frame: bytes, admission: Admission | None,
                            *, drain: bool = False) -> None:
        window = stream.initial_send_window
        if len(frame) > window and admission is not None:
            # It can wait on its reader: it must fit the answer memory budget, else an error goes.
            refused = self.policy.reserve_answer(admission, len(frame))
            if refused is not None:
                log.info("refused work from %s: %s", stream.remote_peer, refused.reason)
                frame = self._small_answer(refused.reason)
        try:
            if len(frame) <= window:
                await stream.send(frame)
            else:
                view = memoryview(frame)  # slices of it are sent as they are (no copy)
                with anyio.fail_after(self.write_timeout):
                    for start in range(0, len(frame), _WRITE_SLICE):
                        await stream.send(view[start:start + _WRITE_SLICE])
        except _NET_ERRORS as exc:
            log.info("could not answer %s: %s", stream.remote_peer, bounded(exc))
            await _reset(stream)
            return
        if drain:
            try:
                await read_message(stream, max_size=self.max_request_size, timeout=self.read_timeout)
            except _NET_ERRORS:
                await _reset(stream)
                return
        await _close(stream, self.write_timeout)


async def send_work_to_worker(
    host: HostLike,
    peer: Any,
    request: WorkRequest,
    *,
    protocol_id: str = WORKER_PROTOCOL_ID,
    connect_timeout: float = 10.0,
    response_timeout: float = 45.0,
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
) -> WorkResponse:
    """Send `request` to `peer` and return its answer; failures come back as `error`, in Go's words.

    Opening the stream (dial if needed + protocol negotiation) is bounded by `connect_timeout`;
    writing the request and reading the answer by `response_timeout`.
    """
    try:  # the host bounds dialling, opening and negotiating by `timeout` itself
        stream = await host.new_stream(peer, [protocol_id], timeout=connect_timeout)
    except _NET_ERRORS as exc:
        return WorkResponse(error=f"error opening stream: {_describe(exc)}")
    done = False
    stage = "writing to stream"
    try:
        body_out = request.to_go_json()
        if (len(body_out) + 4 <= stream.initial_send_window
                and stream.set_read_deadline(stream.current_time() + response_timeout)):
            # The write cannot wait on flow control (it fits a new stream's window) and the
            # stream's read deadline bounds the answer: no cancel scope per request.
            await write_message(stream, body_out)
            stage = "reading response"
            body = await read_message(stream, max_size=max_response_size, timeout=None)
        else:
            with anyio.fail_after(response_timeout):
                await write_message(stream, body_out)
                stage = "reading response"
                body = await read_message(stream, max_size=max_response_size,
                                          timeout=response_timeout)
        stage = "unmarshaling response"
        response = WorkResponse.from_json(body)
        done = True
        return response
    except TimeoutError:
        return WorkResponse(error=f"error {stage}: no response within {response_timeout} s")
    except MessageError as exc:
        return WorkResponse(error=f"error {stage}: {exc}")
    except _NET_ERRORS as exc:
        return WorkResponse(error=f"error {stage}: {_describe(exc)}")
    finally:
        if done:
            await _close(stream, 5)
        else:
            await _reset(stream)


class HostWorkerDirectory:
    """A WorkerDirectory over a Host: explicit workers plus peers known to speak the worker protocol.

    Eligibility is per protocol, not per work type (the Go node tracker's categories come from
    gossip, which this stack does not run): a peer without the handler answers
    `work handler not found` and distribution moves on.
    """

    def __init__(
        self, host: Any, *, protocol_id: str = WORKER_PROTOCOL_ID, workers: Iterable[Hashable] = ()
    ) -> None:
        self.host = host
        self.protocol_id = protocol_id
        self._workers: dict[str, Hashable] = {str(p): p for p in workers}

    @property
    def local_peer_id(self) -> Hashable:
        return self.host.peer_id  # type: ignore[no-any-return]

    def add_worker(self, peer: Hashable) -> None:
        self._workers[str(peer)] = peer

    def remove_worker(self, peer: Hashable) -> None:
        self._workers.pop(str(peer), None)

    def eligible_peers(self, work_type: str) -> list[Hashable]:
        peers = dict(self._workers)
        peerstore = getattr(self.host, "peerstore", None)
        if peerstore is not None:
            for peer in peerstore.peers():
                if self.protocol_id in peerstore.protocols(peer):
                    peers.setdefault(str(peer), peer)
        return list(peers.values())

    async def send_work(
        self, peer: Any, request: WorkRequest, *, connect_timeout: float, response_timeout: float
    ) -> WorkResponse:
        return await send_work_to_worker(
            self.host,
            peer,
            request,
            protocol_id=self.protocol_id,
            connect_timeout=connect_timeout,
            response_timeout=response_timeout,
        )
