"""In-memory stand-ins for the Host/NetStream API of p2p/host.py, for the oracle protocol tests.

A `FakeNetwork` owns a task group and runs each side's stream handler in it; streams are pairs of
memory channels carrying bytes, with EOF (send_eof), close (aclose: FIN + stop reading, as go) and
reset (the other side's next receive raises StreamReset).
"""

from __future__ import annotations

import math
from typing import Any, Awaitable, Callable, Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from p2p.errors import DialError, NegotiationFailed, StreamReset
from p2p.streams import BufferedStream

_RESET = object()


class MemoryByteStream:
    """One end of an in-memory duplex byte stream."""

    def __init__(self, out: MemoryObjectSendStream[Any], inp: MemoryObjectReceiveStream[Any]) -> None:
        self._out = out
        self._in = inp
        self._pending = b""
        self.reset_called = False
        self.closed = False
        self.eof_sent = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._pending:
            try:
                item = await self._in.receive()
            except anyio.ClosedResourceError:
                raise anyio.ClosedResourceError from None
            if item is _RESET:
                raise StreamReset(remote=True)
            self._pending = item
        out, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return out

    async def send(self, item: bytes) -> None:
        if self.reset_called:
            raise StreamReset(remote=False)
        await self._out.send(bytes(item))

    async def send_eof(self) -> None:
        self.eof_sent = True
        await self._out.aclose()

    async def aclose(self) -> None:
        self.closed = True
        await self._out.aclose()
        await self._in.aclose()

    async def reset(self) -> None:
        self.reset_called = True
        try:
            self._out.send_nowait(_RESET)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.WouldBlock):
            pass
        await self._out.aclose()
        await self._in.aclose()


def memory_stream_pair() -> tuple[MemoryByteStream, MemoryByteStream]:
    a_send, b_recv = anyio.create_memory_object_stream[Any](math.inf)
    b_send, a_recv = anyio.create_memory_object_stream[Any](math.inf)
    return MemoryByteStream(a_send, a_recv), MemoryByteStream(b_send, b_recv)


class FakeNetStream(BufferedStream):
    """BufferedStream + the NetStream attributes (protocol, remote_peer, initial_send_window)."""

    initial_send_window = 256 * 1024  # as a yamux stream promises

    def __init__(self, inner: MemoryByteStream, protocol: str, remote_peer: Any) -> None:
        super().__init__(inner)
        self.protocol = protocol
        self.remote_peer = remote_peer

    @property
    def raw(self) -> MemoryByteStream:
        return self.inner  # type: ignore[return-value]


class FakePeerstore:
    def __init__(self) -> None:
        self._protocols: dict[str, set[str]] = {}

    def add_protocols(self, peer: str, *protocols: str) -> None:
        self._protocols.setdefault(peer, set()).update(protocols)

    def peers(self) -> list[str]:
        return list(self._protocols)

    def protocols(self, peer: str) -> set[str]:
        return set(self._protocols.get(str(peer), ()))


class FakeHost:
    def __init__(self, network: FakeNetwork, peer_id: str) -> None:
        self.network = network
        self.peer_id = peer_id
        self.handlers: dict[str, Callable[[Any], Awaitable[None]]] = {}
        self.peerstore = FakePeerstore()
        self.streams: list[FakeNetStream] = []

    def set_stream_handler(self, protocol: str, handler: Callable[[Any], Awaitable[None]]) -> None:
        self.handlers[protocol] = handler

    def remove_stream_handler(self, protocol: str) -> None:
        self.handlers.pop(protocol, None)

    async def new_stream(self, peer: Any, protocols: Sequence[str], *, timeout: float = 10.0) -> FakeNetStream:
        remote = self.network.hosts.get(str(peer))
        if remote is None:
            raise DialError(f"no addresses for {peer}")
        for proto in protocols:
            handler = remote.handlers.get(proto)
            if handler is not None:
                break
        else:
            raise NegotiationFailed(list(protocols))
        ours, theirs = memory_stream_pair()
        local = FakeNetStream(ours, proto, remote.peer_id)
        served = FakeNetStream(theirs, proto, self.peer_id)
        self.streams.append(local)
        remote.streams.append(served)
        self.network.spawn(handler, served)
        return local


class FakeNetwork:
    """`async with FakeNetwork() as net:`; handler tasks live in its task group."""

    def __init__(self) -> None:
        self.hosts: dict[str, FakeHost] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.handler_errors: list[BaseException] = []

    def add_host(self, peer_id: str) -> FakeHost:
        host = FakeHost(self, peer_id)
        self.hosts[peer_id] = host
        return host

    def spawn(self, handler: Callable[[Any], Awaitable[None]], stream: FakeNetStream) -> None:
        async def run() -> None:
            try:
                await handler(stream)
            except Exception as exc:  # recorded: a handler must never raise
                self.handler_errors.append(exc)

        assert self._tg is not None
        self._tg.start_soon(run)

    async def __aenter__(self) -> FakeNetwork:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        return await self._tg.__aexit__(*exc)


class PluginHandler:
    """A user plug-in in Go's WorkHandler shape (loaded by name in the handler tests)."""

    def handle_work(self, data: bytes) -> str:
        return data.decode().upper()
