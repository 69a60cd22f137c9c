package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"gokit"
)

// sendWork does what masa's DistributeWork does for one remote candidate:
// DHT FindPeer (findMs), Connect (connectMs), then one request on
// /masa/worker_protocol/v0.8.4 with 4-byte big-endian length framing.
func sendWork(ctx context.Context, n *node, target peer.ID, data []byte, findMs, connectMs int) (map[string]any, error) {
	wasConnected := n.h.Network().Connectedness(target) == network.Connected
	fctx, cancel := context.WithTimeout(ctx, time.Duration(findMs)*time.Millisecond)
	t0 := time.Now()
	info, err := n.dht.FindPeer(fctx, target)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("find peer: %w", err)
	}
	findMsTaken := msSince(t0)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(connectMs)*time.Millisecond)
	err = n.h.Connect(cctx, info)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s, err := n.h.NewStream(ctx, target, protocol.ID("/masa/worker_protocol/v0.8.4"))
	if err != nil {
		return nil, fmt.Errorf("new stream: %w", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(45 * time.Second))
	body, err := json.Marshal(gokit.WorkRequest{WorkType: "test", RequestId: "godht", Data: data})
	if err != nil {
		return nil, err
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	if _, err := s.Write(append(frame, body...)); err != nil {
		return nil, err
	}
	var head [4]byte
	if _, err := io.ReadFull(s, head[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := io.ReadFull(s, buf); err != nil {
		return nil, err
	}
	var resp gokit.WorkResponse
	if err := json.Unmarshal(buf, &resp); err != nil {
		return nil, err
	}
	return map[string]any{"response": resp, "raw": string(buf), "find_ms": findMsTaken,
		"was_connected": wasConnected}, nil
}
