"""The key exchange groups a dialler offers (`CLIENT_GROUPS`).

aioquic's client makes a key share for every group it supports and cannot answer a
HelloRetryRequest, so it may offer only groups it sends shares for. Ours offers X25519 (go's
first choice) and P-256, not P-384 and X448 as well: two key generations per dial instead of
four. A listener still accepts any group a dialler offers first.
"""

from __future__ import annotations

from aioquic import tls
from quic_memory import pair

from p2p.transport.quic_core import CLIENT_GROUPS, Libp2pQuicConnection


def test_a_dialler_makes_shares_for_x25519_and_p256_only() -> None:
    assert CLIENT_GROUPS == (tls.Group.X25519, tls.Group.SECP256R1)
    client, server = pair()
    offered = client.tls
    assert offered._supported_groups == [tls.Group.X25519, tls.Group.SECP256R1]
    assert offered._x25519_private_key is not None
    assert offered._x448_private_key is None
    assert [key.curve.name for key in offered._ec_private_keys] == ["secp256r1"]
    # the listener took the first share it supports: X25519
    assert server.tls._x25519_private_key is not None and not server.tls._ec_private_keys
    assert client.verified_peer is not None and server.verified_peer is not None


class _AllGroupsClient(Libp2pQuicConnection):
    """A dialler offering aioquic's own groups, in its order (P-256, P-384, X25519, X448)."""

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        self.tls._supported_groups = [tls.Group.SECP256R1, tls.Group.SECP384R1,
                                      tls.Group.X25519, tls.Group.X448]


class _OnlyGroupClient(Libp2pQuicConnection):
    group = tls.Group.SECP384R1

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        self.tls._supported_groups = [self.group]


def test_a_listener_still_takes_any_group_a_dialler_offers_first() -> None:
    client, server = pair(client_class=_AllGroupsClient)
    assert client.tls._x448_private_key is not None  # all four shares were made
    assert [key.curve.name for key in server.tls._ec_private_keys] == ["secp256r1"]
    assert server.verified_peer is not None and client.verified_peer is not None

    for group, curve in ((tls.Group.SECP384R1, "secp384r1"), (tls.Group.X448, None)):
        only = type("Only", (_OnlyGroupClient,), {"group": group})
        client, server = pair(client_class=only)
        if curve is None:
            assert server.tls._x448_private_key is not None
        else:
            assert [key.curve.name for key in server.tls._ec_private_keys] == [curve]
        assert server.verified_peer is not None and client.verified_peer is not None
