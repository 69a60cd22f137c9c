"""Wire tracing: watch every layer of a libp2p connection as it happens.

    tracer = Tracer()                      # records kept in tracer.records
    async with Host(key, trace=tracer) as host: ...

`open_tracer("readable" | "jsonl", path)` writes them instead (stderr by default). See
`p2p.trace.tracer` for the record format, `p2p.trace.hooks` for where tracing attaches, and
docs/tour.md for a dial walked through with its trace.
"""

from p2p.trace.tracer import JsonLinesWriter, Record, Tracer, open_tracer

__all__ = ["JsonLinesWriter", "Record", "Tracer", "open_tracer"]
