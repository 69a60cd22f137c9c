"""Go encoding/json compatibility of go_json_dumps and the work messages.

Expected bytes are written by hand from Go 1.22's encoding/json rules (encode.go: HTML-safe escapes,
\\b \\f short escapes, lower-case \\u00xx, \\ufffd per invalid byte, sorted map keys, float64 'f'/'e'
formatting with the e-07 -> e-7 clean-up; []byte as padded standard base64; omitempty).
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.gojson import GoJSONEncodeError, go_json_dumps, go_string
from oracle.messages import LoginEvent, MessageError, WorkRequest, WorkResponse
from p2p.errors import RemoteProtocolError

# --- go_json_dumps: strings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ('<a href="x">&amp;</a>', b'"\\u003ca href=\\"x\\"\\u003e\\u0026amp;\\u003c/a\\u003e"'),
        ("\b\f\n\r\t", b'"\\b\\f\\n\\r\\t"'),
        ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),
        ("\x7f", b'"\x7f"'),  # DEL is not escaped by Go
        ("back\\slash /", b'"back\\\\slash /"'),  # '/' is not escaped either
        ("\u2028\u2029", b'"\\u2028\\u2029"'),
        ("é€😀", b'"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"'),
        ("", b'""'),
    ],
)
def test_string_escapes(value: str, expected: bytes) -> None:
    assert go_json_dumps(value) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"a\xffb", b'"a\\ufffdb"'),
        (b"\xe2\x82c", b'"\\ufffd\\ufffdc"'),  # truncated 3-byte sequence: one per byte, as Go
        (b"\xed\xa0\x80", b'"\\ufffd\\ufffd\\ufffd"'),  # UTF-8-encoded surrogate is invalid in Go
        (b"\xc0\x80", b'"\\ufffd\\ufffd"'),  # overlong NUL
        (b"ok \xc3\xa9", b'"ok \xc3\xa9"'),
    ],
)
def test_invalid_utf8_in_go_string(raw: bytes, expected: bytes) -> None:
    assert go_json_dumps(go_string(raw)) == expected


def test_bytes_are_padded_standard_base64() -> None:
    assert go_json_dumps(b"") == b'""'
    assert go_json_dumps(b"\x00") == b'"AA=="'
    assert go_json_dumps(b"\xfb\xff") == b'"+/8="'
    assert go_json_dumps(bytearray(b"hi")) == b'"aGk="'


# --- go_json_dumps: numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (1.0, b"1"),
        (0.1, b"0.1"),
        (-2.5, b"-2.5"),
        (100.0, b"100"),
        (123456789.0, b"123456789"),
        (1e20, b"100000000000000000000"),
        (1e21, b"1e+21"),
        (1.5e300, b"1.5e+300"),
        (1e-6, b"0.000001"),
        (0.000001234, b"0.000001234"),
        (1e-7, b"1e-7"),
        (-1.5e-7, b"-1.5e-7"),
        (1.23e-10, b"1.23e-10"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e+308"),
        (9007199254740993.0, b"9007199254740992"),
        (-0.0, b"-0"),
        (0.0, b"0"),
        (0, b"0"),
        (-42, b"-42"),
        (2**63, b"9223372036854775808"),
        (True, b"true"),
        (False, b"false"),
        (None, b"null"),
    ],
)
def test_numbers_and_literals(value: object, expected: bytes) -> None:
    assert go_json_dumps(value) == expected


@pytest.mark.parametrize("value, text", [(math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf")])
def test_non_finite_floats_refused_in_go_words(value: float, text: str) -> None:
    with pytest.raises(GoJSONEncodeError, match=f"^json: unsupported value: {text}$".replace("+", r"\+")):
        go_json_dumps({"x": [value]})


def test_unsupported_type() -> None:
    with pytest.raises(GoJSONEncodeError, match="unsupported type"):
        go_json_dumps({1.5: "x"})
    with pytest.raises(GoJSONEncodeError, match="unsupported type"):
        go_json_dumps(object())


# --- go_json_dumps: containers -------------------------------------------------------------------------


def test_map_keys_sorted_by_utf8_bytes() -> None:
    value = {"b": 1, "a": 2, "B": 3, "é": 4, "aa": 5}
    assert go_json_dumps(value) == b'{"B":3,"a":2,"aa":5,"b":1,"\xc3\xa9":4}'


def test_map_key_with_invalid_byte_sorts_by_its_go_bytes() -> None:
    # Go keys: "\xf0" (invalid) and "\xee\x80\x80" (U+E000): byte order puts U+E000 first,
    # although code-point order would not.
    value = {go_string(b"\xf0"): 1, "\ue000": 2}
    assert go_json_dumps(value) == b'{"\xee\x80\x80":2,"\\ufffd":1}'


def test_integer_map_keys_are_strings() -> None:
    assert go_json_dumps({10: "a", 9: "b"}) == b'{"10":"a","9":"b"}'


def test_nested_values() -> None:
    value = {"z": [True, False, None, {"y": "<"}], "n": -5, "e": {}, "l": [], "t": (1, "2")}
    assert go_json_dumps(value) == b'{"e":{},"l":[],"n":-5,"t":[1,"2"],"z":[true,false,null,{"y":"\\u003c"}]}'


# --- WorkRequest / WorkResponse encoding ---------------------------------------------------------------


def test_work_request_encoding() -> None:
    req = WorkRequest(work_type="test", request_id="r1", data=b"hi")
    assert req.to_json() == b'{"workType":"test","requestId":"r1","data":"aGk="}'
    assert WorkRequest().to_json() == b"{}"
    req = WorkRequest(work_type="web", data=b'{"url":"https://x/?a=1&b=2","depth":1}', worker_peer_id="16Uiu2HAm")
    assert req.to_json() == (
        b'{"workType":"web","data":"eyJ1cmwiOiJodHRwczovL3gvP2E9MSZiPTIiLCJkZXB0aCI6MX0=","workerPeerId":"16Uiu2HAm"}'
    )


def test_work_response_field_order_and_omitempty() -> None:
    resp = WorkResponse(
        work_request=WorkRequest(work_type="twitter", request_id="q"),
        data={"tweets": [{"id": "1", "text": "a<b"}], "count": 1},
        error="partial",
        worker_peer_id="peerB",
        record_count=7,
        login_event=LoginEvent(peer_id="p", user_id="u", success=True, service_type="twitter"),
    )
    assert resp.to_json() == (
        b'{"workRequest":{"workType":"twitter","requestId":"q"},'
        b'"data":{"count":1,"tweets":[{"id":"1","text":"a\\u003cb"}]},'
        b'"error":"partial","workerPeerId":"peerB","recordCount":7,'
        b'"loginEvent":{"peer_id":"p","user_id":"u","success":true,"service_type":"twitter"}}'
    )
    assert WorkResponse().to_json() == b"{}"
    assert WorkResponse(error="work handler not found").to_json() == b'{"error":"work handler not found"}'
    assert LoginEvent(error="bad").to_go_json() == b'{"peer_id":"","user_id":"","success":false,"error":"bad","service_type":""}'


@pytest.mark.parametrize(
    "data, expected",
    [("", b'{"data":""}'), (0, b'{"data":0}'), (False, b'{"data":false}'), ([], b'{"data":[]}'), ({}, b'{"data":{}}')],
)
def test_response_data_empty_but_not_nil_is_written(data: object, expected: bytes) -> None:
    # omitempty on an interface{} omits only nil: a zero value inside it is written.
    assert WorkResponse(data=data).to_json() == expected


def test_test_handler_data_is_go_string() -> None:
    assert WorkResponse(data=go_string(b"hello \xff"), worker_peer_id="w").to_json() == (
        b'{"data":"hello \\ufffd","workerPeerId":"w"}'
    )


# --- decoding -------------------------------------------------------------------------------------------


def test_decode_request_shapes() -> None:
    head = WorkRequest.from_json(b'{"workType":"web","requestId":"abc","data":"eyJ1cmwiOiJ4In0="}')
    assert head == WorkRequest("web", "abc", b'{"url":"x"}', "")
    v089 = WorkRequest.from_json(b'{"workType":"test","requestId":"1","data":"aGk=","workerPeerId":"16Uiu2"}')
    assert v089 == WorkRequest("test", "1", b"hi", "16Uiu2")
    assert WorkRequest.from_json(b"{}") == WorkRequest()
    assert WorkRequest.from_json(b"null") == WorkRequest()
    assert WorkRequest.from_json(b' {"workType" : null , "data" : null}\n') == WorkRequest()


def test_decode_response_shapes() -> None:
    head = WorkResponse.from_json(b'{"data":"hello","workerPeerId":"16Uiu2HAm"}')
    assert head == WorkResponse(data="hello", worker_peer_id="16Uiu2HAm")
    v084 = WorkResponse.from_json(b'{"data":[{"a":1.5}],"workerPeerId":"p","recordCount":3}')
    assert v084 == WorkResponse(data=[{"a": 1.5}], worker_peer_id="p", record_count=3)
    v089 = WorkResponse.from_json(
        b'{"workRequest":{"workType":"discord","data":"AA=="},"error":"x","recordCount":0,'
        b'"loginEvent":{"peer_id":"p","user_id":"u","success":false,"error":"denied","service_type":"discord"}}'
    )
    assert v089.work_request == WorkRequest(work_type="discord", data=b"\x00")
    assert v089.login_event == LoginEvent("p", "u", False, "denied", "discord")
    assert v089.error == "x" and v089.record_count == 0
    assert WorkResponse.from_json(b'{"workRequest":null,"loginEvent":null,"data":null}') == WorkResponse()


def test_decode_keys_case_insensitively_like_go() -> None:
    req = WorkRequest.from_json(b'{"WORKTYPE":"a","RequestID":"b","DATA":"aGk=","workerpeerid":"c"}')
    assert req == WorkRequest("a", "b", b"hi", "c")
    # Go folds with Unicode simple case mapping: KELVIN SIGN ~ k, LONG S ~ s.
    req = WorkRequest.from_json('{"wor\u212aType":"x","reque\u017ftId":"y"}'.encode())
    assert req == WorkRequest("x", "y")
    resp = WorkResponse.from_json(b'{"ERROR":"e","RecordCount":2,"WORKERPEERID":"w"}')
    assert resp == WorkResponse(error="e", record_count=2, worker_peer_id="w")


def test_decode_ignores_unknown_fields_and_last_duplicate_wins() -> None:
    body = b'{"extra":{"deep":[1,2,{"x":null}]},"workType":"a","WORKTYPE":"b","workType":"c","v":1e400}'
    # 1e400 is out of float64 range: Go refuses it even in an unknown field
    with pytest.raises(MessageError):
        WorkRequest.from_json(body)
    body = b'{"extra":{"deep":[1,2,{"x":null}]},"workType":"a","WORKTYPE":"b","workType":"c"}'
    assert WorkRequest.from_json(body).work_type == "c"
    resp = WorkResponse.from_json(b'{"data":{"k":1,"k":2}}')
    assert resp.data == {"k": 2}


def test_decode_repeated_pointer_field_merges_like_go() -> None:
    resp = WorkResponse.from_json(b'{"workRequest":{"workType":"a"},"workRequest":{"requestId":"b"}}')
    assert resp.work_request == WorkRequest(work_type="a", request_id="b")


def test_decode_base64_like_go() -> None:
    assert WorkRequest.from_json(b'{"data":"aG\\nk="}').data == b"hi"  # Go skips \r and \n
    assert WorkRequest.from_json(b'{"data":"aG\\r\\nk="}').data == b"hi"
    assert WorkRequest.from_json(b'{"data":[104,105]}').data == b"hi"  # arrays of bytes too
    assert WorkRequest.from_json(b'{"data":""}').data == b""


def test_decode_replaces_invalid_utf8_and_lone_surrogates() -> None:
    assert WorkRequest.from_json(b'{"workType":"a\xffb"}').work_type == "a\ufffdb"
    assert WorkRequest.from_json(b'{"workType":"\\ud800x"}').work_type == "\ufffdx"
    assert WorkResponse.from_json(b'{"data":["\\udc00",{"\\ud800":"\xfe"}]}').data == ["\ufffd", {"\ufffd": "\ufffd"}]
    assert WorkRequest.from_json(b'{"workType":"\\ud83d\\ude00"}').work_type == "\U0001f600"


@pytest.mark.parametrize(
    "body",
    [
        b'{"workType":5}',
        b'{"requestId":true}',
        b'{"data":"!!!!"}',
        b'{"data":"aGk"}',  # padding is required
        b'{"data":"aGk=\\t"}',
        b'{"data":[256]}',
        b'{"data":{}}',
        b'{"data":1}',
        b"[]",
        b'"x"',
        b"1",
        b"{",
        b"",
        b"\xff",
        b'{"workType":NaN}',
        b'{"a":Infinity}',
        b'\xef\xbb\xbf{"workType":"x"}',  # a BOM is not JSON to Go
        '{"workType":"x"}'.encode("utf-16"),
        b'{"workType":"x"} {}',
        b'{"workType":"\x01"}',  # raw control character in a string
        b'{"workType":"x",}',
        b"{'workType':'x'}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_decode_request_errors_are_message_errors(body: bytes) -> None:
    with pytest.raises(MessageError):
        WorkRequest.from_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"recordCount":1.5}',
        b'{"recordCount":1e2}',
        b'{"recordCount":"3"}',
        b'{"recordCount":true}',
        b'{"recordCount":9223372036854775808}',
        b'{"workRequest":"x"}',
        b'{"workRequest":{"workType":[]}}',
        b'{"loginEvent":{"success":"yes"}}',
        b'{"loginEvent":[]}',
        b'{"error":{}}',
        b'{"workerPeerId":1}',
        b'{"data":' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
)
def test_decode_response_errors_are_message_errors(body: bytes) -> None:
    with pytest.raises(MessageError) as info:
        WorkResponse.from_json(body)
    assert isinstance(info.value, RemoteProtocolError)


def test_decode_error_text_names_the_field() -> None:
    with pytest.raises(MessageError, match="WorkResponse.recordCount of type int"):
        WorkResponse.from_json(b'{"recordCount":"3"}')


# --- properties -----------------------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_decoders_only_raise_message_error(body: bytes) -> None:
    for decode in (WorkRequest.from_json, WorkResponse.from_json):
        try:
            decode(body)
        except MessageError:
            pass


@given(_json)
@settings(max_examples=200)
def test_decoders_on_arbitrary_json(value: object) -> None:
    body = json.dumps(value).encode()
    for decode in (WorkRequest.from_json, WorkResponse.from_json):
        try:
            decode(body)
        except MessageError:
            pass


def _same(original: object, parsed: object) -> bool:
    """Equal as JSON values: a float may come back as an int (Go writes 1e16 as 10000000000000000)."""
    if isinstance(original, float):
        return not isinstance(parsed, bool) and float(parsed) == original  # type: ignore[arg-type]
    if isinstance(original, dict):
        return isinstance(parsed, dict) and parsed.keys() == original.keys() and all(
            _same(v, parsed[k]) for k, v in original.items()
        )
    if isinstance(original, list):
        return isinstance(parsed, list) and len(parsed) == len(original) and all(map(_same, original, parsed))
    return type(original) is type(parsed) and original == parsed


@given(_json)
@settings(max_examples=300)
def test_go_json_dumps_output_is_canonical_json(value: object) -> None:
    out = go_json_dumps(value)
    assert _same(value, json.loads(out))
    # Encoding is canonical: what it writes re-encodes to the same bytes ("-0" kept as a float).
    reparsed = json.loads(out, parse_int=lambda s: -0.0 if s == "-0" else int(s))
    assert go_json_dumps(reparsed) == out
    assert b"<" not in out and b">" not in out and b"&" not in out


@given(_text, _text, st.binary(max_size=64), _text, _json, st.integers(-(2**63), 2**63 - 1))
@settings(max_examples=200)
def test_round_trip(wt: str, rid: str, data: bytes, peer: str, payload: object, count: int) -> None:
    req = WorkRequest(wt, rid, data, peer)
    assert WorkRequest.from_json(req.to_json()) == req
    resp = WorkResponse(work_request=req, data=payload, error=wt, worker_peer_id=peer, record_count=count)
    back = WorkResponse.from_json(resp.to_json())
    assert back.work_request == req and back.error == wt and back.record_count == count
    assert back.worker_peer_id == peer and _same(payload, back.data)


@pytest.mark.parametrize("module", ["oracle/gojson.py", "oracle/messages.py", "oracle/gating.py"])
def test_cores_do_no_io(module: str) -> None:
    import ast
    import pathlib

    tree = ast.parse((pathlib.Path(__file__).parents[2] / module).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"anyio", "trio", "asyncio", "socket", "time", "threading"}


def test_response_encoded_with_a_worker_peer_id_stamped() -> None:
    """A worker stamps its ID on the answer as it encodes it: the same bytes as a copy holding it."""
    for response in (WorkResponse(data="x"), WorkResponse(error="e", worker_peer_id="old"),
                     WorkResponse(data={"k": [1, 2]}, record_count=3)):
        copy = dataclasses.replace(response, worker_peer_id="16Uiu2HAm")
        assert response.to_go_json("16Uiu2HAm") == copy.to_go_json()
        assert b"".join(response.go_json_pieces("16Uiu2HAm")) == copy.to_go_json()
    assert WorkResponse(data="x", worker_peer_id="kept").to_go_json() == b'{"data":"x","workerPeerId":"kept"}'


def test_one_list_encoders_equal_the_pieces_and_go_json_dumps() -> None:
    """`to_go_json` builds the members in one list (the small answer of every request); the
    pieces and the generic encoder give the same bytes for every member shape."""
    request = WorkRequest("web", "id-1", b"\x00\xffhi", "16Uiu2HAmW")
    login = LoginEvent("p", "u", True, "bad", "twitter")
    for response in (WorkResponse(), WorkResponse(data=None, error="e"), WorkResponse(data=""),
                     WorkResponse(data={"b": [1, 2.5, None], "a": "x"}, record_count=7),
                     WorkResponse(work_request=request, data=b"\x01", error="e",
                                  worker_peer_id="w", record_count=1, login_event=login),
                     WorkResponse(work_request=WorkRequest(), login_event=login)):
        for peer in (None, "", "16Uiu2HAmX"):
            assert response.to_go_json(peer) == b"".join(response.go_json_pieces(peer))
    for data in (b"", b"a", b"ab", b"abc", bytes(range(256))):
        body = WorkRequest("t", data=data).to_go_json()
        want = b'{"workType":"t"' + (b',"data":' + go_json_dumps(data) if data else b"") + b"}"
        assert body == want


def test_exact_and_folded_member_names_are_one_field() -> None:
    """Exact names are looked up without folding; folded ones still reach the same field, and
    the last of any mix wins, as in Go."""
    assert WorkRequest.from_json(b'{"data":"aGk=","DATA":"aG8="}').data == b"ho"
    assert WorkRequest.from_json(b'{"DATA":"aG8=","data":"aGk="}').data == b"hi"
    assert WorkRequest.from_json(b'{"workType":"a","WorkType":"b"}').work_type == "b"
    assert WorkResponse.from_json(b'{"error":"a","ERROR":"b","error":"c"}').error == "c"
    assert WorkRequest.from_json(b'{"unknown":1,"requestid":"r"}').request_id == "r"


@pytest.mark.parametrize("cls", [WorkRequest, WorkResponse])
def test_hand_written_init_matches_the_dataclass_fields(cls: type) -> None:
    """The work messages fill their instance dict in a hand-written `__init__` (the generated one
    of a frozen dataclass costs twice as much): its parameters are the fields, in their order,
    with their defaults, and every field is set; decoded messages are the same frozen values."""
    import inspect

    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [(p.name, p.default) for p in params] == [(f.name, f.default) for f in fields]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    for message in (cls(), cls.from_json(b"{}"), cls.from_json(b'{"workerPeerId":"w"}')):
        assert set(vars(message)) == {f.name for f in fields}
        with pytest.raises(dataclasses.FrozenInstanceError):
            message.worker_peer_id = "x"  # type: ignore[misc]
        assert dataclasses.replace(message, worker_peer_id="w") == cls(worker_peer_id="w")
    assert repr(cls.from_json(b'{"workerPeerId":"w"}')) == repr(cls(worker_peer_id="w"))
