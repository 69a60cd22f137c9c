"""The pubsub RPC protobuf (go-libp2p-pubsub v0.12.0 pb/rpc.proto, proto2).

RPC {subscriptions 1 SubOpts, publish 2 Message, control 3 ControlMessage};
SubOpts {subscribe 1 bool, topicid 2 string};
Message {from 1, data 2, seqno 3, topic 4 string, signature 5, key 6};
ControlMessage {ihave 1 {topicID 1, messageIDs 2}, iwant 2 {messageIDs 1}, graft 3 {topicID 1},
prune 4 {topicID 1, peers 2 PeerInfo {peerID 1, signedPeerRecord 2}, backoff 3 uint64},
idontwant 5 {messageIDs 1}}.
Message IDs are go strings holding raw bytes (from ‖ seqno): bytes here, never decoded as text.
Go (gogo, proto2) writes set optional fields even when zero (`subscribe: false` is written).

Decoding is bounded per RPC (counts below); going over a bound is an error and the caller resets
the stream, as go resets on a malformed RPC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p2p import protobuf as pb
from p2p.errors import DecodeError

MAX_RPC_SIZE = 1 << 20  # go DefaultMaxMessageSize
MAX_SUBSCRIPTIONS = 1024  # ours, per RPC
MAX_MESSAGES = 1024  # ours, per RPC
MAX_CONTROL_ITEMS = 1024  # ours: ihave/iwant/graft/prune/idontwant entries per RPC
MAX_IDS = 5000  # go MaxIHaveLength: message IDs in one RPC's control
MAX_TOPIC_LEN = 1024  # ours
MAX_PRUNE_PEERS = 64  # ours (go sends at most PrunePeers = 16)


class RpcDecodeError(DecodeError):
    """A pubsub RPC was malformed or over a bound."""


def _text(raw: bytes, what: str) -> str:
    if len(raw) > MAX_TOPIC_LEN:
        raise RpcDecodeError(f"{what} of {len(raw)} bytes")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise RpcDecodeError(f"{what} is not UTF-8") from None


@dataclass
class SubOpts:
    subscribe: bool
    topic: str

    def encode(self) -> bytes:
        return pb.field_varint(1, int(self.subscribe)) + pb.field_str(2, self.topic)


@dataclass
class PubMessage:
    from_peer: bytes | None = None
    data: bytes | None = None
    seqno: bytes | None = None
    topic: str = ""
    signature: bytes | None = None
    key: bytes | None = None

    def encode(self, *, signed_part_only: bool = False) -> bytes:
        out = []
        if self.from_peer is not None:
            out.append(pb.field_bytes(1, self.from_peer))
        if self.data is not None:
            out.append(pb.field_bytes(2, self.data))
        if self.seqno is not None:
            out.append(pb.field_bytes(3, self.seqno))
        out.append(pb.field_str(4, self.topic))
        if not signed_part_only:
            if self.signature is not None:
                out.append(pb.field_bytes(5, self.signature))
            if self.key is not None:
                out.append(pb.field_bytes(6, self.key))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> PubMessage:
        m = cls()
        for number, wtype, value in pb.iter_fields(data):
            if number == 1:
                m.from_peer = pb.expect_bytes(wtype, value, "Message.from")
            elif number == 2:
                m.data = pb.expect_bytes(wtype, value, "Message.data")
            elif number == 3:
                m.seqno = pb.expect_bytes(wtype, value, "Message.seqno")
            elif number == 4:
                m.topic = _text(pb.expect_bytes(wtype, value, "Message.topic"), "topic")
            elif number == 5:
                m.signature = pb.expect_bytes(wtype, value, "Message.signature")
            elif number == 6:
                m.key = pb.expect_bytes(wtype, value, "Message.key")
        return m

    @property
    def id(self) -> bytes:
        """go's DefaultMsgIdFn: the raw bytes of `from` followed by those of `seqno`."""
        return (self.from_peer or b"") + (self.seqno or b"")


@dataclass
class IHave:
    topic: str
    ids: list[bytes] = field(default_factory=list)


@dataclass
class Prune:
    topic: str
    peers: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    backoff: int | None = None


@dataclass
class Control:
    ihave: list[IHave] = field(default_factory=list)
    iwant: list[list[bytes]] = field(default_factory=list)
    graft: list[str] = field(default_factory=list)
    prune: list[Prune] = field(default_factory=list)
    idontwant: list[list[bytes]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ihave or self.iwant or self.graft or self.prune or self.idontwant)

    def encode(self) -> bytes:
        out = []
        for ih in self.ihave:
            out.append(pb.field_bytes(1, pb.field_str(1, ih.topic)
                                      + b"".join(pb.field_bytes(2, i) for i in ih.ids)))
        for ids in self.iwant:
            out.append(pb.field_bytes(2, b"".join(pb.field_bytes(1, i) for i in ids)))
        for topic in self.graft:
            out.append(pb.field_bytes(3, pb.field_str(1, topic)))
        for pr in self.prune:
            body = pb.field_str(1, pr.topic)
            for pid, record in pr.peers:
                info = pb.field_bytes(1, pid)
                if record is not None:
                    info += pb.field_bytes(2, record)
                body += pb.field_bytes(2, info)
            if pr.backoff is not None:
                body += pb.field_varint(3, pr.backoff)
            out.append(pb.field_bytes(4, body))
        for ids in self.idontwant:
            out.append(pb.field_bytes(5, b"".join(pb.field_bytes(1, i) for i in ids)))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> Control:
        c = cls()
        items = 0
        ids = 0

        def count_ids(n: int) -> None:
            nonlocal ids
            ids += n
            if ids > MAX_IDS:
                raise RpcDecodeError(f"more than {MAX_IDS} message IDs in one control message")

        for number, wtype, value in pb.iter_fields(data):
            items += 1
            if items > MAX_CONTROL_ITEMS:
                raise RpcDecodeError(f"more than {MAX_CONTROL_ITEMS} control entries")
            body = pb.expect_bytes(wtype, value, "ControlMessage entry")
            if number == 1:
                ih = IHave("")
                for n, wt, v in pb.iter_fields(body):
                    if n == 1:
                        ih.topic = _text(pb.expect_bytes(wt, v, "IHave.topicID"), "topic")
                    elif n == 2:
                        count_ids(1)
                        ih.ids.append(pb.expect_bytes(wt, v, "IHave.messageIDs"))
                c.ihave.append(ih)
            elif number in (2, 5):
                got = []
                for n, wt, v in pb.iter_fields(body):
                    if n == 1:
                        count_ids(1)
                        got.append(pb.expect_bytes(wt, v, "messageIDs"))
                (c.iwant if number == 2 else c.idontwant).append(got)
            elif number == 3:
                topic = ""
                for n, wt, v in pb.iter_fields(body):
                    if n == 1:
                        topic = _text(pb.expect_bytes(wt, v, "Graft.topicID"), "topic")
                c.graft.append(topic)
            elif number == 4:
                pr = Prune("")
                for n, wt, v in pb.iter_fields(body):
                    if n == 1:
                        pr.topic = _text(pb.expect_bytes(wt, v, "Prune.topicID"), "topic")
                    elif n == 2:
                        if len(pr.peers) >= MAX_PRUNE_PEERS:
                            raise RpcDecodeError("too many peers in a PRUNE")
                        pid, rec = b"", None
                        for n2, wt2, v2 in pb.iter_fields(pb.expect_bytes(wt, v, "PeerInfo")):
                            if n2 == 1:
                                pid = pb.expect_bytes(wt2, v2, "PeerInfo.peerID")
                            elif n2 == 2:
                                rec = pb.expect_bytes(wt2, v2, "PeerInfo.signedPeerRecord")
                        pr.peers.append((pid, rec))
                    elif n == 3:
                        pr.backoff = pb.expect_varint(wt, v, "Prune.backoff")
                c.prune.append(pr)
        return c


@dataclass
class RPC:
    subscriptions: list[SubOpts] = field(default_factory=list)
    publish: list[PubMessage] = field(default_factory=list)
    control: Control | None = None

    def encode(self) -> bytes:
        out = [pb.field_bytes(1, s.encode()) for s in self.subscriptions]
        out.extend(pb.field_bytes(2, m.encode()) for m in self.publish)
        if self.control:
            out.append(pb.field_bytes(3, self.control.encode()))
        return b"".join(out)

    def __bool__(self) -> bool:
        return bool(self.subscriptions or self.publish or self.control)

    @classmethod
    def decode(cls, data: bytes) -> RPC:
        if len(data) > MAX_RPC_SIZE:
            raise RpcDecodeError(f"RPC of {len(data)} bytes")
        rpc = cls()
        try:
            for number, wtype, value in pb.iter_fields(data):
                body = pb.expect_bytes(wtype, value, "RPC field")
                if number == 1:
                    if len(rpc.subscriptions) >= MAX_SUBSCRIPTIONS:
                        raise RpcDecodeError("too many subscriptions in one RPC")
                    sub, topic = False, None
                    for n, wt, v in pb.iter_fields(body):
                        if n == 1:
                            sub = bool(pb.expect_varint(wt, v, "SubOpts.subscribe"))
                        elif n == 2:
                            topic = _text(pb.expect_bytes(wt, v, "SubOpts.topicid"), "topic")
                    if topic is not None:  # go ignores SubOpts without a topic
                        rpc.subscriptions.append(SubOpts(sub, topic))
                elif number == 2:
                    if len(rpc.publish) >= MAX_MESSAGES:
                        raise RpcDecodeError("too many messages in one RPC")
                    rpc.publish.append(PubMessage.decode(body))
                elif number == 3:
                    ctl = Control.decode(body)
                    if rpc.control is None:
                        rpc.control = ctl
                    else:  # protobuf merge of a repeated embedded message
                        for name in ("ihave", "iwant", "graft", "prune", "idontwant"):
                            getattr(rpc.control, name).extend(getattr(ctl, name))
        except RpcDecodeError:
            raise
        except DecodeError as exc:
            raise RpcDecodeError(f"invalid RPC: {exc}") from None
        return rpc
