"""QUIC pacing with bursts that cover an event loop's 1 ms timer granularity (quic_pacing).

The pacer alone (sans-IO, clock passed in), and two `Libp2pQuicConnection`s moving a stream in
memory on a simulated clock that, like epoll, only wakes in whole milliseconds: aioquic's own
pacer caps that at 16 datagrams per millisecond (~19 MB/s), ours follows the congestion window.
"""

from __future__ import annotations

from aioquic.quic.recovery import QuicPacketPacer

from quic_memory import MSS, pair, transfer

from p2p.identity import PrivateKey
from p2p.security.tls_cert import make_certificate
from p2p.transport.quic_core import Libp2pQuicConnection, make_configuration
from p2p.transport.quic_pacing import BURST_PACKETS, PACING_GRANULARITY, GranularPacer


def burst(pacer: QuicPacketPacer, now: float) -> int:
    """How many datagrams the pacer lets leave at `now` before asking to wait."""
    n = 0
    while pacer.next_send_time(now) is None and n < 100_000:
        pacer.update_after_send(now)
        n += 1
    return n


def filled(pacer: QuicPacketPacer, cwnd: int, rtt: float) -> QuicPacketPacer:
    pacer.update_rate(congestion_window=cwnd, smoothed_rtt=rtt)
    pacer.update_bucket(now=10.0)  # long idle: the bucket is full
    return pacer


def test_burst_covers_the_timer_granularity_at_high_rates() -> None:
    cwnd, rtt = 4 << 20, 0.001  # 4 MiB per ms on loopback
    ours = burst(filled(GranularPacer(max_datagram_size=MSS), cwnd, rtt), 10.0)
    theirs = burst(filled(QuicPacketPacer(max_datagram_size=MSS), cwnd, rtt), 10.0)
    assert theirs <= 17  # aioquic's cap: 16 datagrams, then a sub-ms wait epoll cannot do
    # 2 ms of the rate (~7000 datagrams), but aioquic counts a packet as at least 1 us of send
    # time (K_MICRO_SECOND), so at most 2000 (2.4 GB/s)
    rate = cwnd / rtt
    assert ours >= min(int(rate * PACING_GRANULARITY / MSS), int(PACING_GRANULARITY / 1e-6))


def test_slow_paths_are_still_paced() -> None:
    pacer = filled(GranularPacer(max_datagram_size=MSS), 12_000, 0.1)  # 120 kB/s
    n = burst(pacer, 10.0)
    assert BURST_PACKETS <= n <= BURST_PACKETS + 1
    wake = pacer.next_send_time(10.0)
    assert wake is not None and wake > 10.0  # then it waits
    assert 1 <= burst(pacer, 10.0 + MSS / 120_000 + 1e-9) <= 2  # one packet time: one more


def test_a_connection_paces_with_it() -> None:
    conf = make_configuration(make_certificate(PrivateKey.generate()), is_client=True)
    assert isinstance(Libp2pQuicConnection(configuration=conf)._loss._pacer, GranularPacer)


def test_one_ms_wakeups_are_not_the_limit() -> None:
    """8 MiB with 1 ms wake-ups: aioquic's pacer needs ~440 ms (16 datagrams a wake-up, ~19 MB/s);
    with bursts sized to the granularity the window grows and it takes a fraction of that."""
    size = 8 << 20
    client, server = pair()
    ours = transfer(client, server, bytes(size)).ms
    client, server = pair()
    for conn in (client, server):
        conn._loss._pacer = QuicPacketPacer(max_datagram_size=MSS)
    theirs = transfer(client, server, bytes(size)).ms
    assert theirs >= size / (17 * MSS)  # the cap this module removes, still there in aioquic
    assert ours * 3 < theirs, (ours, theirs)
