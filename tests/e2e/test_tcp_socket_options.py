"""Every TCP connection a Host makes or accepts has TCP_NODELAY (small frames leave at once: a
request is one Noise frame, Nagle would hold it for the peer's ACK) and SO_KEEPALIVE (as go's net
package sets it). The transport sets only keep-alive itself: NODELAY comes from asyncio's socket
transport and from anyio's trio backend, on the dial path (an IP address or a DNS name) and on the
accept path, which is what this checks on both backends."""

from __future__ import annotations

import os
import socket

import anyio
import pytest

from p2p.host import Host

pytestmark = pytest.mark.anyio


def _tcp_sockets_on_port(port: int) -> list[tuple[str, int, int]]:
    """(side, TCP_NODELAY, SO_KEEPALIVE) of this process's connected TCP sockets with `port` at
    either end: "accepted" when it is the local port, "dialled" when it is the peer's."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:  # not a socket (or already closed)
            continue
        with sock:
            if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                local, peer = sock.getsockname()[1], sock.getpeername()[1]
            except OSError:  # a listening socket
                continue
            if port not in (local, peer):
                continue
            found.append(("accepted" if local == port else "dialled",
                          sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                          sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)))
    return sorted(found)


@pytest.mark.parametrize("host_part", ["/ip4/127.0.0.1", "/dns4/localhost"])
async def test_dialled_and_accepted_sockets_have_nodelay_and_keepalive(host_part: str) -> None:
    with anyio.fail_after(20):
        async with Host() as listener, Host() as dialer:
            await listener.listen("/ip4/127.0.0.1/tcp/0")
            port = int(str(listener.p2p_addrs()[0]).split("/tcp/")[1].split("/")[0])
            await dialer.connect(f"{host_part}/tcp/{port}/p2p/{listener.peer_id}")
            while listener.connection(dialer.peer_id) is None:  # the accept side registers last
                await anyio.sleep(0.01)
            options = _tcp_sockets_on_port(port)
            assert [side for side, _, _ in options] == ["accepted", "dialled"], options
            assert all(nodelay and keepalive for _, nodelay, keepalive in options), options
