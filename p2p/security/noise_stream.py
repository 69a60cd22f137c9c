"""anyio driver for the Noise core: run the handshake on a connection, then be a ByteStream.

The handshake loop is the only place that waits on the peer, and it runs under one
`anyio.fail_after(timeout)` (go bounds the whole inbound upgrade at 15 s). On any failure the
connection is closed, as go does, so a half-done handshake never leaks a socket.

After the handshake `NoiseStream` is the bulk-transfer hot path: `receive` pulls large reads
(256 KiB) from the connection and decrypts every complete frame at once; `send` encrypts a whole
write into frames and hands it to the connection in one `send` call, under a lock so that frame
order on the wire always matches nonce order.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from p2p.errors import HandshakeError
from p2p.identity import PeerId, PrivateKey, PublicKey
from p2p.security.noise import (MAX_FRAME, MAX_PLAINTEXT, NoiseDecryptError, NoiseHandshake,
                                NoiseTransport)
from p2p.streams import (BufferedStream, NonBlockingWrites, PushReads, has_nonblocking_writes,
                         has_push_reads)
from p2p.sync import LazyLock

if TYPE_CHECKING:
    from p2p.trace.hooks import ConnTrace

RECEIVE_CHUNK = 256 * 1024  # big reads amortise per-call overhead; ~4 frames per read
_HANDSHAKE_READ = MAX_FRAME + 2
_COALESCE_BELOW = 16 * 1024  # frames this small are joined with their successors on receive


class HandshakeTimeout(HandshakeError):
    """The peer did not complete the Noise handshake in time."""


class NoiseStream:
    """An encrypted ByteStream over a connection (anyio vocabulary: EndOfStream at clean EOF)."""

    __slots__ = ("conn", "local_peer", "remote_peer", "remote_public_key", "early_muxer",
                 "_transport", "_send_lock", "_raw", "_raw_push", "_raw_writes", "_chunks")

    def __init__(
        self,
        conn: BufferedStream,
        transport: NoiseTransport,
        *,
        local_peer: PeerId,
        remote_peer: PeerId,
        remote_public_key: PublicKey,
        early_muxer: str | None,
        plaintext: Sequence[bytes] = (),
    ) -> None:
        self.conn = conn
        self.local_peer = local_peer
        self.remote_peer = remote_peer
        self.remote_public_key = remote_public_key
        self.early_muxer = early_muxer
        self._transport = transport
        self._send_lock = LazyLock()  # frame order = nonce order; no yield when free
        # The TCP stream below our BufferedStream (which adds nothing to writes or pushed reads),
        # and its fast paths, found once instead of on every call.
        raw = conn.inner if isinstance(conn, BufferedStream) else conn
        self._raw = raw
        self._raw_push: PushReads | None = raw if has_push_reads(raw) else None
        self._raw_writes: NonBlockingWrites | None = (
            raw if has_nonblocking_writes(raw) else None)
        # plaintext frames not yet returned, starting with any that arrived behind the handshake
        self._chunks: list[bytes] = [p for p in plaintext if p]  # a few frames at most

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to `max_bytes` of plaintext: a whole frame's worth is returned without copying;
        runs of small frames (e.g. yamux window updates) are coalesced into one result."""
        chunks = self._chunks
        while not chunks:
            try:
                data = await self.conn.receive(RECEIVE_CHUNK)
            except anyio.EndOfStream:
                if self._transport.buffered:
                    raise NoiseDecryptError("connection ended in the middle of a noise frame")
                raise
            # an empty frame (legal: 16-byte tag only) must not surface as a b"" "EOF"
            chunks.extend(p for p in self._transport.decrypt_frames(data) if p)
        first = chunks.pop(0)
        if len(first) > max_bytes:
            chunks.insert(0, first[max_bytes:])
            return first[:max_bytes]
        if len(first) >= _COALESCE_BELOW or not chunks:
            return first
        parts = [first]
        total = len(first)
        while chunks and len(chunks[0]) < _COALESCE_BELOW and total + len(chunks[0]) <= max_bytes:
            total += len(chunks[0])
            parts.append(chunks.pop(0))
        return b"".join(parts) if len(parts) > 1 else first

    async def send(self, item: bytes) -> None:
        if not item:
            return
        async with self._send_lock:
            await self.conn.send(self._transport.encrypt(item))

    def set_receiver(self, on_data: Callable[[bytes], None] | None,
                     on_end: Callable[[BaseException | None], None] | None = None) -> bool:
        """Push mode (see `AsyncioTcpStream.set_receiver`): decrypt each read as it arrives and
        hand every plaintext frame to `on_data`; `on_end(None)` at a clean EOF, else the error (a
        frame that fails authentication, EOF inside a frame, a broken connection). False, and
        nothing changes, when the connection below cannot push; `receive` is then the way.
        """
        if on_data is None:
            if self._raw_push is not None:
                self._raw_push.set_receiver(None, None)
            return self._raw_push is not None

        def each(frames: list[bytes]) -> None:
            for frame in frames:
                if frame:
                    on_data(frame)

        return self._push(each, on_end)

    def set_pieces_receiver(self, on_pieces: Callable[[list[bytes]], None],
                            on_end: Callable[[BaseException | None], None]) -> bool:
        """`set_receiver`, with the plaintext frames of each read handed over together:
        `on_pieces(frames)` once per read that completed a frame (`p2p.streams.PushPieces`)."""
        return self._push(on_pieces, on_end)

    def _push(self, on_frames: Callable[[list[bytes]], None],
              on_end: Callable[[BaseException | None], None] | None) -> bool:
        if self._raw_push is None:
            return False
        setter = self._raw_push.set_receiver
        transport = self._transport
        ended = False

        def end(exc: BaseException | None) -> None:
            nonlocal ended
            if not ended:
                ended = True
                setter(None, None)
                on_end(exc)  # type: ignore[misc]

        def data(chunk: bytes) -> None:
            try:
                frames = transport.decrypt_frames(chunk)
            except NoiseDecryptError as exc:
                end(exc)
                return
            if frames and not ended:
                on_frames(frames)

        def eof(exc: BaseException | None) -> None:
            if exc is None and transport.buffered:
                exc = NoiseDecryptError("connection ended in the middle of a noise frame")
            end(exc)

        # What arrived before: plaintext already decrypted, then raw bytes read past it.
        if self._chunks:
            chunks, self._chunks = self._chunks, []
            on_frames(chunks)
        conn = self.conn
        leftover = conn.take_buffered() if isinstance(conn, BufferedStream) else b""
        if leftover and not ended:
            data(leftover)
        if not ended:
            setter(data, eof)
        return True

    def pause_receiving(self) -> None:
        if self._raw_push is not None:
            self._raw_push.pause_receiving()

    def resume_receiving(self) -> None:
        if self._raw_push is not None:
            self._raw_push.resume_receiving()

    def send_ready(self) -> bool:
        """True when `try_send` would take bytes now: the connection below can (its `send_ready`)
        and no `send` is under way."""
        raw = self._raw_writes
        return raw is not None and not self._send_lock.held and raw.send_ready()

    def try_send(self, item: bytes) -> bool:
        """`send` without waiting when the connection below can take the frames now (see
        `send_ready`); False, with nothing encrypted or sent, when `send` must be used."""
        if not self.send_ready():
            return False
        if item:
            self._raw_writes.try_send(self._transport.encrypt(item))  # type: ignore[union-attr]
        return True

    def try_send_pieces(self, pieces: Sequence[bytes | memoryview], total: int) -> bool:
        """`try_send` of the concatenation of `pieces` (`total` bytes), sealed frame by frame
        into this thread's reused buffers (`_SealBuffers`) rather than joined and sealed into
        fresh ones; False, with nothing sent, when `send` must be used."""
        raw = self._raw_writes
        if raw is None or self._send_lock.held or not raw.send_ready():
            return False
        if total:
            bufs = _SEAL
            out = bufs.out_for(NoiseTransport.sealed_size(total), raw)
            n = self._transport.encrypt_pieces_into(pieces, out, bufs.stage)
            raw.try_send(memoryview(out)[:n])
            if not raw.send_ready():
                bufs.lend(out, raw)  # the kernel left part of it: the transport may still hold it
        return True

    def unread(self, plaintext: bytes) -> None:
        """Give back plaintext read past a message (what multistream read past its reply when
        it negotiated the muxer): the next `receive`, or the receiver when pushing, gets it
        first. Lets the muxer run on this stream itself, with its fast paths."""
        if plaintext:
            self._chunks.insert(0, bytes(plaintext))

    async def send_eof(self) -> None:
        """TCP half-close: Noise has no close message, the peer sees EOF after our last frame."""
        async with self._send_lock:
            await self.conn.send_eof()

    async def aclose(self) -> None:
        await self.conn.aclose()


#: The largest sealed write a thread keeps a buffer for.
_MAX_KEPT = 4 << 20


class _SealBuffers(threading.local):
    """One thread's buffers for sealing writes (`NoiseStream.try_send_pieces`): a frame's
    plaintext is gathered in `stage`, the frames sealed into `out`, reused write after write.

    Per thread rather than per connection: an idle connection holds none of it, and a write is
    sealed and handed to the transport within one call. `out` is reused only while no transport
    holds a reference to it (asyncio's transport keeps the unsent rest of a write, by reference
    on Python 3.12+): a write the kernel did not take whole lends it to that connection, which
    gives it back once it has sent everything (`send_ready()` again: its transport is empty, as
    a write waits for), else the next write takes a new one. The next write on that same
    connection has just seen it ready, so it asks nothing more. Forgetting it at every such
    write made a new one of up to a few MiB each time, zeroed and page-faulted in (an echo of 16
    streams: a fifth of its page faults). It grows to the largest write up to `_MAX_KEPT`;
    larger writes get a buffer of their own.
    """

    def __init__(self) -> None:
        self.stage = bytearray(MAX_PLAINTEXT)
        self._out = bytearray()
        self._lent_to: NonBlockingWrites | None = None

    def out_for(self, size: int, to: NonBlockingWrites) -> bytearray:
        """A buffer of at least `size` bytes for a write to `to`, which is `send_ready()`."""
        lent, self._lent_to = self._lent_to, None
        if lent is not None and lent is not to and not lent.send_ready():
            self._out = bytearray()  # still held below that connection: leave it to it
        out = self._out
        if len(out) >= size:
            return out
        out = bytearray(size)
        if size <= _MAX_KEPT:
            self._out = out
        return out

    def lend(self, out: bytearray, to: NonBlockingWrites) -> None:
        """`out` went to `to` and part of it is still waiting there (see the class)."""
        if out is self._out:
            self._lent_to = to


_SEAL = _SealBuffers()


async def _close_quietly(conn: BufferedStream) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await conn.aclose()
        except Exception:  # noqa: BLE001 - the handshake error is the one worth reporting
            pass


@functools.lru_cache(maxsize=16)
def _peer_id_of(local_key: PublicKey) -> PeerId:
    """Our own peer ID, made once per identity rather than per connection."""
    return PeerId.from_public_key(local_key)


async def send_now(conn: BufferedStream, data: bytes) -> None:
    """Write a handshake message without the loop turn a `send` yields after writing (for
    fairness between bulk writers): the handshake waits for the peer's answer next, or goes on
    setting up the connection. A connection below that cannot take it at once gets `send`."""
    raw = conn.inner
    if has_nonblocking_writes(raw) and raw.try_send(data):
        return
    await conn.send(data)


async def _exchange(conn: BufferedStream, hs: NoiseHandshake) -> None:
    out = hs.data_to_send()
    if out:
        await send_now(conn, out)
    while not hs.complete:
        try:
            data = await conn.receive(_HANDSHAKE_READ)
        except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            raise HandshakeError("connection closed during noise handshake") from exc
        hs.receive_data(data)
        out = hs.data_to_send()
        if out:
            await send_now(conn, out)


async def _run(conn: BufferedStream, hs: NoiseHandshake, timeout: float | None) -> NoiseStream:
    try:
        if timeout is None:  # the caller bounds the whole upgrade in time
            await _exchange(conn, hs)
        else:
            with anyio.fail_after(timeout):
                await _exchange(conn, hs)
        transport = hs.to_transport()
        plaintext = transport.decrypt_frames(hs.leftover) if hs.leftover else []
    except TimeoutError:
        await _close_quietly(conn)
        raise HandshakeTimeout(f"noise handshake not done within {timeout} s") from None
    except BaseException:
        await _close_quietly(conn)
        raise
    assert hs.remote_peer is not None and hs.remote_public_key is not None
    return NoiseStream(
        conn,
        transport,
        local_peer=_peer_id_of(hs.identity.public_key),
        remote_peer=hs.remote_peer,
        remote_public_key=hs.remote_public_key,
        early_muxer=hs.selected_muxer,
        plaintext=plaintext,
    )


def new_handshake(identity: PrivateKey, *, initiator: bool, expected_peer: PeerId | None = None,
                  muxers: Sequence[str] = ("/yamux/1.0.0",), trace: ConnTrace | None = None,
                  proposed: bool = False) -> NoiseHandshake:
    """The core for one handshake (the initiator's first message already queued); `trace` (a
    `p2p.trace.hooks.ConnTrace`) swaps in the core that reports what it does (`proposed`: made
    before the listener's acceptance of /noise crossed the wire). With `finish_handshake`, for
    a caller that sends the first bytes itself (the upgrader puts them in the same write as the
    multistream proposal or reply)."""
    if trace is None:
        return NoiseHandshake(identity, initiator=initiator, expected_peer=expected_peer,
                              muxers=muxers)
    hs: NoiseHandshake = trace.noise_handshake(identity, proposed=proposed, initiator=initiator,
                                               expected_peer=expected_peer, muxers=muxers)
    return hs


async def finish_handshake(conn: BufferedStream, hs: NoiseHandshake) -> NoiseStream:
    """Run `hs` to its end on `conn` (what it has queued is sent first), unbounded in time: the
    caller bounds it. The connection is closed on failure."""
    return await _run(conn, hs, None)


async def secure_outbound(
    conn: BufferedStream,
    identity: PrivateKey,
    *,
    expected_peer: PeerId | None,
    muxers: Sequence[str] = ("/yamux/1.0.0",),
    timeout: float | None = 15.0,
    trace: ConnTrace | None = None,
) -> NoiseStream:
    """Dialer side (Noise initiator); raises PeerIdMismatch if the peer is not `expected_peer`."""
    hs = new_handshake(identity, initiator=True, expected_peer=expected_peer, muxers=muxers,
                       trace=trace)
    return await _run(conn, hs, timeout)


async def secure_inbound(
    conn: BufferedStream,
    identity: PrivateKey,
    *,
    muxers: Sequence[str] = ("/yamux/1.0.0",),
    timeout: float | None = 15.0,
    trace: ConnTrace | None = None,
) -> NoiseStream:
    """Listener side (Noise responder); the remote identity is whatever the peer proves."""
    hs = new_handshake(identity, initiator=False, muxers=muxers, trace=trace)
    return await _run(conn, hs, timeout)
