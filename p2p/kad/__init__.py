"""Kademlia DHT (`<prefix>/kad/1.0.0`) wire-compatible with go-libp2p-kad-dht v0.26.1.

`messages` (protobuf codec), `framing` (uvarint-delimited stream framing), `routing` (k-buckets by
XOR distance), `lookup` (iterative lookups as a sans-IO state machine), `store` (providers and
records) are sans-IO; `service` runs them on a Host.
"""
