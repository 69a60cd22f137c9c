"""bench.profile_requests finds what it counts (a renamed function would silently count zero)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import profile_requests


def test_counts_per_sequential_request_find_each_sides_io() -> None:
    with tempfile.TemporaryDirectory() as d:
        for side in ("dial", "listen"):
            per = profile_requests.counted(profile_requests.measure("rr", 200, side, Path(d)))
            # each request is one write and one read of the socket per side, and takes loop turns
            assert per["sock send"] >= 0.9 and per["sock recv"] >= 0.9, (side, per)
            assert per["loop turns"] >= 1 and per["clock"] > 0, (side, per)
            assert per["py calls"] > 50, (side, per)
