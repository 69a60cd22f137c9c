"""bench.profile_twoway finds what it counts (a renamed function would silently count zero)."""

from __future__ import annotations

from bench import profile_twoway


def test_counts_per_mib_find_the_frames_of_each_direction() -> None:
    scenarios = (("bulk", 1), ("echo", 1))
    rows = profile_twoway.measure(mib=2, chunk=256 << 10, scenarios=scenarios)
    assert set(rows) == {f"{s} x{n} {side}" for s, n in scenarios for side in ("listen", "dial")}
    # 1 MiB is 16 full Noise frames: each direction opens/seals at least that many per MiB.
    assert rows["bulk x1 listen"]["AEAD open"] >= 15 and rows["bulk x1 dial"]["AEAD seal"] >= 15
    for side in ("listen", "dial"):
        echo = rows[f"echo x1 {side}"]
        assert echo["AEAD open"] >= 15 and echo["AEAD seal"] >= 15, echo
        assert echo["sock send"] > 0 and echo["sock recv"] > 0 and echo["loop turns"] > 0, echo
    # A sink seals only its window updates (~0.2 per MiB on a quiet machine; under load the
    # updates go out in more, smaller batches: 2-2.5 were seen). Data sent back would take >= 15.
    assert rows["bulk x1 listen"]["AEAD seal"] < 8
    assert "per MiB of payload" in profile_twoway.table(rows)


def test_idle_share_is_wall_minus_cpu_of_each_process() -> None:
    row = profile_twoway.idle_once(4 << 20, 1, 256 << 10)
    assert row["wall ms"] > 0 and row["listener cpu ms"] > 0 and row["dialer cpu ms"] > 0
    for side in ("listener", "dialer"):
        assert 0 <= row[f"{side} idle"] < 1
        # idle share and CPU per MiB describe the same run
        expected = max(0.0, 1 - row[f"{side} cpu ms"] / row["wall ms"])
        assert abs(row[f"{side} idle"] - expected) < 1e-9
