package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Test protocol IDs served by "serve".
const (
	echoProtocol      = "/echo/1.0.0"
	resetProtocol     = "/test/reset/1.0.0"
	halfcloseProtocol = "/test/halfclose/1.0.0"
	// halfcloseLimit bounds what the half-close handler buffers.
	halfcloseLimit = 256 << 20
)

// WorkRequest and WorkResponse mirror masa-oracle's types (same Go field
// order and json tags), so encoding/json produces masa's exact bytes.
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

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func peerIDOf(priv crypto.PrivKey) (string, error) {
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var so stackOptions
	so.register(fs)
	var listen stringList
	fs.Var(&listen, "listen", "listen multiaddr (repeatable; default /ip4/127.0.0.1/tcp/0)")
	echo := fs.Bool("echo", false, "serve "+echoProtocol)
	worker := fs.Bool("worker", false, "serve masa's worker protocol")
	version := fs.String("protocol-version", "v0.8.4", "masa protocol version")
	env := fs.String("env", "", "masa environment suffix")
	fs.BoolVar(&so.disablePing, "no-ping", false, "disable the ping service (as masa does)")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if len(listen) == 0 {
		listen = stringList{"/ip4/127.0.0.1/tcp/0"}
	}
	h, err := so.newHost(listen)
	if err != nil {
		return err
	}
	defer h.Close()

	if *echo {
		h.SetStreamHandler(echoProtocol, handleEcho)
	}
	h.SetStreamHandler(resetProtocol, handleReset)
	h.SetStreamHandler(halfcloseProtocol, handleHalfclose)
	if *worker {
		h.SetStreamHandler(workerProtocol(*version, *env), handleWorkerStream)
	}
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			logger.Printf("connected %s %s (%s)", c.RemotePeer(), c.RemoteMultiaddr(), c.ConnState().Security)
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			logger.Printf("disconnected %s", c.RemotePeer())
		},
	})

	p2p, err := ma.NewComponent("p2p", h.ID().String())
	if err != nil {
		return err
	}
	addrs := []string{}
	for _, a := range h.Network().ListenAddresses() {
		addrs = append(addrs, a.Encapsulate(p2p).String())
	}
	// Catch signals before announcing: a harness may stop us right after the line.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	emit(map[string]any{"peer_id": h.ID().String(), "addrs": addrs})
	s := <-sig
	logger.Printf("got %v, shutting down", s)
	return nil
}

// handleEcho copies bytes back until the remote half-closes, then
// half-closes too; any error resets the stream.
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

// handleReset reads at least one byte, then resets the stream.
func handleReset(s network.Stream) {
	buf := make([]byte, 1024)
	n, err := s.Read(buf)
	logger.Printf("reset: read %d bytes (err %v), resetting", n, err)
	s.Reset()
}

// handleHalfclose reads until EOF, then answers "got N bytes" and closes.
func handleHalfclose(s network.Stream) {
	n, err := io.Copy(io.Discard, io.LimitReader(s, halfcloseLimit))
	if err != nil {
		logger.Printf("halfclose: %v after %d bytes, resetting", err, n)
		s.Reset()
		return
	}
	if _, err := fmt.Fprintf(s, "got %d bytes", n); err != nil {
		logger.Printf("halfclose: write: %v", err)
		s.Reset()
		return
	}
	s.Close()
}

// executeWork mirrors masa's ExecuteWork with a single "test" handler that
// returns the request data as a string.
func executeWork(req WorkRequest) WorkResponse {
	switch req.WorkType {
	case "test":
		return WorkResponse{Data: string(req.Data)}
	}
	return WorkResponse{Error: "work handler not found"}
}

// handleWorkerStream follows masa's HandleWorkerStream step by step: no
// bound on the length (as in masa), close the stream when done.
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
	resp := executeWork(req)
	if resp.Error != "" {
		logger.Printf("worker: executing work: %s", resp.Error)
	}
	resp.WorkerPeerId = s.Conn().LocalPeer().String()
	out, err := json.Marshal(resp)
	if err != nil {
		logger.Printf("worker: marshaling response: %v", err)
		return
	}
	binary.BigEndian.PutUint32(lengthBuf, uint32(len(out)))
	if _, err := s.Write(lengthBuf); err != nil {
		logger.Printf("worker: writing response length: %v", err)
		return
	}
	if _, err := s.Write(out); err != nil {
		logger.Printf("worker: writing response: %v", err)
	}
}
