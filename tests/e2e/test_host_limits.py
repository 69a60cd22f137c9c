"""HostConfig limits enforced end to end."""

import anyio
import pytest

from p2p.config import HostConfig
from p2p.errors import P2PError
from p2p.host import Host

pytestmark = pytest.mark.anyio


async def test_inbound_streams_over_the_cap_are_reset():
    release = anyio.Event()

    async def hold(stream) -> None:
        await stream.send(b"in")
        await release.wait()

    with anyio.fail_after(20):
        async with Host(config=HostConfig(max_inbound_streams_per_conn=2)) as server, Host() as client:
            server.set_stream_handler("/hold", hold)
            await server.listen()
            peer = await client.connect(server.p2p_addrs()[0])
            held = []
            for _ in range(2):
                s = await client.new_stream(peer, ["/hold"])
                assert await s.receive_exactly(2) == b"in"
                held.append(s)
            with pytest.raises(P2PError):  # the third is reset by the server
                s = await client.new_stream(peer, ["/hold"])
                await s.receive_exactly(2)
            release.set()
            for s in held:
                await s.aclose()
            # once the held streams are gone, new streams are accepted again
            with anyio.fail_after(5):
                while True:
                    try:
                        s = await client.new_stream(peer, ["/ipfs/ping/1.0.0"])
                        break
                    except P2PError:
                        await anyio.sleep(0.05)
            await s.reset()
