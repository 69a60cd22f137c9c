"""`--metrics`: Prometheus metrics scraped from a worker while a work request is in flight, and after.
Off by default: a host without metrics does not even import prometheus_client, and its streams are
plain NetStreams (nothing is counted per stream, frame or byte)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import anyio
import pytest

from p2p.config import HostConfig
from p2p.host import Host, NetStream
from p2p.metrics import Metrics, serve_metrics

from oracle.node import NodeConfig, OracleNode

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
WORKER = "/masa/worker_protocol/v0.8.4"


def scrape(url: str) -> dict[str, float]:
    """`name{labels}` -> value, from the text exposition format."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


async def ascrape(url: str) -> dict[str, float]:
    return await anyio.to_thread.run_sync(scrape, url)


def value(values: dict[str, float], name: str, **labels: str) -> float:
    """The sample `name` whose labels include `labels` (0 when absent)."""
    for key, v in values.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(found.get(k) == w for k, w in labels.items()):
            return v
    return 0.0


async def test_worker_metrics_scraped_during_and_after_an_exchange() -> None:
    release = anyio.Event()
    started = anyio.Event()

    async def slow(data: bytes) -> str:
        started.set()
        await release.wait()
        return data.decode().upper()

    def boom(data: bytes) -> str:
        raise ValueError("no")

    metrics = Metrics()
    server = serve_metrics(metrics, "127.0.0.1:0")
    try:
        with anyio.fail_after(60):
            async with OracleNode(handlers={"slow": slow, "boom": boom}, metrics=metrics) as worker:
                url = server.url
                before = await ascrape(url)
                assert value(before, "p2p_connections_open") == 0
                config = NodeConfig(listen=(), peers=(worker.host.p2p_addrs()[0],))
                async with OracleNode(config=config) as requester, anyio.create_task_group() as tg:
                    results = []

                    async def submit() -> None:
                        results.append(await requester.submit("slow", b"abc"))

                    tg.start_soon(submit)
                    await started.wait()
                    during = await ascrape(url)  # the request is in the worker's handler now
                    assert value(during, "p2p_connections_open", direction="inbound", transport="tcp") == 1
                    assert value(during, "p2p_streams_open", direction="inbound", protocol=WORKER) == 1
                    assert value(during, "p2p_tcp_bytes_total", direction="in") > 0
                    assert value(during, "p2p_tcp_bytes_total", direction="out") > 0
                    assert value(during, "oracle_work_requests_total", work_type="slow") == 0
                    release.set()
                assert results[0].data == "ABC"
                async with OracleNode(config=config) as requester:
                    assert (await requester.submit("boom", b"x")).error
                after = await ascrape(url)
    finally:
        server.close()
    assert value(after, "p2p_streams_open", direction="inbound", protocol=WORKER) == 0
    assert value(after, "p2p_streams_total", direction="inbound", protocol=WORKER) == 2
    assert value(after, "oracle_work_requests_total", role="executed", work_type="slow", outcome="ok") == 1
    assert value(after, "oracle_work_latency_seconds_count", role="executed", work_type="slow") == 1
    assert value(after, "oracle_work_latency_seconds_sum", role="executed", work_type="slow") > 0
    assert value(after, "oracle_work_errors_total", role="executed", work_type="boom") == 1
    assert value(after, "oracle_work_errors_total", work_type="slow") == 0
    assert value(after, "p2p_tcp_bytes_total", direction="in") >= value(during, "p2p_tcp_bytes_total",
                                                                        direction="in")


async def test_handshake_failures_by_stage_and_limits_hit() -> None:
    metrics = Metrics()
    server = serve_metrics(metrics, "127.0.0.1:0")
    try:
        with anyio.fail_after(30):
            async with Host(config=HostConfig(max_connections_per_ip=1), metrics=metrics) as host:
                port = int(str((await host.listen())[0]).split("/")[4])
                with socket.create_connection(("127.0.0.1", port)) as junk:
                    junk.sendall(b"\x13not multistream at all\n")
                    await anyio.to_thread.run_sync(junk.recv, 100)  # we are answered with a close
                async with Host() as client:
                    await client.connect(host.p2p_addrs()[0])  # the one slot for 127.0.0.1
                    with socket.create_connection(("127.0.0.1", port)) as extra:
                        assert await anyio.to_thread.run_sync(extra.recv, 100) == b""  # refused
                    values = await ascrape(server.url)
    finally:
        server.close()
    assert value(values, "p2p_handshake_failures_total", direction="inbound",
                 stage="security negotiation") == 1
    assert value(values, "p2p_limits_hit_total", limit="inbound connection admission") == 1


async def test_without_metrics_nothing_is_counted() -> None:
    async with Host() as server, Host() as client:
        assert server.metrics is None
        server.set_stream_handler("/echo/1.0.0", lambda s: s.aclose())
        await server.listen()
        peer = await client.connect(server.p2p_addrs()[0])
        stream = await client.new_stream(peer, ["/echo/1.0.0"])
        assert type(stream) is NetStream  # not the metered kind
        await stream.aclose()


def test_metrics_off_does_not_import_prometheus_client() -> None:
    code = ("import sys, anyio\n"
            "from oracle.node import OracleNode\n"
            "async def main():\n"
            "    async with OracleNode() as n:\n"
            "        pass\n"
            "anyio.run(main)\n"
            "assert 'prometheus_client' not in sys.modules, 'imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_cli_metrics_option(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(tmp_path))
    for argv in (["-m", "p2p", "serve", "--metrics", "127.0.0.1:0"],
                 ["-m", "oracle", "node", "--key-type", "ed25519", "--metrics", "127.0.0.1:0"]):
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            line = json.loads(proc.stdout.readline())
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", line["metrics"])
            assert "p2p_connections_open" in urllib.request.urlopen(line["metrics"], timeout=10).read().decode()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        assert proc.returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for argv in (["-m", "p2p", "serve"], ["-m", "oracle", "node", "--key-type", "ed25519"]):
            done = subprocess.run([sys.executable, *argv, "--metrics", f"127.0.0.1:{port}"], cwd=REPO,
                                  env=env, capture_output=True, text=True, timeout=60)
            assert (done.returncode, done.stdout) == (1, json.dumps(
                {"error": f"--metrics 127.0.0.1:{port}: cannot serve metrics there: address already in use"}) + "\n")
            bad = subprocess.run([sys.executable, *argv, "--metrics", "nine"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=60)
            assert bad.returncode == 1 and "'nine' is not HOST:PORT" in bad.stdout


async def test_quic_connections_and_handshake_failures_are_counted() -> None:
    from p2p.errors import PeerIdMismatch
    from p2p.transport.quic import QuicTransport
    from p2p.transport.tcp import TcpTransport

    transports = (TcpTransport, QuicTransport)
    server_metrics, client_metrics = Metrics(), Metrics()
    server_http = serve_metrics(server_metrics, "127.0.0.1:0")
    client_http = serve_metrics(client_metrics, "127.0.0.1:0")
    try:
        with anyio.fail_after(30):
            async with Host(transports=transports, metrics=server_metrics) as server, \
                    Host(transports=transports, metrics=client_metrics) as client:
                await server.listen("/ip4/127.0.0.1/udp/0/quic-v1")
                addr = server.p2p_addrs()[0]
                wrong = addr.replace(str(server.peer_id), "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY")
                with pytest.raises(PeerIdMismatch):
                    await client.connect(wrong)
                peer = await client.connect(addr)
                before = await ascrape(client_http.url)
                stream = await client.new_stream(peer, ["/ipfs/ping/1.0.0"])
                await stream.send(bytes(32))
                assert await stream.receive_exactly(32) == bytes(32)
                await stream.aclose()
                served = await ascrape(server_http.url)
                dialled = await ascrape(client_http.url)
    finally:
        server_http.close()
        client_http.close()
    assert value(served, "p2p_connections_open", direction="inbound", transport="quic") == 1
    assert value(dialled, "p2p_connections_open", direction="outbound", transport="quic") == 1
    assert value(dialled, "p2p_handshake_failures_total", direction="outbound", stage="quic handshake") == 1
    # UDP bytes both ways on both sides (a handshake alone is over 1200 bytes each way), and the
    # ping's 64 bytes each way after the first scrape.
    for scraped in (served, dialled):
        assert value(scraped, "p2p_quic_bytes_total", direction="in") >= 1200
        assert value(scraped, "p2p_quic_bytes_total", direction="out") >= 1200
    for direction in ("in", "out"):
        assert value(dialled, "p2p_quic_bytes_total", direction=direction) >= \
            value(before, "p2p_quic_bytes_total", direction=direction) + 32
