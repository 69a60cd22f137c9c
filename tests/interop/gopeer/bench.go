package main

// The bench mode of the go peer: `gopeer bench listen` and `gopeer bench dial <scenario>
// --addr A --params JSON`, the same role contract as the Python bench peers (see
// bench/peer_common.py): the listener prints {"addr": ...} and serves until stdin closes; the
// dialer prints one JSON result line, and the memory scenarios print {"phase": ...} lines and
// wait for a line on stdin after each. Hosts are Noise + yamux over TCP only, with Ed25519 keys
// and infinite resource limits (newHost in main.go), so the figures are native go-libp2p.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gokit"
)

const (
	benchEcho = "/bench/echo/1.0.0"
	benchSink = "/bench/sink/1.0.0"
)

type benchParams struct {
	Size        int     `json:"size"`
	Streams     int     `json:"streams"`
	Chunk       int     `json:"chunk"`
	Count       int     `json:"count"`
	Concurrency int     `json:"concurrency"`
	BudgetS     float64 `json:"budget_s"`
}

func benchStack() *stackOptions {
	return &stackOptions{keyType: "ed25519", security: "noise-only"}
}

func cmdBench(args []string) error {
	if len(args) < 1 {
		return gokit.Usagef("usage: gopeer bench listen | bench dial <scenario> --addr A --params JSON")
	}
	switch args[0] {
	case "listen":
		return benchListen()
	case "dial":
		return benchDial(args[1:])
	}
	return gokit.Usagef("unknown bench role %q", args[0])
}

func benchListen() error {
	h, err := benchStack().newHost([]string{"/ip4/127.0.0.1/tcp/0"})
	if err != nil {
		return err
	}
	defer h.Close()
	h.SetStreamHandler(benchEcho, benchEchoHandler())
	h.SetStreamHandler(benchSink, gokit.HandleSink)
	h.SetStreamHandler(workerProtocol("v0.8.4", ""), gokit.HandleTestWork)
	return gokit.ServeUntilStdinCloses(h)
}

// benchEchoHandler is gokit.HandleEcho, with BENCH_CHUNK (when set) as the size of each read: io.Copy
// on a yamux stream otherwise reads into its own 32 KiB buffer.
func benchEchoHandler() network.StreamHandler {
	chunk, err := strconv.Atoi(os.Getenv("BENCH_CHUNK"))
	if err != nil || chunk <= 0 {
		return gokit.HandleEcho
	}
	return func(s network.Stream) {
		buf := make([]byte, chunk)
		// Plain Reader/Writer wrappers, so io.CopyBuffer uses buf rather than WriterTo/ReaderFrom.
		if _, err := io.CopyBuffer(struct{ io.Writer }{s}, struct{ io.Reader }{s}, buf); err != nil {
			s.Reset()
			return
		}
		s.CloseWrite()
		s.Close()
	}
}

func benchDial(args []string) error {
	fs := flag.NewFlagSet("bench dial", flag.ContinueOnError)
	addr := fs.String("addr", "", "listener multiaddr ending in /p2p/<id>")
	params := fs.String("params", "{}", "scenario parameters (JSON)")
	pos, err := gokit.ParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return gokit.Usagef("bench dial needs one scenario")
	}
	var p benchParams
	if err := json.Unmarshal([]byte(*params), &p); err != nil {
		return gokit.Usagef("bad --params: %v", err)
	}
	if p.BudgetS == 0 {
		p.BudgetS = 10
	}
	if p.Concurrency == 0 {
		p.Concurrency = 1
	}
	maddr, err := ma.NewMultiaddr(*addr)
	if err != nil {
		return gokit.Usagef("bad --addr: %v", err)
	}
	info, err := peer.AddrInfoFromP2pAddr(maddr)
	if err != nil {
		return gokit.Usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if pos[0] == "conns" {
		return benchConns(ctx, *info, p)
	}
	h, err := benchStack().newHost(nil)
	if err != nil {
		return err
	}
	defer h.Close()
	if pos[0] == "handshakes" {
		return benchHandshakes(ctx, h, *info, p)
	}
	if err := h.Connect(ctx, *info); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	switch pos[0] {
	case "bulk":
		return benchBulk(ctx, h, info.ID, p)
	case "echo":
		return benchEchoRun(ctx, h, info.ID, p)
	case "rr":
		payload := make([]byte, max(p.Size, 1))
		return benchRequests(p, func() error { return echoOnce(ctx, h, info.ID, payload) })
	case "worker":
		return benchRequests(p, func() error { return workOnce(ctx, h, info.ID, max(p.Size, 1)) })
	case "streams":
		return benchStreams(ctx, h, info.ID, p)
	}
	return gokit.Usagef("unknown scenario %q", pos[0])
}

func benchBulk(ctx context.Context, h host.Host, id peer.ID, p benchParams) error {
	chunk := p.Chunk
	if chunk == 0 {
		chunk = 256 << 10
	}
	block := make([]byte, chunk)
	start := time.Now()
	s, err := h.NewStream(ctx, id, benchSink)
	if err != nil {
		return err
	}
	for sent := 0; sent < p.Size; {
		n := min(chunk, p.Size-sent)
		if _, err := s.Write(block[:n]); err != nil {
			s.Reset()
			return err
		}
		sent += n
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	var ack [8]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		s.Reset()
		return err
	}
	seconds := time.Since(start).Seconds()
	s.Close()
	if got := binary.BigEndian.Uint64(ack[:]); got != uint64(p.Size) {
		return fmt.Errorf("sink counted %d of %d bytes", got, p.Size)
	}
	gokit.Emit(map[string]any{"bytes": p.Size, "seconds": seconds, "mb_per_s": float64(p.Size) / seconds / 1e6})
	return nil
}

// benchEchoRun opens p.Streams echo streams at once; on each a goroutine writes its share of
// p.Size in p.Chunk-byte writes while the stream's own goroutine reads the echo back.
func benchEchoRun(ctx context.Context, h host.Host, id peer.ID, p benchParams) error {
	chunk := p.Chunk
	if chunk == 0 {
		chunk = 256 << 10
	}
	streams := max(p.Streams, 1)
	block := make([]byte, chunk)
	errs := make(chan error, streams)
	start := time.Now()
	for i := 0; i < streams; i++ {
		share := p.Size / streams
		if i < p.Size%streams {
			share++
		}
		go func() { errs <- echoShare(ctx, h, id, block, share) }()
	}
	var first error
	for i := 0; i < streams; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	seconds := time.Since(start).Seconds()
	gokit.Emit(map[string]any{"bytes": p.Size, "seconds": seconds, "mb_per_s": float64(p.Size) / seconds / 1e6})
	return nil
}

func echoShare(ctx context.Context, h host.Host, id peer.ID, block []byte, share int) error {
	s, err := h.NewStream(ctx, id, benchEcho)
	if err != nil {
		return err
	}
	written := make(chan error, 1)
	go func() {
		for sent := 0; sent < share; {
			n := min(len(block), share-sent)
			if _, err := s.Write(block[:n]); err != nil {
				written <- err
				return
			}
			sent += n
		}
		written <- s.CloseWrite()
	}()
	buf := make([]byte, len(block))
	got := 0
	for {
		n, err := s.Read(buf)
		got += n
		if err == io.EOF {
			break
		}
		if err != nil {
			s.Reset()
			return err
		}
	}
	if err := <-written; err != nil {
		s.Reset()
		return err
	}
	s.Close()
	if got != share {
		return fmt.Errorf("echo returned %d of %d bytes", got, share)
	}
	return nil
}

// echoOnce opens an echo stream, sends payload, half-closes and checks the echo up to EOF.
func echoOnce(ctx context.Context, h host.Host, id peer.ID, payload []byte) error {
	s, err := h.NewStream(ctx, id, benchEcho)
	if err != nil {
		return err
	}
	if _, err := s.Write(payload); err != nil {
		s.Reset()
		return err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return err
	}
	got, err := io.ReadAll(io.LimitReader(s, int64(len(payload))+1))
	if err != nil {
		s.Reset()
		return err
	}
	s.Close()
	if len(got) != len(payload) {
		return fmt.Errorf("echo returned %d of %d bytes", len(got), len(payload))
	}
	return nil
}

func benchHandshakes(ctx context.Context, h host.Host, info peer.AddrInfo, p benchParams) error {
	payload := make([]byte, 32)
	budget := time.Duration(p.BudgetS * float64(time.Second))
	start := time.Now()
	done := 0
	for done < p.Count && time.Since(start) < budget {
		if err := h.Connect(ctx, info); err != nil {
			return err
		}
		if err := echoOnce(ctx, h, info.ID, payload); err != nil {
			return err
		}
		if err := h.Network().ClosePeer(info.ID); err != nil {
			return err
		}
		done++
	}
	seconds := time.Since(start).Seconds()
	gokit.Emit(map[string]any{"count": done, "seconds": seconds, "per_s": float64(done) / seconds})
	return nil
}

// workOnce sends one WorkRequest over masa's worker protocol and checks the answer.
func workOnce(ctx context.Context, h host.Host, id peer.ID, size int) error {
	s, err := h.NewStream(ctx, id, workerProtocol("v0.8.4", ""))
	if err != nil {
		return err
	}
	// The same data as our bench peer sends ('w' bytes): the answer is that text back, so both
	// stacks encode the same JSON (zero bytes would make go's answer six times longer: \u0000).
	data := bytes.Repeat([]byte("w"), size)
	body, err := json.Marshal(gokit.WorkRequest{WorkType: "test", RequestId: "bench", Data: data})
	if err != nil {
		return err
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	if _, err := s.Write(append(frame, body...)); err != nil {
		s.Reset()
		return err
	}
	var head [4]byte
	if _, err := io.ReadFull(s, head[:]); err != nil {
		s.Reset()
		return err
	}
	buf := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := io.ReadFull(s, buf); err != nil {
		s.Reset()
		return err
	}
	s.Close()
	var resp gokit.WorkResponse
	if err := json.Unmarshal(buf, &resp); err != nil {
		return err
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	return nil
}

// benchRequests runs `one` by p.Concurrency workers, at most p.Count times within the budget.
func benchRequests(p benchParams, one func() error) error {
	var (
		mu        sync.Mutex
		latencies []float64
		failures  int
		firstErr  string
		issued    int
		wg        sync.WaitGroup
	)
	budget := time.Duration(p.BudgetS * float64(time.Second))
	cpuStart, cpuErr := cpuSeconds()
	start := time.Now()
	for w := 0; w < p.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if issued >= p.Count || time.Since(start) >= budget {
					mu.Unlock()
					return
				}
				issued++
				mu.Unlock()
				t0 := time.Now()
				err := one()
				elapsed := time.Since(t0).Seconds()
				mu.Lock()
				if err != nil {
					failures++
					if firstErr == "" {
						firstErr = err.Error()
					}
				} else {
					latencies = append(latencies, elapsed)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()
	cpuEnd, err := cpuSeconds()
	sort.Float64s(latencies)
	res := map[string]any{"count": len(latencies), "failures": failures, "seconds": seconds,
		"per_s": float64(len(latencies)) / seconds, "p50_ms": nil, "p99_ms": nil, "first_error": nil}
	if cpuErr == nil && err == nil {
		res["cpu_s"] = cpuEnd - cpuStart
	}
	if len(latencies) > 0 {
		res["p50_ms"] = percentile(latencies, 50) * 1000
		res["p99_ms"] = percentile(latencies, 99) * 1000
	}
	if firstErr != "" {
		res["first_error"] = firstErr
	}
	gokit.Emit(res)
	return nil
}

// cpuSeconds is this process's CPU time so far, all threads, user + system (as the Python peers'
// time.process_time), so the harness can give the dialer's CPU per request.
func cpuSeconds() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), nil
}

// percentile is the nearest-rank percentile of sorted values (as bench/peer_common.py).
func percentile(sorted []float64, q float64) float64 {
	rank := max(1, min(len(sorted), int(math.Ceil(q/100*float64(len(sorted))))))
	return sorted[rank-1]
}

var stdinLines = bufio.NewReader(os.Stdin)

// phase announces a measurement point and waits for the harness to read the listener's RSS.
func phase(name string, extra map[string]any) {
	m := map[string]any{"phase": name}
	for k, v := range extra {
		m[k] = v
	}
	gokit.Emit(m)
	stdinLines.ReadString('\n')
}

func benchConns(ctx context.Context, info peer.AddrInfo, p benchParams) error {
	var hosts []host.Host
	defer func() {
		for _, h := range hosts {
			h.Close()
		}
	}()
	return openAndHold(p.Count, func() error {
		h, err := benchStack().newHost(nil)
		if err != nil {
			return err
		}
		hosts = append(hosts, h)
		if err := h.Connect(ctx, info); err != nil {
			return err
		}
		return echoOnce(ctx, h, info.ID, []byte("x"))
	})
}

func benchStreams(ctx context.Context, h host.Host, id peer.ID, p benchParams) error {
	var streams []network.Stream
	defer func() {
		for _, s := range streams {
			s.Reset()
		}
	}()
	buf := make([]byte, 1)
	return openAndHold(p.Count, func() error {
		s, err := h.NewStream(ctx, id, benchEcho)
		if err != nil {
			return err
		}
		streams = append(streams, s)
		if _, err := s.Write([]byte("x")); err != nil {
			return err
		}
		_, err = io.ReadFull(s, buf)
		return err
	})
}

// openAndHold is the memory scenarios' shape: open count+1 things (connections or streams),
// announcing "warm" after the first, then "ready" and the result while all are held.
func openAndHold(count int, open func() error) error {
	for i := 0; i <= count; i++ {
		if err := open(); err != nil {
			return err
		}
		if i == 0 {
			phase("warm", nil)
		}
	}
	phase("ready", map[string]any{"count": count})
	gokit.Emit(map[string]any{"ok": true, "count": count})
	return nil
}
