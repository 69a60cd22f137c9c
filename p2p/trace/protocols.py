"""Decoders for what runs on a negotiated stream: identify, ping, length-prefixed JSON, raw bytes.

Each decoder is built with `(scope, protocol, opener_dir)` and fed both directions of one stream
(`feed(dir, data)`, `end(dir)` at that direction's FIN). Like the dissectors they only describe:
bounded buffers, no exceptions on bad input.

* identify (https://github.com/libp2p/specs/blob/master/identify/README.md, "The Identify
  Message"): uvarint-delimited `Identify` protobufs; each becomes one `message` record with its
  fields decoded (public key type, listen and observed addresses, protocols, versions).
* ping (https://github.com/libp2p/specs/blob/master/ping/ping.md): 32-byte payloads; the opener's
  are `ping`, the other side's `pong`, with the round trip the trace saw.
* u32-length-prefixed JSON (the masa worker protocol registers it as layer `worker`): one `frame`
  record per message with the 4-byte prefix and the parsed JSON.
* a JSON document to EOF, or JSON lines (masa's membership protocols register them as layer
  `membership`): one `message` (or `line`) record per document.
* Kademlia (`*/kad/1.0.0`) and GossipSub/FloodSub RPCs: uvarint-delimited protobufs, decoded with
  the stack's own codecs (`p2p.kad.messages`, `p2p.pubsub.rpc`).
* anything else: `data` records with the length and the first bytes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from p2p import varint
from p2p.errors import DecodeError, P2PError
from p2p.trace.dissect import OTHER, Scope

#: A message body larger than this is reported by its length only (its bytes are skipped).
MAX_DECODED_MESSAGE = 1 << 20


class AppDecoder:
    """Opaque application bytes: one record per piece as it crosses."""

    layer = "app"

    def __init__(self, scope: Scope, protocol: str, opener_dir: str) -> None:
        self.scope = scope
        self.protocol = protocol
        self.opener_dir = opener_dir

    def feed(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        self.scope.emit(dir, self.layer, "data", protocol=self.protocol, length=len(data),
                        hex=self.scope.hex(data))

    def end(self, dir: str) -> None:
        pass


class _Framed(AppDecoder, ABC):
    """Messages behind a length prefix, per direction; subclasses say how to read the prefix and
    what to make of a body."""

    def __init__(self, scope: Scope, protocol: str, opener_dir: str) -> None:
        super().__init__(scope, protocol, opener_dir)
        self._buf = {"out": bytearray(), "in": bytearray()}
        self._skip = {"out": 0, "in": 0}
        self._broken = {"out": False, "in": False}

    @abstractmethod
    def prefix(self, buf: bytearray) -> tuple[int, int] | None:
        """(body length, prefix length), None when incomplete; DecodeError when invalid."""

    @abstractmethod
    def message(self, dir: str, prefix: bytes, body: bytes) -> None:
        """Record one whole message of direction `dir` (its prefix bytes and its body)."""

    def feed(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        if self._broken[dir]:
            super().feed(dir, data)
            return
        view = memoryview(data).cast("B")
        if self._skip[dir]:
            n = min(self._skip[dir], len(view))
            self._skip[dir] -= n
            view = view[n:]
        buf = self._buf[dir]
        buf += view
        while buf:
            try:
                head = self.prefix(buf)
            except DecodeError as exc:
                self._broken[dir] = True
                self.scope.emit(dir, self.layer, "undecodable", reason=str(exc),
                                hex=self.scope.hex(buf))
                buf.clear()
                return
            if head is None:
                return
            length, plen = head
            if length > MAX_DECODED_MESSAGE:
                self.scope.emit(dir, self.layer, "message", length=length,
                                prefix=bytes(buf[:plen]).hex(), skipped=True)
                have = len(buf) - plen
                self._skip[dir] = max(0, length - have)
                del buf[: plen + min(length, have)]
                continue
            if len(buf) < plen + length:
                return
            prefix, body = bytes(buf[:plen]), bytes(buf[plen : plen + length])
            del buf[: plen + length]
            self.message(dir, prefix, body)


class _Delimited(_Framed):
    """uvarint-delimited messages (protobufs, as identify, kad and pubsub write them)."""

    def prefix(self, buf: bytearray) -> tuple[int, int] | None:
        res = varint.decode(buf)
        if res is None:
            return None
        return res[0], res[1]


class IdentifyDecoder(_Delimited):
    layer = "identify"

    def message(self, dir: str, prefix: bytes, body: bytes) -> None:
        from p2p.protocols.identify import IdentifyInfo, decode_multiaddr

        info = IdentifyInfo()
        fields: dict[str, Any] = {"protocol": self.protocol, "length": len(body)}
        try:
            info.merge(body)
        except P2PError as exc:  # IdentifyError: not a protobuf, or strings that are not UTF-8
            self.scope.emit(dir, self.layer, "undecodable", reason=str(exc),
                            hex=self.scope.hex(body))
            return
        if info.public_key is not None:
            fields.update(_describe_key(info.public_key))
        fields["protocol_version"] = info.protocol_version
        fields["agent_version"] = info.agent_version
        fields["listen_addrs"] = [str(decode_multiaddr(a) or a.hex()) for a in info.listen_addrs]
        observed = decode_multiaddr(info.observed_addr)
        fields["observed_addr"] = str(observed) if observed else None
        fields["protocols"] = list(info.protocols)
        if info.signed_peer_record is not None:
            fields["signed_peer_record_length"] = len(info.signed_peer_record)
        self.scope.emit(dir, self.layer, "message", **fields)


def _describe_key(protobuf_key: bytes) -> dict[str, Any]:
    """Key type (as the key protobuf names it), key bytes and the peer ID they make."""
    from p2p.identity import KeyType, PeerId, PublicKey

    try:
        key = PublicKey.from_protobuf(protobuf_key)
    except P2PError as exc:
        return {"public_key_error": str(exc), "public_key": protobuf_key.hex()}
    return {"public_key_type": KeyType(key.key_type).name, "public_key": key.raw().hex(),
            "peer_id": str(PeerId.from_public_key(key))}


class PingDecoder(AppDecoder):
    layer = "ping"
    SIZE = 32

    def __init__(self, scope: Scope, protocol: str, opener_dir: str) -> None:
        super().__init__(scope, protocol, opener_dir)
        self._buf = {"out": bytearray(), "in": bytearray()}
        self._sent: list[tuple[bytes, float]] = []  # pings awaiting their pong (bounded below)
        self._clock = scope.tracer.now

    def feed(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        buf = self._buf[dir]
        buf += data
        while len(buf) >= self.SIZE:
            payload = bytes(buf[: self.SIZE])
            del buf[: self.SIZE]
            if dir == self.opener_dir:
                if len(self._sent) < 64:
                    self._sent.append((payload, self._clock()))
                self.scope.emit(dir, self.layer, "ping", payload=payload.hex())
                continue
            fields: dict[str, Any] = {"payload": payload.hex()}
            if self._sent:
                sent, at = self._sent.pop(0)
                fields["matches"] = sent == payload
                fields["rtt_ms"] = round((self._clock() - at) * 1000, 3)
            self.scope.emit(dir, self.layer, "pong", **fields)


class JsonFrameDecoder(_Framed):
    """A 4-byte big-endian length, then that many bytes of JSON (the masa worker protocol)."""

    layer = "worker"

    def prefix(self, buf: bytearray) -> tuple[int, int] | None:
        if len(buf) < 4:
            return None
        return int.from_bytes(buf[:4], "big"), 4

    def message(self, dir: str, prefix: bytes, body: bytes) -> None:
        fields: dict[str, Any] = {"role": "request" if dir == self.opener_dir else "response",
                                  "length": len(body), "prefix": prefix.hex()}
        try:
            fields["json"] = json.loads(body)
        except (ValueError, RecursionError):  # not JSON (or nested past the parser's depth)
            fields["text"] = body[: self.scope.tracer.max_hex].decode("utf-8", "replace")
        self.scope.emit(dir, self.layer, "frame", **fields)


class JsonDocumentDecoder(AppDecoder):
    """One JSON document per direction, ended by that direction's FIN (masa's oracle_protocol and
    gossip streams); with `lines`, one JSON document per newline-terminated line instead (masa's
    nodeDataSync)."""

    layer = "json"
    lines = False

    def __init__(self, scope: Scope, protocol: str, opener_dir: str) -> None:
        super().__init__(scope, protocol, opener_dir)
        self._buf = {"out": bytearray(), "in": bytearray()}
        self._too_long = {"out": False, "in": False}

    def feed(self, dir: str, data: bytes | bytearray | memoryview) -> None:
        buf = self._buf[dir]
        if self._too_long[dir]:
            return
        buf += data
        if self.lines:
            while (end := buf.find(b"\n")) >= 0:
                line = bytes(buf[:end])
                del buf[: end + 1]
                if line.strip():
                    self._document(dir, line, "line")
        if len(buf) > MAX_DECODED_MESSAGE:
            self._too_long[dir] = True
            self.scope.emit(dir, self.layer, "undecodable", protocol=self.protocol,
                            reason=f"more than {MAX_DECODED_MESSAGE} bytes in one document")
            buf.clear()

    def end(self, dir: str) -> None:
        buf = self._buf[dir]
        if buf.strip():
            self._document(dir, bytes(buf), "line" if self.lines else "message")
        buf.clear()

    def _document(self, dir: str, body: bytes, event: str) -> None:
        fields: dict[str, Any] = {"protocol": self.protocol, "length": len(body)}
        try:
            fields["json"] = json.loads(body)
        except (ValueError, RecursionError):
            fields["text"] = body[: self.scope.tracer.max_hex].decode("utf-8", "replace")
        self.scope.emit(dir, self.layer, event, **fields)


def json_documents(layer: str, *, lines: bool = False) -> Callable[[Scope, str, str], Any]:
    """A JsonDocumentDecoder factory reporting under `layer` (`lines`: one document per line)."""

    def make(scope: Scope, protocol: str, opener_dir: str) -> JsonDocumentDecoder:
        decoder = JsonDocumentDecoder(scope, protocol, opener_dir)
        decoder.layer = layer
        decoder.lines = lines
        return decoder

    return make


def _peer(raw: bytes) -> str:
    from p2p.identity import PeerId

    try:
        return str(PeerId.from_bytes(raw))
    except P2PError:
        return raw.hex()


def _addr(raw: bytes) -> str:
    from p2p.protocols.identify import decode_multiaddr

    return str(decode_multiaddr(raw) or raw.hex())


def _bytes_text(raw: bytes, limit: int) -> str:
    """Printable ASCII as it is (record keys like /pk/..., topics), anything else as hex."""
    if raw and all(32 <= b < 127 for b in raw):
        return raw[:limit].decode("ascii")
    return raw[:limit].hex()


class KadDecoder(_Delimited):
    """Kademlia RPCs (https://github.com/libp2p/specs/blob/master/kad-dht/README.md, "RPC
    messages"): uvarint-delimited `Message`s, the opener's a request, the other's a response."""

    layer = "kad"

    def message(self, dir: str, prefix: bytes, body: bytes) -> None:
        from p2p.kad.messages import Message, MessageType

        try:
            msg = Message.decode(body)
        except P2PError as exc:
            self.scope.emit(dir, self.layer, "undecodable", reason=str(exc), hex=self.scope.hex(body))
            return
        limit = self.scope.tracer.max_hex
        try:
            type_name = MessageType(msg.type).name
        except ValueError:
            type_name = str(int(msg.type))
        fields: dict[str, Any] = {
            "role": "request" if dir == self.opener_dir else "response",
            "type": type_name, "length": len(body),
            "key": _bytes_text(msg.key, limit),
            "closer_peers": [{"id": _peer(p.id), "addrs": [_addr(a) for a in p.addrs]}
                             for p in msg.closer_peers],
            "provider_peers": [{"id": _peer(p.id), "addrs": [_addr(a) for a in p.addrs]}
                               for p in msg.provider_peers],
        }
        if msg.record is not None:
            fields["record"] = {"key": _bytes_text(msg.record.key, limit),
                                "value_length": len(msg.record.value),
                                "value": _bytes_text(msg.record.value, limit)}
        self.scope.emit(dir, self.layer, "message", **fields)


class PubsubDecoder(_Delimited):
    """GossipSub / FloodSub RPCs (https://github.com/libp2p/specs/blob/master/pubsub/README.md,
    "The RPC"; control messages: pubsub/gossipsub/gossipsub-v1.0.md and v1.1): uvarint-delimited
    `RPC`s, each side writing on the stream it opened."""

    layer = "pubsub"

    def message(self, dir: str, prefix: bytes, body: bytes) -> None:
        from p2p.pubsub.rpc import RPC

        try:
            rpc = RPC.decode(body)
        except P2PError as exc:
            self.scope.emit(dir, self.layer, "undecodable", reason=str(exc), hex=self.scope.hex(body))
            return
        limit = self.scope.tracer.max_hex
        fields: dict[str, Any] = {"length": len(body)}
        if rpc.subscriptions:
            fields["subscriptions"] = [{"subscribe": s.subscribe, "topic": s.topic}
                                       for s in rpc.subscriptions]
        if rpc.publish:
            fields["publish"] = [
                {"topic": m.topic, "from": _peer(m.from_peer) if m.from_peer else None,
                 "seqno": m.seqno.hex() if m.seqno else None,
                 "data_length": len(m.data or b""), "data": _bytes_text(m.data or b"", limit),
                 "signed": m.signature is not None}
                for m in rpc.publish]
        control = rpc.control
        if control:
            fields["control"] = {
                "ihave": [{"topic": h.topic, "ids": len(h.ids)} for h in control.ihave],
                "iwant": sum(len(ids) for ids in control.iwant),
                "graft": list(control.graft),
                "prune": [{"topic": p.topic, "peers": len(p.peers), "backoff": p.backoff}
                          for p in control.prune],
                "idontwant": sum(len(ids) for ids in control.idontwant),
            }
        self.scope.emit(dir, self.layer, "rpc", **fields)


def json_frames(layer: str) -> Callable[[Scope, str, str], JsonFrameDecoder]:
    """A JsonFrameDecoder factory reporting under `layer`."""

    def make(scope: Scope, protocol: str, opener_dir: str) -> JsonFrameDecoder:
        decoder = JsonFrameDecoder(scope, protocol, opener_dir)
        decoder.layer = layer
        return decoder

    return make


def default_decoders() -> dict[str, Callable[..., Any]]:
    """By protocol ID; a key starting with "*" matches IDs ending with the rest (any DHT prefix)."""
    return {
        "/ipfs/id/1.0.0": IdentifyDecoder,
        "/ipfs/id/push/1.0.0": IdentifyDecoder,
        "/ipfs/ping/1.0.0": PingDecoder,
        "*/kad/1.0.0": KadDecoder,
        "/meshsub/1.2.0": PubsubDecoder,
        "/meshsub/1.1.0": PubsubDecoder,
        "/meshsub/1.0.0": PubsubDecoder,
        "/floodsub/1.0.0": PubsubDecoder,
    }


__all__ = ["AppDecoder", "IdentifyDecoder", "JsonDocumentDecoder", "JsonFrameDecoder", "KadDecoder",
           "PingDecoder", "PubsubDecoder", "OTHER", "default_decoders", "json_documents", "json_frames"]
