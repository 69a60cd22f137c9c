"""masa's NodeData and NodeDataPage, written and read exactly as Go's encoding/json does.

NodeData is what masa nodes announce about themselves and about each other (masa-oracle
pkg/pubsub/node_data.go at e90264a); a node's tracker holds one per peer and picks workers from
it. Keys in Go struct order; omitempty on the counters, strings and durations, never on the bools,
`peerId`, `version` or the four time.Time fields (omitempty has no effect on a struct: the zero time
is written as "0001-01-01T00:00:00Z"). `lastLeftUnix` and `selfIdentified` have the tag `-`: never
written, a received key of that name is ignored. Multiaddrs are strings; `multiaddrsString` is each
address preceded by one space.

Reading is Go's json.Unmarshal into the struct: keys case-insensitive, unknown keys ignored, last
duplicate wins, `null` leaves a field alone - except `peerId`, whose UnmarshalJSON parses even
`null`/`""` and fails. Any wrong type, unparsable peer ID, multiaddr or time fails the whole
decode (`NodeDataError`): masa rejects the whole body then, and so do we.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from multiaddr import Multiaddr

from p2p.errors import RemoteProtocolError
from p2p.identity import PeerId

from oracle.gojson import JSONSyntaxError, Pairs, go_json_dumps, loads_pairs, pairs_to_python
from oracle.gotime import ZERO_TIME, GoTime, GoTimeError
from oracle.messages import _fold, _type_name

__all__ = [
    "ACTIVITY_JOINED",
    "ACTIVITY_LEFT",
    "PAGE_SIZE",
    "NodeData",
    "NodeDataError",
    "NodeDataPage",
    "pretty_duration",
]

ACTIVITY_JOINED = 0
ACTIVITY_LEFT = 1
PAGE_SIZE = 25  # masa pkg/config constants.go PageSize (nodeDataSync pages)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NS = 1_000_000_000


class NodeDataError(RemoteProtocolError):
    """Node data that Go's decoder (and so masa) refuses as a whole."""


def pretty_duration(ns: int) -> str:
    """masa's PrettyDuration: rounded to the minute, `N days H hours M minutes` and shorter forms."""
    minutes = (ns + 30 * _NS) // (60 * _NS) if ns >= 0 else -((-ns + 30 * _NS) // (60 * _NS))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days > 0:
        return f"{days} days {hours} hours {mins} minutes"
    if hours > 0:
        return f"{hours} hours {mins} minutes"
    return f"{mins} minutes"


# --- field converters (Go's rules for each Go type) ----------------------------------------------


def _wrong(key: str, value: Any, go_type: str) -> NodeDataError:
    return NodeDataError(
        f"json: cannot unmarshal {_type_name(value)} into Go struct field NodeData.{key} of type {go_type}"
    )


def _str(key: str, value: Any, current: str) -> str:
    if value is None:
        return current
    if not isinstance(value, str):
        raise _wrong(key, value, "string")
    return value


def _int64(go_type: str) -> Callable[[str, Any, int], int]:
    def conv(key: str, value: Any, current: int) -> int:
        if value is None:
            return current
        if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
            raise _wrong(key, value, go_type)
        return value

    return conv


def _bool(key: str, value: Any, current: bool) -> bool:
    if value is None:
        return current
    if not isinstance(value, bool):
        raise _wrong(key, value, "bool")
    return value


def _time(key: str, value: Any, current: GoTime) -> GoTime:
    if value is None:
        return current  # time.Time.UnmarshalJSON("null") is a no-op
    if not isinstance(value, str):
        raise NodeDataError(f"NodeData.{key}: Time.UnmarshalJSON: input is not a JSON string")
    try:
        return GoTime.parse(value)
    except GoTimeError as exc:
        raise NodeDataError(f"NodeData.{key}: {exc}") from None


def _peer_id(key: str, value: Any, current: str) -> str:
    # peer.ID.UnmarshalJSON decodes a string (null gives "") and then the ID: "" fails.
    if value is not None and not isinstance(value, str):
        raise _wrong(key, value, "string")
    try:
        return str(PeerId.from_string(value or ""))
    except Exception as exc:  # InvalidPeerId and whatever a malformed multihash raises
        raise NodeDataError(f"NodeData.peerId: failed to parse peer ID {value!r}: {exc}") from None


def parse_multiaddr(text: str) -> str:
    """A multiaddr string as go-multiaddr reads and re-writes it; NodeDataError if it cannot."""
    if not text:
        raise NodeDataError("NodeData.multiaddrs: empty multiaddr")
    try:
        return str(Multiaddr(text))
    except Exception as exc:  # the multiaddr library raises several unrelated types
        raise NodeDataError(f"NodeData.multiaddrs: invalid multiaddr {text!r}: {exc}") from None


def _multiaddrs(key: str, value: Any, current: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return ()  # null sets a slice to nil
    if not isinstance(value, list) or isinstance(value, Pairs):
        raise _wrong(key, value, "[]pubsub.JSONMultiaddr")
    out = []
    for item in value:
        if not isinstance(item, str) and item is not None:
            raise _wrong(key, item, "string")
        out.append(parse_multiaddr(item or ""))
    return tuple(out)


def _any(key: str, value: Any, current: Any) -> Any:
    return pairs_to_python(value)


# JSON key -> (attribute, converter), in Go struct order (which is also the encoding order).
_FIELDS: dict[str, tuple[str, Callable[[str, Any, Any], Any]]] = {
    "multiaddrs": ("multiaddrs", _multiaddrs),
    "multiaddrsString": ("multiaddrs_string", _str),
    "peerId": ("peer_id", _peer_id),
    "firstJoined": ("first_joined", _int64("int64")),
    "lastJoined": ("last_joined", _int64("int64")),
    "lastUpdated": ("last_updated", _int64("int64")),
    "uptime": ("uptime", _int64("time.Duration")),
    "uptimeStr": ("uptime_str", _str),
    "accumulatedUptime": ("accumulated_uptime", _int64("time.Duration")),
    "accumulatedUptimeStr": ("accumulated_uptime_str", _str),
    "ethAddress": ("eth_address", _str),
    "activity": ("activity", _int64("int")),
    "isActive": ("is_active", _bool),
    "isStaked": ("is_staked", _bool),
    "isValidator": ("is_validator", _bool),
    "isTwitterScraper": ("is_twitter_scraper", _bool),
    "isWebScraper": ("is_web_scraper", _bool),
    "records": ("records", _any),
    "version": ("version", _str),
    "workerTimeout": ("worker_timeout", _time),
    "returnedTweets": ("returned_tweets", _int64("int")),
    "lastReturnedTweet": ("last_returned_tweet", _time),
    "tweetTimeout": ("tweet_timeout", _bool),
    "tweetTimeouts": ("tweet_timeouts", _int64("int")),
    "lastTweetTimeout": ("last_tweet_timeout", _time),
    "lastNotFoundTime": ("last_not_found_time", _time),
    "notFoundCount": ("not_found_count", _int64("int")),
}
_BY_FOLD = {_fold(k): (k, attr, conv) for k, (attr, conv) in _FIELDS.items()}
_OMITEMPTY = {
    "multiaddrs", "multiaddrsString", "firstJoined", "lastJoined", "lastUpdated", "uptime",
    "uptimeStr", "accumulatedUptime", "accumulatedUptimeStr", "ethAddress", "activity", "records",
}


def _parse(body: bytes) -> Any:
    try:
        return loads_pairs(body)
    except JSONSyntaxError as exc:
        raise NodeDataError(str(exc)) from None


@dataclass(frozen=True)
class NodeData:
    """One node as masa describes it. Times in Unix seconds, durations in nanoseconds."""

    multiaddrs: tuple[str, ...] = ()
    multiaddrs_string: str = ""
    peer_id: str = ""
    first_joined: int = 0
    last_joined: int = 0
    last_updated: int = 0
    uptime: int = 0
    uptime_str: str = ""
    accumulated_uptime: int = 0
    accumulated_uptime_str: str = ""
    eth_address: str = ""
    activity: int = ACTIVITY_JOINED
    is_active: bool = False
    is_staked: bool = False
    is_validator: bool = False
    is_twitter_scraper: bool = False
    is_web_scraper: bool = False
    records: Any = None
    version: str = ""
    worker_timeout: GoTime = ZERO_TIME
    returned_tweets: int = 0
    last_returned_tweet: GoTime = ZERO_TIME
    tweet_timeout: bool = False
    tweet_timeouts: int = 0
    last_tweet_timeout: GoTime = ZERO_TIME
    last_not_found_time: GoTime = ZERO_TIME
    not_found_count: int = 0
    # tag `-` in Go: local bookkeeping, never on the wire
    last_left: int = field(default=0, compare=False)

    # --- encoding --------------------------------------------------------------------------------

    def to_go_json(self) -> bytes:
        """json.Marshal(NodeData) byte for byte (GoJSONEncodeError if `records` is not encodable)."""
        parts = []
        for key, (attr, _) in _FIELDS.items():
            value = getattr(self, attr)
            if key == "records":
                if value is None:  # an interface is empty only when nil
                    continue
            elif key in _OMITEMPTY and not value:
                continue
            if isinstance(value, GoTime):
                encoded = go_json_dumps(str(value))
            elif isinstance(value, tuple):
                encoded = go_json_dumps(list(value))
            else:
                encoded = go_json_dumps(value)
            parts.append(b'"' + key.encode() + b'":' + encoded)
        return b"{" + b",".join(parts) + b"}"

    # --- decoding --------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, body: bytes) -> NodeData:
        """json.Unmarshal into a zero NodeData; NodeDataError on anything Go would refuse."""
        return cls.from_value(_parse(body))

    @classmethod
    def from_value(cls, value: Any, current: NodeData | None = None) -> NodeData:
        """Decode a parsed JSON value (`Pairs` for objects) into `current` (or a zero NodeData)."""
        base = current if current is not None else cls()
        if value is None:
            return base
        if not isinstance(value, Pairs):
            raise NodeDataError(
                f"json: cannot unmarshal {_type_name(value)} into Go value of type pubsub.NodeData")
        attrs: dict[str, Any] = {}
        for key, item in value:
            match = _BY_FOLD.get(_fold(key))
            if match is None:
                continue
            json_name, attr, conv = match
            attrs[attr] = conv(json_name, item, attrs.get(attr, getattr(base, attr)))
        return replace(base, **attrs) if attrs else base

    # --- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def join_multiaddrs(addrs: tuple[str, ...] | list[str]) -> str:
        """`multiaddrsString` as masa builds it: every address preceded by one space."""
        return "".join(" " + a for a in addrs)


@dataclass(frozen=True)
class NodeDataPage:
    """One line of a nodeDataSync stream: a page of at most 25 entries."""

    data: tuple[NodeData, ...] = ()
    page_number: int = 0
    total_pages: int = 0
    total_records: int = 0

    def to_go_json(self) -> bytes:
        items = b",".join(nd.to_go_json() for nd in self.data)
        return (b'{"data":[' + items + b'],"pageNumber":' + str(self.page_number).encode()
                + b',"totalPages":' + str(self.total_pages).encode()
                + b',"totalRecords":' + str(self.total_records).encode() + b"}")

    @classmethod
    def from_json(cls, body: bytes) -> NodeDataPage:
        value = _parse(body)
        if value is None:
            return cls()
        if not isinstance(value, Pairs):
            raise NodeDataError(
                f"json: cannot unmarshal {_type_name(value)} into Go value of type node.NodeDataPage")
        data: tuple[NodeData, ...] = ()
        numbers = {"pageNumber": 0, "totalPages": 0, "totalRecords": 0}
        folded = {_fold(k): k for k in numbers}
        for key, item in value:
            fk = _fold(key)
            if fk == "DATA":
                if item is None:
                    data = ()
                    continue
                if not isinstance(item, list) or isinstance(item, Pairs):
                    raise NodeDataError(f"json: cannot unmarshal {_type_name(item)} into Go struct "
                                        "field NodeDataPage.data of type []pubsub.NodeData")
                data = tuple(NodeData.from_value(v) for v in item)
            elif fk in folded:
                name = folded[fk]
                numbers[name] = _int64("int")(name, item, numbers[name])
        return cls(data, numbers["pageNumber"], numbers["totalPages"], numbers["totalRecords"])

    @staticmethod
    def paginate(entries: list[NodeData] | tuple[NodeData, ...], page_size: int = PAGE_SIZE) -> list[NodeDataPage]:
        """masa's SendNodeData pages: ceil(n/25) pages numbered from 0; none when there is nothing."""
        total = len(entries)
        pages = (total + page_size - 1) // page_size
        return [
            NodeDataPage(tuple(entries[i * page_size:(i + 1) * page_size]), i, pages, total)
            for i in range(pages)
        ]
