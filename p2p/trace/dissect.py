"""Passive decoders: watch both directions of a byte stream and say what each layer put on it.

They run beside the real protocol machines, never instead of them: the stack's own parsers decide,
these only describe. They are fed bytes as they cross (`feed(dir, data)`, dir "out" or "in") and
emit trace records through a `Scope`; they buffer at most one message per direction (bounded) and
never raise on strange input: bytes they cannot decode are reported as `undecodable` and passed
through as opaque data.

* `MultistreamDissector`: multistream-select 1.0 (https://github.com/multiformats/multistream-select,
  "Protocol"): every message is `uvarint(len) || text || "\\n"`. The dialer's side is read up to its
  proposal and then held until the listener answers it, because a lazy dialer (go's
  `SelectProtoOrFail` fast path, our `LazyStream`) pipelines application bytes right behind the
  proposal: they are application bytes only if the listener echoes the proposal, and another
  proposal if it answers `na`.
* `YamuxDissector`: the 12-byte yamux header (https://github.com/hashicorp/yamux/blob/master/spec.md,
  "Framing"), payloads of Data frames handed to one `StreamDissector` per stream ID, which negotiates
  like the connection did and then hands the stream to the protocol's decoder
  (`p2p.trace.protocols`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from p2p import varint
from p2p.errors import DecodeError

if TYPE_CHECKING:
    from p2p.trace.tracer import Tracer

OTHER = {"out": "in", "in": "out"}

#: Bytes a dissector holds while it waits for the rest of a message (or for the listener's
#: answer to a lazy proposal); past this it gives up decoding and reports opaque bytes.
MAX_HELD = 1 << 20

_MS_HEADER = "/multistream/1.0.0"
_MS_MAX_MESSAGE = 1024  # go-multistream's limit, newline included


class Scope:
    """Where records go: one tracer, one connection label, one stream (or None)."""

    __slots__ = ("tracer", "conn", "stream")

    def __init__(self, tracer: Tracer, conn: str, stream: int | None = None) -> None:
        self.tracer = tracer
        self.conn = conn
        self.stream = stream

    def emit(self, dir: str | None, layer: str, event: str, **fields: Any) -> None:
        self.tracer.emit(self.conn, self.stream, dir, layer, event, **fields)

    def hex(self, data: bytes | bytearray | memoryview) -> str:
        return self.tracer.hex(data)

    def child(self, stream: int | None) -> Scope:
        return Scope(self.tracer, self.conn, stream)


# ---- multistream-select ----------------------------------------------------------------------


def parse_multistream_message(buf: bytes | bytearray) -> tuple[str, int] | None:
    """(text without the newline, wire length) of the message at the start of `buf`; None when
    more bytes are needed; DecodeError when it cannot be a multistream message."""
    res = varint.decode(buf)
    if res is None:
        return None
    length, start = res
    if length < 1 or length > _MS_MAX_MESSAGE:
        raise DecodeError(f"multistream message length {length} out of range")
    end = start + length
    if len(buf) < end:
        return None
    if buf[end - 1] != 0x0A:
        raise DecodeError("multistream message without its newline")
    return bytes(buf[start : end - 1]).decode("utf-8", "replace"), end


class MultistreamDissector:
    """One negotiation seen from outside.

    Calls `on_agreed(protocol, rest)` once the listener accepts, with `rest` the bytes each
    direction sent past the negotiation ({"out": b, "in": b}); `on_agreed(None, rest)` when the
    bytes stop looking like multistream. Bytes the dialer sends after a proposal and before the
    answer (a lazy dialer's first data) go to `on_early(protocol, dir, data)` as they cross, and
    `on_rejected(protocol)` says they were wasted when the answer is `na`.
    """

    def __init__(self, scope: Scope, dialer_dir: str,
                 on_agreed: Callable[[str | None, dict[str, bytes]], None],
                 on_early: Callable[[str, str, bytes], None] | None = None,
                 on_rejected: Callable[[str], None] | None = None) -> None:
        self.scope = scope
        self.dialer_dir = dialer_dir
        self.listener_dir = OTHER[dialer_dir]
        self._on_agreed = on_agreed
        self._on_early = on_early
        self._on_rejected = on_rejected
        self._buf = {"out": bytearray(), "in": bytearray()}
        self._proposal: str | None = None  # the dialer's proposal awaiting an answer
        self.done = False

    def feed(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        if self.done:
            return
        buf = self._buf[dir]
        buf += data
        if len(buf) > MAX_HELD:
            self._give_up(f"more than {MAX_HELD} bytes without a complete message")
            return
        try:
            while not self.done and (self._step(self.dialer_dir) or self._step(self.listener_dir)):
                pass
        except DecodeError as exc:
            self._give_up(str(exc))
            return
        proposal = self._proposal
        dialer_buf = self._buf[self.dialer_dir]
        if (not self.done and proposal is not None and proposal != "ls" and dialer_buf
                and self._on_early is not None):
            # A dialer never sends a second proposal before the answer to the first: what
            # follows a proposal is application data (lazy negotiation) for that protocol.
            early = bytes(dialer_buf)
            dialer_buf.clear()
            self._on_early(proposal, self.dialer_dir, early)

    def _step(self, dir: str) -> bool:
        """Decode one message from `dir` if it is that side's turn and it is all here."""
        if dir == self.dialer_dir and self._proposal is not None:
            return False  # the dialer's next bytes wait for the listener's answer
        buf = self._buf[dir]
        parsed = parse_multistream_message(buf)
        if parsed is None:
            return False
        text, size = parsed
        wire = bytes(buf[:size])
        del buf[:size]
        kind = self._classify(dir, text)
        self.scope.emit(dir, "multistream", "message", text=text, kind=kind, length=size,
                        hex=self.scope.hex(wire))
        if kind == "accept":
            self._agree(text)
        elif kind == "na" and self._rejected is not None and self._on_rejected is not None:
            self._on_rejected(self._rejected)
        return True

    def _classify(self, dir: str, text: str) -> str:
        self._rejected: str | None = None
        if text == _MS_HEADER:
            return "header"
        if dir == self.dialer_dir:
            self._proposal = text
            return "ls" if text == "ls" else "proposal"
        proposal, self._proposal = self._proposal, None
        if text == "na":
            self._rejected = proposal
            return "na"
        if proposal is not None and text == proposal and proposal != "ls":
            return "accept"
        return "ls_reply" if proposal == "ls" else "unexpected"

    def _rest(self) -> dict[str, bytes]:
        rest = {d: bytes(b) for d, b in self._buf.items()}
        for b in self._buf.values():
            b.clear()
        return rest

    def _agree(self, protocol: str) -> None:
        self.done = True
        self.scope.emit(None, "multistream", "agreed", protocol=protocol)
        self._on_agreed(protocol, self._rest())

    def _give_up(self, why: str) -> None:
        self.done = True
        self.scope.emit(None, "multistream", "undecodable", reason=why)
        self._on_agreed(None, self._rest())


# ---- yamux -----------------------------------------------------------------------------------

_YAMUX_HEADER = struct.Struct(">BBHII")
YAMUX_TYPES = ("data", "window_update", "ping", "go_away")
YAMUX_FLAGS = (("SYN", 0x1), ("ACK", 0x2), ("FIN", 0x4), ("RST", 0x8))
GO_AWAY_CODES = {0: "normal", 1: "protocol_error", 2: "internal_error"}


def flag_names(flags: int) -> list[str]:
    return [name for name, bit in YAMUX_FLAGS if flags & bit]


class _Direction:
    __slots__ = ("header", "payload_left", "payload_stream", "fin_after", "broken")

    def __init__(self) -> None:
        self.header = bytearray()
        self.payload_left = 0
        self.payload_stream = 0
        self.fin_after = False
        self.broken = False


class YamuxDissector:
    """Both directions of a yamux session: every frame decoded, stream payloads passed on."""

    def __init__(self, scope: Scope, stream_factory: Callable[[int, str], Any]) -> None:
        self.scope = scope
        self._new_stream = stream_factory
        self._dirs = {"out": _Direction(), "in": _Direction()}
        self.streams: dict[int, Any] = {}
        self._fins: dict[int, set[str]] = {}

    def feed(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        state = self._dirs[dir]
        if state.broken:
            return
        view = memoryview(data).cast("B")
        pos, end = 0, len(view)
        while pos < end:
            if state.payload_left:
                take = min(state.payload_left, end - pos)
                stream = self.streams.get(state.payload_stream)
                if stream is not None:
                    stream.feed(dir, view[pos : pos + take])
                pos += take
                state.payload_left -= take
                if not state.payload_left and state.fin_after:
                    state.fin_after = False
                    self._fin(dir, state.payload_stream)
                continue
            take = min(12 - len(state.header), end - pos)
            state.header += view[pos : pos + take]
            pos += take
            if len(state.header) < 12:
                break
            header = bytes(state.header)
            state.header.clear()
            self._frame(dir, state, header)
            if state.broken:
                return

    def _frame(self, dir: str, state: _Direction, header: bytes) -> None:
        version, ftype, flags, stream_id, length = _YAMUX_HEADER.unpack(header)
        if version != 0 or ftype >= len(YAMUX_TYPES):
            state.broken = True
            self.scope.emit(dir, "yamux", "undecodable", hex=header.hex(),
                            reason=f"version {version} type {ftype}")
            return
        type_name = YAMUX_TYPES[ftype]
        on_stream = ftype <= 1  # data and window_update name a stream; ping/go_away the session
        fields: dict[str, Any] = {"type": type_name, "flags": flag_names(flags),
                                  "stream_id": stream_id, "length": length, "hex": header.hex()}
        if type_name == "go_away":
            fields["code"] = GO_AWAY_CODES.get(length, "unknown")
        self.scope.tracer.emit(self.scope.conn, stream_id if on_stream else None, dir, "yamux",
                               "frame", **fields)
        if not on_stream:
            return
        if flags & 0x1 and stream_id not in self.streams:  # SYN: the sender opened the stream
            self.streams[stream_id] = self._new_stream(stream_id, dir)
        if flags & 0x8:  # RST: both directions are over
            self._forget(stream_id)
        if ftype == 0 and length:
            state.payload_left = length
            state.payload_stream = stream_id
            state.fin_after = bool(flags & 0x4)
        elif flags & 0x4:
            self._fin(dir, stream_id)

    def _fin(self, dir: str, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.end(dir)
        seen = self._fins.setdefault(stream_id, set())
        seen.add(dir)
        if len(seen) == 2:
            self._forget(stream_id)

    def _forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self._fins.pop(stream_id, None)


class StreamDissector:
    """One muxed stream: multistream-select, then the negotiated protocol's decoder (created at
    the proposal, so a lazy dialer's first bytes are decoded as they cross)."""

    def __init__(self, scope: Scope, opener_dir: str) -> None:
        self.scope = scope
        self.opener_dir = opener_dir
        self.protocol: str | None = None
        self._decoder: Any = None
        self._agreed_on = False
        self._ms = MultistreamDissector(scope, opener_dir, self._agreed, self._early,
                                        self._rejected)

    def feed(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        if self._agreed_on:
            self._decoder.feed(dir, data)
        else:
            self._ms.feed(dir, data)

    def end(self, dir: str) -> None:
        if self._decoder is not None:
            self._decoder.end(dir)

    def _make(self, protocol: str | None) -> Any:
        from p2p.trace.protocols import AppDecoder

        factory = self.scope.tracer.decoder_for(protocol) if protocol else None
        return (factory or AppDecoder)(self.scope, protocol or "", self.opener_dir)

    def _early(self, protocol: str, dir: str, data: bytes) -> None:
        if self._decoder is None or self.protocol != protocol:
            self.protocol = protocol
            self._decoder = self._make(protocol)
        self._decoder.feed(dir, data)

    def _rejected(self, protocol: str) -> None:
        self._decoder = None
        self.protocol = None

    def _agreed(self, protocol: str | None, rest: dict[str, bytes]) -> None:
        if self._decoder is None or self.protocol != protocol:
            self.protocol = protocol
            self._decoder = self._make(protocol)
        self._agreed_on = True
        for dir in (self.opener_dir, OTHER[self.opener_dir]):
            if rest[dir]:
                self._decoder.feed(dir, rest[dir])
