"""Receive flow control for QUIC as quic-go does it: credit for what the application has read.

aioquic grants more credit as data *arrives* and doubles its windows without a cap, so a peer may
make us buffer any amount a reader has not taken yet. libp2p on QUIC has no other backpressure, so
the credit we advertise follows consumption instead (quic-go internal/flowcontrol):

* the limit we advertise is `consumed + window`; an update is due once less than 75 % of the
  window is left (quic-go's WindowUpdateThreshold 0.25);
* auto-tuning: when the reader consumed more than half a window within `4 * fraction * rtt` of
  the epoch's start, the window doubles, up to `max_window` (512 KiB -> 10 MiB per stream,
  768 KiB -> 15 MiB per connection in go-libp2p).

Sans-IO: the caller passes the clock and the RTT.
"""

from __future__ import annotations

__all__ = ["ReceiveWindow", "UPDATE_THRESHOLD"]

UPDATE_THRESHOLD = 0.25  # quic-go protocol.WindowUpdateThreshold


class ReceiveWindow:
    """The credit of one stream (or of the whole connection) on the receiving side."""

    __slots__ = ("_window", "max_window", "consumed", "limit", "update_below", "_epoch_start",
                 "_epoch_offset")

    def __init__(self, window: int, max_window: int) -> None:
        self.window = window
        self.max_window = max(window, max_window)
        self.consumed = 0
        self.limit = window  # what the peer may send up to (the initial transport parameter)
        self._epoch_start: float | None = None
        self._epoch_offset = 0

    def add_consumed(self, n: int, now: float) -> None:
        """The application took `n` more bytes (or they were discarded: reset, closed stream)."""
        if self._epoch_start is None:
            self._start_epoch(now)  # quic-go: the first read starts the first auto-tuning epoch
        self.consumed += n

    def ensure_window(self, size: int, now: float) -> None:
        """Grow to at least `size` (the connection follows its largest stream, as quic-go's
        EnsureMinimumWindowSize)."""
        if size > self.window:
            self.window = min(size, self.max_window)
            self._start_epoch(now)

    @property
    def window(self) -> int:
        return self._window

    @window.setter
    def window(self, size: int) -> None:
        self._window = size
        #: an update is due once no more than this is left (checked per packet and stream)
        self.update_below = size * (1 - UPDATE_THRESHOLD)

    def due(self) -> bool:
        """Whether an update is due (less than 75 % of the window left): `update` says what."""
        return self.limit - self.consumed <= self.update_below

    def update(self, now: float, rtt: float | None) -> int | None:
        """The new limit to advertise, or None when no update is due yet."""
        if not self.due():
            return None
        self._maybe_grow(now, rtt)
        self.limit = self.consumed + self.window
        return self.limit

    def _start_epoch(self, now: float) -> None:
        self._epoch_start = now
        self._epoch_offset = self.consumed

    def _maybe_grow(self, now: float, rtt: float | None) -> None:
        if self._epoch_start is None:
            self._start_epoch(now)
            return
        read_in_epoch = self.consumed - self._epoch_offset
        if read_in_epoch <= self.window // 2 or not rtt:
            return
        fraction = read_in_epoch / self.window
        if now - self._epoch_start < 4 * fraction * rtt:
            self.window = min(2 * self.window, self.max_window)
        self._start_epoch(now)
