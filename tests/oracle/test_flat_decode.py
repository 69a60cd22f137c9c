"""WorkRequest.from_json's shortcut for bodies of plain string members (messages._flat_attrs)
against the full decoder (the JSON scanner, then Go's field rules): the same request, or the same
error, on Go's own bytes and on texts near them (spaces, escapes, case-folded and unknown keys,
control characters, bad base64, repeated keys, other value types)."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import messages
from oracle.gojson import flat_string_members
from oracle.messages import MessageError, WorkRequest


def _full(body: bytes) -> WorkRequest | str:
    """What the full decoder makes of `body` (no shortcut), or its error's text."""
    fields = messages._REQUEST_FIELDS
    try:
        attrs = messages._decode_struct("WorkRequest", messages._parse(body), fields,
                                        messages._defaults(WorkRequest, fields))
    except MessageError as exc:
        return f"error: {exc}"
    return WorkRequest() if attrs is None else messages._from_attrs(WorkRequest, attrs)


def _fast(body: bytes) -> WorkRequest | str:
    try:
        return WorkRequest.from_json(body)
    except MessageError as exc:
        return f"error: {exc}"


_KEYS = st.sampled_from(["workType", "requestId", "data", "workerPeerId", "WORKTYPE", "Data",
                         "dat\u0430", "other", "", "work\x01Type"])
_B64 = st.binary(max_size=64).map(lambda b: binascii.b2a_base64(b, newline=False).decode())
_VALUES = st.one_of(
    _B64,
    _B64.map(lambda s: s.rstrip("=")),  # padding missing
    _B64.map(lambda s: s[:1] + "\n" + s[1:]),  # a control character
    st.text(alphabet=st.sampled_from(list("aZ09+/=- ~\x7f\x00\x1f\t\"\\<é")), max_size=12),
)


def _member(key: str, value: str) -> str:
    # the value's quotes and backslashes as they come: some texts are not JSON at all
    return f'"{key}":"{value}"'


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    members = draw(st.lists(st.tuples(_KEYS, _VALUES), max_size=5))
    text = "{" + ",".join(_member(k, v) for k, v in members) + "}"
    edit = draw(st.sampled_from(["none", "space", "number", "null", "object", "trailing", "cut"]))
    if edit == "space":
        text = text.replace(":", ": ", 1)
    elif edit == "number":
        text = text[:-1] + (',"requestId":5}' if members else '"requestId":5}')
    elif edit == "null":
        text = text[:-1] + (',"data":null}' if members else '"data":null}')
    elif edit == "object":
        text = text[:-1] + (',"x":{"a":"b"}}' if members else '"x":{"a":"b"}}')
    elif edit == "trailing":
        text += draw(st.sampled_from([" ", "x", "}", '""']))
    elif edit == "cut" and len(text) > 1:
        text = text[:draw(st.integers(1, len(text) - 1))]
    return text.encode("utf-8")


@settings(max_examples=1500, deadline=None)
@given(_bodies())
def test_shortcut_gives_what_the_full_decoder_gives(body: bytes) -> None:
    assert _fast(body) == _full(body)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                      blacklist_characters='"\\<>&'), max_size=40),
       st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                      blacklist_characters='"\\<>&'), max_size=40),
       st.binary(max_size=3000))
def test_go_requests_take_the_shortcut(work_type: str, request_id: str, data: bytes) -> None:
    """What a Go requester writes (no character it escapes): decoded by the shortcut (all but
    the empty object), and equal to what was sent."""
    request = WorkRequest(work_type, request_id, data)
    body = request.to_go_json()
    assert body == b"{}" or messages._flat_attrs(body, messages._REQUEST_FLAT,
                                messages._defaults(WorkRequest, messages._REQUEST_FIELDS)) is not None
    assert WorkRequest.from_json(body) == request == _full(body)


@pytest.mark.parametrize("body", [
    b'{}', b'{"a":"b"', b'"a":"b"}', b'{"a":"b",}', b'{"a""b"}', b'{"a":"b":"c"}',
    b'{"a":"b" }', b'{"a":"\\u0041"}', '{"a":"\u00e9"}'.encode(), b'{"a":"b","c"}',
])
def test_split_refuses_what_is_not_a_flat_string_object(body: bytes) -> None:
    assert flat_string_members(body) is None


def test_split_gives_keys_and_values_in_order() -> None:
    assert flat_string_members(b'{"a":"1","b":"","a":"3"}') == [b"a", b"1", b"b", b"", b"a", b"3"]
