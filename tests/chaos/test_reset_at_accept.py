"""Found by the chaos test: a peer that resets its TCP connection before the Host reads its
addresses (getpeername -> ENOTCONN) must not crash the Host, on either side of the dial."""

from __future__ import annotations

import socket
import struct

import anyio
import pytest

from p2p.host import Host


def reset_connect(port: int) -> None:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    finally:
        s.close()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_host_survives_a_burst_of_connections_reset_before_accept():
    async with Host() as server, Host() as client:
        await server.listen("/ip4/127.0.0.1/tcp/0")
        addr = server.p2p_addrs()[0]
        port = int(addr.split("/tcp/")[1].split("/")[0])
        for _ in range(300):  # queued in the backlog ahead of the real dial below
            reset_connect(port)
        with anyio.fail_after(20):
            peer = await client.connect(addr)
            assert await client.ping(peer, count=2)
        assert server.connected_peers() == [client.peer_id]
