"""A host listening on a wildcard (0.0.0.0, ::) advertises this machine's interface addresses, as go
does: in p2p_addrs() (the start-up lines), in listen_addrs() and in identify, where the loopback
ones go only to a peer that is itself on loopback. Checked against `ip -o addr` of this machine;
every connection stays on loopback."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest
from multiaddr import Multiaddr

from p2p.host import Host
from p2p.interfaces import expand_wildcards, interface_addresses

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


def machine_addresses(family: str) -> set[str]:
    """What iproute2 says this machine has (IPv6 link-local left out, as go leaves it out)."""
    ip = shutil.which("ip")
    assert ip, "iproute2 is needed (CI installs it)"
    flag = "-4" if family == "ip4" else "-6"
    out = subprocess.run([ip, "-o", flag, "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    addrs = set()
    for line in out.splitlines():
        fields = line.split()
        addr = ipaddress.ip_address(fields[fields.index("inet" if family == "ip4" else "inet6") + 1]
                                    .split("/")[0])
        if not addr.is_link_local:
            addrs.add(str(addr))
    return addrs


def test_interface_addresses_match_iproute2() -> None:
    for family in ("ip4", "ip6"):
        found = interface_addresses(family)
        assert set(found) == machine_addresses(family), family
        assert found[0] == ("127.0.0.1" if family == "ip4" else "::1")  # loopback first


def test_expansion_keeps_port_and_transport_and_leaves_others_alone() -> None:
    v4 = sorted(machine_addresses("ip4"))
    expanded = expand_wildcards([Multiaddr("/ip4/0.0.0.0/udp/9/quic-v1"), Multiaddr("/ip4/127.0.0.1/tcp/7")])
    assert sorted(map(str, expanded)) == sorted(
        [f"/ip4/{a}/udp/9/quic-v1" for a in v4] + (["/ip4/127.0.0.1/tcp/7"]))


async def test_wildcard_listen_is_advertised_as_interface_addresses() -> None:
    with anyio.fail_after(30):
        async with Host() as server, Host() as client:
            bound = await server.listen("/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0")
            ports = {str(b).split("/")[1]: str(b).split("/")[4] for b in bound}
            want = {f"/ip4/{a}/tcp/{ports['ip4']}" for a in machine_addresses("ip4")} | {
                f"/ip6/{a}/tcp/{ports['ip6']}" for a in machine_addresses("ip6")}
            assert {str(a) for a in server.listen_addrs()} == want
            assert set(server.p2p_addrs()) == {f"{a}/p2p/{server.peer_id}" for a in want}
            assert server.p2p_addrs()[0].startswith("/ip4/127.0.0.1/")  # dialable here, first
            assert not any("/0.0.0.0/" in a or "/ip6/::/" in a for a in server.p2p_addrs())

            peer = await client.connect(server.p2p_addrs()[0])  # loopback
            info = await client.identify(peer)
            assert {str(a) for a in info.multiaddrs()} == want  # a loopback peer gets them all

            # A peer on another address gets no loopback address (go's rule), by the same code.
            remote = SimpleNamespace(remote_addr=Multiaddr("/ip4/192.0.2.77/tcp/5555"))
            told = server.identify_service.info_for(remote)  # type: ignore[arg-type]
            told_addrs = {str(Multiaddr(raw)) for raw in told.listen_addrs}
            assert told_addrs == {a for a in want if not a.startswith(("/ip4/127.", "/ip6/::1/"))}


def test_start_up_lines_expand_the_wildcard(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(tmp_path))
    for argv in (["-m", "p2p", "serve", "--listen", "/ip4/0.0.0.0/tcp/0"],
                 ["-m", "oracle", "node", "--key-type", "ed25519", "--listen", "/ip4/0.0.0.0/tcp/0"]):
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            line = json.loads(proc.stdout.readline())
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        ips = {a.split("/")[2] for a in line["addrs"]}
        assert ips == machine_addresses("ip4"), line["addrs"]
