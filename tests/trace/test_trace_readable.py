"""The readable trace format, checked on the fixed in-memory exchange."""

from __future__ import annotations

import io
import json
import re

from exchange import FakeClock, run_exchange

from p2p.trace import Tracer, open_tracer
from p2p.trace.readable import ReadableWriter, depth, format_record, hexdump

HEAD = re.compile(r"^ *(\d+\.\d{6}) (c\d+) ([→←·]) ( *)(\w+)(\[\d+\])? (\w+)")
DUMP = re.compile(r"^ +([0-9a-f]{4})  ((?:[0-9a-f]{2} ){0,8}) ((?:[0-9a-f]{2} ?){0,8}) +\|(.{1,16})\|$")


def readable_text(colour: bool = False) -> str:
    out = io.StringIO()
    run_exchange(Tracer(ReadableWriter(out, colour=colour), clock=FakeClock()))
    return out.getvalue()


def test_the_opening_lines_exactly():
    lines = readable_text().splitlines()
    assert lines[:8] == [
        '  0.001000 c1 · tcp open direction="outbound" local="/ip4/127.0.0.1/tcp/50000" '
        'remote="/ip4/127.0.0.1/tcp/4001"',
        "  0.002000 c1 → tcp data length=28",
        "                  0000  13 2f 6d 75 6c 74 69 73  74 72 65 61 6d 2f 31 2e  |./multistream/1.|",
        "                  0010  30 2e 30 0a 07 2f 6e 6f  69 73 65 0a              |0.0../noise.|",
        '  0.003000 c1 →   multistream message text="/multistream/1.0.0" kind="header" length=20',
        "                    0000  13 2f 6d 75 6c 74 69 73  74 72 65 61 6d 2f 31 2e  |./multistream/1.|",
        "                    0010  30 2e 30 0a                                       |0.0.|",
        '  0.004000 c1 →   multistream message text="/noise" kind="proposal" length=8',
    ]


def test_every_line_is_a_record_or_part_of_its_dump_and_indented_by_layer():
    tracer = run_exchange()
    text = readable_text()
    heads = [m for m in map(HEAD.match, text.splitlines()) if m]
    assert len(heads) == len(tracer.records)
    for m, record in zip(heads, tracer.records):
        assert (m.group(2), m.group(5), m.group(7)) == ("c1", record["layer"], record["event"])
        assert m.group(3) == {"out": "→", "in": "←", None: "·"}[record["dir"]]
        assert len(m.group(4)) == 2 * depth(record)
        assert (m.group(6) or None) == (f"[{record['stream']}]" if record["stream"] is not None else None)
    indents = {r["layer"] if r["stream"] is None or r["layer"] != "multistream" else "stream-ms": depth(r)
               for r in tracer.records}
    assert indents == {"tcp": 0, "multistream": 1, "noise": 1, "yamux": 2, "stream-ms": 3,
                       "ping": 4, "identify": 4, "worker": 4}
    others = [line for line in text.splitlines() if not HEAD.match(line)]
    for line in others:
        assert DUMP.match(line) or re.match(r"^ +\w+:$", line) or re.match(r"^ +\.\.\. \d+ more bytes$", line), line


def test_hexdump_offsets_and_ascii():
    lines = hexdump((b"ABCDEFGHIJKLMNOPQR\x00").hex(), "  ")
    assert lines == [
        "  0000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|",
        "  0010  51 52 00                                          |QR.|",
    ]


def test_long_raw_bytes_say_how_many_are_not_shown():
    record = {"t": 1.0, "conn": "c1", "stream": None, "dir": "in", "layer": "tcp", "event": "data",
              "length": 100, "hex": "00" * 64}
    lines = format_record(record)
    assert lines[-1].strip() == "... 36 more bytes"
    assert len(lines) == 1 + 4 + 1


def test_colour_only_when_asked():
    plain, coloured = readable_text(), readable_text(colour=True)
    assert "\x1b[" not in plain
    assert "\x1b[35mnoise\x1b[0m" in coloured and "\x1b[36myamux\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_open_tracer_writes_jsonl_or_readable_to_a_file(tmp_path):
    path = tmp_path / "trace.jsonl"
    tracer, close = open_tracer("jsonl", str(path))
    run_exchange(tracer)
    close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["layer"] == "tcp" and records[0]["event"] == "open"
    assert any(r["layer"] == "worker" for r in records)
    path = tmp_path / "trace.txt"
    tracer, close = open_tracer("readable", str(path))
    run_exchange(tracer)
    close()
    text = path.read_text()
    assert "\x1b[" not in text and " → tcp data length=28" in text
