"""Our libp2p TLS certificates checked by go-libp2p's own verification, and go's fresh ones by ours.

`gopeer tlsverify` runs go-libp2p v0.36.3's PubKeyFromCertChain (and, with --peer, the peer ID
check its TLS config makes when dialling); `gopeer tlscert` prints the certificate go's TLS identity
makes. Every refused and accepted case of tests/core/tls_cases.py is put to go as well, so our
verifier and go's agree case by case.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from gopeer import GoPeerError, run_gopeer  # noqa: E402
from tls_cases import accepted_certificates, refused_certificates  # noqa: E402
from tls_vectors import GO_CERTIFICATES  # noqa: E402

from p2p.identity import KeyType, PeerId, PrivateKey  # noqa: E402
from p2p.security.tls_cert import make_certificate, verify_certificate_chain  # noqa: E402

KEY_TYPES = {"ed25519": KeyType.Ed25519, "secp256k1": KeyType.Secp256k1,
             "ecdsa": KeyType.ECDSA, "rsa": KeyType.RSA}
REFUSED = refused_certificates()
ACCEPTED = accepted_certificates()
# What go says for each refused case: the same check fails on both sides.
GO_REASONS = {
    "no extension": "expected certificate to contain the key extension",
    "expired": "certificate has expired or is not yet valid",
    "not yet valid": "certificate has expired or is not yet valid",
    "wrong signature": "signature invalid",
    "signature over another key": "signature invalid",
    "extension not DER": "unmarshalling signed certificate failed",
    "publicKey as BIT STRING": "unmarshalling signed certificate failed",
    "publicKey not a key": "unmarshalling public key failed",
    "EKU without serverAuth": "incompatible key usage",
    "unknown critical extension": "unhandled critical extension",
    "secp256k1 certificate key": "unsupported elliptic curve",
    "not a certificate": "parse: x509",
}


@pytest.mark.parametrize("name", list(KEY_TYPES))
def test_go_accepts_our_certificate(gopeer_bin, name):
    key = PrivateKey.generate(KEY_TYPES[name])
    peer = str(PeerId.from_public_key(key.public_key))
    der = make_certificate(key).der.hex()
    assert run_gopeer("tlsverify", der, binary=gopeer_bin)["peer_id"] == peer
    assert run_gopeer("tlsverify", "--peer", peer, der, binary=gopeer_bin)["peer_id"] == peer
    other = str(PeerId.from_public_key(PrivateKey.generate(KeyType.Ed25519).public_key))
    with pytest.raises(GoPeerError, match="peer IDs don't match"):
        run_gopeer("tlsverify", "--peer", other, der, binary=gopeer_bin)


@pytest.mark.parametrize("name", list(KEY_TYPES))
def test_we_accept_gos_fresh_certificate(gopeer_bin, tmp_path, name):
    key = PrivateKey.generate(KEY_TYPES[name])
    path = tmp_path / "id.key"
    path.write_bytes(key.to_protobuf())
    res = run_gopeer("tlscert", "--key-file", str(path), binary=gopeer_bin)
    proved = verify_certificate_chain([bytes.fromhex(res["cert"])])
    assert proved.peer_id == PeerId.from_public_key(key.public_key)
    assert str(proved.peer_id) == res["peer_id"]


def test_go_refuses_a_chain_of_two(gopeer_bin):
    der = make_certificate(PrivateKey.generate(KeyType.Ed25519)).der.hex()
    with pytest.raises(GoPeerError, match="expected one certificates"):
        run_gopeer("tlsverify", der, der, binary=gopeer_bin)


@pytest.mark.parametrize("case", list(REFUSED))
def test_go_refuses_what_we_refuse(gopeer_bin, case):
    der, _ = REFUSED[case]
    with pytest.raises(GoPeerError, match=GO_REASONS[case]) as info:
        run_gopeer("tlsverify", der.hex(), binary=gopeer_bin)
    assert info.value.returncode == 1, info.value.stderr


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_go_accepts_what_we_accept(gopeer_bin, case):
    res = run_gopeer("tlsverify", ACCEPTED[case].hex(), binary=gopeer_bin)
    assert res["peer_id"] == GO_CERTIFICATES["ed25519"]["peer_id"]
