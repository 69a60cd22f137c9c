"""A fixed, traced exchange between two peers, entirely in memory and deterministic.

The sans-IO cores of both sides pass bytes to each other directly; only peer A is traced (as a
dialer), and `ConnTrace.raw` stands in for its TCP socket. Fixed keys (identities, Noise statics
and ephemerals) and a fake clock make every byte and every record the same on every run:

  multistream `/noise` -> Noise XX (early muxer `/yamux/1.0.0`) -> yamux stream 1: multistream
  `/ipfs/ping/1.0.0`, proposal and a ping pipelined (lazy), pong, FIN both ways -> stream 3:
  `/ipfs/id/1.0.0`, B answers with an identify message and FIN -> stream 5: `/masa/worker/1`
  (a JSON frame each way) -> GoAway.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2p import protobuf
from p2p.identity import PeerId, PrivateKey
from p2p.multistream import Dialer, Listener, ProtocolAgreed
from p2p.mux.yamux import StreamOpened, YamuxConnection
from p2p.protocols import identify as idp
from p2p.security.noise import NoiseHandshake
from p2p.trace import Tracer
from p2p.trace.protocols import json_frames

YAMUX = "/yamux/1.0.0"
PING_PAYLOAD = bytes(range(32))
WORKER = "/masa/worker/1"


def ed25519_key(seed_byte: int) -> PrivateKey:
    seed = bytes([seed_byte]) * 32
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return PrivateKey.from_protobuf(protobuf.field_varint(1, 1) + protobuf.field_bytes(2, seed + public))


KEY_A, KEY_B = ed25519_key(1), ed25519_key(2)
PEER_A = PeerId.from_public_key(KEY_A.public_key)
PEER_B = PeerId.from_public_key(KEY_B.public_key)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def _negotiate(trace, b_listener: Listener, a_dialer: Dialer) -> None:
    out = a_dialer.data_to_send()
    trace.raw("out", out)
    b_listener.receive_data(out)
    back = b_listener.data_to_send()
    trace.raw("in", back)
    events = a_dialer.receive_data(back)
    assert any(isinstance(e, ProtocolAgreed) for e in events)


def run_exchange(tracer: Tracer | None = None) -> Tracer:
    """Run the exchange; return the tracer holding (or having written) A's records."""
    tracer = tracer or Tracer(clock=FakeClock())
    tracer.register_protocol(WORKER, json_frames("worker"))
    trace = tracer.connection("outbound", "/ip4/127.0.0.1/tcp/50000", "/ip4/127.0.0.1/tcp/4001")

    # 1. security negotiation on the raw connection
    _negotiate(trace, Listener(["/noise"]), Dialer(["/noise"]))

    # 2. Noise XX; A is traced, B is the plain core
    a = trace.noise_handshake(KEY_A, initiator=True, expected_peer=PEER_B, muxers=[YAMUX],
                              static_key=b"\x11" * 32, ephemeral_key=b"\x12" * 32)
    b = NoiseHandshake(KEY_B, initiator=False, muxers=[YAMUX],
                       static_key=b"\x21" * 32, ephemeral_key=b"\x22" * 32)
    msg1 = a.data_to_send()
    trace.raw("out", msg1)
    b.receive_data(msg1)
    msg2 = b.data_to_send()
    trace.raw("in", msg2)
    a.receive_data(msg2)
    msg3 = a.data_to_send()
    trace.raw("out", msg3)
    b.receive_data(msg3)
    ta, tb = a.to_transport(), b.to_transport()
    ya, yb = YamuxConnection(True), YamuxConnection(False)

    def a_to_b() -> None:
        wire = ta.encrypt(ya.data_to_send())
        trace.raw("out", wire)
        for ev in yb.receive_data(tb.decrypt(wire)):
            if isinstance(ev, StreamOpened):
                yb.accept(ev.stream_id)

    def b_to_a() -> None:
        wire = tb.encrypt(yb.data_to_send())
        trace.raw("in", wire)
        ya.receive_data(ta.decrypt(wire))

    def b_read(sid: int) -> bytes:
        return yb.read(sid, 1 << 20)

    # 3. a ping stream, negotiated lazily: header + proposal + first ping in one write
    s1 = ya.open_stream()
    ping_dialer = Dialer(["/ipfs/ping/1.0.0"])
    ya.send(s1, ping_dialer.data_to_send() + PING_PAYLOAD)
    a_to_b()
    listener = Listener(["/ipfs/ping/1.0.0"])
    events = listener.receive_data(b_read(s1))
    assert isinstance(events[-1], ProtocolAgreed)
    yb.send(s1, listener.data_to_send() + events[-1].leftover)  # echo + pong
    b_to_a()
    ya.send_eof(s1)
    a_to_b()
    yb.send_eof(s1)
    b_to_a()

    # 4. identify: B writes one message and closes
    s3 = ya.open_stream()
    ya.send(s3, Dialer([idp.IDENTIFY]).data_to_send())
    a_to_b()
    listener = Listener([idp.IDENTIFY])
    listener.receive_data(b_read(s3))
    info = idp.IdentifyInfo(
        public_key=KEY_B.public_key.to_protobuf(), listen_addrs=[b"\x04\x7f\x00\x00\x01\x06\x0f\xa1"],
        protocols=[idp.IDENTIFY, "/ipfs/ping/1.0.0"], observed_addr=b"\x04\x7f\x00\x00\x01\x06\xc3\x50",
        protocol_version="ipfs/0.1.0", agent_version="fixed/1.0")
    yb.send(s3, listener.data_to_send() + idp.encode_messages(info))
    yb.send_eof(s3)
    b_to_a()

    # 5. a worker-style stream: one JSON frame each way (4-byte big-endian length prefix)
    s5 = ya.open_stream()
    request = json.dumps({"type": "test", "data": "hello"}).encode()
    ya.send(s5, Dialer([WORKER]).data_to_send() + len(request).to_bytes(4, "big") + request)
    a_to_b()
    listener = Listener([WORKER])
    listener.receive_data(b_read(s5))
    response = json.dumps({"data": "HELLO", "error": ""}).encode()
    yb.send(s5, listener.data_to_send() + len(response).to_bytes(4, "big") + response)
    b_to_a()

    # 6. the end: A says goodbye
    ya.go_away(0)
    a_to_b()
    return tracer
