"""MetalLB's TestParse (internal/config/config_test.go), first half: its 47 cases up to "bad community literal
(wrong format) - in BGP adv" (where test_metallb_parse_b.py takes over), replayed through `check`.

Each case is written as the manifests a user would apply in namespace metallb-system for MetalLB's
ClusterResources. Objects its table leaves unnamed are named here (adv1, peer1...), and its camel-case names
(`testPool`, `testAdv`) become `test-pool` and `test-adv`: the API server takes DNS-1123 names only, and no
verdict depends on a name. MetalLB's table calls `config.For` with `DontValidate`, so its verdicts are the
parser's alone.

Some cases carry cluster objects that are not configuration: Namespaces (which a pool's namespaceSelectors
pick) and Nodes (which node selectors pick). They are not applied here; where MetalLB's expected Config
shows their effect, `EXPECTED` checks our records against their labels instead (a pool's allocation matches
the Namespace, an advertisement selects the Node). `EXPECTED` also checks what else MetalLB's expected Config
shows cheaply: masked CIDRs, address ranges, the pools an advertisement resolves to, timers.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Callable

import pytest
from _verdict import Case, check, params

from metallb_py.config import BGPCommunity, BGPPeer, Config

SOURCE = "TestParse"


def case(
    desc: str, objects: str, accepted: bool, *, warns: tuple[str, ...] = (), error: str = "", skip: str = ""
) -> Case:
    return Case(desc, textwrap.dedent(objects), accepted, warns=warns, error=error, skip=skip)


# The pool of MetalLB's `testPool`, as most cases near the end of this half use it.
TEST_POOL = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: test-pool, namespace: metallb-system}
spec:
  addresses: [10.20.0.0/16]
"""

# The peer most peer cases vary: iBGP (myASN = peerASN) to 1.2.3.4.
PEER1 = """
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: peer1, namespace: metallb-system}
spec:
  myASN: 42
  peerASN: 42
  peerAddress: 1.2.3.4
"""


def after(first: str, rest: str) -> str:
    """Manifests written flush left followed by more in an indented literal."""
    return first + textwrap.dedent(rest)


def peer1_with(extra: str) -> str:
    """PEER1 with more spec fields (YAML lines indented by two spaces)."""
    return PEER1 + textwrap.dedent(extra).strip("\n").replace("\n", "\n  ").join(("  ", "\n"))


# Cases 38 to 42 share one pool, written with host bits as MetalLB's table writes it.
HOST_BITS_POOL = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool1, namespace: metallb-system}
spec:
  addresses: [10.20.30.40/24]
"""
MASKED = '"10.20.30.40/24" has host bits set; using 10.20.30.0/24 as MetalLB does'

CASES = [
    case("empty config", "", accepted=True),
    case(
        "config using all features",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 142
          peerAddress: 1.2.3.4
          peerPort: 1179
          holdTime: 180s
          connectTime: 1s
          routerID: 10.20.30.40
          sourceAddress: 10.20.30.40
          enableGracefulRestart: true
          ebgpMultiHop: true
          vrf: foo
        ---
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer2, namespace: metallb-system}
        spec:
          myASN: 100
          peerASN: 200
          peerAddress: 2.3.4.5
          connectTime: 1s
          nodeSelectors:
          - matchLabels: {foo: bar}
            matchExpressions:
            - {key: bar, operator: In, values: [quux]}
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16, 10.50.0.0/24]
          avoidBuggyIPs: true
          autoAssign: false
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool2, namespace: metallb-system}
        spec:
          addresses: [30.0.0.0/8]
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool3, namespace: metallb-system}
        spec:
          addresses:
          - 40.0.0.0/25
          - 40.0.0.150-40.0.0.200
          - 40.0.0.210 - 40.0.0.240
          - 40.0.0.250 - 40.0.0.250
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool4, namespace: metallb-system}
        spec:
          addresses: [2001:db8::/64]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 32
          localPref: 100
          communities: [bar]
          ipAddressPools: [pool1]
          peers: [peer1]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          aggregationLength: 24
          aggregationLengthV6: 64
          ipAddressPools: [pool1]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv3, namespace: metallb-system}
        spec:
          ipAddressPools: [pool2]
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv1, namespace: metallb-system}
        spec:
          ipAddressPools: [pool3]
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv2, namespace: metallb-system}
        ---
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {name: community, namespace: metallb-system}
        spec:
          communities:
          - {name: bar, value: "64512:1234"}
        """,
        accepted=True,
    ),
    # MetalLB's case has Namespaces test-ns1 (no labels) and test-ns2 (team: metallb): EXPECTED checks which
    # pool each one may use.
    case(
        "ip address pool with namespace selection",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16, 10.50.0.0/24]
          avoidBuggyIPs: true
          autoAssign: false
          serviceAllocation:
            priority: 1
            namespaces: [test-ns1]
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool2, namespace: metallb-system}
        spec:
          addresses: [30.0.0.0/8]
          serviceAllocation:
            priority: 2
            namespaceSelectors:
            - matchLabels: {team: metallb}
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool3, namespace: metallb-system}
        spec:
          addresses: [40.0.0.0/8]
          serviceAllocation:
            priority: 3
            namespaceSelectors:
            - matchLabels: {team: red}
        """,
        accepted=True,
    ),
    case(
        "ip address pool with duplicate namespace selection",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16, 10.50.0.0/24]
          avoidBuggyIPs: true
          autoAssign: false
          serviceAllocation:
            priority: 1
            namespaces: [test-ns1, test-ns1]
        """,
        accepted=False,
        error="spec.serviceAllocation.namespaces[1]: duplicate namespace",
    ),
    case(
        "ip address pool with duplicate namespace selectors",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16, 10.50.0.0/24]
          avoidBuggyIPs: true
          autoAssign: false
          serviceAllocation:
            priority: 1
            namespaceSelectors:
            - matchLabels: {foo: bar}
            - matchLabels: {foo: bar}
        """,
        accepted=False,
        error="spec.serviceAllocation.namespaceSelectors[1]: duplicate selector",
    ),
    case(
        "ip address pool with service selection",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [30.0.0.0/8]
          serviceAllocation:
            priority: 2
            serviceSelectors:
            - matchLabels: {team: metallb}
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool2, namespace: metallb-system}
        spec:
          addresses: [40.0.0.0/8]
          serviceAllocation:
            priority: 3
            serviceSelectors:
            - matchLabels: {team: red}
        """,
        accepted=True,
    ),
    case(
        "ip address pool with duplicate service selection",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [30.0.0.0/8]
          serviceAllocation:
            priority: 2
            serviceSelectors:
            - matchExpressions:
              - {key: foo, operator: In, values: [bar, bar]}
        """,
        accepted=False,
        error="values[1]: duplicate value",
    ),
    # Namespaces as in "ip address pool with namespace selection".
    case(
        "ip address pool with namespace and service selection",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [30.0.0.0/8]
          serviceAllocation:
            priority: 2
            namespaces: [test-ns1]
            serviceSelectors:
            - matchLabels: {testsvc-1: "1"}
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool2, namespace: metallb-system}
        spec:
          addresses: [40.0.0.0/8]
          serviceAllocation:
            priority: 3
            namespaceSelectors:
            - matchLabels: {team: metallb}
            serviceSelectors:
            - matchLabels: {testsvc-2: "2"}
        """,
        accepted=True,
    ),
    case(
        "ip address pool with only priority",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16, 10.50.0.0/24]
          avoidBuggyIPs: true
          autoAssign: false
          serviceAllocation:
            priority: 1
        """,
        accepted=True,
    ),
    case("peer-only", PEER1, accepted=True),
    case(
        "invalid peer-address",
        PEER1.replace("1.2.3.4", "1.2.3.400"),
        accepted=False,
        error='spec.peerAddress: "1.2.3.400" is not an IP address',
    ),
    case(
        "invalid my-asn",
        PEER1.replace("  myASN: 42\n", ""),
        accepted=False,
        error="spec.myASN: required field is missing",
    ),
    case(
        "invalid peer-asn",
        PEER1.replace("  peerASN: 42\n", ""),
        accepted=False,
        error="spec.peerASN: required field is missing",
    ),
    case(
        "invalid ebgp-multihop",
        peer1_with("ebgpMultiHop: true"),
        accepted=False,
        error="spec.ebgpMultiHop: ebgp multihop is for eBGP",
    ),
    case(
        "invalid keepalivetime larger than holdtime",
        peer1_with("holdTime: 30s\nkeepaliveTime: 90s"),
        accepted=False,
        error="spec.keepaliveTime: the keepalive time must not exceed the hold time",
    ),
    case(
        "invalid hold time (too short)",
        peer1_with("holdTime: 1s"),
        accepted=False,
        error="spec.holdTime: hold time 1s is too short",
    ),
    case("peer with holdtime only", peer1_with("holdTime: 180s"), accepted=True),
    case("peer with keepalive only", peer1_with("keepaliveTime: 60s"), accepted=True),
    case(
        "peer with zero hold/keepalive timers", peer1_with("holdTime: 0s\nkeepaliveTime: 0s"), accepted=True
    ),
    case("peer without hold/keepalive timers", PEER1, accepted=True),
    case(
        "invalid RouterID",
        peer1_with("routerID: oh god how do I BGP"),
        accepted=False,
        error='spec.routerID: "oh god how do I BGP" is not an IPv4 address',
    ),
    case("empty node selector (select everything)", PEER1, accepted=True),
    case(
        "invalid expression node selector (missing key)",
        peer1_with(
            """
            nodeSelectors:
            - matchLabels: {foo: bar}
              matchExpressions:
              - {operator: In, values: [quux]}
            """
        ),
        accepted=False,
        error="spec.nodeSelectors[0].matchExpressions[0].key: required field is missing",
    ),
    case(
        "invalid expression node selector (missing operator)",
        peer1_with(
            """
            nodeSelectors:
            - matchLabels: {foo: bar}
              matchExpressions:
              - {key: bar, values: [quux]}
            """
        ),
        accepted=False,
        error="spec.nodeSelectors[0].matchExpressions[0].operator: required field is missing",
    ),
    case(
        "invalid expression node selector (invalid operator)",
        peer1_with(
            """
            nodeSelectors:
            - matchLabels: {foo: bar}
              matchExpressions:
              - {key: bar, operator: surrounds, values: [quux]}
            """
        ),
        accepted=False,
        error='unknown operator "surrounds"',
    ),
    case(
        "duplicate values node selector match expression",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer, namespace: metallb-system}
        spec:
          myASN: 100
          peerASN: 200
          peerAddress: 2.3.4.5
          ebgpMultiHop: false
          nodeSelectors:
          - matchLabels: {foo: bar}
            matchExpressions:
            - {key: bar, operator: In, values: [quux, quux]}
        """,
        accepted=False,
        error="spec.nodeSelectors[0].matchExpressions[0].values[1]: duplicate value",
    ),
    # MetalLB's two peers have no names, so they are equal in every field; here they need names, and differ
    # only there.
    # MetalLB's two peers are unnamed, so they compare equal whole; a cluster cannot hold two objects of
    # one name, so here they differ in name only, and are refused as the same session twice (MetalLB's FRR
    # mode refuses them too: one neighbor per node).
    case(
        "duplicate peers",
        PEER1 + "---" + PEER1.replace("name: peer1", "name: peer2"),
        accepted=False,
        error='is identical to BGPPeer "peer1"',
    ),
    case(
        "no pool name",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {namespace: metallb-system}
        """,
        accepted=False,
        error="metadata.name: required field is missing",
    ),
    case(
        "address pool with no address",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec: {}
        """,
        accepted=False,
        error="spec.addresses: required field is missing",
    ),
    # The name is from the legacy format's `protocol`, which an IPAddressPool lacks; what the case leaves
    # out is the whole spec.
    case(
        "address pool with no protocol",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        """,
        accepted=False,
        error="document 1): spec: required field is missing",
    ),
    case(
        "invalid pool CIDR",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [100.200.300.400/24]
        """,
        accepted=False,
        error='"100.200.300.400" is not an IP address',
    ),
    case(
        "invalid pool CIDR prefix length",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.0/33]
        """,
        accepted=False,
        error="prefix length must be a number from 0 to 32",
    ),
    case(
        "invalid pool CIDR, first address of the range is after the second",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.10-1.2.3.1]
        """,
        accepted=False,
        error='spec.addresses[0]: "1.2.3.10-1.2.3.1" is reversed',
    ),
    case(
        "simple advertisement",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.0/24]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv3, namespace: metallb-system}
        """,
        accepted=True,
    ),
    case(
        "advertisement with default BGP settings",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.0/24]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv3, namespace: metallb-system}
        spec: {}
        """,
        accepted=True,
    ),
    # MetalLB's pool here is also invalid (a reversed range); either mistake refuses the configuration.
    case(
        "bad aggregation length (too long)",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.10-1.2.3.1]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 34
        """,
        accepted=False,
        error="spec.aggregationLength: 34 is out of range; expected 1 to 32",
    ),
    # 10.20.30.40/24 is masked to 10.20.30.0/24 (with a warning), then 1.2.3.0/28 is narrower than /26.
    case(
        "bad aggregation length (incompatible with CIDR)",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.30.40/24, 1.2.3.0/28]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 26
        """,
        accepted=False,
        error='spec.aggregationLength: 26 is shorter than the /28 prefix of "1.2.3.0/28"',
    ),
    # MetalLB's local preference cases have Nodes node1 and node2 (labelled node: node1 / node: node2 in the
    # fourth); advertisements without nodeSelectors are on both, which is what decides the first.
    case(
        "different local pref - same peers and nodes",
        after(
            HOST_BITS_POOL,
            """
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          localPref: 100
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          localPref: 200
        """,
        ),
        accepted=False,
        error='spec.localPref: 200 conflicts with localPref 100 of BGPAdvertisement "adv1"',
    ),
    case(
        "different local pref - different ipv4 aggregation length",
        after(
            HOST_BITS_POOL,
            """
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          localPref: 100
          aggregationLength: 24
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          localPref: 200
        """,
        ),
        accepted=True,
        warns=(MASKED,),
    ),
    case(
        "different local pref - different aggregation lengths",
        after(
            HOST_BITS_POOL,
            """
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          localPref: 100
          aggregationLength: 24
          aggregationLengthV6: 120
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          localPref: 200
        """,
        ),
        accepted=True,
        warns=(MASKED,),
    ),
    case(
        "different local pref - same peers & different nodes",
        after(
            HOST_BITS_POOL,
            """
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          localPref: 100
          nodeSelectors:
          - matchLabels: {node: node1}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          localPref: 200
          nodeSelectors:
          - matchLabels: {node: node2}
        """,
        ),
        accepted=True,
        warns=(MASKED,),
    ),
    # The peers the advertisements name are not defined: MetalLB does not look them up.
    case(
        "different local pref - different peers & same nodes",
        after(
            HOST_BITS_POOL,
            """
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          localPref: 100
          peers: [peer1]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          localPref: 200
          peers: [peer2]
        """,
        ),
        accepted=True,
        warns=(MASKED, 'spec.peers[0]: unknown BGPPeer "peer1"', 'spec.peers[0]: unknown BGPPeer "peer2"'),
    ),
    case(
        "aggregation length by range",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [3.3.3.2-3.3.3.254]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 26
        """,
        accepted=True,
    ),
    case(
        "aggregation length by range, too wide",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [3.3.3.2-3.3.3.254]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 24
        """,
        accepted=False,
        error='spec.aggregationLength: 24 is shorter than the /26 prefix of "3.3.3.2-3.3.3.254"',
    ),
    case(
        "duplicate ip address pools - in L2 adv",
        after(
            TEST_POOL,
            """
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: test-adv, namespace: metallb-system}
        spec:
          ipAddressPools: [test-pool, test-pool]
        """,
        ),
        accepted=False,
        error="spec.ipAddressPools[1]: duplicate pool name",
    ),
    case(
        "duplicate ip address pools - in BGP adv",
        after(
            TEST_POOL,
            """
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: test-adv, namespace: metallb-system}
        spec:
          ipAddressPools: [test-pool, test-pool]
        """,
        ),
        accepted=False,
        error="spec.ipAddressPools[1]: duplicate pool name",
    ),
    case(
        "duplicate peers - in BGP adv",
        after(
            TEST_POOL + "---" + PEER1,
            """
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: test-adv, namespace: metallb-system}
        spec:
          ipAddressPools: [test-pool]
          peers: [peer1, peer1]
        """,
        ),
        accepted=False,
        error="spec.peers[1]: duplicate peer",
    ),
]

# What MetalLB's expected Config shows, checked on ours (case name -> check of the lenient Config).
EXPECTED: dict[str, Callable[[Config], None]] = {}


def expects(desc: str) -> Callable[[Callable[[Config], None]], Callable[[Config], None]]:
    def register(function: Callable[[Config], None]) -> Callable[[Config], None]:
        assert desc not in EXPECTED
        EXPECTED[desc] = function
        return function

    return register


def ranges(config: Config, pool: str) -> list[str]:
    found = config.pool(pool)
    assert found is not None, pool
    return [f"{first}-{last}" for first, last in found.ranges()]


def resolved(config: Config) -> dict[str, tuple[str, ...]]:
    """Every advertisement's name -> the pools it resolves to."""
    out = {a.name: a.pools for a in config.l2_advertisements}
    return out | {a.name: a.pools for a in config.bgp_advertisements}


def peer(config: Config, name: str) -> BGPPeer:
    [found] = [p for p in config.bgp_peers if p.name == name]
    return found


def seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


@expects("empty config")
def _empty(config: Config) -> None:
    assert config == Config()


@expects("config using all features")
def _all_features(config: Config) -> None:
    assert ranges(config, "pool1") == ["10.20.0.0-10.20.255.255", "10.50.0.0-10.50.0.255"]
    pool1 = config.pool("pool1")
    assert pool1 is not None and (pool1.avoid_buggy_ips, pool1.auto_assign) == (True, False)
    # MetalLB summarizes the ranges into CIDRs (40.0.0.150/31, 40.0.0.152/29...); the addresses are these.
    assert ranges(config, "pool3") == [
        "40.0.0.0-40.0.0.127",
        "40.0.0.150-40.0.0.200",
        "40.0.0.210-40.0.0.240",
        "40.0.0.250-40.0.0.250",
    ]
    assert resolved(config) == {
        "l2adv1": ("pool3",),
        "l2adv2": ("pool1", "pool2", "pool3", "pool4"),
        "adv1": ("pool1",),
        "adv2": ("pool1",),
        "adv3": ("pool2",),
    }
    [adv1, adv2, adv3] = config.bgp_advertisements
    assert (adv1.local_pref, adv1.peers, adv1.community_values) == (
        100,
        ("peer1",),
        (BGPCommunity((64512, 1234)),),
    )
    assert (adv2.aggregation_length, adv2.aggregation_length_v6) == (24, 64)
    assert (adv3.aggregation_length, adv3.aggregation_length_v6, adv3.local_pref) == (32, 128, 0)
    p1, p2 = peer(config, "peer1"), peer(config, "peer2")
    assert (p1.my_asn, p1.peer_asn, p1.peer_address, p1.peer_port) == (42, 142, "1.2.3.4", 1179)
    assert (seconds(p1.hold_time), seconds(p1.connect_time), p1.router_id, p1.source_address) == (
        180,
        1,
        "10.20.30.40",
        "10.20.30.40",
    )
    assert (p1.enable_graceful_restart, p1.ebgp_multihop, p1.vrf) == (True, True, "foo")
    assert p1.selects_node({}) and not p2.selects_node({"foo": "bar"})
    assert p2.selects_node({"foo": "bar", "bar": "quux"})
    assert (p2.enable_graceful_restart, p2.ebgp_multihop, seconds(p2.connect_time)) == (False, False, 1)


def allowed(config: Config, pool: str, namespace: str, namespace_labels: dict[str, str]) -> bool:
    found = config.pool(pool)
    assert found is not None and found.service_allocation is not None
    return found.service_allocation.matches(namespace, namespace_labels, {})


# MetalLB's Namespaces: test-ns1 without labels, test-ns2 labelled team: metallb.
NAMESPACES = {"test-ns1": {}, "test-ns2": {"team": "metallb"}}


@expects("ip address pool with namespace selection")
def _namespace_selection(config: Config) -> None:
    # MetalLB: pool1 -> test-ns1, pool2 -> test-ns2, pool3 -> none of them.
    chosen = {
        name: [ns for ns, labels in NAMESPACES.items() if allowed(config, name, ns, labels)]
        for name in ("pool1", "pool2", "pool3")
    }
    assert chosen == {"pool1": ["test-ns1"], "pool2": ["test-ns2"], "pool3": []}
    priorities = [p.service_allocation.priority if p.service_allocation else None for p in config.pools]
    assert priorities == [1, 2, 3]


@expects("ip address pool with service selection")
def _service_selection(config: Config) -> None:
    for name, team in (("pool1", "metallb"), ("pool2", "red")):
        found = config.pool(name)
        assert found is not None and found.service_allocation is not None
        assert found.service_allocation.matches("any", {}, {"team": team})
        assert not found.service_allocation.matches("any", {}, {"team": "blue"})


@expects("ip address pool with namespace and service selection")
def _namespace_and_service(config: Config) -> None:
    for name, namespace, service_labels in (
        ("pool1", "test-ns1", {"testsvc-1": "1"}),
        ("pool2", "test-ns2", {"testsvc-2": "2"}),
    ):
        found = config.pool(name)
        assert found is not None and found.service_allocation is not None
        # MetalLB keeps namespaces and service selectors apart (ByNamespace, ByServiceSelector); a Service in
        # the pool's namespace that the selectors match may use it.
        assert found.service_allocation.matches(namespace, NAMESPACES[namespace], service_labels)


@expects("ip address pool with only priority")
def _only_priority(config: Config) -> None:
    found = config.pool("pool1")
    assert found is not None and found.service_allocation is not None
    # MetalLB: priority 1 and a selector that matches every Service.
    assert found.service_allocation.priority == 1
    assert found.service_allocation.matches("any", {}, {"any": "labels"})


@expects("peer-only")
def _peer_only(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.my_asn, p.peer_asn, p.peer_address, p.ebgp_multihop) == (42, 42, "1.2.3.4", False)
    assert p.selects_node({}) and config.pools == []


@expects("peer with holdtime only")
def _holdtime_only(config: Config) -> None:
    # MetalLB derives the keepalive time (60s, a third) when it builds the session; so does our speaker.
    assert seconds(peer(config, "peer1").hold_time) == 180


@expects("peer with keepalive only")
def _keepalive_only(config: Config) -> None:
    assert seconds(peer(config, "peer1").keepalive_time) == 60


@expects("peer with zero hold/keepalive timers")
def _zero_timers(config: Config) -> None:
    p = peer(config, "peer1")
    assert (seconds(p.hold_time), seconds(p.keepalive_time)) == (0, 0)


@expects("peer without hold/keepalive timers")
def _no_timers(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.hold_time, p.keepalive_time) == (None, None)


@expects("empty node selector (select everything)")
def _every_node(config: Config) -> None:
    assert peer(config, "peer1").selects_node({"any": "node"})


@expects("simple advertisement")
def _simple(config: Config) -> None:
    assert resolved(config) == {"adv3": ("pool1",)}


@expects("advertisement with default BGP settings")
def _defaults(config: Config) -> None:
    [adv] = config.bgp_advertisements
    assert (adv.aggregation_length, adv.aggregation_length_v6, adv.local_pref, adv.communities) == (
        32,
        128,
        0,
        (),
    )
    assert adv.pools == ("pool1",) and adv.selects_peer("any") and adv.selects_node({})


def _masked_and_both_advertise(config: Config) -> None:
    pool = config.pool("pool1")
    assert pool is not None and pool.addresses == ["10.20.30.0/24"]
    assert resolved(config) == {"adv1": ("pool1",), "adv2": ("pool1",)}


@expects("different local pref - different ipv4 aggregation length")
def _different_v4_length(config: Config) -> None:
    _masked_and_both_advertise(config)
    assert [(a.local_pref, a.aggregation_length) for a in config.bgp_advertisements] == [(100, 24), (200, 32)]


@expects("different local pref - different aggregation lengths")
def _different_lengths(config: Config) -> None:
    _masked_and_both_advertise(config)
    lengths = [(a.aggregation_length, a.aggregation_length_v6) for a in config.bgp_advertisements]
    assert lengths == [(24, 120), (32, 128)]


@expects("different local pref - same peers & different nodes")
def _different_nodes(config: Config) -> None:
    _masked_and_both_advertise(config)
    # MetalLB's Nodes: node1 (node: node1), node2 (node: node2); each advertisement selects one.
    nodes = {"node1": {"node": "node1"}, "node2": {"node": "node2"}}
    selected = {
        a.name: [n for n, labels in nodes.items() if a.selects_node(labels)]
        for a in config.bgp_advertisements
    }
    assert selected == {"adv1": ["node1"], "adv2": ["node2"]}


@expects("different local pref - different peers & same nodes")
def _different_peers(config: Config) -> None:
    _masked_and_both_advertise(config)
    assert [a.peers for a in config.bgp_advertisements] == [("peer1",), ("peer2",)]


@expects("aggregation length by range")
def _length_by_range(config: Config) -> None:
    # MetalLB's CIDRs of the range run from 3.3.3.2/31 to 3.3.3.254/32, the widest a /26: length 26 fits.
    assert ranges(config, "pool1") == ["3.3.3.2-3.3.3.254"]
    assert resolved(config) == {"adv1": ("pool1",)}
    assert config.bgp_advertisements[0].aggregation_length == 26


@pytest.mark.parametrize("case", params(CASES, SOURCE))
def test_parse(case: Case) -> None:
    config = check(case)
    expectation = EXPECTED.get(case.desc)
    if expectation is not None:
        assert config is not None
        expectation(config)


def test_the_first_half_of_the_table() -> None:
    """47 cases in MetalLB's order, to where test_metallb_parse_b.py starts; EXPECTED checks accepted ones."""
    assert len(CASES) == 47
    assert (CASES[0].desc, CASES[-1].desc) == ("empty config", "duplicate peers - in BGP adv")
    accepted = {c.desc for c in CASES if c.accepted and not c.skip}
    assert set(EXPECTED) <= accepted, sorted(set(EXPECTED) - accepted)
