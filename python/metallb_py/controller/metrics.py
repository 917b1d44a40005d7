"""Prometheus metrics of the controller, under MetalLB's names so existing dashboards and alerts keep working.

Each Controller has its own registry (several controllers can run in one process, as the tests do).
Allocator gauges are set by the worker thread after each change: the allocator is not thread-safe, so a
scrape never reads it directly.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from metallb_py._core import Allocator
from metallb_py.metrics import MetricsServer

__all__ = ["Metrics"]


class Metrics(MetricsServer):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.addresses_total = Gauge(
            "metallb_allocator_addresses_total",
            "Addresses in each pool (a /64 counts 2^64).",
            ["pool"],
            registry=r,
        )
        self.addresses_in_use = Gauge(
            "metallb_allocator_addresses_in_use_total",
            "Addresses of each pool held by at least one Service.",
            ["pool"],
            registry=r,
        )
        self.updates = Counter(
            "metallb_k8s_client_updates_total", "Object changes the controller has processed.", registry=r
        )
        self.update_errors = Counter(
            "metallb_k8s_client_update_errors_total",
            "Object changes whose processing failed and will be retried.",
            registry=r,
        )
        self.permanent_errors = Counter(
            "metallb_py_controller_permanent_errors_total",
            "Writes the API server refused for good (403, 422, 400): reported once as a Warning Event on the "
            "Service, not retried until it or the configuration changes.",
            registry=r,
        )
        self.pool_status_writes = Counter(
            "metallb_py_controller_pool_status_writes_total",
            "IPAddressPool status counters written (only those that changed).",
            registry=r,
        )
        self.config_reloads = Counter(
            "metallb_py_controller_config_reloads_total",
            "Configuration reloads (each change of a configuration object), whatever their outcome.",
            registry=r,
        )
        self.config_warnings = Gauge(
            "metallb_py_controller_config_warnings",
            "Warnings of the configuration in force: what MetalLB accepts but this package would not write "
            "that way (a CIDR with host bits, a reference to an object not there yet).",
            registry=r,
        )
        self.leader = Gauge(
            "metallb_py_controller_leader_bool", "1 while this replica holds the leader lease.", registry=r
        )
        self._pools: set[str] = set()

    def set_pools(self, allocator: Allocator, pools: Iterable[str]) -> None:
        """Refreshes the per-pool gauges (call from the thread that owns the allocator)."""
        names = set(pools)
        for gone in self._pools - names:
            self.addresses_total.remove(gone)
            self.addresses_in_use.remove(gone)
        for name in names:
            counters = allocator.counters(name)
            self.addresses_total.labels(name).set(counters["total"])
            self.addresses_in_use.labels(name).set(counters["in_use"])
        self._pools = names
