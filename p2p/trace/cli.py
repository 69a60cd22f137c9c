"""`--trace`, `--trace-format readable|jsonl`, `--trace-file PATH` for every command line.

Any one of the three turns tracing on; the format defaults to readable (coloured on a terminal),
the destination to stderr, so a command's own result (stdout) stays machine-readable.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from p2p.trace.tracer import Tracer, open_tracer


def add_trace_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("wire trace (any of these turns it on)")
    group.add_argument("--trace", action="store_true",
                       help="print every layer of every connection as it happens (stderr)")
    group.add_argument("--trace-format", choices=["readable", "jsonl"],
                       help="readable (default; indented, hex dumps) or jsonl (one JSON per line)")
    group.add_argument("--trace-file", metavar="PATH", help="write the trace here, not to stderr")


def tracer_from_args(args: argparse.Namespace) -> tuple[Tracer | None, Callable[[], None]]:
    """The Tracer the options ask for (None when tracing is off) and the function closing it."""
    fmt = getattr(args, "trace_format", None)
    path = getattr(args, "trace_file", None)
    if not (getattr(args, "trace", False) or fmt or path):
        return None, lambda: None
    return open_tracer(fmt or "readable", path)
