"""`python -m oracle node|work|demo` as subprocesses, plus the CLI's identity/handler/config logic in-process.

Subprocess output is read by a thread into a queue, so every wait has a timeout and no test sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from linequeue import stdout_lines

from p2p.identity import KeyType, PeerId, PrivateKey, save_private_key_file

from oracle import cli

REPO = Path(__file__).resolve().parents[2]

# The secp256k1 test key of the peer-ids spec (peer-ids.md, "Test vectors"); its peer ID confirmed against go-libp2p.
SECP256K1_PRIVATE_HEX = "0802122053dadf1d5a164d6b4acdb15e24aa4c5b1d3461bdbd42abedb0a4404d56ced8fb"
SECP256K1_PEER_ID = "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PRIVATE_KEY", "MASA_PRIV_KEY_FILE")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
        HOME=str(tmp_path / "home"),  # never touch the real ~/.masa
        MASA_PRIV_KEY_FILE=str(tmp_path / "node_key"),
    )
    env.update(extra)
    return env


class Node:
    """A `python -m oracle node` child whose stdout lines arrive in a queue."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.stderr_path = tmp_path / f"node-{os.urandom(3).hex()}.log"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "oracle", "--log-level", "INFO", "node", *args],
                cwd=REPO, env=child_env(tmp_path, **env), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err,
            )
        self.lines = stdout_lines(self.proc)

    def next_json(self, timeout: float = 30) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s; log:\n{self.log()}") from None
        assert line, f"node exited ({self.proc.poll()}) without output; log:\n{self.log()}"
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def nodes():
    started: list[Node] = []
    yield started
    for node in started:
        node.kill()


def run_oracle(tmp_path: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oracle", *args], cwd=REPO, env=child_env(tmp_path, **env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )


# ---- subprocesses -------------------------------------------------------------------------------


def test_node_serves_work_then_stops_cleanly_on_sigterm(tmp_path: Path, nodes: list[Node]) -> None:
    key_file = tmp_path / "masa_oracle_key"
    key_file.write_text(SECP256K1_PRIVATE_HEX)  # a masa node's key file works as is
    node = Node(tmp_path, "--key-file", str(key_file), "--worker", "test")
    nodes.append(node)
    info = node.next_json()
    assert info["peer_id"] == SECP256K1_PEER_ID
    assert info["addrs"] and all(a.endswith("/p2p/" + SECP256K1_PEER_ID) for a in info["addrs"])
    assert info["protocol"] == "/masa/worker_protocol/v0.8.4"

    done = run_oracle(tmp_path, "work", "--type", "test", "--data", "<hi> & bye", "--peer", info["addrs"][0],
                      "--timeout", "20")
    assert done.returncode == 0, done.stderr
    # Go's json.Marshal of WorkResponse{Data: string(data), WorkerPeerId: id}: HTML escapes, field order.
    assert done.stdout == '{"data":"\\u003chi\\u003e \\u0026 bye","workerPeerId":"%s"}\n' % SECP256K1_PEER_ID

    assert node.stop(signal.SIGTERM) == 0
    final = node.next_json()
    assert final["stopped"] is True
    assert final["metrics"]["handlers"]["test"]["calls"] == 1
    assert final["metrics"]["handlers"]["test"]["errors"] == 0


def test_node_with_config_file_plugin_handler_and_allowlist(tmp_path: Path, nodes: list[Node]) -> None:
    (tmp_path / "userhandlers.py").write_text(
        "def upper(data: bytes) -> str:\n    return data.decode().upper()\n"
    )
    client_key = PrivateKey.generate(KeyType.Secp256k1)
    client_file = tmp_path / "client_key"
    save_private_key_file(client_file, client_key, hex_text=True)
    client_id = str(PeerId.from_public_key(client_key.public_key))
    config = tmp_path / "node.json"
    config.write_text(json.dumps({"handler": {"upper": "userhandlers:upper"}, "allow": [client_id]}))
    node = Node(tmp_path, "--config", str(config))  # identity: $MASA_PRIV_KEY_FILE, created
    nodes.append(node)
    info = node.next_json()
    assert info["work_types"] == ["upper"]
    created = (tmp_path / "node_key").read_text()
    assert PeerId.from_public_key(PrivateKey.from_protobuf(bytes.fromhex(created)).public_key) == \
        PeerId.from_string(info["peer_id"])
    addr = info["addrs"][0]

    ok = run_oracle(tmp_path, "work", "--key-file", str(client_file), "--type", "upper", "--data", "abc",
                    "--peer", addr, "--timeout", "20")
    assert (ok.returncode, json.loads(ok.stdout)) == (0, {"data": "ABC", "workerPeerId": info["peer_id"]})

    missing = run_oracle(tmp_path, "work", "--key-file", str(client_file), "--type", "test", "--peer", addr,
                         "--timeout", "20")
    assert missing.returncode == 1  # the node announced `upper` only: nobody is eligible for `test`
    assert json.loads(missing.stdout) == {"error": "no eligible workers found"}

    stranger = run_oracle(tmp_path, "work", "--type", "upper", "--data", "abc", "--peer", addr, "--timeout", "20")
    assert stranger.returncode == 1
    error = json.loads(stranger.stdout)["error"]
    assert re.fullmatch(
        rf"All workers failed\. Errors: Worker {info['peer_id']}: work refused: peer 16Uiu2\w+ "
        r"is not allowed to submit work", error), error
    assert node.stop(signal.SIGINT) == 0


def test_work_without_workers_fails_with_go_text(tmp_path: Path) -> None:
    done = run_oracle(tmp_path, "work", "--type", "test", "--data", "x", "--timeout", "10")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"].startswith("no eligible workers found: no --peer given")


def test_bad_handler_spec_is_a_json_error(tmp_path: Path) -> None:
    done = run_oracle(tmp_path, "node", "--handler", "nonsense")
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"error": "--handler 'nonsense': expected TYPE=package.module:callable"}
    # an address no transport of the host dials (plain UDP), and one that is not a multiaddr
    done = run_oracle(tmp_path, "node", "--peer", "/ip4/127.0.0.1/udp/4001")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"].startswith(
        "--peer '/ip4/127.0.0.1/udp/4001': no transport (tcp, quic) can dial it")
    done = run_oracle(tmp_path, "node", "--listen", "/ip4/1.2.3/tcp/1")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"].startswith("--listen '/ip4/1.2.3/tcp/1': ")
    assert not (tmp_path / "node_key").exists()  # refused before any key file was created


def test_demo_runs_to_completion_with_a_failover(tmp_path: Path) -> None:
    done = run_oracle(tmp_path, "demo", "--items", "24", timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "killed w" in out and "with SIGKILL" in out
    assert re.search(r"after failover from w\d", out), out
    assert "bystander" in out and "not a worker" in out
    assert "24/24 100%" in out
    assert "demo finished: every item was served" in out
    assert ": None" not in out and "\\u003c" not in out  # human text: no `closed: None`, no Go escapes


# ---- in-process: identity, handlers, config -----------------------------------------------------


def test_identity_precedence_and_masa_key_file_format(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "masa_oracle_key"
    environ = {"MASA_PRIV_KEY_FILE": str(path), "HOME": str(tmp_path)}
    key, source = cli.resolve_identity(None, None, environ=environ)
    assert "new key file" in source
    text = path.read_bytes()
    assert re.fullmatch(rb"08021220[0-9a-f]{64}", text)  # Type=Secp256k1, 32-byte scalar, hex, no newline
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, source = cli.resolve_identity(None, None, environ=environ)
    assert again == key and "existing key file" in source

    from_env, source = cli.resolve_identity(None, None, environ={**environ, "PRIVATE_KEY": SECP256K1_PRIVATE_HEX})
    assert str(PeerId.from_public_key(from_env.public_key)) == SECP256K1_PEER_ID and source == "env PRIVATE_KEY"
    ephemeral, _ = cli.resolve_identity("ed25519", None, environ=environ)
    assert ephemeral.key_type == KeyType.Ed25519
    default_home = cli.default_key_path({"HOME": str(tmp_path)})
    assert default_home == tmp_path / ".masa" / "masa_oracle_key"
    with pytest.raises(cli.CliError, match="not hex"):
        cli.resolve_identity(None, None, environ={**environ, "PRIVATE_KEY": "zz"})


def test_build_handlers() -> None:
    assert list(cli.build_handlers([], [])) == ["test"]
    assert list(cli.build_handlers([], [], default_test=False)) == []
    assert sorted(cli.build_handlers(["test", "web"], [])) == ["test", "web"]
    plugged = cli.build_handlers([], ["echo=oracle.handlers:handle_test"])
    assert list(plugged) == ["echo"]
    with pytest.raises(cli.CliError, match="unknown work type 'twitter'"):
        cli.build_handlers(["twitter"], [])
    with pytest.raises(cli.CliError, match="cannot import"):
        cli.build_handlers([], ["x=no_such_module_anywhere:f"])


def test_config_file_merges_and_rejects_unknown_keys(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["node", "--peer", "/ip4/127.0.0.1/tcp/1", "--env", "cli"])
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"peer": ["/ip4/127.0.0.1/tcp/2"], "env": "file", "protocol-version": "v0.9.0",
                                  "max_concurrent_per_peer": 8}))
    cli.apply_config_file(args, str(config))
    assert args.peer == ["/ip4/127.0.0.1/tcp/2", "/ip4/127.0.0.1/tcp/1"]
    assert (args.env, args.protocol_version, args.max_concurrent_per_peer) == ("cli", "v0.9.0", 8)
    config.write_text(json.dumps({"lisen": ["x"]}))
    with pytest.raises(cli.CliError, match="unknown key 'lisen'"):
        cli.apply_config_file(args, str(config))
    config.write_text("[1, 2]")
    with pytest.raises(cli.CliError, match="expected a JSON object"):
        cli.apply_config_file(args, str(config))


def test_node_limits_option_reaches_the_host():
    from oracle.cli import CliError, _host_config
    from p2p.config import HostConfig

    assert _host_config(None).max_connections == HostConfig().max_connections
    assert _host_config('{"max_connections": 7}').max_connections == 7
    assert _host_config({"negotiation_timeout": 2}).negotiation_timeout == 2.0  # from --config
    with pytest.raises(CliError):
        _host_config('{"bogus": 1}')
    with pytest.raises(CliError):
        _host_config({"max_connections": "x"})


def test_node_work_limits_option(tmp_path: Path) -> None:
    from oracle.cli import CliError, _node_config, _work_limits
    from oracle.gating import WorkLimits

    assert _work_limits(None) == WorkLimits()
    assert _work_limits('{"max_queued_per_peer": 3}').max_queued_per_peer == 3
    assert _work_limits({"queue_timeout": 2}).queue_timeout == 2  # from --config
    path = tmp_path / "w.json"
    path.write_text('{"max_answer_bytes_total": 100000000}')
    assert _work_limits(f"@{path}").max_answer_bytes_total == 100_000_000
    for bad in ('{"bogus": 1}', '{"queue_timeout": -1}', "[1]", "{nope"):
        with pytest.raises(CliError, match="--work-limits"):
            _work_limits(bad)
    args = cli.build_parser().parse_args(["node", "--work-limits", '{"max_queued_total": 5}'])
    config = _node_config(args, work_limits=_work_limits(args.work_limits))
    assert config.work_limits.max_queued_total == 5


def test_work_dht_option_turns_the_requesters_dht_on() -> None:
    """`work --dht`: a masa node that is no worker itself lists its workers (nodeDataSync) but we
    are not connected to them; masa's own requester finds them through the DHT, and so does ours
    with --dht (by hand against real masa-oracle nodes: served by a worker the --peer only knew).
    Without it `work` stays as it was: only connected workers are tried."""
    from oracle.cli import _node_config, build_parser

    parser = build_parser()

    def config(*argv: str):
        args = parser.parse_args(list(argv))
        args.listen = getattr(args, "listen", None)  # `work` has none: cmd_work passes listen=()
        return _node_config(args, listen=())

    base = ["work", "--type", "web", "--peer", "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + SECP256K1_PEER_ID]
    assert config(*base, "--dht").dht is True
    assert config(*base).dht is False
    assert config("node").dht is True  # every masa node runs it


def test_gossip_third_party_option_reaches_the_discovery_service(tmp_path: Path, capsys) -> None:
    """`node --gossip-third-party` (or `gossip_third_party` in --config) becomes NodeConfig's field
    and the started node's MasaDiscovery.accept_third_party; off by default; refused without DHT."""
    import anyio

    from oracle.cli import CliError, _node_config, build_parser
    from oracle.node import NodeConfig, OracleNode

    parser = build_parser()
    local = ["--listen", "/ip4/127.0.0.1/tcp/0"]

    def config(*argv: str) -> NodeConfig:
        return _node_config(parser.parse_args(["node", *local, *argv]))

    with pytest.raises(SystemExit):
        parser.parse_args(["node", "--help"])
    assert "--gossip-third-party" in capsys.readouterr().out
    assert config().gossip_third_party is False
    assert config("--no-gossip-third-party").gossip_third_party is False
    on = config("--gossip-third-party")
    assert on.gossip_third_party is True and on.dht is True
    with pytest.raises(CliError, match="needs the DHT"):
        config("--gossip-third-party", "--no-dht")
    args = parser.parse_args(["node", *local])
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"gossip-third-party": True}))
    cli.apply_config_file(args, str(path))
    assert _node_config(args).gossip_third_party is True
    args = parser.parse_args(["node", *local])
    path.write_text(json.dumps({"gossip_third_party": "yes"}))
    cli.apply_config_file(args, str(path))
    with pytest.raises(CliError, match="true or false"):
        _node_config(args)
    with pytest.raises(ValueError, match="needs dht"):
        NodeConfig(gossip_third_party=True)

    async def started(cfg: NodeConfig) -> bool:
        with anyio.fail_after(20):
            async with OracleNode(config=cfg) as node:
                assert node.discovery is not None
                return node.discovery.accept_third_party

    assert anyio.run(started, on) is True
    assert anyio.run(started, config()) is False
