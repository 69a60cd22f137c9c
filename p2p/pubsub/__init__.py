"""GossipSub v1.2 (`/meshsub/1.2.0` with IDONTWANT, also `/meshsub/1.1.0`, `/meshsub/1.0.0` and
`/floodsub/1.0.0` peers) as go-libp2p-pubsub v0.12.0 speaks it: `rpc` (protobuf codec), `sign`
(StrictSign), `router` (the sans-IO gossipsub state machine: mesh, fanout, gossip, backoff, caches,
IDONTWANT), `service` (the Host driver and the publish/subscribe API).
"""
