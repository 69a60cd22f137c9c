"""Peerstore: what identify said about a peer's protocols, asked with and without a copy."""

from p2p.identity import PeerId, PrivateKey
from p2p.peerstore import Peerstore


def test_supports_answers_what_protocols_holds_without_a_copy() -> None:
    store = Peerstore()
    peer = PeerId.from_public_key(PrivateKey.generate().public_key)
    assert not store.supports(peer, "/echo/1.0.0") and store.protocols(peer) == set()
    store.set_protocols(peer, ["/echo/1.0.0", "/ipfs/id/1.0.0"])
    assert store.supports(peer, "/echo/1.0.0") and not store.supports(peer, "/other/1.0.0")
    copy = store.protocols(peer)
    copy.add("/other/1.0.0")  # a copy: changing it changes nothing stored
    assert not store.supports(peer, "/other/1.0.0")
    store.set_protocols(peer, [])
    assert not store.supports(peer, "/echo/1.0.0")
