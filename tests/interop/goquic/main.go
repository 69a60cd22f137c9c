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
// Contract (as gopeer's): one JSON line {"peer_id", "addrs"} on stdout once
// listening, logs on stderr, {"error"} and a non-zero exit on failure.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	echoProtocol      = "/echo/1.0.0"
	resetProtocol     = "/test/reset/1.0.0"
	halfcloseProtocol = "/test/halfclose/1.0.0"
	halfcloseLimit    = 256 << 20
)

var logger = log.New(os.Stderr, "goquic: ", log.Lmicroseconds)

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// WorkRequest and WorkResponse mirror masa-oracle's types (see gopeer).
type WorkRequest struct {
	WorkType  string `json:"workType,omitempty"`
	RequestId string `json:"requestId,omitempty"`
	Data      []byte `json:"data,omitempty"`
}

type WorkResponse struct {
	WorkRequest  *WorkRequest `json:"workRequest,omitempty"`
	Data         interface{}  `json:"data,omitempty"`
	Error        string       `json:"error,omitempty"`
	WorkerPeerId string       `json:"workerPeerId,omitempty"`
}

func emit(v any) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

func fail(err error) {
	logger.Printf("error: %v", err)
	emit(map[string]string{"error": err.Error()})
	os.Exit(1)
}

func identity(keyType, keyFile string) (crypto.PrivKey, error) {
	if keyFile != "" {
		raw, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		text := strings.TrimSpace(string(raw))
		if decoded, herr := hex.DecodeString(text); herr == nil && len(text) > 0 {
			raw = decoded
		}
		return crypto.UnmarshalPrivateKey(raw)
	}
	kinds := map[string]int{"ed25519": crypto.Ed25519, "secp256k1": crypto.Secp256k1,
		"ecdsa": crypto.ECDSA, "rsa": crypto.RSA}
	kt, ok := kinds[strings.ToLower(keyType)]
	if !ok {
		return nil, fmt.Errorf("unknown key type %q", keyType)
	}
	priv, _, err := crypto.GenerateKeyPair(kt, 2048)
	return priv, err
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "bench" && os.Args[2] == "listen" {
		if err := cmdBenchListen(); err != nil {
			fail(err)
		}
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		fail(fmt.Errorf("usage: goquic serve [--listen ADDR]... [--key-type T|--key-file F] [--echo] [--worker] | goquic bench listen"))
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var listen stringList
	fs.Var(&listen, "listen", "listen multiaddr (repeatable; default /ip4/127.0.0.1/udp/0/quic-v1)")
	keyType := fs.String("key-type", "ed25519", "ed25519|secp256k1|ecdsa|rsa")
	keyFile := fs.String("key-file", "", "private key file (protobuf, binary or hex)")
	echo := fs.Bool("echo", false, "serve "+echoProtocol)
	worker := fs.Bool("worker", false, "serve masa's worker protocol")
	version := fs.String("protocol-version", "v0.8.4", "masa protocol version")
	noPing := fs.Bool("no-ping", false, "disable the ping service (as masa does)")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(os.Args[2:]); err != nil {
		fail(err)
	}
	if len(listen) == 0 {
		listen = stringList{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	priv, err := identity(*keyType, *keyFile)
	if err != nil {
		fail(err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		fail(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.NoTransports,
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.ListenAddrStrings(listen...),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.Ping(!*noPing),
	)
	if err != nil {
		fail(err)
	}
	defer h.Close()
	if *echo {
		h.SetStreamHandler(echoProtocol, handleEcho)
	}
	h.SetStreamHandler(resetProtocol, handleReset)
	h.SetStreamHandler(halfcloseProtocol, handleHalfclose)
	if *worker {
		h.SetStreamHandler(protocol.ID("/masa/worker_protocol/"+*version), handleWorkerStream)
	}
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			logger.Printf("connected %s %s", c.RemotePeer(), c.RemoteMultiaddr())
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			logger.Printf("disconnected %s", c.RemotePeer())
		},
	})
	p2p, err := ma.NewComponent("p2p", h.ID().String())
	if err != nil {
		fail(err)
	}
	addrs := []string{}
	for _, a := range h.Network().ListenAddresses() {
		addrs = append(addrs, a.Encapsulate(p2p).String())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	emit(map[string]any{"peer_id": h.ID().String(), "addrs": addrs})
	s := <-sig
	logger.Printf("got %v, shutting down", s)
}

func handleEcho(s network.Stream) {
	n, err := io.Copy(s, s)
	if err != nil {
		logger.Printf("echo: %v after %d bytes, resetting", err, n)
		s.Reset()
		return
	}
	if err := s.CloseWrite(); err != nil {
		logger.Printf("echo: close write: %v", err)
	}
	s.Close()
}

func handleReset(s network.Stream) {
	buf := make([]byte, 1024)
	n, err := s.Read(buf)
	logger.Printf("reset: read %d bytes (err %v), resetting", n, err)
	s.Reset()
}

func handleHalfclose(s network.Stream) {
	n, err := io.Copy(io.Discard, io.LimitReader(s, halfcloseLimit))
	if err != nil {
		logger.Printf("halfclose: %v after %d bytes, resetting", err, n)
		s.Reset()
		return
	}
	if _, err := fmt.Fprintf(s, "got %d bytes", n); err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// handleWorkerStream follows masa's HandleWorkerStream (see gopeer serve.go).
func handleWorkerStream(s network.Stream) {
	defer s.Close()
	lengthBuf := make([]byte, 4)
	if _, err := io.ReadFull(s, lengthBuf); err != nil {
		logger.Printf("worker: reading message length: %v", err)
		return
	}
	messageBuf := make([]byte, binary.BigEndian.Uint32(lengthBuf))
	if _, err := io.ReadFull(s, messageBuf); err != nil {
		logger.Printf("worker: reading message: %v", err)
		return
	}
	var req WorkRequest
	if err := json.Unmarshal(messageBuf, &req); err != nil {
		logger.Printf("worker: unmarshaling work request: %v", err)
		return
	}
	resp := WorkResponse{Error: "work handler not found"}
	if req.WorkType == "test" {
		resp = WorkResponse{Data: string(req.Data)}
	}
	resp.WorkerPeerId = s.Conn().LocalPeer().String()
	out, err := json.Marshal(resp)
	if err != nil {
		return
	}
	binary.BigEndian.PutUint32(lengthBuf, uint32(len(out)))
	if _, err := s.Write(lengthBuf); err != nil {
		return
	}
	if _, err := s.Write(out); err != nil {
		logger.Printf("worker: writing response: %v", err)
	}
}
