"""Prometheus metrics for a node (`--metrics HOST:PORT`), off unless asked for.

Off costs nothing: a host without metrics holds `None` and the few places that report (a connection
or stream opening, a handshake failing, a limit refusing, a work request ending) test that once;
nothing is counted per frame or per read. On, most values are read when Prometheus scrapes: open
connections from the host's table, TCP bytes from the kernel's TCP_INFO of each live socket
(tcpi_bytes_received / tcpi_bytes_acked, so Noise and yamux overhead included, and bytes out once
acknowledged). A socket's count is remembered at each scrape, so a connection that opens and closes
between two scrapes is not in the byte totals (it is in the handshake and stream counters).

Each `Metrics` has its own registry, so several hosts in one process (tests, the demo) do not clash.
"""

from __future__ import annotations

import socket
import struct
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CountedConnection", "Metrics", "parse_metrics_address", "serve_metrics"]

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked at offset 120, tcpi_bytes_received at 128.
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_INFO_LEN = 136
_BYTES_AT = 120

# Seconds: from sub-millisecond local work to the 45 s worker response timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def tcp_bytes(sock: socket.socket) -> tuple[int, int] | None:
    """(bytes received, bytes sent and acknowledged) of a TCP socket, from the kernel; None if unknown."""
    if _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LEN)
    except (OSError, ValueError):
        return None
    if len(info) < _BYTES_AT + 16:
        return None
    acked, received = struct.unpack_from("=QQ", info, _BYTES_AT)
    return received, acked


class _Socket:
    __slots__ = ("sock", "seen_in", "seen_out")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seen_in = 0
        self.seen_out = 0


class CountedConnection(Protocol):
    """What `Metrics.connection_counts` reads of a live connection (a Host's `Connection`)."""

    @property
    def direction(self) -> str: ...

    @property
    def transport(self) -> str: ...


class Metrics:
    """The counters, gauges and histograms of one node, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.streams_open = Gauge("p2p_streams_open", "Streams open now, by direction and protocol",
                                  ["direction", "protocol"], registry=r)
        self.streams_total = Counter("p2p_streams", "Streams opened (negotiated)",
                                     ["direction", "protocol"], registry=r)
        self.handshake_failures = Counter(
            "p2p_handshake_failures", "Connection upgrades that failed, by stage", ["direction", "stage"],
            registry=r)
        self.limits_hit = Counter("p2p_limits_hit", "Connections or streams refused by a limit",
                                  ["limit"], registry=r)
        self.work_requests = Counter(
            "oracle_work_requests", "Work requests ended, by role (served for a peer or sent to a "
            "worker), work type and outcome", ["role", "work_type", "outcome"], registry=r)
        self.work_latency = Histogram(
            "oracle_work_latency_seconds", "Work request latency by role and work type",
            ["role", "work_type"], buckets=LATENCY_BUCKETS, registry=r)
        self.work_errors = Counter("oracle_work_errors", "Work requests that ended in an error",
                                   ["role", "work_type"], registry=r)
        self._lock = threading.Lock()  # the scrape runs in the HTTP server's thread
        self._sockets: dict[int, _Socket] = {}
        self._closed_in = 0
        self._closed_out = 0
        self._quic_endpoints: dict[int, Any] = {}  # live QUIC sockets (bytes_in / bytes_out)
        self._quic_closed_in = 0
        self._quic_closed_out = 0
        self._connection_sources: list[Callable[[], Iterable[CountedConnection]]] = []
        self._scrape_counters: list[tuple[str, str, Callable[[], float]]] = []
        r.register(_ScrapeTimeCollector(weakref.ref(self)))

    # ---- reported by the host ----------------------------------------------------------------

    def watch_connections(self, source: Callable[[], Iterable[CountedConnection]]) -> None:
        """`source()` lists the live connections, counted by direction and transport."""
        self._connection_sources.append(source)

    def add_scrape_counter(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A counter kept elsewhere (e.g. the worker policy's refusals), read when scraped."""
        self._scrape_counters.append((name, documentation, read))

    def track_socket(self, sock: Any) -> None:
        """Count a connection's TCP bytes (read from the kernel when scraped; see the module doc)."""
        if sock is None or _TCP_INFO is None:
            return
        with self._lock:
            self._sockets[id(sock)] = _Socket(sock)

    def track_quic_endpoint(self, endpoint: Any) -> None:
        """Count a QUIC socket's UDP bytes (its own `bytes_in` / `bytes_out`, read when scraped)."""
        with self._lock:
            self._quic_endpoints[id(endpoint)] = endpoint

    def untrack_quic_endpoint(self, endpoint: Any) -> None:
        """A QUIC socket closed: its final counts join the totals (exact, unlike TCP's last scrape)."""
        with self._lock:
            if self._quic_endpoints.pop(id(endpoint), None) is not None:
                self._quic_closed_in += endpoint.bytes_in
                self._quic_closed_out += endpoint.bytes_out

    def quic_byte_totals(self) -> tuple[int, int]:
        """(in, out) UDP payload bytes of every QUIC socket this host opened, live or closed."""
        with self._lock:
            live = list(self._quic_endpoints.values())
            return (self._quic_closed_in + sum(e.bytes_in for e in live),
                    self._quic_closed_out + sum(e.bytes_out for e in live))

    def stream_opened(self, direction: str, protocol: str) -> None:
        self.streams_open.labels(direction, protocol).inc()
        self.streams_total.labels(direction, protocol).inc()

    def stream_closed(self, direction: str, protocol: str) -> None:
        self.streams_open.labels(direction, protocol).dec()

    def handshake_failed(self, direction: str, stage: str) -> None:
        self.handshake_failures.labels(direction, stage).inc()

    def limit_hit(self, limit: str) -> None:
        self.limits_hit.labels(limit).inc()

    # ---- reported by the oracle --------------------------------------------------------------

    def work_done(self, role: str, work_type: str, seconds: float, error: str | None) -> None:
        outcome = "error" if error else "ok"
        self.work_requests.labels(role, work_type, outcome).inc()
        self.work_latency.labels(role, work_type).observe(seconds)
        if error:
            self.work_errors.labels(role, work_type).inc()

    # ---- read at scrape time -----------------------------------------------------------------

    def byte_totals(self) -> tuple[int, int]:
        """(in, out) over every tracked socket: live ones as the kernel says now, closed ones as
        last seen (a socket that closed between two scrapes keeps its count from the earlier one)."""
        with self._lock:
            for key, entry in list(self._sockets.items()):
                counts = tcp_bytes(entry.sock)
                if counts is None:  # closed: what was seen is all we will know
                    del self._sockets[key]
                    self._closed_in += entry.seen_in
                    self._closed_out += entry.seen_out
                    continue
                entry.seen_in = max(entry.seen_in, counts[0])
                entry.seen_out = max(entry.seen_out, counts[1])
            total_in = self._closed_in + sum(e.seen_in for e in self._sockets.values())
            total_out = self._closed_out + sum(e.seen_out for e in self._sockets.values())
        return total_in, total_out

    def connection_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for source in self._connection_sources:
            for conn in list(source()):
                key = (conn.direction, conn.transport)
                counts[key] = counts.get(key, 0) + 1
        return counts


class _ScrapeTimeCollector(Collector):
    """Connections open and bytes in/out, computed when scraped (nothing counted on the hot path)."""

    def __init__(self, metrics: weakref.ref[Metrics]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        metrics = self._metrics()
        if metrics is None:
            return
        conns = GaugeMetricFamily("p2p_connections_open", "Connections open now, by direction and transport",
                                  labels=["direction", "transport"])
        for (direction, transport), n in sorted(metrics.connection_counts().items()):
            conns.add_metric([direction, transport], n)
        yield conns
        total_in, total_out = metrics.byte_totals()
        data = CounterMetricFamily("p2p_tcp_bytes", "TCP payload bytes (kernel TCP_INFO: received, and "
                                   "sent once acknowledged)", labels=["direction"])
        data.add_metric(["in"], total_in)
        data.add_metric(["out"], total_out)
        yield data
        quic_in, quic_out = metrics.quic_byte_totals()
        quic = CounterMetricFamily("p2p_quic_bytes", "QUIC bytes (UDP payloads of every QUIC socket "
                                   "of the host: packet headers, TLS and all streams included)",
                                   labels=["direction"])
        quic.add_metric(["in"], quic_in)
        quic.add_metric(["out"], quic_out)
        yield quic
        for name, documentation, read in metrics._scrape_counters:
            yield CounterMetricFamily(name, documentation, value=read())


def parse_metrics_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` (port 0: any free port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class MetricsServer:
    """The HTTP endpoint (prometheus_client's, in a thread of its own); `close()` stops it."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.server, self._thread = start_http_server(port, addr=host, registry=metrics.registry)
        bound_host, bound_port = self.server.server_address[:2]
        self.host, self.port = str(bound_host), int(bound_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(metrics: Metrics, address: str) -> MetricsServer:
    """Serve `metrics` on `address` (HOST:PORT); ValueError for a bad address, OSError if it cannot bind."""
    host, port = parse_metrics_address(address)
    return MetricsServer(metrics, host, port)
