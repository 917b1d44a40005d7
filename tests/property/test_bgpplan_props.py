"""Properties of the BGP plan over random configurations, nodes, Services and endpoints.

Configurations are drawn as metallb.io objects and go through the real loader (what it refuses is not a
case). Checked from the outside, never by recomputing the plan: every prefix covers an address of an
advertised Service whose pool a BGPAdvertisement selecting this node serves; each session gets only its own
families, eBGP sessions no LOCAL_PREF; an excluded or unreachable node sends nothing; the plan does not
depend on the order of objects, Services or sessions; and removing an advertisement never adds a route,
a community or a higher LOCAL_PREF (unless it was half of a localPref conflict, which withholds a Service).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from metallb_py.config import Config, load_objects
from metallb_py.errors import ConfigError
from metallb_py.speaker.bgpplan import (
    IPV4,
    IPV6,
    BgpService,
    RoutePlan,
    Serving,
    SkipReason,
    routes,
    sessions,
)
from metallb_py.speaker.election import EXCLUDE_FROM_LB_LABEL, Node

PROPS = settings(
    max_examples=int(os.environ.get("METALLB_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Pools and some of their addresses: a CIDR, a range whose aggregates reach past it, and IPv6.
POOLS = {
    "blue": (["203.0.113.0/26"], ["203.0.113.1", "203.0.113.2", "203.0.113.40"]),
    "green": (["203.0.113.64-203.0.113.100"], ["203.0.113.70", "203.0.113.97", "203.0.113.100"]),
    "v6": (["2001:db8::/120"], ["2001:db8::1", "2001:db8::2", "2001:db8::80"]),
}
PEERS = {
    "ebgp": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"},
    "ibgp": {"myASN": 64500, "peerASN": 64500, "peerAddress": "192.0.2.2"},
    "six": {"myASN": 64500, "peerASN": 64502, "peerAddress": "2001:db8:1::1"},
    "dual": {"myASN": 64500, "peerASN": 64500, "peerAddress": "192.0.2.3", "dualStackAddressFamily": True},
}
RACKS = st.sampled_from([None, None, "a", "b"])
NODE_ADDRESSES = ("198.51.100.11", "2001:db8:ff::11")


def obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    version = "metallb.io/v1beta2" if kind == "BGPPeer" else "metallb.io/v1beta1"
    return {"apiVersion": version, "kind": kind, "metadata": {"name": name}, "spec": spec}


def node_selectors(rack: str | None) -> dict[str, Any]:
    return {"nodeSelectors": [{"matchLabels": {"rack": rack}}]} if rack else {}


@st.composite
def advertisement(draw: st.DrawFn, index: int, pools: list[str], peers: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    chosen = draw(st.lists(st.sampled_from(pools), unique=True, max_size=2))
    if chosen:
        spec["ipAddressPools"] = chosen
    spec |= node_selectors(draw(RACKS))
    named = draw(st.lists(st.sampled_from(peers), unique=True, max_size=2)) if peers else []
    if named:
        spec["peers"] = named
    # MetalLB refuses serviceSelectors beside a non-default aggregation length: draw one or the other.
    selected = draw(st.integers(0, 3)) == 0
    for key, values in (
        ("aggregationLength", [32, 30, 28, 26]),
        ("aggregationLengthV6", [128, 124, 120]),
        ("localPref", [0, 100, 200]),
    ):
        value = draw(st.none() | st.sampled_from(values))
        if value is not None and not (selected and key != "localPref"):
            spec[key] = value
    communities = draw(
        st.lists(st.sampled_from(["65000:1", "65000:2", "large:1:2:3"]), unique=True, max_size=2)
    )
    if communities:
        spec["communities"] = communities
    if selected:
        spec["serviceSelectors"] = [{"matchLabels": {"tier": draw(st.sampled_from(["fe", "be"]))}}]
    return obj("BGPAdvertisement", f"adv-{index}", spec)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Node, list[BgpService], dict[str, Serving]]:
    pools = draw(st.lists(st.sampled_from(sorted(POOLS)), unique=True, min_size=1))
    peers = draw(st.lists(st.sampled_from(sorted(PEERS)), unique=True, min_size=1))
    docs = [obj("IPAddressPool", p, {"addresses": POOLS[p][0]}) for p in pools]
    docs += [obj("BGPPeer", p, PEERS[p] | node_selectors(draw(RACKS))) for p in peers]
    docs += [draw(advertisement(i, pools, peers)) for i in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        docs.append(obj("L2Advertisement", "l2", {}))
    labels: dict[str, str] = {}
    rack = draw(st.sampled_from(["a", "a", "b", None]))
    if rack:
        labels["rack"] = rack
    if draw(st.integers(0, 9)) == 0:
        labels[EXCLUDE_FROM_LB_LABEL] = ""
    node = Node("node-1", labels, network_unavailable=draw(st.integers(0, 9)) == 0)
    services = []
    for i in range(draw(st.integers(1, 5))):
        pool = draw(st.sampled_from(pools))
        ips = draw(st.lists(st.sampled_from(POOLS[pool][1]), unique=True, min_size=1, max_size=2))
        tier = draw(st.sampled_from([None, "fe", "be"]))
        services.append(
            BgpService(f"ns/s{i}", tuple(ips), pool, draw(st.booleans()), {"tier": tier} if tier else {})
        )
    serving = st.sampled_from([Serving.HERE, Serving.HERE, Serving.ELSEWHERE, Serving.NONE])
    endpoints = {s.key: draw(serving) for s in services}
    return docs, node, services, endpoints


def load(docs: list[dict[str, Any]]) -> Config:
    try:
        return load_objects(docs)
    except ConfigError:
        assume(False)
        raise  # unreachable: assume(False) raises


def make_plan(
    config: Config,
    node: Node,
    services: list[BgpService],
    endpoints: dict[str, Serving],
    *,
    reverse: bool = False,
) -> RoutePlan:
    peers = list(sessions(config, node, NODE_ADDRESSES, {}).sessions)
    if reverse:
        peers.reverse()
        services = list(reversed(services))
    return routes(config, node, services, endpoints, peers)


def as_data(plan: RoutePlan) -> tuple[Any, ...]:
    return (
        [(peer, list(table.items())) for peer, table in plan.routes.items()],  # order too: callers iterate
        plan.announced,
        dict(plan.service_peers),
        dict(plan.skipped),
        plan.conflicts,
    )


@PROPS
@given(scenario())
def test_every_route_is_an_advertised_address_under_an_advertisement_for_this_node_and_peer(
    case: Any,
) -> None:
    docs, node, services, endpoints = case
    config = load(docs)
    plan = make_plan(config, node, services, endpoints)
    by_key = {s.key: s for s in services}

    def explained(peer: str, prefix: str) -> bool:
        network = ipaddress.ip_network(prefix)
        return any(
            ipaddress.ip_address(ip) in network
            and network.prefixlen
            == (a.aggregation_length if network.version == 4 else a.aggregation_length_v6)
            and a.selects_node(node.labels)
            and a.selects_service(by_key[key].labels)
            and a.selects_peer(peer)
            for key in plan.announced
            for ip in by_key[key].ips
            for a in config.bgp_advertisements_for(by_key[key].pool)
        )

    for peer, table in plan.routes.items():
        for prefix in table:
            assert explained(peer, prefix), f"{prefix} to {peer}"
    assert set(plan.announced).isdisjoint(plan.skipped)
    assert set(plan.announced) | set(plan.skipped) == set(by_key)
    assert set(plan.service_peers) <= set(plan.announced)


@PROPS
@given(scenario())
def test_sessions_get_their_families_and_only_ibgp_gets_local_pref(case: Any) -> None:
    docs, node, services, endpoints = case
    config = load(docs)
    peers = {s.name: s for s in sessions(config, node, NODE_ADDRESSES, {}).sessions}
    plan = make_plan(config, node, services, endpoints)
    assert set(plan.routes) == set(peers)
    for name, table in plan.routes.items():
        for prefix, route in table.items():
            family = IPV4 if ipaddress.ip_network(prefix).version == 4 else IPV6
            assert family in peers[name].families
            assert route.local_pref is None or (peers[name].ibgp and route.local_pref > 0)
            assert list(route.communities) == sorted(
                route.communities, key=lambda c: tuple(map(int, c.split(":")))
            )


@PROPS
@given(scenario())
def test_an_excluded_or_unreachable_node_sends_nothing(case: Any) -> None:
    docs, node, services, endpoints = case
    assume(node.network_unavailable or EXCLUDE_FROM_LB_LABEL in node.labels)
    plan = make_plan(load(docs), node, services, endpoints)
    assert plan.prefixes() == set() and plan.announced == () and plan.service_peers == {}


@PROPS
@given(scenario(), st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_input_order(case: Any, random: Any) -> None:
    docs, node, services, endpoints = case
    shuffled = list(docs)
    random.shuffle(shuffled)
    one = make_plan(load(docs), node, services, endpoints)
    two = make_plan(load(shuffled), node, services, endpoints, reverse=True)
    assert as_data(one) == as_data(two)


@PROPS
@given(scenario(), st.data())
def test_removing_an_advertisement_never_adds_a_route(case: Any, data: st.DataObject) -> None:
    docs, node, services, endpoints = case
    advertisements = [i for i, d in enumerate(docs) if d["kind"] == "BGPAdvertisement"]
    assume(advertisements)
    removed = data.draw(st.sampled_from(advertisements))
    full = make_plan(load(docs), node, services, endpoints)
    # Removing one of two clashing advertisements lets their Service through: the one way to gain routes.
    assume(all(s.reason is not SkipReason.CONFLICTING_ADVERTISEMENTS for s in full.skipped.values()))
    fewer = make_plan(load(docs[:removed] + docs[removed + 1 :]), node, services, endpoints)
    for peer, table in fewer.routes.items():
        for prefix, route in table.items():
            before = full.routes[peer].get(prefix)
            assert before is not None, f"{prefix} to {peer} appeared"
            assert set(route.communities) <= set(before.communities)
            assert set(route.large_communities) <= set(before.large_communities)
            assert (route.local_pref or 0) <= (before.local_pref or 0)
    assert set(fewer.announced) <= set(full.announced)
