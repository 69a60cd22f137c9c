// Command godht runs a small network of go-libp2p v0.36.3 nodes, each with
// go-libp2p-kad-dht v0.26.1 and go-libp2p-pubsub v0.12.0 (GossipSub), in one
// process, for interop tests of the pure-Python Kademlia and GossipSub.
//
// Contract with the Python harness (tests/interop/godht.py): once every node
// listens and the DHT tables are filled, one JSON line on stdout:
// {"nodes":[{"peer_id":..,"addrs":[..]},..]}. Then it reads one JSON command
// per line on stdin and answers each with one JSON line on stdout carrying the
// command's "id" (commands run concurrently, answers may come out of order).
// Logs go to stderr. EOF on stdin ends the process.
//
// "godht vectors" prints byte vectors of kad and pubsub messages as go encodes
// them (known-answer tests) and exits.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"gokit"
)

var logger = gokit.Named("godht")

type message struct {
	From   string  `json:"from"`
	Data   string  `json:"data"`
	Seqno  string  `json:"seqno"`
	Topic  string  `json:"topic"`
	Via    string  `json:"via"`
	AtMs   float64 `json:"at_ms"`
	Signed bool    `json:"signed"`
}

type node struct {
	h      host.Host
	dht    *dht.IpfsDHT
	ps     *pubsub.PubSub
	mu     sync.Mutex
	topics map[string]*pubsub.Topic
	subs   map[string]*pubsub.Subscription
	got    map[string][]message
	trace  *wireTrace
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// unixMs is wall-clock time in ms, comparable with the Python side's time.time() on one machine.
func unixMs() float64 { return float64(time.Now().UnixMicro()) / 1000 }

// router picks the node's pubsub router: "gossipsub" (go's defaults, as masa), "meshsub10"
// (GossipSub speaking only /meshsub/1.0.0) or "floodsub".
func newNode(ctx context.Context, prefix string, bucket int, alpha int, router string) (*node, error) {
	priv, err := gokit.GenerateKey("secp256k1")
	if err != nil {
		return nil, err
	}
	hostOpts, err := gokit.TestHostOptions(priv)
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(append(hostOpts,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
	)...)
	if err != nil {
		return nil, err
	}
	opts := []dht.Option{dht.Mode(dht.ModeServer), dht.ProtocolPrefix(protocol.ID(prefix))}
	if prefix != "/ipfs" {
		opts = append(opts, dht.BucketSize(bucket), dht.Concurrency(alpha))
		if prefix == "/masa" { // masa's third record namespace (pkg/network/kdht.go)
			opts = append(opts, dht.NamespacedValidator("db", acceptAll{}))
		}
	}
	d, err := dht.New(ctx, h, opts...)
	if err != nil {
		return nil, err
	}
	var ps *pubsub.PubSub
	// the tracer only observes (go's options otherwise as masa: none)
	tr := newWireTrace()
	switch router {
	case "floodsub":
		ps, err = pubsub.NewFloodSub(ctx, h, pubsub.WithRawTracer(tr))
	case "meshsub10":
		ps, err = pubsub.NewGossipSub(ctx, h, pubsub.WithRawTracer(tr), pubsub.WithGossipSubProtocols(
			[]protocol.ID{pubsub.GossipSubID_v10}, pubsub.GossipSubDefaultFeatures))
	default:
		ps, err = pubsub.NewGossipSub(ctx, h, pubsub.WithRawTracer(tr))
	}
	if err != nil {
		return nil, err
	}
	return &node{h: h, dht: d, ps: ps, topics: map[string]*pubsub.Topic{},
		subs: map[string]*pubsub.Subscription{}, got: map[string][]message{}, trace: tr}, nil
}

func (n *node) info() map[string]any {
	addrs := []string{}
	for _, a := range n.h.Addrs() {
		addrs = append(addrs, fmt.Sprintf("%s/p2p/%s", a, n.h.ID()))
	}
	return map[string]any{"peer_id": n.h.ID().String(), "addrs": addrs}
}

func (n *node) join(ctx context.Context, name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.topics[name]; ok {
		return nil
	}
	t, err := n.ps.Join(name)
	if err != nil {
		return err
	}
	sub, err := t.Subscribe()
	if err != nil {
		return err
	}
	n.topics[name] = t
	n.subs[name] = sub
	go func() {
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			rec := message{
				From: m.GetFrom().String(), Data: hex.EncodeToString(m.GetData()),
				Seqno: hex.EncodeToString(m.GetSeqno()), Topic: m.GetTopic(),
				Via: m.ReceivedFrom.String(), AtMs: unixMs(), Signed: len(m.GetSignature()) > 0,
			}
			n.mu.Lock()
			n.got[name] = append(n.got[name], rec)
			n.mu.Unlock()
		}
	}()
	return nil
}

type command struct {
	ID        int    `json:"id"`
	Cmd       string `json:"cmd"`
	Node      int    `json:"node"`
	Peer      string `json:"peer"`
	Addr      string `json:"addr"`
	Key       string `json:"key"`
	Topic     string `json:"topic"`
	Data      string `json:"data"`
	TimeoutMs int    `json:"timeout_ms"`
	FindMs    int    `json:"find_ms"`
	Count     int    `json:"count"`
	Size      int    `json:"size"`
	ConnectMs int    `json:"connect_ms"`
}

func run(ctx context.Context, nodes []*node, c command) (map[string]any, error) {
	if c.Node < 0 || c.Node >= len(nodes) {
		return nil, fmt.Errorf("no node %d", c.Node)
	}
	n := nodes[c.Node]
	timeout := time.Duration(c.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if res, err, ok := runExtra(cctx, n, c); ok { // commands of extra.go
		return res, err
	}
	switch c.Cmd {
	case "connect":
		info, err := peer.AddrInfoFromString(c.Addr)
		if err != nil {
			return nil, err
		}
		if err := n.h.Connect(cctx, *info); err != nil {
			return nil, err
		}
		return map[string]any{}, nil
	case "disconnect":
		id, err := peer.Decode(c.Peer)
		if err != nil {
			return nil, err
		}
		return map[string]any{}, n.h.Network().ClosePeer(id)
	case "findpeer":
		id, err := peer.Decode(c.Peer)
		if err != nil {
			return nil, err
		}
		wasConnected := n.h.Network().Connectedness(id) == network.Connected
		// count the FIND_NODE queries the lookup sends (kad-dht publishes a query event each)
		qctx, qcancel := context.WithCancel(cctx)
		qctx, events := routing.RegisterForQueryEvents(qctx)
		queries := 0
		counted := make(chan struct{})
		go func() {
			for e := range events {
				if e.Type == routing.SendingQuery {
					queries++
				}
			}
			close(counted)
		}()
		t0 := time.Now()
		info, err := n.dht.FindPeer(qctx, id)
		ms := msSince(t0)
		qcancel()
		<-counted
		if err != nil {
			return nil, err
		}
		return map[string]any{"addrs": addrStrings(info.Addrs), "ms": ms,
			"was_connected": wasConnected, "queries": queries}, nil
	case "closest":
		key, err := hex.DecodeString(c.Key)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		peers, err := n.dht.GetClosestPeers(cctx, string(key))
		if err != nil {
			return nil, err
		}
		return map[string]any{"peers": peerStrings(peers), "ms": msSince(t0)}, nil
	case "rt":
		return map[string]any{"peers": peerStrings(n.dht.RoutingTable().ListPeers())}, nil
	case "connected":
		return map[string]any{"peers": peerStrings(n.h.Network().Peers())}, nil
	case "protocols":
		id, err := peer.Decode(c.Peer)
		if err != nil {
			return nil, err
		}
		protos, err := n.h.Peerstore().GetProtocols(id)
		if err != nil {
			return nil, err
		}
		out := []string{}
		for _, p := range protos {
			out = append(out, string(p))
		}
		return map[string]any{"protocols": out}, nil
	case "join":
		return map[string]any{}, n.join(ctx, c.Topic)
	case "publish":
		data, err := hex.DecodeString(c.Data)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		t := n.topics[c.Topic]
		n.mu.Unlock()
		if t == nil {
			return nil, fmt.Errorf("topic %s not joined", c.Topic)
		}
		t0 := unixMs()
		return map[string]any{"at_ms": t0}, t.Publish(cctx, data)
	case "publishmany":
		// c.Count messages of c.Size bytes (8-byte big-endian index first), back to back.
		n.mu.Lock()
		t := n.topics[c.Topic]
		n.mu.Unlock()
		if t == nil {
			return nil, fmt.Errorf("topic %s not joined", c.Topic)
		}
		tag, err := hex.DecodeString(c.Data)
		if err != nil {
			return nil, err
		}
		t0 := unixMs()
		sent := make([]float64, 0, c.Count)
		for i := 0; i < c.Count; i++ {
			sent = append(sent, unixMs())
			data := make([]byte, max(c.Size, 8))
			binary.BigEndian.PutUint64(data, uint64(i))
			copy(data[8:], tag)
			if err := t.Publish(cctx, data); err != nil {
				return nil, err
			}
		}
		return map[string]any{"at_ms": t0, "end_ms": unixMs(), "sent_ms": sent}, nil
	case "messages":
		n.mu.Lock()
		got := append([]message{}, n.got[c.Topic]...)
		n.mu.Unlock()
		return map[string]any{"messages": got}, nil
	case "work":
		id, err := peer.Decode(c.Peer)
		if err != nil {
			return nil, err
		}
		data, err := hex.DecodeString(c.Data)
		if err != nil {
			return nil, err
		}
		return sendWork(ctx, n, id, data, c.FindMs, c.ConnectMs)
	case "advertise":
		// masa's Discover: routing discovery's Advertise of a namespace (DHT Provide of
		// CIDv1(raw, sha2-256(namespace))), as pkg/network/discover.go does every minute.
		t0 := time.Now()
		ttl, err := drouting.NewRoutingDiscovery(n.dht).Advertise(cctx, c.Topic)
		if err != nil {
			return nil, err
		}
		return map[string]any{"ms": msSince(t0), "ttl_s": ttl.Seconds()}, nil
	case "findpeers":
		// masa's FindPeers of a namespace (GET_PROVIDERS, limit 100): every provider read
		// from the channel until it closes or the timeout ends.
		t0 := time.Now()
		ch, err := drouting.NewRoutingDiscovery(n.dht).FindPeers(cctx, c.Topic)
		if err != nil {
			return nil, err
		}
		found := []map[string]any{}
		for info := range ch {
			found = append(found, map[string]any{"peer_id": info.ID.String(), "addrs": addrStrings(info.Addrs),
				"connected": n.h.Network().Connectedness(info.ID) == network.Connected})
		}
		return map[string]any{"providers": found, "ms": msSince(t0)}, nil
	case "topicpeers":
		return map[string]any{"peers": peerStrings(n.ps.ListPeers(c.Topic))}, nil
	}
	return nil, fmt.Errorf("unknown command %q", c.Cmd)
}

func addrStrings(addrs []ma.Multiaddr) []string {
	out := []string{}
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

func peerStrings(ids []peer.ID) []string {
	out := []string{}
	for _, id := range ids {
		out = append(out, id.String())
	}
	return out
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	count := fs.Int("n", 8, "number of nodes")
	prefix := fs.String("prefix", "/ipfs", "DHT protocol prefix (/ipfs or /masa)")
	bucket := fs.Int("bucket", 20, "bucket size (not with /ipfs, which must use 20)")
	alpha := fs.Int("alpha", 10, "lookup concurrency (not with /ipfs)")
	topics := fs.String("topics", "", "comma-separated topics every node joins")
	floodsub := fs.Int("floodsub", 0, "the last N nodes run FloodSub instead of GossipSub")
	meshsub10 := fs.Int("meshsub10", 0, "the N nodes before those speak only /meshsub/1.0.0")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := make([]*node, *count)
	for i := range nodes {
		router := "gossipsub"
		if i >= *count-*floodsub {
			router = "floodsub"
		} else if i >= *count-*floodsub-*meshsub10 {
			router = "meshsub10"
		}
		n, err := newNode(ctx, *prefix, *bucket, *alpha, router)
		if err != nil {
			return err
		}
		nodes[i] = n
	}
	// Node i > 0 dials node 0 and node i-1: a connected network whose tables
	// fill through the lookups of Bootstrap, not by everyone dialling everyone.
	for i := 1; i < len(nodes); i++ {
		for _, j := range []int{0, i - 1} {
			if err := nodes[i].h.Connect(ctx, peer.AddrInfo{ID: nodes[j].h.ID(), Addrs: nodes[j].h.Addrs()}); err != nil {
				return err
			}
		}
	}
	for _, t := range strings.Split(*topics, ",") {
		if t == "" {
			continue
		}
		for _, n := range nodes {
			if err := n.join(ctx, t); err != nil {
				return err
			}
		}
	}
	for _, n := range nodes {
		if err := n.dht.Bootstrap(ctx); err != nil {
			return err
		}
	}
	// Wait (bounded) until each table holds at least two peers.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ready := true
		for _, n := range nodes {
			if n.dht.RoutingTable().Size() < min(2, len(nodes)-1) {
				ready = false
			}
		}
		if ready {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// With topics, let every node see its peers' subscriptions and run a heartbeat or two,
	// so the meshes exist before anyone publishes (messages published into a mesh still being
	// built reach only part of the network: flood publishing is off, as in go's defaults).
	if *topics != "" {
		for time.Now().Before(deadline) {
			ready := true
			for _, n := range nodes {
				for _, t := range strings.Split(*topics, ",") {
					if t != "" && len(n.ps.ListPeers(t)) < len(n.h.Network().Peers()) {
						ready = false
					}
				}
			}
			if ready {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(1200 * time.Millisecond)
	}
	infos := []map[string]any{}
	for _, n := range nodes {
		infos = append(infos, n.info())
	}
	gokit.Emit(map[string]any{"nodes": infos})

	var wg sync.WaitGroup
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var c command
		if err := json.Unmarshal(scanner.Bytes(), &c); err != nil {
			gokit.Emit(map[string]any{"error": "bad command: " + err.Error()})
			continue
		}
		wg.Add(1)
		go func(c command) {
			defer wg.Done()
			res, err := run(ctx, nodes, c)
			if res == nil {
				res = map[string]any{}
			}
			res["id"] = c.ID
			if err != nil {
				res["error"] = err.Error()
			}
			gokit.Emit(res)
		}(c)
	}
	cancel()
	wg.Wait()
	for _, n := range nodes {
		n.dht.Close()
		n.h.Close()
	}
	return nil
}

func main() {
	gokit.Main("usage: godht serve [flags] | godht vectors", map[string]func([]string) error{
		"serve":   serve,
		"vectors": func([]string) error { return vectors() },
	})
}
