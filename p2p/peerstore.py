"""What we know about other peers: addresses, public keys, protocols, agent (learned by identify).

Everything a remote can make us store is bounded: peers, addresses per peer, protocols per peer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from multiaddr import Multiaddr

from p2p.identity import PeerId, PublicKey

MAX_PEERS = 4096
MAX_ADDRS_PER_PEER = 32
MAX_PROTOCOLS_PER_PEER = 256


@dataclass
class PeerInfo:
    addrs: list[Multiaddr] = field(default_factory=list)
    public_key: PublicKey | None = None
    protocols: set[str] = field(default_factory=set)
    agent_version: str | None = None
    protocol_version: str | None = None
    observed_addr: Multiaddr | None = None  # how that peer saw us


class Peerstore:
    def __init__(self, max_peers: int = MAX_PEERS) -> None:
        self._peers: OrderedDict[PeerId, PeerInfo] = OrderedDict()
        self._max_peers = max_peers

    def _info(self, peer: PeerId) -> PeerInfo:
        info = self._peers.get(peer)
        if info is None:
            info = self._peers[peer] = PeerInfo()
            while len(self._peers) > self._max_peers:
                self._peers.popitem(last=False)  # forget the least recently added peer
        return info

    def get(self, peer: PeerId) -> PeerInfo | None:
        return self._peers.get(peer)

    def peers(self) -> list[PeerId]:
        return list(self._peers)

    def add_addrs(self, peer: PeerId, addrs: list[Multiaddr]) -> None:
        info = self._info(peer)
        for a in addrs:
            if a not in info.addrs:
                info.addrs.append(a)
        del info.addrs[:-MAX_ADDRS_PER_PEER]

    def remove_addr(self, peer: PeerId, addr: Multiaddr) -> None:
        info = self._peers.get(peer)
        if info is not None and addr in info.addrs:
            info.addrs.remove(addr)

    def addrs(self, peer: PeerId) -> list[Multiaddr]:
        info = self._peers.get(peer)
        return list(info.addrs) if info else []

    def set_public_key(self, peer: PeerId, key: PublicKey) -> None:
        self._info(peer).public_key = key

    def public_key(self, peer: PeerId) -> PublicKey | None:
        info = self._peers.get(peer)
        return info.public_key if info else None

    def set_protocols(self, peer: PeerId, protocols: list[str]) -> None:
        self._info(peer).protocols = set(protocols[:MAX_PROTOCOLS_PER_PEER])

    def protocols(self, peer: PeerId) -> set[str]:
        info = self._peers.get(peer)
        return set(info.protocols) if info else set()

    def supports(self, peer: PeerId, protocol: str) -> bool:
        """Whether identify said `peer` speaks `protocol` (no copy of its protocol set: the
        host asks on every new stream)."""
        info = self._peers.get(peer)
        return info is not None and protocol in info.protocols

    def set_agent(self, peer: PeerId, *, agent_version: str | None = None,
                  protocol_version: str | None = None, observed_addr: Multiaddr | None = None) -> None:
        """What identify said about the peer's software and how it saw us (None: unchanged)."""
        info = self._info(peer)
        if agent_version is not None:
            info.agent_version = agent_version
        if protocol_version is not None:
            info.protocol_version = protocol_version
        if observed_addr is not None:
            info.observed_addr = observed_addr

    def peers_supporting(self, protocol: str) -> list[PeerId]:
        return [p for p, info in self._peers.items() if protocol in info.protocols]
