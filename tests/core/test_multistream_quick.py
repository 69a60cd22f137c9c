"""`quick_listen`, the listener's one-step fast path: known answers from the wire bytes, and the
same outcome as the `Listener` machine on any input it accepts (it must never disagree)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from multistream_vectors import HEADER, IDENTIFY, LS, NA, PING, SIMOPEN
from p2p.multistream import Listener, quick_listen

SUPPORTED = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/libp2p/simultaneous-connect", "na", "ls"}


def test_header_and_supported_proposal_answered_with_leftover() -> None:
    got = quick_listen(HEADER + PING + b"\x00" * 32, SUPPORTED.__contains__)
    assert got == ("/ipfs/ping/1.0.0", HEADER + PING, b"\x00" * 32)


def test_exact_message_no_leftover() -> None:
    assert quick_listen(HEADER + IDENTIFY, SUPPORTED.__contains__) == (
        "/ipfs/id/1.0.0", HEADER + IDENTIFY, b"")


def test_falls_back_for_everything_else() -> None:
    accepts = SUPPORTED.__contains__
    for data in (
        b"",
        HEADER,  # proposal not here yet
        HEADER + PING[:-1],  # partial proposal
        PING + HEADER,  # no header first
        HEADER + NA, HEADER + LS, HEADER + SIMOPEN,  # never echoed, even if "supported"
        HEADER + bytes.fromhex("07 2f6e6f697365 0a"),  # /noise: not supported
        HEADER + b"\x03ab!",  # no trailing newline
        HEADER + b"\x01\n",  # empty text
        HEADER + b"\x80\x01" + b"a" * 127 + b"\n",  # two-byte varint: the machine's job
        HEADER + b"\x03\xff\xfe\n",  # not UTF-8
    ):
        assert quick_listen(data, accepts) is None, data


def _machine(data: bytes, supported: set[str]):
    m = Listener(sorted(supported))
    try:
        m.receive_data(data)
    except Exception:
        return "error"
    if not m.done:
        return None
    return m.agreed, m.data_to_send(), m.leftover


messages = st.sampled_from([HEADER, PING, IDENTIFY, NA, LS, SIMOPEN, b"\x03ab\n", b"\x05/x/y\n"])


@given(st.lists(messages, max_size=4), st.binary(max_size=40), st.integers(0, 80))
def test_agrees_with_listener_machine(parts: list[bytes], tail: bytes, cut: int) -> None:
    data = (b"".join(parts) + tail)
    data = data[: len(data) - cut] if cut < len(data) else data
    got = quick_listen(data, SUPPORTED.__contains__)
    if got is not None:  # when the fast path answers, the machine answers exactly the same
        assert _machine(data, SUPPORTED) == got


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_and_agree(data: bytes) -> None:
    got = quick_listen(HEADER + data, SUPPORTED.__contains__)
    if got is not None:
        assert _machine(HEADER + data, SUPPORTED) == got
