"""JSON exactly as Go 1.22's encoding/json writes and reads it.

masa nodes exchange WorkRequest/WorkResponse as `json.Marshal` output, so byte-exact output keeps
our messages indistinguishable from a Go node's (and lets tests compare against Go's bytes).

Encoding rules (encoding/json encode.go, Go 1.22): no spaces; `<`, `>`, `&` as `\\u003c`,
`\\u003e`, `\\u0026` (HTMLEscape is on for Marshal); U+2028/U+2029 escaped; `\\b \\f \\n \\r \\t` short
escapes (new in Go 1.22), other controls `\\u00xx` (lower-case hex); other non-ASCII raw UTF-8; each
invalid UTF-8 byte of a Go string becomes `\\ufffd`. Map keys are sorted by their UTF-8 bytes.
float64 uses the shortest round-trip digits, `%f` style unless |f| < 1e-6 or |f| >= 1e21, where it is
`%e` style with a two-digit negative exponent shortened (`1e-07` -> `1e-7`). NaN and ±Inf are refused.

A Go string may hold any bytes; in Python we carry such a string as a `str` decoded with
`surrogateescape` (see `go_string`), so each invalid byte is one lone surrogate, and every lone
surrogate is written as `\\ufffd` - one per byte, as Go does.

Reading: `loads_pairs` parses with the stdlib parser but keeps objects as ordered (key, value) pair
lists so struct decoding can apply Go's rules (last duplicate wins, case-insensitive keys), rejects
what Go rejects (NaN/Infinity literals, non-UTF-8 detection tricks, out-of-range floats) and replaces
lone surrogates (raw invalid bytes or `\\ud800`-style escapes) by U+FFFD like Go's decoder.
"""

from __future__ import annotations

import base64
import codecs
import json
import json.encoder
import math
import re
from decimal import Decimal
from collections.abc import Iterator
from typing import Any, Callable

from p2p.errors import LocalProtocolError, RemoteProtocolError
from p2p.logtext import bounded

__all__ = [
    "GoJSONEncodeError",
    "JSONSyntaxError",
    "Pairs",
    "go_json_dumps",
    "go_string",
    "go_string_bytes",
    "flat_string_members",
    "loads_pairs",
    "pairs_to_python",
]


class GoJSONEncodeError(LocalProtocolError, ValueError):
    """A value Go's json.Marshal would refuse (NaN, ±Inf, unsupported type); message in Go's words."""


class JSONSyntaxError(RemoteProtocolError):
    """Bytes that are not JSON as Go's decoder understands it."""


def go_string(data: bytes) -> str:
    """Python view of Go's `string(b)`: every byte kept, invalid UTF-8 bytes as lone surrogates."""
    return bytes(data).decode("utf-8", "surrogateescape")


def go_string_bytes(s: str) -> bytes:
    """The bytes of a Go string carried as `str` (inverse of `go_string`)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        out = bytearray()
        for ch in s:
            if 0xDC80 <= ord(ch) <= 0xDCFF:
                out.append(ord(ch) - 0xDC00)
            else:
                out += ch.encode("utf-8", "surrogatepass")
        return bytes(out)


# --- encoding -------------------------------------------------------------------------------------

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: The ASCII characters Go's json.Marshal escapes in a string: controls, quote, backslash and the
#: HTML-unsafe three (DEL is written as it is); `_NEEDS_ESCAPE`'s ASCII part.
_ASCII_ESCAPED = bytes(range(0x20)) + b'"\\<>&'
#: A translation table marking them: each becomes NUL, anything else 0x01 (a plain table copies
#: byte for byte; one with deletions builds a table per call and tests each byte: ~30% more).
_ESCAPED_AS_NUL = bytes(0 if c in _ASCII_ESCAPED else 1 for c in range(256))
#: (*) A byte is looked for in bytes by its value (`0 in data`), not as a one-byte bytes
#: (`b"\0" in data`): `in` tries the operand as an integer first, and for a bytes operand that
#: raises and clears a formatted TypeError (~2k instructions, ~0.27 us) before the memchr.
_BACKSLASH = ord("\\")
_NEEDS_ESCAPE = re.compile("[\x00-\x1f\"\\\\<>&\u2028\u2029\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    short = _SHORT.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return "\\ufffd"
    return f"\\u{code:04x}"


# Past this length a string is escaped by C-level passes (the stdlib's JSON string escaper, then
# str.replace for the few characters Go escapes beyond it) instead of a Python callback per
# escaped character: 1 MiB of `<` took 0.63 s on the callback path, ~15 ms this way. Both paths
# give the same bytes (tests/oracle/test_gojson_fast.py).
_FAST_ESCAPE_MIN = 256
_PIECE = 64 * 1024
_OUT_PIECE = 16 * 1024  # characters per piece of `go_json_pieces` (<= 6 output bytes each)
_HTML_AND_SEPARATORS = [("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                        ("\u2029", "\\u2029")]
_c_escape = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")
_FFFD_ERRORS = "oracle.gojson.fffd"


def _fffd_per_char(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a run of lone surrogates becomes one `\\ufffd` escape per character."""
    assert isinstance(exc, UnicodeEncodeError)
    return "\\ufffd" * (exc.end - exc.start), exc.end


codecs.register_error(_FFFD_ERRORS, _fffd_per_char)


def _quote_slow(s: str) -> str:
    """The reference escaper: a regex callback per character that needs escaping."""
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, s) + '"'


def _escape_piece(s: str) -> str:
    # The stdlib's C escaper writes `"`, `\\` and the controls exactly as Go 1.22 does (the five
    # short escapes, else lower-case \u00xx) and leaves everything else as it is.
    s = _c_escape(s)[1:-1]
    for ch, escaped in _HTML_AND_SEPARATORS:
        if ch in s:
            s = s.replace(ch, escaped)
    if not s.isascii() and _SURROGATE_CHAR.search(s):
        s = s.encode("utf-8", _FFFD_ERRORS).decode("utf-8")
    return s


def _quote_fast(s: str) -> str:
    """The same output as `_quote_slow`, one str.replace pass per escapable character present.

    Every escape maps one character, so the string is escaped in pieces of `_PIECE` characters:
    no single C call runs long (`go_json_pieces` goes further and hands the pieces out).
    """
    if len(s) <= _PIECE:
        return '"' + _escape_piece(s) + '"'
    pieces = ['"']
    for start in range(0, len(s), _PIECE):
        pieces.append(_escape_piece(s[start:start + _PIECE]))
    pieces.append('"')
    return "".join(pieces)


def _quote(s: str) -> str:
    if not _NEEDS_ESCAPE.search(s):
        return '"' + s + '"'
    if len(s) >= _FAST_ESCAPE_MIN:
        return _quote_fast(s)
    return _quote_slow(s)


def go_json_pieces(value: Any) -> Iterator[bytes]:
    """`go_json_dumps(value)` as consecutive pieces whose concatenation is those exact bytes.

    A string longer than `_OUT_PIECE` characters (the large body of a work answer) comes escaped
    and encoded `_OUT_PIECE` characters at a time (at most 96 KiB each), so a caller can write the
    pieces as they are without joining them (each byte of the answer is built once, then only
    encrypted), in writes no larger than it likes, and take a turn of its event loop between two
    pieces (each is ~0.05 ms of CPU). Anything else comes as one piece.
    """
    if not isinstance(value, str) or len(value) <= _OUT_PIECE:
        yield go_json_dumps(value)
        return
    yield b'"'
    for start in range(0, len(value), _OUT_PIECE):
        yield _escape_piece(value[start:start + _OUT_PIECE]).encode("utf-8")
    yield b'"'


def _go_float(f: float) -> str:
    if math.isnan(f):
        raise GoJSONEncodeError("json: unsupported value: NaN")
    if math.isinf(f):
        raise GoJSONEncodeError(f"json: unsupported value: {'+' if f > 0 else '-'}Inf")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    # repr() gives the shortest digits that round-trip, as Go's strconv 'f'/'e' with precision -1.
    dec = Decimal(repr(f)).normalize()
    if 1e-6 <= abs(f) < 1e21:
        return format(dec, "f")
    sign, digits, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    exp10 = exponent + len(digits) - 1
    exp_text = f"e-{-exp10:02d}" if exp10 < 0 else f"e+{exp10:02d}"
    if exp_text.startswith("e-0"):
        exp_text = "e-" + exp_text[3:]
    return ("-" if sign else "") + mantissa + exp_text


def _map_key(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)  # Go writes integer map keys as decimal strings
    raise GoJSONEncodeError(f"json: unsupported type: map key {type(key).__name__}")


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_go_float(float(value)))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.append('"' + base64.b64encode(bytes(value)).decode("ascii") + '"')
    elif isinstance(value, dict):
        items = sorted(((_map_key(k), v) for k, v in value.items()), key=lambda kv: go_string_bytes(kv[0]))
        out.append("{")
        for i, (key, item) in enumerate(items):
            if i:
                out.append(",")
            out.append(_quote(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        to_go_json = getattr(value, "to_go_json", None)
        if to_go_json is None:
            raise GoJSONEncodeError(f"json: unsupported type: {type(value).__name__}")
        out.append(to_go_json().decode("utf-8"))


def go_json_dumps(value: Any) -> bytes:
    """Encode like Go's json.Marshal of the corresponding Go value (dict = map, bytes = []byte).

    Objects with a `to_go_json() -> bytes` method (our message structs) are embedded as they encode.
    Raises GoJSONEncodeError for NaN/Inf, unsupported types and nesting too deep to encode.
    """
    if type(value) is str:  # the usual member of a work message: no list, no dispatch
        if value.isascii():
            raw = value.encode("ascii")
            if 0 not in raw.translate(_ESCAPED_AS_NUL):  # two C passes, no regex (*)
                return b'"' + raw + b'"'
        return _quote(value).encode("utf-8")
    out: list[str] = []
    try:
        _encode(value, out)
    except RecursionError:
        raise GoJSONEncodeError("json: value nested too deeply") from None
    return "".join(out).encode("utf-8")


# --- decoding -------------------------------------------------------------------------------------


class Pairs(list):  # type: ignore[type-arg]
    """A JSON object as its ordered (key, value) pairs, duplicates kept (Go assigns them in order)."""


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _fix_str(s: str) -> str:
    return _SURROGATE.sub("\ufffd", s) if _SURROGATE.search(s) else s


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONSyntaxError(f"json: cannot unmarshal number {bounded(text)} into Go value of type float64")
    return value


def _reject_constant(name: str) -> Any:
    raise JSONSyntaxError(f"invalid character {name[0]!r} looking for beginning of value")


#: One decoder for every message: json.loads with hooks builds a decoder and its scanner per call
#: (about a third of decoding a small work message).
#: Objects become `Pairs` directly (a C call per object, no Python frame): their keys' lone
#: surrogates are replaced afterwards with the values', only when the text can hold one.
_DECODER = json.JSONDecoder(object_pairs_hook=Pairs, parse_float=_parse_float,
                            parse_constant=_reject_constant)
#: Its scanner (the C one), called directly: `JSONDecoder.decode` is two Python frames and two
#: regular-expression matches around this call (~6k instructions of a small message's ~30k).
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_WHITESPACE = " \t\n\r"  # what `decode` skips around the value (JSON's whitespace)


def _decode(text: str) -> Any:
    """`_DECODER.decode(text)`: the same value, the same errors (tests/oracle/test_gojson_fast.py)."""
    start = len(text) - len(text.lstrip(_WHITESPACE)) if text[:1].isspace() else 0
    try:
        value, end = _SCAN(text, start)
    except StopIteration as err:
        raise json.JSONDecodeError("Expecting value", text, err.value) from None
    if end != len(text):
        rest = text[end:]
        extra = rest.lstrip(_WHITESPACE)
        if extra:
            raise json.JSONDecodeError("Extra data", text, end + len(rest) - len(extra))
    return value


def flat_string_members(body: bytes) -> list[bytes] | None:
    """The keys and values of a JSON object whose members are all plain strings, as Go's
    json.Marshal writes a small struct (`{"k":"v","k2":"v2"}`: no spaces, ASCII, no
    escapes), as raw bytes: [key, value, key, value, ...]. None for any other text, even valid
    JSON (spaces, escapes, non-ASCII, other value types, an empty object): `loads_pairs` decides
    those. Splitting at the quotes is one C call and leaves the values as bytes.

    Without a backslash no string holds a quote, so the quotes split the text into its tokens:
    `{`, then per member key, `:`, value and `,` (`}` after the last). Control characters are
    not allowed raw in a JSON string: the caller checks the values it keeps and compares the
    keys with names it knows."""
    if not body.isascii() or _BACKSLASH in body:  # (*)
        return None
    tokens = body.split(b'"')
    n = len(tokens)
    members = n // 4
    if (n % 4 != 1 or not members or tokens[0] != b"{" or tokens[-1] != b"}"
            or tokens[2::4].count(b":") != members or tokens[4:n - 1:4].count(b",") != members - 1):
        return None
    del tokens[::2]  # the punctuation, checked: keys and values are left, in order
    return tokens


def loads_pairs(body: bytes) -> Any:
    """Parse JSON bytes; objects become `Pairs`, strings have lone surrogates replaced by U+FFFD.

    Only UTF-8 is accepted (no BOM/UTF-16 sniffing, as in Go); raises JSONSyntaxError.
    """
    text = bytes(body).decode("utf-8", "surrogateescape")
    try:
        if text.startswith("\ufeff"):  # what json.loads says of a BOM (its decoder does not look)
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _decode(text)
        # (an ASCII text holds no surrogate, and no escaped one without a backslash: both
        # tests are C scans far faster than the regular expressions over a large body)
        if ((not text.isascii() and _SURROGATE.search(text))
                or ("\\" in text and _SURROGATE_ESCAPE.search(text))):
            value = _fix_strings(value)
    except JSONSyntaxError:
        raise
    except RecursionError:
        raise JSONSyntaxError("json: nesting too deep") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError; int digit limits too
        raise JSONSyntaxError(f"invalid JSON: {exc}") from None
    return value


def _fix_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _fix_str(value)
    if isinstance(value, Pairs):
        for i, (k, v) in enumerate(value):
            if isinstance(v, (str, list)):
                v = _fix_strings(v)
            value[i] = (_fix_str(k), v)
        return value
    if isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, (str, list)):
                value[i] = _fix_strings(v)
    return value


def pairs_to_python(value: Any) -> Any:
    """Turn parsed `Pairs` into dicts (last duplicate wins, like decoding into map[string]any)."""
    try:
        return _to_python(value)
    except RecursionError:
        raise JSONSyntaxError("json: nesting too deep") from None


def _to_python(value: Any) -> Any:
    if isinstance(value, Pairs):
        return {k: _to_python(v) for k, v in value}
    if isinstance(value, list):
        return [_to_python(v) for v in value]
    return value
