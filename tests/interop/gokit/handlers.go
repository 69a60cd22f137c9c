package gokit

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// Test protocol IDs the listeners serve.
const (
	EchoProtocol      = "/echo/1.0.0"
	ResetProtocol     = "/test/reset/1.0.0"
	HalfcloseProtocol = "/test/halfclose/1.0.0"
	// halfcloseLimit bounds what the half-close handler buffers.
	halfcloseLimit = 256 << 20
)

// ServeTestProtocols sets the handlers of the reset and half-close test
// protocols, and of echo when asked.
func ServeTestProtocols(h host.Host, echo bool) {
	if echo {
		h.SetStreamHandler(EchoProtocol, HandleEcho)
	}
	h.SetStreamHandler(ResetProtocol, HandleReset)
	h.SetStreamHandler(HalfcloseProtocol, HandleHalfclose)
}

// HandleEcho copies bytes back until the remote half-closes, then
// half-closes too; any error resets the stream.
func HandleEcho(s network.Stream) {
	n, err := io.Copy(s, s)
	if err != nil {
		Log.Printf("echo: %v after %d bytes, resetting", err, n)
		s.Reset()
		return
	}
	if err := s.CloseWrite(); err != nil {
		Log.Printf("echo: close write: %v", err)
	}
	s.Close()
}

// HandleReset reads at least one byte, then resets the stream.
func HandleReset(s network.Stream) {
	buf := make([]byte, 1024)
	n, err := s.Read(buf)
	Log.Printf("reset: read %d bytes (err %v), resetting", n, err)
	s.Reset()
}

// HandleHalfclose reads until EOF, then answers "got N bytes" and closes.
func HandleHalfclose(s network.Stream) {
	n, err := io.Copy(io.Discard, io.LimitReader(s, halfcloseLimit))
	if err != nil {
		Log.Printf("halfclose: %v after %d bytes, resetting", err, n)
		s.Reset()
		return
	}
	if _, err := fmt.Fprintf(s, "got %d bytes", n); err != nil {
		Log.Printf("halfclose: write: %v", err)
		s.Reset()
		return
	}
	s.Close()
}

// HandleSink counts bytes until EOF, then answers the count (8 bytes, big
// endian): the bench's sink protocol.
func HandleSink(s network.Stream) {
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

// EchoTestWork is masa's ExecuteWork with a single "test" handler that
// returns the request data as a string.
func EchoTestWork(req WorkRequest) WorkResponse {
	if req.WorkType == "test" {
		return WorkResponse{Data: string(req.Data)}
	}
	return WorkResponse{Error: "work handler not found"}
}

// ServeWork answers one request on masa's worker protocol as masa's
// HandleWorkerStream does, step by step: a 4-byte big-endian length (no bound,
// as in masa), the JSON WorkRequest; execute's response with WorkerPeerId set,
// framed the same way; the stream is closed at the end. It reports whether the
// whole response was written.
func ServeWork(s network.Stream, execute func(WorkRequest) WorkResponse) bool {
	defer s.Close()
	lengthBuf := make([]byte, 4)
	if _, err := io.ReadFull(s, lengthBuf); err != nil {
		Log.Printf("worker: reading message length: %v", err)
		return false
	}
	messageBuf := make([]byte, binary.BigEndian.Uint32(lengthBuf))
	if _, err := io.ReadFull(s, messageBuf); err != nil {
		Log.Printf("worker: reading message: %v", err)
		return false
	}
	var req WorkRequest
	if err := json.Unmarshal(messageBuf, &req); err != nil {
		Log.Printf("worker: unmarshaling work request: %v", err)
		return false
	}
	resp := execute(req)
	if resp.Error != "" {
		Log.Printf("worker: executing work: %s", resp.Error)
	}
	resp.WorkerPeerId = s.Conn().LocalPeer().String()
	out, err := json.Marshal(resp)
	if err != nil {
		Log.Printf("worker: marshaling response: %v", err)
		return false
	}
	binary.BigEndian.PutUint32(lengthBuf, uint32(len(out)))
	if _, err := s.Write(lengthBuf); err != nil {
		Log.Printf("worker: writing response length: %v", err)
		return false
	}
	if _, err := s.Write(out); err != nil {
		Log.Printf("worker: writing response: %v", err)
		return false
	}
	return true
}

// HandleTestWork serves the worker protocol with EchoTestWork.
func HandleTestWork(s network.Stream) { ServeWork(s, EchoTestWork) }
