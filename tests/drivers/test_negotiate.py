"""anyio multistream driver over in-memory stream pairs, on asyncio and trio.

The "go" peers here are scripted byte exchanges as go-multistream writes them (listener, dialer,
simultaneous open, lazy client).
"""

from __future__ import annotations

import anyio
import pytest
from memstream import MemoryByteStream, memory_stream_pair

from p2p.errors import NegotiationFailed, RemoteProtocolError, StreamReset
from p2p.multistream import MalformedMessage, TooManyRounds, UnexpectedEOF
from p2p.negotiate import (
    LazyStream,
    NegotiationTimeout,
    handle_protocol,
    list_protocols,
    select_protocol,
)
from p2p.streams import BufferedStream
from multistream_vectors import HEADER, LS, MASA_KAD, NA, NOISE, PING, SIMOPEN, TLS, YAMUX

pytestmark = pytest.mark.anyio

SHORT = 0.3  # a silent peer must make negotiation fail this fast


def pair() -> tuple[MemoryByteStream, MemoryByteStream, BufferedStream, BufferedStream]:
    a, b = memory_stream_pair()
    return a, b, BufferedStream(a), BufferedStream(b)


async def test_select_and_handle_agree() -> None:
    a, b, client, server = pair()
    results: dict[str, str] = {}

    async def serve() -> None:
        results["server"] = await handle_protocol(server, {"/yamux/1.0.0", "/noise"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        results["client"] = await select_protocol(client, ["/tls/1.0.0", "/noise"])
    assert results == {"client": "/noise", "server": "/noise"}
    assert a.writes == [HEADER + TLS, NOISE]  # header + first proposal pipelined, then one more
    assert b.sent == HEADER + NA + NOISE


async def test_select_against_scripted_go_listener_keeps_leftover() -> None:
    _, _, client, peer = pair()

    async def go_listener() -> None:
        await peer.send(HEADER)  # go writes its header before reading
        assert await peer.receive_exactly(len(HEADER + NOISE)) == HEADER + NOISE
        await peer.send(NOISE + b"\x00\x20" + b"e" * 32)  # echo, then Noise msg bytes

    async with anyio.create_task_group() as tg:
        tg.start_soon(go_listener)
        assert await select_protocol(client, ["/noise"]) == "/noise"
    assert await client.receive_exactly(34) == b"\x00\x20" + b"e" * 32


async def test_handle_go_v0242_simopen_exchange() -> None:
    a, b, server, peer = pair()

    async def go_dialer() -> None:
        await peer.send(HEADER + SIMOPEN + NOISE)  # one write, as go v0.24's simultaneous-open dialer

    async with anyio.create_task_group() as tg:
        tg.start_soon(go_dialer)
        assert await handle_protocol(server, ["/noise", "/tls/1.0.0"]) == "/noise"
    assert await peer.receive_exactly(len(HEADER + NA + NOISE)) == HEADER + NA + NOISE
    assert a.sent == HEADER + NA + NOISE  # exactly our answer to go's simultaneous open, nothing more
    assert b.writes == [HEADER + SIMOPEN + NOISE]


async def test_handle_pipelined_proposal_app_data_and_fin() -> None:
    a, _, peer, server = pair()
    app = b"\x05hello" + HEADER  # application bytes that happen to look like multistream
    await peer.send(HEADER + MASA_KAD + app)
    await peer.send_eof()
    assert await handle_protocol(server, ["/masa/kad/1.0.0"]) == "/masa/kad/1.0.0"
    assert await server.receive_until_eof(1024) == app
    assert a.writes == [HEADER + MASA_KAD + app]


async def test_handle_fin_right_after_proposal() -> None:
    _, _, peer, server = pair()
    await peer.send(HEADER + PING)
    await peer.send_eof()
    assert await handle_protocol(server, ["/ipfs/ping/1.0.0"]) == "/ipfs/ping/1.0.0"
    with pytest.raises(anyio.EndOfStream):
        await server.receive()
    assert await peer.receive_exactly(len(HEADER + PING)) == HEADER + PING


async def test_handle_eof_mid_negotiation_is_remote_error() -> None:
    _, _, peer, server = pair()
    await peer.send(HEADER + TLS)
    await peer.send_eof()
    with pytest.raises(UnexpectedEOF) as info:
        await handle_protocol(server, ["/noise"])
    assert isinstance(info.value, RemoteProtocolError)


async def test_handle_answers_na_before_failing_on_a_bad_message() -> None:
    # go writes `na` before it reads the next (bad) message; the dialer then sees the `na`.
    _, _, peer, server = pair()
    await peer.send(HEADER + TLS + b"\x00garbage")
    with pytest.raises(MalformedMessage):
        await handle_protocol(server, ["/noise"])
    assert await peer.receive_exactly(len(HEADER + NA)) == HEADER + NA


async def test_handle_na_round_cap() -> None:
    _, _, peer, server = pair()
    await peer.send(HEADER + TLS * 4)
    with pytest.raises(TooManyRounds):
        await handle_protocol(server, ["/noise"], max_na_rounds=3)


async def test_select_na_on_all() -> None:
    _, _, client, server = pair()

    async def serve() -> None:
        with pytest.raises(UnexpectedEOF):
            await handle_protocol(server, ["/yamux/1.0.0"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with pytest.raises(NegotiationFailed) as info:
            await select_protocol(client, ["/tls/1.0.0", "/noise"])
        assert info.value.tried == ["/tls/1.0.0", "/noise"]
        await client.aclose()


@pytest.mark.parametrize("call", ["select", "handle", "ls"])
async def test_silent_peer_times_out(call: str) -> None:
    _, _, stream, _peer = pair()
    with pytest.raises(NegotiationTimeout) as info:
        if call == "select":
            await select_protocol(stream, ["/noise"], timeout=SHORT)
        elif call == "handle":
            await handle_protocol(stream, ["/noise"], timeout=SHORT)
        else:
            await list_protocols(stream, timeout=SHORT)
    assert info.value.timeout == SHORT


async def test_peer_that_stalls_after_header_times_out() -> None:
    _, _, stream, peer = pair()
    await peer.send(HEADER + TLS)  # then never another proposal
    with pytest.raises(NegotiationTimeout):
        await handle_protocol(stream, ["/noise"], timeout=SHORT)
    assert await peer.receive_exactly(len(HEADER + NA)) == HEADER + NA


async def test_list_protocols() -> None:
    _, _, client, server = pair()

    async def serve() -> None:
        with pytest.raises(UnexpectedEOF):
            await handle_protocol(server, ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        assert await list_protocols(client) == ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"]
        await client.send_eof()


async def test_list_protocols_against_go_style_na() -> None:
    _, _, client, server = pair()

    async def serve() -> None:
        with pytest.raises(UnexpectedEOF):
            await handle_protocol(server, lambda p: p == "/noise")

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with pytest.raises(NegotiationFailed) as info:
            await list_protocols(client)
        assert info.value.tried == ["ls"]
        await client.send_eof()


# -------------------------------------------------------------------------------- lazy stream


async def test_lazy_round_trip_one_write() -> None:
    a, b, client, server = pair()
    lazy = LazyStream(client, "/ipfs/ping/1.0.0")
    assert lazy.protocol == "/ipfs/ping/1.0.0"
    assert a.writes == []  # nothing before the first write
    await lazy.send(b"ping" * 8)
    assert a.writes == [HEADER + PING + b"ping" * 8]

    assert await handle_protocol(server, ["/ipfs/ping/1.0.0"]) == "/ipfs/ping/1.0.0"
    assert await server.receive_exactly(32) == b"ping" * 8
    await server.send(b"pong" * 8)
    assert await lazy.receive(1000) == b"pong" * 8
    assert b.sent == HEADER + PING + b"pong" * 8
    await lazy.send(b"again")
    assert a.writes[-1] == b"again"
    assert await server.receive_exactly(5) == b"again"


async def test_lazy_replies_coalesced_with_data() -> None:
    _, _, client, peer = pair()
    lazy = LazyStream(client, "/masa/kad/1.0.0")
    await lazy.send(b"req")
    await peer.send(HEADER + MASA_KAD + b"resp")
    await peer.send_eof()
    got = b""
    with pytest.raises(anyio.EndOfStream):
        while True:
            got += await lazy.receive(2)
    assert got == b"resp"


async def test_lazy_receive_first_flushes_proposal() -> None:
    a, _, client, server = pair()
    lazy = LazyStream(client, "/noise")

    async def serve() -> None:
        assert await handle_protocol(server, ["/noise"]) == "/noise"
        await server.send(b"hello")

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        assert await lazy.receive() == b"hello"
    assert a.writes == [HEADER + NOISE]


async def test_lazy_send_eof_without_write_still_proposes() -> None:
    a, _, client, server = pair()
    lazy = LazyStream(client, "/ipfs/ping/1.0.0")
    await lazy.send_eof()
    assert a.writes == [HEADER + PING] and a.eof_sent
    assert await handle_protocol(server, ["/ipfs/ping/1.0.0"]) == "/ipfs/ping/1.0.0"
    with pytest.raises(anyio.EndOfStream):
        await server.receive()
    await server.send(b"reply")
    assert await lazy.receive() == b"reply"  # replies checked, then the data


async def test_lazy_aclose_without_write_flushes_proposal_before_fin() -> None:
    a, _, client, peer = pair()
    lazy = LazyStream(client, "/ipfs/ping/1.0.0")
    await lazy.aclose()
    assert a.writes == [HEADER + PING] and a.closed
    assert await peer.receive_until_eof(100) == HEADER + PING


async def test_lazy_na_fails_on_first_read_and_stays_failed() -> None:
    _, _, client, server = pair()
    lazy = LazyStream(client, "/unknown/1.0.0")
    await lazy.send(b"\x00data")

    async def serve() -> None:
        # The pipelined data now looks like a malformed proposal (go's lazy client).
        with pytest.raises(RemoteProtocolError):
            await handle_protocol(server, ["/noise"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        for _ in range(2):
            with pytest.raises(NegotiationFailed) as info:
                await lazy.receive()
            assert info.value.tried == ["/unknown/1.0.0"]
    await lazy.reset()


async def test_lazy_concurrent_first_reads_check_the_replies_once() -> None:
    """Two tasks reading a lazy stream at once: one checks the listener's replies, the other
    waits for it, then both read the data that follows (none of it taken as a reply)."""
    _, _, client, peer = pair()
    lazy = LazyStream(client, "/masa/kad/1.0.0")
    assert lazy.negotiating
    got: list[bytes] = []

    async def read() -> None:
        got.append(await lazy.receive(3))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        await peer.send(HEADER + MASA_KAD + b"abcdef")
    assert sorted(got) == [b"abc", b"def"]
    assert not lazy.negotiating


async def test_lazy_silent_peer_times_out() -> None:
    _, _, client, _peer = pair()
    lazy = LazyStream(client, "/noise", timeout=SHORT)
    await lazy.send(b"x")
    with pytest.raises(NegotiationTimeout):
        await lazy.receive()


async def test_lazy_reset_passes_through_without_proposal() -> None:
    a, _, client, _ = pair()
    lazy = LazyStream(client, "/noise")
    await lazy.reset()
    assert a.was_reset and a.writes == []


class StoppedByPeer(MemoryByteStream):
    """A stream whose peer stopped reading (QUIC STOP_SENDING: go's Close): writes fail, reads go on."""

    async def send(self, item: bytes) -> None:
        raise StreamReset(remote=True, message="stream reset by remote (STOP_SENDING)")


def stopped_pair() -> tuple[BufferedStream, BufferedStream]:
    a, b = memory_stream_pair()
    stopped = StoppedByPeer(b._send, b._receive)
    return BufferedStream(a), BufferedStream(stopped)


async def test_handle_reads_a_request_whose_dialer_closed_at_once() -> None:
    # masa's nodeDataSync push over QUIC: header + proposal + data, then Close (FIN and
    # STOP_SENDING). go's listener ignores the failed header/echo write and reads on; so do we.
    peer, server = stopped_pair()
    await peer.send(HEADER + MASA_KAD + b"request")
    await peer.send_eof()
    assert await handle_protocol(server, ["/masa/kad/1.0.0"]) == "/masa/kad/1.0.0"
    assert await server.receive_until_eof(1024) == b"request"


async def test_handle_header_refused_then_proposal_arrives_later() -> None:
    peer, server = stopped_pair()
    await peer.send(HEADER)
    async with anyio.create_task_group() as tg:
        tg.start_soon(peer.send, MASA_KAD + b"late")
        assert await handle_protocol(server, ["/masa/kad/1.0.0"]) == "/masa/kad/1.0.0"
    await peer.send_eof()
    assert await server.receive_until_eof(1024) == b"late"


async def test_handle_na_the_dialer_cannot_read_still_fails() -> None:
    # go returns the error of an `na` write: the dialer would wait for it forever.
    peer, server = stopped_pair()
    await peer.send(HEADER + TLS)
    with pytest.raises(StreamReset):
        await handle_protocol(server, ["/noise"])


async def test_handle_own_reset_is_not_ignored() -> None:
    a, b = memory_stream_pair()

    class ResetHere(MemoryByteStream):
        async def send(self, item: bytes) -> None:
            raise StreamReset(remote=False)

    server = BufferedStream(ResetHere(b._send, b._receive))
    await BufferedStream(a).send(HEADER + PING)
    with pytest.raises(StreamReset):
        await handle_protocol(server, ["/ipfs/ping/1.0.0"])
