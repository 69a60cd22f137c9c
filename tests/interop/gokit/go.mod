module gokit

go 1.22

require (
	github.com/libp2p/go-libp2p v0.36.3
	github.com/multiformats/go-multiaddr v0.13.0
)
