"""Two `Libp2pQuicConnection`s talking in memory on a simulated clock (no sockets, no loop)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic import events as qe
from aioquic.quic.packet import pull_quic_header

from p2p.identity import PrivateKey
from p2p.security.tls_cert import make_certificate
from p2p.transport.quic_core import Libp2pQuicConnection, make_configuration

MSS = 1200  # aioquic's datagram size


def pair(server_class: type[Libp2pQuicConnection] = Libp2pQuicConnection,
         client_class: type[Libp2pQuicConnection] = Libp2pQuicConnection,
         ) -> tuple[Libp2pQuicConnection, Libp2pQuicConnection]:
    """A client and a server connection with the handshake done (1 ms per round trip)."""
    client = client_class(configuration=make_configuration(
        make_certificate(PrivateKey.generate()), is_client=True))
    server_conf = make_configuration(make_certificate(PrivateKey.generate()), is_client=False)
    now = 0.0
    client.connect(("127.0.0.1", 2), now)
    server: Libp2pQuicConnection | None = None
    for _ in range(20):
        now += 0.001
        for data, _ in client.datagrams_to_send(now):
            if server is None:
                header = pull_quic_header(Buffer(data=data), host_cid_length=8)
                server = server_class(
                    configuration=server_conf,
                    original_destination_connection_id=header.destination_cid)
            server.receive_datagram(data, ("127.0.0.1", 1), now)
        assert server is not None
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, ("127.0.0.1", 2), now)
        if client.handshake_complete and server.handshake_complete:
            return client, server
    raise AssertionError("no handshake")


@dataclass
class Transfer:
    ms: int  # simulated milliseconds it took
    datagrams: int  # sent by the client
    received: bytearray  # what the server's stream delivered
    ended: bool = False  # the server's stream saw the FIN
    dropped: list[int] = field(default_factory=list)  # sizes of the client datagrams `drop` lost


def transfer(client: Libp2pQuicConnection, server: Libp2pQuicConnection, payload: bytes,
             drop: Callable[[int], bool] | None = None) -> Transfer:
    """Move `payload` on a new stream, client to server, when every side wakes once per
    simulated millisecond (timers and datagrams alike), the reader consuming what arrived;
    `drop(n)` says whether the client's n-th datagram (from 1) is lost on the way."""
    size = len(payload)
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, payload, end_stream=True)
    server.window_for(sid)
    out = Transfer(0, 0, bytearray())
    got, now, ms = 0, 1.0, 0
    while got < size:
        assert ms < 100_000
        ms += 1
        now += 0.001
        client.clock_now = server.clock_now = now
        for conn in (client, server):
            timer = conn.get_timer()
            if timer is not None and timer <= now:
                conn.handle_timer(now)
        for data, _ in client.datagrams_to_send(now):
            out.datagrams += 1
            if drop is not None and drop(out.datagrams):
                out.dropped.append(len(data))
            else:
                server.receive_datagram(data, ("127.0.0.1", 1), now)
        while (ev := server.next_event()) is not None:
            if isinstance(ev, qe.StreamDataReceived):
                got += len(ev.data)
                out.received += ev.data
                out.ended = out.ended or ev.end_stream
                server.consumed(sid, len(ev.data), now)
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, ("127.0.0.1", 2), now)
        while client.next_event() is not None:
            pass
    out.ms = ms
    return out
