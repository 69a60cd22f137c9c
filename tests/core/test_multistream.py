"""Sans-IO multistream-select core: known-answer bytes, hostile input, state machines back to back.

Byte vectors are as go-multistream v0.3.3 / v0.5.0 write them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p import multistream as ms
from p2p.errors import LocalProtocolError, NegotiationFailed, RemoteProtocolError
from p2p.multistream import (
    Dialer,
    HeaderReceived,
    Listener,
    ListRequested,
    ListRequester,
    MalformedMessage,
    MessageReader,
    MessageTooLarge,
    MultistreamError,
    ProtocolAgreed,
    ProtocolRejected,
    ProtocolsListed,
    TooManyRounds,
    UnexpectedHeader,
    UnrecognizedResponse,
    encode_message,
    parse_ls_body,
)

from multistream_vectors import HEADER, IDENTIFY, LS, MASA_KAD, NA, NOISE, PING, SIMOPEN, TLS, YAMUX

H = bytes.fromhex

# go v0.24.2 dialer, security negotiation with the simultaneous-open extension.
GO_SIMOPEN_IN = HEADER + SIMOPEN + NOISE
PY_SIMOPEN_OUT = HEADER + NA + NOISE


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# ------------------------------------------------------------------------------ framing vectors


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("/multistream/1.0.0", HEADER),
        ("/noise", NOISE),
        ("/tls/1.0.0", TLS),
        ("/yamux/1.0.0", YAMUX),
        ("na", NA),
        ("ls", LS),
        ("/libp2p/simultaneous-connect", SIMOPEN),
        ("/ipfs/id/1.0.0", IDENTIFY),
        ("/ipfs/ping/1.0.0", PING),
        ("/masa/kad/1.0.0", MASA_KAD),
    ],
)
def test_message_vectors(text: str, wire: bytes) -> None:
    assert encode_message(text) == wire
    reader = MessageReader()
    reader.feed(wire + b"rest")
    assert reader.next_message() == text.encode()
    assert reader.take_rest() == b"rest"


def test_named_constants_match_the_wire() -> None:
    assert encode_message(ms.PROTOCOL_ID) == HEADER
    assert encode_message(ms.SIMOPEN) == SIMOPEN
    assert encode_message(ms.NA) == NA and encode_message(ms.LS) == LS


def test_reader_waits_for_complete_message_byte_by_byte() -> None:
    reader = MessageReader()
    wire = HEADER + NOISE
    got = []
    for b in wire:
        reader.feed(bytes([b]))
        while (m := reader.next_message()) is not None:
            got.append(m)
    assert got == [b"/multistream/1.0.0", b"/noise"]


def test_largest_message_accepted_and_one_more_rejected_before_body() -> None:
    body = b"/" + b"x" * 1022 + b"\n"  # L = 1024 including newline: go's limit
    reader = MessageReader()
    reader.feed(H("8008") + body)
    assert reader.next_message() == body[:-1]
    too_big = MessageReader()
    too_big.feed(H("8108"))  # L = 1025, no body yet: must fail now, not buffer first
    with pytest.raises(MessageTooLarge):
        too_big.next_message()


@pytest.mark.parametrize(
    "wire",
    [
        H("8000"),  # non-minimal varint for 0
        H("8300") + b"na\n",  # non-minimal varint for 3
        H("ffffffffffffffffff01"),  # 10-byte varint
        H("03") + b"nax",  # no trailing newline
        H("00"),  # L = 0: "message did not have trailing newline"
        H("03") + b"\xff\xfe\n",  # not UTF-8 (reported when decoded)
    ],
)
def test_malformed_messages_rejected(wire: bytes) -> None:
    listener = Listener(["/noise"])
    with pytest.raises(MalformedMessage):
        listener.receive_data(wire)
    assert listener.state is ms.State.ERROR
    with pytest.raises(LocalProtocolError):
        listener.receive_data(HEADER)


def test_overlong_varint_detected_before_it_ends() -> None:
    reader = MessageReader()
    reader.feed(H("ff" * 9))
    with pytest.raises(MalformedMessage):
        reader.next_message()


def test_encode_refuses_what_go_would_reject() -> None:
    encode_message("/" + "x" * 1022)
    with pytest.raises(LocalProtocolError):
        encode_message("/" + "x" * 1023)


# ------------------------------------------------------------------------------------- dialer


def test_dialer_pipelines_header_and_first_proposal_only() -> None:
    dialer = Dialer(["/tls/1.0.0", "/noise"])
    assert dialer.data_to_send() == HEADER + TLS
    assert dialer.data_to_send() == b""


def test_dialer_go_listener_separate_writes() -> None:
    dialer = Dialer(["/noise"])
    dialer.data_to_send()
    assert dialer.receive_data(HEADER) == [HeaderReceived()]
    assert not dialer.done
    events = dialer.receive_data(NOISE)
    assert events == [ProtocolAgreed("/noise", b"")]
    assert dialer.agreed == "/noise"


def test_dialer_na_then_next_proposal_alone() -> None:
    # go proposes /tls/1.0.0, Python says na, go sends /noise alone. Here we are the dialer.
    dialer = Dialer(["/tls/1.0.0", "/noise"])
    dialer.data_to_send()
    events = dialer.receive_data(HEADER + NA)
    assert events == [HeaderReceived(), ProtocolRejected("/tls/1.0.0")]
    assert dialer.data_to_send() == NOISE
    assert dialer.receive_data(NOISE + b"\x00\x20noise-msg") == [
        ProtocolAgreed("/noise", b"\x00\x20noise-msg")
    ]
    assert dialer.leftover == b"\x00\x20noise-msg"


def test_dialer_na_on_all_raises_negotiation_failed_with_tried() -> None:
    dialer = Dialer(["/tls/1.0.0", "/noise"])
    dialer.data_to_send()
    dialer.receive_data(HEADER + NA)
    with pytest.raises(NegotiationFailed) as info:
        dialer.receive_data(NA)
    assert info.value.tried == ["/tls/1.0.0", "/noise"]
    assert dialer.state is ms.State.ERROR


def test_dialer_unrecognized_response() -> None:
    dialer = Dialer(["/noise"])
    with pytest.raises(UnrecognizedResponse):
        dialer.receive_data(HEADER + TLS)


def test_dialer_wrong_header() -> None:
    dialer = Dialer(["/noise"])
    with pytest.raises(UnexpectedHeader):
        dialer.receive_data(NOISE)


def test_dialer_never_sends_simopen_on_its_own() -> None:
    dialer = Dialer(["/noise"])
    assert SIMOPEN not in dialer.data_to_send()


def test_dialer_rejects_empty_or_string_protocols() -> None:
    with pytest.raises(LocalProtocolError):
        Dialer([])
    with pytest.raises(LocalProtocolError):
        Dialer("/noise")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- listener


def test_listener_writes_header_before_reading() -> None:
    assert Listener(["/noise"]).data_to_send() == HEADER


def test_listener_go_v0242_simopen_exchange_in_one_chunk() -> None:
    listener = Listener(["/noise", "/tls/1.0.0"])
    out = listener.data_to_send()
    events = listener.receive_data(GO_SIMOPEN_IN)
    out += listener.data_to_send()
    assert out == PY_SIMOPEN_OUT
    assert events == [
        HeaderReceived(),
        ProtocolRejected("/libp2p/simultaneous-connect"),
        ProtocolAgreed("/noise", b""),
    ]


def test_listener_go_v0242_simopen_exchange_byte_by_byte() -> None:
    listener = Listener(["/noise"])
    out = listener.data_to_send()
    for chunk in _chunks(GO_SIMOPEN_IN, 1):
        listener.receive_data(chunk)
        out += listener.data_to_send()
    assert out == PY_SIMOPEN_OUT
    assert listener.agreed == "/noise"


@pytest.mark.parametrize(
    "supported",
    [
        ["/libp2p/simultaneous-connect", "/noise"],
        lambda proto: True,
    ],
)
def test_listener_never_echoes_simopen(supported: object) -> None:
    listener = Listener(supported)  # type: ignore[arg-type]
    listener.data_to_send()
    events = listener.receive_data(HEADER + SIMOPEN)
    assert events == [HeaderReceived(), ProtocolRejected("/libp2p/simultaneous-connect")]
    assert listener.data_to_send() == NA


def test_listener_pipelined_proposal_app_data_and_fin() -> None:
    # go's lazy dialer sends header + proposal + application data in one write.
    app = H("0a0b0c") + b"\x13not-a-multistream-message"
    listener = Listener(["/ipfs/id/1.0.0", "/masa/kad/1.0.0"])
    listener.data_to_send()
    events = listener.receive_data(HEADER + MASA_KAD + app)
    assert events == [HeaderReceived(), ProtocolAgreed("/masa/kad/1.0.0", app)]
    assert listener.data_to_send() == MASA_KAD
    with pytest.raises(LocalProtocolError):
        listener.receive_data(b"more")  # after agreement, bytes belong to the protocol


def test_listener_proposal_with_nothing_after_it() -> None:
    listener = Listener(["/ipfs/ping/1.0.0"])
    assert listener.receive_data(HEADER + PING)[-1] == ProtocolAgreed("/ipfs/ping/1.0.0", b"")


def test_listener_requires_header_first() -> None:
    listener = Listener(["/noise"])
    with pytest.raises(UnexpectedHeader):
        listener.receive_data(NOISE + HEADER)


def test_listener_ls_with_collection_lists_protocols() -> None:
    listener = Listener(["/a", "/bc"])
    listener.data_to_send()
    assert listener.receive_data(HEADER + LS) == [HeaderReceived(), ListRequested()]
    # rust-libp2p layout: uvarint(total) [uvarint(len) proto \n]* \n
    assert listener.data_to_send() == H("0a 03 2f610a 04 2f62630a 0a")
    assert not listener.done


def test_listener_ls_with_predicate_answers_na() -> None:
    listener = Listener(lambda p: p == "/noise")
    listener.data_to_send()
    listener.receive_data(HEADER + LS)
    assert listener.data_to_send() == NA
    listener.receive_data(NOISE)
    assert listener.data_to_send() == NOISE
    assert listener.agreed == "/noise"


def test_listener_ls_listing_omits_simopen() -> None:
    listener = Listener(["/libp2p/simultaneous-connect"])
    listener.data_to_send()
    listener.receive_data(HEADER + LS)
    assert listener.data_to_send() == H("01 0a")


def test_listener_na_round_cap_default() -> None:
    listener = Listener(["/noise"])
    listener.data_to_send()
    listener.receive_data(HEADER + TLS * 32)
    assert listener.data_to_send() == NA * 32
    with pytest.raises(TooManyRounds):
        listener.receive_data(TLS)
    assert isinstance(TooManyRounds("x"), RemoteProtocolError)


def test_listener_na_round_cap_configurable_and_counts_ls() -> None:
    listener = Listener(["/noise"], max_na_rounds=2)
    listener.receive_data(HEADER + LS + TLS)
    with pytest.raises(TooManyRounds):
        listener.receive_data(LS)
    ok = Listener(["/noise"], max_na_rounds=2)
    ok.receive_data(HEADER + TLS + TLS + NOISE)
    assert ok.agreed == "/noise"


def test_listener_repeated_header_is_just_a_proposal() -> None:
    listener = Listener(["/noise"])
    listener.data_to_send()
    events = listener.receive_data(HEADER + HEADER + NOISE)
    assert events[1] == ProtocolRejected("/multistream/1.0.0")
    assert listener.data_to_send() == NA + NOISE


def test_listener_rejects_bad_supported_argument() -> None:
    with pytest.raises(LocalProtocolError):
        Listener("/noise")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        Listener(["/noise"], max_na_rounds=-1)


# ---------------------------------------------------------------------------------------- ls


def test_ls_requester_rust_layout() -> None:
    req = ListRequester()
    assert req.data_to_send() == HEADER + LS
    events = req.receive_data(HEADER + H("0a 03 2f610a 04 2f62630a 0a"))
    assert events == [HeaderReceived(), ProtocolsListed(["/a", "/bc"])]


def test_ls_requester_accepts_old_go_and_old_rust_layouts() -> None:
    assert parse_ls_body(H("03 2f610a 04 2f62630a")) == ["/a", "/bc"]  # go-multistream < 0.3
    assert parse_ls_body(H("02 03 2f610a 04 2f62630a")) == ["/a", "/bc"]  # count first
    assert parse_ls_body(b"\n") == []


def test_ls_requester_go_answers_na() -> None:
    req = ListRequester()
    with pytest.raises(NegotiationFailed) as info:
        req.receive_data(HEADER + NA)
    assert info.value.tried == ["ls"]


def test_ls_reply_may_exceed_one_message_limit_but_is_bounded() -> None:
    protos = [f"/p/{i:04d}/" + "x" * 40 for i in range(100)]  # ~4.8 KiB listing
    listener = Listener(protos)
    req = ListRequester()
    listener.receive_data(req.data_to_send())
    req.receive_data(listener.data_to_send())
    assert req.protocols == protos
    huge = ListRequester()
    with pytest.raises(MessageTooLarge):
        huge.receive_data(HEADER + H("818002"))  # 32769 bytes announced


@pytest.mark.parametrize("body", [H("05 2f61 0a"), H("05 03 2f610a"), H("03 2f6178"), H("03 ff fe 0a")])
def test_ls_reply_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_ls_body(body)


# ----------------------------------------------------------------------------- back to back


def _negotiate(dialer: Dialer, listener: Listener) -> None:
    """Shuttle bytes until both finish; each step must make progress."""
    for _ in range(200):
        a, b = dialer.data_to_send(), listener.data_to_send()
        if b and not dialer.done:
            dialer.receive_data(b)
        if a and not listener.done:
            listener.receive_data(a)
        if dialer.done and listener.done:
            return
    raise AssertionError("no progress")


def test_back_to_back_yamux() -> None:
    dialer, listener = Dialer(["/mplex/6.7.0", "/yamux/1.0.0"]), Listener(["/yamux/1.0.0"])
    _negotiate(dialer, listener)
    assert dialer.agreed == listener.agreed == "/yamux/1.0.0"


proto_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\n"), min_size=1, max_size=40
).map(lambda s: "/" + s)


@given(
    offered=st.lists(proto_ids, min_size=1, max_size=6, unique=True),
    supported=st.lists(proto_ids, max_size=6),
)
def test_back_to_back_property(offered: list[str], supported: list[str]) -> None:
    dialer, listener = Dialer(offered), Listener(supported)
    expected = next((p for p in offered if p in supported and p != ms.SIMOPEN), None)
    if expected is None:
        with pytest.raises(NegotiationFailed) as info:
            _negotiate(dialer, listener)
        assert info.value.tried == offered
    else:
        _negotiate(dialer, listener)
        assert dialer.agreed == listener.agreed == expected


# ------------------------------------------------------------------------------- hypothesis


@given(
    texts=st.lists(st.text(max_size=300).filter(lambda t: len(t.encode()) <= 1023), max_size=5),
    cut=st.integers(min_value=1, max_value=64),
)
def test_reader_roundtrip_any_chunking(texts: list[str], cut: int) -> None:
    wire = b"".join(encode_message(t) for t in texts)
    reader = MessageReader()
    got = []
    for chunk in _chunks(wire, cut):
        reader.feed(chunk)
        while (m := reader.next_message()) is not None:
            got.append(m.decode())
    assert got == texts
    assert reader.take_rest() == b""


@given(st.binary(max_size=3000))
def test_reader_arbitrary_bytes_only_typed_errors(data: bytes) -> None:
    reader = MessageReader()
    reader.feed(data)
    try:
        while reader.next_message() is not None:
            pass
    except MultistreamError:
        pass


@settings(max_examples=300)
@given(
    chunks=st.lists(st.binary(max_size=200), max_size=30),
    prefix=st.sampled_from([b"", HEADER, HEADER + SIMOPEN, HEADER + LS]),
    predicate=st.booleans(),
)
def test_listener_arbitrary_chunks(chunks: list[bytes], prefix: bytes, predicate: bool) -> None:
    supported = (lambda p: p == "/noise") if predicate else ["/noise", "/yamux/1.0.0"]
    listener = Listener(supported, max_na_rounds=4)
    fed = 0
    for chunk in [prefix, *chunks]:
        if listener.done:
            break
        try:
            listener.receive_data(chunk)
        except MultistreamError:
            assert listener.state is ms.State.ERROR
            return
        fed += len(chunk)
        assert len(listener._reader._buf) <= 9 + ms.MAX_MESSAGE_LEN + 200  # bounded buffering
        assert len(listener.data_to_send()) < 4096
    if listener.done:
        assert listener.agreed in ("/noise", "/yamux/1.0.0")


@given(chunks=st.lists(st.binary(max_size=100), max_size=20))
def test_dialer_and_ls_arbitrary_chunks(chunks: list[bytes]) -> None:
    for machine in (Dialer(["/noise", "/tls/1.0.0"]), ListRequester()):
        for chunk in [HEADER, *chunks]:
            if machine.done:
                break
            try:
                machine.receive_data(chunk)
            except (RemoteProtocolError, NegotiationFailed):
                break


@given(st.binary(max_size=600))
def test_ls_body_parser_arbitrary(body: bytes) -> None:
    try:
        protocols = parse_ls_body(body)
    except MultistreamError:
        return
    assert all(isinstance(p, str) for p in protocols)


def test_core_is_sans_io() -> None:
    tree = ast.parse(Path(ms.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"anyio", "trio", "asyncio", "socket", "time"}
