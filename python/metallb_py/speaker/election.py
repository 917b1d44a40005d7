"""Which node announces each layer 2 address, and on which of its interfaces: pure decisions.

The announcer of an IP is chosen as MetalLB's layer 2 speaker chooses it (speaker/layer2_controller.go), so a
fleet that mixes MetalLB speakers and ours agrees on every owner:

1. candidates are the live members: gossip's, or when gossip is off the Nodes whose Ready condition is True
   (MetalLB with memberlist off takes every Node; a NotReady node is a poor announcer),
2. minus nodes without a Node object, with NetworkUnavailable=True, or labelled
   node.kubernetes.io/exclude-from-external-load-balancers (any value),
3. minus nodes that none of the IP's L2Advertisements selects (no nodeSelectors selects every node),
4. with externalTrafficPolicy Local, only nodes with a local endpoint that can serve (below);
5. sorted by preference score, highest first, then by sha256(node name + "#" + IP) as bytes, lowest first:
   the first one wins.

The IP's L2Advertisements are those of its Services' pool whose serviceSelectors match one of the Services'
labels (an advertisement without serviceSelectors applies to every Service of its pools: MetalLB's
l2AdsForService). A Service that no advertisement applies to is not announced; nor is one annotated
metallb.io/allow-shared-ip (or its deprecated metallb.universe.tf form, any value) when one of its
advertisements has serviceSelectors: MetalLB refuses that combination (`sharedIPWithServiceSelector`), so
that Services sharing an IP always see the same advertisements and agree on the announcer.

Preference scores (`preference_scores`, MetalLB's preferredNodeScores and preferredScoresFor): each of the
IP's advertisements gives each node its nodeSelectors select the sum of the weights of its
preferredNodeSelectors that match the node's labels; a node's score is the sum over the advertisements (an
advertisement counts once, however many Services on the IP it applies to). An advertisement never lifts a
node outside its own nodeSelectors. Without preferences every score is 0 and the order is the hash order.
Scores read only Node labels, so every speaker computes the same order from the same Nodes.

An endpoint can serve when its `ready` condition is true or unset, or its `serving` condition is true
(MetalLB's EndpointCanServe; `terminating` plays no part). A Service with no endpoint that can serve,
anywhere, is not announced at all, as in MetalLB: clients then get no ARP answer rather than a refused
connection.

Elected per IP, not per Service, so Services sharing an IP always share its announcer:
- The IP is announced for the Services on it that have an endpoint that can serve.
- If any of those is Local, only eligible nodes with a serving local endpoint for every Local one qualify
  (any other node would drop that Service's traffic); if no eligible node serves all of them, those serving
  at least one do (some answers beat none). MetalLB's sharing rules let Local Services share an IP only with
  the same pod selector, so the two sets differ only while endpoints change.
- The hashed address is each Service's first address when every Service on the IP has the same first one:
  MetalLB hashes a Service's first address for all of its addresses, so a dual-stack Service keeps both
  families on one node. When Services on the IP disagree, the IP itself is hashed (every speaker still
  computes the same owner).

The interface choice follows MetalLB's announcer: the named interfaces of the L2Advertisements that select
this node (all eligible ones if any of them names none), of which only eligible interfaces count: up, not
loopback, not NOARP, not a bridge port or bond slave (nor enslaved to anything else except a VRF, whose
members are ordinary layer 3 interfaces; MetalLB skips those too, we do not), and not excluded by name.
The names excluded are MetalLB's: the regular expressions `announcedInterfacesToExclude` of the YAML under
the key `excludel2.yaml` of the ConfigMap `metallb-excludel2` in the speaker's namespace (`ExcludeRule`,
`exclude_rule_from_configmap`; a name matches when one expression matches anywhere in it, as Go's
MatchString); without that ConfigMap, MetalLB's default list (`DEFAULT_EXCLUDED_INTERFACES`: the CNI's veths,
bridges and tunnels), so a node with a thousand pods does not offer a thousand veths. An excluded name is out
of the election too: an L2Advertisement naming it gets `NAME_EXCLUDED`, as MetalLB leaves it out of the node's
interfaces. `parse_ip_link` reads `ip -j -d link show`; `read_links` runs it, the one function here that does
I/O.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import ipaddress
import json
import re
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import yaml

from metallb_py._core import LabelSelector
from metallb_py.config.model import L2Advertisement

__all__ = [
    "DEFAULT_EXCLUDED_INTERFACES",
    "DEFAULT_EXCLUDE_RULE",
    "EXCLUDE_FROM_LB_LABEL",
    "EXCLUDE_L2_CONFIGMAP",
    "EXCLUDE_L2_KEY",
    "MAX_INTERFACES",
    "SHARED_IP_ANNOTATIONS",
    "Election",
    "Endpoint",
    "EndpointSlice",
    "ExcludeRule",
    "Exclusion",
    "InterfaceChoice",
    "InterfaceExclusion",
    "L2Service",
    "Link",
    "Node",
    "ServiceSkip",
    "advertisements_for",
    "announcer_for",
    "announcers",
    "can_serve",
    "elect",
    "election_key",
    "election_order",
    "eligible_interfaces",
    "exclude_rule_from_configmap",
    "interface_exclusion",
    "interfaces_for",
    "interfaces_to_serve",
    "mark_excluded",
    "parse_ip_link",
    "preference_scores",
    "read_links",
    "ready_nodes",
    "selects_node",
    "selects_service",
]

EXCLUDE_FROM_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
LOCAL = "Local"
# A Service annotated with either (any value) may share its IP (MetalLB's annotationAllowSharedIP).
SHARED_IP_ANNOTATIONS = ("metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip")


class Exclusion(StrEnum):
    """Why a node cannot announce an IP, checked in this order; the value reads well in a log or Event."""

    NOT_LIVE = "not a live member"
    NO_NODE = "no Node object"
    NETWORK_UNAVAILABLE = "NetworkUnavailable is True"
    EXCLUDED_BY_LABEL = f"labelled {EXCLUDE_FROM_LB_LABEL}"
    NOT_SELECTED = "no L2Advertisement of the pool selects it"
    NO_LOCAL_ENDPOINT = "no local endpoint that can serve (externalTrafficPolicy Local)"


class ServiceSkip(StrEnum):
    """Why a Service with an endpoint that can serve is not announced with its IP."""

    NO_ADVERTISEMENT = "no L2Advertisement of its pool selects its labels"
    SHARED_IP_WITH_SERVICE_SELECTORS = (
        "allow-shared-ip is incompatible with serviceSelectors on its L2Advertisements"
    )


@dataclass(frozen=True)
class Node:
    """What the election needs of a Node: its labels and two conditions."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    ready: bool = True
    network_unavailable: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One EndpointSlice endpoint: where it runs and its conditions (None when the API left one unset)."""

    node_name: str | None
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@dataclass(frozen=True)
class EndpointSlice:
    """An EndpointSlice reduced to its Service (`namespace/name`, from the kubernetes.io/service-name label)
    and endpoints."""

    service: str
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class L2Service:
    """A LoadBalancer Service as the election sees it: its key (`namespace/name`), the pool its addresses
    come from, its addresses in status order, its externalTrafficPolicy, its labels (for serviceSelectors)
    and whether it carries an allow-shared-ip annotation (`SHARED_IP_ANNOTATIONS`)."""

    key: str
    pool: str
    ips: tuple[str, ...]
    external_traffic_policy: str = "Cluster"
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    allow_shared_ip: bool = False

    @property
    def local(self) -> bool:
        return self.external_traffic_policy == LOCAL


@dataclass(frozen=True)
class Election:
    """The announcer of one IP, or None, with everything a log line or Event needs to say why.

    `order` is the candidates in election order (the winner first, then who takes over if it goes);
    `excluded` says why each other known node is out; `services` are the Services announced with the IP
    (those with an endpoint that can serve and an L2Advertisement that applies to them); `key` is the
    address that was hashed; `scores` the candidates' preference scores (absent: 0); `advertisements`
    the L2Advertisements that apply (their interfaces are where the winner announces); `skipped` why
    each other Service on the IP is not announced.
    """

    ip: str
    node: str | None
    reason: str
    order: tuple[str, ...] = ()
    excluded: Mapping[str, Exclusion] = field(default_factory=dict, hash=False)
    services: tuple[str, ...] = ()
    key: str = ""
    scores: Mapping[str, int] = field(default_factory=dict, hash=False)
    advertisements: tuple[L2Advertisement, ...] = ()
    skipped: Mapping[str, ServiceSkip] = field(default_factory=dict, hash=False)

    def announces(self, node: str) -> bool:
        return self.node == node


@functools.lru_cache(maxsize=65536)
def _canonical(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # Go's net.IP.String() and Python's str() agree on RFC 5952 form, which the hash must see. Cached: every
    # round asks again for every address.
    return str(ipaddress.ip_address(ip))


def _rank(node: str, key: str) -> bytes:
    return hashlib.sha256(f"{node}#{key}".encode()).digest()


class _HashOrders:
    """Per hashed address, every node seen so far sorted by sha256(node + "#" + address): a round filters that
    list down to its candidates instead of hashing each candidate again. A round is an election of every
    address, and one runs on every change of the membership: with 1,000 addresses and 100 nodes, hashing all
    of them took 150 ms of CPU on every speaker at each change. A node seen for the first time is inserted
    into each address's list with a binary search (a few hashes each). Bounded: at most MAX_KEYS addresses
    (the least recently elected go first), and everything starts over once more nodes were seen than
    NODE_SLACK times the largest candidate set asked about (nodes come and go in a long-lived cluster)."""

    MAX_KEYS = 8192
    NODE_SLACK = 4
    INSERT_AT_MOST = 4  # more new nodes than this for one address: sort its list again instead

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: list[str] = []  # every node seen, first seen first
        self._seen: set[str] = set()
        self._widest = 0
        # address -> (its nodes in hash order, how many of self._nodes that list holds)
        self._orders: OrderedDict[str, tuple[list[str], int]] = OrderedDict()

    def order(self, key: str, candidates: AbstractSet[str]) -> list[str]:
        with self._lock:
            self._widest = max(self._widest, len(candidates))
            new = [] if self._seen.issuperset(candidates) else [n for n in candidates if n not in self._seen]
            if new and len(self._nodes) + len(new) > self.NODE_SLACK * max(self._widest, 16):
                self._nodes, self._seen = [], set()
                self._orders.clear()
                new = list(candidates)
            self._seen.update(new)
            self._nodes.extend(new)
            entry = self._orders.pop(key, None)
            if entry is None:
                ranked = sorted(self._nodes, key=lambda node: _rank(node, key))
            else:
                ranked, held = entry
                if len(self._nodes) - held > self.INSERT_AT_MOST:
                    # Fewer hashes than inserting each.
                    ranked = sorted(self._nodes, key=lambda node: _rank(node, key))
                else:
                    for node in self._nodes[held:]:
                        bisect.insort(ranked, node, key=lambda other: _rank(other, key))
            self._orders[key] = (ranked, len(self._nodes))
            if len(self._orders) > self.MAX_KEYS:
                self._orders.popitem(last=False)
            return [node for node in ranked if node in candidates]


_HASH_ORDERS = _HashOrders()


def election_order(key: str, candidates: Iterable[str], scores: Mapping[str, int] | None = None) -> list[str]:
    """`candidates` (duplicates dropped) sorted by score, highest first (absent: 0), then by
    sha256(node + "#" + key) as bytes, lowest first: MetalLB's sortL2Candidates."""
    chosen = candidates if isinstance(candidates, set | frozenset) else set(candidates)
    order = _HASH_ORDERS.order(_canonical(key), chosen)
    if scores:
        order.sort(key=lambda node: -scores.get(node, 0))  # stable: hash order among equal scores
    return order


def elect(ip: str, candidates: Iterable[str], scores: Mapping[str, int] | None = None) -> str | None:
    """The node that announces `ip` among `candidates`, or None when there are none."""
    order = election_order(ip, candidates, scores)
    return order[0] if order else None


def selects_node(advertisement: L2Advertisement, labels: Mapping[str, str]) -> bool:
    """Whether `advertisement`'s nodeSelectors select a node with `labels` (none: every node)."""
    return _any(advertisement.node_selectors, labels)


def selects_service(advertisement: L2Advertisement, labels: Mapping[str, str]) -> bool:
    """Whether `advertisement` applies to a Service with `labels` (no serviceSelectors: every Service)."""
    return _any(advertisement.service_selectors, labels)


def _any(selectors: Iterable[LabelSelector], labels: Mapping[str, str]) -> bool:
    selectors = tuple(selectors)
    if not selectors:
        return True
    plain = dict(labels)
    return any(selector.matches(plain) for selector in selectors)


def advertisements_for(
    service: L2Service, l2_advertisements: Iterable[L2Advertisement]
) -> list[L2Advertisement]:
    """The L2Advertisements of `service`'s pool that apply to it (MetalLB's l2AdsForService), in order."""
    return [a for a in l2_advertisements if service.pool in a.pools and selects_service(a, service.labels)]


def preference_scores(nodes: Iterable[Node], advertisements: Iterable[L2Advertisement]) -> dict[str, int]:
    """Node -> preference score, for the nodes that score more than 0 (see the module docstring)."""
    nodes = list(nodes)
    scores: dict[str, int] = {}
    for advertisement in advertisements:
        if not advertisement.preferred_node_selectors:
            continue
        for node in nodes:
            if not selects_node(advertisement, node.labels):
                continue
            labels = dict(node.labels)
            weight = sum(
                p.weight for p in advertisement.preferred_node_selectors if p.preference.matches(labels)
            )
            if weight:
                scores[node.name] = scores.get(node.name, 0) + weight
    return scores


def election_key(ip: str, services: Iterable[L2Service]) -> str:
    """The address hashed for `ip`: the Services' common first address, else `ip` itself."""
    firsts = {_canonical(s.ips[0]) for s in services if s.ips}
    return firsts.pop() if len(firsts) == 1 else _canonical(ip)


def can_serve(endpoint: Endpoint) -> bool:
    """MetalLB's rule: ready (or ready unset), or serving."""
    return endpoint.ready is None or endpoint.ready or endpoint.serving is True


def ready_nodes(nodes: Iterable[Node]) -> set[str]:
    """The live members when gossip is off: Nodes whose Ready condition is True."""
    return {n.name for n in nodes if n.ready}


class _Round:
    """What every election of one round shares: the Nodes by name, the live members, and per set of
    advertisements the nodes' eligibility (computed once per round, not once per address: at 1,000
    addresses and 100 nodes that loop was most of a round's CPU)."""

    def __init__(self, nodes: Iterable[Node], live_members: Iterable[str] | None, ignore_exclude_label: bool):
        self.by_name = {n.name: n for n in nodes}
        self.live = ready_nodes(self.by_name.values()) if live_members is None else set(live_members)
        self.names = sorted(self.by_name.keys() | self.live)
        self.ignore_exclude_label = ignore_exclude_label
        self._eligible: dict[tuple[str, ...], tuple[dict[str, Exclusion], list[str], dict[str, int]]] = {}

    def eligible(
        self, advertisements: tuple[L2Advertisement, ...]
    ) -> tuple[dict[str, Exclusion], list[str], dict[str, int]]:
        """(excluded nodes and why, candidates in name order, candidates' preference scores above 0): shared
        between the elections of a round, never to be changed."""
        memo_key = tuple(a.name for a in advertisements)
        hit = self._eligible.get(memo_key)
        if hit is not None:
            return hit
        excluded: dict[str, Exclusion] = {}
        candidates: list[str] = []
        for name in self.names:
            node = self.by_name.get(name)
            if name not in self.live:
                excluded[name] = Exclusion.NOT_LIVE
            elif node is None:
                excluded[name] = Exclusion.NO_NODE
            elif node.network_unavailable:
                excluded[name] = Exclusion.NETWORK_UNAVAILABLE
            elif not self.ignore_exclude_label and EXCLUDE_FROM_LB_LABEL in node.labels:
                excluded[name] = Exclusion.EXCLUDED_BY_LABEL
            elif not any(selects_node(a, node.labels) for a in advertisements):
                excluded[name] = Exclusion.NOT_SELECTED
            else:
                candidates.append(name)
        scores = preference_scores((self.by_name[name] for name in candidates), advertisements)
        self._eligible[memo_key] = hit = (excluded, candidates, scores)
        return hit


def announcer_for(
    ip: str,
    services: Iterable[L2Service],
    *,
    nodes: Iterable[Node],
    endpoint_slices: Iterable[EndpointSlice],
    l2_advertisements: Iterable[L2Advertisement],
    live_members: Iterable[str] | None,
    ignore_exclude_label: bool = False,
    require_endpoints: bool = True,
) -> Election:
    """Elects the announcer of `ip` for the Services that have it (see the module docstring).

    `live_members` None means gossip is off: Nodes whose Ready condition is True stand in.
    `ignore_exclude_label` is MetalLB's --ignore-exclude-lb. `require_endpoints=False` announces Services
    without any endpoint too (MetalLB never does; a lab without pods may want it).
    """
    context = _Round(nodes, live_members, ignore_exclude_label)
    advertisements = list(l2_advertisements)
    return _elect(ip, services, context, endpoint_slices, advertisements, require_endpoints=require_endpoints)


def _elect(
    ip: str,
    services: Iterable[L2Service],
    context: _Round,
    endpoint_slices: Iterable[EndpointSlice],
    l2_advertisements: list[L2Advertisement],
    *,
    require_endpoints: bool,
) -> Election:
    ip = _canonical(ip)
    services = sorted(services, key=lambda s: s.key)
    key = election_key(ip, services)
    if not services:
        return Election(ip, None, "no Service has this address", key=key)

    serving: dict[str, set[str]] = {s.key: set() for s in services}
    has_endpoint: set[str] = set()
    for eps in endpoint_slices:
        if eps.service not in serving:
            continue
        for endpoint in eps.endpoints:
            if can_serve(endpoint):
                has_endpoint.add(eps.service)
                if endpoint.node_name is not None:
                    serving[eps.service].add(endpoint.node_name)
    announced = [s for s in services if s.key in has_endpoint or not require_endpoints]
    if not announced:
        return Election(ip, None, "no endpoint that can serve (ready or serving) for any Service", key=key)

    pools = {s.pool for s in announced}
    if not any(pools & set(a.pools) for a in l2_advertisements):
        reason = f"no L2Advertisement for pool {', '.join(sorted(pools))}"
        return Election(ip, None, reason, services=tuple(s.key for s in announced), key=key)
    # The advertisements that apply to each Service; each counts once for the IP (scores add up per
    # advertisement, not per Service).
    chosen: dict[str, L2Advertisement] = {}
    skipped: dict[str, ServiceSkip] = {}
    for service in announced:
        applying = advertisements_for(service, l2_advertisements)
        if not applying:
            skipped[service.key] = ServiceSkip.NO_ADVERTISEMENT
        elif service.allow_shared_ip and any(a.service_selectors for a in applying):
            skipped[service.key] = ServiceSkip.SHARED_IP_WITH_SERVICE_SELECTORS
        else:
            chosen |= {a.name: a for a in applying}
    announced = [s for s in announced if s.key not in skipped]
    if not announced:
        reason = "; ".join(f"{key}: {why}" for key, why in sorted(skipped.items()))
        return Election(ip, None, reason, key=key, skipped=skipped)
    advertisements = tuple(chosen[name] for name in sorted(chosen))
    names = tuple(s.key for s in announced)

    excluded, candidates, all_scores = context.eligible(advertisements)
    local_sets = [serving[s.key] & set(candidates) for s in announced if s.local]
    if local_sets:
        # Nodes that serve every Local Service; failing that, nodes that serve one of them.
        local = set.intersection(*local_sets) or set.union(*local_sets)
        more = {name: Exclusion.NO_LOCAL_ENDPOINT for name in candidates if name not in local}
        excluded = dict(sorted((excluded | more).items()))  # a new dict: the round's is shared
        candidates = [name for name in candidates if name in local]

    scores = {name: all_scores[name] for name in candidates if name in all_scores}
    order = tuple(election_order(key, candidates, scores))
    if not order:
        return Election(ip, None, "no eligible node", (), excluded, names, key, {}, advertisements, skipped)
    reason = f"{order[0]} wins among {len(order)} eligible node{'s' if len(order) > 1 else ''}"
    if order[0] in scores:
        reason += f" with preference score {scores[order[0]]}"
    return Election(ip, order[0], reason, order, excluded, names, key, scores, advertisements, skipped)


def announcers(
    services: Iterable[L2Service],
    *,
    nodes: Iterable[Node],
    endpoint_slices: Iterable[EndpointSlice],
    l2_advertisements: Iterable[L2Advertisement],
    live_members: Iterable[str] | None,
    ignore_exclude_label: bool = False,
    require_endpoints: bool = True,
) -> dict[str, Election]:
    """`announcer_for` for every address of `services`, grouped by address: {ip: Election}."""
    context = _Round(nodes, live_members, ignore_exclude_label)
    l2_advertisements = list(l2_advertisements)
    by_ip: dict[str, list[L2Service]] = {}
    for service in services:
        for ip in service.ips:
            by_ip.setdefault(_canonical(ip), []).append(service)
    # Each election reads only its Services' slices: linear in slices overall, not per address.
    slices: dict[str, list[EndpointSlice]] = {}
    for eps in endpoint_slices:
        slices.setdefault(eps.service, []).append(eps)
    return {
        ip: _elect(
            ip,
            on_ip,
            context,
            [eps for s in on_ip for eps in slices.get(s.key, ())],
            l2_advertisements,
            require_endpoints=require_endpoints,
        )
        for ip, on_ip in sorted(by_ip.items())
    }


# -- interfaces ----------------------------------------------------------------------------------------------


class InterfaceExclusion(StrEnum):
    """Why an interface of the node is not used for announcing."""

    MISSING = "no such interface"
    NAME_EXCLUDED = "excluded by name (ConfigMap metallb-excludel2)"
    LOOPBACK = "loopback"
    DOWN = "down"
    NOARP = "NOARP"
    BRIDGE_PORT = "bridge port"
    BOND_SLAVE = "bond slave"
    ENSLAVED = "enslaved to another interface"


# Members of these are still layer 3 interfaces of their own.
_KEEP_SLAVE_KINDS = frozenset({"vrf"})

# The responder's interface table holds this many (rust/metallb-l2/src/table.rs MAX_INTERFACES); it refuses
# a longer list, so the speaker chooses (`interfaces_to_serve`).
MAX_INTERFACES = 64

# MetalLB's ConfigMap of interface names to leave alone, its key, and the list its manifests and Helm chart
# ship (config/native/exclude-l2-config.yaml), used here when the ConfigMap does not exist.
EXCLUDE_L2_CONFIGMAP = "metallb-excludel2"
EXCLUDE_L2_KEY = "excludel2.yaml"
_EXCLUDE_L2_FIELD = "announcedInterfacesToExclude"
DEFAULT_EXCLUDED_INTERFACES = (
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
)


@dataclass(frozen=True)
class ExcludeRule:
    """Interface names never used for announcing: those any of `patterns` (regular expressions) matches
    anywhere in (re.search, as Go's MatchString). Build it with `ExcludeRule.of`, which checks the patterns;
    `source` says where they came from, for log lines."""

    patterns: tuple[str, ...] = DEFAULT_EXCLUDED_INTERFACES
    source: str = "MetalLB's default list"
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def of(cls, patterns: Iterable[str], source: str) -> ExcludeRule:
        """Raises ValueError naming the pattern that does not compile."""
        patterns = tuple(patterns)
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError(
                    f"{source}: interface pattern {pattern!r} is not a regular expression: {exc}"
                ) from None
        return cls(patterns, source, tuple(compiled))

    def excludes(self, name: str) -> bool:
        compiled = self._compiled or tuple(re.compile(p) for p in self.patterns)
        return any(p.search(name) for p in compiled)


DEFAULT_EXCLUDE_RULE = ExcludeRule.of(DEFAULT_EXCLUDED_INTERFACES, "MetalLB's default list")


def exclude_rule_from_configmap(configmap: Mapping[str, Any] | None) -> ExcludeRule:
    """The rule of the ConfigMap metallb-excludel2 as the API returns it (None: it does not exist, MetalLB's
    default list). A ConfigMap without the key, or a list that is empty, excludes nothing (as MetalLB with
    an empty file). Raises ValueError naming what is wrong (not YAML, not a list of strings, a pattern that
    does not compile)."""
    if configmap is None:
        return DEFAULT_EXCLUDE_RULE
    namespace = str((configmap.get("metadata") or {}).get("namespace", ""))
    source = f"ConfigMap {namespace + '/' if namespace else ''}{EXCLUDE_L2_CONFIGMAP} key {EXCLUDE_L2_KEY}"
    text = (configmap.get("data") or {}).get(EXCLUDE_L2_KEY)
    if text is None:
        return ExcludeRule.of((), source)
    try:
        document = yaml.safe_load(str(text))
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not YAML: {exc}") from None
    if document is None:
        return ExcludeRule.of((), source)
    if not isinstance(document, dict):
        raise ValueError(
            f"{source}: expected a mapping with {_EXCLUDE_L2_FIELD}, got {type(document).__name__}"
        )
    patterns = document.get(_EXCLUDE_L2_FIELD) or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"{source}: {_EXCLUDE_L2_FIELD} must be a list of strings (regular expressions)")
    return ExcludeRule.of(patterns, source)


@dataclass(frozen=True)
class Link:
    """An interface as `ip -j -d link show` describes it. `slave_kind` is the master's kind (bridge, bond,
    vrf...): known only with -d. `name_excluded`: an ExcludeRule matches its name (`mark_excluded`)."""

    name: str
    flags: frozenset[str] = frozenset({"UP", "BROADCAST", "MULTICAST", "LOWER_UP"})
    link_type: str = "ether"
    kind: str | None = None
    master: str | None = None
    slave_kind: str | None = None
    name_excluded: bool = False


def mark_excluded(links: Iterable[Link], rule: ExcludeRule) -> list[Link]:
    """`links` with `name_excluded` set as `rule` says."""
    return [replace(link, name_excluded=rule.excludes(link.name)) for link in links]


@dataclass(frozen=True)
class InterfaceChoice:
    """The interfaces to announce on, and why each other interface (or named one) is not used."""

    interfaces: tuple[str, ...]
    excluded: Mapping[str, InterfaceExclusion] = field(default_factory=dict, hash=False)


def interface_exclusion(link: Link) -> InterfaceExclusion | None:
    """Why `link` can never carry an announcement, or None if it can."""
    if link.name_excluded:
        return InterfaceExclusion.NAME_EXCLUDED  # first, as MetalLB: its state is not looked at
    if "LOOPBACK" in link.flags or link.link_type == "loopback":
        return InterfaceExclusion.LOOPBACK
    if "UP" not in link.flags:
        return InterfaceExclusion.DOWN
    if "NOARP" in link.flags:
        return InterfaceExclusion.NOARP
    if link.master is not None and link.slave_kind not in _KEEP_SLAVE_KINDS:
        if link.slave_kind == "bridge":
            return InterfaceExclusion.BRIDGE_PORT
        if link.slave_kind == "bond":
            return InterfaceExclusion.BOND_SLAVE
        return InterfaceExclusion.ENSLAVED
    return None


def eligible_interfaces(links: Iterable[Link]) -> InterfaceChoice:
    """Every interface that can announce, in the given order, and why the others cannot (links excluded by
    name are left out only if marked: `mark_excluded`)."""
    chosen: list[str] = []
    excluded: dict[str, InterfaceExclusion] = {}
    for link in links:
        reason = interface_exclusion(link)
        if reason is None:
            chosen.append(link.name)
        else:
            excluded[link.name] = reason
    return InterfaceChoice(tuple(chosen), excluded)


def interfaces_to_serve(
    eligible: Sequence[str],
    *,
    served: Collection[str] = (),
    named: Collection[str] = (),
    limit: int = MAX_INTERFACES,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """At most `limit` of the `eligible` interfaces for the responder, and those left out, both in the
    given order. Those an L2Advertisement names come first (the configuration asks for them), then those
    `served` already (no socket is closed for a newcomer), then the others in order."""
    if len(eligible) <= limit:
        return tuple(eligible), ()
    ranked = sorted(
        range(len(eligible)), key=lambda i: (eligible[i] not in named, eligible[i] not in served, i)
    )
    kept = set(ranked[:limit])
    chosen = tuple(name for i, name in enumerate(eligible) if i in kept)
    left = tuple(name for i, name in enumerate(eligible) if i not in kept)
    return chosen, left


def interfaces_for(
    node: Node, pools: Iterable[str], l2_advertisements: Iterable[L2Advertisement], links: Iterable[Link]
) -> InterfaceChoice:
    """Where `node` announces an IP of `pools`: the interfaces named by the L2Advertisements of those pools
    that select the node, or every eligible interface if one of them names none; ineligible and missing
    named interfaces are reported in `excluded`. No selecting advertisement: no interface. Pass the
    election's `advertisements` (those that apply to the IP's Services) for MetalLB's choice."""
    wanted = set(pools)
    selecting = [a for a in l2_advertisements if wanted & set(a.pools) and selects_node(a, node.labels)]
    links = list(links)
    every = eligible_interfaces(links)
    if not selecting:
        return InterfaceChoice(())
    if any(not a.interfaces for a in selecting):
        return every
    named = sorted({name for a in selecting for name in a.interfaces})
    present = {link.name for link in links}
    excluded = {n: every.excluded[n] for n in named if n in every.excluded}
    excluded |= {n: InterfaceExclusion.MISSING for n in named if n not in present}
    return InterfaceChoice(tuple(n for n in every.interfaces if n in named), excluded)


def parse_ip_link(text: str) -> list[Link]:
    """The output of `ip -j [-d] link show` as Links."""
    rows: list[dict[str, Any]] = json.loads(text or "[]")
    links = []
    for row in rows:
        info = row.get("linkinfo") or {}
        links.append(
            Link(
                name=str(row["ifname"]),
                flags=frozenset(str(f) for f in row.get("flags", ())),
                link_type=str(row.get("link_type", "ether")),
                kind=info.get("info_kind"),
                master=row.get("master"),
                slave_kind=info.get("info_slave_kind"),
            )
        )
    return links


def read_links(netns: str | None = None) -> list[Link]:
    """The interfaces of this network namespace (or the named one), from `ip -j -d link show`."""
    argv = ["ip", *(["-n", netns] if netns else []), "-j", "-d", "link", "show"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
    return parse_ip_link(done.stdout)
