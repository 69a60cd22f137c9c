"""The connection interface below the Host: a secured, multiplexed connection to one peer.

Whatever made it (TCP + Noise + yamux through `p2p.upgrader`, or QUIC with its own TLS and
streams), the Host, the protocol services and the oracle use a connection only through these two
Protocols. What an implementer must provide is in each method's docstring; the two promises every
caller leans on are:

* `MuxedStream.aclose()` and `send_eof()` only queue the end of our side and never wait for the
  peer (so a handler's final close needs no timeout or shield of its own);
* `MuxedConnection.initial_send_window` bytes can be sent on a new stream without waiting for the
  peer's flow-control credit (so a small message needs no write timeout of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from multiaddr import Multiaddr

from p2p.identity import PeerId, PublicKey

__all__ = ["MuxedConnection", "MuxedStream", "StreamHandlerFn"]


@runtime_checkable
class MuxedStream(Protocol):
    """One bidirectional stream of a muxed connection (anyio ByteStream words plus `reset`).

    Errors: a stream the peer reset raises `p2p.errors.StreamReset`; a dead connection
    `p2p.errors.ConnectionClosed`; use after our own close `anyio.ClosedResourceError`.
    """

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        """Send all of `item`, waiting only for the peer's flow-control credit. The caller may
        reuse a bytearray it passed once this returns (copy it if you keep a reference)."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """At least one and at most `max_bytes` bytes; `anyio.EndOfStream` after the peer's FIN.
        A read deadline set with `set_read_deadline` turns a wait past it into TimeoutError."""

    async def send_eof(self) -> None:
        """Half-close: queue our FIN and return (never waits); reading goes on."""

    async def aclose(self) -> None:
        """Graceful close: our FIN if not yet sent, stop reading, forget the stream. Queues and
        returns: it must never wait for the peer, and queued output must leave without another
        call (the Host closes every handler's stream this way)."""

    async def reset(self) -> None:
        """Abort both directions at once; later calls raise StreamReset(remote=False)."""

    # An implementation may also provide p2p.streams.NoWaitIO (`receive_nowait`, `send_nowait`):
    # multistream's listener then answers a proposal that came with the stream's opening without
    # a wait or a loop turn. Without it the same negotiation takes the ordinary path.

    def set_read_deadline(self, deadline: float | None) -> None:
        """From now on `receive` raises TimeoutError instead of waiting past `deadline`
        (`anyio.current_time()` clock); None lifts it. One timer per wait is what makes a
        per-request timeout cheap: implement it with the loop's timer, not a task."""


#: What `MuxedConnection.set_stream_handler` takes: called synchronously for each inbound stream.
StreamHandlerFn = Callable[[MuxedStream], None]


@runtime_checkable
class MuxedConnection(Protocol):
    """A connection that is already secured (peer authenticated) and multiplexed.

    Attributes an implementer sets: `local_peer`, `remote_peer`, `remote_public_key` (the key
    the handshake authenticated), `local_addr`, `remote_addr` (full multiaddrs, e.g.
    `/ip4/1.2.3.4/tcp/4001`), `direction` ("inbound" or "outbound"), `transport` (a short name for
    logs and metrics: "tcp", "quic") and `initial_send_window` (bytes a new stream may send before
    it needs the peer's credit; 0 promises nothing).

    Lifecycle: the Host calls `set_stream_handler`, then runs `run()` in a task of its own for as
    long as the connection lives; `close()` (from any task) makes `run()` return.
    """

    local_peer: PeerId
    remote_peer: PeerId
    remote_public_key: PublicKey
    local_addr: Multiaddr
    remote_addr: Multiaddr
    direction: str
    transport: str
    initial_send_window: int

    @property
    def is_closed(self) -> bool:
        """True once the connection can carry no new stream (closed by either side or failed)."""

    @property
    def error(self) -> BaseException | None:
        """Why the connection ended: None while it runs and after a clean close (for logs)."""

    async def open_stream(self, *, timeout: float | None = None) -> MuxedStream:
        """A new outbound stream. Waits (at most `timeout`, then TimeoutError) only while the
        peer's stream limit is reached; ConnectionClosed if the connection is over. The stream's
        opening may travel with its first data."""

    def set_stream_handler(self, handler: StreamHandlerFn | None) -> None:
        """Call `handler(stream)` for every inbound stream as it opens. It is called from the
        connection's reading path, so it must not block (the Host starts a task per stream)."""

    async def run(self) -> None:
        """Serve the connection (read, dispatch, keepalive) until it ends; returns when it does,
        with the reason kept by the implementation, never raised for a remote failure. The
        streams fail with ConnectionClosed once it has returned."""

    async def close(self) -> None:
        """Close gracefully (tell the peer, bounded by a short grace time), then release the
        connection; `run()` returns. Idempotent."""
