"""Membership pieces without Go: request-data checks, the line splitter, selection's connected check,
re-announcing when handlers change, announcing to a peer that serves the oracle protocol only
after its first identify (its identify push), and refusing our own peer ID."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from oracle.handlers import handle_test
from oracle.membership import LineSplitter, MembershipError, MembershipService
from oracle.messages import WorkRequest
from oracle.node import NodeConfig, OracleNode, SelfConnectError
from oracle.nodedata import NodeData
from oracle.selection import TrackerWorkerDirectory
from oracle.tracker import NodeTracker
from oracle.worktypes import WorkDataError, prepare_work_data
from p2p.host import Host
from p2p.identity import KeyType, PeerId, PrivateKey, save_private_key_file

REPO = Path(__file__).resolve().parents[2]


def pid() -> PeerId:
    return PeerId.from_public_key(PrivateKey.generate(KeyType.Ed25519).public_key)


# --- request data a Go worker survives --------------------------------------------------------


def test_web_data_gets_masas_default_depth() -> None:
    assert prepare_work_data("web", b'{"url": "https://a.example/<x>"}') == \
        b'{"url":"https://a.example/\\u003cx\\u003e","depth":1}'
    assert prepare_work_data("web", b'{"url":"u","depth":0}') == b'{"url":"u","depth":1}'
    assert prepare_work_data("web", b'{"url":"u","depth":2.7}') == b'{"url":"u","depth":2}'  # Go's int()
    assert prepare_work_data("web", b'{"depth":3,"url":"u","x":1}') == b'{"url":"u","depth":3}'


@pytest.mark.parametrize("work_type, data", [
    ("web", b'{"depth": 1}'),
    ("web", b'{"url": 5}'),
    ("web", b'{"url": ""}'),
    ("web", b'{"url": "u", "depth": "2"}'),
    ("web", b'{"url": "u", "depth": true}'),
    ("web", b"https://example.com"),
    ("web", b"[1]"),
    ("twitter", b'{"query": "masa"}'),
    ("twitter", b'{"count": 3}'),
    ("twitter-followers", b'{"username": "masa"}'),
    ("twitter-profile", b'{"username": 1}'),
])
def test_data_a_go_worker_would_crash_on_is_refused(work_type: str, data: bytes) -> None:
    with pytest.raises(WorkDataError):
        prepare_work_data(work_type, data)


def test_other_types_pass_unchanged() -> None:
    assert prepare_work_data("test", b"\xffanything") == b"\xffanything"
    assert prepare_work_data("twitter", b'{"query":"q","count":2}') == b'{"query":"q","count":2}'


# --- nodeDataSync lines -------------------------------------------------------------------------


def test_line_splitter() -> None:
    s = LineSplitter(limit=16)
    assert s.feed(b"ab\ncd") == [b"ab"]
    assert s.feed(b"e\r\n\n") == [b"cde", b""]
    assert s.feed(b"tail") == [] and s.end() == b"tail"
    with pytest.raises(MembershipError):
        s.feed(b"x" * 16)
    with pytest.raises(MembershipError):
        LineSplitter(limit=16).feed(b"y" * 20 + b"\n")


# --- selection -------------------------------------------------------------------------------------


class FakePeerstore:
    def __init__(self, addrs: dict) -> None:
        self._addrs = addrs

    def addrs(self, peer):  # noqa: ANN001
        return self._addrs.get(peer, [])


class FakeHost:
    def __init__(self, me: PeerId, connected: set, known_addrs: dict) -> None:
        self.peer_id = me
        self._connected = connected
        self.peerstore = FakePeerstore(known_addrs)
        self.streams: list = []

    def connection(self, peer):  # noqa: ANN001
        return object() if peer in self._connected else None

    async def new_stream(self, peer, protocols, *, timeout=None):  # noqa: ANN001
        self.streams.append(peer)
        raise OSError("fake host: no network")


@pytest.mark.anyio
async def test_selection_by_node_data_and_connected_check() -> None:
    me, web, unstaked, tw, far = pid(), pid(), pid(), pid(), pid()
    tracker = NodeTracker(NodeData(peer_id=str(me), is_staked=True, is_web_scraper=True))
    tracker.add_or_update(NodeData(peer_id=str(web), is_staked=True, is_web_scraper=True))
    tracker.add_or_update(NodeData(peer_id=str(unstaked), is_staked=False, is_web_scraper=True))
    tracker.add_or_update(NodeData(peer_id=str(tw), is_staked=True, is_twitter_scraper=True))
    tracker.refresh_from_boot(NodeData(peer_id=str(far), is_staked=True, is_web_scraper=True,
                                       multiaddrs=("/ip4/127.0.0.1/tcp/9",)))
    host = FakeHost(me, connected={web}, known_addrs={})
    directory = TrackerWorkerDirectory(host, tracker, protocol_id="/masa/worker_protocol/v0.8.4")
    assert set(directory.eligible_peers("web")) == {web, far}
    assert directory.eligible_peers("twitter") == [tw]
    assert directory.eligible_peers("discord") == []
    request = WorkRequest(work_type="web", request_id="r")
    # not connected and only a third party's addresses: never dialled
    response = await directory.send_work(far, request, connect_timeout=1, response_timeout=1)
    assert response.error == f"failed to find peer {far}: not connected" and host.streams == []
    # connected: the work is sent (the fake host fails the stream)
    response = await directory.send_work(web, request, connect_timeout=1, response_timeout=1)
    assert host.streams == [web] and response.error.startswith("error opening stream")


class StartRecorder:
    """The one HostLike word `protocols_updated` uses: what it would start."""

    def __init__(self) -> None:
        self.started: list[tuple] = []

    def start_soon(self, fn, *args) -> None:  # noqa: ANN001
        self.started.append((fn, args))


def test_a_push_is_announced_to_only_when_it_adds_the_oracle_protocol() -> None:
    me, peer = pid(), pid()
    host = StartRecorder()
    service = MembershipService(host, NodeTracker(NodeData(peer_id=str(me))),
                                lambda: NodeData(peer_id=str(me)))
    conn = type("Conn", (), {"remote_peer": peer, "is_closed": False})()
    oracle = service.oracle_protocol
    service.protocols_updated(conn, frozenset({"/other/1.0.0"}), frozenset())
    service.protocols_updated(conn, frozenset(), frozenset({oracle}))
    service.protocols_updated(conn, frozenset({oracle + "-other"}), frozenset())  # another env
    assert host.started == []
    service.protocols_updated(conn, frozenset({oracle, service.sync_protocol}), frozenset())
    assert host.started == [(service.announce, (peer,))]


# --- on a real host ----------------------------------------------------------------------------------


async def _no_handler(stream) -> None:  # noqa: ANN001
    pass


@pytest.mark.anyio
async def test_a_peer_that_serves_the_oracle_protocol_later_gets_our_announce() -> None:
    """A masa node listens before it registers its handlers, so our first identify of it may
    list no oracle protocol; its identify push then does, and we announce to it."""
    with anyio.fail_after(20):
        async with Host(PrivateKey.generate(KeyType.Ed25519)) as late:
            await late.listen()
            tracker = NodeTracker(NodeData(peer_id=str(late.peer_id), is_staked=True))
            service = MembershipService(late, tracker, lambda: tracker.get(late.peer_id))
            config = NodeConfig(peers=(late.p2p_addrs()[0],))
            async with OracleNode(PrivateKey.generate(KeyType.Ed25519), config,
                                  handlers={"web": handle_test}) as node:
                info = await node.host.identify(late.peer_id)
                assert node.membership.oracle_protocol not in info.protocols
                assert node.membership.stats["announced"] == 0
                service.register()
                assert await service.wait_for_entry(node.peer_id, 10)
                entry = tracker.get(node.peer_id)
                assert entry.is_staked and entry.is_web_scraper
                assert service.stats["accepted"] == 1 and node.membership.stats["announced"] == 1


@pytest.mark.anyio
async def test_handler_change_is_announced_again() -> None:
    with anyio.fail_after(20):
        async with OracleNode(PrivateKey.generate(KeyType.Ed25519), handlers={"test": handle_test}) as worker:
            config = NodeConfig(peers=(worker.host.p2p_addrs()[0],))
            async with OracleNode(PrivateKey.generate(KeyType.Ed25519), config) as requester:
                entry = requester.tracker.get(worker.peer_id)
                assert entry is not None and not entry.is_web_scraper
                assert entry.records == {"workTypes": ["test"]}
                worker.add_handler("web", handle_test)
                await requester.membership.wait_for(
                    lambda: requester.tracker.get(worker.peer_id).is_web_scraper, 10)
                assert requester.tracker.get(worker.peer_id).is_web_scraper
                response = await requester.submit("web", '{"url": "http://x.invalid/"}')
                assert response.worker_peer_id == str(worker.peer_id)
                assert response.data == '{"url":"http://x.invalid/","depth":1}'  # default depth added


@pytest.mark.anyio
async def test_connecting_to_our_own_peer_id_is_refused() -> None:
    key = PrivateKey.generate(KeyType.Ed25519)
    with anyio.fail_after(20):
        async with OracleNode(key) as node:
            with pytest.raises(SelfConnectError, match="own peer ID"):
                await node.connect(node.host.p2p_addrs()[0])
            bare = str(node.host.listen_addrs()[0])  # no /p2p part: found out after the handshake
            with pytest.raises(SelfConnectError):
                await node.connect(bare)
            assert node.host.connected_peers() == []


def test_cli_refuses_own_peer_id(tmp_path: Path) -> None:
    key = PrivateKey.generate(KeyType.Secp256k1)
    key_file = tmp_path / "key"
    save_private_key_file(key_file, key, hex_text=True)
    me = PeerId.from_public_key(key.public_key)
    proc = subprocess.run([sys.executable, "-m", "oracle", "node", "--key-file", str(key_file),
                           "--bootnode", f"/ip4/127.0.0.1/tcp/4001/p2p/{me}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    error = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
    assert "own peer ID" in error and "same key file" in error and "Traceback" not in proc.stderr
