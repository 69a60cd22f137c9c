package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"

	"gokit"
)

// dialer is a connected host plus the context bounding the whole command.
type dialer struct {
	h         host.Host
	target    peer.ID
	ctx       context.Context
	cancel    context.CancelFunc
	connectMs float64
	idSub     event.Subscription
	runq      *runQueue // with --runq-pids: run-queue waits from before the connect
}

// dial parses the common dialer flags (plus the command's own ones, already
// registered on fs), builds a host and connects to the single positional
// multiaddr, which must end in /p2p/<id>.
func dial(fs *flag.FlagSet, args []string) (*dialer, error) {
	var so stackOptions
	so.register(fs)
	timeout := fs.Float64("timeout", 30, "overall deadline in seconds")
	runq := fs.String("runq-pids", "", "comma-separated process IDs: ping reports how long "+
		"their threads and its own waited for a CPU from the connect to the last pong")
	pos, err := gokit.ParseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	runqPids, err := parsePids(*runq)
	if err != nil {
		return nil, gokit.Usagef("--runq-pids: %v", err)
	}
	if len(pos) != 1 {
		return nil, gokit.Usagef("%s needs exactly one multiaddr ending in /p2p/<peer id>", fs.Name())
	}
	addr, err := ma.NewMultiaddr(pos[0])
	if err != nil {
		return nil, gokit.Usagef("bad multiaddr %q: %v", pos[0], err)
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return nil, gokit.Usagef("multiaddr %q: %v", pos[0], err)
	}
	h, err := so.newHost(nil)
	if err != nil {
		return nil, err
	}
	// Subscribe before connecting so the identify outcome cannot be missed.
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerIdentificationFailed),
	})
	if err != nil {
		h.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeout*float64(time.Second)))
	d := &dialer{h: h, target: info.ID, ctx: ctx, cancel: cancel, idSub: sub}
	if *runq != "" {
		if d.runq, err = newRunQueue(runqPids); err != nil {
			d.close()
			return nil, err
		}
	}
	start := time.Now()
	if err := h.Connect(ctx, *info); err != nil {
		d.close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	d.connectMs = msSince(start)
	logger.Printf("connected to %s in %.2f ms", info.ID, d.connectMs)
	return d, nil
}

func (d *dialer) close() {
	d.idSub.Close()
	d.h.Close()
	d.cancel()
}

// waitIdentify blocks until go's identify with the target finished.
func (d *dialer) waitIdentify() (*event.EvtPeerIdentificationCompleted, error) {
	for {
		select {
		case <-d.ctx.Done():
			return nil, fmt.Errorf("waiting for identify: %w", d.ctx.Err())
		case ev, ok := <-d.idSub.Out():
			if !ok {
				return nil, errors.New("event bus closed")
			}
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				if e.Peer == d.target {
					return &e, nil
				}
			case event.EvtPeerIdentificationFailed:
				if e.Peer == d.target {
					return nil, fmt.Errorf("identify failed: %w", e.Reason)
				}
			}
		}
	}
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

func cmdPing(args []string) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	count := fs.Int("count", 3, "number of pings")
	d, err := dial(fs, args)
	if err != nil {
		return err
	}
	defer d.close()
	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	results := ping.Ping(ctx, d.h, d.target)
	rtts := []float64{}
	for len(rtts) < *count {
		r, ok := <-results
		if !ok {
			return errors.New("ping stream ended early")
		}
		if r.Error != nil {
			return fmt.Errorf("ping: %w", r.Error)
		}
		rtts = append(rtts, float64(r.RTT.Microseconds())/1000)
	}
	out := map[string]any{"peer_id": d.target.String(), "rtt_ms": rtts, "connect_ms": d.connectMs}
	if d.runq != nil {
		waited, err := d.runq.waitedMs()
		if err != nil {
			return err
		}
		out["runq_wait_ms"] = waited
	}
	gokit.Emit(out)
	return nil
}

// keystream returns a reproducible pseudo-random byte source (AES-CTR), so
// a stream's echo can be verified without keeping what was sent.
func keystream(key []byte) cipher.Stream {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	return cipher.NewCTR(block, make([]byte, aes.BlockSize))
}

const chunkSize = 32 << 10

// echoOne sends size pseudo-random bytes on a fresh /echo/1.0.0 stream while
// reading the echo concurrently, half-closes, and verifies every byte and
// the final EOF.
func echoOne(ctx context.Context, h host.Host, p peer.ID, size int) error {
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	s, err := h.NewStream(ctx, p, gokit.EchoProtocol)
	if err != nil {
		return fmt.Errorf("new stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	writeErr := make(chan error, 1)
	go func() {
		src, buf := keystream(key), make([]byte, chunkSize)
		for left := size; left > 0; {
			n := min(left, chunkSize)
			clear(buf[:n])
			src.XORKeyStream(buf[:n], buf[:n])
			if _, err := s.Write(buf[:n]); err != nil {
				writeErr <- fmt.Errorf("write: %w", err)
				return
			}
			left -= n
		}
		writeErr <- s.CloseWrite()
	}()
	want, got, buf := keystream(key), make([]byte, chunkSize), make([]byte, chunkSize)
	received := 0
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if received+n > size {
				s.Reset()
				return fmt.Errorf("echo sent more than %d bytes", size)
			}
			clear(got[:n])
			want.XORKeyStream(got[:n], got[:n])
			if !bytes.Equal(got[:n], buf[:n]) {
				s.Reset()
				return fmt.Errorf("echo mismatch in bytes %d..%d", received, received+n)
			}
			received += n
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			s.Reset()
			return fmt.Errorf("read after %d bytes: %w", received, err)
		}
	}
	if err := <-writeErr; err != nil {
		s.Reset()
		return err
	}
	if received != size {
		return fmt.Errorf("echo returned %d of %d bytes", received, size)
	}
	return s.Close()
}

func cmdEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	size := fs.Int("size", 1<<20, "bytes per stream")
	streams := fs.Int("streams", 1, "concurrent streams")
	d, err := dial(fs, args)
	if err != nil {
		return err
	}
	defer d.close()
	if *size < 0 || *streams < 1 {
		return gokit.Usagef("--size must be >= 0 and --streams >= 1")
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, *streams)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = echoOne(d.ctx, d.h, d.target, *size)
		}(i)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	total := *size * *streams
	gokit.Emit(map[string]any{
		"ok": true, "bytes": total, "streams": *streams, "seconds": secs,
		"mb_per_s": float64(total) / 1e6 / secs, "connect_ms": d.connectMs,
	})
	return nil
}

var keyTypeNames = map[int]string{
	crypto.RSA: "rsa", crypto.Ed25519: "ed25519", crypto.Secp256k1: "secp256k1", crypto.ECDSA: "ecdsa",
}

func cmdIdentify(args []string) error {
	fs := flag.NewFlagSet("identify", flag.ContinueOnError)
	d, err := dial(fs, args)
	if err != nil {
		return err
	}
	defer d.close()
	ev, err := d.waitIdentify()
	if err != nil {
		return err
	}
	ps := d.h.Peerstore()
	protos, err := ps.GetProtocols(d.target)
	if err != nil {
		return err
	}
	protoNames := make([]string, 0, len(protos))
	for _, p := range protos {
		protoNames = append(protoNames, string(p))
	}
	sort.Strings(protoNames)
	out := map[string]any{
		"peer_id":            d.target.String(),
		"protocols":          protoNames,
		"listen_addrs":       addrStrings(ev.ListenAddrs),
		"peerstore_addrs":    addrStrings(ps.Addrs(d.target)),
		"signed_peer_record": ev.SignedPeerRecord != nil,
		"observed_addr":      nil,
		"connect_ms":         d.connectMs,
	}
	if ev.ObservedAddr != nil {
		out["observed_addr"] = ev.ObservedAddr.String()
	}
	for key, name := range map[string]string{"AgentVersion": "agent_version", "ProtocolVersion": "protocol_version"} {
		if v, err := ps.Get(d.target, key); err == nil {
			out[name] = v
		} else {
			out[name] = nil
		}
	}
	if pk := ps.PubKey(d.target); pk != nil {
		pb, err := crypto.MarshalPublicKey(pk)
		if err != nil {
			return err
		}
		out["public_key_type"] = keyTypeNames[int(pk.Type())]
		out["public_key_hex"] = hex.EncodeToString(pb)
	}
	gokit.Emit(out)
	return nil
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

// cmdReset opens /echo/1.0.0, writes a few bytes, reads their echo (so the
// remote handler is known to be running) and then resets the stream.
func cmdReset(args []string) error {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	d, err := dial(fs, args)
	if err != nil {
		return err
	}
	defer d.close()
	s, err := d.h.NewStream(d.ctx, d.target, gokit.EchoProtocol)
	if err != nil {
		return fmt.Errorf("new stream: %w", err)
	}
	dl, _ := d.ctx.Deadline()
	s.SetDeadline(dl)
	msg := []byte("reset me")
	if _, err := s.Write(msg); err != nil {
		s.Reset()
		return fmt.Errorf("write: %w", err)
	}
	echoed := make([]byte, len(msg))
	if _, err := io.ReadFull(s, echoed); err != nil {
		s.Reset()
		return fmt.Errorf("read echo: %w", err)
	}
	if err := s.Reset(); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	gokit.Emit(map[string]any{"ok": bytes.Equal(echoed, msg), "written": len(msg), "echoed": string(echoed), "reset": true})
	return nil
}

// cmdHalfclose writes N bytes on /test/halfclose/1.0.0, half-closes and
// expects the reply "got N bytes" followed by EOF.
func cmdHalfclose(args []string) error {
	fs := flag.NewFlagSet("halfclose", flag.ContinueOnError)
	size := fs.Int("size", 1000, "bytes to send before closing the write side")
	d, err := dial(fs, args)
	if err != nil {
		return err
	}
	defer d.close()
	s, err := d.h.NewStream(d.ctx, d.target, gokit.HalfcloseProtocol)
	if err != nil {
		return fmt.Errorf("new stream: %w", err)
	}
	dl, _ := d.ctx.Deadline()
	s.SetDeadline(dl)
	if _, err := s.Write(bytes.Repeat([]byte{'x'}, *size)); err != nil {
		s.Reset()
		return fmt.Errorf("write: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return fmt.Errorf("close write: %w", err)
	}
	reply, err := io.ReadAll(io.LimitReader(s, 4096))
	if err != nil {
		s.Reset()
		return fmt.Errorf("read reply: %w", err)
	}
	s.Close()
	want := fmt.Sprintf("got %d bytes", *size)
	gokit.Emit(map[string]any{"ok": string(reply) == want, "bytes": *size, "reply": string(reply)})
	return nil
}

// cmdWork does what masa's sendWorkToWorker does: connect, open a stream on
// the worker protocol, write length + JSON request, read length + JSON
// response. The raw response bytes are reported alongside the decoded form.
func cmdWork(args []string) error {
	fs := flag.NewFlagSet("work", flag.ContinueOnError)
	workType := fs.String("type", "test", "work type")
	data := fs.String("data", "", "request data (sent as []byte, i.e. base64 in JSON)")
	requestID := fs.String("request-id", "", "request id")
	version := fs.String("protocol-version", "v0.8.4", "masa protocol version")
	env := fs.String("env", "", "masa environment suffix")
	d, err := dial(fs, args)
	if err != nil {
		return err
	}
	defer d.close()
	req := gokit.WorkRequest{WorkType: *workType, RequestId: *requestID, Data: []byte(*data)}
	s, err := d.h.NewStream(d.ctx, d.target, workerProtocol(*version, *env))
	if err != nil {
		return fmt.Errorf("new stream: %w", err)
	}
	defer s.Close()
	dl, _ := d.ctx.Deadline()
	s.SetDeadline(dl)
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	lengthBuf := make([]byte, 4)
	binary.BigEndian.PutUint32(lengthBuf, uint32(len(body)))
	if _, err := s.Write(lengthBuf); err != nil {
		return fmt.Errorf("write length: %w", err)
	}
	if _, err := s.Write(body); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	if _, err := io.ReadFull(s, lengthBuf); err != nil {
		return fmt.Errorf("read response length: %w", err)
	}
	respBuf := make([]byte, binary.BigEndian.Uint32(lengthBuf))
	if _, err := io.ReadFull(s, respBuf); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	var resp gokit.WorkResponse
	if err := json.Unmarshal(respBuf, &resp); err != nil {
		return fmt.Errorf("unmarshal response %q: %w", strings.ToValidUTF8(string(respBuf), "?"), err)
	}
	gokit.Emit(map[string]any{"raw": string(respBuf), "response": resp, "protocol": string(s.Protocol())})
	return nil
}
