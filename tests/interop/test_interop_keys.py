"""Key files cross between go-libp2p and us: a key go marshals loads here with the same peer ID,
and a key we write (binary protobuf, or masa's hex) loads in go with the same peer ID; the
conformance CLI's `keygen` and `serve --key-file` are what is exercised."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gopeer import GoPeer, run_gopeer
from p2p.identity import PeerId, load_private_key_file

KEY_TYPES = ["ed25519", "secp256k1", "ecdsa", "rsa"]


def p2p_cli(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "p2p", *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_go_key_loads_here(gopeer_bin, tmp_path, key_type):
    path = tmp_path / "go.key"
    res = run_gopeer("keygen", "--key-type", key_type, "--out", str(path), binary=gopeer_bin)
    key = load_private_key_file(path)
    assert str(PeerId.from_public_key(key.public_key)) == res["peer_id"]
    assert key.to_protobuf() == path.read_bytes()  # we re-marshal go's bytes exactly


@pytest.mark.parametrize("hex_text", [False, True])
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_our_key_loads_in_go(gopeer_bin, tmp_path, key_type, hex_text):
    path = tmp_path / "ours.key"
    res = p2p_cli("keygen", "--key-type", key_type, "--out", str(path), *(["--hex"] if hex_text else []))
    with GoPeer.serve("--key-file", str(path), binary=gopeer_bin) as peer:
        assert peer.peer_id == res["peer_id"]
