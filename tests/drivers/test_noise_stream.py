"""NoiseStream over real loopback TCP on both anyio backends: handshake, bulk data, half-close,
timeouts, identity checks. No sleeps: every wait is on the peer or on a bounded timeout."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketAttribute
from readers import read_all

from p2p.errors import HandshakeError, PeerIdMismatch, RemoteProtocolError
from p2p.identity import PeerId, PrivateKey
from p2p.mux.yamux_session import YamuxSession, YamuxStream
from p2p.security.noise import CipherState, NoiseDecryptError, NoiseTransport
from p2p.security.noise_stream import (
    HandshakeTimeout,
    NoiseStream,
    secure_inbound,
    secure_outbound,
)
from p2p.streams import BufferedStream

pytestmark = pytest.mark.anyio

YAMUX = "/yamux/1.0.0"
CLIENT_KEY = PrivateKey.generate()
SERVER_KEY = PrivateKey.generate()
SERVER_ID = PeerId.from_public_key(SERVER_KEY.public_key)
CLIENT_ID = PeerId.from_public_key(CLIENT_KEY.public_key)


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[BufferedStream, BufferedStream]]:
    """(dialer, listener) ends of one loopback TCP connection."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
        port = listener.extra(SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        server = await listener.listeners[0].accept()  # already queued by the kernel
        async with client, server:
            yield BufferedStream(client), BufferedStream(server)


@asynccontextmanager
async def secured_pair(**kw: object) -> AsyncIterator[tuple[NoiseStream, NoiseStream]]:
    async with tcp_pair() as (c, s):
        result: dict[str, NoiseStream] = {}

        async def inbound() -> None:
            result["server"] = await secure_inbound(s, SERVER_KEY, timeout=5)

        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            result["client"] = await secure_outbound(
                c, CLIENT_KEY, expected_peer=SERVER_ID, timeout=5, **kw  # type: ignore[arg-type]
            )
        yield result["client"], result["server"]


async def test_handshake_identities_and_early_muxer() -> None:
    async with secured_pair() as (client, server):
        assert client.remote_peer == SERVER_ID and server.remote_peer == CLIENT_ID
        assert client.local_peer == CLIENT_ID and server.local_peer == SERVER_ID
        assert server.remote_public_key == CLIENT_KEY.public_key
        assert client.early_muxer == server.early_muxer == YAMUX


async def test_no_common_early_muxer_falls_back() -> None:
    async with secured_pair(muxers=("/mplex/6.7.0",)) as (client, server):
        assert client.early_muxer is None and server.early_muxer is None
        await client.send(b"still works")
        assert await server.receive() == b"still works"


async def test_four_mib_round_trip_echo() -> None:
    data = os.urandom(4 * 1024 * 1024 + 123)
    async with secured_pair() as (client, server):

        async def echo() -> None:
            while True:
                try:
                    chunk = await server.receive(100_000)
                except anyio.EndOfStream:
                    await server.send_eof()
                    return
                assert len(chunk) <= 100_000  # max_bytes honoured, surplus kept
                await server.send(chunk)

        async def upload() -> None:
            await client.send(data)  # one call: ~65 frames, one socket write
            await client.send_eof()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(echo)
                tg.start_soon(upload)
                echoed = await read_all(client)
    assert echoed == data


async def test_half_close_each_direction() -> None:
    async with secured_pair() as (client, server):
        with anyio.fail_after(5):
            await client.send(b"hello")
            await client.send_eof()
            assert await server.receive() == b"hello"
            with pytest.raises(anyio.EndOfStream):
                await server.receive()
            await server.send(b"world")  # the other direction still works after the client's EOF
            await server.send_eof()
            assert await read_all(client) == b"world"


async def test_small_max_bytes_returns_surplus_in_order() -> None:
    async with secured_pair() as (client, server):
        with anyio.fail_after(5):
            await client.send(b"abcdefghij")
            got = [await server.receive(3) for _ in range(4)]
    assert got == [b"abc", b"def", b"ghi", b"j"]


async def test_bytes_already_buffered_before_the_handshake() -> None:
    """The multistream layer may have read msg1 (and more) into the BufferedStream already."""
    async with tcp_pair() as (c, s):
        result: dict[str, NoiseStream] = {}

        async def inbound() -> None:
            head = await s.receive_exactly(10)  # part of msg1, read "by multistream"
            s.unread(head)
            result["server"] = await secure_inbound(s, SERVER_KEY, timeout=5)

        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            client = await secure_outbound(c, CLIENT_KEY, expected_peer=SERVER_ID, timeout=5)
            await client.send(b"first data right behind msg3")
        with anyio.fail_after(5):
            assert await result["server"].receive() == b"first data right behind msg3"


async def test_peer_id_mismatch_closes_connection() -> None:
    other = PeerId.from_public_key(PrivateKey.generate().public_key)
    async with tcp_pair() as (c, s):
        errors: list[BaseException] = []

        async def inbound() -> None:
            try:
                await secure_inbound(s, SERVER_KEY, timeout=5)
            except HandshakeError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            with pytest.raises(PeerIdMismatch) as info:
                await secure_outbound(c, CLIENT_KEY, expected_peer=other, timeout=5)
        assert info.value.expected == other and info.value.actual == SERVER_ID
        # the dialer closed without msg3: the listener sees the connection end, not a hang
        assert len(errors) == 1 and not isinstance(errors[0], HandshakeTimeout)


async def test_silent_listener_hits_handshake_timeout() -> None:
    async with tcp_pair() as (c, _silent):
        with anyio.fail_after(5):  # guard: the handshake timeout must fire well before this
            with pytest.raises(HandshakeTimeout):
                await secure_outbound(c, CLIENT_KEY, expected_peer=SERVER_ID, timeout=0.3)
        with pytest.raises((anyio.ClosedResourceError, anyio.BrokenResourceError)):
            await c.send(b"x")  # the connection was closed by the failed handshake


async def test_silent_dialer_hits_handshake_timeout() -> None:
    async with tcp_pair() as (_silent, s):
        with anyio.fail_after(5):
            with pytest.raises(HandshakeTimeout) as info:
                await secure_inbound(s, SERVER_KEY, timeout=0.3)
    assert isinstance(info.value, RemoteProtocolError)


async def test_garbage_instead_of_handshake() -> None:
    async with tcp_pair() as (c, s):
        await c.send(b"\x00\x20" + b"\x00" * 32)  # msg1 with a low-order ephemeral key
        with anyio.fail_after(5):
            with pytest.raises(HandshakeError):
                await secure_inbound(s, SERVER_KEY, timeout=3)


async def test_truncated_frame_at_eof_is_an_error() -> None:
    async with secured_pair() as (client, server):
        frame = client._transport.encrypt(b"partial")  # a real frame, cut short on the wire
        await client.conn.send(frame[:-3])
        await client.send_eof()
        with anyio.fail_after(5):
            with pytest.raises(RemoteProtocolError):
                await server.receive()


async def test_empty_frames_are_skipped_and_small_frames_coalesced() -> None:
    async with secured_pair() as (client, server):
        t = client._transport
        empty = t._send.encrypt_with_ad(b"", b"")  # legal: a frame with no plaintext
        wire = b"".join(bytes(t.encrypt(bytes([i]))) for i in range(10))
        await client.conn.send(b"\x00\x10" + empty + wire)
        await client.send_eof()
        with anyio.fail_after(5):
            got = []
            while True:
                try:
                    chunk = await server.receive(4)
                except anyio.EndOfStream:
                    break
                assert 0 < len(chunk) <= 4
                got.append(chunk)
    assert b"".join(got) == bytes(range(10))
    assert len(got) < 10  # ten one-byte frames did not need ten receive calls


class _KernelStandIn:
    """The raw stream under a NoiseStream: takes every write (keeping it, as asyncio's transport
    keeps an unsent rest) and is ready for more until `fill()` says the kernel took only part."""

    def __init__(self) -> None:
        self.writes: list[memoryview] = []
        self.copies: list[bytes] = []
        self.full_after_next = False
        self.full = False
        self.asked = 0  # send_ready() calls

    def send_ready(self) -> bool:
        self.asked += 1
        return not self.full

    def try_send(self, item: memoryview) -> bool:
        assert not self.full
        self.writes.append(item)
        self.copies.append(bytes(item))
        self.full = self.full_after_next
        return True


def _stream_over(raw: _KernelStandIn) -> tuple[NoiseStream, NoiseTransport]:
    k1, k2 = bytes(range(32)), bytes(range(1, 33))
    stream = NoiseStream(raw, NoiseTransport(CipherState(k1), CipherState(k2)),  # type: ignore[arg-type]
                         local_peer=CLIENT_ID, remote_peer=SERVER_ID,
                         remote_public_key=SERVER_KEY.public_key, early_muxer=None)
    return stream, NoiseTransport(CipherState(k2), CipherState(k1))


def test_sealed_writes_reuse_one_buffer_while_the_kernel_takes_them_whole() -> None:
    raw = _KernelStandIn()
    stream, peer = _stream_over(raw)
    writes = [[b"h" * 12, memoryview(bytes([i]) * 200_000)] for i in range(3)]
    for pieces in writes:
        assert stream.try_send_pieces(pieces, 200_012)
    assert raw.writes[0].obj is raw.writes[1].obj is raw.writes[2].obj  # no buffer per write
    assert peer.decrypt(b"".join(raw.copies)) == b"".join(b"".join(p) for p in writes)


def test_a_write_the_transport_may_still_hold_is_never_overwritten() -> None:
    raw, other = _KernelStandIn(), _KernelStandIn()
    stream, peer = _stream_over(raw)
    stream2, peer2 = _stream_over(other)
    raw.full_after_next = True  # the kernel takes part: the transport keeps the rest
    assert stream.try_send_pieces([b"first" * 1000], 5000)
    assert not stream.try_send_pieces([b"x"], 1)  # not ready: nothing taken
    # Another connection writes while the first still holds its rest: a buffer of its own.
    assert stream2.try_send_pieces([b"second" * 500], 3000)  # would fit the first's buffer
    assert bytes(raw.writes[0]) == raw.copies[0]  # the held write is intact
    assert other.writes[0].obj is not raw.writes[0].obj
    assert peer.decrypt(b"".join(raw.copies)) == b"first" * 1000
    assert peer2.decrypt(b"".join(other.copies)) == b"second" * 500


def test_a_buffer_lent_to_a_connection_is_reused_once_that_connection_drained() -> None:
    """A write the kernel did not take whole lends the sealing buffer to its connection; once
    that connection has sent everything (its transport holds nothing), the next write reuses it
    instead of making a new one (a new buffer per such write was zeroed and page-faulted in)."""
    raw = _KernelStandIn()
    stream, peer = _stream_over(raw)
    raw.full_after_next = True
    assert stream.try_send_pieces([b"first" * 1000], 5000)
    raw.full = raw.full_after_next = False  # drained
    assert stream.try_send_pieces([b"second" * 500], 3000)
    assert raw.writes[1].obj is raw.writes[0].obj
    assert peer.decrypt(b"".join(raw.copies)) == b"first" * 1000 + b"second" * 500


def test_a_write_asks_its_connection_once_before_and_once_after() -> None:
    """A sealed write asks the connection below `send_ready()` once before sealing (the nonce
    is spent only on a write that goes out) and once after (whether the kernel left part of it
    there: the buffer is then lent); before, twice before and once after, and the session asked
    once more itself."""
    raw = _KernelStandIn()
    stream, peer = _stream_over(raw)
    for i in range(3):
        assert stream.try_send_pieces([b"h" * 12, bytes([i]) * 70_000], 70_012)
    assert raw.asked == 6
    assert raw.writes[0].obj is raw.writes[1].obj is raw.writes[2].obj
    raw.full = True
    assert not stream.try_send_pieces([b"x"], 1)  # refused: asked, nothing sealed
    assert raw.asked == 7 and len(raw.writes) == 3
    raw.full = False
    assert stream.try_send_pieces([b"y"], 1)
    expected = b"".join(b"h" * 12 + bytes([i]) * 70_000 for i in range(3)) + b"y"
    assert peer.decrypt(b"".join(raw.copies)) == expected


class _PushStandIn(_KernelStandIn):
    """A raw stream that pushes its reads (`p2p.streams.PushReads`): the test hands over each
    "read" with `read(chunk)`; writes are kept as `_KernelStandIn` keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.on_data: Callable[[bytes], None] | None = None
        self.on_end: Callable[[BaseException | None], None] | None = None

    def set_receiver(self, on_data: Callable[[bytes], None] | None,
                     on_end: Callable[[BaseException | None], None] | None = None) -> bool:
        self.on_data, self.on_end = on_data, on_end
        return True

    def pause_receiving(self) -> None:
        pass

    def resume_receiving(self) -> None:
        pass

    def read(self, chunk: bytes) -> None:
        assert self.on_data is not None
        self.on_data(chunk)

    async def send(self, item: bytes) -> None:
        self.try_send(memoryview(bytes(item)))

    async def aclose(self) -> None:
        self.full = True


def test_pieces_receiver_gets_the_frames_of_each_read_together() -> None:
    """`set_pieces_receiver`: one call per read with every frame it completed, in order (the
    yamux session then parses and wakes once per read); a read that completes none calls
    nothing; the end inside a frame is still an error."""
    raw = _PushStandIn()
    stream, peer = _stream_over(raw)
    calls: list[list[bytes]] = []
    ends: list[BaseException | None] = []
    assert stream.set_pieces_receiver(calls.append, ends.append)
    wire = b"".join(bytes(peer.encrypt(p)) for p in (b"one", b"two", b"three"))
    tail = bytes(peer.encrypt(b"four"))
    raw.read(wire + tail[:5])
    raw.read(tail[5:9])
    raw.read(tail[9:])
    assert calls == [[b"one", b"two", b"three"], [b"four"]]
    raw.read(bytes(peer.encrypt(b"five"))[:7])
    assert raw.on_end is not None
    raw.on_end(None)  # EOF with 7 bytes of a frame
    assert len(calls) == 2 and isinstance(ends[0], NoiseDecryptError)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_session_parses_the_frames_of_one_read_in_one_feed(anyio_backend, monkeypatch) -> None:
    """A yamux session over Noise in push mode takes the frames one read brought in one `_feed`
    (one clock read, one dispatch, one kick) instead of one each."""
    feeds: list[int] = []
    original = YamuxSession._feed

    def counting(self: YamuxSession, pieces: Sequence[bytes]) -> bool:
        feeds.append(len(pieces))
        return original(self, pieces)

    monkeypatch.setattr(YamuxSession, "_feed", counting)
    raw = _PushStandIn()
    stream, peer = _stream_over(raw)
    opened: list[YamuxStream] = []
    with anyio.fail_after(10):
        async with YamuxSession(stream, is_client=False) as session:
            assert session._push
            session.set_stream_handler(opened.append)
            syns = [struct.pack(">BBHII", 0, 0, 1, sid, 5) + b"hello" for sid in (1, 3, 5)]
            raw.read(b"".join(bytes(peer.encrypt(f)) for f in syns))  # three Noise frames
            assert feeds == [3]
            assert [st.stream_id for st in opened] == [1, 3, 5]
            assert [st.receive_nowait(10) for st in opened] == [b"hello"] * 3
