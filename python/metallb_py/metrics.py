"""What the controller's and the speaker's metrics have in common: a registry of their own (several can run
in one process, as the tests do), the /metrics server, the API request counts read at scrape time, and
MetalLB's two configuration gauges (both of its programs export them)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["MetricsServer", "RequestCollector"]


class RequestCollector(Collector):
    """API requests sent, by verb and resource, read from the client's RequestCounter at scrape time."""

    def __init__(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "metallb_py_k8s_client_requests",
            "Requests sent to the Kubernetes API server, by verb and resource.",
            labels=["verb", "resource"],
        )
        for (verb, resource), n in sorted(self._counts().items()):
            family.add_metric([verb, resource], n)
        yield family


class MetricsServer:
    """A registry and, once `serve` is called, an HTTP server for it on a daemon thread."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.config_loaded = Gauge(
            "metallb_k8s_client_config_loaded_bool",
            "1 when a valid configuration is in force, 0 otherwise.",
            registry=self.registry,
        )
        self.config_stale = Gauge(
            "metallb_k8s_client_config_stale_bool",
            "1 when the latest configuration was refused and an older one (or none) is in force.",
            registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def set_config(self, *, loaded: bool, stale: bool) -> None:
        self.config_loaded.set(1 if loaded else 0)
        self.config_stale.set(1 if stale else 0)

    def count_requests(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self.registry.register(RequestCollector(counts))

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Serves /metrics on `address:port`; returns the port (useful with port 0)."""
        self._server, self._thread = start_http_server(port, address, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
