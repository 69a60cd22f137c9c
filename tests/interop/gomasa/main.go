// Command gomasa is a go-libp2p v0.36.3 test peer that behaves like a masa-oracle
// node (e90264a) where membership and worker selection are concerned, over TCP
// (and, with -quic-dial, dialling QUIC v1 as masa does by default):
// the oracle_protocol handler with its peer-ID check, nodeDataSync push and
// receive, the gossip stream, the node tracker (CanDoWork, connect buffer), the
// 1 s-per-item listener queue, the bootnode push at start, the worker protocol as
// masa's handler answers it, and DistributeWork (FindPeer 50 ms = connected
// check, Connect 75 ms, 45 s per worker, local fallback).
//
// Contract with tests/interop/gomasa.py: "serve" prints one JSON line
// {"peer_id", "addrs"} once listening, then reads JSON commands on stdin, one
// per line, and answers each with one JSON line on stdout (tracker, distribute,
// connect, disconnect, announce, sync, handlers: the masa handlers of a node
// started with -late-handlers). Logs go to stderr.
// "nodedata" and "decode" are one-shot commands for byte-level checks.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tlssec "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"gokit"
)

var logger = gokit.Named("gomasa")

func main() {
	gokit.Main("usage: gomasa serve|nodedata|decode [options]", map[string]func([]string) error{
		"serve":    cmdServe,
		"nodedata": cmdNodeData,
		"decode":   func([]string) error { return cmdDecode() },
	})
}

// protocolWithVersion is masa's config.ProtocolWithVersion.
func protocolWithVersion(name, version, env string) protocol.ID {
	if env == "" {
		return protocol.ID(fmt.Sprintf("/masa/%s/%s", name, version))
	}
	return protocol.ID(fmt.Sprintf("/masa/%s/%s-%s", name, version, env))
}

// cmdNodeData prints json.Marshal of a NodeData built from flags.
func cmdNodeData(args []string) error {
	fs := flag.NewFlagSet("nodedata", flag.ContinueOnError)
	var addrs gokit.StringList
	fs.Var(&addrs, "multiaddr", "multiaddr (repeatable)")
	id := fs.String("peer-id", "", "peer ID")
	lastUpdated := fs.Int64("last-updated", 0, "lastUpdated (Unix s)")
	firstJoined := fs.Int64("first-joined", 0, "firstJoined")
	uptime := fs.Int64("uptime", 0, "uptime (ns)")
	eth := fs.String("eth", "", "ethAddress")
	staked := fs.Bool("staked", false, "isStaked")
	active := fs.Bool("active", false, "isActive")
	web := fs.Bool("web", false, "isWebScraper")
	twitter := fs.Bool("twitter", false, "isTwitterScraper")
	version := fs.String("version", "", "version")
	activity := fs.Int("activity", 0, "activity")
	workerTimeout := fs.String("worker-timeout", "", "workerTimeout (RFC 3339)")
	records := fs.String("records", "", "records (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nd := NodeData{LastUpdatedUnix: *lastUpdated, FirstJoinedUnix: *firstJoined, CurrentUptime: time.Duration(*uptime),
		EthAddress: *eth, IsStaked: *staked, IsActive: *active, IsWebScraper: *web, IsTwitterScraper: *twitter,
		Version: *version, Activity: *activity}
	if *id != "" {
		p, err := peer.Decode(*id)
		if err != nil {
			return err
		}
		nd.PeerId = p
	}
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return err
		}
		nd.Multiaddrs = append(nd.Multiaddrs, JSONMultiaddr{a})
		nd.MultiaddrsString += " " + a.String()
	}
	if *workerTimeout != "" {
		t, err := time.Parse(time.RFC3339Nano, *workerTimeout)
		if err != nil {
			return err
		}
		nd.WorkerTimeout = t
	}
	if *records != "" {
		if err := json.Unmarshal([]byte(*records), &nd.Records); err != nil {
			return err
		}
	}
	b, err := json.Marshal(nd)
	if err != nil {
		return err
	}
	os.Stdout.Write(append(b, '\n'))
	return nil
}

// cmdDecode reads one body on stdin and says whether masa's types accept it.
func cmdDecode() error {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	var nd NodeData
	if err := json.Unmarshal(body, &nd); err != nil {
		gokit.Emit(map[string]any{"ok": false, "error": err.Error()})
		return nil
	}
	out, err := json.Marshal(nd)
	if err != nil {
		return err
	}
	gokit.Emit(map[string]any{"ok": true, "json": string(out)})
	return nil
}

// node is the running masa-like node.
type node struct {
	h          host.Host
	ctx        context.Context
	version    string
	env        string
	tracker    *Tracker
	self       NodeData
	bootnodes  []string
	start      time.Time
	handlers   map[string]func([]byte) gokit.WorkResponse
	mu         sync.Mutex
	syncsIn    int
	syncPushes map[string]int
	refused    int
	workDone   int
	// With -dht: masa's Kademlia (pkg/network/kdht.go) and DistributeWork's FindPeer through it.
	dht    *dht.IpfsDHT
	findMs int
}

func (n *node) proto(name string) protocol.ID { return protocolWithVersion(name, n.version, n.env) }

// loadKey decodes the hex of a protobuf private key, or makes a new secp256k1 key.
func loadKey(hexKey string) (crypto.PrivKey, error) {
	if hexKey == "" {
		return gokit.GenerateKey("secp256k1")
	}
	return gokit.DecodeKey([]byte(hexKey))
}

func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var listen, bootnodes gokit.StringList
	fs.Var(&listen, "listen", "listen multiaddr (default /ip4/127.0.0.1/tcp/0)")
	fs.Var(&bootnodes, "bootnode", "bootnode multiaddr with /p2p (repeatable)")
	version := fs.String("protocol-version", "v0.8.4", "masa protocol version")
	env := fs.String("env", "", "masa environment suffix")
	staked := fs.Bool("staked", true, "isStaked in our node data (masa: always true)")
	web := fs.Bool("web", false, "web scraper (serves web work)")
	twitter := fs.Bool("twitter", false, "twitter scraper (serves twitter work)")
	keyHex := fs.String("key-hex", "", "identity: hex of the protobuf private key (default: new secp256k1)")
	withDHT := fs.Bool("dht", false, "run masa's Kademlia (/masa/kad/1.0.0, K=100, alpha=100, server mode) and find unconnected workers with it")
	findMs := fs.Int("find-ms", 50, "DistributeWork's FindPeer timeout in ms (masa: 50)")
	lateHandlers := fs.Bool("late-handlers", false, "register the masa stream handlers only on the `handlers` command (a real masa node listens before it registers them: peers then learn them by identify push)")
	quicDial := fs.Bool("quic-dial", false, "also dial QUIC v1 (masa's default transport); never listen on it: quic-go v0.45 built with Go 1.26 panics on an inbound QUIC handshake")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(listen) == 0 {
		listen = gokit.StringList{"/ip4/127.0.0.1/tcp/0"}
	}
	priv, err := loadKey(*keyHex)
	if err != nil {
		return err
	}
	limiter := rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale())
	rm, err := rcmgr.NewResourceManager(limiter)
	if err != nil {
		return err
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tlssec.ID, tlssec.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Ping(false),
		libp2p.ResourceManager(rm),
	}
	if *quicDial {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return err
	}
	defer h.Close()
	ctx := context.Background()
	n := &node{h: h, ctx: ctx, version: *version, env: *env, tracker: newTracker(*version),
		bootnodes: bootnodes, start: time.Now(), handlers: map[string]func([]byte) gokit.WorkResponse{},
		syncPushes: map[string]int{}, findMs: *findMs}
	if *withDHT {
		// masa: ModeAutoServer (server until AutoNAT says private; on loopback it stays server),
		// prefix /masa, K = 100, alpha = 100, refresh 5 min; then Bootstrap.
		d, err := dht.New(ctx, h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/masa"),
			dht.BucketSize(100), dht.Concurrency(100), dht.RoutingTableRefreshPeriod(5*time.Minute))
		if err != nil {
			return err
		}
		defer d.Close()
		if err := d.Bootstrap(ctx); err != nil {
			return err
		}
		n.dht = d
	}
	if *web {
		n.handlers["web"] = handleWeb
	}
	if *twitter {
		n.handlers["twitter"] = handleTwitter
	}
	n.self = n.getNodeData(*staked, *web, *twitter)

	if !*lateHandlers {
		n.setHandlers()
	}
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			logger.Printf("connected %s %s", c.RemotePeer(), c.RemoteMultiaddr())
			go n.tracker.Connected(c.RemotePeer())
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			logger.Printf("disconnected %s", c.RemotePeer())
			go n.tracker.Disconnected(c.RemotePeer())
		},
	})

	// Start: our own entry (Joined, HandleNodeData), the listener, the sweep.
	selfEntry := n.self
	selfEntry.Joined(n.version)
	n.tracker.HandleNodeData(selfEntry)
	go n.listenToNodeTracker()
	go func() {
		for {
			time.Sleep(30 * time.Second)
			n.tracker.sweep()
		}
	}()

	addrs := []string{}
	for _, a := range h.Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			addrs = append(addrs, fmt.Sprintf("%s/p2p/%s", a, h.ID()))
		}
	}
	gokit.Emit(map[string]any{"peer_id": h.ID().String(), "addrs": addrs})

	// EnableDHT's bootnode push, after we are listening.
	for _, b := range bootnodes {
		go n.pushToBootnode(b)
	}
	n.control()
	return nil
}

// setHandlers registers the masa stream handlers (masa's Start, after the host listens);
// go-libp2p's identify then pushes the new protocols to connected peers.
func (n *node) setHandlers() {
	n.h.SetStreamHandler(n.proto("oracle_protocol"), n.handleOracle)
	n.h.SetStreamHandler(n.proto("nodeDataSync"), n.handleSync)
	n.h.SetStreamHandler(n.proto("gossip"), n.handleGossip)
	n.h.SetStreamHandler(n.proto("worker_protocol"), n.handleWorkerStream)
}

// getNodeData is masa's own record as pushed to bootnodes (no Joined on it).
func (n *node) getNodeData(staked, web, twitter bool) NodeData {
	nd := NodeData{PeerId: n.h.ID(), LastUpdatedUnix: time.Now().Unix(), IsActive: true, IsStaked: staked,
		IsWebScraper: web, IsTwitterScraper: twitter, Version: n.version, EthAddress: "0x0000000000000000000000000000000000000000"}
	for _, a := range n.h.Addrs() {
		nd.Multiaddrs = append(nd.Multiaddrs, JSONMultiaddr{a})
		nd.MultiaddrsString += " " + a.String()
	}
	return nd
}

func (n *node) pushToBootnode(addr string) {
	info, err := peer.AddrInfoFromString(addr)
	if err != nil {
		logger.Printf("bootnode %s: %v", addr, err)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	if err := n.h.Connect(ctx, *info); err != nil {
		logger.Printf("bootnode %s: connect: %v", addr, err)
		return
	}
	if err := n.sendOracle(info.ID, n.self); err != nil {
		if strings.Contains(err.Error(), "protocols not supported") {
			logger.Fatalf("bootnode %s does not serve %s: %v", addr, n.proto("oracle_protocol"), err)
		}
		logger.Printf("bootnode %s: %v", addr, err)
	}
}

func (n *node) sendOracle(p peer.ID, nd NodeData) error {
	s, err := n.h.NewStream(n.ctx, p, n.proto("oracle_protocol"))
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := json.Marshal(nd)
	if err != nil {
		return err
	}
	_, err = s.Write(b)
	return err
}

// handleOracle: node data about the sender, read to EOF (no limit, no deadline, as masa).
func (n *node) handleOracle(s network.Stream) {
	defer s.Close()
	var body []byte
	buf := make([]byte, 4096)
	for {
		k, err := s.Read(buf)
		body = append(body, buf[:k]...)
		if err != nil {
			if err != io.EOF {
				logger.Printf("oracle_protocol: read: %v", err)
			}
			break
		}
	}
	var nd NodeData
	if err := json.Unmarshal(body, &nd); err != nil {
		logger.Printf("oracle_protocol: bad node data from %s: %v", s.Conn().RemotePeer(), err)
		n.mu.Lock()
		n.refused++
		n.mu.Unlock()
		return
	}
	if nd.PeerId != s.Conn().RemotePeer() {
		logger.Printf("oracle_protocol: node data for %s received from %s: rejected", nd.PeerId, s.Conn().RemotePeer())
		n.mu.Lock()
		n.refused++
		n.mu.Unlock()
		return
	}
	nd.MergeMultiaddresses(s.Conn().RemoteMultiaddr())
	logger.Printf("oracle_protocol: node data from %s (staked %v web %v twitter %v)", nd.PeerId, nd.IsStaked, nd.IsWebScraper, nd.IsTwitterScraper)
	n.tracker.AddOrUpdateNodeData(&nd)
}

// handleSync: pages, one per line, each entry overwrites (RefreshFromBoot).
func (n *node) handleSync(s network.Stream) {
	defer s.Close()
	scanner := bufio.NewScanner(s)
	for scanner.Scan() {
		var page NodeDataPage
		if err := json.Unmarshal(scanner.Bytes(), &page); err != nil {
			logger.Printf("nodeDataSync: bad page: %v", err)
			continue
		}
		for _, nd := range page.Data {
			n.tracker.RefreshFromBoot(nd)
		}
		n.mu.Lock()
		n.syncsIn += len(page.Data)
		n.mu.Unlock()
	}
	if err := scanner.Err(); err != nil {
		logger.Printf("nodeDataSync: %v", err)
	}
}

// handleGossip: node data about another peer.
func (n *node) handleGossip(s network.Stream) {
	defer s.Close()
	body, err := io.ReadAll(s)
	if err != nil {
		logger.Printf("gossip: read: %v", err)
		return
	}
	var nd NodeData
	if err := json.Unmarshal(body, &nd); err != nil {
		logger.Printf("gossip: bad node data: %v", err)
		return
	}
	if nd.PeerId == s.Conn().RemotePeer() {
		return
	}
	n.tracker.HandleNodeData(nd)
}

// listenToNodeTracker: 1 s per item, then (no pubsub here) the conditional push.
func (n *node) listenToNodeTracker() {
	for item := range n.tracker.items {
		time.Sleep(time.Second)
		if item.Activity != ActivityJoined {
			continue
		}
		if len(n.bootnodes) == 0 || time.Since(n.start) > 5*time.Minute {
			go n.sendNodeData(item.PeerId)
		}
	}
}

// sendNodeData is masa's SendNodeData.
func (n *node) sendNodeData(p peer.ID) {
	var entries []NodeData
	recipient, known := n.tracker.Get(p.String())
	all := n.tracker.GetAllNodeData()
	if !known {
		entries = all
	} else {
		since := recipient.LastLeftUnix - 300
		for _, nd := range all {
			if nd.LastUpdatedUnix > since {
				entries = append(entries, nd)
			}
		}
	}
	if len(entries) == 0 {
		return
	}
	s, err := n.h.NewStream(n.ctx, p, n.proto("nodeDataSync"))
	if err != nil {
		return // masa ignores it silently
	}
	defer s.Close()
	total := len(entries)
	pages := (total + pageSize - 1) / pageSize
	for i := 0; i < pages; i++ {
		end := (i + 1) * pageSize
		if end > total {
			end = total
		}
		b, err := json.Marshal(NodeDataPage{Data: entries[i*pageSize : end], PageNumber: i, TotalPages: pages, TotalRecords: total})
		if err != nil {
			return
		}
		if _, err := s.Write(append(b, '\n')); err != nil {
			logger.Printf("nodeDataSync push to %s: %v", p, err)
			return
		}
	}
	n.mu.Lock()
	n.syncPushes[p.String()]++
	n.mu.Unlock()
	logger.Printf("nodeDataSync: pushed %d entries to %s", total, p)
}

// --- work --------------------------------------------------------------------

// handleWeb asserts types as masa's WebHandler does: data without a number
// `depth` or a string `url` panics (and takes the process down, as in masa).
// It does not fetch anything (tests have no internet): it echoes what it got.
func handleWeb(data []byte) gokit.WorkResponse {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return gokit.WorkResponse{Error: fmt.Sprintf("unable to parse web data: %v", err)}
	}
	depth := int(m["depth"].(float64))
	url := m["url"].(string)
	return gokit.WorkResponse{Data: map[string]any{"url": url, "depth": depth, "scraper": "gomasa"}}
}

func handleTwitter(data []byte) gokit.WorkResponse {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return gokit.WorkResponse{Error: fmt.Sprintf("unable to parse twitter query data: %v", err)}
	}
	count := int(m["count"].(float64))
	query := m["query"].(string)
	return gokit.WorkResponse{Data: map[string]any{"query": query, "count": count, "scraper": "gomasa"}}
}

func (n *node) executeWork(req gokit.WorkRequest) gokit.WorkResponse {
	h, ok := n.handlers[req.WorkType]
	if !ok {
		return gokit.WorkResponse{Error: "work handler not found"}
	}
	done := make(chan gokit.WorkResponse, 1)
	go func() { done <- h(req.Data) }()
	select {
	case r := <-done:
		return r
	case <-time.After(45 * time.Second):
		return gokit.WorkResponse{Error: "work execution timed out"}
	}
}

// handleWorkerStream: masa's HandleWorkerStream (no length bound, close at the end).
func (n *node) handleWorkerStream(s network.Stream) {
	answered := gokit.ServeWork(s, func(req gokit.WorkRequest) gokit.WorkResponse {
		logger.Printf("worker: %s work from %s", req.WorkType, s.Conn().RemotePeer())
		return n.executeWork(req)
	})
	if answered {
		n.mu.Lock()
		n.workDone++
		n.mu.Unlock()
	}
}

func (n *node) sendWork(p peer.ID, req gokit.WorkRequest) (gokit.WorkResponse, string, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 45*time.Second)
	defer cancel()
	s, err := n.h.NewStream(ctx, p, n.proto("worker_protocol"))
	if err != nil {
		return gokit.WorkResponse{}, "", fmt.Errorf("error opening stream: %v", err)
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	s.SetDeadline(dl)
	body, _ := json.Marshal(req)
	lengthBuf := make([]byte, 4)
	binary.BigEndian.PutUint32(lengthBuf, uint32(len(body)))
	if _, err := s.Write(append(lengthBuf, body...)); err != nil {
		return gokit.WorkResponse{}, "", fmt.Errorf("error writing to stream: %v", err)
	}
	if _, err := io.ReadFull(s, lengthBuf); err != nil {
		return gokit.WorkResponse{}, "", fmt.Errorf("error reading response length: %v", err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(lengthBuf))
	if _, err := io.ReadFull(s, buf); err != nil {
		return gokit.WorkResponse{}, "", fmt.Errorf("error reading response: %v", err)
	}
	var resp gokit.WorkResponse
	if err := json.Unmarshal(buf, &resp); err != nil {
		return gokit.WorkResponse{}, string(buf), fmt.Errorf("error unmarshaling response: %v", err)
	}
	return resp, string(buf), nil
}

// distributeWork is masa's DistributeWork: eligible from the tracker, self
// removed, shuffled, at most 10 remote attempts (FindPeer 50 ms, Connect 75 ms,
// send), then local when eligible.
func (n *node) distributeWork(workType string, data []byte) map[string]any {
	category := workerTypeToCategory(workType)
	var eligible []string
	localEligible := false
	for _, nd := range n.tracker.GetAllNodeData() {
		if !nd.CanDoWork(category) {
			continue
		}
		if nd.PeerId == n.h.ID() {
			localEligible = true
			continue
		}
		eligible = append(eligible, nd.PeerId.String())
	}
	rand.Shuffle(len(eligible), func(i, j int) { eligible[i], eligible[j] = eligible[j], eligible[i] })
	if len(eligible) > 10 {
		eligible = eligible[:10]
	}
	logger.Printf("Found %d eligible remote workers", len(eligible))
	req := gokit.WorkRequest{WorkType: workType, RequestId: fmt.Sprintf("gomasa-%d", time.Now().UnixNano()), Data: data}
	var errs []string
	var attempts []string
	var found []string   // workers found through the DHT (not connected before)
	var findMs []float64 // how long each of those FindPeer calls took
	for _, id := range eligible {
		p, err := peer.Decode(id)
		if err != nil {
			continue
		}
		attempts = append(attempts, id)
		// FindPeer with 50 ms: immediate when connected; without -dht nothing else succeeds.
		if n.h.Network().Connectedness(p) != network.Connected {
			if n.dht == nil {
				time.Sleep(time.Duration(n.findMs) * time.Millisecond)
				errs = append(errs, fmt.Sprintf("Worker %s: failed to find peer: context deadline exceeded", id))
				continue
			}
			fctx, cancel := context.WithTimeout(n.ctx, time.Duration(n.findMs)*time.Millisecond)
			t0 := time.Now()
			_, err := n.dht.FindPeer(fctx, p)
			findMs = append(findMs, float64(time.Since(t0).Microseconds())/1000)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Sprintf("Worker %s: failed to find peer: %v", id, err))
				continue
			}
			found = append(found, id)
		}
		cctx, cancel := context.WithTimeout(n.ctx, 75*time.Millisecond)
		err = n.h.Connect(cctx, peer.AddrInfo{ID: p})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("Worker %s: %v", id, err))
			continue
		}
		resp, raw, err := n.sendWork(p, req)
		if err != nil {
			errs = append(errs, fmt.Sprintf("Worker %s: %v", id, err))
			continue
		}
		if resp.Error != "" {
			errs = append(errs, fmt.Sprintf("Worker %s: %s", id, resp.Error))
			continue
		}
		return map[string]any{"response": resp, "raw": raw, "worker": id, "eligible": eligible, "attempts": attempts, "found_via_dht": found, "find_ms": findMs}
	}
	if localEligible {
		if _, ok := n.handlers[workType]; ok {
			resp := n.executeWork(req)
			if resp.Error == "" {
				resp.WorkerPeerId = n.h.ID().String()
				return map[string]any{"response": resp, "worker": "local", "eligible": eligible, "attempts": attempts}
			}
			errs = append(errs, "Local worker: "+resp.Error)
		}
	}
	msg := "no eligible workers found"
	if len(errs) > 0 {
		msg = "All workers failed. Errors: " + strings.Join(errs, "; ")
	}
	return map[string]any{"response": gokit.WorkResponse{Error: msg}, "worker": "", "eligible": eligible, "attempts": attempts}
}

// --- control -----------------------------------------------------------------

type command struct {
	Cmd     string `json:"cmd"`
	Peer    string `json:"peer"`
	Addr    string `json:"addr"`
	Type    string `json:"type"`
	Data    string `json:"data"`
	As      string `json:"as"`
	Staked  *bool  `json:"staked"`
	Web     bool   `json:"web"`
	Twitter bool   `json:"twitter"`
}

func (n *node) control() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var c command
		if err := json.Unmarshal(scanner.Bytes(), &c); err != nil {
			gokit.Emit(map[string]string{"error": err.Error()})
			continue
		}
		gokit.Emit(n.run(c))
	}
}

func (n *node) run(c command) any {
	switch c.Cmd {
	case "tracker":
		n.mu.Lock()
		defer n.mu.Unlock()
		connected := []string{}
		for _, p := range n.h.Network().Peers() {
			connected = append(connected, p.String())
		}
		return map[string]any{"nodes": n.tracker.GetAllNodeData(), "announces": n.tracker.Announces(),
			"syncs_in": n.syncsIn, "sync_pushes": n.syncPushes, "refused": n.refused,
			"connected": connected, "work_done": n.workDone, "rejoined": n.tracker.Rejoined()}
	case "distribute":
		return n.distributeWork(c.Type, []byte(c.Data))
	case "connect":
		info, err := peer.AddrInfoFromString(c.Addr)
		if err != nil {
			return map[string]string{"error": err.Error()}
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		if err := n.h.Connect(ctx, *info); err != nil {
			return map[string]string{"error": err.Error()}
		}
		return map[string]bool{"ok": true}
	case "disconnect":
		p, err := peer.Decode(c.Peer)
		if err != nil {
			return map[string]string{"error": err.Error()}
		}
		return map[string]any{"ok": true, "error": fmt.Sprint(n.h.Network().ClosePeer(p))}
	case "announce":
		// oracle_protocol push to c.Peer, claiming to be c.As (default: ourselves).
		p, err := peer.Decode(c.Peer)
		if err != nil {
			return map[string]string{"error": err.Error()}
		}
		nd := n.self
		nd.LastUpdatedUnix = time.Now().Unix()
		if c.As != "" {
			as, err := peer.Decode(c.As)
			if err != nil {
				return map[string]string{"error": err.Error()}
			}
			nd.PeerId = as
		}
		if c.Staked != nil {
			nd.IsStaked = *c.Staked
		}
		if c.Web || c.Twitter {
			nd.IsWebScraper, nd.IsTwitterScraper = c.Web, c.Twitter
		}
		if err := n.sendOracle(p, nd); err != nil {
			return map[string]string{"error": err.Error()}
		}
		return map[string]bool{"ok": true}
	case "handlers":
		n.setHandlers()
		return map[string]bool{"ok": true}
	case "sync":
		p, err := peer.Decode(c.Peer)
		if err != nil {
			return map[string]string{"error": err.Error()}
		}
		n.sendNodeData(p)
		return map[string]bool{"ok": true}
	}
	return map[string]string{"error": "unknown command " + c.Cmd}
}
