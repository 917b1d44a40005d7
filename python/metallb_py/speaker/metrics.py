"""Prometheus metrics of the speaker, under MetalLB's names where MetalLB has one.

- metallb_speaker_announced{ip,node,protocol,service}: 1 for each address this node announces, per Service.
- metallb_layer2_requests_received / responses_sent / gratuitous_sent {ip}: the responder's counters, read at
  scrape time (the Rust thread keeps them).
- metallb_bgp_session_up, metallb_bgp_updates_total, metallb_bgp_announced_prefixes_total,
  metallb_bgp_pending_prefixes_total and the message counters of MetalLB's FRR mode (metallb_bgp_opens_sent,
  ..._received, notifications, keepalives, route refresh, updates received, totals) {peer="address:port"}: the
  BGP speaker's sessions, read at scrape time. metallb_py_bgp_connect_failures_total and
  metallb_py_bgp_notifications_received_total count a peer refusing us.
- metallb_bfd_session_up, metallb_bfd_control_packet_input / _output, metallb_bfd_echo_packet_input / _output
  (always 0: no echo mode), metallb_bfd_session_up_events / _down_events {peer="address",vrf="default"}: the
  BFD sessions of the BGP peers that have a bfdProfile, under the names of MetalLB's FRR mode (its
  zebra_notifications has no counterpart here).
- metallb_py_speaker_members_alive, metallb_py_speaker_isolated_bool: the gossip's view.
- metallb_py_speaker_gossip_<counter>_total: each counter of the gossip member (Membership.stats(), read at
  scrape time): datagrams and bytes sent and received, and those dropped as hostile or broken (a wrong key,
  replayed, malformed, this member's own...), under the member's own names.
- metallb_py_speaker_address_conflicts_total{ip,interface}: another host seen claiming an address this node
  announces (conflicts.py).
- metallb_py_speaker_layer2_interface{interface}: 1 for each interface the responder serves now (it follows
  the node's links: an interface created later appears, one deleted disappears).
- metallb_k8s_client_config_loaded_bool, metallb_k8s_client_config_stale_bool: a configuration is in force;
  the last one seen was refused (the one in force, if any, is older), as MetalLB's speaker exports them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, UnknownMetricFamily
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


class _InterfacesCollector(Collector):
    def __init__(self, interfaces: Callable[[], Iterable[str]]) -> None:
        self._interfaces = interfaces

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "metallb_py_speaker_layer2_interface",
            "1 for each interface the layer 2 responder serves now.",
            labels=["interface"],
        )
        for name in sorted(self._interfaces()):
            family.add_metric([name], 1)
        yield family


# (metric name, counter key of BgpPeerStatus.counters, help); MetalLB's names, theirs are counters too.
_BGP_COUNTERS = (
    ("metallb_bgp_updates_total", "updates_sent", "Number of BGP UPDATE messages sent."),
    ("metallb_bgp_updates_total_received", "updates_received", "Number of BGP UPDATE messages received."),
    ("metallb_bgp_opens_sent", "opens_sent", "Number of BGP OPEN messages sent."),
    ("metallb_bgp_opens_received", "opens_received", "Number of BGP OPEN messages received."),
    ("metallb_bgp_notifications_sent", "notifications_sent", "Number of BGP NOTIFICATION messages sent."),
    ("metallb_bgp_keepalives_sent", "keepalives_sent", "Number of BGP KEEPALIVE messages sent."),
    ("metallb_bgp_keepalives_received", "keepalives_received", "Number of BGP KEEPALIVE messages received."),
    ("metallb_bgp_route_refresh_sent", "route_refresh_sent", "Number of BGP ROUTE-REFRESH messages sent."),
    (
        "metallb_py_bgp_notifications_received_total",
        "notifications_received",
        "Number of BGP NOTIFICATION messages received (the peer refused or ended the session).",
    ),
    (
        "metallb_py_bgp_connect_failures_total",
        "connect_failures",
        "TCP connections to the peer that failed or timed out (an MD5 mismatch looks like a time-out).",
    ),
)
_BGP_TOTALS = (
    ("metallb_bgp_total_sent", "sent", "Number of total BGP messages sent."),
    ("metallb_bgp_total_received", "received", "Number of total BGP messages received."),
)


_BFD_COUNTERS = (
    ("metallb_bfd_control_packet_input", "control_received", "Number of received BFD control packets"),
    ("metallb_bfd_control_packet_output", "control_sent", "Number of sent BFD control packets"),
    ("metallb_bfd_echo_packet_input", "echo_received", "Number of received BFD echo packets"),
    ("metallb_bfd_echo_packet_output", "echo_sent", "Number of sent BFD echo packets"),
    ("metallb_bfd_session_up_events", "up_events", "Number of BFD session up events"),
    ("metallb_bfd_session_down_events", "down_events", "Number of BFD session down events"),
)
_BFD_LABELS = ["peer", "vrf"]
# MetalLB's FRR mode labels BFD sessions with FRR's VRF name; sessions here are in the default one.
_DEFAULT_VRF = "default"


def _counter(
    name: str, help_text: str, labels: list[str] | None = None
) -> CounterMetricFamily | UnknownMetricFamily:
    """A counter under MetalLB's exact name: prometheus_client appends `_total` to a counter's samples, so a
    MetalLB counter whose name lacks it (metallb_bgp_opens_sent) is exposed untyped, keeping its name."""
    labels = labels or ["peer"]
    if name.endswith("_total"):
        return CounterMetricFamily(name, help_text, labels=labels)
    return UnknownMetricFamily(name, help_text, labels=labels)


class _BgpCollector(Collector):
    def __init__(self, peers: Callable[[], Iterable[Any]]) -> None:
        self._peers = peers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | UnknownMetricFamily]:
        peers = [(f"{p.address}:{p.port}", p) for p in self._peers()]
        up = GaugeMetricFamily(
            "metallb_bgp_session_up", "BGP session state (1 is up, 0 is down).", labels=["peer"]
        )
        held = GaugeMetricFamily(
            "metallb_bgp_announced_prefixes_total",
            "Number of prefixes currently being advertised on the BGP session.",
            labels=["peer"],
        )
        pending = GaugeMetricFamily(
            "metallb_bgp_pending_prefixes_total",
            "Number of prefixes that should be advertised on the BGP session but are not yet.",
            labels=["peer"],
        )
        for label, p in peers:
            up.add_metric([label], 1 if p.state == "established" else 0)
            held.add_metric([label], p.prefixes_advertised)
            pending.add_metric([label], p.prefixes_pending)
        yield from (up, held, pending)
        for name, key, help_text in _BGP_COUNTERS:
            family = _counter(name, help_text)
            for label, p in peers:
                family.add_metric([label], int(p.counters[key]))
            yield family
        for name, direction, help_text in _BGP_TOTALS:
            family = _counter(name, help_text)
            for label, p in peers:
                c = p.counters
                kinds = ("opens", "updates", "keepalives", "notifications", "route_refresh")
                family.add_metric([label], sum(int(c[f"{k}_{direction}"]) for k in kinds))
            yield family
        sessions = [(str(p.address), p.bfd) for _, p in peers if p.bfd is not None]
        bfd_up = GaugeMetricFamily(
            "metallb_bfd_session_up", "BFD session state (1 is up, 0 is down)", labels=_BFD_LABELS
        )
        for address, bfd in sessions:
            bfd_up.add_metric([address, _DEFAULT_VRF], 1 if bfd.state == "Up" else 0)
        yield bfd_up
        for name, key, help_text in _BFD_COUNTERS:
            family = _counter(name, help_text, _BFD_LABELS)
            for address, bfd in sessions:
                family.add_metric([address, _DEFAULT_VRF], int(getattr(bfd, key)))
            yield family


_GOSSIP_HELP = {
    "bad_tag": "Gossip datagrams dropped: their tag did not verify (another key, corrupted, forged).",
    "replayed": "Gossip datagrams dropped: replayed (already accepted, or too old).",
    "stale_life": "Gossip datagrams dropped: from an earlier life of their sender (an older generation).",
    "malformed": "Gossip datagrams dropped: too short, not gossip, or authentic but undecodable.",
    "self": "Gossip datagrams dropped: sent by this member itself, or by another with its name or address.",
    "protocol_errors": "Gossip datagrams dropped: authentic and decoded, but refused by the protocol.",
    "takeovers": "Fast takeovers: an announcer went silent, a witness confirmed, this node announced.",
    "takeovers_unconfirmed": "Announcers found silent that no other speaker missed: not taken over.",
    "releases": "Announcers held down by a takeover that were heard again.",
    "reclaims": (
        "Peers that missed this node heard it again: its addresses were announced again "
        "(once a second at most, less often while it keeps happening)."
    ),
}
_COUNTER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
log = logging.getLogger("metallb_py.speaker")


class _GossipCollector(Collector):
    """Every counter of Membership.stats() as metallb_py_speaker_gossip_<key>_total: counters the member
    adds later are exported without a change here."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            stats = dict(self._stats())
        except Exception as exc:  # not running (any more): nothing to export
            log.debug("gossip counters unavailable", extra={"error": str(exc)})
            return
        for key, value in sorted(stats.items()):
            name = key.removesuffix("_total")
            if not _COUNTER_NAME.match(name) or not isinstance(value, int):
                continue
            help_text = _GOSSIP_HELP.get(name, f"The gossip member's counter {key}.")
            family = CounterMetricFamily(f"metallb_py_speaker_gossip_{name}", help_text)
            family.add_metric([], value)
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
        self.address_conflicts = Counter(
            "metallb_py_speaker_address_conflicts",
            "Other hosts seen claiming an address this node announces (ARP or NDP from another MAC).",
            ["ip", "interface"],
            registry=r,
        )
        self._announced: set[tuple[str, str, str, str]] = set()

    def count_layer2(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self.registry.register(_Layer2Collector(stats))

    def count_interfaces(self, interfaces: Callable[[], Iterable[str]]) -> None:
        """`interfaces()`: the names the responder serves, read at each scrape."""
        self.registry.register(_InterfacesCollector(interfaces))

    def count_gossip(self, stats: Callable[[], Mapping[str, int]]) -> None:
        """`stats()`: the gossip member's counters (Membership.stats), read at each scrape."""
        self.registry.register(_GossipCollector(stats))

    def count_bgp(self, peers: Callable[[], Iterable[Any]]) -> None:
        """`peers()`: the BgpSpeaker's BgpPeerStatus list, read at each scrape."""
        self.registry.register(_BgpCollector(peers))

    def set_announced(
        self, node: str, announced: Mapping[str, Iterable[str]], protocol: str = "layer2"
    ) -> None:
        """`announced`: address -> the Services announced with it over `protocol`."""
        now = {(ip, node, protocol, svc) for ip, services in announced.items() for svc in services}
        mine = {labels for labels in self._announced if labels[2] == protocol}
        for labels in mine - now:
            self.announced.remove(*labels)
        for labels in now - mine:
            self.announced.labels(*labels).set(1)
        self._announced = (self._announced - mine) | now
