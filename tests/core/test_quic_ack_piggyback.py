"""ACKs ride on data (Libp2pQuicConnection.send_stream_data), as quic-go sends them.

aioquic alone writes an ACK only once its 1 ms ack delay has passed: an answer sent at once leaves
without it, and unless other data happens to leave after the delay an ACK-only datagram follows
from the timer. Sans-IO, two connections in memory, with an ideal event loop (each timer handled
at its deadline).
"""

from __future__ import annotations

from aioquic.quic import events as qe
from aioquic.quic.connection import QuicConnection

from quic_memory import pair

from p2p.transport.quic_core import Libp2pQuicConnection

STEP = 0.0004  # each side's turn: request -> answer -> next request, 0.4 ms apart


def _requests(client: Libp2pQuicConnection, server: Libp2pQuicConnection,
              rounds: int) -> tuple[int, int]:
    """`rounds` sequential request/answer exchanges on new streams, each side acting `STEP`
    after the other; timers run at their deadlines in between. Datagrams sent by each side
    during them (after one exchange that flushes what the handshake left to acknowledge)."""
    now = 10.0
    sent = {id(client): 0, id(server): 0}

    def flush(src: Libp2pQuicConnection, dst: Libp2pQuicConnection) -> None:
        for data, _ in src.datagrams_to_send(now):
            sent[id(src)] += 1
            dst.receive_datagram(data, ("127.0.0.1", 1), now)

    def advance(to: float) -> None:
        nonlocal now
        while True:
            due = [(t, c) for c in (client, server) if (t := c.get_timer()) is not None and t <= to]
            if not due:
                break
            t, conn = min(due, key=lambda x: x[0])
            now = max(now, t)
            conn.handle_timer(now)
            flush(conn, server if conn is client else client)
        now = to

    for i in range(rounds + 1):
        if i == 1:
            sent = {id(client): 0, id(server): 0}
        sid = client.get_next_available_stream_id()
        client.send_stream_data(sid, b"q" * 100, end_stream=True)
        flush(client, server)
        advance(now + STEP)
        while (ev := server.next_event()) is not None:
            if isinstance(ev, qe.StreamDataReceived) and ev.end_stream:
                server.send_stream_data(ev.stream_id, b"a" * 100, end_stream=True)
        flush(server, client)
        advance(now + STEP)
        while client.next_event() is not None:
            pass
    return sent[id(client)], sent[id(server)]


def test_one_datagram_per_request_and_per_answer() -> None:
    client, server = pair()
    c, s = _requests(client, server, 50)
    assert (c, s) == (50, 50)


def test_aioquic_alone_sends_ack_only_datagrams() -> None:
    """What the hook removes (so the check above cannot pass by accident)."""
    client, server = pair()
    for conn in (client, server):  # aioquic's own method: no ACK brought forward with data
        conn.datagrams_to_send = QuicConnection.datagrams_to_send.__get__(conn)  # type: ignore[method-assign]
    c, s = _requests(client, server, 50)
    assert c + s >= 2 * 50 + 20, (c, s)  # (50, 75) at 0.4 ms steps: an ACK-only every 2nd answer
