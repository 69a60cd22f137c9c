package gokit

import (
	"encoding/hex"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ParseKeyType maps ed25519|secp256k1|ecdsa|rsa (any case) to go-libp2p's
// key type; anything else is a UsageError.
func ParseKeyType(name string) (int, error) {
	switch strings.ToLower(name) {
	case "ed25519":
		return crypto.Ed25519, nil
	case "secp256k1":
		return crypto.Secp256k1, nil
	case "ecdsa":
		return crypto.ECDSA, nil
	case "rsa":
		return crypto.RSA, nil
	}
	return 0, Usagef("unknown key type %q", name)
}

// GenerateKey makes a new private key of the named type (RSA: 2048 bits).
func GenerateKey(name string) (crypto.PrivKey, error) {
	kt, err := ParseKeyType(name)
	if err != nil {
		return nil, err
	}
	priv, _, err := crypto.GenerateKeyPair(kt, 2048)
	return priv, err
}

// DecodeKey reads a marshalled private key: raw protobuf bytes, or the hex
// text of them as masa stores its key (surrounding whitespace tolerated).
func DecodeKey(raw []byte) (crypto.PrivKey, error) {
	text := strings.TrimSpace(string(raw))
	if decoded, err := hex.DecodeString(text); err == nil && len(text) > 0 {
		raw = decoded
	}
	return crypto.UnmarshalPrivateKey(raw)
}

// LoadKeyFile is DecodeKey of a file's contents.
func LoadKeyFile(path string) (crypto.PrivKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return DecodeKey(raw)
}

// Identity is the key from keyFile when given, else a new key of keyType.
func Identity(keyType, keyFile string) (crypto.PrivKey, error) {
	if keyFile != "" {
		return LoadKeyFile(keyFile)
	}
	return GenerateKey(keyType)
}

// PeerIDOf is the peer ID (base58) of a private key.
func PeerIDOf(priv crypto.PrivKey) (string, error) {
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}
