"""Protocol services: classes constructed with a host (`p2p.hostapi.HostLike`) that register their
stream handlers and connection listeners, with the protocol's wire format in a sans-IO module of
`p2p.protocols`. The Host constructs identify and ping by default; Kademlia, GossipSub and the masa
membership follow the same shape."""
