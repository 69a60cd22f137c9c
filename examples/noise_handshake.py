"""Two peers' Noise XX handshake in memory: no sockets, just bytes handed from one core to the other.

https://github.com/libp2p/specs/blob/master/noise/README.md ("The Noise Handshake", "Wire Format").
Run it: python examples/noise_handshake.py
"""

from p2p.identity import KeyType, PeerId, PrivateKey
from p2p.security.noise import NoiseHandshake

alice, bob = PrivateKey.generate(KeyType.Ed25519), PrivateKey.generate(KeyType.Secp256k1)
dialer = NoiseHandshake(alice, initiator=True, expected_peer=PeerId.from_public_key(bob.public_key))
listener = NoiseHandshake(bob, initiator=False)

msg1 = dialer.data_to_send()                 # -> e                      (32-byte ephemeral key)
listener.receive_data(msg1)
msg2 = listener.data_to_send()               # <- e, ee, s, es + payload (bob's identity, signed)
dialer.receive_data(msg2)
msg3 = dialer.data_to_send()                 # -> s, se + payload        (alice's identity, signed)
(done,) = listener.receive_data(msg3)        # the listener now knows who dialled

for n, msg in enumerate((msg1, msg2, msg3), 1):
    print(f"message {n}: {len(msg)} bytes on the wire (2-byte length prefix included)")
print("listener sees:", done.remote_peer, "| dialer sees:", dialer.remote_peer)
print("muxer chosen inside the handshake:", done.selected_muxer)

a, b = dialer.to_transport(), listener.to_transport()
frame = a.encrypt(b"hello over noise")
print(f"16 plaintext bytes -> {len(frame)} on the wire:", b.decrypt(frame))
