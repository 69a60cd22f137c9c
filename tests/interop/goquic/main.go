// Command goquic is the QUIC *listener* for the interop tests: a go-libp2p
// host serving the same test protocols as gopeer's "serve", QUIC transport
// only.
//
// Why a separate program: gopeer is built on go-libp2p v0.36.3 (masa's
// version), whose quic-go (v0.45/v0.46) panics with this machine's Go 1.26
// on the first inbound QUIC handshake ("crypto/tls bug: where's my session
// ticket?", quic-go#5572, fixed in quic-go v0.57.1). This program uses
// go-libp2p v0.46.0 (quic-go v0.57.1); the QUIC v1 + libp2p TLS wire is
// unchanged between the two. gopeer stays the Go *dialer* (v0.36.3).
//
// Contract (as gopeer's, through tests/interop/gokit): one JSON line
// {"peer_id", "addrs"} on stdout once listening, logs on stderr, {"error"}
// and a non-zero exit on failure.
package main

import (
	"flag"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"

	"gokit"
)

func init() { gokit.Named("goquic") }

func main() {
	gokit.Main("usage: goquic serve [--listen ADDR]... [--key-type T|--key-file F] [--echo] [--worker] | goquic bench listen",
		map[string]func([]string) error{
			"serve": cmdServe,
			"bench": cmdBench,
		})
}

func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var listen gokit.StringList
	fs.Var(&listen, "listen", "listen multiaddr (repeatable; default /ip4/127.0.0.1/udp/0/quic-v1)")
	keyType := fs.String("key-type", "ed25519", "ed25519|secp256k1|ecdsa|rsa")
	keyFile := fs.String("key-file", "", "private key file (protobuf, binary or hex)")
	echo := fs.Bool("echo", false, "serve "+gokit.EchoProtocol)
	worker := fs.Bool("worker", false, "serve masa's worker protocol")
	version := fs.String("protocol-version", "v0.8.4", "masa protocol version")
	noPing := fs.Bool("no-ping", false, "disable the ping service (as masa does)")
	if _, err := gokit.ParseArgs(fs, args); err != nil {
		return err
	}
	if len(listen) == 0 {
		listen = gokit.StringList{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	priv, err := gokit.Identity(*keyType, *keyFile)
	if err != nil {
		return err
	}
	h, err := newQUICHost(priv, listen, libp2p.Ping(!*noPing))
	if err != nil {
		return err
	}
	defer h.Close()
	gokit.ServeTestProtocols(h, *echo)
	if *worker {
		h.SetStreamHandler(protocol.ID("/masa/worker_protocol/"+*version), gokit.HandleTestWork)
	}
	gokit.LogConnections(h)
	return gokit.ServeUntilSignal(h)
}

// newQUICHost is a test host with QUIC as its only transport.
func newQUICHost(priv crypto.PrivKey, listen []string, extra ...libp2p.Option) (host.Host, error) {
	opts, err := gokit.TestHostOptions(priv)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		libp2p.NoTransports,
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.ListenAddrStrings(listen...),
	)
	return libp2p.New(append(opts, extra...)...)
}
