package gokit

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
)

// TestHostOptions are the options every test host shares, whatever its
// transports: the identity, a resource manager with infinite limits (so that
// tests with many streams measure the protocol stack rather than go's default
// quotas), no relay and no metrics.
func TestHostOptions(priv crypto.PrivKey) ([]libp2p.Option, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		return nil, err
	}
	return []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}, nil
}

// P2PAddrs are the host's listen addresses, each ending in /p2p/<its ID>.
func P2PAddrs(h host.Host) ([]string, error) {
	p2p, err := ma.NewComponent("p2p", h.ID().String())
	if err != nil {
		return nil, err
	}
	addrs := []string{}
	for _, a := range h.Network().ListenAddresses() {
		addrs = append(addrs, a.Encapsulate(p2p).String())
	}
	return addrs, nil
}

// LogConnections logs every connection and disconnection of the host.
func LogConnections(h host.Host) {
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			Log.Printf("connected %s %s (%s)", c.RemotePeer(), c.RemoteMultiaddr(), c.ConnState().Security)
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			Log.Printf("disconnected %s", c.RemotePeer())
		},
	})
}

// ServeUntilSignal prints {"peer_id", "addrs"} for the listening host, then
// serves until SIGINT or SIGTERM (a clean shutdown, logged).
func ServeUntilSignal(h host.Host) error {
	addrs, err := P2PAddrs(h)
	if err != nil {
		return err
	}
	// Catch signals before announcing: a harness may stop us right after the line.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	Emit(map[string]any{"peer_id": h.ID().String(), "addrs": addrs})
	s := <-sig
	Log.Printf("got %v, shutting down", s)
	return nil
}

// ServeUntilStdinCloses is the bench listener's role (bench/peer_common.py):
// print {"addr": first listen address}, serve until the harness closes stdin.
func ServeUntilStdinCloses(h host.Host) error {
	addrs, err := P2PAddrs(h)
	if err != nil {
		return err
	}
	Emit(map[string]string{"addr": addrs[0]})
	io.Copy(io.Discard, os.Stdin)
	return nil
}
