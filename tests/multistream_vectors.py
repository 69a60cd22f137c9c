"""multistream-select 1.0 messages byte for byte as go-multistream (v0.3.3 .. v0.5.0) writes them:
a uvarint length, the text, a newline. Written out in hex, never made by p2p.multistream's own
encoder, so a test comparing against them checks that encoder too. Every multistream test (core,
drivers, the go v0.24.2 peer) takes its vectors from here."""

from __future__ import annotations

H = bytes.fromhex

HEADER = H("13 2f6d756c746973747265616d2f312e302e30 0a")  # /multistream/1.0.0
NOISE = H("07 2f6e6f697365 0a")  # /noise
TLS = H("0b 2f746c732f312e302e30 0a")  # /tls/1.0.0
YAMUX = H("0d 2f79616d75782f312e302e30 0a")  # /yamux/1.0.0
NA = H("03 6e61 0a")  # na
LS = H("03 6c73 0a")  # ls
SIMOPEN = H("1d 2f6c69627032702f73696d756c74616e656f75732d636f6e6e656374 0a")  # /libp2p/simultaneous-connect
IDENTIFY = H("0f 2f697066732f69642f312e302e30 0a")  # /ipfs/id/1.0.0
PING = H("11 2f697066732f70696e672f312e302e30 0a")  # /ipfs/ping/1.0.0
MASA_KAD = H("10 2f6d6173612f6b61642f312e302e30 0a")  # /masa/kad/1.0.0
