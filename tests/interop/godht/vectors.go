package main

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/ipfs/boxo/ipns"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"gokit"
)

type marshaler interface{ Marshal() ([]byte, error) }

// vectors prints, as one JSON object of name -> hex, messages encoded by the
// go types themselves: the known answers of the Python codecs.
func vectors() error {
	out := map[string]string{}
	put := func(name string, m marshaler) error {
		b, err := m.Marshal()
		if err != nil {
			return err
		}
		out[name] = hex.EncodeToString(b)
		return nil
	}
	// A fixed Ed25519 identity (seed 0x01..0x20): deterministic signatures.
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(append(append([]byte{}, seed...), ed25519Public(seed)...))
	if err != nil {
		return err
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return err
	}
	out["peer_id"] = hex.EncodeToString([]byte(id))
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	addr6 := ma.StringCast("/ip6/::1/tcp/4002")

	if err := put("kad_ping", pb.NewMessage(pb.Message_PING, nil, 0)); err != nil {
		return err
	}
	if err := put("kad_find_node", pb.NewMessage(pb.Message_FIND_NODE, []byte(id), 0)); err != nil {
		return err
	}
	reply := pb.NewMessage(pb.Message_FIND_NODE, nil, 0)
	peers := pb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: id, Addrs: []ma.Multiaddr{addr, addr6}}})
	peers[0].Connection = pb.Message_CONNECTED
	reply.CloserPeers = peers
	if err := put("kad_find_node_reply", reply); err != nil {
		return err
	}
	nsKey := sha256.Sum256([]byte("/masa/oracle_protocol/v0.8.4"))
	provKey := append([]byte{0x12, 0x20}, nsKey[:]...)
	add := pb.NewMessage(pb.Message_ADD_PROVIDER, provKey, 0)
	add.ProviderPeers = pb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: id, Addrs: []ma.Multiaddr{addr}}})
	if err := put("kad_add_provider", add); err != nil {
		return err
	}
	getp := pb.NewMessage(pb.Message_GET_PROVIDERS, provKey, 0)
	getp.ProviderPeers = pb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: id, Addrs: []ma.Multiaddr{addr}}})
	if err := put("kad_get_providers_reply", getp); err != nil {
		return err
	}
	recKey := []byte("/db/" + id.String())
	putv := pb.NewMessage(pb.Message_PUT_VALUE, recKey, 0)
	putv.Record = &recpb.Record{Key: recKey, Value: []byte(`{"peerId":"x"}`), TimeReceived: "2026-11-29T08:05:26.878244335Z"}
	if err := put("kad_put_value", putv); err != nil {
		return err
	}
	// a pk record as go's PutValue sends it: /pk/<peer ID bytes> -> the protobuf public key
	pkBytes, err := crypto.MarshalPublicKey(priv.GetPublic())
	if err != nil {
		return err
	}
	pkKey := append([]byte("/pk/"), []byte(id)...)
	putpk := pb.NewMessage(pb.Message_PUT_VALUE, pkKey, 0)
	putpk.Record = &recpb.Record{Key: pkKey, Value: pkBytes}
	if err := put("kad_put_value_pk", putpk); err != nil {
		return err
	}
	getv := pb.NewMessage(pb.Message_GET_VALUE, recKey, 0)
	if err := put("kad_get_value", getv); err != nil {
		return err
	}
	// IPNS records (boxo v0.21.0, kad-dht's ipns validator) for the fixed key: v1-compatible
	// (go's default) and V2-only, EOL 2100-01-01, sequence 7, TTL 1 h.
	for name, v1 := range map[string]bool{"ipns_record": true, "ipns_record_v2only": false} {
		raw, err := ipnsRecord(priv, 7, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), v1)
		if err != nil {
			return err
		}
		out[name] = hex.EncodeToString(raw)
	}
	out["ipns_key"] = hex.EncodeToString([]byte(ipns.NameFromPeer(id).RoutingKey()))
	emptyPeer := pb.NewMessage(pb.Message_FIND_NODE, nil, 0)
	emptyPeer.CloserPeers = []pb.Message_Peer{{}}
	if err := put("kad_empty_peer", emptyPeer); err != nil {
		return err
	}

	// pubsub: a message signed as go's signMessage does (Marshal of from, data,
	// seqno, topic; prefix "libp2p-pubsub:"; identity-key signature).
	seqno := []byte{0x18, 0x7c, 0x4a, 0x2b, 0x00, 0x00, 0x00, 0x01}
	topic := "/masa/gossip/v0.8.4"
	msg := &pubsubpb.Message{From: []byte(id), Data: []byte(`{"peerId":"x"}`), Seqno: seqno, Topic: &topic}
	unsigned, err := msg.Marshal()
	if err != nil {
		return err
	}
	out["pubsub_signed_bytes"] = hex.EncodeToString(append([]byte("libp2p-pubsub:"), unsigned...))
	sig, err := priv.Sign(append([]byte("libp2p-pubsub:"), unsigned...))
	if err != nil {
		return err
	}
	msg.Signature = sig
	yes := true
	no := false
	rpc := &pubsubpb.RPC{
		Subscriptions: []*pubsubpb.RPC_SubOpts{{Subscribe: &yes, Topicid: &topic}, {Subscribe: &no, Topicid: &topic}},
		Publish:       []*pubsubpb.Message{msg},
	}
	if err := put("pubsub_rpc_publish", rpc); err != nil {
		return err
	}
	msgID := string(append(append([]byte{}, []byte(id)...), seqno...))
	backoff := uint64(60)
	ctl := &pubsubpb.RPC{Control: &pubsubpb.ControlMessage{
		Ihave:     []*pubsubpb.ControlIHave{{TopicID: &topic, MessageIDs: []string{msgID}}},
		Iwant:     []*pubsubpb.ControlIWant{{MessageIDs: []string{msgID}}},
		Graft:     []*pubsubpb.ControlGraft{{TopicID: &topic}},
		Prune:     []*pubsubpb.ControlPrune{{TopicID: &topic, Backoff: &backoff}},
		Idontwant: []*pubsubpb.ControlIDontWant{{MessageIDs: []string{msgID}}},
	}}
	if err := put("pubsub_rpc_control", ctl); err != nil {
		return err
	}
	// IDONTWANT as go's PreValidation sends it: an RPC with only that control entry.
	msgID2 := string(append(append([]byte{}, []byte(id)...), 0x18, 0x7c, 0x4a, 0x2b, 0, 0, 0, 2))
	idw := &pubsubpb.RPC{Control: &pubsubpb.ControlMessage{
		Idontwant: []*pubsubpb.ControlIDontWant{{MessageIDs: []string{msgID, msgID2}}},
	}}
	if err := put("pubsub_rpc_idontwant", idw); err != nil {
		return err
	}
	hello := &pubsubpb.RPC{Subscriptions: []*pubsubpb.RPC_SubOpts{{Subscribe: &yes, Topicid: &topic}}}
	if err := put("pubsub_rpc_hello", hello); err != nil {
		return err
	}
	gokit.Emit(out)
	return nil
}
