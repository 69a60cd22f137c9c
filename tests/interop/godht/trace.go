package main

import (
	"encoding/hex"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// maxTraced bounds what a wireTrace keeps per peer and kind (a test tool, but bounded).
const maxTraced = 20000

// wireTrace records, per remote peer, the message IDs (hex of from ‖ seqno) a
// node queued for it ("sent"), took in first from it ("recv") or again ("dup"),
// the IDONTWANT IDs it queued for it, and the pubsub protocol the peer was added
// with: what the IDONTWANT interop tests observe on the Go side. pubsub's RawTracer
// does not say who sent an RPC, so IDONTWANT IDs received are kept under "any".
// "lost" keeps the messages go itself failed to take in or pass on, under "here"
// (its validation queue was full or throttled, or its subscriber's queue was)
// or under the peer an RPC of them was for (that peer's outbound queue was
// full): what a burst test counts as go's own loss, not the publisher's.
type wireTrace struct {
	mu    sync.Mutex
	proto map[string]string
	kinds map[string]map[string][]string // kind -> peer -> ids
}

func newWireTrace() *wireTrace {
	return &wireTrace{proto: map[string]string{}, kinds: map[string]map[string][]string{
		"sent": {}, "recv": {}, "idontwant_sent": {}, "idontwant_recv": {}, "dup": {}, "lost": {}}}
}

func (t *wireTrace) add(kind string, p peer.ID, id string) {
	key := p.String()
	if p == "any" || p == "here" {
		key = string(p)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.kinds[kind]
	if len(m[key]) < maxTraced {
		m[key] = append(m[key], hex.EncodeToString([]byte(id)))
	}
}

func (t *wireTrace) SendRPC(rpc *pubsub.RPC, p peer.ID) {
	for _, m := range rpc.GetPublish() {
		t.add("sent", p, pubsub.DefaultMsgIdFn(m))
	}
	for _, idw := range rpc.GetControl().GetIdontwant() {
		for _, id := range idw.GetMessageIDs() {
			t.add("idontwant_sent", p, id)
		}
	}
}

func (t *wireTrace) RecvRPC(rpc *pubsub.RPC) {
	for _, idw := range rpc.GetControl().GetIdontwant() {
		for _, id := range idw.GetMessageIDs() {
			t.add("idontwant_recv", "any", id)
		}
	}
}

func (t *wireTrace) snapshot() map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]any{}
	protos := map[string]string{}
	for k, v := range t.proto {
		protos[k] = v
	}
	out["protocols"] = protos
	for kind, m := range t.kinds {
		c := map[string][]string{}
		for k, v := range m {
			c[k] = append([]string{}, v...)
		}
		out[kind] = c
	}
	return out
}

func (t *wireTrace) AddPeer(p peer.ID, proto protocol.ID) {
	t.mu.Lock()
	t.proto[p.String()] = string(proto)
	t.mu.Unlock()
}
func (t *wireTrace) ValidateMessage(msg *pubsub.Message) {
	t.add("recv", msg.ReceivedFrom, pubsub.DefaultMsgIdFn(msg.Message))
}
func (t *wireTrace) DuplicateMessage(msg *pubsub.Message) {
	t.add("dup", msg.ReceivedFrom, pubsub.DefaultMsgIdFn(msg.Message))
}
func (t *wireTrace) RemovePeer(peer.ID)             {}
func (t *wireTrace) Join(string)                    {}
func (t *wireTrace) Leave(string)                   {}
func (t *wireTrace) Graft(peer.ID, string)          {}
func (t *wireTrace) Prune(peer.ID, string)          {}
func (t *wireTrace) DeliverMessage(*pubsub.Message) {}
func (t *wireTrace) ThrottlePeer(peer.ID)           {}

func (t *wireTrace) RejectMessage(msg *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		t.add("lost", "here", pubsub.DefaultMsgIdFn(msg.Message))
	}
}

func (t *wireTrace) UndeliverableMessage(msg *pubsub.Message) {
	t.add("lost", "here", pubsub.DefaultMsgIdFn(msg.Message))
}

func (t *wireTrace) DropRPC(rpc *pubsub.RPC, p peer.ID) {
	for _, m := range rpc.GetPublish() {
		t.add("lost", p, pubsub.DefaultMsgIdFn(m))
	}
}

var _ pubsub.RawTracer = (*wireTrace)(nil)
