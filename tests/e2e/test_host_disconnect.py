"""Host.disconnect: a peer can be dropped on purpose, and both sides notice."""

import anyio
import pytest

from p2p.host import Host

pytestmark = pytest.mark.anyio


async def test_disconnect_closes_both_sides_and_redial_works():
    with anyio.fail_after(20):
        async with Host() as server, Host() as client:
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            await client.identify(peer)
            await client.disconnect(peer)
            assert client.connection(peer) is None and client.connected_peers() == []
            while server.connected_peers():  # the server sees the GoAway / close
                await anyio.sleep(0.01)
            # dialling again makes a fresh connection
            assert await client.connect(server.p2p_addrs()[0]) == peer
            assert len(await client.ping(peer)) == 1
