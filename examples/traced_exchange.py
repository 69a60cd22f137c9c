"""The trace of a Noise handshake and a first yamux stream, made in memory with no sockets.

A `ConnTrace` is what the Host attaches to a traced connection; here we drive it by hand: the
dialer's Noise core comes from it (so it reports each handshake message), and `conn.raw` is told
about every byte that would cross the socket. The records above Noise (yamux frames, the stream's
multistream messages, the ping) are decoded from the plaintext by the tracer's dissectors.
Run it: python examples/traced_exchange.py [--jsonl]
"""

import sys

from p2p.identity import KeyType, PrivateKey
from p2p.multistream import Dialer
from p2p.mux.yamux import YamuxConnection
from p2p.security.noise import NoiseHandshake
from p2p.trace import JsonLinesWriter, Tracer
from p2p.trace.readable import ReadableWriter

jsonl = "--jsonl" in sys.argv[1:]
tracer = Tracer(JsonLinesWriter(sys.stdout) if jsonl else ReadableWriter(sys.stdout))
conn = tracer.connection("outbound", "/memory/alice", "/memory/bob")

alice = conn.noise_handshake(PrivateKey.generate(KeyType.Ed25519), initiator=True)
bob = NoiseHandshake(PrivateKey.generate(KeyType.Secp256k1), initiator=False)
for sender, receiver, direction in ((alice, bob, "out"), (bob, alice, "in"), (alice, bob, "out")):
    wire = sender.data_to_send()
    conn.raw(direction, wire)                     # what the socket would carry
    receiver.receive_data(wire)

to_bob = alice.to_transport()
yamux = YamuxConnection(is_client=True)
stream = yamux.open_stream()
yamux.send(stream, Dialer(["/ipfs/ping/1.0.0"]).data_to_send() + bytes(32))  # lazy: proposal + ping
conn.raw("out", to_bob.encrypt(yamux.data_to_send()))
