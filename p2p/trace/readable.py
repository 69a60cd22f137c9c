"""The trace for people: one line per record, indented by layer, raw bytes as hex dumps.

    0.000412 c1 → tcp data length=28
                    0000  13 2f 6d 75 6c 74 69 73  74 72 65 61 6d 2f 31 2e  |./multistream/1.|
                    0010  30 2e 30 0a 07 2f 6e 6f  69 73 65 0a              |0.0../noise.|
    0.000431 c1 →   multistream message text="/multistream/1.0.0" kind=header length=20

Arrows: `→` we sent it, `←` we received it, `·` a local event. The indentation follows the
stack: the transport at the left, then the connection's multistream and Noise, yamux frames, then
each stream's negotiation and protocol. Fields holding raw bytes (`hex`, keys, signatures) become
hex dumps with offsets under the line; colour (ANSI) only when asked, which `open_tracer` does
for a terminal.
"""

from __future__ import annotations

import json
from typing import IO, Any

from p2p.trace.tracer import Record

ARROWS = {"out": "→", "in": "←", None: "·"}

#: Fields shown as hex dumps below the line rather than inline.
DUMPED = ("hex", "ephemeral_key", "encrypted_static_key", "identity_key", "identity_sig",
          "public_key", "payload")

_COLOURS = {"tcp": "37", "quic": "37", "multistream": "33", "noise": "35", "yamux": "36",
            "identify": "32", "ping": "34", "kad": "34", "pubsub": "34", "membership": "32",
            "worker": "1;32", "app": "39"}
_FIXED = ("t", "conn", "stream", "dir", "layer", "event")


def depth(record: Record) -> int:
    """Indentation level of a record: where its layer sits in the stack."""
    layer = record["layer"]
    if layer in ("tcp", "quic"):
        return 0
    if layer == "noise" or (layer == "multistream" and record["stream"] is None):
        return 1
    if layer == "yamux":
        return 2
    if layer == "multistream":
        return 3
    return 4


def hexdump(hex_text: str, indent: str) -> list[str]:
    """Lines of `offset  16 bytes in hex  |ascii|`."""
    data = bytes.fromhex(hex_text)
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{indent}{off:04x}  {left:<23}  {right:<23}  |{text}|")
    return lines


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, dict, bool)) or value is None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def format_record(record: Record, *, colour: bool = False) -> list[str]:
    """The lines one record becomes (the first is the record, the rest its hex dumps)."""
    level = depth(record)
    pad = "  " * level
    layer = record["layer"]
    name = f"\x1b[{_COLOURS.get(layer, '39')}m{layer}\x1b[0m" if colour else layer
    head = f"{record['t']:10.6f} {record['conn']} {ARROWS.get(record['dir'], '?')} {pad}{name}"
    if record["stream"] is not None:
        head += f"[{record['stream']}]"
    head += f" {record['event']}"
    dumps = []
    for key, value in record.items():
        if key in _FIXED:
            continue
        if key in DUMPED and isinstance(value, str) and value:
            dumps.append((key, value))
            continue
        head += f" {key}={_value(value)}"
    lines = [head]
    indent = " " * (len(f"{record['t']:10.6f} {record['conn']} ") + 2) + pad + "  "
    for key, value in dumps:
        try:
            dump = hexdump(value, indent)
        except ValueError:  # not hex after all: show as it is
            lines.append(f"{indent}{key}: {value}")
            continue
        if key != "hex":
            lines.append(f"{indent}{key}:")
        shown = len(value) // 2
        total = record.get("length") if key == "hex" else None
        if isinstance(total, int) and total > shown and record["layer"] != "yamux":
            dump.append(f"{indent}... {total - shown} more bytes")
        if colour:
            dump = [f"\x1b[2m{line}\x1b[0m" for line in dump]
        lines.extend(dump)
    return lines


class ReadableWriter:
    def __init__(self, out: IO[str], *, colour: bool = False) -> None:
        self.out = out
        self.colour = colour

    def write(self, record: Record) -> None:
        self.out.write("\n".join(format_record(record, colour=self.colour)) + "\n")
        self.out.flush()
