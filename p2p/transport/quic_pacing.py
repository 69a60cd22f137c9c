"""QUIC send pacing whose bursts cover the timer's granularity, as quic-go sizes them.

aioquic's pacer lets at most 16 datagrams leave at once (`bucket_max` capped at
16 * max_datagram_size of send time) and then asks to be woken again one packet time later,
which on a fast path is microseconds. Neither asyncio nor trio can sleep that briefly: both wait
in epoll, whose timeout is whole milliseconds rounded up, so every burst of 16 x 1200 bytes was
followed by a sleep of at least 1 ms. That capped one connection at ~19 MB/s whatever the
congestion window (on loopback, with both ends mostly idle), which is what the bench's QUIC bulk
row measured.

quic-go (congestion/pacer.go) sizes its burst to what the path carries in the timer granularity:
the larger of 10 datagrams and bandwidth x (MinPacingDelay 1 ms + TimerGranularity 1 ms). The
same rule here: after any wake-up, however late, the bucket holds up to 2 ms of sending, so the
pace follows the congestion controller's rate instead of the event loop's clock resolution. The
congestion window still bounds what is in flight; pacing still spreads it on slow paths (at
12 MB/s, 2 ms is 20 datagrams).

Sans-IO, like the class it subclasses: the caller passes the clock.
"""

from __future__ import annotations

from aioquic.quic.recovery import K_MICRO_SECOND, K_SECOND, QuicPacketPacer

__all__ = ["BURST_PACKETS", "PACING_GRANULARITY", "GranularPacer"]

#: quic-go's MinPacingDelay + TimerGranularity: the shortest sleep an event loop really does,
#: with margin. A burst may carry this much of the sending rate.
PACING_GRANULARITY = 0.002
#: quic-go's maxBurstSizePackets: the smallest burst, whatever the rate.
BURST_PACKETS = 10


class GranularPacer(QuicPacketPacer):
    """aioquic's token-bucket pacer with quic-go's burst size (see the module docstring)."""

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        rate = congestion_window / max(smoothed_rtt, K_MICRO_SECOND)  # bytes per second
        self.packet_time = max(K_MICRO_SECOND, min(self._max_datagram_size / rate, K_SECOND))
        burst = max(BURST_PACKETS * self._max_datagram_size, rate * PACING_GRANULARITY)
        self.bucket_max = burst / rate
        if self.bucket_time > self.bucket_max:
            self.bucket_time = self.bucket_max
