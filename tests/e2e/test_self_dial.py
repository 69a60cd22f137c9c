"""A dial to one of our own addresses: the inbound half is refused at once, so no connection to
ourselves outlives the dialling half (whose caller refuses it, as the oracle node does). Both
anyio backends."""

from __future__ import annotations

import anyio
import pytest

from p2p.host import Host

pytestmark = pytest.mark.anyio


async def test_an_inbound_connection_from_ourselves_is_closed() -> None:
    async with Host() as host:
        await host.listen("/ip4/127.0.0.1/tcp/0")
        seen: list[str] = []

        class Watch:
            def connected(self, conn: object) -> None:
                seen.append(getattr(conn, "direction"))

        host.add_connection_listener(Watch())
        with anyio.fail_after(10):
            peer = await host.connect(str(host.listen_addrs()[0]))  # no /p2p: found out after
            assert peer == host.peer_id
            while host.connected_peers():  # the dialling half hears the refused half's GoAway
                await anyio.sleep(0.01)
        assert seen == ["outbound"]  # the inbound half never became a connection of the host
