"""docs/tour.md: every python block runs, every file it names exists, excerpts are trace lines.

(The sh blocks and the excerpts' faithfulness to a real dial are checked against the go peer in
tests/interop/test_tour.py.)"""

from __future__ import annotations

import re

import pytest
from tour import REPO, TOUR, blocks, excerpt_records, parse_line

from p2p.trace.readable import format_record


def test_the_tour_is_linked_from_the_readme():
    assert "docs/tour.md" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs(index):
    code = blocks("python")[index]
    exec(compile(code, f"{TOUR}:python block {index}", "exec"), {"__name__": "__tour__"})


def test_every_sh_block_line_is_a_command_of_ours():
    lines = [line for body in blocks("sh") for line in body.splitlines() if line.strip()]
    assert lines and all(line.startswith(("python -m p2p ", "python -m oracle ")) for line in lines)
    assert all("--trace" in line for line in lines)


def test_named_files_exist():
    text = TOUR.read_text()
    paths = set(re.findall(r"`((?:p2p|oracle|examples|tests)/[\w/]+\.py)`", text))
    paths |= set(re.findall(r"`((?:p2p|oracle|examples|tests)/[\w/]+/)`", text))
    assert len(paths) > 15
    missing = [p for p in paths if not (REPO / p).exists()]
    assert missing == []


def test_named_functions_exist_in_their_modules():
    """`module.py`, `Name` / `Class.method` pairs written next to each other in the tour."""
    text = TOUR.read_text()
    pairs = re.findall(r"`((?:p2p|oracle)/[\w/]+)\.py`,? (?:the sans-IO )?`(\w+)(?:\.(\w+))?`", text)
    assert len(pairs) > 10
    import importlib

    for module, name, attr in pairs:
        mod = importlib.import_module(module.replace("/", "."))
        obj = getattr(mod, name)  # AttributeError names the stale reference
        if attr:
            getattr(obj, attr)


def test_excerpt_lines_are_trace_lines_that_format_back_the_same():
    records = excerpt_records()
    assert len(records) >= 30
    layers = {r["layer"] for r in records}
    assert layers == {"tcp", "multistream", "noise", "yamux", "identify", "ping", "worker",
                      "membership"}
    for body in blocks("text"):
        for line in body.splitlines():
            record = parse_line(line)
            if record is not None:
                assert format_record(record)[0] == line
