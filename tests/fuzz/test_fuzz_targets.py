"""The fuzz targets and their runner: seeds are handled, an untyped error is caught, and every
target survives a short coverage-guided run (the budget CI spends on fuzzing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.__main__ import run_random
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = [n for n in TARGETS if not n.startswith("_")]


def test_one_target_per_network_parser():
    assert set(PUBLIC) == {
        "varint", "protobuf", "public_key", "peer_id", "multistream_reader", "multistream_listener",
        "multistream_dialer", "noise_responder", "noise_transport", "noise_payload", "yamux",
        "identify", "work_request", "work_response", "frame_decoder", "kad_message", "pubsub_rpc",
        "ipns_record"}


@pytest.mark.parametrize("name", PUBLIC)
def test_seeds_reach_past_the_first_check(name):
    """Every seed runs with at most a typed error, and at least one is accepted outright."""
    target = TARGETS[name]
    accepted = 0
    for seed in target.seeds():
        try:
            target.run(seed)
            accepted += 1
        except target.allowed():
            pass
    assert accepted >= 1


def test_noise_seed_completes_the_handshake():
    from fuzz.targets import _handshake, _noise_seeds

    resp = _handshake(False)
    done = resp.receive_data(_noise_seeds()[1][1:])
    assert done and done[0].remote_peer is not None


def test_random_engine_finds_the_untyped_error():
    ok, report = run_random("_selfcheck", 1.0)
    assert not ok and "IndexError" in report


def _fuzz(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzz", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(120)
def test_runner_fails_and_keeps_the_input_on_an_untyped_error(tmp_path):
    proc = _fuzz("--seconds", "1", "--artifacts", str(tmp_path), "_selfcheck")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL _selfcheck" in proc.stdout and "IndexError" in proc.stdout
    if "atheris" in proc.stdout:
        crashes = list((tmp_path / "artifacts").glob("_selfcheck-crash-*"))
        assert crashes and crashes[0].read_bytes().startswith(b"crash")


@pytest.mark.timeout(300)
def test_every_target_survives_a_short_fuzzing_run():
    """CI's fuzzing budget: 2 s per target under atheris, two at a time (about 30 s)."""
    import atheris  # noqa: F401  (the test extra installs it; CI must not fall back silently)

    proc = _fuzz("--seconds", "2", "--jobs", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.count("\nok   ") + proc.stdout.startswith("ok   ") == len(PUBLIC)
    assert f"{len(PUBLIC)} of {len(PUBLIC)} targets clean (atheris" in proc.stdout
