"""MetalLB's config_test.go after TestParse replayed: TestContainsAdvertisement, TestServiceSelectors,
TestL2AdvertisementFromCRPreferred and TestSetL2AdvertisementsToPoolsPreferred.

Only TestServiceSelectors runs MetalLB's whole parser (`config.For`); the others call internal functions on
MetalLB's own structs, whose Nodes are already resolved from Node objects. Each is written here as the
manifests that would produce those structs (a set of nodes becomes nodeSelectors on kubernetes.io/hostname, in
lowercase: MetalLB's nodeA is no valid Node name), with what a user can see of the result: MetalLB's verdict,
and what the advertisements resolve to on our `Config` (their pools, serviceSelectors, nodeSelectors and
preferredNodeSelectors). The per-node preference scores MetalLB computes from Nodes (`PreferredNodes`) are the
layer 2 election's: the Config carries the weighted selectors they come from, and these tests check those.

containsAdvertisement keeps MetalLB from attaching two equal resolved advertisements to one pool. Announcing
through two equal advertisements is announcing through one, so its "contains" cases have nothing a user can
see and are skipped; its "does not contain" cases mean that both advertisements apply, which here is both
resolving to the pool (we never merge advertisements). With preferredNodeSelectors that is visible: the
weights of both count in the election.

Addresses are documentation ranges (MetalLB's 1.2.3.0/24, 1000::/64 and 10.20.0.0/24 become 192.0.2.0/24,
2001:db8:1000::/64 and 198.51.100.0/24).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from _verdict import Case, check, params

from metallb_py._core import LabelSelector
from metallb_py.config import Config
from metallb_py.config.model import BGPAdvertisement, L2Advertisement, PreferredNodeSelector


def manifest(kind: str, name: str, spec: str, *, labels: str = "") -> str:
    """One metallb.io/v1beta1 object in namespace metallb-system; `spec` (and `labels`) in YAML flow style."""
    extra = f", labels: {labels}" if labels else ""
    return (
        f"apiVersion: metallb.io/v1beta1\nkind: {kind}\n"
        f"metadata: {{name: {name}, namespace: metallb-system{extra}}}\nspec: {spec}\n"
    )


def objects(*documents: str) -> str:
    return "---\n".join(documents)


def pool(name: str, *addresses: str, labels: str = "") -> str:
    listed = ", ".join(f"'{a}'" for a in addresses)
    return manifest("IPAddressPool", name, f"{{addresses: [{listed}]}}", labels=labels)


def l2(name: str, spec: str = "{}") -> str:
    return manifest("L2Advertisement", name, spec)


def bgp(name: str, spec: str = "{}") -> str:
    return manifest("BGPAdvertisement", name, spec)


def on_nodes(*hostnames: str) -> str:
    """nodeSelectors (YAML) that select exactly these nodes: a Nodes set of MetalLB's structs."""
    return "[" + ", ".join(f"{{matchLabels: {{kubernetes.io/hostname: {h}}}}}" for h in hostnames) + "]"


def hostnames(*names: str) -> tuple[LabelSelector, ...]:
    """What `on_nodes` reads into."""
    return tuple(LabelSelector({"kubernetes.io/hostname": n}) for n in names)


def labels(**match: str) -> LabelSelector:
    return LabelSelector(match)


def prefer(weight: int, **match: str) -> PreferredNodeSelector:
    return PreferredNodeSelector(weight, LabelSelector(match))


@dataclass(frozen=True)
class Resolved:
    """Every advertisement of the Config, as it resolves (model records; `origin` plays no part)."""

    l2: Sequence[L2Advertisement] = ()
    bgp: Sequence[BGPAdvertisement] = ()


def assert_resolved(config: Config, want: Resolved) -> None:
    # MetalLB sorts serviceSelectors and we need not: they are compared as sets (duplicates are refused).
    def key(a: L2Advertisement | BGPAdvertisement) -> tuple[object, frozenset[LabelSelector]]:
        return replace(a, service_selectors=()), frozenset(a.service_selectors)

    got_l2 = sorted(config.l2_advertisements, key=lambda a: a.name)
    assert [key(a) for a in got_l2] == [key(a) for a in sorted(want.l2, key=lambda a: a.name)]
    got_bgp = sorted(config.bgp_advertisements, key=lambda a: a.name)
    assert [key(a) for a in got_bgp] == [key(a) for a in sorted(want.bgp, key=lambda a: a.name)]


def replay(case: Case, resolved: dict[str, Resolved]) -> None:
    config = check(case)
    if config is not None and case.desc in resolved:
        assert_resolved(config, resolved[case.desc])


# -- TestContainsAdvertisement ------------------------------------------------------------------------------

POOL1 = pool("pool1", "192.0.2.0/24")
EQUAL = (
    "MetalLB attaches an advertisement equal to one already on the pool only once; announcing through two "
    "equal advertisements is the same as through one, so nothing a user sees depends on it"
)
SORTED = (
    "MetalLB sorts an advertisement's serviceSelectors before it compares them, so two written in another "
    "order are equal; and two advertisements selecting the same Services announce as one"
)


def existing_and_candidate(existing: str, candidate: str) -> str:
    """MetalLB's `advs` (one advertisement, "existing") and `toCheck` ("candidate"), for one pool."""
    return objects(POOL1, l2("existing", existing), l2("candidate", candidate))


CONTAINS = [
    Case(
        "Contain",
        objects(
            POOL1,
            l2("existing", f"{{nodeSelectors: {on_nodes('nodea', 'nodeb')}, interfaces: [eth0, eth1]}}"),
            l2("existing-2", f"{{nodeSelectors: {on_nodes('nodeb')}}}"),
            l2("candidate", f"{{nodeSelectors: {on_nodes('nodeb', 'nodea')}, interfaces: [eth1, eth0]}}"),
        ),
        accepted=True,
        skip=EQUAL,
    ),
    Case(
        "Not contain: Nodes don't equal",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('nodea', 'nodeb')}, interfaces: [eth0, eth1]}}",
            f"{{nodeSelectors: {on_nodes('nodeb', 'nodec')}, interfaces: [eth1, eth0]}}",
        ),
        accepted=True,
    ),
    Case(
        "Not contain: Interfaces don't equal",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('nodea', 'nodeb')}, interfaces: [eth0, eth1]}}",
            f"{{nodeSelectors: {on_nodes('nodea', 'nodeb')}, interfaces: [eth1]}}",
        ),
        accepted=True,
    ),
    Case(
        "Not contain: AllInterfaces doesn't equal",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('nodea', 'nodeb')}, interfaces: [eth1]}}",
            f"{{nodeSelectors: {on_nodes('nodea', 'nodeb')}}}",
        ),
        accepted=True,
    ),
    Case(
        "Same selectors should match",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('nodea')}, serviceSelectors: [{{matchLabels: {{app: nginx}}}}]}}",
            f"{{nodeSelectors: {on_nodes('nodea')}, serviceSelectors: [{{matchLabels: {{app: nginx}}}}]}}",
        ),
        accepted=True,
        skip=EQUAL,
    ),
    Case(
        "Different selectors should not match",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('nodea')}, serviceSelectors: [{{matchLabels: {{app: nginx}}}}]}}",
            f"{{nodeSelectors: {on_nodes('nodea')}, serviceSelectors: [{{matchLabels: {{app: apache}}}}]}}",
        ),
        accepted=True,
    ),
    Case(
        "Empty vs non-empty selectors should not match",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('nodea')}}}",
            f"{{nodeSelectors: {on_nodes('nodea')}, serviceSelectors: [{{matchLabels: {{app: nginx}}}}]}}",
        ),
        accepted=True,
    ),
    Case(
        "Multiple selectors in same order should match",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('nodea')}, "
            "serviceSelectors: [{matchLabels: {app: apache}}, {matchLabels: {app: nginx}}]}",
            f"{{nodeSelectors: {on_nodes('nodea')}, "
            "serviceSelectors: [{matchLabels: {app: apache}}, {matchLabels: {app: nginx}}]}",
        ),
        accepted=True,
        skip=EQUAL,
    ),
    Case(
        "Multiple selectors in different order but with same selectors should not match",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('nodea')}, "
            "serviceSelectors: [{matchLabels: {app: apache}}, {matchLabels: {app: nginx}}]}",
            f"{{nodeSelectors: {on_nodes('nodea')}, "
            "serviceSelectors: [{matchLabels: {app: nginx}}, {matchLabels: {app: apache}}]}",
        ),
        accepted=True,
        skip=SORTED,
    ),
    # MetalLB's PreferredNodes {edge-a: 50}: a preference of weight 50 for edge-a.
    Case(
        "Ads carrying preferences never dedupe so speaker can sum weights",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('edge-a')}, preferredNodeSelectors: "
            "[{weight: 50, preference: {matchLabels: {kubernetes.io/hostname: edge-a}}}]}",
            f"{{nodeSelectors: {on_nodes('edge-a')}, preferredNodeSelectors: "
            "[{weight: 50, preference: {matchLabels: {kubernetes.io/hostname: edge-a}}}]}",
        ),
        accepted=True,
    ),
    Case(
        "Existing ad has preferences but candidate does not should not dedupe",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('edge-a')}, preferredNodeSelectors: "
            "[{weight: 50, preference: {matchLabels: {kubernetes.io/hostname: edge-a}}}]}",
            f"{{nodeSelectors: {on_nodes('edge-a')}}}",
        ),
        accepted=True,
    ),
    Case(
        "Candidate has preferences but existing ad does not should not dedupe",
        existing_and_candidate(
            f"{{nodeSelectors: {on_nodes('edge-a')}}}",
            f"{{nodeSelectors: {on_nodes('edge-a')}, preferredNodeSelectors: "
            "[{weight: 50, preference: {matchLabels: {kubernetes.io/hostname: edge-a}}}]}",
        ),
        accepted=True,
    ),
    Case(
        "Identical ads without preferences still dedupe",
        existing_and_candidate(f"{{nodeSelectors: {on_nodes('a')}}}", f"{{nodeSelectors: {on_nodes('a')}}}"),
        accepted=True,
        skip=EQUAL,
    ),
]


def both_apply(existing: L2Advertisement, candidate: L2Advertisement) -> Resolved:
    """Both advertisements resolve to pool1: neither hides the other."""
    return Resolved(
        l2=(
            replace(existing, name="existing", pools=("pool1",)),
            replace(candidate, name="candidate", pools=("pool1",)),
        )
    )


PREFER_EDGE_A = (PreferredNodeSelector(50, LabelSelector({"kubernetes.io/hostname": "edge-a"})),)
CONTAINS_RESOLVED = {
    "Not contain: Nodes don't equal": both_apply(
        L2Advertisement("", node_selectors=hostnames("nodea", "nodeb"), interfaces=("eth0", "eth1")),
        L2Advertisement("", node_selectors=hostnames("nodeb", "nodec"), interfaces=("eth1", "eth0")),
    ),
    "Not contain: Interfaces don't equal": both_apply(
        L2Advertisement("", node_selectors=hostnames("nodea", "nodeb"), interfaces=("eth0", "eth1")),
        L2Advertisement("", node_selectors=hostnames("nodea", "nodeb"), interfaces=("eth1",)),
    ),
    "Not contain: AllInterfaces doesn't equal": both_apply(
        L2Advertisement("", node_selectors=hostnames("nodea", "nodeb"), interfaces=("eth1",)),
        L2Advertisement("", node_selectors=hostnames("nodea", "nodeb")),
    ),
    "Different selectors should not match": both_apply(
        L2Advertisement("", node_selectors=hostnames("nodea"), service_selectors=(labels(app="nginx"),)),
        L2Advertisement("", node_selectors=hostnames("nodea"), service_selectors=(labels(app="apache"),)),
    ),
    "Empty vs non-empty selectors should not match": both_apply(
        L2Advertisement("", node_selectors=hostnames("nodea")),
        L2Advertisement("", node_selectors=hostnames("nodea"), service_selectors=(labels(app="nginx"),)),
    ),
    "Ads carrying preferences never dedupe so speaker can sum weights": both_apply(
        L2Advertisement("", node_selectors=hostnames("edge-a"), preferred_node_selectors=PREFER_EDGE_A),
        L2Advertisement("", node_selectors=hostnames("edge-a"), preferred_node_selectors=PREFER_EDGE_A),
    ),
    "Existing ad has preferences but candidate does not should not dedupe": both_apply(
        L2Advertisement("", node_selectors=hostnames("edge-a"), preferred_node_selectors=PREFER_EDGE_A),
        L2Advertisement("", node_selectors=hostnames("edge-a")),
    ),
    "Candidate has preferences but existing ad does not should not dedupe": both_apply(
        L2Advertisement("", node_selectors=hostnames("edge-a")),
        L2Advertisement("", node_selectors=hostnames("edge-a"), preferred_node_selectors=PREFER_EDGE_A),
    ),
}


@pytest.mark.parametrize("case", params(CONTAINS, "TestContainsAdvertisement"))
def test_contains_advertisement(case: Case) -> None:
    replay(case, CONTAINS_RESOLVED)


# -- TestServiceSelectors -----------------------------------------------------------------------------------

NGINX = "serviceSelectors: [{matchLabels: {app: nginx}}]"

SERVICE_SELECTORS = [
    Case(
        "BGP advertisement with service selectors",
        objects(pool("pool1", "192.0.2.0/24"), bgp("adv1", f"{{{NGINX}}}")),
        accepted=True,
    ),
    Case(
        "L2 advertisement with service selectors",
        objects(pool("pool1", "192.0.2.0/24"), l2("adv1", "{serviceSelectors: [{matchLabels: {app: web}}]}")),
        accepted=True,
    ),
    Case(
        "BGP advertisement with multiple service selectors (OR logic)",
        objects(
            pool("pool1", "192.0.2.0/24"),
            bgp("adv1", "{serviceSelectors: [{matchLabels: {app: nginx}}, {matchLabels: {app: apache}}]}"),
        ),
        accepted=True,
    ),
    Case(
        "BGP advertisement - serviceSelectors with non-default aggregationLength is mutually exclusive",
        objects(pool("pool1", "192.0.2.0/24"), bgp("adv1", f"{{aggregationLength: 24, {NGINX}}}")),
        accepted=False,
        error="serviceSelectors and aggregationLength are mutually exclusive",
    ),
    Case(
        "BGP advertisement - serviceSelectors with non-default aggregationLengthV6 is mutually exclusive",
        objects(pool("pool1", "2001:db8::/64"), bgp("adv1", f"{{aggregationLengthV6: 64, {NGINX}}}")),
        accepted=False,
        error="serviceSelectors and aggregationLengthV6 are mutually exclusive",
    ),
    Case(
        "BGP advertisement - serviceSelectors with default aggregationLengthV4 is allowed",
        objects(pool("pool1", "192.0.2.0/24"), bgp("adv1", f"{{aggregationLength: 32, {NGINX}}}")),
        accepted=True,
    ),
    Case(
        "BGP advertisement - serviceSelectors with default aggregationLengthV6 is allowed",
        objects(pool("pool1", "2001:db8:1000::/64"), bgp("adv1", f"{{aggregationLengthV6: 128, {NGINX}}}")),
        accepted=True,
    ),
    Case(
        "BGP advertisement - serviceSelectors with both default aggregationLength and aggregationLengthV6 is "
        "allowed",
        objects(
            pool("pool1", "192.0.2.0/24", "2001:db8:1000::/64"),
            bgp("adv1", f"{{aggregationLength: 32, aggregationLengthV6: 128, {NGINX}}}"),
        ),
        accepted=True,
    ),
    Case(
        "duplicate service selectors",
        objects(
            pool("pool1", "192.0.2.0/24"),
            bgp("adv1", "{serviceSelectors: [{matchLabels: {app: nginx}}, {matchLabels: {app: nginx}}]}"),
        ),
        accepted=False,
        error="duplicate selector",
    ),
]

BGP_NGINX = Resolved(
    bgp=(BGPAdvertisement("adv1", service_selectors=(labels(app="nginx"),), pools=("pool1",)),)
)
SERVICE_SELECTORS_RESOLVED = {
    "BGP advertisement with service selectors": BGP_NGINX,
    "L2 advertisement with service selectors": Resolved(
        l2=(L2Advertisement("adv1", service_selectors=(labels(app="web"),), pools=("pool1",)),)
    ),
    "BGP advertisement with multiple service selectors (OR logic)": Resolved(
        bgp=(
            BGPAdvertisement(
                "adv1", service_selectors=(labels(app="nginx"), labels(app="apache")), pools=("pool1",)
            ),
        )
    ),
    "BGP advertisement - serviceSelectors with default aggregationLengthV4 is allowed": BGP_NGINX,
    "BGP advertisement - serviceSelectors with default aggregationLengthV6 is allowed": BGP_NGINX,
    "BGP advertisement - serviceSelectors with both default aggregationLength and aggregationLengthV6 is "
    "allowed": BGP_NGINX,
}


@pytest.mark.parametrize("case", params(SERVICE_SELECTORS, "TestServiceSelectors"))
def test_service_selectors(case: Case) -> None:
    replay(case, SERVICE_SELECTORS_RESOLVED)


def test_service_selectors_or_logic() -> None:
    """TestServiceSelectors' OR case, as a Service sees it: either selector is enough."""
    (case,) = [c for c in SERVICE_SELECTORS if "(OR logic)" in c.desc]
    config = check(case)
    assert config is not None
    (adv,) = config.bgp_advertisements
    assert adv.selects_service({"app": "nginx"})
    assert adv.selects_service({"app": "apache", "tier": "web"})
    assert not adv.selects_service({"app": "haproxy"})


# -- TestL2AdvertisementFromCRPreferred ---------------------------------------------------------------------
# MetalLB's nodes: edge-a {role: edge, zone: primary}, edge-b {role: edge}, worker-a {role: worker}. Its
# wanted PreferredNodes are the election's scores of those nodes; the Config holds the weighted selectors.

PREFER_EDGE = "preferredNodeSelectors: [{weight: 100, preference: {matchLabels: {role: edge}}}]"
POOL_A = pool("pool1", "192.0.2.0/24")

FROM_CR = [
    Case(
        "preferred selector scores matching nodes",
        objects(POOL_A, l2("prefer-edge", f"{{{PREFER_EDGE}}}")),
        accepted=True,
    ),
    Case(
        "service selectors do not restrict preferred scoring",
        objects(
            POOL_A,
            l2(
                "prefer-edge-with-svc-selectors",
                f"{{serviceSelectors: [{{matchLabels: {{app: web}}}}], {PREFER_EDGE}}}",
            ),
        ),
        accepted=True,
    ),
    Case("no preferred selectors leaves PreferredNodes nil", objects(POOL_A, l2("basic")), accepted=True),
    Case(
        "preferred selectors disjoint from node selectors yield no scores",
        objects(
            POOL_A,
            l2(
                "disjoint",
                "{nodeSelectors: [{matchLabels: {role: worker}}], "
                "preferredNodeSelectors: [{weight: 50, preference: {matchLabels: {role: edge}}}]}",
            ),
        ),
        accepted=True,
    ),
    Case(
        "multiple preferred selectors sum on matching nodes",
        objects(
            POOL_A,
            l2(
                "sum-edge-zone",
                "{preferredNodeSelectors: [{weight: 40, preference: {matchLabels: {role: edge}}}, "
                "{weight: 30, preference: {matchLabels: {zone: primary}}}]}",
            ),
        ),
        accepted=True,
    ),
]

FROM_CR_RESOLVED = {
    "preferred selector scores matching nodes": Resolved(
        l2=(
            L2Advertisement(
                "prefer-edge", pools=("pool1",), preferred_node_selectors=(prefer(100, role="edge"),)
            ),
        )
    ),
    "service selectors do not restrict preferred scoring": Resolved(
        l2=(
            L2Advertisement(
                "prefer-edge-with-svc-selectors",
                pools=("pool1",),
                service_selectors=(labels(app="web"),),
                preferred_node_selectors=(prefer(100, role="edge"),),
            ),
        )
    ),
    "no preferred selectors leaves PreferredNodes nil": Resolved(
        l2=(L2Advertisement("basic", pools=("pool1",)),)
    ),
    "preferred selectors disjoint from node selectors yield no scores": Resolved(
        l2=(
            L2Advertisement(
                "disjoint",
                pools=("pool1",),
                node_selectors=(labels(role="worker"),),
                preferred_node_selectors=(prefer(50, role="edge"),),
            ),
        )
    ),
    "multiple preferred selectors sum on matching nodes": Resolved(
        l2=(
            L2Advertisement(
                "sum-edge-zone",
                pools=("pool1",),
                preferred_node_selectors=(prefer(40, role="edge"), prefer(30, zone="primary")),
            ),
        )
    ),
}


@pytest.mark.parametrize("case", params(FROM_CR, "TestL2AdvertisementFromCRPreferred"))
def test_l2_advertisement_from_cr_preferred(case: Case) -> None:
    replay(case, FROM_CR_RESOLVED)


# -- TestSetL2AdvertisementsToPoolsPreferred ----------------------------------------------------------------
# MetalLB's one node: edge-a {role: edge, zone: primary}.

TO_POOLS = [
    Case(
        "pool selected by name and selector attaches once",
        objects(
            pool("pool-a", "198.51.100.0/24", labels="{shared: 'true'}"),
            l2(
                "prefer-edge",
                "{ipAddressPools: [pool-a], ipAddressPoolSelectors: [{matchLabels: {shared: 'true'}}], "
                "preferredNodeSelectors: [{weight: 50, preference: {matchLabels: {role: edge}}}]}",
            ),
        ),
        accepted=True,
    ),
    Case(
        "two CRs targeting the same pool attach independently",
        objects(
            pool("pool-a", "198.51.100.0/24"),
            l2(
                "ad1-edge-70",
                "{ipAddressPools: [pool-a], "
                "preferredNodeSelectors: [{weight: 70, preference: {matchLabels: {role: edge}}}]}",
            ),
            l2(
                "ad2-edge-30",
                "{ipAddressPools: [pool-a], "
                "preferredNodeSelectors: [{weight: 30, preference: {matchLabels: {role: edge}}}]}",
            ),
        ),
        accepted=True,
    ),
    Case(
        "one CR with two selectors sums on the same node",
        objects(
            pool("pool-a", "198.51.100.0/24"),
            l2(
                "sum-edge-zone",
                "{ipAddressPools: [pool-a], "
                "preferredNodeSelectors: [{weight: 40, preference: {matchLabels: {role: edge}}}, "
                "{weight: 30, preference: {matchLabels: {zone: primary}}}]}",
            ),
        ),
        accepted=True,
    ),
]

TO_POOLS_RESOLVED = {
    "pool selected by name and selector attaches once": Resolved(
        l2=(
            L2Advertisement(
                "prefer-edge",
                ip_address_pools=("pool-a",),
                ip_address_pool_selectors=(labels(shared="true"),),
                pools=("pool-a",),
                preferred_node_selectors=(prefer(50, role="edge"),),
            ),
        )
    ),
    "two CRs targeting the same pool attach independently": Resolved(
        l2=(
            L2Advertisement(
                "ad1-edge-70",
                ip_address_pools=("pool-a",),
                pools=("pool-a",),
                preferred_node_selectors=(prefer(70, role="edge"),),
            ),
            L2Advertisement(
                "ad2-edge-30",
                ip_address_pools=("pool-a",),
                pools=("pool-a",),
                preferred_node_selectors=(prefer(30, role="edge"),),
            ),
        )
    ),
    "one CR with two selectors sums on the same node": Resolved(
        l2=(
            L2Advertisement(
                "sum-edge-zone",
                ip_address_pools=("pool-a",),
                pools=("pool-a",),
                preferred_node_selectors=(prefer(40, role="edge"), prefer(30, zone="primary")),
            ),
        )
    ),
}


@pytest.mark.parametrize("case", params(TO_POOLS, "TestSetL2AdvertisementsToPoolsPreferred"))
def test_set_l2_advertisements_to_pools_preferred(case: Case) -> None:
    replay(case, TO_POOLS_RESOLVED)


@pytest.mark.parametrize(
    ("cases", "resolved"),
    [
        (CONTAINS, CONTAINS_RESOLVED),
        (SERVICE_SELECTORS, SERVICE_SELECTORS_RESOLVED),
        (FROM_CR, FROM_CR_RESOLVED),
        (TO_POOLS, TO_POOLS_RESOLVED),
    ],
)
def test_every_resolution_belongs_to_an_accepted_case(
    cases: list[Case], resolved: dict[str, Resolved]
) -> None:
    """A misspelt name would leave a resolution unchecked."""
    accepted = {c.desc for c in cases if c.accepted and not c.skip}
    assert set(resolved) <= accepted
