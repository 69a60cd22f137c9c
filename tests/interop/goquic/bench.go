package main

// `goquic bench listen`: the QUIC listener of the bench's go-quic stack, with the role contract
// of bench/peer_common.py (prints {"addr": ...}, serves /bench/echo/1.0.0, /bench/sink/1.0.0 and
// the worker protocol until stdin closes). The dialler of that stack is gopeer's bench mode
// (go-libp2p v0.36.3) dialling this QUIC address: v0.36.3 cannot listen on QUIC with Go 1.26.

import (
	"encoding/binary"
	"io"
	"os"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
)

func cmdBenchListen() error {
	priv, _, err := crypto.GenerateKeyPair(crypto.Ed25519, 0)
	if err != nil {
		return err
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		return err
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.NoTransports,
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return err
	}
	defer h.Close()
	h.SetStreamHandler("/bench/echo/1.0.0", handleEcho)
	h.SetStreamHandler("/bench/sink/1.0.0", handleSink)
	h.SetStreamHandler("/masa/worker_protocol/v0.8.4", handleWorkerStream)
	p2p, err := ma.NewComponent("p2p", h.ID().String())
	if err != nil {
		return err
	}
	emit(map[string]string{"addr": h.Network().ListenAddresses()[0].Encapsulate(p2p).String()})
	io.Copy(io.Discard, os.Stdin) // serve until the harness closes our stdin
	return nil
}

// handleSink counts bytes until EOF, then answers the count (8 bytes, big endian).
func handleSink(s network.Stream) {
	n, err := io.Copy(io.Discard, s)
	if err != nil {
		s.Reset()
		return
	}
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], uint64(n))
	if _, err := s.Write(out[:]); err != nil {
		s.Reset()
		return
	}
	s.Close()
}
