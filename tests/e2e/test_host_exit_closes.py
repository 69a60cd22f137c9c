"""A host that exits leaves no connection open at its peers, whatever was in flight.

Seen once against go (tests/interop/test_interop_kad_discover.py, the restart test): a Go node
still listed an exited Python node 10 s later. A peer only notices a connection nobody closed at
its keepalive (yamux, ~30 s+) or idle timeout (QUIC, 30 s), so every way out of a Host must end
each connection it made or accepted with a FIN / GoAway or a CONNECTION_CLOSE:

* a dial whose handshake finishes after the host's close sweep (a DHT lookup or the discover
  loop dialling while the node exits) was dropped unclosed: the peer kept it;
* a QUIC connection whose driver was cancelled with the host's task group never sent
  CONNECTION_CLOSE;
* inbound handshakes in flight when the host closes end at the dialler too.

The peer's own view is what is checked (its Host drops the connection within a bound far below
any keepalive), on both anyio backends and both transports.
"""

from __future__ import annotations

import os

import anyio
import pytest
from multiaddr import Multiaddr

from p2p.connection import MuxedConnection
from p2p.errors import DialError, P2PError
from p2p.host import Host
from p2p.identity import PeerId
from p2p.transport.base import Listener, OnConnection, TransportContext
from p2p.transport.defaults import DEFAULT_TRANSPORTS

pytestmark = pytest.mark.anyio

ADDRS = {"tcp": "/ip4/127.0.0.1/tcp/0", "quic": "/ip4/127.0.0.1/udp/0/quic-v1"}
# far below yamux's keepalive (30 s) and QUIC's idle timeout (30 s): only a close ends it this fast
GONE_WITHIN = 3.0


class _Gate:
    """Holds each finished dial until `release` is set: the handshake is over, the Host has
    not seen the connection yet (as when a lookup's dial completes while the host exits)."""

    def __init__(self) -> None:
        self.dialled = anyio.Event()
        self.release = anyio.Event()

    def transports(self) -> list[type]:
        gate = self

        def wrap(factory: type) -> type:
            class Gated:
                def __init__(self, ctx: TransportContext) -> None:
                    self._inner = factory(ctx)
                    self.name = self._inner.name

                def can_dial(self, addr: Multiaddr) -> bool:
                    return bool(self._inner.can_dial(addr))

                def can_listen(self, addr: Multiaddr) -> bool:
                    return bool(self._inner.can_listen(addr))

                async def listen(self, addr: Multiaddr, on_connection: OnConnection) -> Listener:
                    return await self._inner.listen(addr, on_connection)  # type: ignore[no-any-return]

                async def dial(self, addr: Multiaddr, expected: PeerId | None,
                               timeout: float) -> MuxedConnection:
                    conn = await self._inner.dial(addr, expected, timeout)
                    gate.dialled.set()
                    with anyio.CancelScope(shield=True):  # the dial's caller is not the host
                        await gate.release.wait()
                    return conn  # type: ignore[no-any-return]

            return Gated

        return [wrap(f) for f in DEFAULT_TRANSPORTS]


async def _gone_at(peer_host: Host, peer: PeerId) -> None:
    with anyio.fail_after(GONE_WITHIN):
        while peer_host.connection(peer) is not None:
            await anyio.sleep(0.01)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", ["tcp", "quic"])
async def test_a_dial_finishing_after_the_host_closed_is_closed(kind: str) -> None:
    gate = _Gate()
    outcome: list[BaseException | str] = []
    with anyio.fail_after(30):
        async with Host() as listener:
            addr = (await listener.listen(ADDRS[kind]))[0]
            fds_before = _fds()
            dialler = Host(transports=gate.transports())

            async def dial() -> None:
                try:
                    await dialler.connect(f"{addr}/p2p/{listener.peer_id}")
                    outcome.append("connected")
                except (DialError, P2PError) as exc:
                    outcome.append(exc)

            async with anyio.create_task_group() as user:  # the dial's task is not the host's
                async with dialler:
                    user.start_soon(dial)
                    await gate.dialled.wait()
                    with anyio.fail_after(5):  # the listener runs the connection already
                        while listener.connection(dialler.peer_id) is None:
                            await anyio.sleep(0.01)
                # the dialler has exited; its handshake result reaches the Host only now
                gate.release.set()
            # the peer hears the close (GoAway + FIN / CONNECTION_CLOSE), not a keepalive timeout
            await _gone_at(listener, dialler.peer_id)
            with anyio.fail_after(5):  # and the dialler's socket is released without any gc
                while _fds() > fds_before:
                    await anyio.sleep(0.01)
            # the dial's caller learns it failed, as a dial error
            assert len(outcome) == 1 and isinstance(outcome[0], DialError), outcome


@pytest.mark.parametrize("kind", ["tcp", "quic"])
async def test_handshakes_in_flight_when_the_host_closes_end_at_the_dialler(kind: str) -> None:
    """Four dials 2 ms apart, then four more as the listener exits: some connections are up, some
    in their handshake, some not yet accepted. Each connection made is gone at the dialler at
    once; over TCP every dial ends at once too (the listener closes each socket it accepted,
    whatever stage its handshake was in: a trio handshake cancelled while negotiating /noise
    used to leave its socket open, and the dial waited out its 10 s timeout)."""
    results: list[object] = []
    with anyio.fail_after(30):
        async with Host() as dialler:
            async with anyio.create_task_group() as tg:
                async with Host() as listener:
                    addr = (await listener.listen(ADDRS[kind]))[0]
                    transport = dialler._transport_for(addr)

                    async def dial() -> None:
                        try:
                            results.append(await dialler._dial(transport, addr, None, 10))
                        except (DialError, P2PError) as exc:
                            results.append(exc)

                    for _ in range(4):
                        tg.start_soon(dial)
                        await anyio.sleep(0.002)
                    for _ in range(4):  # these meet the exit at their first steps
                        tg.start_soon(dial)
                # the listener has exited
                with anyio.fail_after(GONE_WITHIN):
                    while dialler.connection(listener.peer_id) is not None:
                        await anyio.sleep(0.01)
                if kind == "tcp":
                    with anyio.fail_after(GONE_WITHIN):
                        while len(results) < 8:
                            await anyio.sleep(0.01)
                # A QUIC Initial that reached the socket after it closed is not answered (go's
                # neither): such a dial ends at its handshake timeout, with no connection.
                tg.cancel_scope.cancel()
            assert dialler.connection(listener.peer_id) is None


async def test_an_inbound_handshake_cut_by_the_exit_closes_its_socket() -> None:
    """A dialler that is mid-negotiation (the listener has answered its multistream header, no
    protocol chosen yet) when the listener exits sees its socket end at once. Before the fix a
    handshake cancelled outside the Noise stage left the accepted socket open: the dialler
    waited for its own timeout, and a go dialler would have too."""
    with anyio.fail_after(30):
        async with Host() as listener:
            addr = (await listener.listen("/ip4/127.0.0.1/tcp/0"))[0]
            port = int(addr.value_for_protocol("tcp"))
            client = await anyio.connect_tcp("127.0.0.1", port)
            header = b"/multistream/1.0.0\n"
            await client.send(bytes([len(header)]) + header)
            with anyio.fail_after(5):  # the listener's header: its handshake has begun
                assert header in await client.receive()
        # the listener has exited
        try:
            with anyio.fail_after(GONE_WITHIN):
                while await client.receive():
                    pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            pass  # FIN or RST: the socket is closed at the listener
        finally:
            await client.aclose()
