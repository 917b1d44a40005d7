"""Prometheus metrics of the speaker, under MetalLB's names where MetalLB has one.

- metallb_speaker_announced{ip,node,protocol,service}: 1 for each address this node announces, per Service.
- metallb_layer2_requests_received / responses_sent / gratuitous_sent {ip}: the responder's counters, read at
  scrape time (the Rust thread keeps them).
- metallb_py_speaker_members_alive, metallb_py_speaker_isolated_bool: the gossip's view.
- metallb_k8s_client_config_loaded_bool, metallb_k8s_client_config_stale_bool: a configuration is in force;
  the last one seen was refused (the one in force, if any, is older), as MetalLB's speaker exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from metallb_py.metrics import MetricsServer

__all__ = ["SpeakerMetrics"]

_LAYER2 = (
    ("requests_received", "ARP requests and Neighbor Solicitations received for the address."),
    ("responses_sent", "ARP replies and Neighbor Advertisements sent for the address."),
    ("gratuitous_sent", "Gratuitous ARP and unsolicited Neighbor Advertisements sent for the address."),
)


class _Layer2Collector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        per_ip = dict(self._stats().get("ips") or {})
        for name, help_text in _LAYER2:
            family = CounterMetricFamily(f"metallb_layer2_{name}", help_text, labels=["ip"])
            for ip, counters in sorted(per_ip.items()):
                family.add_metric([str(ip)], int(counters.get(name, 0)))
            yield family


class SpeakerMetrics(MetricsServer):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.announced = Gauge(
            "metallb_speaker_announced",
            "1 for each address this node announces, per Service.",
            ["ip", "node", "protocol", "service"],
            registry=r,
        )
        self.members_alive = Gauge(
            "metallb_py_speaker_members_alive", "Speakers this one counts alive, itself included.", registry=r
        )
        self.isolated = Gauge(
            "metallb_py_speaker_isolated_bool",
            "1 while this speaker hears none of its peers (it announces nothing then).",
            registry=r,
        )
        self.config_refusals = Counter(
            "metallb_py_speaker_config_refusals",
            "Configurations seen and refused (bad, or none at all).",
            registry=r,
        )
        self._announced: set[tuple[str, str, str, str]] = set()

    def count_layer2(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self.registry.register(_Layer2Collector(stats))

    def set_announced(self, node: str, announced: Mapping[str, Iterable[str]]) -> None:
        """`announced`: address -> the Services announced with it."""
        now = {(ip, node, "layer2", svc) for ip, services in announced.items() for svc in services}
        for labels in self._announced - now:
            self.announced.remove(*labels)
        for labels in now - self._announced:
            self.announced.labels(*labels).set(1)
        self._announced = now
