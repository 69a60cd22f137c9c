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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tlssec "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// logger writes to stderr so stdout carries nothing but the JSON result.
var logger = log.New(os.Stderr, "gopeer: ", log.Lmicroseconds)

// usageError marks a bad command line (exit status 2 instead of 1).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	if len(os.Args) < 2 {
		fail(usageError{"usage: gopeer serve|ping|echo|identify|reset|halfclose|work|keygen|bench|tlscert|tlsverify [options]"})
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = cmdServe(args)
	case "ping":
		err = cmdPing(args)
	case "echo":
		err = cmdEcho(args)
	case "identify":
		err = cmdIdentify(args)
	case "reset":
		err = cmdReset(args)
	case "halfclose":
		err = cmdHalfclose(args)
	case "work":
		err = cmdWork(args)
	case "bench":
		err = cmdBench(args)
	case "keygen":
		err = cmdKeygen(args)
	case "tlscert":
		err = cmdTLSCert(args)
	case "tlsverify":
		err = cmdTLSVerify(args)
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if err != nil {
		fail(err)
	}
}

// emit prints the single JSON result line.
func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(append(b, '\n'))
}

func fail(err error) {
	logger.Printf("error: %v", err)
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	os.Stdout.Write(append(b, '\n'))
	var ue usageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	os.Exit(1)
}

// parseArgs parses flags that may appear before or after positional
// arguments (Go's flag package stops at the first positional one).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(os.Stderr)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
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

func parseKeyType(name string) (int, error) {
	switch strings.ToLower(name) {
	case "ed25519":
		return crypto.Ed25519, nil
	case "secp256k1":
		return crypto.Secp256k1, nil
	case "ecdsa":
		return crypto.ECDSA, nil
	case "rsa":
		return crypto.RSA, nil
	}
	return 0, usageError{fmt.Sprintf("unknown key type %q", name)}
}

func generateKey(name string) (crypto.PrivKey, error) {
	kt, err := parseKeyType(name)
	if err != nil {
		return nil, err
	}
	priv, _, err := crypto.GenerateKeyPair(kt, 2048)
	return priv, err
}

// loadKeyFile reads a marshalled private key: raw protobuf bytes, or the
// hex text of them as masa stores its key (whitespace tolerated).
func loadKeyFile(path string) (crypto.PrivKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(raw))
	if decoded, herr := hex.DecodeString(text); herr == nil && len(text) > 0 {
		raw = decoded
	}
	return crypto.UnmarshalPrivateKey(raw)
}

func (o *stackOptions) identity() (crypto.PrivKey, error) {
	if o.keyFile != "" {
		return loadKeyFile(o.keyFile)
	}
	return generateKey(o.keyType)
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
	return nil, usageError{fmt.Sprintf("unknown security mode %q", o.security)}
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
	limiter := rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits)
	rm, err := rcmgr.NewResourceManager(limiter)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.Ping(!o.disablePing),
	}
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
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"keygen needs --out PATH"}
	}
	priv, err := generateKey(*keyType)
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
	id, err := peerIDOf(priv)
	if err != nil {
		return err
	}
	emit(map[string]string{"peer_id": id})
	return nil
}
