"""Sans-IO yamux core: go's wire behaviour (go-yamux v4), flow control, and hostile frames."""

import ast
import pathlib
import random
import struct

import pytest

from p2p.errors import LocalProtocolError, RemoteProtocolError
from p2p.mux import yamux as ymod
from p2p.mux.yamux import (
    DataReceived,
    GoAwayReceived,
    PongReceived,
    SessionGoingAway,
    StreamAcked,
    StreamEnded,
    StreamLimitReached,
    StreamOpened,
    StreamReset,
    WindowUpdated,
    YamuxConfig,
    YamuxConnection,
    YamuxProtocolError,
)

KIB = 1024
WINDOW = 262144  # 256 KiB, the spec's initial window (spec.md, "Flow Control")
GOAWAY_PROTO = bytes.fromhex("000300000000000000000001")
GOAWAY_NORMAL = bytes.fromhex("000300000000000000000000")


def frame(ftype: int, flags: int, sid: int, length: int, payload: bytes = b"") -> bytes:
    """Built here with struct, independently of the module under test."""
    return struct.pack(">BBHII", 0, ftype, flags, sid, length) + payload


def data(sid: int, payload: bytes, flags: int = 0) -> bytes:
    return frame(0, flags, sid, len(payload), payload)


def split_frames(wire: bytes) -> list[tuple[int, int, int, int, bytes]]:
    out, pos = [], 0
    while pos < len(wire):
        v, t, f, s, n = struct.unpack_from(">BBHII", wire, pos)
        assert v == 0
        pos += 12
        payload = b""
        if t == 0:
            payload = wire[pos:pos + n]
            pos += n
        out.append((t, f, s, n, payload))
    return out


def pair(**cfg):
    config = YamuxConfig(**cfg)
    return YamuxConnection(True, config), YamuxConnection(False, config)


def pump(a: YamuxConnection, b: YamuxConnection, now=None):
    return b.receive_data(a.data_to_send(), now)


# ---- go's frames -------------------------------------------------------------------------------

def test_open_and_accept_bytes_are_gos():
    client, server = pair()
    assert client.open_stream() == 1
    assert client.data_to_send() == bytes.fromhex("000100010000000100000000")
    assert server.open_stream() == 2
    assert server.data_to_send() == bytes.fromhex("000100010000000200000000")
    assert client.open_stream() == 3
    evs = server.receive_data(bytes.fromhex("000100010000000300000000"))
    assert evs == [StreamOpened(3)]
    assert server.accept(3)
    assert server.data_to_send() == bytes.fromhex("000100020000000300000000")
    assert client.receive_data(bytes.fromhex("000100020000000300000000")) == [StreamAcked(3)]


def test_take_output_gives_the_queued_frames_unjoined():
    client, _ = pair()
    sid = client.open_stream()
    payload = bytes(range(256)) * 300  # 76800 bytes: two data frames, the SYN on the first
    assert client.send(sid, payload) == len(payload)
    pieces, size = client.take_output()
    assert size == len(b"".join(pieces)) == 12 + 65507 + 12 + (len(payload) - 65507)
    assert b"".join(pieces) == (struct.pack(">BBHII", 0, 0, 1, 1, 65507) + payload[:65507]
                                + struct.pack(">BBHII", 0, 0, 0, 1, 11293) + payload[65507:])
    assert isinstance(pieces[1], memoryview) and pieces[1].obj is payload  # not copied
    assert client.pending_output == 0 and client.data_to_send() == b""



def test_data_frames_end_where_the_noise_frames_of_the_write_end():
    """Writes of any size between small frames (pings, other streams' frames): cut into
    65519-byte segments from the start of the take (the Noise frames over that write), every
    data frame lies within one segment, unless fewer than 13 bytes of its segment were left."""
    rng = random.Random(7)
    client, server = pair()
    sids = [client.open_stream() for _ in range(3)]
    for _ in range(3):
        for _ in range(rng.randrange(1, 6)):
            sid = rng.choice(sids)
            client.send(sid, bytes(rng.choice([1, 116, 5000, 65507, 65519, 200_000, 262_144])))
            if rng.random() < 0.3:
                client.ping()  # a header-only frame between data frames
        pieces, size = client.take_output()
        wire = b"".join(pieces)
        pos = 0
        while pos < size:
            _, ftype, _, _, length = struct.unpack_from(">BBHII", wire, pos)
            end = pos + 12 + (length if ftype == 0 else 0)
            if ftype == 0:
                left = 65519 - pos % 65519
                assert end - pos <= left or left < 13, (pos, length)
                assert length <= 65507
            pos = end
        assert pos == size
        server.receive_data(wire)


# ---- fewer frames where go reads them the same ---------------------------------------------------

def test_a_request_is_syn_and_data_in_one_frame_then_fin():
    client, server = pair()
    sid = client.open_stream()
    client.send(sid, b"hello ")
    client.send(sid, b"world")
    client.send_eof(sid)
    wire = client.data_to_send()
    # no FIN on a Data frame with payload: go-yamux handles a frame's flags before its payload
    assert split_frames(wire) == [(0, 1, sid, 11, b"hello world"), (1, 4, sid, 0, b"")]
    assert server.receive_data(wire) == [StreamOpened(sid), DataReceived(sid, 11),
                                         StreamEnded(sid)]
    assert server.accept(sid)
    assert server.read(sid, 100) == b"hello world"


def test_an_answer_is_ack_reply_and_data_in_one_frame_then_fin():
    client, server = pair()
    sid = client.open_stream()
    pump(client, server)
    assert server.accept(sid)
    server.send(sid, b"reply;")
    server.send(sid, memoryview(b"data"))
    server.send_eof(sid)
    wire = server.data_to_send()
    assert split_frames(wire) == [(0, 2, sid, 10, b"reply;data"), (1, 4, sid, 0, b"")]
    assert client.receive_data(wire) == [StreamAcked(sid), DataReceived(sid, 10),
                                         StreamEnded(sid)]
    assert client.read(sid, 100) == b"reply;data"


def test_an_ack_and_a_fin_without_data_are_one_window_update():
    client, server = pair()
    sid = client.open_stream()
    pump(client, server)
    server.accept(sid)
    server.send_eof(sid)
    assert split_frames(server.data_to_send()) == [(1, 2 | 4, sid, 0, b"")]


def test_only_the_last_frame_queued_is_extended():
    client, _ = pair()
    a = client.open_stream()
    client.ping()
    client.send(a, b"x")  # the ping came between: the SYN stays a window update
    b = client.open_stream()
    client.send(a, b"y")  # b's SYN came between: a new frame
    client.send(b, b"z")  # and a's data after b's SYN
    assert [f[:4] for f in split_frames(client.data_to_send())] == [
        (1, 1, a, 0), (2, 1, 0, 0), (0, 0, a, 1), (1, 1, b, 0), (0, 0, a, 1), (0, 0, b, 1)]
    client.send(a, b"after")  # nothing queued any more: a frame of its own
    assert split_frames(client.data_to_send()) == [(0, 0, a, 5, b"after")]


def test_an_extended_frame_stays_within_the_largest_payload():
    client, _ = pair(max_frame_payload=100)
    sid = client.open_stream()
    client.send(sid, b"a" * 60)
    client.send(sid, b"b" * 60)
    client.send(sid, b"c" * 90)
    frames = split_frames(client.data_to_send())
    assert [f[:4] for f in frames] == [(0, 1, sid, 100), (0, 0, sid, 100), (0, 0, sid, 10)]
    assert b"".join(f[4] for f in frames) == b"a" * 60 + b"b" * 60 + b"c" * 90


def test_a_larger_initial_window_keeps_its_own_window_update():
    client, server = pair(initial_stream_window=2 * WINDOW)
    sid = client.open_stream()
    client.send(sid, b"x")
    assert [f[:4] for f in split_frames(client.data_to_send())] == [(1, 1, sid, WINDOW),
                                                                     (0, 0, sid, 1)]


def test_only_window_updates_tells_a_lone_window_update_from_other_output():
    client, server = pair()
    sid = client.open_stream()
    pump(client, server)
    server.accept(sid)
    pump(server, client)
    assert server.send(sid, bytes(200_000)) == 200_000
    pump(server, client)
    assert client.pending_output == 0
    assert len(client.read(sid, 1 << 20)) == 200_000  # over half the window: an update queued
    assert client.pending_output == 12 and client.only_window_updates
    client.send(sid, b"x")
    assert not client.only_window_updates
    client.data_to_send()
    client.ping()
    assert not client.only_window_updates


def test_fin_and_rst_go_on_window_update_frames():
    client, server = pair()
    sid = client.open_stream()
    client.data_to_send()
    client.send_eof(sid)
    assert client.data_to_send() == bytes.fromhex("000100040000000100000000")
    sid2 = client.open_stream()
    client.data_to_send()
    client.reset(sid2)
    assert client.data_to_send() == bytes.fromhex("000100080000000300000000")


def test_first_ping_is_opaque_zero_and_pings_count_up():
    client, _ = pair()
    assert client.ping(0.0) == 0
    assert client.ping(0.0) == 1
    assert client.data_to_send() == bytes.fromhex("000200010000000000000000000200010000000000000001")


def test_ping_is_answered_with_same_opaque_and_pong_gives_rtt():
    client, server = pair()
    server.receive_data(bytes.fromhex("0002000100000000deadbeef"))
    assert server.data_to_send() == bytes.fromhex("0002000200000000deadbeef")
    opaque = client.ping(10.0)
    reply = frame(2, 2, 0, opaque)
    assert client.receive_data(reply, now=10.5) == [PongReceived(opaque, 0.5)]
    assert client.rtt == 0.5
    opaque = client.ping(11.0)
    client.receive_data(frame(2, 2, 0, opaque), now=11.1)
    assert client.rtt == pytest.approx(0.3)  # old/2 + new/2
    assert client.receive_data(frame(2, 2, 0, 999), now=12) == []  # unsolicited pong ignored


def test_accept_carries_extra_window_when_configured_larger():
    client, server = pair(initial_stream_window=512 * KIB)
    client.open_stream()
    syn = client.data_to_send()
    assert syn == frame(1, 1, 1, 256 * KIB)
    server.receive_data(syn)
    server.accept(1)
    assert server.data_to_send() == frame(1, 2, 1, 256 * KIB)
    assert server.send_window(1) == 512 * KIB


@pytest.mark.parametrize("ftype", [0, 1])
def test_syn_ack_fin_rst_on_either_frame_type(ftype):
    _, server = pair()
    evs = server.receive_data(frame(ftype, 0x1 | 0x4, 1, 0))  # SYN|FIN on one frame is valid
    assert evs == [StreamOpened(1), StreamEnded(1)]
    evs = server.receive_data(frame(ftype, 0x1, 3, 0) + frame(ftype, 0x8, 3, 0))
    assert evs == [StreamOpened(3), StreamReset(3)]
    assert not server.has_stream(3)


def test_syn_window_update_delta_adds_to_send_window():
    _, server = pair()
    server.receive_data(frame(1, 1, 1, 1000))
    assert server.send_window(1) == WINDOW + 1000


def test_data_with_syn_and_fin_delivers_then_ends():
    _, server = pair()
    evs = server.receive_data(data(1, b"hello", flags=0x1 | 0x4))
    assert evs == [StreamOpened(1), DataReceived(1, 5), StreamEnded(1)]
    assert server.read(1, 100) == b"hello"


def test_frames_split_at_every_byte_give_the_same_result():
    client, server = pair()
    sid = client.open_stream()
    client.send(sid, bytes(range(256)) * 10)
    client.send_eof(sid)
    client.ping(0.0)
    wire = client.data_to_send()
    evs = []
    for i in range(len(wire)):
        evs += server.receive_data(wire[i:i + 1])
    assert evs[0] == StreamOpened(1)
    assert sum(e.length for e in evs if isinstance(e, DataReceived)) == 2560
    assert evs[-1] == StreamEnded(1)
    assert server.read(1, 10000) == bytes(range(256)) * 10
    assert server.data_to_send() == frame(2, 2, 0, 0)


# ---- flow control ------------------------------------------------------------------------------

def test_send_is_split_by_window_and_max_payload():
    client, server = pair()
    sid = client.open_stream()
    client.data_to_send()
    assert client.send(sid, b"x" * 300_000) == WINDOW
    assert client.send(sid, b"x") == 0
    frames = split_frames(client.data_to_send())
    sizes = [f[3] for f in frames]
    assert all(f[0] == 0 for f in frames) and sum(sizes) == WINDOW
    assert max(sizes) == 65507  # one Noise frame of 65519 plaintext holds header + payload
    small = pair(max_frame_payload=1000)[0]
    sid = small.open_stream()
    small.data_to_send()
    small.send(sid, b"y" * 2500)
    assert [f[3] for f in split_frames(small.data_to_send())] == [1000, 1000, 500]


def test_acceptor_sets_ack_on_first_frame_if_not_accepted_yet_via_window_update():
    _, server = pair()
    server.receive_data(frame(1, 1, 1, 0) + data(1, b"z" * (WINDOW // 2)))
    server.read(1, WINDOW)  # reading before accept: the WindowUpdate carries the owed ACK
    frames = split_frames(server.data_to_send())
    assert frames == [(1, 2, 1, WINDOW // 2, b"")]


def test_window_update_only_after_half_consumed():
    client, server = pair()
    sid = client.open_stream()
    client.send(sid, b"a" * WINDOW)
    server.receive_data(client.data_to_send())
    server.accept(sid)
    server.data_to_send()
    assert len(server.read(sid, WINDOW // 2 - 1)) == WINDOW // 2 - 1
    assert server.data_to_send() == b""
    server.read(sid, 1)
    assert server.data_to_send() == frame(1, 0, sid, WINDOW // 2)
    assert client.receive_data(frame(1, 0, sid, WINDOW // 2)) == [WindowUpdated(sid, WINDOW // 2)]
    assert client.send_window(sid) == WINDOW // 2


def test_auto_tuning_doubles_within_four_rtt_up_to_max():
    client, server = pair(max_stream_window=1024 * KIB)
    opaque = server.ping(0.0)
    server.receive_data(frame(2, 2, 0, opaque), now=0.010)  # rtt = 10 ms
    sid = client.open_stream(0.0)
    server.receive_data(client.data_to_send(), now=0.0)
    server.accept(sid)
    server.data_to_send()
    windows, now = [], 0.0
    for _ in range(6):
        n = client.send_window(sid)
        client.send(sid, b"b" * n)
        server.receive_data(client.data_to_send(), now)
        now += 0.001  # well inside 4 * rtt
        while server.read(sid, 1 << 30, now):
            pass
        assert server.buffered(sid) <= server.recv_window(sid)
        windows.append(server.recv_window(sid))
        client.receive_data(server.data_to_send(), now)
    assert windows == [512 * KIB, 1024 * KIB, 1024 * KIB, 1024 * KIB, 1024 * KIB, 1024 * KIB]
    assert client.send_window(sid) == 1024 * KIB


def _rtt_10ms_pair(streams: int) -> tuple[YamuxConnection, YamuxConnection, list[int]]:
    """A client and server whose server measured a 10 ms RTT, with `streams` open and accepted."""
    client, server = pair(max_stream_window=1024 * KIB)
    opaque = server.ping(0.0)
    server.receive_data(frame(2, 2, 0, opaque), now=0.010)  # rtt = 10 ms
    sids = [client.open_stream(0.0) for _ in range(streams)]
    server.receive_data(client.data_to_send(), now=0.0)
    for sid in sids:
        server.accept(sid)
    server.data_to_send()
    return client, server, sids


def _fast_rounds(client: YamuxConnection, server: YamuxConnection, sid: int, rounds: int,
                 read_size: int, now: float) -> tuple[list[int], float]:
    """`rounds` full windows sent on `sid`, each read `read_size` at a time 1 ms later (well
    inside 4 RTT: go's rule doubles the window each time); the window after each round."""
    windows = []
    for _ in range(rounds):
        client.send(sid, b"f" * client.send_window(sid))
        server.receive_data(client.data_to_send(), now)
        now += 0.001
        while server.read(sid, read_size, now):
            pass
        windows.append(server.recv_window(sid))
        client.receive_data(server.data_to_send(), now)
    return windows, now


def test_no_growth_while_the_session_holds_more_than_a_window_unread():
    """A receiver with more than a window of bytes still to read gains nothing from more in
    flight (16 echo streams on loopback grew to 2-4 MiB each without this, the listener holding
    16-64 MiB unread): a stream's window grows only while the session's unread bytes are at most
    that window."""
    client, server, (fast, slow1, slow2) = _rtt_10ms_pair(3)
    for slow in (slow1, slow2):
        client.send(slow, b"s" * (200 * KIB))  # read by nobody for now: 400 KiB > one window
    server.receive_data(client.data_to_send(), 0.0)
    windows, now = _fast_rounds(client, server, fast, 3, 1 << 30, 0.0)
    assert windows == [WINDOW, WINDOW, WINDOW]  # updates at the same size: no growth
    assert server.read(slow1, 1 << 30, now) == b"s" * (200 * KIB)  # 200 KiB left: under a window
    windows, now = _fast_rounds(client, server, fast, 1, 1 << 30, now)
    assert windows == [2 * WINDOW]
    assert server._unread == 200 * KIB


def test_a_stream_nobody_reads_does_not_hold_the_others_windows():
    """One stream whose bytes the application never reads holds at most its own window: the
    others still grow as go's would (a session that must hold nothing unread keeps them at 256 KiB,
    256 KiB per RTT on a long path)."""
    client, server, (fast, stuck) = _rtt_10ms_pair(2)
    client.send(stuck, b"s" * 1000)
    server.receive_data(client.data_to_send(), 0.0)
    windows, _ = _fast_rounds(client, server, fast, 3, 1 << 30, 0.0)
    assert windows == [2 * WINDOW, 4 * WINDOW, 4 * WINDOW]
    assert server._unread == 1000


def test_no_growth_when_updates_are_slow():
    client, server = pair()
    opaque = server.ping(0.0)
    server.receive_data(frame(2, 2, 0, opaque), now=0.001)
    sid = client.open_stream()
    server.receive_data(client.data_to_send(), 0.0)
    for i in range(3):
        client.send(sid, b"c" * client.send_window(sid))
        server.receive_data(client.data_to_send())
        server.read(sid, 1 << 30, now=10.0 * (i + 1))
        client.receive_data(server.data_to_send())
    assert server.recv_window(sid) == WINDOW


def test_window_update_overflow_is_protocol_error():
    client, _ = pair()
    sid = client.open_stream()
    client.data_to_send()
    with pytest.raises(YamuxProtocolError):
        client.receive_data(frame(1, 0, sid, 0xFFFFFFFF))
    assert client.data_to_send() == GOAWAY_PROTO


# ---- hostile frames ----------------------------------------------------------------------------

def expect_violation(conn: YamuxConnection, wire: bytes) -> YamuxProtocolError:
    with pytest.raises(YamuxProtocolError) as info:
        conn.receive_data(wire)
    assert isinstance(info.value, RemoteProtocolError)
    assert conn.data_to_send().endswith(GOAWAY_PROTO)
    with pytest.raises(YamuxProtocolError):  # the core stays failed
        conn.receive_data(frame(2, 1, 0, 0))
    return info.value


def test_syn_data_frame_beyond_initial_window():
    # rust-yamux GHSA-vxx9-2994-q338: SYN+Data of 262145 bytes. Rejected at the header: the
    # payload is never buffered.
    _, server = pair()
    expect_violation(server, frame(0, 0x1, 1, 262145) + b"\0" * 100)
    assert server.buffered(1) == 0


def test_syn_data_frame_of_exactly_the_window_is_fine():
    _, server = pair()
    evs = server.receive_data(frame(0, 0x1, 1, WINDOW, b"\1" * WINDOW))
    assert evs[0] == StreamOpened(1) and server.buffered(1) == WINDOW
    expect_violation(server, data(1, b"\1"))


def test_data_beyond_window_after_updates():
    client, server = pair()
    sid = client.open_stream()
    server.receive_data(client.data_to_send() + data(sid, b"d" * 200_000))
    expect_violation(server, data(sid, b"d" * 62_145))


@pytest.mark.parametrize("wire", [
    bytes.fromhex("010100010000000100000000"),  # version 1
    bytes.fromhex("000400000000000000000000"),  # type 4
    bytes.fromhex("00ff00000000000000000000"),  # type 255
])
def test_bad_version_or_type(wire):
    _, server = pair()
    expect_violation(server, wire)


def test_wrong_parity_syn():
    client, server = pair()
    expect_violation(client, frame(1, 1, 1, 0))   # server opening an odd stream
    expect_violation(server, frame(1, 1, 2, 0))   # client opening an even stream
    _, server = pair()
    expect_violation(server, frame(1, 1, 0, 0))   # stream 0 is the session


def test_duplicate_syn():
    _, server = pair()
    server.receive_data(frame(1, 1, 1, 0))
    expect_violation(server, frame(0, 1, 1, 0))


def test_data_after_fin():
    _, server = pair()
    server.receive_data(frame(1, 1 | 4, 1, 0))
    expect_violation(server, data(1, b"late"))


def test_data_for_unknown_stream_is_skipped_without_buffering():
    _, server = pair()
    big = 10 * 1024 * 1024
    evs = server.receive_data(frame(0, 0, 7, big))
    for _ in range(big // 65536):
        evs += server.receive_data(b"\0" * 65536)
        assert len(server._inbuf) == 0
    evs += server.receive_data(frame(1, 1, 9, 0))
    assert evs == [StreamOpened(9)]


def test_late_frames_after_local_close_are_ignored():
    client, server = pair()
    sid = client.open_stream()
    server.receive_data(client.data_to_send())
    server.accept(sid)
    server.close_stream(sid)
    assert split_frames(server.data_to_send())[-1] == (1, 2 | 4, sid, 0, b"")  # ACK + FIN
    assert server.receive_data(data(sid, b"x" * 1000) + frame(1, 4, sid, 0)) == []
    assert not server.has_stream(sid)


def test_rst_flood_leaves_nothing_behind():
    _, server = pair(accept_backlog=4, max_inbound_streams=8)
    wire = b"".join(frame(1, 1, sid, 0) + frame(1, 8, sid, 0) for sid in range(1, 20001, 2))
    evs = server.receive_data(wire)
    assert len(evs) == 20000
    assert server.num_streams == 0 and server.data_to_send() == b""
    assert server.receive_data(frame(1, 1, 20001, 0)) == [StreamOpened(20001)]
    assert server.receive_data(frame(1, 8, 99999, 0)) == []  # RST for unknown stream: ignored


def test_ping_flood_replies_are_bounded_per_drain():
    _, server = pair()
    server.receive_data(b"".join(frame(2, 1, 0, i) for i in range(1000)))
    replies = split_frames(server.data_to_send())
    assert len(replies) == 32 and replies[0] == (2, 2, 0, 0, b"") and replies[-1][3] == 31
    server.receive_data(b"".join(frame(2, 1, 0, i) for i in range(100)))
    assert len(split_frames(server.data_to_send())) == 32


def test_accept_backlog_and_inbound_limit_reset_excess():
    _, server = pair(accept_backlog=2, max_inbound_streams=3)
    evs = server.receive_data(b"".join(frame(1, 1, sid, 0) for sid in (1, 3, 5)))
    assert evs == [StreamOpened(1), StreamOpened(3)]
    assert server.data_to_send() == bytes.fromhex("000100080000000500000000")
    assert server.accept(1) and server.accept(3)
    server.data_to_send()
    assert server.receive_data(frame(1, 1, 7, 0) + frame(1, 1, 9, 0)) == [StreamOpened(7)]
    assert server.data_to_send() == frame(1, 8, 9, 0)
    server.reset(1)  # frees a slot
    server.data_to_send()
    assert server.receive_data(frame(1, 1, 11, 0)) == [StreamOpened(11)]


def test_syn_after_local_goaway_gets_rst():
    _, server = pair()
    server.go_away(0)
    assert server.data_to_send() == GOAWAY_NORMAL
    assert server.receive_data(frame(1, 1, 1, 0) + data(1, b"ignored")) == []
    assert server.data_to_send() == bytes.fromhex("000100080000000100000000")


def test_remote_goaway_stops_opening_but_keeps_streams():
    client, server = pair()
    sid = client.open_stream()
    server.receive_data(client.data_to_send())
    assert client.receive_data(GOAWAY_NORMAL) == [GoAwayReceived(0)]
    with pytest.raises(SessionGoingAway):
        client.open_stream()
    assert client.send(sid, b"still ok") == 8
    assert server.receive_data(client.data_to_send()) == [DataReceived(sid, 8)]
    assert client.receive_data(bytes.fromhex("000300000000000000000002")) == [GoAwayReceived(2)]


def test_outbound_unacked_streams_are_capped():
    client, server = pair()
    ids = [client.open_stream() for _ in range(256)]
    with pytest.raises(StreamLimitReached) as info:
        client.open_stream()
    assert isinstance(info.value, LocalProtocolError)
    server.receive_data(client.data_to_send())
    server.accept(ids[0])
    assert client.receive_data(server.data_to_send()) == [StreamAcked(ids[0])]
    client.open_stream()
    client.reset(ids[1])  # closing an un-ACKed stream also frees its slot
    client.open_stream()
    with pytest.raises(StreamLimitReached):
        client.open_stream()


def test_buffer_never_exceeds_window_for_a_slow_reader():
    client, server = pair()
    sid = client.open_stream()
    server.receive_data(client.data_to_send())
    server.accept(sid)
    client.receive_data(server.data_to_send())
    total = 0
    for _ in range(10):
        total += client.send(sid, b"s" * 100_000)
        server.receive_data(client.data_to_send())
        assert server.buffered(sid) <= server.recv_window(sid) == WINDOW
        client.receive_data(server.data_to_send())
    assert total == WINDOW and client.send_window(sid) == 0


def test_remote_reset_drops_buffer_and_local_misuse_raises():
    client, server = pair()
    sid = client.open_stream()
    client.send(sid, b"q" * 100)
    server.receive_data(client.data_to_send())
    assert server.receive_data(frame(1, 8, sid, 0)) == [StreamReset(sid)]
    assert server.read(sid, 100) == b""
    with pytest.raises(LocalProtocolError):
        server.send(sid, b"x")


def test_core_modules_do_no_io():
    root = pathlib.Path(ymod.__file__).parent
    for name in ("yamux.py", "yamux_frame.py"):
        tree = ast.parse((root / name).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & {"anyio", "trio", "asyncio", "socket", "time", "threading"}, name


def test_config_is_validated():
    with pytest.raises(ValueError):
        YamuxConfig(initial_stream_window=1000)
    with pytest.raises(ValueError):
        YamuxConfig(max_stream_window=128 * KIB)
    with pytest.raises(ValueError):
        YamuxConfig(keepalive_interval=0)
    with pytest.raises(Exception):
        YamuxConfig().accept_backlog = 3  # frozen


# ---- received payloads: views of the input, never pinning more than twice their size ----------


def _open_inbound(conn: YamuxConnection, sid: int = 1) -> None:
    conn.receive_data(frame(1, 1, sid, 0))  # WindowUpdate + SYN from the peer
    assert conn.accept(sid)


def test_big_payload_is_a_view_of_the_input_and_reads_back_exactly():
    server = YamuxConnection(False)
    _open_inbound(server)
    payloads = [bytes([i]) * 65507 for i in range(4)]
    for p in payloads:  # one Noise frame's plaintext each: header + 65507 bytes
        server.receive_data(data(1, p))
    chunks = server._streams[1].recv_buf.chunks
    assert all(isinstance(c, memoryview) for c in chunks)  # kept, not copied
    got = server.read(1, 1 << 20)
    assert type(got) is bytes and got == b"".join(payloads)


def test_small_payload_of_a_big_input_is_copied():
    """A frame to a stream nobody reads, then a big payload for a stream already closed (skipped):
    keeping a view of the 1-byte piece would keep the whole input alive for it."""
    server = YamuxConnection(False)
    _open_inbound(server, 1)
    wire = data(1, b"x") + data(99, b"y" * 60000)  # stream 99 is unknown: its payload is skipped
    server.receive_data(wire)
    (chunk,) = server._streams[1].recv_buf.chunks
    assert type(chunk) is bytes and chunk == b"x"


def test_mutable_input_is_always_copied():
    server = YamuxConnection(False)
    _open_inbound(server)
    wire = bytearray(data(1, b"z" * 1000))
    server.receive_data(wire)
    wire[12:] = b"?" * 1000  # the caller reuses its buffer
    (chunk,) = server._streams[1].recv_buf.chunks
    assert type(chunk) is bytes
    assert server.read(1, 4096) == b"z" * 1000
