"""Reading docs/tour.md: its code blocks, and its trace excerpts parsed back into records."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOUR = REPO / "docs" / "tour.md"

_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
_HEAD = re.compile(r"^ *(\d+\.\d{6}) (c\d+) ([→←·]) ( *)(\w+)(?:\[(\d+)\])? (\w+)(.*)$")
ARROW_DIR = {"→": "out", "←": "in", "·": None}


def blocks(kind: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(TOUR.read_text()) if lang == kind]


def parse_line(line: str) -> dict | None:
    """A readable trace line back into a record (None for a hex dump or label line)."""
    m = _HEAD.match(line)
    if m is None:
        return None
    t, conn, arrow, _pad, layer, stream, event, rest = m.groups()
    record = {"t": float(t), "conn": conn, "stream": int(stream) if stream else None,
              "dir": ARROW_DIR[arrow], "layer": layer, "event": event}
    decoder = json.JSONDecoder()
    pos = 0
    while pos < len(rest):
        key_match = re.compile(r" (\w+)=").match(rest, pos)
        assert key_match, f"cannot parse fields of {line!r} at {rest[pos:]!r}"
        value, end = decoder.raw_decode(rest, key_match.end())
        record[key_match.group(1)] = value
        pos = end
    return record


def excerpt_records() -> list[dict]:
    out = []
    for body in blocks("text"):
        for line in body.splitlines():
            record = parse_line(line)
            if record is not None:
                out.append(record)
    return out
