package main

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/path"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/routing"
)

// ipnsValue is the path every test IPNS record points to.
const ipnsValue = "/ipfs/bafkqaaa"

// ipnsRecord is an IPNS record as go's ipns.NewRecord makes it (TTL 1 h), marshalled.
func ipnsRecord(sk crypto.PrivKey, seq uint64, eol time.Time, v1 bool) ([]byte, error) {
	p, err := path.NewPath(ipnsValue)
	if err != nil {
		return nil, err
	}
	rec, err := ipns.NewRecord(sk, p, seq, eol, time.Hour, ipns.WithV1Compatibility(v1))
	if err != nil {
		return nil, err
	}
	return ipns.MarshalRecord(rec)
}

// acceptAll is masa's validator of the "db" namespace: every record is valid
// and Select always picks the first.
type acceptAll struct{}

func (acceptAll) Validate(string, []byte) error        { return nil }
func (acceptAll) Select(string, [][]byte) (int, error) { return 0, nil }

// runExtra answers the commands kept out of main.go's switch: the pubsub wire
// trace and the DHT's values. ok is false for any other command.
func runExtra(ctx context.Context, n *node, c command) (res map[string]any, err error, ok bool) {
	switch c.Cmd {
	case "pubsubtrace":
		return n.trace.snapshot(), nil, true
	case "putvalue": // dht.PutValue(key, data): validate, store, PUT_VALUE at the closest peers
		key, err := hex.DecodeString(c.Key)
		if err != nil {
			return nil, err, true
		}
		data, err := hex.DecodeString(c.Data)
		if err != nil {
			return nil, err, true
		}
		t0 := time.Now()
		if err := n.dht.PutValue(ctx, string(key), data); err != nil {
			return nil, err, true
		}
		return map[string]any{"ms": msSince(t0)}, nil, true
	case "putipns": // node's own IPNS record (sequence c.Count, EOL in 1 h) via PutValue
		raw, err := ipnsRecord(n.h.Peerstore().PrivKey(n.h.ID()), uint64(c.Count), time.Now().Add(time.Hour), true)
		if err != nil {
			return nil, err, true
		}
		key := ipns.NameFromPeer(n.h.ID()).RoutingKey()
		if err := n.dht.PutValue(ctx, string(key), raw); err != nil {
			return nil, err, true
		}
		return map[string]any{"key": hex.EncodeToString(key), "data": hex.EncodeToString(raw)}, nil, true
	case "getvalue", "getlocal": // dht.GetValue over the network, or from the local store only
		key, err := hex.DecodeString(c.Key)
		if err != nil {
			return nil, err, true
		}
		var opts []routing.Option
		if c.Cmd == "getlocal" {
			opts = append(opts, routing.Offline)
		}
		t0 := time.Now()
		data, err := n.dht.GetValue(ctx, string(key), opts...)
		if err != nil {
			return nil, err, true
		}
		return map[string]any{"data": hex.EncodeToString(data), "ms": msSince(t0)}, nil, true
	}
	return nil, nil, false
}
