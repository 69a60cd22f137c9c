package main

// `goquic bench listen`: the QUIC listener of the bench's go-quic stack, with the role contract
// of bench/peer_common.py (prints {"addr": ...}, serves /bench/echo/1.0.0, /bench/sink/1.0.0 and
// the worker protocol until stdin closes). The dialler of that stack is gopeer's bench mode
// (go-libp2p v0.36.3) dialling this QUIC address: v0.36.3 cannot listen on QUIC with Go 1.26.

import (
	"github.com/libp2p/go-libp2p/core/crypto"

	"gokit"
)

func cmdBench(args []string) error {
	if len(args) != 1 || args[0] != "listen" {
		return gokit.Usagef("usage: goquic bench listen")
	}
	priv, _, err := crypto.GenerateKeyPair(crypto.Ed25519, 0)
	if err != nil {
		return err
	}
	h, err := newQUICHost(priv, []string{"/ip4/127.0.0.1/udp/0/quic-v1"})
	if err != nil {
		return err
	}
	defer h.Close()
	h.SetStreamHandler("/bench/echo/1.0.0", gokit.HandleEcho)
	h.SetStreamHandler("/bench/sink/1.0.0", gokit.HandleSink)
	h.SetStreamHandler("/masa/worker_protocol/v0.8.4", gokit.HandleTestWork)
	return gokit.ServeUntilStdinCloses(h)
}
