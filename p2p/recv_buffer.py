"""A muxed stream's receive buffer: the pieces that arrived, joined only when read (yamux, QUIC)."""

from __future__ import annotations

__all__ = ["RecvBuffer"]


class RecvBuffer:
    """A stream's unread bytes, kept as the pieces that arrived.

    One growing bytearray per stream meant reallocating and shifting megabytes (yamux windows
    auto-tune to 16 MiB, QUIC's to 10 MiB) while a reader took 256 KiB at a time: measured as page
    faults worth ~40% of yamux bulk throughput. `size` (and `len()`) is the byte count; a piece
    only partly read stays as a memoryview. `chunks` is public for the yamux parser, which appends
    a data frame's piece to it and adds its length to `size` itself (`append` inline, once per
    frame): the two must move together.
    """

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, data: bytes | memoryview) -> None:
        self.chunks.append(data)
        self.size += len(data)

    def clear(self) -> None:
        self.chunks.clear()
        self.size = 0

    def take(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` from the front (whole pieces joined; a large one split)."""
        chunks = self.chunks
        if self.size <= max_bytes:  # all of it, as a reader asking for more than there is gets
            first = chunks[0]
            out = first if len(chunks) == 1 and isinstance(first, bytes) else b"".join(chunks)
            chunks.clear()
            self.size = 0
            return out
        first = chunks[0]
        n = len(first)
        if n > max_bytes:
            view = first if isinstance(first, memoryview) else memoryview(first)
            out = bytes(view[:max_bytes])
            chunks[0] = view[max_bytes:]
        elif len(chunks) == 1:
            chunks.clear()
            out = first if isinstance(first, bytes) else bytes(first)
        else:  # min(max_bytes, buffered) bytes, as one bytearray would have given
            i, total = 1, n
            while i < len(chunks) and total + len(chunks[i]) <= max_bytes:
                total += len(chunks[i])
                i += 1
            parts = chunks[:i]
            del chunks[:i]
            if chunks and total < max_bytes:
                view = chunks[0] if isinstance(chunks[0], memoryview) else memoryview(chunks[0])
                parts.append(view[:max_bytes - total])
                chunks[0] = view[max_bytes - total:]
            out = b"".join(parts)
        self.size -= len(out)
        return out
