"""The layer 2 election: MetalLB's hash order, every exclusion rule, Local policy, sharing, interfaces.

Hash vectors are sha256 values computed with hashlib for the seed's addresses, plus the two outcomes MetalLB's
own speaker tests expect (iris1/iris2 on 10.20.30.1 and .2), so a mixed fleet provably agrees.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py._core import LabelSelector
from metallb_py.config import L2Advertisement
from metallb_py.speaker import (
    EXCLUDE_FROM_LB_LABEL,
    Election,
    Endpoint,
    EndpointSlice,
    Exclusion,
    InterfaceExclusion,
    L2Service,
    Link,
    Node,
    announcer_for,
    announcers,
    can_serve,
    elect,
    election_key,
    election_order,
    eligible_interfaces,
    interface_exclusion,
    interfaces_for,
    parse_ip_link,
    read_links,
    ready_nodes,
)
from metallb_py.speaker.election import (
    DEFAULT_EXCLUDE_RULE,
    DEFAULT_EXCLUDED_INTERFACES,
    EXCLUDE_L2_CONFIGMAP,
    EXCLUDE_L2_KEY,
    MAX_INTERFACES,
    ExcludeRule,
    exclude_rule_from_configmap,
    interfaces_to_serve,
    mark_excluded,
)
from metallb_py.testing import netlab

POOL = "nginx-ip-range"
WORKERS = ("node1", "node2", "node3")
SEED_NODES = (
    *(Node(n, {"kubernetes.io/hostname": n}) for n in WORKERS),
    Node("control-plane", {EXCLUDE_FROM_LB_LABEL: "", "node-role.kubernetes.io/control-plane": ""}),
)
ALL = (*WORKERS, "control-plane")
EVERY_NODE_ADV = L2Advertisement("l2", ip_address_pools=(POOL,), pools=(POOL,))


def svc(name: str, *ips: str, policy: str = "Cluster", pool: str = POOL) -> L2Service:
    return L2Service(f"default/{name}", pool, tuple(ips), policy)


def ready_on(service: str, *nodes: str, **conditions: bool | None) -> EndpointSlice:
    return EndpointSlice(f"default/{service}", tuple(Endpoint(n, **conditions) for n in nodes))


def decide(
    ip: str,
    services: list[L2Service],
    *,
    nodes: tuple[Node, ...] = SEED_NODES,
    slices: list[EndpointSlice] | None = None,
    advs: tuple[L2Advertisement, ...] = (EVERY_NODE_ADV,),
    live: set[str] | None = set(ALL),  # noqa: B006 (never mutated)
    **options: bool,
) -> Election:
    if slices is None:
        slices = [ready_on(s.key.split("/")[1], *WORKERS) for s in services]
    return announcer_for(
        ip,
        services,
        nodes=nodes,
        endpoint_slices=slices,
        l2_advertisements=advs,
        live_members=live,
        **options,
    )


def digest(node: str, ip: str) -> str:
    return hashlib.sha256(f"{node}#{ip}".encode()).hexdigest()[:16]


# -- the order ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        # sha256(node + "#" + ip), first 8 bytes, computed with hashlib: lowest first.
        (
            "192.168.1.11",
            [
                ("16f69747cf748cf0", "node3"),
                ("728e70065e9bf1e7", "node1"),
                ("766b09cf2bc10e76", "node2"),
                ("77873416a4de46d2", "control-plane"),
            ],
        ),
        (
            "192.168.1.12",
            [
                ("493adbca7590f484", "node1"),
                ("9c9f1970d35fe9eb", "node2"),
                ("ac1f685e95b6cbb1", "node3"),
                ("c10829f141f51c19", "control-plane"),
            ],
        ),
        (
            "192.168.1.13",
            [
                ("6d7a0c467b7001b9", "control-plane"),
                ("7f341c8bf94799d8", "node3"),
                ("a89bcc1fe2fb0d11", "node2"),
                ("c63d187cb9d51b9d", "node1"),
            ],
        ),
        (
            "2001:db8:1::11",
            [
                ("022732bae3dcf754", "node2"),
                ("782e019a74806b92", "control-plane"),
                ("b69d64959bbcd8fd", "node3"),
                ("d14019b0171da448", "node1"),
            ],
        ),
    ],
)
def test_order_is_sha256_of_node_hash_ip_lowest_first(ip: str, expected: list[tuple[str, str]]) -> None:
    assert [(digest(n, ip), n) for n in election_order(ip, reversed(ALL))] == expected
    assert elect(ip, ALL) == expected[0][1]


@pytest.mark.parametrize(("ip", "winner"), [("10.20.30.1", "iris2"), ("10.20.30.2", "iris1")])
def test_metallb_speaker_test_outcomes(ip: str, winner: str) -> None:
    # MetalLB's TestShouldAnnounce: two Local services with endpoints on iris1 and iris2; controller 2
    # announces 10.20.30.1 and controller 1 announces 10.20.30.2.
    assert elect(ip, ["iris1", "iris2"]) == winner


def test_ipv6_is_hashed_in_canonical_form() -> None:
    assert election_order("2001:DB8:1:0:0::11", ALL) == election_order("2001:db8:1::11", ALL)
    assert digest("node2", "2001:db8:1::11") == "022732bae3dcf754"


def test_no_candidates_no_winner_and_duplicates_count_once() -> None:
    assert elect("192.168.1.11", []) is None
    assert election_order("192.168.1.11", ["node1", "node1", "node3"]) == ["node3", "node1"]


# -- exclusion rules ---------------------------------------------------------------------------------------


def test_seed_scenario() -> None:
    services = [
        svc("lb-hname-svc", "192.168.1.11"),
        svc("lb-ip-svc", "192.168.1.12"),
        svc("third-svc", "192.168.1.13"),
    ]
    got = announcers(
        services,
        nodes=SEED_NODES,
        endpoint_slices=[ready_on(s.key.split("/")[1], *WORKERS) for s in services],
        l2_advertisements=[EVERY_NODE_ADV],
        live_members=ALL,
    )
    assert {ip: d.node for ip, d in got.items()} == {
        "192.168.1.11": "node3",
        "192.168.1.12": "node1",
        # control-plane ranks first for .13 but is labelled exclude-from-external-load-balancers.
        "192.168.1.13": "node3",
    }
    third = got["192.168.1.13"]
    assert third.order == ("node3", "node2", "node1")
    assert third.excluded == {"control-plane": Exclusion.EXCLUDED_BY_LABEL}
    assert third.services == ("default/third-svc",)
    assert third.reason == "node3 wins among 3 eligible nodes"


NODE3_DOWN = tuple(replace(n, ready=False) if n.name == "node3" else n for n in SEED_NODES)
NODE3_NO_NETWORK = tuple(replace(n, network_unavailable=True) if n.name == "node3" else n for n in SEED_NODES)
ONLY_NODE2 = L2Advertisement(
    "only-node2", pools=(POOL,), node_selectors=(LabelSelector({"kubernetes.io/hostname": "node2"}),)
)
ONLY_NODE1 = L2Advertisement(
    "only-node1",
    pools=(POOL,),
    node_selectors=(LabelSelector(match_expressions=[("kubernetes.io/hostname", "In", ["node1"])]),),
)
OTHER_POOL = L2Advertisement("other", pools=("other-pool",))


@pytest.mark.parametrize(
    ("case", "kwargs", "winner", "excluded"),
    [
        ("every worker", {}, "node3", {"control-plane": Exclusion.EXCLUDED_BY_LABEL}),
        (
            "node3 not a live member",
            {"live": {"node1", "node2", "control-plane"}},
            "node1",
            {"node3": Exclusion.NOT_LIVE, "control-plane": Exclusion.EXCLUDED_BY_LABEL},
        ),
        (
            "gossip off: Node readiness decides",
            {"live": None, "nodes": NODE3_DOWN},
            "node1",
            {"node3": Exclusion.NOT_LIVE, "control-plane": Exclusion.EXCLUDED_BY_LABEL},
        ),
        (
            "NetworkUnavailable",
            {"nodes": NODE3_NO_NETWORK},
            "node1",
            {"node3": Exclusion.NETWORK_UNAVAILABLE, "control-plane": Exclusion.EXCLUDED_BY_LABEL},
        ),
        (
            "a live member without a Node object",
            {"live": {*ALL, "node0"}},
            "node3",
            {"node0": Exclusion.NO_NODE, "control-plane": Exclusion.EXCLUDED_BY_LABEL},
        ),
        (
            "nodeSelectors pick node2",
            {"advs": (ONLY_NODE2,)},
            "node2",
            {
                "node1": Exclusion.NOT_SELECTED,
                "node3": Exclusion.NOT_SELECTED,
                "control-plane": Exclusion.EXCLUDED_BY_LABEL,
            },
        ),
        (
            "two advertisements select the union",
            {"advs": (ONLY_NODE2, ONLY_NODE1, OTHER_POOL)},
            "node1",
            {"node3": Exclusion.NOT_SELECTED, "control-plane": Exclusion.EXCLUDED_BY_LABEL},
        ),
        (
            "--ignore-exclude-lb",
            {"ignore_exclude_label": True},
            "node3",
            {},
        ),
    ],
)
def test_exclusion_rules(
    case: str, kwargs: dict[str, object], winner: str, excluded: dict[str, Exclusion]
) -> None:
    decision = decide("192.168.1.11", [svc("lb-hname-svc", "192.168.1.11")], **kwargs)  # type: ignore[arg-type]
    assert (decision.node, dict(decision.excluded)) == (winner, excluded), case


def test_exclude_label_counts_whatever_its_value() -> None:
    nodes = (*SEED_NODES[:2], Node("node3", {EXCLUDE_FROM_LB_LABEL: "false"}))
    decision = decide("192.168.1.11", [svc("a", "192.168.1.11")], nodes=nodes)
    assert decision.node == "node1"
    assert decision.excluded["node3"] is Exclusion.EXCLUDED_BY_LABEL


def test_ignore_exclude_label_lets_the_control_plane_win_where_it_ranks_first() -> None:
    # Cluster policy: endpoints on the workers only do not matter.
    assert decide("192.168.1.13", [svc("third-svc", "192.168.1.13")], ignore_exclude_label=True).node == (
        "control-plane"
    )


def test_pool_without_l2_advertisement_is_not_announced() -> None:
    decision = decide("192.168.1.11", [svc("a", "192.168.1.11")], advs=(OTHER_POOL,))
    assert decision.node is None
    assert decision.reason == f"no L2Advertisement for pool {POOL}"


def test_no_service_no_announcer() -> None:
    assert decide("192.168.1.11", []).reason == "no Service has this address"


def test_everyone_excluded() -> None:
    decision = decide("192.168.1.11", [svc("a", "192.168.1.11")], live=set())
    assert decision.node is None and decision.reason == "no eligible node"
    assert set(decision.excluded.values()) == {Exclusion.NOT_LIVE}


# -- endpoints and externalTrafficPolicy Local --------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({}, True),  # ready unset counts as ready
        ({"ready": True}, True),
        ({"ready": False}, False),
        ({"ready": False, "serving": True}, True),
        ({"ready": False, "serving": True, "terminating": True}, True),
        ({"ready": False, "serving": False, "terminating": True}, False),
        ({"ready": True, "serving": False}, True),
    ],
)
def test_endpoint_can_serve_like_metallb(conditions: dict[str, bool], expected: bool) -> None:
    assert can_serve(Endpoint("node1", **conditions)) is expected


def test_service_without_an_endpoint_that_can_serve_is_not_announced() -> None:
    services = [svc("a", "192.168.1.11")]
    for slices in ([], [ready_on("a", *WORKERS, ready=False)], [ready_on("other", *WORKERS)]):
        decision = decide("192.168.1.11", services, slices=slices)
        assert decision.node is None
        assert decision.reason == "no endpoint that can serve (ready or serving) for any Service"
    # An endpoint that can serve anywhere, even without a node name, is enough for Cluster policy.
    assert decide("192.168.1.11", services, slices=[ready_on("a", None)]).node == "node3"  # type: ignore[arg-type]
    assert decide("192.168.1.11", services, slices=[], require_endpoints=False).node == "node3"


def test_local_policy_follows_endpoints() -> None:
    local = [svc("a", "192.168.1.11", policy="Local")]
    decision = decide("192.168.1.11", local, slices=[ready_on("a", "node1", "node2")])
    # node3 ranks first for .11 but runs no endpoint.
    assert decision.node == "node1"
    assert decision.excluded["node3"] is Exclusion.NO_LOCAL_ENDPOINT
    # A serving (terminating) endpoint keeps node2 eligible; a not-ready one on node1 does not.
    slices = [
        EndpointSlice(
            "default/a",
            (Endpoint("node1", ready=False), Endpoint("node2", ready=False, serving=True, terminating=True)),
        )
    ]
    assert decide("192.168.1.11", local, slices=slices).node == "node2"


def test_local_endpoints_on_ineligible_nodes_do_not_count() -> None:
    local = [svc("a", "192.168.1.13", policy="Local")]
    decision = decide("192.168.1.13", local, slices=[ready_on("a", "control-plane")])
    assert decision.node is None
    assert decision.excluded["control-plane"] is Exclusion.EXCLUDED_BY_LABEL
    assert decision.excluded["node3"] is Exclusion.NO_LOCAL_ENDPOINT


# -- sharing -----------------------------------------------------------------------------------------------


def test_shared_ip_has_one_announcer_for_every_service() -> None:
    services = [svc("http", "192.168.1.11"), svc("dns", "192.168.1.11")]
    decision = decide("192.168.1.11", services)
    assert decision.node == "node3"
    assert decision.services == ("default/dns", "default/http")


def test_shared_ip_is_announced_for_the_services_with_endpoints() -> None:
    services = [svc("http", "192.168.1.11"), svc("dns", "192.168.1.11")]
    decision = decide("192.168.1.11", services, slices=[ready_on("http", "node1")])
    assert decision.node == "node3" and decision.services == ("default/http",)


def test_shared_local_services_prefer_nodes_serving_all_of_them() -> None:
    services = [svc("http", "192.168.1.11", policy="Local"), svc("dns", "192.168.1.11", policy="Local")]
    both_on_node2 = [ready_on("http", "node1", "node2"), ready_on("dns", "node2", "node3")]
    assert decide("192.168.1.11", services, slices=both_on_node2).node == "node2"
    # No node serves both (an update in flight): a node that serves one still beats silence.
    disjoint = [ready_on("http", "node1"), ready_on("dns", "node2")]
    assert decide("192.168.1.11", services, slices=disjoint).node == "node1"


def test_shared_local_services_fall_back_among_eligible_nodes() -> None:
    services = [svc("http", "192.168.1.11", policy="Local"), svc("dns", "192.168.1.11", policy="Local")]
    # Only node1 serves both, but it is down: node2 and node3 each serve one.
    slices = [ready_on("http", "node1", "node2"), ready_on("dns", "node1", "node3")]
    decision = decide("192.168.1.11", services, slices=slices, live={"node2", "node3"})
    assert decision.node == "node3"
    assert decision.order == ("node3", "node2")


def test_a_local_service_restricts_a_shared_ip() -> None:
    # MetalLB's sharing rules keep Cluster and Local apart; if state holds such a mix anyway, the Local
    # Service's nodes serve both.
    services = [svc("http", "192.168.1.11"), svc("dns", "192.168.1.11", policy="Local")]
    slices = [ready_on("http", *WORKERS), ready_on("dns", "node2")]
    assert decide("192.168.1.11", services, slices=slices).node == "node2"


def test_dual_stack_service_keeps_both_families_on_one_node() -> None:
    dual = svc("dual", "192.168.1.12", "2001:db8:1::11")
    got = announcers(
        [dual],
        nodes=SEED_NODES,
        endpoint_slices=[ready_on("dual", *WORKERS)],
        l2_advertisements=[EVERY_NODE_ADV],
        live_members=ALL,
    )
    # MetalLB hashes the first address for both: node1 (alone, 2001:db8:1::11 would go to node2).
    assert {ip: (d.node, d.key) for ip, d in got.items()} == {
        "192.168.1.12": ("node1", "192.168.1.12"),
        "2001:db8:1::11": ("node1", "192.168.1.12"),
    }


def test_services_disagreeing_on_their_first_address_hash_the_ip_itself() -> None:
    services = [svc("dual", "192.168.1.12", "2001:db8:1::11"), svc("v6", "2001:db8:1::11")]
    assert election_key("2001:db8:1::11", services) == "2001:db8:1::11"
    assert decide("2001:db8:1::11", services).node == "node2"


def test_ready_nodes() -> None:
    assert ready_nodes(NODE3_DOWN) == {"node1", "node2", "control-plane"}


# -- properties --------------------------------------------------------------------------------------------

NAMES = [f"n{i}" for i in range(8)]


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, object]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=3))
    nodes = [
        Node(
            name,
            {"zone": draw(st.sampled_from(["a", "b"]))}
            | ({EXCLUDE_FROM_LB_LABEL: ""} if draw(st.booleans()) and draw(st.booleans()) else {}),
            ready=draw(st.integers(0, 3)) > 0,
            network_unavailable=draw(st.integers(0, 5)) == 0,
        )
        for name in names
    ]
    live = draw(st.none() | st.sets(st.sampled_from(NAMES), min_size=len(NAMES) // 2))
    policy = draw(st.sampled_from(["Cluster", "Local"]))
    services = [svc("a", "192.168.1.11", policy=policy), svc("b", "192.168.1.11", policy=policy)]
    # Mostly endpoints that can serve, so most worlds have a winner to test.
    condition = st.sampled_from([None, True, True, False])
    endpoints = st.builds(Endpoint, st.sampled_from([*NAMES, None]), condition, condition, condition)
    slices = [
        EndpointSlice(f"default/{s}", tuple(draw(st.lists(endpoints, min_size=1, max_size=6))))
        for s in draw(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3))
    ]
    zone_a = L2Advertisement("zone-a", pools=(POOL,), node_selectors=(LabelSelector({"zone": "a"}),))
    advs = draw(st.lists(st.sampled_from([EVERY_NODE_ADV, zone_a, OTHER_POOL]), min_size=1, unique_by=id))
    return {
        "nodes": nodes,
        "endpoint_slices": slices,
        "l2_advertisements": advs,
        "live_members": live,
        "services": services,
    }


def run(world: dict[str, object]) -> Election:
    return announcer_for("192.168.1.11", **world)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_every_node_computes_the_same_winner_whatever_the_input_order(
    world: dict[str, object], rnd: random.Random
) -> None:
    def shuffled(value: object) -> object:
        if not isinstance(value, list | set):
            return value
        items = list(value)
        rnd.shuffle(items)
        return items

    assert run({key: shuffled(value) for key, value in world.items()}) == run(world)


@settings(max_examples=300, deadline=None)
@given(worlds(), st.data())
def test_losing_a_non_winner_never_moves_the_ip(world: dict[str, object], data: st.DataObject) -> None:
    before = run(world)
    if before.node is None:
        return
    # The winner is the lowest hash among the eligible nodes, none of which is excluded.
    assert before.node == min(before.order, key=lambda n: digest(n, before.key))
    assert before.node not in before.excluded
    loser = data.draw(st.sampled_from([n for n in NAMES if n != before.node]))
    live = world["live_members"]
    nodes: list[Node] = world["nodes"]  # type: ignore[assignment]
    if live is None:  # gossip off: the loser's Node turns NotReady
        world = world | {"nodes": [replace(n, ready=False) if n.name == loser else n for n in nodes]}
    else:
        world = world | {"live_members": set(live) - {loser}}  # type: ignore[call-overload]
    after = run(world)
    assert after.node == before.node
    assert after.order == tuple(n for n in before.order if n != loser)


# -- interfaces --------------------------------------------------------------------------------------------

# `ip -j -d link show` in a lab namespace (lo, a veth, a bridge with a port, a veth that is down), trimmed to
# the fields read; the bond slave, VRF member and NOARP entries are written to the same format by hand (this
# machine's kernel has no bond, vrf or dummy driver).
IP_LINK = """[
 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"operstate":"UNKNOWN","link_type":"loopback"},
 {"ifindex":2,"ifname":"eth1","flags":["BROADCAST","MULTICAST"],"operstate":"DOWN","link_type":"ether",
  "linkinfo":{"info_kind":"veth"}},
 {"ifindex":3,"ifname":"eth0","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP","M-DOWN"],
  "operstate":"LOWERLAYERDOWN","link_type":"ether","linkinfo":{"info_kind":"veth"}},
 {"ifindex":4,"ifname":"br0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"operstate":"UP",
  "link_type":"ether","linkinfo":{"info_kind":"bridge"}},
 {"ifindex":6,"ifname":"veth-a","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"operstate":"UP",
  "link_type":"ether","master":"br0","linkinfo":{"info_kind":"veth","info_slave_kind":"bridge"}},
 {"ifindex":7,"ifname":"bond0","flags":["BROADCAST","MULTICAST","MASTER","UP","LOWER_UP"],"link_type":"ether",
  "linkinfo":{"info_kind":"bond"}},
 {"ifindex":8,"ifname":"eth2","flags":["BROADCAST","MULTICAST","SLAVE","UP","LOWER_UP"],"link_type":"ether",
  "master":"bond0","linkinfo":{"info_kind":"dummy","info_slave_kind":"bond"}},
 {"ifindex":9,"ifname":"eth3","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"link_type":"ether",
  "master":"vrf-blue","linkinfo":{"info_kind":"dummy","info_slave_kind":"vrf"}},
 {"ifindex":10,"ifname":"wg0","flags":["POINTOPOINT","NOARP","UP","LOWER_UP"],"link_type":"none",
  "linkinfo":{"info_kind":"wireguard"}},
 {"ifindex":11,"ifname":"eth4","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"link_type":"ether",
  "master":"ovs-system","linkinfo":{"info_kind":"veth","info_slave_kind":"openvswitch"}}
]"""


def test_parse_ip_link() -> None:
    links = {link.name: link for link in parse_ip_link(IP_LINK)}
    assert links["veth-a"] == Link(
        "veth-a", frozenset({"BROADCAST", "MULTICAST", "UP", "LOWER_UP"}), "ether", "veth", "br0", "bridge"
    )
    assert links["lo"].link_type == "loopback" and links["lo"].master is None
    assert parse_ip_link("") == []


def test_eligible_interfaces() -> None:
    choice = eligible_interfaces(parse_ip_link(IP_LINK))
    # eth0 has no carrier but is up: it stays, so announcing resumes when the cable comes back.
    assert choice.interfaces == ("eth0", "br0", "bond0", "eth3")
    assert dict(choice.excluded) == {
        "lo": InterfaceExclusion.LOOPBACK,
        "eth1": InterfaceExclusion.DOWN,
        "veth-a": InterfaceExclusion.BRIDGE_PORT,
        "eth2": InterfaceExclusion.BOND_SLAVE,
        "wg0": InterfaceExclusion.NOARP,
        "eth4": InterfaceExclusion.ENSLAVED,
    }


def test_enslaved_without_details_is_excluded() -> None:
    # Plain `ip -j link show` (no -d) names the master but not its kind: refuse, as MetalLB does.
    assert interface_exclusion(Link("eth5", master="br1")) is InterfaceExclusion.ENSLAVED
    assert interface_exclusion(Link("eth5")) is None


def test_interfaces_for_named_and_default() -> None:
    links = parse_ip_link(IP_LINK)
    node2 = SEED_NODES[1]
    assert interfaces_for(node2, [POOL], [EVERY_NODE_ADV], links).interfaces == (
        "eth0",
        "br0",
        "bond0",
        "eth3",
    )
    named = L2Advertisement("named", pools=(POOL,), interfaces=("eth0", "veth-a", "eth9"))
    choice = interfaces_for(node2, [POOL], [named], links)
    assert choice.interfaces == ("eth0",)
    assert dict(choice.excluded) == {
        "veth-a": InterfaceExclusion.BRIDGE_PORT,
        "eth9": InterfaceExclusion.MISSING,
    }
    # Another advertisement without interfaces, selecting this node, means every eligible interface.
    assert interfaces_for(node2, [POOL], [named, EVERY_NODE_ADV], links).interfaces == (
        "eth0",
        "br0",
        "bond0",
        "eth3",
    )
    # Advertisements that do not select the node, or serve another pool, do not count.
    only_node1 = replace(ONLY_NODE1, interfaces=("br0",))
    assert interfaces_for(node2, [POOL], [named, only_node1, OTHER_POOL], links).interfaces == ("eth0",)
    assert interfaces_for(node2, [POOL], [OTHER_POOL], links).interfaces == ()


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")
def test_read_links_reads_this_namespace() -> None:
    links = {link.name: link for link in read_links()}
    assert interface_exclusion(links["lo"]) is InterfaceExclusion.LOOPBACK


# -- interfaces excluded by name (MetalLB's ConfigMap metallb-excludel2) ---------------------------------

# The ConfigMap as MetalLB's manifests ship it (flow list) and as its Helm chart writes it (block list).
EXCLUDE_L2_FLOW = {
    "metadata": {"name": EXCLUDE_L2_CONFIGMAP, "namespace": "metallb-system"},
    "data": {
        EXCLUDE_L2_KEY: 'announcedInterfacesToExclude: ["^docker.*", "^cbr.*", "^dummy.*", "^virbr.*", '
        '"^lxcbr.*", "^veth.*", "^lo$", "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*", '
        '"^nodelocaldns.*", "^lxc.*"]\n'
    },
}
EXCLUDE_L2_BLOCK = {
    "metadata": {"name": EXCLUDE_L2_CONFIGMAP, "namespace": "metallb-system"},
    "data": {EXCLUDE_L2_KEY: "announcedInterfacesToExclude:\n- ^veth.*\n- ^lo$\n- ^cali.*\n"},
}
CNI_NAMES = (
    "docker0",
    "cbr0",
    "veth1a2b",
    "cali5f3e",
    "lxc12ab",
    "lxcbr0",
    "flannel.1",
    "cni0",
    "tunl0",
    "kube-ipvs0",
    "nodelocaldns",
    "virbr0",
    "dummy0",
    "lo",
)


def test_metallbs_configmap_excludes_the_cni_interfaces_and_nothing_of_ours() -> None:
    rule = exclude_rule_from_configmap(EXCLUDE_L2_FLOW)
    assert rule.patterns == DEFAULT_EXCLUDED_INTERFACES == DEFAULT_EXCLUDE_RULE.patterns
    assert rule.source == f"ConfigMap metallb-system/{EXCLUDE_L2_CONFIGMAP} key {EXCLUDE_L2_KEY}"
    assert [n for n in CNI_NAMES if not rule.excludes(n)] == []
    # The names the lab, the demo and the e2e tests give the speakers' interfaces (late links: eth0.100 or
    # late0) must stay usable under the default list.
    ours = (
        netlab.INTERFACE,
        netlab.ROUTER_CLIENT_INTERFACE,
        "eth0.100",
        "late0",
        "ens3",
        "bond0",
        "br0",
        "lom1",
    )
    assert [n for n in ours if rule.excludes(n)] == []


def test_exclusion_rule_sources() -> None:
    assert exclude_rule_from_configmap(None) == DEFAULT_EXCLUDE_RULE  # no ConfigMap: MetalLB's list
    block = exclude_rule_from_configmap(EXCLUDE_L2_BLOCK)
    assert block.patterns == ("^veth.*", "^lo$", "^cali.*")
    assert block.excludes("veth0") and not block.excludes("cni0") and not block.excludes("lo0")
    # Present but empty, or without the key: nothing is excluded (as MetalLB with an empty file).
    for data in ({}, {EXCLUDE_L2_KEY: ""}, {EXCLUDE_L2_KEY: "announcedInterfacesToExclude: []\n"}):
        rule = exclude_rule_from_configmap({"metadata": {"name": EXCLUDE_L2_CONFIGMAP}, "data": data})
        assert rule.patterns == () and not rule.excludes("veth0")
    # Unanchored patterns match anywhere in the name, as Go's MatchString.
    assert ExcludeRule.of(["pod"], "test").excludes("my-pod-if")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("announcedInterfacesToExclude: ['^veth(']", "'^veth(' is not a regular expression"),
        ("announcedInterfacesToExclude: '^veth.*'", "must be a list of strings"),
        ("announcedInterfacesToExclude: [1]", "must be a list of strings"),
        ("- ^veth.*", "expected a mapping with announcedInterfacesToExclude"),
        ("announcedInterfacesToExclude: [", "not YAML"),
    ],
)
def test_a_bad_exclusion_list_is_refused_with_what_is_wrong(text: str, error: str) -> None:
    configmap = {"metadata": {"name": EXCLUDE_L2_CONFIGMAP}, "data": {EXCLUDE_L2_KEY: text}}
    with pytest.raises(ValueError, match=re.escape(error)) as raised:
        exclude_rule_from_configmap(configmap)
    assert f"{EXCLUDE_L2_CONFIGMAP} key {EXCLUDE_L2_KEY}" in str(raised.value)


def test_an_interface_excluded_by_name_is_out_of_the_election() -> None:
    links = mark_excluded(
        [Link("eth0"), Link("cali5f3e"), Link("veth1", master="cni0", slave_kind="bridge")],
        DEFAULT_EXCLUDE_RULE,
    )
    choice = eligible_interfaces(links)
    assert choice.interfaces == ("eth0",)
    assert dict(choice.excluded) == {
        "cali5f3e": InterfaceExclusion.NAME_EXCLUDED,
        "veth1": InterfaceExclusion.NAME_EXCLUDED,  # the name is looked at first, as MetalLB
    }
    # An L2Advertisement naming an excluded interface gets none there, and says why.
    named = L2Advertisement("named", pools=(POOL,), interfaces=("eth0", "cali5f3e"))
    chosen = interfaces_for(SEED_NODES[1], [POOL], [named], links)
    assert chosen.interfaces == ("eth0",)
    assert dict(chosen.excluded) == {"cali5f3e": InterfaceExclusion.NAME_EXCLUDED}
    # Unmarked links (no rule applied) are not excluded by name.
    assert eligible_interfaces([Link("cali5f3e")]).interfaces == ("cali5f3e",)


IFNAMES = tuple(f"eth{i}" for i in range(6))


@pytest.mark.parametrize(
    ("served", "named", "chosen", "left"),
    [
        # Within the limit: all of them, whatever is served or named.
        ((), (), IFNAMES[:3], ()),
        # Over it: named first, then served, then in order; both lists keep the links' order.
        ((), (), IFNAMES[:3], IFNAMES[3:]),
        (("eth4", "eth5"), (), ("eth0", "eth4", "eth5"), ("eth1", "eth2", "eth3")),
        (("eth4", "eth5"), ("eth3",), ("eth3", "eth4", "eth5"), ("eth0", "eth1", "eth2")),
        (("eth0", "eth1", "eth2"), ("eth5", "eth9"), ("eth0", "eth1", "eth5"), ("eth2", "eth3", "eth4")),
    ],
)
def test_interfaces_to_serve_prefers_named_then_served(
    served: tuple[str, ...], named: tuple[str, ...], chosen: tuple[str, ...], left: tuple[str, ...]
) -> None:
    eligible = chosen + left if not left else IFNAMES
    assert interfaces_to_serve(eligible, served=served, named=named, limit=3) == (chosen, left)


def test_interfaces_to_serve_default_limit_is_the_responders() -> None:
    many = [f"vlan{i}" for i in range(MAX_INTERFACES + 6)]
    chosen, left = interfaces_to_serve(many)
    assert (chosen, left) == (tuple(many[:MAX_INTERFACES]), tuple(many[MAX_INTERFACES:]))


def test_the_shipped_configmap_holds_the_default_list() -> None:
    deploy = Path(__file__).resolve().parents[2] / "deploy" / "speaker.yaml"
    shipped = [d for d in yaml.safe_load_all(deploy.read_text()) if d.get("kind") == "ConfigMap"]
    assert [d["metadata"]["name"] for d in shipped] == [EXCLUDE_L2_CONFIGMAP]
    assert exclude_rule_from_configmap(shipped[0]).patterns == DEFAULT_EXCLUDED_INTERFACES
