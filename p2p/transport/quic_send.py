"""A QUIC stream's send buffer kept as the pieces the application wrote, instead of aioquic's one
bytearray.

aioquic's `QuicStreamSender` appends every write to one bytearray (a copy of each byte), cuts a
frame as a bytearray slice copied again into bytes, and deletes the acknowledged front on every
ACK; CPython reallocates a bytearray that shrank below half its allocation (a new block, a copy
of what is left, the old one freed) and the appends grow it again. At bulk rates that moved a
block of up to ~1.3 MiB (the 1 MiB a stream may have unacknowledged, plus a write) several times
a millisecond, one of the buffers that made glibc trim and refault the heap (`heap_thresholds`).

`PieceSender` keeps the written `bytes` objects themselves (no copy on write: the bench writes one
256 KiB block again and again), cuts a frame out of them (the piece itself when the frame is a
whole piece, else one slice), and lets a piece go once all of it is acknowledged (nothing is
reallocated). Small writes are joined into the last piece up to `JOIN_LIMIT`, so a stream of tiny
writes keeps no object per write. An acknowledgement of the next bytes in order, with none
acknowledged past a gap (every one on a loss-free path), only moves the acknowledged offset:
aioquic added the range to a RangeSet, read it back and shifted it out (5 Python calls a frame).
The rest (pending ranges, FIN, loss, reset) is aioquic's own code and state.

`adopt` turns the sender aioquic made for a new stream into one (a class swap, as `quic_core`
does for aioquic's TLS context), keeping anything already written.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from aioquic.quic.packet import QuicStreamFrame
from aioquic.quic.packet_builder import QuicDeliveryState
from aioquic.quic.stream import QuicStreamSender

__all__ = ["JOIN_LIMIT", "PieceSender", "adopt"]

#: A write shorter than this is joined to the last piece while that stays within it.
JOIN_LIMIT = 16384
#: Pieces let go are emptied at once and cut from the front of the lists in batches of this many
#: (and at least half of them).
_COMPACT_AFTER = 32
_ACKED = QuicDeliveryState.ACKED


class PieceSender(QuicStreamSender):
    """aioquic's stream sender with the written pieces kept as they are (see the module)."""

    #: the pieces from `_head` on are not wholly acknowledged yet; `_starts` has the stream
    #: offset of each, `_tail` the last one's; aioquic's `_buffer` stays empty
    _pieces: list[bytes]
    _starts: list[int]
    _head: int
    _tail: int
    #: whether ranges past the first unacknowledged byte were acknowledged (in `_acked`)
    _gaps: bool

    def __init__(self, stream_id: int | None, writable: bool) -> None:
        super().__init__(stream_id, writable)
        self._pieces, self._starts, self._head, self._tail, self._gaps = [], [], 0, 0, False

    def write(self, data: bytes, end_stream: bool = False) -> None:
        if self._buffer_fin is not None:
            raise RuntimeError("Cannot send data after FIN")
        if self._reset_error_code is not None:
            raise RuntimeError("Cannot send data after the stream was reset")
        size = len(data)
        if size:
            if data.__class__ is not bytes:  # the caller may change a bytearray or a view later
                data = bytes(data)
            self.buffer_is_empty = False
            stop = self._buffer_stop
            self._pending.add(stop, stop + size)
            if stop == self._buffer_start:  # nothing is kept (a request's stream: its start)
                self._pieces, self._starts, self._head = [data], [stop], 0
                self._tail = stop
            elif size < JOIN_LIMIT and stop - self._tail + size <= JOIN_LIMIT:
                self._pieces[-1] += data  # same offsets; a frame cut from it keeps its own bytes
            else:
                self._pieces.append(data)
                self._starts.append(stop)
                self._tail = stop
            self._buffer_stop = stop + size
        if end_stream:
            self.buffer_is_empty = False
            self._buffer_fin = self._buffer_stop
            self._pending_eof = True

    def get_frame(self, max_size: int, max_offset: int | None = None) -> QuicStreamFrame | None:
        assert self._reset_error_code is None, "cannot call get_frame() after reset()"
        if max_size < 0:
            return None
        try:
            r = self._pending[0]
        except IndexError:
            if self._pending_eof:
                self._pending_eof = False
                return QuicStreamFrame(fin=True, offset=self._buffer_stop)  # == _buffer_fin
            self.buffer_is_empty = True
            return None
        start = r.start
        stop = min(r.stop, start + max_size)
        if max_offset is not None and stop > max_offset:
            stop = max_offset
        if stop <= start:
            return None
        tail = self._tail
        if start >= tail:  # within the last piece (a request's stream has one), else by offset
            piece = self._pieces[-1]
            data = (piece if start == tail and stop == self._buffer_stop
                    else piece[start - tail:stop - tail])
        else:
            data = self._cut(start, stop)
        frame = QuicStreamFrame(data=data, offset=start)
        self._pending.subtract(start, stop)
        if stop > self.highest_offset:
            self.highest_offset = stop
        if self._buffer_fin == stop:
            frame.fin = True
            self._pending_eof = False
        return frame

    def _cut(self, start: int, stop: int) -> bytes:
        """The stream's bytes from `start` to `stop` (both within what is kept)."""
        starts, pieces = self._starts, self._pieces
        i = bisect_right(starts, start, self._head) - 1
        piece = pieces[i]
        begin = start - starts[i]
        end = begin + stop - start
        if end <= len(piece):
            return piece if begin == 0 and end == len(piece) else piece[begin:end]
        parts: list[Any] = [memoryview(piece)[begin:]]
        need = end - len(piece)
        while need > 0:
            i += 1
            piece = pieces[i]
            parts.append(piece if len(piece) <= need else memoryview(piece)[:need])
            need -= len(piece)
        return b"".join(parts)

    def on_data_delivery(self, delivery: QuicDeliveryState, start: int, stop: int,
                         fin: bool) -> None:
        assert not fin or stop == self._buffer_fin, (
            "on_data_delivered() was called with inconsistent fin / stop")
        if self._reset_error_code is not None:
            return
        if delivery is _ACKED:
            if stop > start:
                if start == self._buffer_start and not self._gaps:  # the next bytes, in order
                    self._buffer_start = stop
                else:  # aioquic's way, and whether ranges past a gap are left
                    acked = self._acked
                    acked.add(start, stop)
                    first_range = acked[0]
                    if first_range.start == self._buffer_start:
                        acked.shift()
                        self._buffer_start = first_range.stop
                    self._gaps = len(acked) > 0
                if self._buffer_start == self._buffer_stop:  # all of it: let every piece go
                    self._pieces, self._starts, self._head = [], [], 0
                else:
                    self._let_go()
            if fin:
                self._acked_fin = True
            if self._buffer_start == self._buffer_fin and self._acked_fin:
                self.is_finished = True
        else:  # lost: aioquic's way (sent again from the pieces)
            if stop > start:
                self.buffer_is_empty = False
                self._pending.add(start, stop)
            if fin:
                self.buffer_is_empty = False
                self._pending_eof = True

    def _let_go(self) -> None:
        """Empty the pieces that end at or before `_buffer_start`."""
        starts, pieces, head = self._starts, self._pieces, self._head
        acked, count = self._buffer_start, len(pieces)
        while head < count and starts[head] + len(pieces[head]) <= acked:
            pieces[head] = b""
            head += 1
        if head >= _COMPACT_AFTER and head * 2 >= count:
            del pieces[:head], starts[:head]
            head = 0
        self._head = head

    def reset(self, error_code: int) -> None:
        super().reset(error_code)
        if self._reset_error_code is not None:  # nothing is sent or resent any more
            self._pieces, self._starts, self._head = [], [], 0


def adopt(sender: QuicStreamSender) -> None:
    """Make the sender aioquic made a PieceSender, with whatever it already holds."""
    held = sender._buffer
    piece: Any = sender
    piece.__class__ = PieceSender
    piece._pieces = [bytes(held)] if held else []
    piece._starts = [sender._buffer_start] if held else []
    piece._head = 0
    piece._tail = sender._buffer_start
    # ranges past a gap can be acknowledged only while something is not
    piece._gaps = sender._buffer_start != sender._buffer_stop and len(sender._acked) > 0
    piece._buffer = bytearray()
