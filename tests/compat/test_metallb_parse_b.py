"""MetalLB's TestParse (internal/config/config_test.go), second half: from "bad community literal (wrong
format) - in BGP adv" to the end of the table, replayed through `check` with MetalLB's verdicts.

Each case is the manifests a user would apply for MetalLB's ClusterResources. Objects MetalLB's table leaves
unnamed get a name, and the test's camel-case names (`testPool`, `testAdv`) are written `test-pool` and
`test-adv`: the API server takes only DNS-1123 names, and no verdict depends on a name. Where MetalLB's
expected Config shows something cheap to check (the pools an advertisement resolves to, CIDRs, peer and
BFD profile fields), `EXPECTED` checks it on the Config we build.

MetalLB resolves node selectors against the cluster's Nodes at load time; here the selectors are kept and
matched later, so the Node objects of its cases are not configuration to apply: their labels are what the
expectations match the selectors against.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import textwrap
from collections.abc import Callable
from typing import TypeVar

import pytest
from _verdict import Case, check, params

from metallb_py._core import Pool
from metallb_py.config import BFDProfile, BGPAdvertisement, BGPCommunity, BGPPeer, Config, L2Advertisement

# The labels of the two Nodes of MetalLB's node selector cases.
FIRST_NODE = {"first": "true"}
SECOND_NODE = {"second": "true"}

NEEDS_SECRET = (
    "needs a Secret: the verdict depends on the Secret the peer names, which the speaker reads when it "
    "builds the session (speaker.bgpplan), not the configuration loader"
)
NEEDS_PASSTHROUGH = (
    "calls For with ForOptions{FRRK8sSecretPassthrough: true}, a MetalLB deployment option for frr-k8s "
    "that this package does not have"
)


def case(
    desc: str,
    objects: str,
    accepted: bool,
    *,
    warns: tuple[str, ...] = (),
    error: str = "",
    skip: str = "",
) -> Case:
    return Case(desc, textwrap.dedent(objects), accepted, warns=warns, error=error, skip=skip)


CASES = [
    case(
        "bad community literal (wrong format) - in BGP adv",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: test-pool, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: test-adv, namespace: metallb-system}
        spec:
          communities: ["1234"]
          ipAddressPools: [test-pool]
        """,
        accepted=False,
        error="unknown community alias",
    ),
    case(
        "bad community literal (asn part doesn't fit) - in BGP adv",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: test-pool, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: test-adv, namespace: metallb-system}
        spec:
          communities: ["99999999:1"]
          ipAddressPools: [test-pool]
        """,
        accepted=False,
        error="16-bit",
    ),
    case(
        "bad community literal (community# part doesn't fit) - in BGP adv",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: test-pool, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: test-adv, namespace: metallb-system}
        spec:
          communities: ["1:99999999"]
          ipAddressPools: [test-pool]
        """,
        accepted=False,
        error="16-bit",
    ),
    case(
        "bad community ref (unknown ref) - in BGP adv",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: test-pool, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: test-adv, namespace: metallb-system}
        spec:
          communities: [community]
          ipAddressPools: [test-pool]
        """,
        accepted=False,
        error="unknown community alias",
    ),
    case(
        "duplicate community literal - in BGP adv",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: test-pool, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: test-adv, namespace: metallb-system}
        spec:
          communities: ["1234:5678", "1234:5678"]
          ipAddressPools: [test-pool]
        """,
        accepted=False,
        error="duplicate community",
    ),
    case(
        "bad community literal (wrong format) - in the community CR",
        """
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {name: community, namespace: metallb-system}
        spec:
          communities:
          - name: bar
            value: "1234"
        """,
        accepted=False,
        error="neither a community",
    ),
    case(
        "bad community literal (asn part doesn't fit) - in the community CR",
        """
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {name: community, namespace: metallb-system}
        spec:
          communities:
          - name: bar
            value: "99999999:1"
        """,
        accepted=False,
        error="16-bit",
    ),
    case(
        "bad community literal (community# part doesn't fit) - in the community CR",
        """
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {name: community, namespace: metallb-system}
        spec:
          communities:
          - name: bar
            value: "1:99999999"
        """,
        accepted=False,
        error="16-bit",
    ),
    case(
        "duplicate communities definition (in 2 different crs)",
        """
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {name: community1, namespace: metallb-system}
        spec:
          communities:
          - name: bar
            value: "1234:5678"
        ---
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {name: community2, namespace: metallb-system}
        spec:
          communities:
          - name: bar
            value: "1234:5678"
        """,
        accepted=False,
        error="also defined by",
    ),
    case(
        "duplicate communities definition (in the same cr)",
        """
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {name: community, namespace: metallb-system}
        spec:
          communities:
          - name: bar
            value: "1234:5678"
          - name: bar
            value: "1234:5678"
        """,
        accepted=False,
        error="duplicate alias name",
    ),
    # As in MetalLB's table, the pools have no addresses, which MetalLB rejects before it sees the
    # duplicate name; so do we.
    case(
        "duplicate pool definition",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec: {}
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool2, namespace: metallb-system}
        spec: {}
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec: {}
        """,
        accepted=False,
        error="spec.addresses",
    ),
    # MetalLB's table writes the first CIDR with a leading space, kept here.
    case(
        "duplicate CIDRs",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [" 10.0.0.0/8"]
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool2, namespace: metallb-system}
        spec:
          addresses: [" 10.0.0.0/8"]
        """,
        accepted=False,
        error="spaces around the CIDR",  # MetalLB refuses " 10.0.0.0/8" before it looks at overlaps
    ),
    case(
        "overlapping CIDRs",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [" 10.0.0.0/8"]
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool2, namespace: metallb-system}
        spec:
          addresses: [10.0.0.0/16]
        """,
        accepted=False,
        error="spaces around the CIDR",  # MetalLB refuses " 10.0.0.0/8" before it looks at overlaps
    ),
    case(
        "Session with default BFD Profile",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerAddress: 1.2.3.4
          bfdProfile: default
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.0/24]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: default, namespace: metallb-system}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv3, namespace: metallb-system}
        """,
        accepted=True,
    ),
    case(
        "BGP Peer with both password and secret ref set",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerAddress: 1.2.3.4
          password: nopass
          passwordSecret: {name: nosecret, namespace: metallb-system}
        """,
        accepted=False,
        error="mutually exclusive",
    ),
    case(
        "BGP Peer with invalid secret type",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerAddress: 1.2.3.4
          passwordSecret: {name: bgpsecret, namespace: metallb-system}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: bgpsecret, namespace: metallb-system}
        type: Opaque
        """,
        accepted=False,
        skip=NEEDS_SECRET,
    ),
    case(
        "BGP Peer without password set in the secret",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerAddress: 1.2.3.4
          passwordSecret: {name: bgpsecret, namespace: metallb-system}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: bgpsecret, namespace: metallb-system}
        type: kubernetes.io/basic-auth
        """,
        accepted=False,
        skip=NEEDS_SECRET,
    ),
    case(
        "BGP Peer with a valid secret",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerPort: 179
          peerAddress: 1.2.3.4
          passwordSecret: {name: bgpsecret, namespace: metallb-system}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: bgpsecret, namespace: metallb-system}
        type: kubernetes.io/basic-auth
        stringData: {password: nopass}
        """,
        accepted=True,
        skip=NEEDS_SECRET,
    ),
    case(
        "BGP Peer with unavailable secret ref",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerAddress: 1.2.3.4
          passwordSecret: {name: nosecret, namespace: metallb-system}
        """,
        accepted=False,
        skip=NEEDS_SECRET,
    ),
    case(
        "BGP Peer with secret ref and frrk8s secret passthrough skips resolution even when secret exists",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerPort: 179
          peerAddress: 1.2.3.4
          passwordSecret: {name: bgpsecret, namespace: frr-k8s-external}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: bgpsecret, namespace: metallb-system}
        type: kubernetes.io/basic-auth
        stringData: {password: shouldnotresolve}
        """,
        accepted=True,
        skip=NEEDS_PASSTHROUGH,
    ),
    case(
        "BGP Peer with secret ref and frrk8s secret passthrough",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerPort: 179
          peerAddress: 1.2.3.4
          passwordSecret: {name: bgpsecret, namespace: frr-k8s-external}
        """,
        accepted=True,
        skip=NEEDS_PASSTHROUGH,
    ),
    case(
        "Peer with non existing BFD Profile",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerAddress: 1.2.3.4
          bfdProfile: default
        ---
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
        accepted=False,
        error="unknown BFDProfile",
    ),
    case(
        "Multiple BFD Profiles with the same name",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.0/24]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: default, namespace: metallb-system}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: foo, namespace: metallb-system}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: foo, namespace: metallb-system}
        """,
        accepted=False,
        error="duplicate BFDProfile name",
    ),
    case(
        "Session with nondefault BFD Profile",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.0/24]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: nondefault, namespace: metallb-system}
        spec:
          receiveInterval: 50
          transmitInterval: 51
          detectMultiplier: 52
          echoInterval: 54
          echoMode: true
          passiveMode: true
          minimumTtl: 55
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv3, namespace: metallb-system}
        """,
        accepted=True,
    ),
    case(
        "BFD Profile with too low receive interval",
        """
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: default, namespace: metallb-system}
        spec:
          receiveInterval: 2
        """,
        accepted=False,
        error="receiveInterval",
    ),
    case(
        "BFD Profile with too high receive interval",
        """
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: default, namespace: metallb-system}
        spec:
          receiveInterval: 90000
        """,
        accepted=False,
        error="receiveInterval",
    ),
    case(
        "Session with ipv6 and bfd echo mode",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: ["fc00:f853:0ccd:e793::/64"]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: nondefault, namespace: metallb-system}
        spec:
          receiveInterval: 50
          transmitInterval: 51
          detectMultiplier: 52
          echoInterval: 54
          echoMode: true
          passiveMode: true
          minimumTtl: 55
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv3, namespace: metallb-system}
        ---
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 142
          peerAddress: 1.2.3.4
          peerPort: 1179
          holdTime: 180s
          routerID: 10.20.30.40
          sourceAddress: 10.20.30.40
          ebgpMultiHop: true
          bfdProfile: nondefault
        """,
        accepted=False,
        error="echo",
    ),
    case(
        "Session with ipv4 and bfd echo mode",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.0/24]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BFDProfile
        metadata: {name: with-echo, namespace: metallb-system}
        spec:
          echoMode: true
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv, namespace: metallb-system}
        ---
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 142
          peerAddress: 1.2.3.4
          peerPort: 1179
          bfdProfile: with-echo
        """,
        accepted=True,
    ),
    # adv3 names pool2, which is not defined: MetalLB leaves it out until it is.
    case(
        "config IPAddressPool with large communities CR",
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
          routerID: 10.20.30.40
          sourceAddress: 10.20.30.40
          ebgpMultiHop: true
          vrf: foo
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
        kind: Community
        metadata: {name: community, namespace: metallb-system}
        spec:
          communities:
          - name: bar
            value: "large:123:64512:1234"
        """,
        accepted=True,
        warns=("unknown IPAddressPool",),
    ),
    case(
        "use ip pool selectors",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata:
          name: pool1
          namespace: metallb-system
          labels: {test: pool1}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata:
          name: pool2
          namespace: metallb-system
          labels: {test: pool2}
        spec:
          addresses: [30.0.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv1, namespace: metallb-system}
        spec:
          ipAddressPoolSelectors:
          - matchLabels: {test: pool1}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 32
          localPref: 100
          ipAddressPoolSelectors:
          - matchLabels: {test: pool1}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          aggregationLength: 32
          localPref: 200
          ipAddressPoolSelectors:
          - matchLabels: {test: pool2}
        """,
        accepted=True,
    ),
    case(
        "specify interfaces",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata:
          name: pool1
          namespace: metallb-system
          labels: {test: pool1}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv1, namespace: metallb-system}
        spec:
          ipAddressPoolSelectors:
          - matchLabels: {test: pool1}
          interfaces: [eth0]
        """,
        accepted=True,
    ),
    case(
        "use duplicate match labels in ip pool selectors - in BGP adv",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata:
          name: pool1
          namespace: metallb-system
          labels: {test: pool1}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 32
          localPref: 100
          ipAddressPoolSelectors:
          - matchLabels: {test: pool1}
          - matchLabels: {test: pool1}
        """,
        accepted=False,
        error="duplicate selector",
    ),
    case(
        "use duplicate match expression in ip pool selector - in BGP adv",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata:
          name: pool1
          namespace: metallb-system
          labels: {test: pool1}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 32
          localPref: 100
          ipAddressPoolSelectors:
          - matchExpressions:
            - {key: test, operator: In, values: [pool1, pool1]}
        """,
        accepted=False,
        error="duplicate value",
    ),
    case(
        "use duplicate ip pool selectors - in L2 adv",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata:
          name: pool1
          namespace: metallb-system
          labels: {test: pool1}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          ipAddressPoolSelectors:
          - matchLabels: {test: pool1}
          - matchLabels: {test: pool1}
        """,
        accepted=False,
        error="duplicate selector",
    ),
    case(
        "use non existent label for ip pool selectors",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata:
          name: pool1
          namespace: metallb-system
          labels: {test: pool1}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata:
          name: pool2
          namespace: metallb-system
          labels: {test: pool2}
        spec:
          addresses: [30.0.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv1, namespace: metallb-system}
        spec:
          ipAddressPoolSelectors:
          - matchLabels: {test: do-not-select-pool}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 32
          localPref: 100
          ipAddressPoolSelectors:
          - matchLabels: {test: do-not-select-pool}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          aggregationLength: 32
          localPref: 200
          ipAddressPoolSelectors:
          - matchLabels: {test: do-not-select-pool}
        """,
        accepted=True,
    ),
    case(
        "use node selectors",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool2, namespace: metallb-system}
        spec:
          addresses: [30.0.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          ipAddressPools: [pool1]
          nodeSelectors:
          - matchLabels: {second: "true"}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv2, namespace: metallb-system}
        spec:
          ipAddressPools: [pool2]
          nodeSelectors:
          - matchLabels: {first: "true"}
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv1, namespace: metallb-system}
        spec:
          nodeSelectors:
          - matchLabels: {first: "true"}
          ipAddressPools: [pool1]
        """,
        accepted=True,
    ),
    case(
        "use duplicate match labels in node selectors",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          ipAddressPools: [pool1]
          nodeSelectors:
          - matchLabels: {second: "true"}
          - matchLabels: {second: "true"}
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv1, namespace: metallb-system}
        spec:
          nodeSelectors:
          - matchLabels: {first: "true"}
          - matchLabels: {first: "true"}
          ipAddressPools: [pool1]
        """,
        accepted=False,
        error="duplicate selector",
    ),
    # The two expressions differ only in the order of their values: MetalLB sorts the values before it
    # compares expressions.
    case(
        "use duplicate match expression values in node selector",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          ipAddressPools: [pool1]
          nodeSelectors:
          - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [first, second]}
            - {key: kubernetes.io/hostname, operator: In, values: [second, first]}
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv1, namespace: metallb-system}
        spec:
          nodeSelectors:
          - matchExpressions:
            - {key: kubernetes.io/hostname, operator: In, values: [first]}
          ipAddressPools: [pool1]
        """,
        accepted=False,
    ),
    case(
        "no nodes means all nodes",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [10.20.0.0/16]
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2adv1, namespace: metallb-system}
        """,
        accepted=True,
    ),
    case(
        "advertisement with peer selector",
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: pool1, namespace: metallb-system}
        spec:
          addresses: [1.2.3.0/24]
        ---
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          peerAddress: 1.2.3.4
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv1, namespace: metallb-system}
        spec:
          aggregationLength: 32
          localPref: 100
          ipAddressPools: [pool1]
          peers: [peer1]
        """,
        accepted=True,
    ),
    case(
        "peer with dynamic asn",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          dynamicASN: internal
          peerAddress: 1.2.3.4
        """,
        accepted=True,
    ),
    # As in MetalLB's table, this peer and the next have no address either; the AS numbers are checked first.
    case(
        "peer without asn or dynamic asn",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
        """,
        accepted=False,
        error="peerASN or dynamicASN",
    ),
    case(
        "peer with both asn and dynamic asn",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 42
          dynamicASN: internal
        """,
        accepted=False,
        error="peerASN and dynamicASN are mutually exclusive",
    ),
    case(
        "unnumbered peer without address with interface ok",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          dynamicASN: internal
          interface: net0
        """,
        accepted=True,
    ),
    case(
        "unnumbered peer without address without interface nok",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: invalid, namespace: metallb-system}
        spec:
          myASN: 42
          dynamicASN: internal
        """,
        accepted=False,
        error="peerAddress",
    ),
    case(
        "unnumbered peer with address with interface nok",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: invalid, namespace: metallb-system}
        spec:
          peerAddress: 1.2.3.4
          interface: net0
          myASN: 42
          dynamicASN: internal
        """,
        accepted=False,
        error="peerAddress and interface are mutually exclusive",
    ),
    case(
        "peer with DisableMP field",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 42
          peerASN: 142
          peerAddress: 1.2.3.4
          disableMP: true
        """,
        accepted=True,
    ),
    case(
        "peer with localASN field",
        """
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {name: peer1, namespace: metallb-system}
        spec:
          myASN: 100
          peerASN: 200
          peerAddress: 1.2.3.4
          localASN: 65410
        """,
        accepted=True,
    ),
]


# -- what MetalLB's expected Config shows, checked on ours ---------------------------------------------------

EXPECTED: dict[str, Callable[[Config], None]] = {}


def expects(desc: str) -> Callable[[Callable[[Config], None]], Callable[[Config], None]]:
    def register(fn: Callable[[Config], None]) -> Callable[[Config], None]:
        assert desc not in EXPECTED, f"two expectations for {desc!r}"
        EXPECTED[desc] = fn
        return fn

    return register


def pool(config: Config, name: str) -> Pool:
    found = config.pool(name)
    assert found is not None, f"no pool {name!r}"
    return found


def cidrs(p: Pool) -> list[str]:
    """The pool's addresses as CIDRs, as MetalLB's Pool.CIDR lists them."""
    return [str(n) for first, last in p.ranges() for n in ipaddress.summarize_address_range(first, last)]


Named = TypeVar("Named", BGPAdvertisement, L2Advertisement, BGPPeer, BFDProfile)


def named(records: list[Named], name: str) -> Named:
    found = [r for r in records if r.name == name]
    assert len(found) == 1, f"no {name!r} among {[r.name for r in records]}"
    return found[0]


def bgp_adv(config: Config, name: str) -> BGPAdvertisement:
    return named(config.bgp_advertisements, name)


def l2_adv(config: Config, name: str) -> L2Advertisement:
    return named(config.l2_advertisements, name)


def peer(config: Config, name: str) -> BGPPeer:
    return named(config.bgp_peers, name)


def profile(config: Config, name: str) -> BFDProfile:
    return named(config.bfd_profiles, name)


def advertised(config: Config, pool_name: str) -> tuple[list[str], list[str]]:
    """The names of the BGP and of the L2 advertisements of a pool."""
    return (
        [a.name for a in config.bgp_advertisements_for(pool_name)],
        [a.name for a in config.l2_advertisements_for(pool_name)],
    )


@expects("Session with default BFD Profile")
def _default_bfd_profile(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.my_asn, p.peer_asn, p.peer_address, p.bfd_profile) == (42, 42, "1.2.3.4", "default")
    assert profile(config, "default") == BFDProfile("default")
    assert cidrs(pool(config, "pool1")) == ["1.2.3.0/24"]
    adv = bgp_adv(config, "adv3")
    assert (adv.pools, adv.aggregation_length, adv.aggregation_length_v6) == (("pool1",), 32, 128)


@expects("Session with nondefault BFD Profile")
def _nondefault_bfd_profile(config: Config) -> None:
    assert profile(config, "nondefault") == BFDProfile(
        "nondefault",
        receive_interval=50,
        transmit_interval=51,
        detect_multiplier=52,
        echo_interval=54,
        echo_mode=True,
        passive_mode=True,
        minimum_ttl=55,
    )
    assert config.bgp_peers == []
    assert advertised(config, "pool1") == (["adv3"], [])


@expects("Session with ipv4 and bfd echo mode")
def _ipv4_echo(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.peer_asn, p.peer_port, p.bfd_profile) == (142, 1179, "with-echo")
    assert profile(config, "with-echo") == BFDProfile("with-echo", echo_mode=True)
    assert cidrs(pool(config, "pool1")) == ["1.2.3.0/24"]
    assert advertised(config, "pool1") == (["adv"], [])


@expects("config IPAddressPool with large communities CR")
def _large_communities(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.my_asn, p.peer_asn, p.peer_address, p.peer_port) == (42, 142, "1.2.3.4", 1179)
    assert (p.source_address, p.router_id) == ("10.20.30.40", "10.20.30.40")
    assert (p.vrf, p.ebgp_multihop) == ("foo", True)
    assert p.hold_time == dt.timedelta(seconds=180)
    pool1 = pool(config, "pool1")
    assert cidrs(pool1) == ["10.20.0.0/16", "10.50.0.0/24"]
    assert (pool1.auto_assign, pool1.avoid_buggy_ips) == (False, True)
    assert advertised(config, "pool1") == (["adv1", "adv2"], [])
    adv1 = bgp_adv(config, "adv1")
    assert (adv1.local_pref, adv1.peers) == (100, ("peer1",))
    assert adv1.community_values == (BGPCommunity((123, 64512, 1234)),)
    adv2 = bgp_adv(config, "adv2")
    assert (adv2.aggregation_length, adv2.aggregation_length_v6, adv2.peers) == (24, 64, ())
    assert bgp_adv(config, "adv3").pools == ()


@expects("use ip pool selectors")
def _pool_selectors(config: Config) -> None:
    assert advertised(config, "pool1") == (["adv1"], ["l2adv1"])
    assert advertised(config, "pool2") == (["adv2"], [])
    assert (bgp_adv(config, "adv1").local_pref, bgp_adv(config, "adv2").local_pref) == (100, 200)
    assert cidrs(pool(config, "pool2")) == ["30.0.0.0/16"]


@expects("specify interfaces")
def _interfaces(config: Config) -> None:
    l2 = l2_adv(config, "l2adv1")
    assert (l2.pools, l2.interfaces) == (("pool1",), ("eth0",))


@expects("use non existent label for ip pool selectors")
def _selectors_matching_nothing(config: Config) -> None:
    assert [p.name for p in config.pools] == ["pool1", "pool2"]
    assert [a.pools for a in config.bgp_advertisements + config.l2_advertisements] == [(), (), ()]


@expects("use node selectors")
def _node_selectors(config: Config) -> None:
    assert advertised(config, "pool1") == (["adv1"], ["l2adv1"])
    assert advertised(config, "pool2") == (["adv2"], [])
    adv1, adv2 = bgp_adv(config, "adv1"), bgp_adv(config, "adv2")
    assert (adv1.selects_node(FIRST_NODE), adv1.selects_node(SECOND_NODE)) == (False, True)
    assert (adv2.selects_node(FIRST_NODE), adv2.selects_node(SECOND_NODE)) == (True, False)
    (selector,) = l2_adv(config, "l2adv1").node_selectors
    assert (selector.matches(FIRST_NODE), selector.matches(SECOND_NODE)) == (True, False)


@expects("no nodes means all nodes")
def _no_node_selectors(config: Config) -> None:
    assert advertised(config, "pool1") == (["adv1"], ["l2adv1"])
    adv1 = bgp_adv(config, "adv1")
    assert adv1.selects_node(FIRST_NODE) and adv1.selects_node(SECOND_NODE)
    l2 = l2_adv(config, "l2adv1")
    assert (l2.node_selectors, l2.interfaces) == ((), ())


@expects("advertisement with peer selector")
def _peer_selector(config: Config) -> None:
    adv1 = bgp_adv(config, "adv1")
    assert (adv1.pools, adv1.peers, adv1.local_pref) == (("pool1",), ("peer1",), 100)
    assert adv1.selects_peer("peer1") and not adv1.selects_peer("peer2")
    p = peer(config, "peer1")
    assert (p.my_asn, p.peer_asn, p.ebgp_multihop) == (42, 42, False)


@expects("peer with dynamic asn")
def _dynamic_asn(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.my_asn, p.peer_asn, p.dynamic_asn, p.peer_address) == (42, None, "internal", "1.2.3.4")


@expects("unnumbered peer without address with interface ok")
def _unnumbered(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.interface, p.peer_address, p.dynamic_asn) == ("net0", None, "internal")


@expects("peer with DisableMP field")
def _disable_mp(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.disable_mp, p.dual_stack_address_family) == (True, False)


@expects("peer with localASN field")
def _local_asn(config: Config) -> None:
    p = peer(config, "peer1")
    assert (p.my_asn, p.peer_asn, p.local_asn, p.session_asn) == (100, 200, 65410, 65410)


@pytest.mark.parametrize("case", params(CASES, "TestParse"))
def test_parse(case: Case) -> None:
    config = check(case)
    expectation = EXPECTED.get(case.desc)
    if expectation is not None:
        assert config is not None
        expectation(config)


def test_expectations_name_accepted_cases() -> None:
    accepted = {c.desc for c in CASES if c.accepted and not c.skip}
    assert set(EXPECTED) <= accepted, sorted(set(EXPECTED) - accepted)
