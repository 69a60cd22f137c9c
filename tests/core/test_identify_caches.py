"""What identify now keeps between connections gives the answers it gave when built each time:
the encoded message around the observed address, parsed peer addresses, the loopback test."""

from __future__ import annotations

import pytest
from multiaddr import Multiaddr

from p2p import protobuf as pb
from p2p.protocols import identify as idp
from p2p.services.identify import _is_loopback


def plain_encode(info: idp.IdentifyInfo) -> bytes:
    """The field-by-field encoding (as before the cache)."""
    out = [] if info.public_key is None else [pb.field_bytes(1, info.public_key)]
    out += [pb.field_bytes(2, a) for a in info.listen_addrs]
    out += [pb.field_str(3, p) for p in info.protocols]
    if info.observed_addr is not None:
        out.append(pb.field_bytes(4, info.observed_addr))
    if info.protocol_version is not None:
        out.append(pb.field_str(5, info.protocol_version))
    if info.agent_version is not None:
        out.append(pb.field_str(6, info.agent_version))
    if info.signed_peer_record is not None:
        out.append(pb.field_bytes(8, info.signed_peer_record))
    return b"".join(out)


def test_encoding_equals_the_field_by_field_one_for_every_observed_address() -> None:
    base = dict(public_key=b"\x08\x01\x12\x20" + bytes(32),
                listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/4001").to_bytes()],
                protocols=["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"], protocol_version="ipfs/0.1.0",
                agent_version="masa")
    for port in (1000, 1001, 1002):
        observed = Multiaddr(f"/ip4/10.0.0.1/tcp/{port}").to_bytes()
        info = idp.IdentifyInfo(**base, observed_addr=observed)
        assert info.encode() == plain_encode(info)
    for changed in (dict(protocols=["/other/1"]), dict(agent_version=None), dict(public_key=None),
                    dict(signed_peer_record=b"rec")):
        info = idp.IdentifyInfo(**{**base, **changed})
        assert info.encode() == plain_encode(info)
        assert idp.decode_messages(idp.encode_messages(info)).protocols == info.protocols


def test_parsed_addresses_are_kept_up_to_a_size() -> None:
    raw = Multiaddr("/ip4/192.0.2.1/tcp/4001").to_bytes()
    first = idp.decode_multiaddr(raw)
    assert first == Multiaddr("/ip4/192.0.2.1/tcp/4001")
    assert idp.decode_multiaddr(bytearray(raw)) is first  # parsed once
    long = Multiaddr("/dns/" + ".".join(["a" * 60] * 3) + "/tcp/1").to_bytes()  # past the cache
    assert idp.decode_multiaddr(long) == idp.decode_multiaddr(long)
    assert idp.decode_multiaddr(long) is not idp.decode_multiaddr(long)  # parsed, not kept
    assert idp.decode_multiaddr(b"") is None and idp.decode_multiaddr(None) is None


@pytest.mark.parametrize("addr, loopback", [
    ("/ip4/127.0.0.1/tcp/1", True), ("/ip4/127.255.0.9/udp/1/quic-v1", True),
    ("/ip4/10.0.0.1/tcp/1", False), ("/ip4/128.0.0.1/tcp/1", False),
    ("/ip6/::1/tcp/1", True), ("/ip6/::2/tcp/1", False), ("/ip6/fe80::1/tcp/1", False),
    ("/ip6/::ffff:127.0.0.1/tcp/1", False), ("/dns/localhost/tcp/1", False),
])
def test_loopback_from_the_binary_form(addr: str, loopback: bool) -> None:
    assert _is_loopback(Multiaddr(addr)) is loopback
