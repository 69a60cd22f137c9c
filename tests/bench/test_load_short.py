"""Short variant of the load scenario (bench/load.py): 20 connections x 500 streams held 3 s."""

from __future__ import annotations

import pytest

from bench.load import run_load


@pytest.fixture
def anyio_backend():
    return "asyncio"  # the scenario's client side; the server child process runs asyncio too


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_short_load_holds_every_stream_and_reports_memory(capsys):
    res = await run_load(20, 500, 3.0, interval=1.0, timeout=30.0, echo_timeout=20.0)
    with capsys.disabled():
        print(f"\nload (short): connect {res.connect_s:.2f} s, open {res.open_s:.2f} s, "
              f"{res.echoes} echoes, final p50 {res.final_p50_ms} ms p99 {res.final_p99_ms} ms, "
              f"server {res.server_kib_per_stream} KiB/stream, RSS {res.rss_mib}, fds {res.server_fds}")
    assert res.failures == 0, res.first_error
    # one echo at open, >= 1 during the 3 s hold at a 1 s interval, one at the end, per stream
    assert res.echoes >= 500 * 3
    assert res.server_fds["connected"] >= res.server_fds["baseline"] + 20  # 20 real connections
    assert res.server_fds["closed"] <= res.server_fds["baseline"] + 2  # and all of them gone
    assert set(res.rss_mib) == {"baseline", "connected", "streams open", "end of hold", "closed"}
    assert 0 < res.server_kib_per_stream < 256  # bounded per stream (window buffers are lazy)
    assert res.final_p99_ms < 20_000
