// Command gopeer is a go-libp2p v0.36.3 test peer for interop tests of the
// pure-Python stack: a listener ("serve") and one-shot dialer commands.
//
// Contract with the Python harness: exactly one JSON line on stdout per run
// (for "serve": once listening), logs on stderr, and on failure a JSON line
// {"error": "..."} with a non-zero exit status. TCP and QUIC transports are
// configured (QUIC for dialling only, see newHost), security and muxer
// choices are explicit, and the resource manager has infinite limits so that
// tests with many streams measure the protocol stack rather than go's
// default quotas.
package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tlssec "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"gokit"
)

// logger writes to stderr so stdout carries nothing but the JSON result.
var logger = gokit.Named("gopeer")

func main() {
	gokit.Main("usage: gopeer serve|ping|echo|identify|reset|halfclose|work|keygen|bench|tlscert|tlsverify [options]",
		map[string]func([]string) error{
			"serve":     cmdServe,
			"ping":      cmdPing,
			"echo":      cmdEcho,
			"identify":  cmdIdentify,
			"reset":     cmdReset,
			"halfclose": cmdHalfclose,
			"work":      cmdWork,
			"bench":     cmdBench,
			"keygen":    cmdKeygen,
			"tlscert":   cmdTLSCert,
			"tlsverify": cmdTLSVerify,
		})
}

// stackOptions are the options shared by every command that builds a host.
type stackOptions struct {
	keyType     string
	keyFile     string
	security    string
	noEarlyMux  bool
	disablePing bool
}

func (o *stackOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.keyType, "key-type", "ed25519", "identity key type: ed25519|secp256k1|ecdsa|rsa")
	fs.StringVar(&o.keyFile, "key-file", "", "private key file (protobuf, binary or hex text)")
	fs.StringVar(&o.security, "security", "noise-first", "noise-first (masa) | tls-first (go default) | noise-only")
	fs.BoolVar(&o.noEarlyMux, "no-early-muxer", false, "send no stream_muxers extension in Noise (and no ALPN muxers in TLS)")
}

func (o *stackOptions) identity() (crypto.PrivKey, error) {
	return gokit.Identity(o.keyType, o.keyFile)
}

// securityOptions returns the security transports in the requested order.
// Without early muxer negotiation the transports are built with a nil
// muxer list, so Noise sends no stream_muxers extension and TLS no ALPN.
func (o *stackOptions) securityOptions() ([]libp2p.Option, error) {
	var noiseCtor, tlsCtor any = noise.New, tlssec.New
	if o.noEarlyMux {
		noiseCtor = func(id protocol.ID, priv crypto.PrivKey) (*noise.Transport, error) {
			return noise.New(id, priv, nil)
		}
		tlsCtor = func(id protocol.ID, priv crypto.PrivKey) (*tlssec.Transport, error) {
			return tlssec.New(id, priv, nil)
		}
	}
	withNoise := libp2p.Security(noise.ID, noiseCtor)
	withTLS := libp2p.Security(tlssec.ID, tlsCtor)
	switch o.security {
	case "noise-first":
		return []libp2p.Option{withNoise, withTLS}, nil
	case "tls-first":
		return []libp2p.Option{withTLS, withNoise}, nil
	case "noise-only":
		return []libp2p.Option{withNoise}, nil
	}
	return nil, gokit.Usagef("unknown security mode %q", o.security)
}

// newHost builds a TCP + QUIC host. With no listen addresses it is a pure
// dialer (identify still runs, as it does on every go connection). Do not
// listen on QUIC with it: quic-go v0.45 built with Go 1.26 panics on the
// first inbound QUIC handshake (tests/interop/goquic is the QUIC listener).
func (o *stackOptions) newHost(listen []string) (host.Host, error) {
	priv, err := o.identity()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	sec, err := o.securityOptions()
	if err != nil {
		return nil, err
	}
	opts, err := gokit.TestHostOptions(priv)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Ping(!o.disablePing),
	)
	opts = append(opts, sec...)
	if len(listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(listen...))
	}
	return libp2p.New(opts...)
}

// workerProtocol builds masa's protocol ID: /masa/worker_protocol/<v>[-env].
func workerProtocol(version, env string) protocol.ID {
	id := "/masa/worker_protocol/" + version
	if env != "" {
		id += "-" + env
	}
	return protocol.ID(id)
}

func cmdKeygen(args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	keyType := fs.String("key-type", "ed25519", "ed25519|secp256k1|ecdsa|rsa")
	out := fs.String("out", "", "output path (required)")
	asHex := fs.Bool("hex", false, "write hex text (masa's key file format) instead of binary")
	if _, err := gokit.ParseArgs(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return gokit.Usagef("keygen needs --out PATH")
	}
	priv, err := gokit.GenerateKey(*keyType)
	if err != nil {
		return err
	}
	data, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	if *asHex {
		data = []byte(hex.EncodeToString(data))
	}
	if err := os.WriteFile(*out, data, 0o600); err != nil {
		return err
	}
	id, err := gokit.PeerIDOf(priv)
	if err != nil {
		return err
	}
	gokit.Emit(map[string]string{"peer_id": id})
	return nil
}
