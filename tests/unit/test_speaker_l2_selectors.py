"""Layer 2 serviceSelectors and preferredNodeSelectors in the election.

The tables replay the outcomes of MetalLB's own speaker tests (speaker/layer2_controller_test.go, each test
names the one it replays) and the examples of its design note (design/preferred-node-l2.md), as our own
inputs: MetalLB's tests give an advertisement's node set and scores directly; here Node labels and selectors
produce them.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py._core import LabelSelector
from metallb_py.config.model import L2Advertisement, PreferredNodeSelector
from metallb_py.speaker.election import (
    Election,
    Endpoint,
    EndpointSlice,
    Exclusion,
    L2Service,
    Link,
    Node,
    ServiceSkip,
    advertisements_for,
    announcer_for,
    election_order,
    interfaces_for,
    preference_scores,
)
from metallb_py.speaker.objects import l2_service_from_api

POOL = "default"
IP = "10.20.30.1"
HOSTNAME = "kubernetes.io/hostname"


def node(name: str, **labels: str) -> Node:
    return Node(name, {HOSTNAME: name, **labels})


def hosts(*names: str) -> tuple[LabelSelector, ...]:
    """One selector per node name: MetalLB's tests give an advertisement's node set as names."""
    return tuple(LabelSelector({HOSTNAME: name}) for name in names)


def prefer(weight: int, **labels: str) -> PreferredNodeSelector:
    return PreferredNodeSelector(weight, LabelSelector(labels))


def adv(name: str, **fields: object) -> L2Advertisement:
    return L2Advertisement(name, ip_address_pools=(POOL,), pools=(POOL,), **fields)  # type: ignore[arg-type]


def service(
    name: str = "svc1",
    *,
    labels: dict[str, str] | None = None,
    shared: bool = False,
    policy: str = "Cluster",
    ip: str = IP,
) -> L2Service:
    return L2Service(f"default/{name}", POOL, (ip,), policy, labels=labels or {}, allow_shared_ip=shared)


def endpoints_on(svc: L2Service, *nodes: str) -> EndpointSlice:
    return EndpointSlice(svc.key, tuple(Endpoint(n, ready=True) for n in nodes))


def run(
    services: list[L2Service],
    nodes: list[Node],
    advertisements: list[L2Advertisement],
    *,
    endpoints: tuple[str, ...] | None = None,
    live: set[str] | None = None,
) -> Election:
    slices = [endpoints_on(s, *(endpoints or [n.name for n in nodes])) for s in services]
    return announcer_for(
        IP,
        services,
        nodes=nodes,
        endpoint_slices=slices,
        l2_advertisements=advertisements,
        live_members={n.name for n in nodes} if live is None else live,
    )


# -- the order -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidates", "ip", "scores", "want"),
    [
        ([], "10.0.0.1", {}, []),
        (["node-a"], "10.0.0.1", {}, ["node-a"]),
        (["node-a", "node-b", "node-c"], "10.0.0.1", {}, ["node-b", "node-a", "node-c"]),
        (["node-a", "node-b", "node-c"], "10.0.0.2", {}, ["node-b", "node-c", "node-a"]),
        (
            ["edge-a", "edge-b", "worker-a", "worker-b"],
            "10.20.30.1",
            {"edge-a": 100},
            ["edge-a", "edge-b", "worker-a", "worker-b"],
        ),
        (["node-a", "node-b"], "10.20.30.1", {"node-a": 100, "node-b": 100}, ["node-b", "node-a"]),
        (
            ["edge-a", "edge-b", "worker-a"],
            "10.20.30.1",
            {"edge-a": 100, "edge-b": 100},
            ["edge-b", "edge-a", "worker-a"],
        ),
    ],
)
def test_order_is_score_then_hash_as_metallb_sorts(
    candidates: list[str], ip: str, scores: dict[str, int], want: list[str]
) -> None:
    assert election_order(ip, candidates, scores) == want
    assert election_order(ip, reversed(candidates), scores) == want


# -- scores --------------------------------------------------------------------------------------------------


def test_scores_sum_across_advertisements() -> None:
    # TestPreferredScoresFor: a gets 70 + 30, b 50.
    nodes = [node("a", zone="primary"), node("b", gpu="true")]
    ads = [
        adv("one", node_selectors=hosts("a", "b"), preferred_node_selectors=(prefer(70, zone="primary"),)),
        adv(
            "two",
            node_selectors=hosts("a", "b"),
            preferred_node_selectors=(prefer(30, zone="primary"), prefer(50, gpu="true")),
        ),
    ]
    assert preference_scores(nodes, ads) == {"a": 100, "b": 50}
    assert preference_scores(nodes, [adv("plain", node_selectors=hosts("a"))]) == {}
    assert preference_scores(nodes, []) == {}


def test_scores_design_examples() -> None:
    # Cumulative weights within one advertisement: 60 + 50.
    cumulative = adv("c", preferred_node_selectors=(prefer(60, zone="primary"), prefer(50, gpu="true")))
    nodes = [
        node("x", zone="primary", gpu="true"),
        node("y", zone="primary"),
        node("z", gpu="true"),
        node("w"),
    ]
    assert preference_scores(nodes, [cumulative]) == {"x": 110, "y": 60, "z": 50}
    # Two advertisements over the same eligible set: 70 (Ad1) + 30 (Ad2) = 100.
    lb = (LabelSelector({"role": "lb"}),)
    ad1 = adv("ad1", node_selectors=lb, preferred_node_selectors=(prefer(70, zone="primary"),))
    ad2 = adv("ad2", node_selectors=lb, preferred_node_selectors=(prefer(30, gpu="true"),))
    nodes = [
        node("X", role="lb", zone="primary", gpu="true"),
        node("Y", role="lb", zone="primary"),
        node("Z", role="lb"),
    ]
    assert preference_scores(nodes, [ad1, ad2]) == {"X": 100, "Y": 70}


def test_an_advertisement_never_lifts_a_node_outside_its_node_selectors() -> None:
    # The design note's Ad1/Ad2/Ad3: C matches zone=primary but only Ad3's own node E is lifted.
    ads = [
        adv("ad1", node_selectors=(LabelSelector({"role": "lb"}),)),
        adv("ad2", node_selectors=(LabelSelector({"role": "edge"}),)),
        adv(
            "ad3",
            node_selectors=(LabelSelector({"role": "gpu"}),),
            preferred_node_selectors=(prefer(100, zone="primary"),),
        ),
    ]
    nodes = [
        node("A", role="lb"),
        node("B", role="lb"),
        node("C", role="edge", zone="primary"),
        node("D", role="edge"),
        node("E", role="gpu", zone="primary"),
    ]
    assert preference_scores(nodes, ads) == {"E": 100}
    decision = run([service()], nodes, ads)
    assert decision.node == "E" and set(decision.order) == {"A", "B", "C", "D", "E"}
    assert dict(decision.scores) == {"E": 100}


def test_an_empty_preference_lifts_the_advertisements_own_nodes() -> None:
    everyone = adv("everyone", preferred_node_selectors=(prefer(5),))
    nodes = [node("a"), node("b")]
    assert preference_scores(nodes, [everyone]) == {"a": 5, "b": 5}
    fenced = adv("fenced", node_selectors=hosts("b"), preferred_node_selectors=(prefer(5),))
    assert run([service()], nodes, [adv("all"), fenced]).node == "b"


# -- the election with preferences ---------------------------------------------------------------------------

EDGE_WORKERS = [node("edge-a", role="edge"), node("edge-b", role="edge"), node("worker-a"), node("worker-b")]


def test_the_preferred_node_wins() -> None:
    # TestShouldAnnouncePreferredNode, first case: edge-a scores 100.
    ad = adv("pref", preferred_node_selectors=(prefer(100, **{HOSTNAME: "edge-a"}),))
    decision = run([service()], EDGE_WORKERS, [ad], endpoints=("worker-a",))
    assert decision.node == "edge-a"
    assert decision.reason == "edge-a wins among 4 eligible nodes with preference score 100"


def test_local_policy_drops_a_preferred_node_without_endpoints() -> None:
    # TestShouldAnnouncePreferredNode, second case.
    nodes = [node("preferred-a"), node("worker-a")]
    ad = adv("pref", preferred_node_selectors=(prefer(100, **{HOSTNAME: "preferred-a"}),))
    decision = run([service(policy="Local")], nodes, [ad], endpoints=("worker-a",))
    assert decision.node == "worker-a"
    assert decision.excluded == {"preferred-a": Exclusion.NO_LOCAL_ENDPOINT}


def test_scores_come_from_the_services_advertisements_not_the_nodes() -> None:
    # TestShouldAnnounceSplitBrainWithMixedAds: the poison advertisement selects another Service, so its
    # weight of 1000 for worker-a does not count; every node reaches edge-a.
    nodes = [node("edge-a"), node("worker-a")]
    edge = adv(
        "edge",
        node_selectors=hosts("edge-a"),
        preferred_node_selectors=(prefer(100, **{HOSTNAME: "edge-a"}),),
    )
    every = adv("all", node_selectors=hosts("edge-a", "worker-a"))
    poison = adv(
        "poison",
        node_selectors=hosts("edge-a", "worker-a"),
        preferred_node_selectors=(prefer(100, **{HOSTNAME: "worker-a"}),) * 10,
        service_selectors=(LabelSelector({"app": "does-not-match"}),),
    )
    for ads in ([edge, every, poison], [poison, every, edge]):
        decision = run([service()], nodes, ads, endpoints=("worker-a",))
        assert decision.node == "edge-a"
        assert {a.name for a in decision.advertisements} == {"edge", "all"}


def test_preferred_failover_stages() -> None:
    # TestShouldAnnouncePreferredNodeFailover.
    edges = adv("edges", preferred_node_selectors=(prefer(100, role="edge"),))
    every = EDGE_WORKERS[:3]
    # edge-a gone: the other preferred node.
    assert run([service()], every, [edges], live={"edge-b", "worker-a"}).node == "edge-b"
    # It returns: the two preferred nodes tie and the hash picks edge-b.
    decision = run([service()], every, [edges])
    assert decision.order == ("edge-b", "edge-a", "worker-a")
    # Every preferred node gone: the hash among those left (worker-a beats worker-b).
    assert run([service()], EDGE_WORKERS, [edges], live={"worker-a", "worker-b"}).node == "worker-a"


def test_no_preference_is_the_hash_order() -> None:
    decision = run([service()], EDGE_WORKERS, [adv("plain")])
    assert decision.order == tuple(election_order(IP, [n.name for n in EDGE_WORKERS]))
    assert decision.scores == {} and decision.reason == f"{decision.node} wins among 4 eligible nodes"


# -- serviceSelectors ----------------------------------------------------------------------------------------

NGINX = {"app": "nginx"}


@pytest.mark.parametrize(
    ("selectors", "announced"),
    [
        ((), True),  # no selector: every Service of the pool
        ((LabelSelector({"app": "nginx"}),), True),
        ((LabelSelector({"app": "apache"}),), False),
        ((LabelSelector({"app": "apache"}), LabelSelector({"app": "nginx"})), True),  # any one matches
    ],
)
def test_service_selectors(selectors: tuple[LabelSelector, ...], announced: bool) -> None:
    # TestL2ServiceSelectors.
    decision = run([service(labels=NGINX)], [node("iris1")], [adv("l2", service_selectors=selectors)])
    assert (decision.node == "iris1") is announced
    if not announced:
        assert decision.services == ()
        assert decision.skipped == {"default/svc1": ServiceSkip.NO_ADVERTISEMENT}


def test_advertisements_for_a_service() -> None:
    # TestL2AdsForService: node selection plays no part here.
    plain = adv("plain", node_selectors=hosts("nodeA"))
    nginx = adv("nginx", service_selectors=(LabelSelector(NGINX),))
    apache = adv("apache", service_selectors=(LabelSelector({"app": "apache"}),))
    elsewhere = adv("elsewhere", node_selectors=hosts("nodeB"))
    other_pool = L2Advertisement("other", pools=("other",))
    svc = service(labels=NGINX)
    assert advertisements_for(svc, [apache, nginx, plain, elsewhere, other_pool]) == [nginx, plain, elsewhere]
    assert advertisements_for(svc, [apache]) == []


@pytest.mark.parametrize(
    ("annotated", "ads", "announced"),
    [
        (True, [adv("sel", service_selectors=(LabelSelector(NGINX),))], False),
        (True, [adv("plain")], True),
        (False, [adv("sel", service_selectors=(LabelSelector(NGINX),))], True),
        (True, [adv("plain"), adv("sel", service_selectors=(LabelSelector(NGINX),))], False),
    ],
)
def test_allow_shared_ip_with_service_selectors_is_not_announced(
    annotated: bool, ads: list[L2Advertisement], announced: bool
) -> None:
    # TestL2SharedIPWithServiceSelectors: the annotation alone counts, whether or not the IP is shared.
    decision = run([service(labels=NGINX, shared=annotated)], [node("iris1")], ads)
    assert (decision.node == "iris1") is announced
    if not announced:
        assert decision.skipped == {"default/svc1": ServiceSkip.SHARED_IP_WITH_SERVICE_SELECTORS}


@pytest.mark.parametrize("annotation", ["metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"])
def test_either_annotation_marks_a_shared_ip(annotation: str) -> None:
    def api_service(annotations: dict[str, str]) -> dict[str, object]:
        return {
            "metadata": {
                "name": "svc1",
                "namespace": "default",
                "labels": NGINX,
                "annotations": {"metallb.io/ip-allocated-from-pool": POOL, **annotations},
            },
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": IP}]}},
        }

    seen = l2_service_from_api(api_service({annotation: ""}), None)
    assert seen is not None and seen.allow_shared_ip and seen.labels == NGINX
    seen = l2_service_from_api(api_service({}), None)
    assert seen is not None and not seen.allow_shared_ip


def test_an_advertisement_for_the_service_on_no_live_node_means_no_announcer() -> None:
    # TestL2NoMatchingAdForServiceAndNode: the advertisement that selects every node is for another Service.
    ads = [
        adv(
            "other",
            node_selectors=hosts("iris1", "iris2"),
            service_selectors=(LabelSelector({"app": "other"}),),
        ),
        adv("web", node_selectors=hosts("ghost"), service_selectors=(LabelSelector({"app": "web"}),)),
    ]
    decision = run([service(labels={"app": "web"})], [node("iris1"), node("iris2")], ads)
    assert decision.node is None
    assert decision.excluded == {"iris1": Exclusion.NOT_SELECTED, "iris2": Exclusion.NOT_SELECTED}


@pytest.mark.parametrize(("app", "winner"), [("foo", "iris1"), ("bar", "iris2")])
def test_only_nodes_of_the_services_advertisements_are_candidates(app: str, winner: str) -> None:
    # TestL2ServiceSelectorFiltersCandidateNodes.
    ads = [
        adv("foo", node_selectors=hosts("iris1"), service_selectors=(LabelSelector({"app": "foo"}),)),
        adv("bar", node_selectors=hosts("iris2"), service_selectors=(LabelSelector({"app": "bar"}),)),
    ]
    decision = run([service(labels={"app": app})], [node("iris1"), node("iris2")], ads)
    assert decision.order == (winner,)


def test_each_node_announces_on_its_own_advertisements_interfaces() -> None:
    # TestL2ElectionConsistentButAdsPerNode, and an advertisement for another Service does not add its
    # interfaces.
    web = (LabelSelector({"app": "web"}),)
    ads = [
        adv("one", node_selectors=hosts("iris1"), interfaces=("eth0",), service_selectors=web),
        adv("two", node_selectors=hosts("iris2"), interfaces=("eth1",), service_selectors=web),
        adv("other", interfaces=("eth2",), service_selectors=(LabelSelector({"app": "other"}),)),
    ]
    nodes = [node("iris1"), node("iris2")]
    decision = run([service(labels={"app": "web"})], nodes, ads)
    assert decision.node is not None and set(decision.order) == {"iris1", "iris2"}
    links = [Link("eth0"), Link("eth1"), Link("eth2")]
    assert interfaces_for(nodes[0], [POOL], decision.advertisements, links).interfaces == ("eth0",)
    assert interfaces_for(nodes[1], [POOL], decision.advertisements, links).interfaces == ("eth1",)


def test_services_sharing_an_ip_count_each_advertisement_once() -> None:
    pref = adv("pref", preferred_node_selectors=(prefer(10, role="edge"),))
    services = [service("http", shared=True), service("dns", shared=True)]
    decision = run(services, EDGE_WORKERS, [pref])
    assert decision.services == ("default/dns", "default/http")
    assert dict(decision.scores) == {"edge-a": 10, "edge-b": 10}


# -- properties ----------------------------------------------------------------------------------------------

NAMES = [f"n{i}" for i in range(6)]
ZONES = ["a", "b", "c"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Node], list[L2Advertisement], set[str], str]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=2))
    nodes = [
        Node(name, {"zone": draw(st.sampled_from(ZONES)), **({"gpu": "true"} if draw(st.booleans()) else {})})
        for name in names
    ]
    selector = st.sampled_from([LabelSelector({"zone": z}) for z in ZONES] + [LabelSelector({"gpu": "true"})])
    preferences = st.lists(st.builds(PreferredNodeSelector, st.integers(1, 100), selector), max_size=3)
    ads = [
        adv(
            f"ad{i}",
            node_selectors=tuple(draw(st.lists(selector, max_size=2))),
            preferred_node_selectors=tuple(p),
        )
        for i, p in enumerate(draw(st.lists(preferences, min_size=1, max_size=3)))
    ]
    live = draw(st.sets(st.sampled_from(names), min_size=1))
    ip = draw(st.sampled_from(["10.20.30.1", "10.20.30.2", "2001:db8::5"]))
    return nodes, ads, live, ip


def elect_in(world: tuple[list[Node], list[L2Advertisement], set[str], str]) -> Election:
    nodes, ads, live, ip = world
    svc = service(ip=ip)
    return announcer_for(
        ip,
        [svc],
        nodes=nodes,
        endpoint_slices=[endpoints_on(svc, *NAMES)],
        l2_advertisements=ads,
        live_members=live,
    )


def without_preferences(ads: list[L2Advertisement]) -> list[L2Advertisement]:
    return [replace(a, preferred_node_selectors=()) for a in ads]


@settings(max_examples=300, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_every_speaker_reaches_the_same_order(
    world: tuple[list[Node], list[L2Advertisement], set[str], str], rnd: random.Random
) -> None:
    nodes, ads, live, ip = world
    shuffled_nodes, shuffled_ads = list(nodes), list(ads)
    rnd.shuffle(shuffled_nodes)
    rnd.shuffle(shuffled_ads)
    assert elect_in((shuffled_nodes, shuffled_ads, set(live), ip)) == elect_in(world)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_preferences_reorder_the_candidates_and_never_change_them(
    world: tuple[list[Node], list[L2Advertisement], set[str], str],
) -> None:
    nodes, ads, live, ip = world
    with_prefs = elect_in(world)
    plain = elect_in((nodes, without_preferences(ads), live, ip))
    assert set(with_prefs.order) == set(plain.order)
    assert with_prefs.excluded == plain.excluded
    assert plain.scores == {}
    # The winner has the highest score; equal scores keep the hash order of the election without them.
    scores = [with_prefs.scores.get(n, 0) for n in with_prefs.order]
    assert scores == sorted(scores, reverse=True)
    for score in set(scores):
        tier = [n for n in with_prefs.order if with_prefs.scores.get(n, 0) == score]
        assert tier == [n for n in plain.order if n in tier]


@settings(max_examples=300, deadline=None)
@given(worlds(), st.integers(1, 100))
def test_a_node_only_the_preference_matches_wins(
    world: tuple[list[Node], list[L2Advertisement], set[str], str], weight: int
) -> None:
    # A new advertisement selecting every node and preferring exactly one live node by name: it wins
    # whatever else the other advertisements prefer, as long as its weight tops their sum.
    nodes, ads, live, ip = world
    favourite = sorted(live)[-1]
    heaviest = sum(p.weight for a in ads for p in a.preferred_node_selectors)
    ads = [
        *ads,
        adv(
            "fav",
            preferred_node_selectors=(
                PreferredNodeSelector(heaviest + weight, LabelSelector({HOSTNAME: favourite})),
            ),
        ),
    ]
    nodes = [Node(n.name, {**n.labels, HOSTNAME: n.name}) for n in nodes]
    assert elect_in((nodes, ads, live, ip)).node == favourite
