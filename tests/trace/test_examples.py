"""Every example in examples/ runs (in-process, no sockets) and prints what it promises."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str, capsys, argv: list[str] | None = None) -> str:
    old = sys.argv
    sys.argv = [name, *(argv or [])]
    try:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        sys.argv = old
    return capsys.readouterr().out


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(
        ["noise_handshake.py", "yamux_frames.py", "multistream_negotiation.py",
         "traced_exchange.py"])


def test_noise_handshake(capsys):
    out = run("noise_handshake.py", capsys).splitlines()
    assert out[0] == "message 1: 34 bytes on the wire (2-byte length prefix included)"
    assert out[1].startswith("message 2: ") and out[2].startswith("message 3: 186 bytes")
    listener_sees, dialer_sees = out[3].split(" | ")
    assert listener_sees.startswith("listener sees: 12D3KooW")   # alice: Ed25519
    assert dialer_sees.startswith("dialer sees: 16Uiu2HA")       # bob: secp256k1
    assert out[4] == "muxer chosen inside the handshake: /yamux/1.0.0"
    assert out[5] == "16 plaintext bytes -> 34 on the wire: b'hello over noise'"


def test_yamux_frames(capsys):
    out = run("yamux_frames.py", capsys).splitlines()
    assert out[:3] == [
        "client -> window_update flags=['SYN'] stream=1 length=0",
        "           server event: StreamOpened(stream_id=1)",
        "server -> window_update flags=['ACK'] stream=1 length=0",
    ]
    assert "server -> ping          flags=['ACK'] stream=0 length=7" in out
    assert "server reads stream 1: b'hello'" in out
    assert out[-2:] == [
        "server -> data          flags=[] stream=1 length=5 b'HELLO'",
        "server -> window_update flags=['FIN'] stream=1 length=0",
    ]


def test_multistream_negotiation(capsys):
    out = run("multistream_negotiation.py", capsys).splitlines()
    assert out[0] == "  dialer -> b'\\x13/multistream/1.0.0\\n\\x0c/chat/2.0.0\\n'"
    assert out[3] == "listener -> b'\\x13/multistream/1.0.0\\n\\x03na\\n'"
    assert out[-1] == "agreed on /chat/1.0.0 after trying ['/chat/2.0.0', '/chat/1.0.0']"


@pytest.mark.parametrize("jsonl", [False, True])
def test_traced_exchange(capsys, jsonl):
    out = run("traced_exchange.py", capsys, ["--jsonl"] if jsonl else [])
    if not jsonl:
        assert " → tcp data length=34" in out
        assert "noise handshake message=2" in out and 'identity_key_type="Secp256k1"' in out
        assert 'yamux[1] frame type="data" flags=["SYN"]' in out
        return
    records = [json.loads(line) for line in out.splitlines()]
    layers = [(r["layer"], r["event"]) for r in records]
    assert ("multistream", "undecodable") not in layers
    hs = [r for r in records if r["event"] == "handshake"]
    assert [(r["dir"], r.get("identity_key_type")) for r in hs] == [
        ("out", None), ("in", "Secp256k1"), ("out", "Ed25519")]
    assert layers[-4:] == [("multistream", "message"), ("multistream", "message"),
                           ("ping", "ping"), ("tcp", "data")]
