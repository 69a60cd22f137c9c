"""What a node does not import to start: modules for work it may never do (a node's start-up is a
bench row). netaddr: the multiaddr package's ip4/ip6 codecs, replaced by p2p.ip_codecs; html.parser:
the web handler's page reader, imported with the first page (oracle.webpage)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys, anyio
from oracle.gating import WorkerPolicy
from oracle.handlers import handle_test
from oracle.manager import WorkHandlerManager
from oracle.protocol import WorkerProtocol
from p2p.host import Host

async def main():
    async with Host() as a, Host() as b:
        manager = WorkHandlerManager()
        manager.add_handler("test", handle_test)
        WorkerProtocol(manager).register(a)
        await a.listen("/ip4/127.0.0.1/tcp/0")
        await a.listen("/ip6/::1/tcp/0")
        for addr in a.p2p_addrs():
            await b.connect(addr)
            await b.disconnect(a.peer_id)

anyio.run(main)
print(sorted(m for m in ("netaddr", "html.parser") if m in sys.modules))
"""


def test_a_worker_node_starts_and_is_dialled_without_netaddr_or_html_parser() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
