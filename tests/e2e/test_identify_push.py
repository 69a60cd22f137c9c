"""Identify push sent (`IdentifyService.push_all`): a connected peer learns our new listen address
at once, as go-libp2p's peers do when its addresses change."""

from __future__ import annotations

import anyio
import pytest

from p2p.host import Host

pytestmark = pytest.mark.anyio


async def test_push_tells_connected_peers_a_new_listen_address():
    with anyio.fail_after(20):
        async with Host() as a, Host() as b:
            await a.listen("/ip4/127.0.0.1/tcp/0")
            await b.connect(a.p2p_addrs()[0])
            while "/ipfs/id/push/1.0.0" not in a.peerstore.protocols(b.peer_id):  # a identified b
                await anyio.sleep(0.01)
            (new,) = await a.listen("/ip4/127.0.0.1/tcp/0")
            assert new not in b.peerstore.addrs(a.peer_id)
            a.identify_service.push_all()
            while new not in b.peerstore.addrs(a.peer_id):
                await anyio.sleep(0.01)
            assert b.connection(a.peer_id) is not None  # the same connection, nothing redialled
