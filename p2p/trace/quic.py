"""Tracing a QUIC connection: a subclass of the connection, chosen once per connection.

QUIC (https://github.com/libp2p/specs/blob/master/quic/README.md; RFC 9000) replaces TCP, Noise
and yamux at once, and its packets are encrypted from the first one (RFC 9001), so the trace
shows what can be known from outside and from inside the stack:

* `quic datagram` records, each UDP datagram with its first packet's header form and type (the
  first byte: long header Initial / 0-RTT / Handshake / Retry, or a short 1-RTT header; RFC 9000
  section 17);
* `quic handshake_complete`: the ALPN (`libp2p`) and the peer the TLS certificate proved
  (https://github.com/libp2p/specs/blob/master/tls/tls.md, "Peer Authentication");
* every QUIC stream's bytes go through the same dissectors as a yamux stream's: multistream,
  then the negotiated protocol.
"""

from __future__ import annotations

from typing import Any

from p2p.trace.dissect import StreamDissector

_LONG_TYPES = ("initial", "0rtt", "handshake", "retry")


def packet_kind(first_byte: int) -> str:
    """The header form and type of a QUIC v1 packet from its first byte (RFC 9000, 17.2, 17.3)."""
    if first_byte & 0x80:
        return _LONG_TYPES[(first_byte >> 4) & 0x3]
    return "1rtt"


def traced_conn_class() -> type:
    """The traced QuicConn subclass (built on first use: p2p.transport.quic imports aioquic)."""
    global _TRACED
    if _TRACED is None:
        _TRACED = _build()
    return _TRACED


_TRACED: type | None = None


def _build() -> type:
    from p2p.identity import KeyType
    from p2p.transport.quic import QuicConn, QuicStream

    class TracedQuicStream(QuicStream):
        __slots__ = ("_dissector",)
        _dissector: StreamDissector

        def _on_data(self, data: bytes, end: bool) -> None:
            if data:
                self._dissector.feed("in", data)
            if end:
                self._dissector.end("in")
            super()._on_data(data, end)

        async def send(self, item: bytes | bytearray | memoryview) -> None:
            self._check_writable()
            self._dissector.feed("out", bytes(item))
            await super().send(item)

        def send_nowait(self, data: bytes) -> int:
            sent = super().send_nowait(data)
            if sent:
                self._dissector.feed("out", bytes(data[:sent]))
            return sent

        async def send_eof(self) -> None:
            if not self._local_eof:
                self._dissector.end("out")
            await super().send_eof()

    class TracedQuicConn(QuicConn):
        """QuicConn that reports datagrams, the handshake and its streams' contents."""

        def __init__(self, endpoint: Any, quic: Any, remote: tuple[str, int], direction: str,
                     local_peer: Any, *, tracer: Any) -> None:
            super().__init__(endpoint, quic, remote, direction, local_peer)
            self._trace = tracer.connection(direction, self.local_addr, self.remote_addr,
                                            transport="quic", negotiates=False)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self._datagram("in", data)
            super().datagram_received(data, addr)

        async def _transmit(self) -> None:
            quic = self.quic
            original = quic.datagrams_to_send

            def traced(now: float) -> list[Any]:
                out = original(now)
                for data, _addr in out:
                    self._datagram("out", data)
                return out

            quic.datagrams_to_send = traced  # type: ignore[method-assign]  # undone below
            try:
                await super()._transmit()
            finally:
                del quic.datagrams_to_send

        def _datagram(self, dir: str, data: bytes) -> None:
            kind = packet_kind(data[0]) if data else "empty"
            self._trace.scope.emit(dir, "quic", "datagram", length=len(data), packet=kind,
                                   hex=self._trace.scope.hex(data[:16]))

        def _on_handshake(self, ev: Any) -> None:
            super()._on_handshake(ev)
            key = self.remote_public_key
            self._trace.scope.emit(
                None, "quic", "handshake_complete", alpn=ev.alpn_protocol,
                remote_peer=str(self.remote_peer) if self.remote_peer else None,
                identity_key_type=KeyType(key.key_type).name if key is not None else None)

        def _new_stream(self, sid: int) -> QuicStream:
            st = TracedQuicStream(self, sid)
            ours = (sid & 1) == (0 if self.direction == "outbound" else 1)
            st._dissector = StreamDissector(self._trace.scope.child(sid), "out" if ours else "in")
            self._streams[sid] = st
            self.quic.window_for(sid)
            return st

        def _on_ended(self) -> None:
            self._trace.raw_event(None, "close", code=self.close_code, reason=self.close_reason)
            super()._on_ended()

    return TracedQuicConn
