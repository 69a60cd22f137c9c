package main

// NodeData and the node tracker, reproduced from the facts about masa-oracle
// e90264a (pkg/pubsub/node_data.go, node_event_tracker.go, safe_map.go): the
// same Go field order and json tags, so encoding/json writes masa's bytes, and
// the same merge rules, so the Python node meets the tracker a masa node runs.

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	ActivityJoined = iota
	ActivityLeft
)

// JSONMultiaddr marshals as the multiaddr string (the embedded interface's
// MarshalJSON) and unmarshals by parsing one.
type JSONMultiaddr struct {
	ma.Multiaddr
}

func (m *JSONMultiaddr) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return err
	}
	m.Multiaddr = a
	return nil
}

type NodeData struct {
	Multiaddrs           []JSONMultiaddr `json:"multiaddrs,omitempty"`
	MultiaddrsString     string          `json:"multiaddrsString,omitempty"`
	PeerId               peer.ID         `json:"peerId"`
	FirstJoinedUnix      int64           `json:"firstJoined,omitempty"`
	LastJoinedUnix       int64           `json:"lastJoined,omitempty"`
	LastLeftUnix         int64           `json:"-"`
	LastUpdatedUnix      int64           `json:"lastUpdated,omitempty"`
	CurrentUptime        time.Duration   `json:"uptime,omitempty"`
	CurrentUptimeStr     string          `json:"uptimeStr,omitempty"`
	AccumulatedUptime    time.Duration   `json:"accumulatedUptime,omitempty"`
	AccumulatedUptimeStr string          `json:"accumulatedUptimeStr,omitempty"`
	EthAddress           string          `json:"ethAddress,omitempty"`
	Activity             int             `json:"activity,omitempty"`
	IsActive             bool            `json:"isActive"`
	IsStaked             bool            `json:"isStaked"`
	SelfIdentified       bool            `json:"-"`
	IsValidator          bool            `json:"isValidator"`
	IsTwitterScraper     bool            `json:"isTwitterScraper"`
	IsWebScraper         bool            `json:"isWebScraper"`
	Records              any             `json:"records,omitempty"`
	Version              string          `json:"version"`
	WorkerTimeout        time.Time       `json:"workerTimeout,omitempty"`
	ReturnedTweets       int             `json:"returnedTweets"`
	LastReturnedTweet    time.Time       `json:"lastReturnedTweet"`
	TweetTimeout         bool            `json:"tweetTimeout"`
	TweetTimeouts        int             `json:"tweetTimeouts"`
	LastTweetTimeout     time.Time       `json:"lastTweetTimeout"`
	LastNotFoundTime     time.Time       `json:"lastNotFoundTime"`
	NotFoundCount        int             `json:"notFoundCount"`
}

// NodeDataPage is one line of a nodeDataSync stream.
type NodeDataPage struct {
	Data         []NodeData `json:"data"`
	PageNumber   int        `json:"pageNumber"`
	TotalPages   int        `json:"totalPages"`
	TotalRecords int        `json:"totalRecords"`
}

const pageSize = 25

type WorkerCategory int

const (
	CategoryDiscord WorkerCategory = iota
	CategoryTelegram
	CategoryTwitter
	CategoryWeb
)

// workerTypeToCategory is masa's WorkerTypeToCategory.
func workerTypeToCategory(t string) WorkerCategory {
	switch t {
	case "twitter", "twitter-followers", "twitter-profile":
		return CategoryTwitter
	case "web":
		return CategoryWeb
	case "discord", "discord-profile", "discord-channel-messages", "discord-guild-channels", "discord-user-guilds":
		return CategoryDiscord
	case "telegram-channel-messages":
		return CategoryTelegram
	}
	return -1
}

// CanDoWork: staked, and the category's flag (discord/telegram: never).
func (n *NodeData) CanDoWork(c WorkerCategory) bool {
	if !n.IsStaked {
		return false
	}
	switch c {
	case CategoryTwitter:
		return n.IsTwitterScraper
	case CategoryWeb:
		return n.IsWebScraper
	}
	return false
}

func (n *NodeData) Joined(version string) {
	now := time.Now()
	if n.FirstJoinedUnix == 0 {
		n.FirstJoinedUnix = now.Unix()
	}
	n.LastJoinedUnix = now.Unix()
	n.LastUpdatedUnix = now.Unix()
	n.Activity = ActivityJoined
	n.IsActive = true
	n.Version = version
}

func (n *NodeData) Left() {
	if n.Activity == ActivityLeft {
		return
	}
	n.LastLeftUnix = time.Now().Unix()
	n.LastUpdatedUnix = n.LastLeftUnix
	n.CurrentUptime = 0
	n.Activity = ActivityLeft
	n.IsActive = false
	n.AccumulatedUptime += time.Duration(n.LastLeftUnix-n.LastJoinedUnix) * time.Second
	n.AccumulatedUptimeStr = n.AccumulatedUptime.String()
}

func (n *NodeData) MergeMultiaddresses(addr ma.Multiaddr) {
	for _, a := range n.Multiaddrs {
		if addr.Equal(a.Multiaddr) {
			return
		}
	}
	n.Multiaddrs = append(n.Multiaddrs, JSONMultiaddr{addr})
}

// prettyDuration is masa's PrettyDuration (rounded to the minute).
func prettyDuration(d time.Duration) string {
	minutes := int64(d.Round(time.Minute) / time.Minute)
	days := minutes / (24 * 60)
	hours := (minutes % (24 * 60)) / 60
	mins := minutes % 60
	if days > 0 {
		return fmt.Sprintf("%d days %d hours %d minutes", days, hours, mins)
	}
	if hours > 0 {
		return fmt.Sprintf("%d hours %d minutes", hours, mins)
	}
	return fmt.Sprintf("%d minutes", mins)
}

// Tracker is masa's NodeEventTracker: a map that never forgets, a connect
// buffer, and a channel of items the listener acts upon.
type Tracker struct {
	mu       sync.Mutex
	version  string
	nodes    map[string]*NodeData
	buffer   map[string]time.Time
	items    chan *NodeData
	announce map[string]int // ours: oracle_protocol pushes accepted per peer (for tests)
	rejoined map[string]int // ours: disconnects of a buffered peer, left and joined again (for tests)
}

func newTracker(version string) *Tracker {
	return &Tracker{version: version, nodes: map[string]*NodeData{}, buffer: map[string]time.Time{},
		items: make(chan *NodeData, 1024), announce: map[string]int{}, rejoined: map[string]int{}}
}

func (t *Tracker) queue(n *NodeData) {
	c := *n
	select {
	case t.items <- &c:
	default:
		logger.Printf("tracker: item queue full, dropping item for %s", n.PeerId)
	}
}

// AddOrUpdateNodeData (caller holds mu).
func (t *Tracker) addOrUpdateLocked(data *NodeData) {
	nd, ok := t.nodes[data.PeerId.String()]
	if !ok {
		data.SelfIdentified = true
		data.Joined(t.version)
		t.queue(data)
		t.nodes[data.PeerId.String()] = data
		return
	}
	nd.SelfIdentified = true
	nd.IsStaked = data.IsStaked
	nd.IsTwitterScraper = data.IsTwitterScraper
	nd.IsWebScraper = data.IsWebScraper
	nd.Records = data.Records
	nd.Multiaddrs = data.Multiaddrs
	nd.EthAddress = data.EthAddress
	if len(data.Multiaddrs) > 0 {
		t.queue(nd)
		nd.LastUpdatedUnix = data.LastUpdatedUnix
	}
}

func (t *Tracker) AddOrUpdateNodeData(data *NodeData) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.announce[data.PeerId.String()]++
	t.addOrUpdateLocked(data)
}

// RefreshFromBoot: the nodeDataSync path, overwrite as received.
func (t *Tracker) RefreshFromBoot(data NodeData) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nodes[data.PeerId.String()] = &data
}

// HandleNodeData: the gossip path (and our own entry at start).
func (t *Tracker) HandleNodeData(data NodeData) {
	t.mu.Lock()
	defer t.mu.Unlock()
	existing, ok := t.nodes[data.PeerId.String()]
	if !ok {
		if data.LastLeftUnix > data.LastJoinedUnix {
			return
		}
		t.nodes[data.PeerId.String()] = &data
		return
	}
	if data.LastUpdatedUnix < existing.LastUpdatedUnix {
		if existing.IsStaked {
			return
		}
		t.nodes[data.PeerId.String()] = &data
		return
	}
	existing.LastUpdatedUnix = data.LastUpdatedUnix
	if existing.EthAddress == "" && data.EthAddress != "" {
		existing.EthAddress = data.EthAddress
	}
	if data.IsStaked && !existing.IsStaked {
		existing.IsStaked = true
	}
	t.addOrUpdateLocked(existing)
}

func (t *Tracker) Connected(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nd, ok := t.nodes[p.String()]
	if !ok {
		return
	}
	if nd.IsActive {
		t.buffer[p.String()] = time.Now()
		return
	}
	nd.Joined(t.version)
	t.addOrUpdateLocked(nd)
}

func (t *Tracker) Disconnected(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nd, ok := t.nodes[p.String()]
	if !ok {
		return
	}
	if _, buffered := t.buffer[p.String()]; buffered {
		nd.Left()
		delete(t.buffer, p.String())
		nd.Joined(t.version)
		t.rejoined[p.String()]++
	} else {
		nd.Left()
	}
	t.queue(nd)
}

// sweep handles connects buffered for more than a minute (masa: every 30 s).
func (t *Tracker) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, at := range t.buffer {
		if time.Since(at) > time.Minute {
			if nd, ok := t.nodes[id]; ok {
				nd.Left()
				nd.Joined(t.version)
				t.queue(nd)
			}
			delete(t.buffer, id)
		}
	}
}

func (t *Tracker) Get(id string) (NodeData, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nd, ok := t.nodes[id]
	if !ok {
		return NodeData{}, false
	}
	return *nd, true
}

// GetAllNodeData: copies with uptimes recomputed, sorted by lastUpdated.
func (t *Tracker) GetAllNodeData() []NodeData {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]NodeData, 0, len(t.nodes))
	for _, nd := range t.nodes {
		c := *nd
		if c.Activity == ActivityJoined {
			c.CurrentUptime = time.Since(time.Unix(c.LastJoinedUnix, 0))
		} else {
			c.CurrentUptime = 0
		}
		c.AccumulatedUptime = c.AccumulatedUptime + c.CurrentUptime
		c.CurrentUptimeStr = prettyDuration(c.CurrentUptime)
		c.AccumulatedUptimeStr = prettyDuration(c.AccumulatedUptime)
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastUpdatedUnix < out[j].LastUpdatedUnix })
	return out
}

// Announces returns how many oracle_protocol pushes each peer made (test bookkeeping).
// Rejoined: per peer, disconnects that found a connect buffered (masa's Connected of a peer
// already active) and so left the peer active.
func (t *Tracker) Rejoined() map[string]int { return t.counts(t.rejoined) }

func (t *Tracker) Announces() map[string]int { return t.counts(t.announce) }

// counts: a copy of one of the tracker's per-peer counters, taken under its lock.
func (t *Tracker) counts(m map[string]int) map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
