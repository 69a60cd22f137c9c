"""A large answer built in pieces (`go_json_pieces`), and a large request decoded in steps
(`WorkRequest.decode_steps`), give exactly what the one-go paths give: the same bytes, the same
request, the same error in Go's words. The worker protocol uses the stepwise forms for large
messages so that no single turn of its event loop does more than a fraction of the work."""

from __future__ import annotations

import base64
import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import gojson, messages
from oracle.gojson import go_json_dumps, go_json_pieces, go_string
from oracle.messages import MessageError, WorkRequest, WorkResponse

_SPECIAL = st.sampled_from(list('<>&"\\ aé€😀\u2028') + ["\x00", "\x1f", "\udc80", "\ud800"])
_N = gojson._OUT_PIECE


def _run(body: bytes) -> tuple[str, object, int]:
    steps = WorkRequest.decode_steps(body)
    n = 0
    try:
        while True:
            next(steps)
            n += 1
    except StopIteration as done:
        return "ok", done.value, n
    except MessageError as exc:
        return "error", str(exc), n


def _reference(body: bytes) -> tuple[str, object]:
    try:
        return "ok", WorkRequest.from_json(body)
    except MessageError as exc:
        return "error", str(exc)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=_SPECIAL, min_size=1, max_size=8), st.integers(0, 3 * _N + 5))
def test_pieces_join_to_the_one_go_bytes(unit: str, length: int) -> None:
    s = (unit * (length // len(unit) + 1))[:length]
    pieces = list(go_json_pieces(s))
    assert b"".join(pieces) == go_json_dumps(s) == gojson._quote_slow(s).encode("utf-8")
    assert all(len(p) <= 6 * _N + 2 for p in pieces)  # each piece bounded (quotes included)


def test_a_large_answer_comes_in_bounded_pieces_without_a_join() -> None:
    response = WorkResponse(data=go_string(b"\0" * 786_000), worker_peer_id="w", error="e")
    pieces = list(response.go_json_pieces())
    assert len(pieces) > 40 and max(map(len, pieces)) <= 6 * _N + 2
    assert b"".join(pieces) == response.to_go_json()
    assert response.to_go_json() == (b'{"data":"' + b"\\u0000" * 786_000
                                     + b'","error":"e","workerPeerId":"w"}')
    for small in (WorkResponse(), WorkResponse(data={"a": [1]}), WorkResponse(error="x"),
                  WorkResponse(work_request=WorkRequest("t", "r", b"1"), record_count=2)):
        assert b"".join(small.go_json_pieces()) == small.to_go_json()
    assert WorkResponse().to_go_json() == b"{}"


_B64 = base64.b64encode(os.urandom(3 * messages._B64_STEP)).decode()


def test_large_requests_decode_in_steps_to_the_same_request_or_error() -> None:
    step = messages._B64_STEP
    cut = _B64[:step + 4]
    bodies = [
        WorkRequest("test", "id", os.urandom(786_000)).to_go_json(),  # masa's shape
        ('{"DaTa":"%s","data":"%s"}' % (_B64, _B64[:-8])).encode(),  # keys folded, last wins
        ('{"data":"%s\\r\\n%s"}' % (_B64[:step], _B64[step:])).encode(),  # CR LF skipped
        ('{"data":"%s=AAAA%s"}' % (cut[:-4], _B64[step + 8:])).encode(),  # padding mid-way
        ('{"data":"%s"}' % _B64[:-1]).encode(),  # bad padding at the end
        ('{"data":"%s!"}' % _B64[:-4]).encode(),  # not base64
        ('{"workType":5,"data":"%s"}' % _B64).encode(),  # an earlier member's error first
        ('{"data":"%s","workType":5}' % _B64[:-1]).encode(),  # the data's error first
        ('{"data":"%s"}' % ("é" * step)).encode(),  # not ASCII
        ('{"data":["%s"]}' % _B64).encode(),  # wrong type
        b"[" + b"1," * step + b"1]",  # not an object
    ]
    for body in bodies:
        kind, value, steps = _run(body)
        assert (kind, value) == _reference(body), body[:40]
    assert _run(bodies[0])[2] >= 8  # 1 MiB of base64: several steps, not one


@settings(max_examples=40, deadline=None)
@given(st.integers(messages._B64_STEP, messages._B64_STEP * 2), st.integers(0, 2**32),
       st.integers(0, 3), st.sampled_from(["", "\r\n", "=", "A", "*"]))
def test_steps_equal_one_go_on_edited_base64(size: int, seed: int, where: int, insert: str) -> None:
    text = base64.b64encode(random.Random(seed).randbytes(size)).decode()
    pos = [0, messages._B64_STEP, len(text) // 2, len(text)][where]
    body = ('{"workType":"t","data":"%s"}' % (text[:pos] + insert + text[pos:])).encode()
    kind, value, _ = _run(body)
    assert (kind, value) == _reference(body)
