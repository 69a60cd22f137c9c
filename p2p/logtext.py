"""Peer-supplied text, bounded for log lines and error messages.

A remote peer chooses request ids, work types, protocol names, error texts and more; any of them
can be a megabyte. Everything that puts such text into a log line or an error message passes it
through `bounded` (exceptions whose message may quote a peer through `bounded_exc`), so one
request can add at most a few hundred characters to a log.
"""

from __future__ import annotations

__all__ = ["PEER_TEXT_LIMIT", "bounded", "bounded_exc"]

PEER_TEXT_LIMIT = 200  # characters of a peer-supplied text kept in a log line or error message


def bounded(value: object, limit: int = PEER_TEXT_LIMIT) -> str:
    """`value` as text, cut to `limit` characters with a note of how many were left off."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def bounded_exc(exc: BaseException, limit: int = PEER_TEXT_LIMIT) -> str:
    """An exception as `repr` would show it (type and message), bounded."""
    return bounded(f"{type(exc).__name__}({bounded(str(exc), limit)!r})", limit + 64)
