"""The Tracer: one record per thing that crosses (or happens at) a layer, written as it happens.

A record is a flat dict. Every record has the same six keys, then the decoded fields of its layer:

    t       seconds since the trace began (monotonic clock)
    conn    a connection label ("c1", "c2", ... in the order connections were traced)
    stream  the yamux stream ID the record is about, or None for the connection itself
    dir     "out" (we sent it), "in" (we received it), None for a local event
    layer   "tcp", "multistream", "noise", "yamux", "identify", "ping", "worker", "app", ...
    event   what happened ("data", "message", "handshake", "frame", "agreed", ...)

Two writers: `JsonLinesWriter` (one JSON object per line, for tools) and `ReadableWriter` (for
terminals, see `p2p.trace.readable`). A `Tracer` with no writer keeps its records in `records`,
which is what the tests read.

Tracing is opt-in per Host: with no tracer nothing in this package runs (the Host checks once per
connection and only then wraps the connection's layers; see `p2p.trace.hooks`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from p2p.trace.hooks import ConnTrace

Record = dict[str, Any]

#: Raw bytes shown per record ("hex" field); the record keeps the full length in "length".
DEFAULT_MAX_HEX = 64

LAYERS = ("tcp", "quic", "multistream", "noise", "yamux", "identify", "ping", "kad", "pubsub",
          "membership", "worker", "app")


class JsonLinesWriter:
    """One JSON object per line; bytes fields are already hex strings in the records."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, record: Record) -> None:
        self.out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self.out.flush()


class Tracer:
    """Collects trace records from every traced connection of a host (or several hosts).

    `writer` is anything with `write(record)`; None keeps the records in `self.records`.
    `decoders` maps a protocol ID (or a prefix ending in "/") to a decoder factory for the
    bytes of streams that negotiate it (see `p2p.trace.protocols`); callers add their own with
    `register_protocol`.
    """

    def __init__(self, writer: Any = None, *, max_hex: int = DEFAULT_MAX_HEX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from p2p.trace.protocols import default_decoders

        self.writer = writer
        self.records: list[Record] = []
        self.max_hex = max_hex
        self._clock = clock
        self._start = clock()
        self._next_conn = 0
        self.decoders: dict[str, Callable[..., Any]] = default_decoders()

    # ---- output ------------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the trace began (the records' `t`)."""
        return round(self._clock() - self._start, 6)

    def emit(self, conn: str, stream: int | None, dir: str | None, layer: str, event: str,
             **fields: Any) -> Record:
        record: Record = {
            "t": self.now(),
            "conn": conn,
            "stream": stream,
            "dir": dir,
            "layer": layer,
            "event": event,
        }
        record.update(fields)
        if self.writer is None:
            self.records.append(record)
        else:
            self.writer.write(record)
        return record

    def hex(self, data: bytes | bytearray | memoryview) -> str:
        """The first `max_hex` bytes as hex (records carry the full length separately)."""
        return bytes(data[: self.max_hex]).hex()

    # ---- connections and protocols -----------------------------------------------------------

    def connection(self, direction: str, local: Any, remote: Any, *, transport: str = "tcp",
                   negotiates: bool = True) -> ConnTrace:
        """Start tracing a new connection: returns its `ConnTrace` (see `p2p.trace.hooks`).
        `negotiates`: the raw bytes start with a multistream negotiation (not so for QUIC)."""
        from p2p.trace.hooks import ConnTrace

        self._next_conn += 1
        return ConnTrace(self, f"c{self._next_conn}", direction, str(local), str(remote),
                         transport=transport, negotiates=negotiates)

    def register_protocol(self, protocol: str, factory: Callable[..., Any]) -> None:
        """Decode streams of `protocol` (exact ID, a prefix ending in "/", or "*" and a suffix)
        with `factory`."""
        self.decoders[protocol] = factory

    def decoder_for(self, protocol: str) -> Callable[..., Any] | None:
        found = self.decoders.get(protocol)
        if found is not None:
            return found
        best = ""
        for key in self.decoders:
            if key.endswith("/") and protocol.startswith(key) and len(key) > len(best):
                best = key
            elif key.startswith("*") and protocol.endswith(key[1:]) and len(key) > len(best):
                best = key
        return self.decoders.get(best) if best else None


def open_tracer(fmt: str = "readable", path: str | None = None, *,
                colour: bool | None = None) -> tuple[Tracer, Callable[[], None]]:
    """A Tracer writing `fmt` ("readable" or "jsonl") to `path` (stderr when None), and the
    function that closes the file. Colour defaults to on only for a terminal."""
    from p2p.trace.readable import ReadableWriter

    if fmt not in ("readable", "jsonl"):
        raise ValueError(f"unknown trace format {fmt!r} (readable or jsonl)")
    out: IO[str] = open(path, "w", encoding="utf-8") if path else sys.stderr
    if fmt == "jsonl":
        writer: Any = JsonLinesWriter(out)
    else:
        if colour is None:
            colour = out.isatty()
        writer = ReadableWriter(out, colour=colour)

    def close() -> None:
        out.flush()
        if path:
            out.close()

    return Tracer(writer), close
