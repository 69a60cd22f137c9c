"""WorkRequest and WorkResponse, encoded and decoded as masa's Go structs are by encoding/json.

Go structs (masa-oracle pkg/workers/types/request_response.go, tags v0.8.4..HEAD):
  WorkRequest  {workType, requestId, data []byte, workerPeerId (v0.8.9)}      all omitempty
  WorkResponse {workRequest *WorkRequest, data any, error, workerPeerId,
                recordCount int (v0.8.4..v0.8.9), loginEvent *LoginEvent (v0.8.9)} all omitempty
  LoginEvent   {peer_id, user_id, success bool, error (omitempty), service_type}
We write every field in that order, omitting empty ones, so a HEAD node (which does not know
recordCount/loginEvent) simply ignores them. Reading follows Go's decoder: unknown keys ignored, keys
matched case-insensitively (Go's fold: ASCII upper-casing, Unicode simple folding, so `ſ` matches `s`
and the Kelvin sign matches `k`), the last duplicate wins, `null` leaves a field empty, any other
wrong type is an error. Every decoding failure is a `MessageError` (a RemoteProtocolError).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from p2p.errors import RemoteProtocolError

from oracle.gojson import (
    JSONSyntaxError,
    Pairs,
    flat_string_members,
    go_json_dumps,
    go_json_pieces,
    loads_pairs,
    pairs_to_python,
)

__all__ = ["LoginEvent", "MessageError", "WorkRequest", "WorkResponse"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class MessageError(RemoteProtocolError):
    """A work message that Go's decoder would refuse (bad JSON, wrong type, bad base64)."""


def _fold(name: str) -> str:
    """Go's encoding/json foldName: ASCII upper-case, else ToUpper(ToLower(r)) (simple mappings)."""
    out = []
    for ch in name:
        if ch < "\x80":
            out.append(ch.upper())
            continue
        low = ch.lower()[0]  # only U+0130 has a multi-char full lowercase; its simple one is 'i'
        up = low.upper()
        out.append(up if len(up) == 1 else low)  # multi-char full uppercase: no simple mapping
    return "".join(out)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Pairs):
        return "object"
    return "array"


def _wrong(struct: str, key: str, value: Any, go_type: str) -> MessageError:
    return MessageError(
        f"json: cannot unmarshal {_type_name(value)} into Go struct field {struct}.{key} of type {go_type}"
    )


def _as_str(struct: str, key: str, value: Any, current: str) -> str:
    if value is None:
        return current
    if not isinstance(value, str):
        raise _wrong(struct, key, value, "string")
    return value


@dataclass(frozen=True)
class _Decoded:
    """A base64 member already decoded, in steps (`WorkRequest.decode_steps`)."""

    data: bytes


#: Base64 characters decoded per step of `WorkRequest.decode_steps` (~0.25 ms of CPU).
_B64_STEP = 128 * 1024


def _b64_steps(value: str) -> Generator[None, None, bytes | None]:
    """Go's base64.StdEncoding decoding of `value` (as `_as_bytes`), a step at a time; None when
    it is not valid (then `_as_bytes` decodes it again, in one go, to raise Go's error in order).

    Strict decoding of consecutive pieces equals that of the whole as long as no piece but the
    last holds padding: a piece that does falls back too."""
    text = value.replace("\r", "").replace("\n", "") if "\r" in value or "\n" in value else value
    parts = []
    for start in range(0, len(text), _B64_STEP):
        piece = text[start:start + _B64_STEP]
        if start + _B64_STEP < len(text) and "=" in piece:
            return None
        try:
            parts.append(binascii.a2b_base64(piece.encode("ascii"), strict_mode=True))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        yield
    return b"".join(parts)


def _as_bytes(struct: str, key: str, value: Any, current: bytes) -> bytes:
    if value is None:
        return b""
    if type(value) is _Decoded:
        return value.data
    if isinstance(value, str):
        try:  # canonical base64 (what every encoder writes) in one C call, no regular expression
            return binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError):
            pass  # strict mode refuses '\r' and '\n' too, which Go skips
        # Go's base64.StdEncoding: padding required, '\r' and '\n' skipped, nothing else allowed.
        text = value.replace("\r", "").replace("\n", "")
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            pass  # b64decode below says what is wrong, in its words, or takes what it takes
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise MessageError(f"illegal base64 data in {struct}.{key}: {exc}") from None
    if isinstance(value, list) and not isinstance(value, Pairs):
        # Go also fills a []byte from an array of numbers 0..255.
        if all(type(v) is int and 0 <= v <= 255 for v in value):
            return bytes(value)
    raise _wrong(struct, key, value, "[]uint8")


def _as_int(struct: str, key: str, value: Any, current: int) -> int:
    if value is None:
        return current
    if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
        raise _wrong(struct, key, value, "int")
    return value


def _as_bool(struct: str, key: str, value: Any, current: bool) -> bool:
    if value is None:
        return current
    if not isinstance(value, bool):
        raise _wrong(struct, key, value, "bool")
    return value


def _decode_struct(
    struct: str, value: Any, fields: _Fields, defaults: dict[str, Any]
) -> dict[str, Any] | None:
    """Assign JSON object members to fields like Go: returns attribute values, None for JSON null."""
    if value is None:
        return None
    if not isinstance(value, Pairs):
        raise MessageError(f"json: cannot unmarshal {_type_name(value)} into Go value of type {struct}")
    by_fold: dict[str, str] | None = None
    out = dict(defaults)
    for key, item in value:
        field = fields.get(key)  # the usual case: the exact JSON name, nothing to fold
        json_name = key
        if field is None:
            if by_fold is None:
                by_fold = _fold_map(tuple(fields))
            folded = by_fold.get(_fold_cached(key) if len(key) <= _CACHED_KEY_LEN else _fold(key))
            if folded is None:
                continue
            json_name, field = folded, fields[folded]
        attr, conv = field
        if type(item) is str and (conv is _as_str or conv is _as_any):
            out[attr] = item  # the usual member: a string where one belongs (no converter call)
        else:
            out[attr] = conv(struct, json_name, item, out[attr])
    return out


_Fields = dict[str, tuple[str, Callable[..., Any]]]  # JSON name -> (attribute, converter)
_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type, fields: _Fields) -> dict[str, Any]:
    """A message class's default attribute values (looked up once per class)."""
    out = _DEFAULTS.get(cls)
    if out is None:
        out = _DEFAULTS[cls] = _values(cls, fields)
    return out


def _values(obj: Any, fields: _Fields) -> dict[str, Any]:
    return {attr: getattr(obj, attr) for attr, _ in fields.values()}


@functools.lru_cache(maxsize=16)
def _fold_map(json_names: tuple[str, ...]) -> dict[str, str]:
    """A struct's folded field names -> its JSON names (made once per struct, not per message)."""
    return {_fold(name): name for name in json_names}


#: Keys up to this length have their folded form cached (the usual ones, every message); a peer's
#: longer keys are folded each time, so the cache holds at most 512 short strings.
_CACHED_KEY_LEN = 64


@functools.lru_cache(maxsize=512)
def _fold_cached(key: str) -> str:
    return _fold(key)


_M = TypeVar("_M")


def _from_attrs(cls: type[_M], attrs: dict[str, Any]) -> _M:
    """An instance of the message class `cls` whose fields are `attrs` (every one of them).

    The work messages (a few per request on either side) are frozen dataclasses with a
    hand-written `__init__` that fills the instance dict: the generated one sets each field
    through `object.__setattr__` (WorkResponse(data=...): ~11.6k instructions, ~5.1k so;
    tests/oracle/test_oracle_messages.py checks the signatures against the fields). A decoded
    message takes the attribute dict the decoder made, with no `__init__` call at all."""
    message = object.__new__(cls)
    message.__dict__.update(attrs)
    return message


#: Values up to this long are cached by `_repeated_member` (peer IDs are ~52 characters).
_CACHED_MEMBER_LEN = 128


def _repeated_member(name: bytes, value: str) -> bytes:
    """`name` + `value` in Go's JSON, for members whose values repeat from message to message: a
    worker's own peer ID on every answer, a requester's few work types (~4.5k instructions each
    to encode, one dict lookup once cached)."""
    if len(value) > _CACHED_MEMBER_LEN:
        return name + go_json_dumps(value)
    return _cached_member(name, value)


@functools.lru_cache(maxsize=64)
def _cached_member(name: bytes, value: str) -> bytes:
    return name + go_json_dumps(value)


def _parse(body: bytes) -> Any:
    try:
        return loads_pairs(body)
    except JSONSyntaxError as exc:
        raise MessageError(str(exc)) from None


def _flat_attrs(body: bytes, fields: dict[bytes, tuple[str, bool]],
                defaults: dict[str, Any]) -> dict[str, Any] | None:
    """A message's attributes from a body of plain string members (`flat_string_members`, what
    Go's json.Marshal writes for a work request), each key one of `fields` (exact JSON name ->
    (attribute, is base64 []byte)); None for anything else, a control character in a string or
    data that is not strict base64 included: `_decode_struct` then decides, as for any other
    text, and gives this one the same result (tests/oracle/test_flat_decode.py). A repeated
    key: the last one wins, as there.

    Why: a 1 KiB request's data is ~1.4k characters, which the JSON scanner walks one by one
    (~14k instructions) to make a string the base64 decoder then walks again; split at the
    quotes (~5 a byte, in one C call) the data goes to the decoder as it came, whose alphabet
    check also stands for the scanner's control-character check."""
    members = flat_string_members(bytes(body))  # (bytes: its pieces are dict keys)
    if members is None:
        return None
    out = dict(defaults)
    for i in range(0, len(members), 2):
        field = fields.get(members[i])
        if field is None:
            return None
        attr, is_bytes = field
        if is_bytes:
            try:
                out[attr] = binascii.a2b_base64(members[i + 1], strict_mode=True)
            except (binascii.Error, ValueError):
                return None
        else:
            raw = members[i + 1]
            if 0 in raw.translate(_CONTROL_AS_NUL):  # (a byte by its value: see gojson's (*))
                return None
            out[attr] = raw.decode("ascii")
    return out


#: Control characters (not allowed raw in a JSON string) as NUL, the rest unchanged.
_CONTROL_AS_NUL = bytes(0 if c < 0x20 else c for c in range(256))


@dataclass(frozen=True, init=False)
class WorkRequest:
    """One unit of work: `data` is the handler's input bytes (base64 in JSON)."""

    work_type: str = ""
    request_id: str = ""
    data: bytes = b""
    worker_peer_id: str = ""

    def __init__(self, work_type: str = "", request_id: str = "", data: bytes = b"",
                 worker_peer_id: str = "") -> None:
        # the fields in their order, with their defaults (why by hand: `_from_attrs`)
        attrs = self.__dict__
        attrs["work_type"] = work_type
        attrs["request_id"] = request_id
        attrs["data"] = data
        attrs["worker_peer_id"] = worker_peer_id

    def to_go_json(self) -> bytes:
        """json.Marshal(WorkRequest) byte for byte."""
        parts = []
        if self.work_type:
            parts.append(_repeated_member(b'"workType":', self.work_type))
        if self.request_id:
            parts.append(b'"requestId":' + go_json_dumps(self.request_id))
        if self.data:  # []byte: padded standard base64, as go_json_dumps writes bytes
            parts.append(b'"data":"' + binascii.b2a_base64(self.data, newline=False) + b'"')
        if self.worker_peer_id:
            parts.append(_repeated_member(b'"workerPeerId":', self.worker_peer_id))
        return b"{" + b",".join(parts) + b"}"

    to_json = to_go_json

    @classmethod
    def from_json(cls, body: bytes) -> WorkRequest:
        """Decode like json.Unmarshal into a WorkRequest (any masa version's shape)."""
        fields = _REQUEST_FIELDS
        defaults = _DEFAULTS.get(cls) or _defaults(cls, fields)
        attrs = _flat_attrs(body, _REQUEST_FLAT, defaults)
        if attrs is None:
            attrs = _decode_struct("WorkRequest", _parse(body), fields, defaults)
        return cls() if attrs is None else _from_attrs(cls, attrs)

    @classmethod
    def decode_steps(cls, body: bytes) -> Generator[None, None, WorkRequest]:
        """`from_json` (the same result, the same errors) in steps of at most about a
        millisecond of CPU for a large body: a driver takes a turn of its event loop at each
        `yield` (a 1 MiB request is ~4 ms of CPU in all, mostly its base64 data)."""
        yield  # (the read that assembled the body had its turn)
        value = _parse(body)  # one C scan of the JSON text (~0.7 ms for 1 MiB)
        yield
        if isinstance(value, Pairs):
            data_key = _fold("data")
            for i, (key, item) in enumerate(value):
                if isinstance(item, str) and len(item) > _B64_STEP and _fold(key) == data_key:
                    decoded = yield from _b64_steps(item)
                    if decoded is not None:
                        value[i] = (key, _Decoded(decoded))
        return cls._from_value(value) or cls()

    @classmethod
    def _from_value(cls, value: Any, current: WorkRequest | None = None) -> WorkRequest | None:
        """Go decodes a repeated key into the struct the pointer already holds (merge)."""
        fields = _REQUEST_FIELDS
        defaults = _defaults(cls, fields) if current is None else _values(current, fields)
        attrs = _decode_struct("WorkRequest", value, fields, defaults)
        return None if attrs is None else _from_attrs(cls, attrs)


@dataclass(frozen=True)
class LoginEvent:
    """masa v0.8.9's login event (snake_case JSON names, only `error` is omitempty)."""

    peer_id: str = ""
    user_id: str = ""
    success: bool = False
    error: str = ""
    service_type: str = ""

    def to_go_json(self) -> bytes:
        parts = [
            b'"peer_id":' + go_json_dumps(self.peer_id),
            b'"user_id":' + go_json_dumps(self.user_id),
            b'"success":' + go_json_dumps(bool(self.success)),
        ]
        if self.error:
            parts.append(b'"error":' + go_json_dumps(self.error))
        parts.append(b'"service_type":' + go_json_dumps(self.service_type))
        return b"{" + b",".join(parts) + b"}"

    @classmethod
    def _from_value(cls, value: Any, current: LoginEvent | None = None) -> LoginEvent | None:
        """Go decodes a repeated key into the struct the pointer already holds (merge)."""
        fields = _LOGIN_FIELDS
        defaults = _defaults(cls, fields) if current is None else _values(current, fields)
        attrs = _decode_struct("LoginEvent", value, fields, defaults)
        return None if attrs is None else cls(**attrs)


def _as_request(struct: str, key: str, value: Any, current: Any) -> WorkRequest | None:
    return WorkRequest._from_value(value, current)


def _as_login(struct: str, key: str, value: Any, current: Any) -> LoginEvent | None:
    return LoginEvent._from_value(value, current)


def _as_any(struct: str, key: str, value: Any, current: Any) -> Any:
    return value if type(value) is str else pairs_to_python(value)  # (a string: most answers)


_REQUEST_FIELDS: _Fields = {
    "workType": ("work_type", _as_str),
    "requestId": ("request_id", _as_str),
    "data": ("data", _as_bytes),
    "workerPeerId": ("worker_peer_id", _as_str),
}
#: `_flat_attrs`' view of the fields: the exact JSON names of those that take a string.
_REQUEST_FLAT = {b"workType": ("work_type", False), b"requestId": ("request_id", False),
                 b"data": ("data", True), b"workerPeerId": ("worker_peer_id", False)}
_LOGIN_FIELDS: _Fields = {
    "peer_id": ("peer_id", _as_str),
    "user_id": ("user_id", _as_str),
    "success": ("success", _as_bool),
    "error": ("error", _as_str),
    "service_type": ("service_type", _as_str),
}
_RESPONSE_FIELDS: _Fields = {
    "workRequest": ("work_request", _as_request),
    "data": ("data", _as_any),
    "error": ("error", _as_str),
    "workerPeerId": ("worker_peer_id", _as_str),
    "recordCount": ("record_count", _as_int),
    "loginEvent": ("login_event", _as_login),
}


@dataclass(frozen=True, init=False)
class WorkResponse:
    """A worker's answer: `data` is any JSON value (None = absent), `error` non-empty on failure."""

    work_request: WorkRequest | None = None
    data: Any = None
    error: str = ""
    worker_peer_id: str = ""
    record_count: int = 0
    login_event: LoginEvent | None = None

    def __init__(self, work_request: WorkRequest | None = None, data: Any = None, error: str = "",
                 worker_peer_id: str = "", record_count: int = 0,
                 login_event: LoginEvent | None = None) -> None:
        # the fields in their order, with their defaults (why by hand: `_from_attrs`)
        attrs = self.__dict__
        attrs["work_request"] = work_request
        attrs["data"] = data
        attrs["error"] = error
        attrs["worker_peer_id"] = worker_peer_id
        attrs["record_count"] = record_count
        attrs["login_event"] = login_event

    def to_go_json(self, worker_peer_id: str | None = None) -> bytes:
        """json.Marshal(WorkResponse) byte for byte; GoJSONEncodeError if `data` is not encodable.
        `worker_peer_id`: encode as if the response held this one (a worker stamps its own ID on
        every answer, as Go's sets WorkerPeerId before marshalling, without a copy of it)."""
        parts = []  # the members in one list, no generators: the small answer of every request
        if self.work_request is not None:
            parts.append(b'"workRequest":' + self.work_request.to_go_json())
        if self.data is not None:
            parts.append(b'"data":' + go_json_dumps(self.data))
        parts += self._tail(self.worker_peer_id if worker_peer_id is None else worker_peer_id)
        return b"{" + b",".join(parts) + b"}"

    def go_json_pieces(self, worker_peer_id: str | None = None) -> Iterator[bytes]:
        """`to_go_json()` in consecutive pieces: a large string `data` comes in many (see
        `oracle.gojson.go_json_pieces`), so a large answer is written without being joined."""
        sep = b"{"
        if self.work_request is not None:
            yield sep + b'"workRequest":' + self.work_request.to_go_json()
            sep = b","
        if self.data is not None:
            yield sep + b'"data":'
            yield from go_json_pieces(self.data)
            sep = b","
        tail = self._tail(self.worker_peer_id if worker_peer_id is None else worker_peer_id)
        if tail:
            yield sep + b",".join(tail) + b"}"
        else:
            yield b"}" if sep == b"," else b"{}"

    def _tail(self, peer_id: str) -> list[bytes]:
        """The members after `data`, encoded, in Go's field order (empty ones omitted)."""
        tail = []
        if self.error:
            tail.append(b'"error":' + go_json_dumps(self.error))
        if peer_id:
            tail.append(_repeated_member(b'"workerPeerId":', peer_id))
        if self.record_count:
            tail.append(b'"recordCount":' + go_json_dumps(int(self.record_count)))
        if self.login_event is not None:
            tail.append(b'"loginEvent":' + self.login_event.to_go_json())
        return tail

    to_json = to_go_json

    @classmethod
    def from_json(cls, body: bytes) -> WorkResponse:
        """Decode like json.Unmarshal into a WorkResponse; JSON objects in `data` become dicts."""
        fields = _RESPONSE_FIELDS
        try:  # (`_parse`, inline: the requester's every answer)
            value = loads_pairs(body)
        except JSONSyntaxError as exc:
            raise MessageError(str(exc)) from None
        attrs = _decode_struct("WorkResponse", value, fields,
                               _DEFAULTS.get(cls) or _defaults(cls, fields))
        return cls() if attrs is None else _from_attrs(cls, attrs)
