package main

import (
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	tlssec "github.com/libp2p/go-libp2p/p2p/security/tls"

	"gokit"
)

// libp2pExtensionOID is the libp2p public key extension (1.3.6.1.4.1.53594.1.1).
var libp2pExtensionOID = []int{1, 3, 6, 1, 4, 1, 53594, 1, 1}

// cmdTLSCert prints the certificate go-libp2p's TLS identity makes for a key:
// {"cert": hex DER, "extension": hex of the libp2p extension value, "peer_id"}.
func cmdTLSCert(args []string) error {
	fs := flag.NewFlagSet("tlscert", flag.ContinueOnError)
	var so stackOptions
	so.register(fs)
	if _, err := gokit.ParseArgs(fs, args); err != nil {
		return err
	}
	priv, err := so.identity()
	if err != nil {
		return err
	}
	id, err := tlssec.NewIdentity(priv)
	if err != nil {
		return err
	}
	conf, _ := id.ConfigForPeer("")
	der := conf.Certificates[0].Certificate[0]
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	var ext []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(libp2pExtensionOID) {
			ext = e.Value
		}
	}
	pid, err := gokit.PeerIDOf(priv)
	if err != nil {
		return err
	}
	gokit.Emit(map[string]string{"cert": hex.EncodeToString(der), "extension": hex.EncodeToString(ext), "peer_id": pid})
	return nil
}

// cmdTLSVerify runs go-libp2p's certificate chain check (PubKeyFromCertChain)
// on hex DER certificates given as arguments, and with --peer the peer ID
// comparison its TLS config makes when dialling; prints {"peer_id"}.
func cmdTLSVerify(args []string) error {
	fs := flag.NewFlagSet("tlsverify", flag.ContinueOnError)
	expected := fs.String("peer", "", "expected peer ID (as when dialling /p2p/ID)")
	certs, err := gokit.ParseArgs(fs, args)
	if err != nil {
		return err
	}
	var chain []*x509.Certificate
	for _, h := range certs {
		der, err := hex.DecodeString(h)
		if err != nil {
			return gokit.Usagef("bad hex: %v", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("parse: %w", err)
		}
		chain = append(chain, cert)
	}
	pub, err := tlssec.PubKeyFromCertChain(chain)
	if err != nil {
		return err
	}
	pid, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return err
	}
	if *expected != "" {
		want, err := peer.Decode(*expected)
		if err != nil {
			return gokit.Usagef("bad --peer: %v", err)
		}
		if !want.MatchesPublicKey(pub) {
			return fmt.Errorf("peer IDs don't match: expected %s, got %s", want, pid)
		}
	}
	gokit.Emit(map[string]string{"peer_id": pid.String()})
	return nil
}
