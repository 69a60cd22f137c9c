"""PieceSender (p2p/transport/quic_send.py): aioquic's stream sender, the written pieces kept.

It must send exactly what aioquic's `QuicStreamSender` sends (frames, offsets, FIN, loss and
retransmission, reset), keep a `bytes` write as the object itself, let go of what was
acknowledged, and be the sender of every bidirectional stream of our connections.
"""

from __future__ import annotations

import random

from aioquic.quic.packet_builder import QuicDeliveryState
from aioquic.quic.stream import QuicStreamSender
from quic_memory import pair, transfer

from p2p.transport.quic_send import JOIN_LIMIT, PieceSender, adopt

ACKED, LOST = QuicDeliveryState.ACKED, QuicDeliveryState.LOST


def _state(s: QuicStreamSender) -> tuple[object, ...]:
    return (s.buffer_is_empty, s.highest_offset, s.is_finished, s.reset_pending, s.next_offset,
            s._buffer_start, s._buffer_stop, s._buffer_fin)


def _frame(f: object) -> tuple[bytes, int, bool] | None:
    return None if f is None else (bytes(f.data), f.offset, f.fin)  # type: ignore[attr-defined]


def test_same_frames_and_state_as_aioquics_sender_through_writes_losses_and_acks() -> None:
    """Random writes (bytes, bytearray, memoryview; empty, tiny, joined, frame-sized, larger),
    frames of random room and flow-control limits, acknowledgements and losses in any order,
    FIN and reset: both senders give the same frames and end in the same state. Every other
    sequence starts with aioquic's sender and adopts it part way (data held, some in flight)."""
    sizes = (0, 1, 7, 300, 3000, JOIN_LIMIT - 1, JOIN_LIMIT, 20000, 70000, 256 * 1024)
    rooms = (-1, 0, 5, 1000, 16000, 65000, 200000)
    for seed in range(150):
        rng = random.Random(seed)
        ours: QuicStreamSender = PieceSender(0, True) if seed % 2 else QuicStreamSender(0, True)
        theirs = QuicStreamSender(0, True)
        stream = bytearray()
        flight: list[tuple[int, int, bool]] = []
        fin = False
        steps = rng.randrange(20, 120)
        for step in range(steps):
            if step == steps // 3 and type(ours) is QuicStreamSender:
                adopt(ours)
                assert type(ours) is PieceSender
            op = rng.random()
            if op < 0.3 and not fin:
                data = rng.randbytes(rng.choice(sizes))
                stream += data
                kind = rng.choice((bytes, bytearray, memoryview))
                end = rng.random() < 0.05
                fin = fin or end
                for s in (ours, theirs):
                    s.write(kind(data), end_stream=end)  # type: ignore[arg-type]
            elif op < 0.7:
                room = rng.choice(rooms)
                limit = (None if rng.random() < 0.7
                         else ours.highest_offset + rng.randrange(0, 90000))
                got = _frame(ours.get_frame(room, limit))
                assert got == _frame(theirs.get_frame(room, limit)), seed
                if got is not None:
                    data, offset, end = got
                    assert data == stream[offset:offset + len(data)]
                    flight.append((offset, offset + len(data), end))
            elif flight:
                start, stop, end = flight.pop(rng.randrange(len(flight)))
                state = ACKED if rng.random() < 0.8 else LOST
                for s in (ours, theirs):
                    s.on_data_delivery(state, start, stop, end)
            if rng.random() < 0.01:
                for s in (ours, theirs):
                    s.reset(0)
                assert _state(ours) == _state(theirs)
                assert not any(getattr(ours, "_pieces", ()))  # nothing is held after a reset
                break
            assert _state(ours) == _state(theirs), seed


def test_a_bytes_write_is_kept_as_it_is_and_let_go_once_acknowledged() -> None:
    block = bytes(range(256)) * 1024  # 256 KiB, as the bench writes it again and again
    s = PieceSender(0, True)
    s.write(block)
    s.write(block)
    assert s._pieces[0] is block and s._pieces[1] is block  # no copy on write
    whole = s.get_frame(len(block))
    assert whole is not None and whole.data is block  # a frame that is a whole piece: no copy
    part = s.get_frame(65000)
    assert part is not None and part.data == block[:65000] and part.offset == len(block)
    s.on_data_delivery(ACKED, 0, len(block), False)
    assert s._pieces[0] == b"" and s._pieces[1] is block  # the first is let go
    rest = s.get_frame(len(block))
    assert rest is not None and rest.data == block[65000:]
    s.on_data_delivery(ACKED, len(block), len(block) + 65000, False)
    s.on_data_delivery(ACKED, len(block) + 65000, 2 * len(block), False)
    assert all(p == b"" for p in s._pieces) and s.get_frame(1000) is None


def test_a_changed_buffer_after_its_write_does_not_change_what_is_sent() -> None:
    s = PieceSender(0, True)
    buf = bytearray(b"a" * 40000)
    s.write(buf)
    buf[:] = b"b" * 40000
    frame = s.get_frame(100000)
    assert frame is not None and frame.data == b"a" * 40000


def test_small_writes_are_joined_and_dropped_pieces_do_not_pile_up() -> None:
    s = PieceSender(0, True)
    for _ in range(5000):
        s.write(b"0123456789")
    assert len(s._pieces) == -(-50000 // (JOIN_LIMIT - JOIN_LIMIT % 10))  # full joined pieces
    sent = 0
    for _ in range(300):  # 300 frames, each acknowledged: the lists are cut in batches
        s.write(b"x" * 20000)
        while (frame := s.get_frame(65000)) is not None:
            s.on_data_delivery(ACKED, frame.offset, frame.offset + len(frame.data), False)
            sent += len(frame.data)
    assert sent == 50000 + 300 * 20000
    assert len(s._pieces) - s._head == 0 and len(s._pieces) < 64


def _senders(conn: object) -> set[type]:
    return {type(st.sender) for st in conn._streams.values()}  # type: ignore[attr-defined]


def test_every_bidirectional_stream_of_a_connection_sends_with_it() -> None:
    """A stream we open and a stream the peer opened (with the lower ones it opened with it)
    send through PieceSender (a unidirectional one keeps aioquic's); a bulk transfer arrives
    whole."""
    client, server = pair()
    payload = random.Random(1).randbytes(3 << 20)
    out = transfer(client, server, payload)
    assert bytes(out.received) == payload
    assert _senders(client) == _senders(server) == {PieceSender}
    # the peer opens stream 8 first: 4 is opened with it; both answer through PieceSender
    client.send_stream_data(8, b"late", end_stream=False)
    for data, _ in client.datagrams_to_send(2.0):
        server.receive_datagram(data, ("127.0.0.1", 1), 2.0)
    assert {4, 8} <= set(server._streams)
    assert {type(server._streams[sid].sender) for sid in (4, 8)} == {PieceSender}
    uni = client.get_next_available_stream_id(is_unidirectional=True)
    client.send_stream_data(uni, b"u")
    assert type(client._streams[uni].sender) is QuicStreamSender


def test_lost_datagrams_are_resent_from_the_pieces() -> None:
    """One datagram in five dropped on the way: what arrives is still the stream, in order."""
    client, server = pair()
    client.set_datagram_size(65000)
    payload = random.Random(2).randbytes(2 << 20)
    out = transfer(client, server, payload, drop=lambda n: n % 5 == 0)
    assert out.ended and bytes(out.received) == payload
    # full datagrams of stream data were lost, and resent from the pieces
    assert sum(size > 60000 for size in out.dropped) >= 3
