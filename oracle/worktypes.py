"""Request data for masa's own work types, checked before it leaves our requester.

masa's Go handlers read the request data with unchecked type assertions (pkg/workers/handlers:
web.go `dataMap["depth"].(float64)`, twitter.go `dataMap["count"].(float64)`,
`dataMap["query"].(string)`, `dataMap["username"].(string)`): a missing or mistyped key panics the
worker's goroutine and takes the whole Go node down. So we never send such data: `web` gets masa's
API default depth (1, as masa's /data/web endpoint fills it in when absent or <= 0) and is
re-encoded as that endpoint marshals it (`{"url":...,"depth":N}`); everything else that would
panic is refused with a `WorkDataError` naming the key. Other work types pass through unchanged.
"""

from __future__ import annotations

import json
import math
from typing import Any

from oracle.gojson import go_json_dumps

__all__ = ["DEFAULT_WEB_DEPTH", "WorkDataError", "prepare_work_data"]

DEFAULT_WEB_DEPTH = 1  # masa API (pkg/api handlers_data.go): reqBody.Depth <= 0 -> 1


class WorkDataError(ValueError):
    """Request data a Go masa worker would crash on."""


def _object(work_type: str, data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WorkDataError(f"{work_type} data must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise WorkDataError(f"{work_type} data must be a JSON object, not {type(value).__name__}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _need(work_type: str, obj: dict[str, Any], key: str, kind: str) -> None:
    value = obj.get(key)
    ok = isinstance(value, str) if kind == "string" else _number(value)
    if not ok:
        got = "missing" if key not in obj else f"a {type(value).__name__}"
        raise WorkDataError(f"{work_type} data needs {key!r} as a {kind} ({got}): a Go masa worker "
                            "would crash on it")


def prepare_work_data(work_type: str, data: bytes) -> bytes:
    """The bytes to send for `work_type`; raises WorkDataError for data a Go worker cannot survive."""
    if work_type == "web":
        obj = _object(work_type, data)
        _need(work_type, obj, "url", "string")
        if not obj["url"]:
            raise WorkDataError("web data needs a non-empty 'url'")
        depth = obj.get("depth")
        if depth is not None and not _number(depth):
            raise WorkDataError(f"web data: 'depth' must be a number, not {type(depth).__name__}")
        depth = int(depth) if depth is not None else 0
        if depth <= 0:
            depth = DEFAULT_WEB_DEPTH
        return b'{"url":' + go_json_dumps(obj["url"]) + b',"depth":' + str(depth).encode() + b"}"
    if work_type == "twitter":
        obj = _object(work_type, data)
        _need(work_type, obj, "query", "string")
        _need(work_type, obj, "count", "number")
    elif work_type == "twitter-followers":
        obj = _object(work_type, data)
        _need(work_type, obj, "username", "string")
        _need(work_type, obj, "count", "number")
    elif work_type == "twitter-profile":
        obj = _object(work_type, data)
        _need(work_type, obj, "username", "string")
    return bytes(data)
