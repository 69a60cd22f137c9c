"""The kad-dht `Message` protobuf (kad-dht pb/dht.proto, go-libp2p-record pb/record.proto).

Field numbers: Message {type 1 enum, key 2 bytes, record 3 Record, closerPeers 8, providerPeers 9,
clusterLevelRaw 10 int32}; Peer {id 1 bytes, addrs 2 repeated bytes, connection 3 enum};
Record {key 1, value 2, timeReceived 5 string}. Go (gogo) writes fields in ascending order, omits
zero scalars, always writes a Peer's `id` (even empty) and sets clusterLevelRaw to 1.

Decoding is bounded: a reply may name at most `max_peers` peers and each at most `max_addrs`
addresses, so a lying peer cannot make us hold thousands of entries. What is over a bound is an
error, not a silent cut: the caller resets the stream and stops trusting that peer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from p2p import protobuf as pb
from p2p.errors import DecodeError

# Go's network.MessageSizeMax: the largest delimited message either side reads.
MAX_MESSAGE_SIZE = 4 << 20
MAX_KEY_SIZE = 256  # ours: a peer ID is <= 42 bytes, a provider key 34, a record key /ns/<id>
MAX_PEERS = 256  # ours: go answers with at most K (20, masa 100) closer peers (+1 target)
MAX_ADDRS = 32  # ours: addresses per peer entry (the peerstore keeps 32 per peer)
MAX_ADDR_SIZE = 256  # ours: one binary multiaddr
MAX_VALUE_SIZE = 64 << 10  # ours: one record value (masa's NodeData JSON is ~1 KiB)


class KadDecodeError(DecodeError):
    """A kad message was malformed or exceeded a bound."""


class MessageType(enum.IntEnum):
    PUT_VALUE = 0
    GET_VALUE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3
    FIND_NODE = 4
    PING = 5


class Connectedness(enum.IntEnum):
    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3


@dataclass
class PeerEntry:
    """A peer as a kad message carries it: raw peer-ID bytes and binary multiaddrs."""

    id: bytes
    addrs: list[bytes] = field(default_factory=list)
    connection: int = Connectedness.NOT_CONNECTED

    def encode(self) -> bytes:
        out = [pb.field_bytes(1, self.id)]  # gogo writes id even when empty
        out.extend(pb.field_bytes(2, a) for a in self.addrs)
        if self.connection:
            out.append(pb.field_varint(3, self.connection))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes, *, max_addrs: int = MAX_ADDRS) -> PeerEntry:
        entry = cls(b"")
        for number, wtype, value in pb.iter_fields(data):
            if number == 1:
                entry.id = pb.expect_bytes(wtype, value, "Peer.id")
            elif number == 2:
                addr = pb.expect_bytes(wtype, value, "Peer.addrs")
                if len(entry.addrs) >= max_addrs:
                    raise KadDecodeError(f"peer entry with more than {max_addrs} addresses")
                if len(addr) > MAX_ADDR_SIZE:
                    raise KadDecodeError(f"multiaddr of {len(addr)} bytes")
                entry.addrs.append(addr)
            elif number == 3:
                entry.connection = pb.expect_varint(wtype, value, "Peer.connection")
        return entry


@dataclass
class Record:
    key: bytes = b""
    value: bytes = b""
    time_received: str = ""

    def encode(self) -> bytes:
        out = []
        if self.key:
            out.append(pb.field_bytes(1, self.key))
        if self.value:
            out.append(pb.field_bytes(2, self.value))
        if self.time_received:
            out.append(pb.field_str(5, self.time_received))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> Record:
        rec = cls()
        for number, wtype, value in pb.iter_fields(data):
            if number == 1:
                rec.key = pb.expect_bytes(wtype, value, "Record.key")
            elif number == 2:
                rec.value = pb.expect_bytes(wtype, value, "Record.value")
                if len(rec.value) > MAX_VALUE_SIZE:
                    raise KadDecodeError(f"record value of {len(rec.value)} bytes")
            elif number == 5:
                try:
                    rec.time_received = pb.expect_bytes(wtype, value, "Record.timeReceived").decode()
                except UnicodeDecodeError:
                    raise KadDecodeError("Record.timeReceived is not UTF-8") from None
        return rec


@dataclass
class Message:
    type: MessageType
    key: bytes = b""
    record: Record | None = None
    closer_peers: list[PeerEntry] = field(default_factory=list)
    provider_peers: list[PeerEntry] = field(default_factory=list)
    cluster_level_raw: int = 1  # go always writes level 0 + 1

    def encode(self) -> bytes:
        out = []
        if self.type:
            out.append(pb.field_varint(1, int(self.type)))
        if self.key:
            out.append(pb.field_bytes(2, self.key))
        if self.record is not None:
            out.append(pb.field_bytes(3, self.record.encode()))
        out.extend(pb.field_bytes(8, p.encode()) for p in self.closer_peers)
        out.extend(pb.field_bytes(9, p.encode()) for p in self.provider_peers)
        if self.cluster_level_raw:  # an int32; go writes one < 0 as 64-bit two's complement
            out.append(pb.field_varint(10, self.cluster_level_raw & pb.MAX_UINT64))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes, *, max_peers: int = MAX_PEERS, max_addrs: int = MAX_ADDRS) -> Message:
        """Decode one message; a bound exceeded or a malformed field raises KadDecodeError."""
        if len(data) > MAX_MESSAGE_SIZE:
            raise KadDecodeError(f"kad message of {len(data)} bytes")
        msg = cls(MessageType.PUT_VALUE, cluster_level_raw=0)
        try:
            for number, wtype, value in pb.iter_fields(data):
                if number == 1:
                    raw = pb.expect_varint(wtype, value, "Message.type")
                    try:
                        msg.type = MessageType(raw)
                    except ValueError:
                        raise KadDecodeError(f"unknown kad message type {raw}") from None
                elif number == 2:
                    msg.key = pb.expect_bytes(wtype, value, "Message.key")
                    if len(msg.key) > MAX_KEY_SIZE:
                        raise KadDecodeError(f"kad key of {len(msg.key)} bytes")
                elif number == 3:
                    msg.record = Record.decode(pb.expect_bytes(wtype, value, "Message.record"))
                elif number in (8, 9):
                    target = msg.closer_peers if number == 8 else msg.provider_peers
                    if len(msg.closer_peers) + len(msg.provider_peers) >= max_peers:
                        raise KadDecodeError(f"kad message names more than {max_peers} peers")
                    target.append(PeerEntry.decode(pb.expect_bytes(wtype, value, "Peer"),
                                                   max_addrs=max_addrs))
                elif number == 10:
                    raw = pb.expect_varint(wtype, value, "clusterLevelRaw") & 0xFFFFFFFF
                    # an int32, as go's decoder keeps it: the low 32 bits, signed
                    msg.cluster_level_raw = raw - (1 << 32) if raw >= 1 << 31 else raw
                # unknown fields are skipped, as go skips them
        except KadDecodeError:
            raise
        except DecodeError as exc:
            raise KadDecodeError(f"invalid kad message: {exc}") from None
        return msg

    @property
    def cluster_level(self) -> int:
        return max(self.cluster_level_raw - 1, 0)
