"""Layer 2 mode: which addresses this node announces, and on which interfaces; the responder does the rest.

`todo` is the pure part: from the elections (election.py) to this node's to-do list. `Layer2` keeps what
is announced and applies each to-do list to the responder (the `L2Responder` protocol: a fake in tests).
A second protocol (BGP) is a sibling of this module with the same shape: `elect_and_apply` per round,
`withdraw_all` when the speaker is isolated or stops, `announced` for the status reporter and the metrics.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from metallb_py.config.model import Config
from metallb_py.speaker.election import (
    Election,
    EndpointSlice,
    L2Service,
    Link,
    ServiceSkip,
    announcers,
    interfaces_for,
)
from metallb_py.speaker.objects import (
    ParseCache,
    endpoint_slice_from_api,
    l2_service_from_api,
    node_from_api,
    pools_key,
)
from metallb_py.speaker.ports import ClusterView, L2Responder
from metallb_py.speaker.watchplan import Standby, keep, standby

__all__ = ["PROTOCOL", "Layer2", "Todo", "todo"]

log = logging.getLogger("metallb_py.speaker")

PROTOCOL = "layer2"


@dataclass(frozen=True)
class Todo:
    """This node's to-do list after an election round.

    `announce`: address -> (interfaces, Services announced with it), for every address this node owns now.
    `withdraw`: addresses announced until now that this node no longer owns.
    """

    announce: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    withdraw: frozenset[str] = frozenset()


def todo(
    elections: Mapping[str, Election],
    me: str,
    interfaces: Mapping[str, tuple[str, ...]],
    announced: Iterable[str],
) -> Todo:
    """The addresses `me` won (on the interfaces chosen per address; none chosen means none announced)
    and those it announced before but no longer wins."""
    mine = {
        ip: (interfaces.get(ip, ()), e.services)
        for ip, e in elections.items()
        if e.node == me and interfaces.get(ip)
    }
    withdraw = frozenset(str(ipaddress.ip_address(ip)) for ip in announced) - mine.keys()
    return Todo(mine, withdraw)


class Layer2:
    """Announces, through `responder`, the addresses `me` wins; `on_change(announced)` is called after a
    round that changed the announce set (address -> Services)."""

    def __init__(
        self,
        me: str,
        responder: L2Responder,
        links: Sequence[Link],
        *,
        on_change: Callable[[Mapping[str, tuple[str, ...]]], None],
        ignore_exclude_label: bool = False,
        lb_class: str | None = None,
        unready: Callable[[], Collection[str]] = frozenset,
        held: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        self.me = me
        # Peers that say they are not ready, and owners the gossip's watch holds down: what this node
        # announces and they win, it keeps (watchplan.keep). Read after what the responder answers, so a
        # takeover that fired since the round read the live members is kept, not undone.
        self._unready = unready
        self._held = held
        self.responder = responder
        self.links = list(links)
        self._on_change = on_change
        self._ignore_exclude_label = ignore_exclude_label
        self.lb_class = lb_class  # announce Services of this loadBalancerClass (None: those without one)
        self._lock = threading.Lock()  # the reporter reads what the worker writes
        self._announced: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        # Parsed once per resourceVersion (and configuration): a round re-reads only what changed.
        self._config_for_parse: Config = Config()
        self._services: ParseCache[L2Service] = ParseCache(
            lambda obj: l2_service_from_api(obj, self._config_for_parse, self.lb_class)
        )
        self._slices: ParseCache[EndpointSlice] = ParseCache(endpoint_slice_from_api)
        self._skipped: dict[str, ServiceSkip] = {}  # Service -> why it is not announced, as last logged
        self._standby = Standby()  # what the gossip's watch takes over, from the last round

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None:
        """Runs the elections (`live`: the gossip's live members, None without gossip) and announces what
        this node wins."""
        self._config_for_parse = config
        services = self._services.parse_all(view.service_objects(), pools_key(config))
        nodes = view.nodes()
        elections = announcers(
            services,
            nodes=[node_from_api(obj) for obj in nodes.values()],
            endpoint_slices=self._slices.parse_all(view.endpoint_slices()),
            l2_advertisements=config.l2_advertisements,
            live_members=live,
            ignore_exclude_label=self._ignore_exclude_label,
        )
        self._log_skipped(elections)
        current = self._current()
        kept = keep(elections, self.me, current, {*self._unready(), *self._held()})
        if kept:
            elections = {ip: replace(e, node=self.me) if ip in kept else e for ip, e in elections.items()}
            log.debug("kept until the winner is ready", extra={"ips": sorted(kept), "node": self.me})
        interfaces: dict[str, tuple[str, ...]] = {}
        me_obj = nodes.get(self.me)
        if me_obj is not None:
            me = node_from_api(me_obj)
            pools_by_ip: dict[str, set[str]] = {}
            for svc in services:
                for ip in svc.ips:
                    pools_by_ip.setdefault(ip, set()).add(svc.pool)
            usable = set(self.responder.interfaces)
            for ip, election in elections.items():
                # Where this node announces what it wins, and what it stands by for (next in order).
                if election.node == self.me or election.order[1:2] == (self.me,):
                    # Only the advertisements that apply to the IP's Services (serviceSelectors) say where.
                    choice = interfaces_for(me, pools_by_ip.get(ip, ()), election.advertisements, self.links)
                    interfaces[ip] = tuple(i for i in choice.interfaces if i in usable)
        with self._lock:
            self._standby = standby(elections, self.me, interfaces)
        self._apply(todo(elections, self.me, interfaces, current))

    def _log_skipped(self, elections: Mapping[str, Election]) -> None:
        """Says once, when it starts, why a Service with endpoints is not announced (every node says it: the
        reason is the Service's, not the node's). MetalLB warns of allow-shared-ip with serviceSelectors."""
        skipped = {key: why for e in elections.values() for key, why in e.skipped.items()}
        for key, why in sorted(skipped.items()):
            if self._skipped.get(key) != why:
                level = (
                    logging.WARNING if why is ServiceSkip.SHARED_IP_WITH_SERVICE_SELECTORS else logging.INFO
                )
                log.log(level, "not announced", extra={"service": key, "reason": str(why), "node": self.me})
        self._skipped = skipped

    def withdraw_all(self) -> None:
        with self._lock:
            self._standby = Standby()
        self._apply(todo({}, self.me, {}, self._current()))

    def standby(self) -> Standby:
        """What this node takes over from whom, and who watches it, as of the last round (nothing after
        withdraw_all)."""
        with self._lock:
            return self._standby

    def _current(self) -> list[str]:
        """What this node announced in its last round, and whatever else the responder answers for: a fast
        takeover announces without a round, and the next round keeps or withdraws it like any other."""
        with self._lock:
            announced = set(self._announced)
        announced.update(str(ipaddress.ip_address(ip)) for ip in self.responder.announced())
        return sorted(announced)

    def _apply(self, plan: Todo) -> None:
        with self._lock:
            current = dict(self._announced)
        for ip in sorted(plan.withdraw):
            self.responder.withdraw(ip)
            services = list(current[ip][1]) if ip in current else []
            log.info("withdrawn", extra={"ip": ip, "node": self.me, "services": services})
        for ip, (ifaces, keys) in sorted(plan.announce.items()):
            if current.get(ip, ((), ()))[0] != ifaces:
                self.responder.announce(ip, list(ifaces))
                log.info(
                    "announcing",
                    extra={"ip": ip, "node": self.me, "interfaces": list(ifaces), "services": list(keys)},
                )
        with self._lock:
            changed = self._announced != plan.announce
            self._announced = dict(plan.announce)
        if changed:
            self._on_change(self.announced())

    def announced(self) -> dict[str, tuple[str, ...]]:
        """Address -> the Services this node announces it for, now."""
        with self._lock:
            return {ip: services for ip, (_, services) in self._announced.items()}

    def wanted_statuses(self) -> dict[str, tuple[str, ...]]:
        """Service -> the interfaces it is announced on from this node (what its ServiceL2Status says)."""
        with self._lock:
            announced = list(self._announced.values())
        wanted: dict[str, set[str]] = {}
        for interfaces, services in announced:
            for service in services:
                wanted.setdefault(service, set()).update(interfaces)
        return {svc: tuple(sorted(ifaces)) for svc, ifaces in wanted.items()}
