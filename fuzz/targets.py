"""One fuzz target per network parser: feed arbitrary bytes, only the parser's typed error may escape.

Each `Target` names the exception types the parser is allowed to raise on bad input (the typed
`RemoteProtocolError` subclass, and for a multistream dialer `NegotiationFailed`); anything else
escaping - IndexError, struct.error, UnicodeDecodeError, a hang - is a bug the runner reports.
Seeds are valid inputs built here from fixed keys, so the fuzzer starts past the first length check
(e.g. a whole deterministic Noise handshake, real yamux frames).

Importing this module imports the stack lazily (inside each target), so the runner can switch on
coverage instrumentation before any `p2p`/`oracle` module is loaded.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    #: exception types `run` may raise on hostile input (resolved lazily, after instrumentation)
    allowed: Callable[[], tuple[type[BaseException], ...]]
    seeds: Callable[[], list[bytes]]


def _remote() -> tuple[type[BaseException], ...]:
    from p2p.errors import RemoteProtocolError

    return (RemoteProtocolError,)


def _chunks(data: bytes) -> Iterator[bytes]:
    """Split an input into chunks: the first byte picks the chunk size, so chunking is fuzzed too."""
    if not data:
        return
    size = data[0] % 64 + 1 if data[0] < 192 else len(data)
    body = data[1:]
    for i in range(0, len(body), size):
        yield body[i : i + size]


# ---- varint / protobuf / keys / peer ids ----------------------------------------------------


def _varint(data: bytes) -> None:
    from p2p import varint

    pos = 0
    while pos < len(data):
        res = varint.decode(data, pos)
        if res is None:
            return
        value, nxt = res
        assert nxt > pos and 0 <= value <= varint.MAX_VALUE
        assert varint.encode(value) == bytes(data[pos:nxt])  # minimal, so it round-trips
        pos = nxt


def _protobuf(data: bytes) -> None:
    from p2p import protobuf

    for number, wtype, value in protobuf.iter_fields(data):
        assert number >= 1 and wtype in (0, 1, 2, 5)
        assert isinstance(value, bytes) == (wtype == 2)
        assert isinstance(value, bytes) or 0 <= value <= protobuf.MAX_UINT64
        if wtype == protobuf.WT_VARINT:  # every varint go would accept re-encodes and reads back
            assert isinstance(value, int)
            assert list(protobuf.iter_fields(protobuf.field_varint(number, value))) == [
                (number, wtype, value)]


def _public_key(data: bytes) -> None:
    from p2p.identity import PeerId, PublicKey

    key = PublicKey.from_protobuf(data)
    assert PublicKey.from_protobuf(key.to_protobuf()) == key
    PeerId.from_public_key(key)


def _peer_id(data: bytes) -> None:
    from p2p.identity import PeerId

    pid = PeerId.from_string(data.decode("utf-8", "replace"))
    assert PeerId.from_string(pid.to_base58()) == pid


# ---- multistream ------------------------------------------------------------------------------


def _ms_reader(data: bytes) -> None:
    from p2p.multistream import MAX_MESSAGE_LEN, MessageReader

    reader = MessageReader()
    for chunk in _chunks(data):
        reader.feed(chunk)
        while (body := reader.next_message()) is not None:
            assert len(body) < MAX_MESSAGE_LEN


def _ms_listener(data: bytes) -> None:
    from p2p.multistream import Listener

    listener = Listener(["/ipfs/ping/1.0.0", "/echo/1.0.0"], max_na_rounds=8)
    for chunk in _chunks(data):
        listener.receive_data(chunk)
        listener.data_to_send()
        if listener.done:
            return


def _ms_dialer(data: bytes) -> None:
    from p2p.multistream import Dialer

    dialer = Dialer(["/yamux/1.0.0", "/mplex/6.7.0"])
    for chunk in _chunks(data):
        dialer.receive_data(chunk)
        dialer.data_to_send()
        if dialer.done:
            return


def _ms_dialer_allowed() -> tuple[type[BaseException], ...]:
    from p2p.errors import NegotiationFailed

    return (*_remote(), NegotiationFailed)


def _ms_seeds() -> list[bytes]:
    from p2p.multistream import encode_message

    hdr = encode_message("/multistream/1.0.0")
    return [
        b"\xff" + hdr + encode_message("/echo/1.0.0") + b"app data",
        b"\x03" + hdr + encode_message("na") + encode_message("/mplex/6.7.0"),
        b"\xff" + hdr + encode_message("ls") + encode_message("/yamux/1.0.0"),
        b"\x00" + hdr + encode_message("na") * 3,
    ]


# ---- noise ------------------------------------------------------------------------------------

_SEEDS = {"init": bytes(range(32)), "resp": bytes(range(32, 64))}


def _identity(seed: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from p2p import protobuf
    from p2p.identity import PrivateKey

    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)
    return PrivateKey.from_protobuf(protobuf.field_varint(1, 1) + protobuf.field_bytes(2, seed + pub))


def _handshake(initiator: bool):  # type: ignore[no-untyped-def]
    """A handshake with every key fixed, so a recorded conversation replays byte for byte."""
    from p2p.security.noise import NoiseHandshake

    base = _SEEDS["init" if initiator else "resp"]
    return NoiseHandshake(_identity(base), initiator=initiator, static_key=bytes(b ^ 0x55 for b in base),
                          ephemeral_key=bytes(b ^ 0xAA for b in base))


def _recorded() -> tuple[bytes, object, object]:
    """(what the initiator sent, initiator core, responder core) of one complete handshake."""
    init, resp = _handshake(True), _handshake(False)
    sent = init.data_to_send()
    resp.receive_data(sent)
    init.receive_data(resp.data_to_send())
    msg3 = init.data_to_send()
    resp.receive_data(msg3)
    return sent + msg3, init, resp


def _noise_responder(data: bytes) -> None:
    resp = _handshake(False)
    for chunk in _chunks(data):
        if resp.receive_data(chunk):
            return
        resp.data_to_send()


_TRANSPORT_KEY = bytes(range(100, 132))


def _transport(send_key: bytes, recv_key: bytes):  # type: ignore[no-untyped-def]
    from p2p.security.noise import CipherState, NoiseTransport

    return NoiseTransport(CipherState(send_key), CipherState(recv_key))


def _noise_transport(data: bytes) -> None:
    transport = _transport(bytes(32), _TRANSPORT_KEY)
    for chunk in _chunks(data):
        for plain in transport.decrypt_frames(chunk):
            assert len(plain) <= 65519


def _noise_seeds() -> list[bytes]:
    return [b"\x07" + _recorded()[0], b"\xff" + _recorded()[0]]


def _transport_seeds() -> list[bytes]:
    t = _transport(_TRANSPORT_KEY, bytes(32))
    long = _transport(_TRANSPORT_KEY, bytes(32)).encrypt(b"y" * 70000)
    return [b"\xff" + bytes(t.encrypt(b"hello")) + bytes(t.encrypt(b"x" * 300)), b"\x05" + bytes(long)]


def _noise_payload(data: bytes) -> None:
    from p2p.security.noise_payload import verify_payload

    verify_payload(data, bytes(32), None)


def _payload_seeds() -> list[bytes]:
    from p2p.security.noise_payload import build_payload

    return [build_payload(_identity(_SEEDS["init"]), bytes(32), ["/yamux/1.0.0"])]


# ---- yamux ------------------------------------------------------------------------------------


def _yamux(data: bytes) -> None:
    from p2p.mux.yamux import StreamOpened, YamuxConfig, YamuxConnection

    conn = YamuxConnection(bool(data[:1]) and data[0] & 1 == 1,
                           YamuxConfig(accept_backlog=4, max_inbound_streams=8, ping_backlog=4))
    for chunk in _chunks(data):
        for ev in conn.receive_data(chunk, now=0.0):
            if isinstance(ev, StreamOpened):
                conn.accept(ev.stream_id)
        for sid in list(conn._streams):
            assert conn.buffered(sid) <= conn.recv_window(sid)
            conn.read(sid, 1000, now=0.0)
        conn.data_to_send()


def _yamux_seeds() -> list[bytes]:
    def hdr(t: int, flags: int, sid: int, length: int) -> bytes:
        return struct.pack(">BBHII", 0, t, flags, sid, length)

    return [
        b"\x10" + hdr(1, 1, 1, 0) + hdr(0, 0, 1, 5) + b"hello" + hdr(1, 4, 1, 0) + hdr(2, 1, 0, 7),
        b"\xff" + hdr(0, 1, 3, 3) + b"abc" + hdr(1, 8, 3, 0) + hdr(3, 0, 0, 0),
    ]


# ---- identify ---------------------------------------------------------------------------------


def _identify(data: bytes) -> None:
    from p2p.protocols.identify import decode_messages

    info = decode_messages(data)
    info.multiaddrs()
    info.observed_multiaddr()


def _identify_seeds() -> list[bytes]:
    from p2p.protocols.identify import IdentifyInfo, encode_messages

    info = IdentifyInfo(public_key=_identity(_SEEDS["init"]).public_key.to_protobuf(),
                        listen_addrs=[bytes.fromhex("047f000001060fa1")], protocols=["/ipfs/id/1.0.0"],
                        observed_addr=bytes.fromhex("047f000001060fa2"), agent_version="fuzz")
    return [encode_messages(info)]


# ---- oracle -----------------------------------------------------------------------------------


def _work_request(data: bytes) -> None:
    from oracle.messages import WorkRequest

    req = WorkRequest.from_json(data)
    assert WorkRequest.from_json(req.to_go_json()) == req


def _work_response(data: bytes) -> None:
    from oracle.messages import WorkResponse

    WorkResponse.from_json(data)


def _oracle_json_seeds() -> list[bytes]:
    return [b'{"workType":"test","requestId":"r1","data":"aGk=","workerPeerId":"12D3"}',
            b'{"workRequest":{"workType":"test"},"data":{"a":[1,2.5,null]},"error":"",'
            b'"recordCount":3,"loginEvent":{"peerId":"x"}}']


def _frames(data: bytes) -> None:
    from oracle.framing import FrameDecoder

    dec = FrameDecoder(max_size=4096)
    for chunk in _chunks(data):
        for body in dec.receive_data(chunk):
            assert len(body) <= 4096
    dec.end_of_stream()


def _frame_seeds() -> list[bytes]:
    return [b"\x02" + struct.pack(">I", 5) + b"hello" + struct.pack(">I", 0),
            b"\xff" + struct.pack(">I", 5000)]


def _selfcheck(data: bytes) -> None:
    if data.startswith(b"crash"):
        raise IndexError("deliberate untyped error")


# ---- kad, pubsub, ipns -----------------------------------------------------------------------


def _kad_message(data: bytes) -> None:
    from p2p.kad.messages import Message

    msg = Message.decode(data)
    assert Message.decode(msg.encode()) == msg


def _kad_seeds() -> list[bytes]:
    from p2p.kad.messages import Connectedness, Message, MessageType, PeerEntry, Record

    peer = PeerEntry(b"\x00\x24" + bytes(36), [bytes.fromhex("047f000001060fa1")],
                     Connectedness.CONNECTED)
    return [Message(MessageType.FIND_NODE, key=b"k", closer_peers=[peer]).encode(),
            Message(MessageType.PUT_VALUE, key=b"/db/x", record=Record(b"/db/x", b"v", "t")).encode()]


def _pubsub_rpc(data: bytes) -> None:
    import random

    from p2p.identity import PeerId
    from p2p.pubsub.router import MESHSUB_12, Router
    from p2p.pubsub.rpc import RPC

    rpc = RPC.decode(data)
    local, peer = PeerId(b"\x00\x02\x08\x01"), PeerId(b"\x00\x02\x08\x02")
    router = Router(local, rng=random.Random(0))
    router.add_peer(peer, MESHSUB_12, outbound=True)
    router.join("t", 0.0)
    router.handle_rpc(peer, rpc, 0.5, protocol=MESHSUB_12)  # a decoded RPC never makes it raise
    router.heartbeat(1.0)
    router.take_urgent()
    router.take_outgoing()


def _pubsub_seeds() -> list[bytes]:
    from p2p.pubsub.rpc import RPC, Control, IHave, Prune, PubMessage, SubOpts
    from p2p.pubsub.sign import sign

    msg = PubMessage(data=b"x" * 1100, seqno=bytes(8), topic="t")
    sign(msg, _identity(_SEEDS["init"]))
    ctl = Control(ihave=[IHave("t", [b"id"])], iwant=[[b"id"]], graft=["t"],
                  prune=[Prune("t", backoff=60)], idontwant=[[msg.id]])
    return [RPC(subscriptions=[SubOpts(True, "t")], publish=[msg], control=ctl).encode()]


def _ipns_record(data: bytes) -> None:
    from p2p.identity import PeerId
    from p2p.kad.ipns import IpnsRecord, IpnsValidator, routing_key

    name = routing_key(PeerId.from_public_key(_identity(_SEEDS["init"]).public_key))
    v = IpnsValidator(clock=lambda: 0.0)
    ok = v.validate(name, data)  # never raises
    v.select(name, [data, data])
    rec = IpnsRecord.decode(data)
    rec.fields()
    assert not ok or rec.signature_v2


def _ipns_seeds() -> list[bytes]:
    from p2p.kad.ipns import make_record

    return [make_record(_identity(_SEEDS["init"]), b"/ipfs/bafkqaaa", 1, 4102444800.0, 10**9)]


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("varint", _varint, _remote, lambda: [b"\x00\x7f\x80\x01\xff\xff\x03", b"\x80\x00"]),
    Target("protobuf", _protobuf, _remote,
           lambda: [bytes.fromhex("0801120568656c6c6f") + bytes.fromhex("1d01020304")]),
    Target("public_key", _public_key, _remote,
           lambda: [_identity(_SEEDS["init"]).public_key.to_protobuf()]),
    Target("peer_id", _peer_id, _remote,
           lambda: [b"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
                    b"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
                    b"bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u"]),
    Target("multistream_reader", _ms_reader, _remote, _ms_seeds),
    Target("multistream_listener", _ms_listener, _remote, _ms_seeds),
    Target("multistream_dialer", _ms_dialer, _ms_dialer_allowed, _ms_seeds),
    Target("noise_responder", _noise_responder, _remote, _noise_seeds),
    Target("noise_transport", _noise_transport, _remote, _transport_seeds),
    Target("noise_payload", _noise_payload, _remote, _payload_seeds),
    Target("yamux", _yamux, _remote, _yamux_seeds),
    Target("identify", _identify, _remote, _identify_seeds),
    Target("work_request", _work_request, _remote, _oracle_json_seeds),
    Target("work_response", _work_response, _remote, _oracle_json_seeds),
    Target("frame_decoder", _frames, _remote, _frame_seeds),
    Target("kad_message", _kad_message, _remote, _kad_seeds),
    Target("pubsub_rpc", _pubsub_rpc, _remote, _pubsub_seeds),
    Target("ipns_record", _ipns_record, _remote, _ipns_seeds),
    # Not run by default: proves the runner reports an untyped exception (tests/fuzz).
    Target("_selfcheck", _selfcheck, _remote, lambda: [b"crash", b"fine"]),
]}
