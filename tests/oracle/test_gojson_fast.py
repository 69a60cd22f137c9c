"""The fast string escaper (str.replace passes, for long strings) against the reference one (a
regex callback per escaped character): byte for byte the same on any string, including lone
surrogates (invalid bytes of a Go string), and the long-string known answers of Go 1.22's rules."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import gojson
from oracle.gojson import go_json_dumps, go_string
from oracle.messages import WorkResponse

# Characters where escaping rules differ: the HTML-unsafe ones, quotes, controls, the two
# separators, lone surrogates, DEL, raw non-ASCII, plain ASCII.
_SPECIAL = st.sampled_from(
    list('<>&"\\/ aZ\x7f\u2028\u2029é€😀\ufffd') + [chr(c) for c in range(0x20)]
    + ["\ud800", "\udc80", "\udcff", "\udfff"])
_TEXT = st.text(alphabet=st.one_of(_SPECIAL, st.characters()), max_size=600)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_fast_escaper_equals_reference(s: str) -> None:
    assert gojson._quote_fast(s) == gojson._quote_slow(s)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_fast_escaper_on_go_strings_of_any_bytes(raw: bytes) -> None:
    s = go_string(raw)
    assert gojson._quote_fast(s) == gojson._quote_slow(s)
    assert go_json_dumps(s) == gojson._quote_slow(s).encode("utf-8")


def test_long_strings_take_the_fast_path_with_go_bytes() -> None:
    n = gojson._FAST_ESCAPE_MIN * 4
    assert go_json_dumps("<" * n) == b'"' + b"\\u003c" * n + b'"'
    assert go_json_dumps(go_string(b"\xff" * n)) == b'"' + b"\\ufffd" * n + b'"'
    assert go_json_dumps("\\\"\x01\u2028" * n) == b'"' + b'\\\\\\"\\u0001\\u2028' * n + b'"'
    assert go_json_dumps(go_string(b"a\xe2\x82c" * n)) == b'"' + b"a\\ufffd\\ufffdc" * n + b'"'


def test_one_mib_of_lt_answer_is_exact() -> None:
    """The attack's answer: the request's bytes as a Go string, 6 bytes per `<`."""
    data = b"<" * (1 << 20)
    body = WorkResponse(data=go_string(data), worker_peer_id="w").to_go_json()
    assert body == b'{"data":"' + b"\\u003c" * (1 << 20) + b'","workerPeerId":"w"}'


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=300))
def test_ascii_strings_without_escapes_skip_the_escaper(s: str) -> None:
    """go_json_dumps takes ASCII with nothing Go escapes as it is (one translate pass): the
    same bytes as the reference escaper on every ASCII string, escapes or not."""
    assert go_json_dumps(s) == gojson._quote_slow(s).encode("utf-8")
    assert go_json_dumps("w" * 1024 + "\x7f") == b'"' + b"w" * 1024 + b'\x7f"'


def _outcome(decode: object, text: str) -> tuple[str, object]:
    try:
        return "value", decode(text)  # type: ignore[operator]
    except Exception as exc:  # every error of json's decoder and of ours, compared in full
        return type(exc).__name__, (str(exc), getattr(exc, "pos", None))


_JSON_TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(list(' \t\n\r\x0c\x0b\xa0{}[]:,"\\0123456789.eE+-aeflnrstuxyz')),
            max_size=40),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                 max_leaves=8).map(lambda v: json.dumps(v)),
).flatmap(lambda t: st.tuples(st.sampled_from(["", " ", "\n\t", "\x0c", "\xa0"]), st.just(t),
                              st.sampled_from(["", " ", "\r\n", " x", "\x0c", "{}"])).map("".join))


@settings(max_examples=500, deadline=None)
@given(_JSON_TEXT)
def test_direct_scanner_call_decodes_as_json_decoder(text: str) -> None:
    """The scanner called directly (`gojson._decode`) gives what `JSONDecoder.decode` gives: the
    same value, or the same error with the same message and position."""
    assert _outcome(gojson._decode, text) == _outcome(gojson._DECODER.decode, text)


def test_every_ascii_character_on_the_plain_string_path() -> None:
    """go_json_dumps writes an ASCII string with nothing to escape as it is (found by one table
    pass): every ASCII character, alone and inside text, gives the reference escaper's bytes."""
    for code in range(128):
        for s in (chr(code), f"ab{chr(code)}cd", chr(code) * 3 + "x" * 300):
            assert go_json_dumps(s) == gojson._quote_slow(s).encode("utf-8"), repr(s)
