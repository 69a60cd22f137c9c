"""p2p.ip_codecs: the multiaddr package's ip4/ip6 codecs without netaddr give the package's own
codecs' answers (bytes, text, or a refusal) for the same input (tests/core/test_startup_imports.py:
a node starts without importing netaddr)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiaddr import Multiaddr
from multiaddr.codecs import ip4 as package_ip4
from multiaddr.codecs import ip6 as package_ip6

import p2p  # noqa: F401  (installs the codecs)
from multiaddr.codecs import CODEC_CACHE

OURS = {"ip4": CODEC_CACHE["ip4"], "ip6": CODEC_CACHE["ip6"]}
THEIRS = {"ip4": package_ip4.Codec(), "ip6": package_ip6.Codec()}

TEXTS = [
    "127.0.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3.04", "1.2.3.0",
    "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4", "", "a.b.c.d", "1..2.3", "0x1.2.3.4",
    "1.2.3.-1", "::1", "::", "::ffff:1.2.3.4", "::1.2.3.4", "fe80::1", "FE80::1", "fe80::1%eth0",
    "2001:db8::8a2e:370:7334", "2001:0db8:0000:0000:0000:0000:0000:0001", "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9", ":::", "1::2::3", "::ffff:01.2.3.4", "::ffff:1.2.3", "g::1", "1.2.3.4:",
]


def outcome(codec: object, method: str, value: object) -> object:
    try:
        return getattr(codec, method)(None, value)
    except Exception as exc:  # noqa: BLE001  (a refusal is an answer to compare)
        return ("refused", type(exc).__name__ if not isinstance(exc, ValueError) else "ValueError")


def refused(result: object) -> bool:
    return isinstance(result, tuple) and result[:1] == ("refused",)


@pytest.mark.parametrize("name", ["ip4", "ip6"])
@pytest.mark.parametrize("text", TEXTS)
def test_text_to_bytes_as_the_package_does(name: str, text: str) -> None:
    ours, theirs = outcome(OURS[name], "to_bytes", text), outcome(THEIRS[name], "to_bytes", text)
    assert ours == theirs or (refused(ours) and refused(theirs)), (ours, theirs)


@given(st.binary(min_size=4, max_size=4))
def test_ip4_bytes_to_text_as_the_package_does(buf: bytes) -> None:
    assert OURS["ip4"].to_string(None, buf) == THEIRS["ip4"].to_string(None, buf)


@given(st.one_of(
    st.binary(min_size=16, max_size=16),
    # runs of zero words and the IPv4-shaped tails (mapped, compatible), where text forms differ
    st.tuples(st.integers(0, 8), st.integers(0, 8), st.binary(min_size=16, max_size=16)).map(
        lambda t: bytes(min(t[0], t[1]) * 2) + t[2][min(t[0], t[1]) * 2:max(t[0], t[1]) * 2]
        + bytes(16 - max(t[0], t[1]) * 2)),
    st.binary(min_size=4, max_size=4).map(lambda b: bytes(10) + b"\xff\xff" + b),
    st.binary(min_size=4, max_size=4).map(lambda b: bytes(12) + b),
))
def test_ip6_bytes_to_text_as_the_package_does(buf: bytes) -> None:
    assert len(buf) == 16
    text = OURS["ip6"].to_string(None, buf)
    assert text == THEIRS["ip6"].to_string(None, buf)
    assert OURS["ip6"].to_bytes(None, text) == buf


@given(st.ip_addresses())
def test_every_address_round_trips_as_the_package_does(addr: ipaddress._BaseAddress) -> None:
    name = f"ip{addr.version}"
    text = str(addr)
    packed = OURS[name].to_bytes(None, text)
    assert packed == THEIRS[name].to_bytes(None, text) == addr.packed
    assert OURS[name].to_string(None, packed) == THEIRS[name].to_string(None, packed)


def test_multiaddrs_read_and_write_as_before() -> None:
    for text in ("/ip4/127.0.0.1/tcp/4001", "/ip6/::1/udp/9/quic-v1", "/ip6/::ffff:1.2.3.4/tcp/1"):
        assert str(Multiaddr(text)) == text and str(Multiaddr(Multiaddr(text).to_bytes())) == text
    with pytest.raises(Exception, match="(?i)ip4"):
        Multiaddr("/ip4/01.2.3.4/tcp/1")
