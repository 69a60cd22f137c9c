"""A pure-Python libp2p subset, wire-compatible with go-libp2p.

A dial, end to end: TCP dial -> multistream-select `/noise` -> Noise XX handshake (peer ID
checked) -> `/yamux/1.0.0` (early in the Noise payload, or by multistream) -> yamux session ->
new stream -> multistream-select of the application protocol -> application bytes.
"""

from p2p import ip_codecs as _ip_codecs

_ip_codecs.install()  # the multiaddr package's ip4/ip6 codecs without importing netaddr
