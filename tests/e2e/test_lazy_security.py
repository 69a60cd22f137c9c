"""The `/noise` proposal travels with Noise's first message (go-multistream's lazy client), and a
listener that got both answers with its reply and Noise's second message in one write; a dialer
that waits for the reply (go's) and one that is refused still get what they did before. Raw
sockets on one side, a Host on the other; both anyio backends."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from p2p.errors import DialError
from p2p.host import Host
from p2p.identity import KeyType, PrivateKey
from p2p.multistream import encode_message
from p2p.protocols.echo import echo_handler, echo_roundtrip
from p2p.security.noise import NoiseHandshake
from p2p.trace import Tracer

pytestmark = pytest.mark.anyio

HELLO = encode_message("/multistream/1.0.0") + encode_message("/noise")
NA = encode_message("/multistream/1.0.0") + encode_message("na")


async def read_at_least(stream: anyio.abc.ByteStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        data += await stream.receive()
    return data


async def test_dialer_sends_proposal_and_first_noise_message_in_one_write() -> None:
    """What reaches a listener first is header + /noise + msg1 (2-byte length 32 + e); a listener
    that refuses /noise ends the dial at the security negotiation."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    got: list[bytes] = []

    async def refuse(stream: anyio.abc.SocketStream) -> None:
        got.append(await read_at_least(stream, len(HELLO) + 34))
        await stream.send(NA)
        with anyio.move_on_after(5):
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass  # the dialer gave up and closed: what we wait for

    with anyio.fail_after(20):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, refuse)
            async with Host() as client:
                with pytest.raises(DialError, match="security negotiation"):
                    await client.connect(f"/ip4/127.0.0.1/tcp/{port}")
            tg.cancel_scope.cancel()
    assert got[0][:len(HELLO)] == HELLO
    assert got[0][len(HELLO):len(HELLO) + 2] == (32).to_bytes(2, "big")
    assert len(got[0]) == len(HELLO) + 34  # nothing more before the listener's reply


async def test_listener_answers_proposal_and_first_message_in_one_write() -> None:
    """A raw lazy dialer: one write of header + /noise + msg1 is answered by one write of the reply
    and msg2 (the listener's trace shows it), and the handshake completes."""
    tracer = Tracer()
    key = PrivateKey.generate(KeyType.Ed25519)
    async with Host(trace=tracer) as server:
        await server.listen("/ip4/127.0.0.1/tcp/0")
        port = int(str(server.listen_addrs()[0]).split("/")[4])
        with anyio.fail_after(20):
            raw = await anyio.connect_tcp("127.0.0.1", port)
            async with raw:
                hs = NoiseHandshake(key, initiator=True, expected_peer=server.peer_id)
                await raw.send(HELLO + hs.data_to_send())
                data = await read_at_least(raw, len(HELLO) + 2)
                assert data.startswith(HELLO)
                size = int.from_bytes(data[len(HELLO):len(HELLO) + 2], "big")
                data += await read_at_least(raw, len(HELLO) + 2 + size - len(data))
                hs.receive_data(data[len(HELLO):])
                await raw.send(hs.data_to_send())
                assert hs.complete and hs.remote_peer == server.peer_id
    sent = [r["length"] for r in tracer.records
            if r["layer"] == "tcp" and r["event"] == "data" and r["dir"] == "out"]
    assert sent[0] == len(HELLO) + 2 + size


async def test_a_dialer_that_waits_for_the_reply_still_connects() -> None:
    """go's dialer: header + /noise, then msg1 only after the listener's reply."""
    key = PrivateKey.generate(KeyType.Ed25519)
    async with Host() as server:
        await server.listen("/ip4/127.0.0.1/tcp/0")
        port = int(str(server.listen_addrs()[0]).split("/")[4])
        with anyio.fail_after(20):
            raw = await anyio.connect_tcp("127.0.0.1", port)
            async with raw:
                await raw.send(HELLO)
                assert await read_at_least(raw, len(HELLO)) == HELLO  # nothing before msg1
                hs = NoiseHandshake(key, initiator=True, expected_peer=server.peer_id)
                await raw.send(hs.data_to_send())
                data = await read_at_least(raw, 2)
                data += await read_at_least(raw, 2 + int.from_bytes(data[:2], "big") - len(data))
                hs.receive_data(data)
                assert hs.complete and hs.remote_peer == server.peer_id


async def test_hosts_connect_and_echo_one_after_another() -> None:
    """Our lazy dialer against our listener, several connections in a row."""
    async with Host() as server:
        server.set_stream_handler("/echo/1.0.0", echo_handler)
        await server.listen("/ip4/127.0.0.1/tcp/0")
        with anyio.fail_after(20):
            for i in range(3):
                async with Host() as client:
                    peer = await client.connect(server.p2p_addrs()[0])
                    assert peer == server.peer_id
                    assert await echo_roundtrip(client, peer, b"x%d" % i) == b"x%d" % i
