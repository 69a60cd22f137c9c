"""Where tracing attaches: two wrappers per traced connection, inserted once, nowhere else.

* The raw byte stream (TCP) is wrapped by `TracedStream`: every read and write becomes a `tcp`
  record, and until security is agreed the bytes also go through a multistream dissector.
* The Noise handshake core is `TracedNoiseHandshake`, a subclass of `NoiseHandshake` that reports
  each handshake message with its parts and its payload decoded, and whose transport
  (`TracedNoiseTransport`) reports every frame with plaintext and ciphertext sizes and passes the
  plaintext to the dissectors above Noise (multistream for the muxer when it was not chosen in the
  handshake, then yamux, then each stream's multistream and protocol).

Everything above Noise is decoded passively from the plaintext, so the yamux session, the Host
and the protocol handlers run their ordinary code: an untraced connection never meets any of
this (the Host asks `tracer is None` once per connection), and a traced one differs only in the
two objects above. Spec references: Noise framing and payload,
https://github.com/libp2p/specs/blob/master/noise/README.md ("Wire Format", "The libp2p Handshake
Payload"); the XX pattern, https://noiseprotocol.org/noise.html (section 7.5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from p2p.errors import DecodeError
from p2p.security.noise import (
    DH_LEN,
    MAX_PLAINTEXT,
    TAG_LEN,
    NoiseHandshake,
    NoiseTransport,
)
from p2p.security.noise_payload import NoiseHandshakePayload
from p2p.trace.dissect import OTHER, MultistreamDissector, Scope, StreamDissector, YamuxDissector
from p2p.trace.protocols import _describe_key

YAMUX = "/yamux/1.0.0"


class ConnTrace:
    """The trace of one connection: the label, the dissectors, the wrappers' entry points."""

    def __init__(self, tracer: Any, label: str, direction: str, local: str, remote: str,
                 *, transport: str = "tcp", negotiates: bool = True) -> None:
        self.tracer = tracer
        self.label = label
        self.direction = direction
        self.transport = transport
        self.scope = Scope(tracer, label)
        self.dialer_dir = "out" if direction == "outbound" else "in"
        self._raw: MultistreamDissector | None = MultistreamDissector(
            self.scope, self.dialer_dir, self._security_agreed) if negotiates else None
        self._plain: Any = None
        self.yamux: YamuxDissector | None = None
        self._closed = False
        self.scope.emit(None, transport, "open", direction=direction, local=local, remote=remote)

    # ---- raw bytes ---------------------------------------------------------------------------

    def wrap(self, stream: Any) -> Any:
        """The traced version of a raw byte stream (push-capable if `stream` is)."""
        cls = TracedPushStream if hasattr(stream, "set_receiver") else TracedStream
        return cls(stream, self)

    def raw(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        self.scope.emit(dir, self.transport, "data", length=len(data), hex=self.scope.hex(data))
        if self._raw is not None:
            try:
                self._raw.feed(dir, data)
            except Exception as exc:  # a tracing bug must not break the connection it watches
                self._raw = None
                self._decoder_failed(exc)

    def _decoder_failed(self, exc: Exception) -> None:
        self.scope.emit(None, "trace", "decoder_error", error=repr(exc))

    def _security_agreed(self, protocol: str | None, rest: dict[str, bytes]) -> None:
        self._raw = None  # the security protocol's own records take over from here

    def raw_event(self, dir: str | None, event: str, **fields: Any) -> None:
        if event == "close":
            if self._closed:
                return
            self._closed = True
        self.scope.emit(dir, self.transport, event, **fields)

    # ---- noise -------------------------------------------------------------------------------

    def noise_handshake(self, identity: Any, *, proposed: bool = False,
                        **kwargs: Any) -> TracedNoiseHandshake:
        """The Noise core, reporting from here: security is agreed (or was never negotiated),
        or, `proposed`, is not yet on the wire: a lazy dialer's first message goes with its
        proposal, and the listener's second with its acceptance (the multistream dissector
        then ends itself when it sees the acceptance)."""
        if not proposed:
            self._raw = None
        return TracedNoiseHandshake(self, identity, **kwargs)

    def secured(self, early_muxer: str | None) -> None:
        """The handshake is over: the plaintext is yamux, or multistream choosing it first."""
        if early_muxer == YAMUX:
            self._plain = self._start_yamux()
        else:
            self._plain = MultistreamDissector(self.scope, self.dialer_dir, self._muxer_agreed,
                                               self._muxer_early)

    def _muxer_early(self, protocol: str, dir: str, data: bytes) -> None:
        if protocol == YAMUX:
            if self.yamux is None:
                self._start_yamux()
            assert self.yamux is not None
            self.yamux.feed(dir, data)

    def _muxer_agreed(self, protocol: str | None, rest: dict[str, bytes]) -> None:
        self._plain = (self.yamux or self._start_yamux()) if protocol == YAMUX else None
        if self._plain is not None:
            for dir in (self.dialer_dir, OTHER[self.dialer_dir]):
                if rest[dir]:
                    self._plain.feed(dir, rest[dir])

    def _start_yamux(self) -> YamuxDissector:
        self.yamux = YamuxDissector(self.scope, self._new_stream)
        return self.yamux

    def _new_stream(self, stream_id: int, opener_dir: str) -> StreamDissector:
        return StreamDissector(self.scope.child(stream_id), opener_dir)

    def plaintext(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        if self._plain is not None:
            try:
                self._plain.feed(dir, data)
            except Exception as exc:  # as in `raw`: stop decoding, keep the connection
                self._plain = None
                self._decoder_failed(exc)


class TracedStream:
    """A raw byte stream that reports what crosses it (anyio ByteStream words)."""

    def __init__(self, inner: Any, trace: ConnTrace) -> None:
        self.inner = inner
        self._trace = trace

    async def receive(self, max_bytes: int = 65536) -> bytes:
        import anyio

        try:
            data: bytes = await self.inner.receive(max_bytes)
        except anyio.EndOfStream:
            self._trace.raw_event("in", "eof")
            raise
        self._trace.raw("in", data)
        return data

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        self._trace.raw("out", item)
        await self.inner.send(item)

    async def send_eof(self) -> None:
        self._trace.raw_event("out", "eof")
        await self.inner.send_eof()

    async def aclose(self) -> None:
        self._trace.raw_event(None, "close")
        await self.inner.aclose()

    def extra(self, attribute: Any, *default: Any) -> Any:
        return self.inner.extra(attribute, *default)


class TracedPushStream(TracedStream):
    """`TracedStream` for a stream that can push its reads and write without waiting (our asyncio
    TCP stream): the same calls, each reported, then passed on."""

    def set_receiver(self, on_data: Callable[[bytes], None] | None,
                     on_end: Callable[[BaseException | None], None] | None = None) -> bool:
        if on_data is None:
            return bool(self.inner.set_receiver(None, None))
        trace = self._trace

        def data(chunk: bytes) -> None:
            trace.raw("in", chunk)
            on_data(chunk)

        def end(exc: BaseException | None) -> None:
            if exc is None:
                trace.raw_event("in", "eof")
            else:
                trace.raw_event(None, "error", error=repr(exc))
            if on_end is not None:
                on_end(exc)

        return bool(self.inner.set_receiver(data, end))

    def pause_receiving(self) -> None:
        self.inner.pause_receiving()

    def resume_receiving(self) -> None:
        self.inner.resume_receiving()

    def send_ready(self) -> bool:
        return bool(self.inner.send_ready())

    def try_send(self, item: bytes | bytearray | memoryview) -> bool:
        if not self.inner.try_send(item):
            return False
        self._trace.raw("out", item)
        return True


def _message_parts(index: int, message: bytes) -> dict[str, Any]:
    """The XX message's tokens as they travel: msg1 `e`, msg2 `e, ee, s, es`, msg3 `s, se`
    (only `e` and `s` put bytes on the wire; `s` is encrypted from msg2 on, 32 + 16 bytes)."""
    parts: dict[str, Any] = {}
    pos = 0
    if index in (1, 2):
        parts["ephemeral_key"] = message[:DH_LEN].hex()
        pos = DH_LEN
    if index in (2, 3):
        parts["encrypted_static_key"] = message[pos : pos + DH_LEN + TAG_LEN].hex()
        pos += DH_LEN + TAG_LEN
    payload = message[pos:]
    if index == 1:
        parts["payload_length"] = len(payload)  # sent in clear: no key yet (empty in libp2p)
    else:
        parts["encrypted_payload_length"] = len(payload)
    return parts


def describe_payload(payload: bytes) -> dict[str, Any]:
    """The libp2p handshake payload decoded: identity key (type and bytes), signature, muxers."""
    try:
        decoded = NoiseHandshakePayload.decode(payload)
    except DecodeError as exc:
        return {"payload_error": str(exc)}
    key = _describe_key(decoded.identity_key)
    fields: dict[str, Any] = {
        "payload_length": len(payload),
        "identity_key_type": key.get("public_key_type"),
        "identity_key": key.get("public_key"),
        "peer_id": key.get("peer_id"),
        "identity_sig": decoded.identity_sig.hex(),
        "has_extensions": decoded.extensions is not None,
        "stream_muxers": list(decoded.extensions.stream_muxers) if decoded.extensions else [],
    }
    if decoded.extensions is not None and decoded.extensions.webtransport_certhashes:
        fields["webtransport_certhashes"] = [
            h.hex() for h in decoded.extensions.webtransport_certhashes]
    return fields


class TracedNoiseHandshake(NoiseHandshake):
    """`NoiseHandshake` that reports each message: its parts, and the payload in plaintext (ours
    as we built it, the peer's as we decrypted it)."""

    def __init__(self, trace: ConnTrace, identity: Any, **kwargs: Any) -> None:
        self._trace = trace
        self._messages = 0
        self._deferred: list[bytes] | None = None
        self._received_payload: bytes | None = None
        super().__init__(identity, **kwargs)

    def _record(self, dir: str, message: bytes, payload: bytes | None,
                error: BaseException | None = None) -> None:
        self._messages += 1
        index = self._messages
        fields: dict[str, Any] = {"message": index, "length": len(message) + 2}
        fields.update(_message_parts(index, message))
        if payload is not None and index > 1:
            fields.update(describe_payload(payload))
        if error is not None:
            fields["error"] = str(error)
        self._trace.scope.emit(dir, "noise", "handshake", **fields)

    def _queue(self, message: bytes) -> None:
        super()._queue(message)
        if self._deferred is not None:  # written while reading the peer's message: report after
            self._deferred.append(message)
        else:
            self._record("out", message, self._payload)

    def _accept_payload(self, payload: bytes) -> None:
        self._received_payload = payload
        super()._accept_payload(payload)

    def _process(self, message: bytes) -> None:
        self._deferred = []
        self._received_payload = None
        try:
            super()._process(message)
        except BaseException as exc:
            self._record("in", message, self._received_payload, exc)
            raise
        finally:
            deferred, self._deferred = self._deferred, None
        self._record("in", message, self._received_payload)
        for out in deferred:
            self._record("out", out, self._payload)

    def receive_data(self, data: bytes) -> list[Any]:
        events = super().receive_data(data)
        if events:
            done = events[0]
            self._trace.scope.emit(None, "noise", "handshake_complete",
                                   remote_peer=str(done.remote_peer),
                                   early_muxer=done.selected_muxer)
            self._trace.secured(done.selected_muxer)
        return events

    def to_transport(self) -> NoiseTransport:
        transport = super().to_transport()
        return TracedNoiseTransport(transport._send, transport._recv, self._trace)


class TracedNoiseTransport(NoiseTransport):
    """`NoiseTransport` that reports each frame (plaintext, ciphertext and wire sizes) and hands
    the plaintext to the dissectors of the layers above."""

    __slots__ = ("_trace",)

    def __init__(self, send: Any, recv: Any, trace: ConnTrace) -> None:
        super().__init__(send, recv)
        self._trace = trace

    def _frame(self, dir: str, plaintext: bytes | memoryview) -> None:
        size = len(plaintext)
        self._trace.scope.emit(dir, "noise", "frame", plaintext_length=size,
                               ciphertext_length=size + TAG_LEN, wire_length=size + TAG_LEN + 2)
        self._trace.plaintext(dir, plaintext)

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytearray:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), MAX_PLAINTEXT):
            self._frame("out", view[start : start + MAX_PLAINTEXT])
        return super().encrypt(data)

    def encrypt_pieces_into(self, pieces: Sequence[bytes | memoryview], out: bytearray,
                            stage: bytearray) -> int:
        joined = memoryview(b"".join(pieces))  # the same frames as `encrypt` of the join
        for start in range(0, len(joined), MAX_PLAINTEXT):
            self._frame("out", joined[start : start + MAX_PLAINTEXT])
        return super().encrypt_pieces_into(pieces, out, stage)

    def decrypt_frames(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        frames = super().decrypt_frames(data)
        for frame in frames:
            self._frame("in", frame)
        return frames


def noise_handshake_factory(trace: ConnTrace | None) -> Callable[..., NoiseHandshake]:
    """What `secure_outbound`/`secure_inbound` build: the plain core unless traced."""
    if trace is None:
        return NoiseHandshake
    return trace.noise_handshake


__all__ = ["ConnTrace", "TracedNoiseHandshake", "TracedNoiseTransport", "TracedPushStream",
           "TracedStream", "describe_payload", "noise_handshake_factory"]
