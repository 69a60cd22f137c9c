"""WorkerPolicy: allowlist, per-peer and total concurrency, release."""

from __future__ import annotations

import pytest

from oracle.gating import WorkerPolicy, WorkLimits, WorkRefused


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


# --- the queue ------------------------------------------------------------------------------------


def _granted(log: list[str], name: str):
    return lambda: log.append(name)


def test_requests_over_the_share_queue_and_are_granted_in_order() -> None:
    policy = WorkerPolicy(max_concurrent_per_peer=1, max_concurrent_total=10)
    first = policy.request("a")
    assert first.granted
    grants: list[str] = []
    waiting = [policy.request("a") for _ in range(3)]
    for i, w in enumerate(waiting):
        assert not w.granted
        w.on_grant = _granted(grants, f"a{i}")
    assert policy.waiting == 3 and policy.active == 1 and policy.queued == 3
    other = policy.request("b")  # another peer under its share is not held up by a's queue
    assert other.granted and policy.active == 2
    first.release()
    assert grants == ["a0"] and waiting[0].granted and policy.waiting == 2
    waiting[1].release()  # gave up waiting: leaves the queue, frees nothing
    assert policy.waiting == 1 and policy.active == 2
    waiting[0].release()
    assert grants == ["a0", "a2"] and waiting[2].granted
    waiting[2].release()
    other.release()
    assert policy.active == 0 and policy.waiting == 0 and policy.refused == 0


def test_total_limit_queues_and_grants_the_oldest_eligible() -> None:
    policy = WorkerPolicy(max_concurrent_per_peer=1, max_concurrent_total=2)
    a, b = policy.request("a"), policy.request("b")
    a2, c = policy.request("a"), policy.request("c")  # a2 waits for a's share, c for the total
    assert not a2.granted and not c.granted
    b.release()  # a is still at its share: c, though younger, gets b's slot
    assert c.granted and not a2.granted
    a.release()
    assert a2.granted
    for adm in (a2, c):
        adm.release()
    assert policy.active == 0 and policy.waiting == 0


def test_queue_bounds_refuse_at_once() -> None:
    policy = WorkerPolicy(max_concurrent_per_peer=1, max_concurrent_total=4, max_queued_per_peer=2,
                          max_queued_total=3)
    held = [policy.request(p) for p in "ab"]
    queued = [policy.request("a"), policy.request("a")]
    with pytest.raises(WorkRefused, match="peer a already has 1 requests running, and its queue is full"):
        policy.request("a")
    queued.append(policy.request("b"))
    with pytest.raises(WorkRefused, match="and its queue is full"):
        policy.request("b")  # the total queue (3) is full
    assert policy.waiting == 3 and policy.refused == 2
    for adm in held + queued:
        adm.release()
    assert policy.active == 0 and policy.waiting == 0


def test_expired_wait_leaves_the_queue_with_a_refusal() -> None:
    policy = WorkerPolicy(max_concurrent_per_peer=1, queue_timeout=2.5)
    held = policy.request("a")
    waiting = policy.request("a")
    refusal = policy.expire(waiting)
    assert refusal.reason == "work refused: peer a already has 1 requests running; waited 2.5 s for a turn"
    assert policy.waiting == 0 and waiting.released
    held.release()
    assert not waiting.granted and policy.active == 0


# --- answer memory budget -------------------------------------------------------------------------


def test_answer_budget_per_peer_and_total() -> None:
    policy = WorkerPolicy(max_answer_bytes_per_peer=100, max_answer_bytes_total=150)
    a1, a2, b1 = policy.request("a"), policy.request("a"), policy.request("b")
    assert policy.reserve_answer(a1, 60) is None
    refused = policy.reserve_answer(a2, 41)  # a would hold 101 > 100
    assert refused is not None and "an answer of 41 bytes does not fit" in refused.reason
    assert "60 of 100 bytes held for this peer, 60 of 150 in all" in refused.reason
    assert policy.reserve_answer(a2, 40) is None
    assert policy.reserve_answer(b1, 51) is not None  # 100 + 51 > 150 in all
    assert policy.reserve_answer(b1, 50) is None and policy.answer_bytes == 150
    a1.release()  # the answer was written: its bytes are free again
    assert policy.answer_bytes == 90 and policy.reserve_answer(policy.request("c"), 60) is None
    assert policy.refused == 2


def test_work_limits_validated_and_from_mapping() -> None:
    assert WorkLimits.from_mapping({"max_queued_per_peer": 0}).max_queued_per_peer == 0
    for bad in ({"queue_timeout": 0}, {"max_queued_total": -1}, {"max_concurrent_total": "8"},
                {"max_answer_bytes_per_peer": 2 << 30}, {"max_concurrent_per_peer": True}):
        with pytest.raises(ValueError):
            WorkLimits.from_mapping(bad)
    with pytest.raises(ValueError, match="unknown WorkLimits field"):
        WorkLimits.from_mapping({"max_queue": 3})
    policy = WorkerPolicy(limits=WorkLimits(max_queued_total=7), max_concurrent_per_peer=2)
    assert policy.limits.max_queued_total == 7 and policy.max_concurrent_per_peer == 2


def test_peer_text_in_a_refusal_is_bounded() -> None:
    policy = WorkerPolicy(allowed_work_types={"test"})
    with pytest.raises(WorkRefused) as info:
        policy.check_work_type("w" * 1_000_000)
    assert len(info.value.reason) < 400
