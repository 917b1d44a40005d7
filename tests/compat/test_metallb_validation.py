"""MetalLB's validation_test.go replayed (TestValidate, TestValidateFRR): manifests with MetalLB's verdicts.

MetalLB runs one of two validators before it parses a configuration (`config.For`): native BGP mode's, which
refuses what only its FRR mode implements (BFD profiles, graceful restart, localASN, IPv6 or large
communities...), and FRR mode's, which refuses peers that cannot share one FRR instance on a node (router
IDs or AS numbers that differ, the same neighbor twice). metallb-py implements those features as the FRR mode
does, so TestValidateFRR's verdicts are ours; a TestValidate case refused only for a feature native mode lacks
is a deliberate difference (`differs`).

MetalLB's cases call the validator alone, on objects reduced to the field under test (a BGPPeer with only
`enableGracefulRestart`, say). A user applies whole objects, and `config.For` would refuse a peer without
AS numbers or an address whatever the validator says; so each peer here carries myASN, peerASN (or
dynamicASN) and an address (or interface), chosen not to change the verdict: the same myASN for every peer
and the same router ID (none) unless the case is about them. A peer's BFD profile is defined when the peer
names it, so the case is about the profile and not about a missing reference. Addresses are documentation
ranges (MetalLB's 1.2.3.x become 192.0.2.x, keeping which ones are equal).

TestValidateFRR's node cases give the validator Nodes: two peers of one address are refused only when some
node is selected by both (conservatively: always, when no Node is known). Our loader takes no Nodes; it
refuses two peers of one neighbor when their nodeSelectors could select one node, which gives every case
MetalLB's verdict except the conservative one (a deliberate difference: peers per rack keep working).

TestValidateFRR also refuses peers whose router IDs or myASNs differ, because FRR mode runs one FRR instance
per node. Our speaker opens each session on its own, as MetalLB's native mode does (which accepts them):
deliberate differences, so fixtures and manifests written for native mode keep loading.
"""

from __future__ import annotations

import pytest
from _verdict import Case, check, params

NATIVE_ONLY = "TestValidate"
FRR = "TestValidateFRR"


def manifest(kind: str, name: str, spec: str, *, labels: str = "") -> str:
    """One object in namespace metallb-system; `spec` (and `labels`) in YAML flow style."""
    version = "v1beta2" if kind == "BGPPeer" else "v1beta1"
    extra = f", labels: {labels}" if labels else ""
    return (
        f"apiVersion: metallb.io/{version}\nkind: {kind}\n"
        f"metadata: {{name: {name}, namespace: metallb-system{extra}}}\nspec: {spec}\n"
    )


def objects(*documents: str) -> str:
    return "---\n".join(documents)


def peer(name: str, fields: str, *, asn: str = "myASN: 64500, peerASN: 64501") -> str:
    """A BGPPeer with AS numbers (`asn`) and `fields` (its address and what the case is about)."""
    return manifest("BGPPeer", name, f"{{{asn}, {fields}}}")


def peer_on_nodes(name: str, *hostnames: str) -> str:
    """MetalLB's peerOnNodes: a peer of 192.0.2.4 on the nodes with these hostnames (any of them)."""
    selectors = ", ".join(f"{{matchLabels: {{kubernetes.io/hostname: {h}}}}}" for h in hostnames)
    return peer(name, f"peerAddress: 192.0.2.4, nodeSelectors: [{selectors}]")


V6_POOL = manifest("IPAddressPool", "foo", "{addresses: ['2001:db8::/64']}")
V6_POOL_LABELLED = manifest("IPAddressPool", "foo", "{addresses: ['2001:db8::/64']}", labels="{key: value}")

# Why a TestValidate case that native mode refuses is accepted here.
BFD = "metallb-py implements BFD profiles, as MetalLB's FRR mode does"
IPV6 = "metallb-py advertises IPv6 pools over BGP, as MetalLB's FRR mode does"


NATIVE_CASES = [
    Case(
        "peer with bfd profile",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4, bfdProfile: foo"), manifest("BFDProfile", "foo", "{}")
        ),
        accepted=False,
        differs=BFD,
    ),
    Case(
        "bfd profile set",
        objects(peer("peer1", "peerAddress: 192.0.2.4"), manifest("BFDProfile", "foo", "{}")),
        accepted=False,
        differs=BFD,
    ),
    Case(
        "v6 address",
        objects(V6_POOL, manifest("BGPAdvertisement", "foo", "{}")),
        accepted=False,
        differs=IPV6,
    ),
    Case(
        "v6 address but pool not selected",
        objects(V6_POOL, manifest("BGPAdvertisement", "foo", "{ipAddressPools: [bar]}")),
        accepted=True,
        warns=("unknown IPAddressPool",),
    ),
    # MetalLB's two advertisements are both named "bar"; the API server would keep only the second.
    Case(
        "v6 address and selected",
        objects(
            V6_POOL,
            manifest("BGPAdvertisement", "bar-1", "{ipAddressPools: [foo1]}"),
            manifest("BGPAdvertisement", "bar", "{ipAddressPools: [foo]}"),
        ),
        accepted=False,
        warns=("unknown IPAddressPool",),
        differs=IPV6,
    ),
    Case(
        "v6 address and selected by labels",
        objects(
            V6_POOL_LABELLED,
            manifest("BGPAdvertisement", "bar-1", "{ipAddressPools: [foo1]}"),
            manifest("BGPAdvertisement", "bar", "{ipAddressPoolSelectors: [{matchLabels: {key: value}}]}"),
        ),
        accepted=False,
        warns=("unknown IPAddressPool",),
        differs=IPV6,
    ),
    Case(
        "enable BGP GracefulRestart",
        peer("peer1", "peerAddress: 192.0.2.4, enableGracefulRestart: true"),
        accepted=False,
        differs="metallb-py implements graceful restart, as MetalLB's FRR mode does",
    ),
    Case(
        "disable BGP MP",
        peer("peer1", "peerAddress: 192.0.2.4, disableMP: true"),
        accepted=False,
        differs="metallb-py accepts disableMP, as MetalLB's FRR mode does (it has no effect in either)",
    ),
    Case(
        "dynamic ASN",
        peer("peer1", "peerAddress: 192.0.2.4", asn="myASN: 64500, dynamicASN: internal"),
        accepted=False,
        differs="metallb-py implements dynamicASN, as MetalLB's FRR mode does",
    ),
    Case(
        "interface",
        peer("peer1", "interface: eth0"),
        accepted=False,
        differs=(
            "metallb-py accepts interface (unnumbered) peers in the configuration, as MetalLB's FRR mode "
            "does; its speaker reports such a peer as not supported yet"
        ),
    ),
    Case(
        "localASN",
        peer("peer1", "peerAddress: 192.0.2.4, localASN: 65410"),
        accepted=False,
        differs="metallb-py implements localASN, as MetalLB's FRR mode does",
    ),
    Case(
        "keepalive time",
        peer("peer1", "peerAddress: 192.0.2.4, keepaliveTime: 1s"),
        accepted=False,
        differs="metallb-py implements keepaliveTime, as MetalLB's FRR mode does",
    ),
    Case(
        "connect time",
        peer("peer1", "peerAddress: 192.0.2.4, connectTime: 1s"),
        accepted=False,
        differs="metallb-py implements connectTime, as MetalLB's FRR mode does",
    ),
    Case(
        "large BGP community inside BGP Advertisement",
        manifest("BGPAdvertisement", "adv1", "{communities: ['large:123:456:789']}"),
        accepted=False,
        differs="metallb-py sends large communities, as MetalLB's FRR mode does",
    ),
    Case(
        "large BGP community inside Community CR",
        manifest(
            "Community", "communities", "{communities: [{name: large-one, value: 'large:123:456:789'}]}"
        ),
        accepted=False,
        differs="metallb-py sends large communities, as MetalLB's FRR mode does",
    ),
    Case("should pass", peer("peer1", "peerAddress: 192.0.2.4"), accepted=True),
]

OWN_SESSIONS = (
    "metallb-py's speaker opens each BGP session on its own, as MetalLB's native mode does "
    "(which accepts this); only FRR mode, one FRR instance per node, refuses {what} that differ"
)

FRR_CASES = [
    Case("peer with routerid", peer("peer1", "peerAddress: 192.0.2.4, routerID: 192.0.2.4"), accepted=True),
    Case(
        "routerid set, one different",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4, routerID: 192.0.2.4"),
            peer("peer2", "peerAddress: 192.0.2.5, routerID: 192.0.2.4"),
            peer("peer3", "peerAddress: 192.0.2.6, routerID: 192.0.2.5"),
        ),
        accepted=False,
        differs=OWN_SESSIONS.format(what="router IDs"),
    ),
    Case(
        "routerid set, one not set",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4, routerID: 192.0.2.4"),
            peer("peer2", "peerAddress: 192.0.2.5, routerID: 192.0.2.4"),
            peer("peer3", "peerAddress: 192.0.2.6"),
        ),
        accepted=False,
        differs=OWN_SESSIONS.format(what="router IDs"),
    ),
    Case(
        "bfd profile set",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4, routerID: 192.0.2.4"), manifest("BFDProfile", "foo", "{}")
        ),
        accepted=True,
    ),
    Case(
        "myAsn set, all equals",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4", asn="myASN: 123, peerASN: 64501"),
            peer("peer2", "peerAddress: 192.0.2.5", asn="myASN: 123, peerASN: 64501"),
            peer("peer3", "peerAddress: 192.0.2.6", asn="myASN: 123, peerASN: 64501"),
        ),
        accepted=True,
    ),
    Case(
        "myAsn set, one different",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4", asn="myASN: 123, peerASN: 64501"),
            peer("peer2", "peerAddress: 192.0.2.5", asn="myASN: 123, peerASN: 64501"),
            peer("peer3", "peerAddress: 192.0.2.6", asn="myASN: 124, peerASN: 64501"),
        ),
        accepted=False,
        differs=OWN_SESSIONS.format(what="AS numbers"),
    ),
    Case(
        "myAsn set, one different but with different vrf",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4", asn="myASN: 123, peerASN: 64501"),
            peer("peer2", "peerAddress: 192.0.2.5", asn="myASN: 123, peerASN: 64501"),
            peer("peer3", "peerAddress: 192.0.2.6, vrf: red", asn="myASN: 124, peerASN: 64501"),
        ),
        accepted=True,
    ),
    Case(
        "myAsn set, two different but with different vrf",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4, vrf: red", asn="myASN: 123, peerASN: 64501"),
            peer("peer2", "peerAddress: 192.0.2.5, vrf: red", asn="myASN: 123, peerASN: 64501"),
            peer("peer3", "peerAddress: 192.0.2.6", asn="myASN: 124, peerASN: 64501"),
        ),
        accepted=True,
    ),
    Case(
        "duplicate bgp address",
        objects(peer("peer1", "peerAddress: 192.0.2.4"), peer("peer2", "peerAddress: 192.0.2.4")),
        accepted=False,
        error="identical",
    ),
    Case(
        "duplicate bgp address, different vrfs",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4"),
            peer("peer2", "peerAddress: 192.0.2.4, vrf: red"),
            peer("peer3", "peerAddress: 192.0.2.4, vrf: green"),
        ),
        accepted=True,
    ),
    Case(
        "duplicate bgp address, same vrf",
        objects(
            peer("peer1", "peerAddress: 192.0.2.4"),
            peer("peer2", "peerAddress: 192.0.2.4, vrf: red"),
            peer("peer3", "peerAddress: 192.0.2.4, vrf: red"),
        ),
        accepted=False,
        error="identical",
    ),
    Case(
        "two peers with interface set different",
        objects(
            peer("peer1", "interface: eth0", asn="myASN: 123, peerASN: 64501"),
            peer("peer2", "interface: eth1", asn="myASN: 123, peerASN: 64501"),
        ),
        accepted=True,
    ),
    Case(
        "two peers with interface set same",
        objects(
            peer("peer1", "interface: eth0", asn="myASN: 123, peerASN: 64501"),
            peer("peer2", "interface: eth0", asn="myASN: 123, peerASN: 64501"),
        ),
        accepted=False,
        error="identical",
    ),
    Case(
        "duplicate address, disjoint hostname selectors",
        objects(peer_on_nodes("peer1", "node1"), peer_on_nodes("peer2", "node2")),
        accepted=True,
    ),
    # Refused with or without Nodes: both peers select node1.
    Case(
        "duplicate address, overlapping hostname selectors",
        objects(peer_on_nodes("peer1", "node1"), peer_on_nodes("peer2", "node1")),
        accepted=False,
        error="identical",
    ),
    # Refused with or without Nodes: a peer without nodeSelectors is on every node.
    Case(
        "duplicate address, one peer without nodeSelector matches all nodes",
        objects(peer("peer1", "peerAddress: 192.0.2.4"), peer_on_nodes("peer2", "node1")),
        accepted=False,
    ),
    # No Nodes, as our loader always sees it.
    Case(
        "duplicate address, disjoint selectors but no nodes known (conservative)",
        objects(peer_on_nodes("peer1", "node1"), peer_on_nodes("peer2", "node2")),
        accepted=False,
        differs=(
            "our loader sees no Nodes; peers whose nodeSelectors no node can match both of are accepted, "
            "as MetalLB accepts them once it knows the Nodes, whatever they are"
        ),
    ),
    Case(
        "three peers same address, all on distinct nodes",
        objects(
            peer_on_nodes("peer1", "node1"), peer_on_nodes("peer2", "node2"), peer_on_nodes("peer3", "node3")
        ),
        accepted=True,
    ),
    # Refused with or without Nodes: the first and third peers both select node1.
    Case(
        "three peers same address, third overlaps with first",
        objects(
            peer_on_nodes("peer1", "node1"), peer_on_nodes("peer2", "node2"), peer_on_nodes("peer3", "node1")
        ),
        accepted=False,
        error="identical",
    ),
    Case(
        "duplicate address, multiple nodeSelectors (OR), disjoint",
        objects(peer_on_nodes("peer1", "node1", "node2"), peer_on_nodes("peer2", "node3", "node4")),
        accepted=True,
    ),
    # Refused with or without Nodes: both peers select node2.
    Case(
        "duplicate address, multiple nodeSelectors (OR), overlap via second selector",
        objects(peer_on_nodes("peer1", "node1", "node2"), peer_on_nodes("peer2", "node3", "node2")),
        accepted=False,
    ),
]


@pytest.mark.parametrize("case", params(NATIVE_CASES, NATIVE_ONLY))
def test_validate_native_mode(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", params(FRR_CASES, FRR))
def test_validate_frr_mode(case: Case) -> None:
    check(case)
