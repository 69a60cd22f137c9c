"""WorkerPolicy: allowlist, per-peer and total concurrency, release."""

from __future__ import annotations

import pytest

from oracle.gating import WorkerPolicy, WorkRefused


def test_open_policy_admits_anyone() -> None:
    policy = WorkerPolicy.open()
    with policy.admit("peerX") as ticket:
        assert policy.active == 1 and policy.active_for("peerX") == 1
    assert ticket.released and policy.active == 0 and policy.active_for("peerX") == 0


def test_allowlist() -> None:
    policy = WorkerPolicy(allowed_peers=["peerA"])
    policy.admit("peerA").release()
    with pytest.raises(WorkRefused) as info:
        policy.admit("peerB")
    assert info.value.reason == "work refused: peer peerB is not allowed to submit work"
    assert policy.refused == 1 and policy.active == 0


def test_allowlist_compares_string_forms() -> None:
    class FakePeerId:
        def __str__(self) -> str:
            return "16Uiu2HAmX"

    policy = WorkerPolicy(allowed_peers=[FakePeerId()])
    assert policy.is_allowed("16Uiu2HAmX")
    policy.admit(FakePeerId()).release()


def test_per_peer_limit() -> None:
    policy = WorkerPolicy(max_concurrent_per_peer=2, max_concurrent_total=10)
    first, second = policy.admit("a"), policy.admit("a")
    with pytest.raises(WorkRefused, match="peer a already has 2 requests running"):
        policy.admit("a")
    policy.admit("b").release()  # other peers are not affected
    first.release()
    policy.admit("a").release()
    second.release()
    assert policy.active == 0 and policy.refused == 1


def test_total_limit() -> None:
    policy = WorkerPolicy(max_concurrent_per_peer=5, max_concurrent_total=2)
    tickets = [policy.admit("a"), policy.admit("b")]
    with pytest.raises(WorkRefused, match=r"worker busy \(2 requests running\)"):
        policy.admit("c")
    for t in tickets:
        t.release()
        t.release()  # idempotent: a double release must not free a slot twice
    assert policy.active == 0
    assert [policy.admit(p) for p in "xy"] and policy.active == 2


def test_work_type_restriction() -> None:
    policy = WorkerPolicy(allowed_work_types={"test"})
    policy.check_work_type("test")
    with pytest.raises(WorkRefused, match="'web' is not offered"):
        policy.check_work_type("web")


def test_limits_validated() -> None:
    with pytest.raises(ValueError):
        WorkerPolicy(max_concurrent_per_peer=0)
    with pytest.raises(ValueError):
        WorkerPolicy(max_concurrent_total=0)
