"""metallb.io resources: the seed as CRDs, every kind's fields, and every validation rule."""

from __future__ import annotations

import copy
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.config import Config, dump_crds, load_config, load_config_files, load_objects
from metallb_py.config.crds import PEER_V1BETA2_FIELDS
from metallb_py.errors import ConfigError

FIXTURES = Path(__file__).parent.parent / "fixtures"
V1B1 = "metallb.io/v1beta1"


def obj(kind: str, name: str, spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    version = "metallb.io/v1beta2" if kind == "BGPPeer" else V1B1
    out: dict[str, Any] = {"apiVersion": version, "kind": kind, "metadata": {"name": name, **metadata}}
    if spec is not None:
        out["spec"] = spec
    return out


def pool(name: str = "blue", *addresses: str, **spec: Any) -> dict[str, Any]:
    return obj("IPAddressPool", name, {"addresses": list(addresses or ["192.0.2.0/24"]), **spec})


def peer(name: str = "r1", **spec: Any) -> dict[str, Any]:
    return obj("BGPPeer", name, {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", **spec})


def load(*docs: dict[str, Any]) -> Config:
    return load_config(yaml.safe_dump_all(docs), source="pools.yaml")


def where(doc: int, kind: str = "IPAddressPool", name: str = "blue") -> str:
    return f'{kind} "{name}" (pools.yaml, document {doc})'


def test_seed_as_crds_equals_the_seed_configmap() -> None:
    crds = load_config((FIXTURES / "seed-crds.yaml").read_text())
    legacy = load_config((FIXTURES / "seed-configmap.yaml").read_text())
    assert crds.pools == legacy.pools
    assert crds.l2_advertisements == legacy.l2_advertisements
    assert crds.legacy_protocols == {} and legacy.legacy_protocols == {"nginx-ip-range": "layer2"}


def test_every_kind_and_field() -> None:
    config = load(
        pool(
            "blue",
            "192.0.2.0/24",
            "2001:db8::/120",
            autoAssign=False,
            avoidBuggyIPs=True,
            serviceAllocation={
                "priority": 10,
                "namespaces": ["web"],
                "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
                "serviceSelectors": [
                    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]}
                ],
            },
        )
        | {"metadata": {"name": "blue", "labels": {"zone": "east"}}},
        pool("green", "198.51.100.10-198.51.100.20", serviceAllocation={"priority": 0}),
        obj(
            "L2Advertisement",
            "east",
            {
                "ipAddressPoolSelectors": [{"matchLabels": {"zone": "east"}}],
                "interfaces": ["eth0"],
                "nodeSelectors": [{"matchLabels": {"l2": "yes"}}],
            },
        ),
        obj("L2Advertisement", "all"),
        obj(
            "BGPAdvertisement",
            "agg",
            {
                "ipAddressPools": ["green"],
                "aggregationLength": 30,
                "localPref": 50,
                "communities": ["gold", "65000:1"],
                "peers": ["r1"],
            },
        ),
        obj("Community", "aliases", {"communities": [{"name": "gold", "value": "large:65000:0:1"}]}),
        peer(
            "r1",
            holdTime="30s",
            connectTime="5s",
            bfdProfile="fast",
            routerID="1.2.3.4",
            passwordSecret={"name": "bgp-auth"},
            vrf="red",
            enableGracefulRestart=True,
        ),
        peer("r2", peerASN=None, dynamicASN="external", peerAddress=None, interface="eth1"),
        obj("BFDProfile", "fast", {"receiveInterval": 300, "echoMode": False, "minimumTtl": 254}),
    )
    blue, green = config.pools
    assert (blue.auto_assign, blue.avoid_buggy_ips, blue.families) == (False, True, ["IPv4", "IPv6"])
    allocation = blue.service_allocation
    assert allocation is not None and allocation.priority == 10 and allocation.namespaces == ["web"]
    assert allocation.matches("other", {"team": "a"}, {"tier": "fe"})
    assert not allocation.matches("other", {"team": "b"}, {"tier": "fe"})
    # MetalLB reads priority 0 as "no priority".
    assert green.service_allocation is not None and green.service_allocation.priority is None
    assert config.pool_labels == {"blue": {"zone": "east"}, "green": {}}

    l2 = {a.name: a for a in config.l2_advertisements}
    assert l2["east"].pools == ("blue",) and l2["east"].interfaces == ("eth0",)
    assert l2["all"].pools == ("blue", "green")  # no pool names or selectors: every pool
    [agg] = config.bgp_advertisements
    assert (agg.pools, agg.aggregation_length, agg.aggregation_length_v6, agg.local_pref) == (
        ("green",),
        30,
        128,
        50,
    )
    assert [str(c) for c in agg.community_values] == ["large:65000:0:1", "65000:1"]
    assert config.bgp_advertisements_for("green") == [agg] and config.l2_advertisements_for("green") == [
        l2["all"]
    ]

    r1, r2 = config.bgp_peers
    assert (r1.hold_time, r1.keepalive_time, r1.connect_time) == (
        dt.timedelta(seconds=30),
        None,
        dt.timedelta(seconds=5),
    )
    assert r1.password_secret is not None and r1.password_secret.name == "bgp-auth"
    assert (r1.vrf, r1.enable_graceful_restart, r1.router_id, r1.peer_port) == ("red", True, "1.2.3.4", 179)
    assert (r2.peer_asn, r2.dynamic_asn, r2.interface, r2.peer_address) == (None, "external", "eth1", None)
    assert config.bfd_profiles[0].receive_interval == 300
    assert config.pool("green") is green and config.pool("nope") is None


def test_status_metadata_and_lists_are_accepted() -> None:
    doc = pool() | {"status": {"assignedIPv4": 3}}
    doc["metadata"] |= {"uid": "x", "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z"}
    listed = {"apiVersion": "v1", "kind": "List", "items": [doc, obj("L2Advertisement", "l2")]}
    config = load_config(yaml.safe_dump(listed) + "---\n")
    assert [p.name for p in config.pools] == ["blue"] and len(config.l2_advertisements) == 1


def test_objects_and_files(tmp_path: Path) -> None:
    (tmp_path / "pools.yaml").write_text(yaml.safe_dump(pool()))
    (tmp_path / "l2.yaml").write_text(
        yaml.safe_dump(obj("L2Advertisement", "l2", {"ipAddressPools": ["blue"]}))
    )
    config = load_config_files([tmp_path / "pools.yaml", tmp_path / "l2.yaml"])
    assert config.l2_advertisements[0].pools == ("blue",)
    assert load_objects([pool()]).pools == config.pools
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text"):
        load_config_files([tmp_path / "latin1.yaml"])
    # Alone, l2.yaml names a pool that does not exist: skipped with a warning, or an error when strict.
    alone = load_config_files([tmp_path / "l2.yaml"])
    assert alone.l2_advertisements[0].pools == ()
    unknown = (
        r'L2Advertisement "l2" \(.*l2.yaml, document 1\): spec.ipAddressPools\[0\]: unknown IPAddressPool'
    )
    assert len(alone.warnings) == 1 and re.match(unknown, alone.warnings[0])
    with pytest.raises(ConfigError, match=unknown):
        load_config_files([tmp_path / "l2.yaml"], strict=True)


def test_lists_are_sorted_by_name_whatever_the_input_order() -> None:
    a = load(
        pool("b", "10.0.1.0/24"),
        pool("a", "10.0.0.0/24"),
        obj("L2Advertisement", "z"),
        obj("L2Advertisement", "y"),
    )
    b = load(
        obj("L2Advertisement", "y"),
        pool("a", "10.0.0.0/24"),
        obj("L2Advertisement", "z"),
        pool("b", "10.0.1.0/24"),
    )
    assert a == b
    assert [p.name for p in a.pools] == ["a", "b"]


def with_spec(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


# (documents, fragments of the message): every message names the object (kind, name, source, document) and
# the field path.
CRD_ERRORS = [
    pytest.param(
        [pool("blue", "192.0.2.9-192.0.2.1")],
        [f"{where(1)}: spec.addresses[0]", "is reversed"],
        id="reversed",
    ),
    pytest.param(
        [pool("blue", "192.0.2.1-2001:db8::1")],
        [f"{where(1)}: spec.addresses[0]", "mixes IPv4 and IPv6"],
        id="mixed-family",
    ),
    pytest.param(
        [pool("blue", "lots of IPs")], [f"{where(1)}: spec.addresses[0]", "neither a CIDR"], id="bad-text"
    ),
    pytest.param(
        [pool("blue", "192.0.2.7")], [f"{where(1)}: spec.addresses[0]", "192.0.2.7/32"], id="single-address"
    ),
    pytest.param(
        [pool("blue", "192.0.2.0/24", "192.0.2.10-192.0.2.20")],
        [f"{where(1)}: spec.addresses", "overlap"],
        id="overlap-within",
    ),
    pytest.param(
        [pool("blue", "192.0.2.0/24"), pool("green", "198.51.100.0/24", "192.0.2.128/25")],
        [
            f'{where(2, name="green")}: spec.addresses[1]: "192.0.2.128/25" overlaps "192.0.2.0/24" '
            f"of {where(1)}, "
            "spec.addresses[0]"
        ],
        id="overlap-across",
    ),
    pytest.param(
        [pool("blue", "2001:db8::/64"), pool("green", "2001:db8::8000-2001:db8::8fff")],
        ["overlaps", where(1)],
        id="overlap-v6",
    ),
    pytest.param(
        [with_spec(pool(), addresses=None)],
        [f"{where(1)}: spec.addresses: required field is missing"],
        id="missing-addresses",
    ),
    pytest.param(
        [with_spec(pool(), addresses=None, adresses=["10.0.0.0/8"])],
        ['spec.addresses: required field is missing (found unknown field "adresses"'],
        id="misspelt-required",
    ),
    pytest.param(
        [with_spec(pool(), addresses=[])],
        [f"{where(1)}: spec.addresses: a pool needs at least one"],
        id="empty-addresses",
    ),
    pytest.param(
        [with_spec(pool(), addresses="192.0.2.0/24")],
        ["spec.addresses: expected a list, got a string"],
        id="addresses-not-list",
    ),
    pytest.param(
        [with_spec(pool(), addresses=[24])],
        ["spec.addresses[0]: expected a string, got an integer (24)"],
        id="address-not-string",
    ),
    pytest.param(
        [with_spec(pool(), autoAssign="yes")],
        [f'{where(1)}: spec.autoAssign: expected true or false, got a string ("yes")'],
        id="bool-type",
    ),
    pytest.param(
        [with_spec(pool(), autoAsign=False)],
        [f'{where(1)}: spec.autoAsign: unknown field; did you mean "autoAssign"?'],
        id="unknown-field",
    ),
    pytest.param(
        [pool() | {"extra": 1}], [f"{where(1)}: extra: unknown field"], id="unknown-top-level-field"
    ),
    pytest.param(
        [pool(), pool("blue", "10.0.0.0/8")],
        [f'{where(2)}: metadata.name: duplicate IPAddressPool name "blue"; also defined by {where(1)}'],
        id="duplicate-name",
    ),
    pytest.param(
        [pool("Blue_Pool")],
        ['IPAddressPool (pools.yaml, document 1): metadata.name: "Blue_Pool" is not a valid DNS-1123 name'],
        id="bad-name",
    ),
    pytest.param(
        [{"apiVersion": V1B1, "kind": "IPAddressPool", "spec": {}}],
        ["IPAddressPool (pools.yaml, document 1): metadata: required field is missing"],
        id="no-metadata",
    ),
    pytest.param(
        [pool() | {"apiVersion": "metallb.io/v1alpha1"}],
        [
            'IPAddressPool (pools.yaml, document 1): apiVersion: "metallb.io/v1alpha1" is not supported '
            "for IPAddressPool; use metallb.io/v1beta1"
        ],
        id="api-version",
    ),
    pytest.param(
        [peer() | {"apiVersion": "metallb.io/v1alpha1"}],
        [
            'apiVersion: "metallb.io/v1alpha1" is not supported for BGPPeer; use metallb.io/v1beta2 (or '
            "metallb.io/v1beta1)"
        ],
        id="peer-version",
    ),
    pytest.param(
        [obj("AddressPool", "old")],
        ['AddressPool (pools.yaml, document 1): kind: unknown metallb.io kind "AddressPool"'],
        id="unknown-kind",
    ),
    pytest.param(
        [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}],
        ['document (pools.yaml, document 1): kind: a string ("Deployment")', "is not MetalLB configuration"],
        id="other-kind",
    ),
    pytest.param(
        [{"name": "x"}], ["document (pools.yaml, document 1): not a Kubernetes object"], id="not-an-object"
    ),
    pytest.param(
        [with_spec(pool(), serviceAllocation={"priority": 2**31})],
        [f"{where(1)}: spec.serviceAllocation.priority: 2147483648 is out of range"],
        id="priority",
    ),
    pytest.param(
        [
            with_spec(
                pool(),
                serviceAllocation={
                    "namespaceSelectors": [
                        {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}
                    ]
                },
            )
        ],
        [
            f"{where(1)}: spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0].operator: "
            'unknown operator "Equals"'
        ],
        id="selector-operator",
    ),
    pytest.param(
        [
            with_spec(
                pool(),
                serviceAllocation={
                    "serviceSelectors": [{"matchExpressions": [{"key": "a", "operator": "In"}]}]
                },
            )
        ],
        [
            "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values: "
            "operator In needs at least one value"
        ],
        id="selector-values",
    ),
    pytest.param(
        [
            with_spec(
                pool(),
                serviceAllocation={
                    "serviceSelectors": [
                        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}
                    ]
                },
            )
        ],
        ["matchExpressions[0].values: operator Exists takes no values"],
        id="selector-exists-values",
    ),
    pytest.param(
        [with_spec(pool(), serviceAllocation={"serviceSelectors": [{"matchLabels": {"a": "x y"}}]})],
        ['spec.serviceAllocation.serviceSelectors[0].matchLabels.a: invalid label value "x y"'],
        id="selector-label-value",
    ),
    pytest.param(
        [
            with_spec(
                pool(),
                serviceAllocation={
                    "serviceSelectors": [{"matchLabels": {"a": "x"}}, {"matchLabels": {"a": "x"}}]
                },
            )
        ],
        ["spec.serviceAllocation.serviceSelectors[1]: duplicate selector"],
        id="selector-duplicate",
    ),
    pytest.param(
        [with_spec(pool(), serviceAllocation={"namespaces": ["a", "a"]})],
        ["spec.serviceAllocation.namespaces[1]: duplicate namespace"],
        id="namespace-duplicate",
    ),
    pytest.param(
        [pool() | {"metadata": {"name": "blue", "labels": {"-x": "y"}}}],
        ["metadata.labels.-x: invalid label key"],
        id="metadata-label",
    ),
    pytest.param(
        [pool("blue", "192.0.2.0/28 ")],
        ['spec.addresses[0]: "192.0.2.0/28 " has spaces around the CIDR, which MetalLB refuses'],
        id="cidr-with-spaces",
    ),
    pytest.param(
        [obj("L2Advertisement", "l2", {"preferredNodeSelectors": [{"weight": 101, "preference": {}}]})],
        ["spec.preferredNodeSelectors[0].weight: "],
        id="l2-preferred-weight",
    ),
    pytest.param(
        [obj("L2Advertisement", "l2", {"ipAddressPools": ["a", "a"]})],
        ["spec.ipAddressPools[1]: duplicate pool name"],
        id="l2-duplicate-pool",
    ),
    pytest.param(
        [pool(), obj("BGPAdvertisement", "b", {"aggregationLength": 33})],
        [
            'BGPAdvertisement "b" (pools.yaml, document 2): spec.aggregationLength: '
            "33 is out of range; expected 1 to 32"
        ],
        id="aggregation-range",
    ),
    pytest.param(
        [pool(), obj("BGPAdvertisement", "b", {"aggregationLength": 0})],
        ["spec.aggregationLength: 0 is out of range; expected 1 to 32"],
        id="aggregation-zero",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"aggregationLengthV6": 129})],
        ["spec.aggregationLengthV6: 129 is out of range; expected 0 to 128"],
        id="aggregation-v6-range",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"aggregationLength": "24"})],
        ['spec.aggregationLength: expected an integer, got a string ("24")'],
        id="aggregation-type",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"localPref": True})],
        ["spec.localPref: expected an integer, got a boolean (true)"],
        id="bool-is-no-int",
    ),
    pytest.param(
        [pool(), obj("BGPAdvertisement", "b", {"aggregationLength": 16})],
        [
            f'BGPAdvertisement "b" (pools.yaml, document 2): spec.aggregationLength: '
            f'16 is shorter than the /24 prefix of "192.0.2.0/24" in {where(1)}'
        ],
        id="aggregation-shorter",
    ),
    pytest.param(
        # 192.0.2.10-20 summarizes to .10/31 .12/30 .16/30 .20/32: the shortest prefix is /30.
        [pool("blue", "192.0.2.10-192.0.2.20"), obj("BGPAdvertisement", "b", {"aggregationLength": 29})],
        ['spec.aggregationLength: 29 is shorter than the /30 prefix of "192.0.2.10-192.0.2.20"'],
        id="aggregation-range-summarized",
    ),
    pytest.param(
        [
            pool("blue", "2001:db8::/64"),
            obj("BGPAdvertisement", "b", {"aggregationLengthV6": 48, "ipAddressPools": ["blue"]}),
        ],
        ['spec.aggregationLengthV6: 48 is shorter than the /64 prefix of "2001:db8::/64"'],
        id="aggregation-v6-shorter",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"communities": ["gold"]})],
        ['spec.communities[0]: unknown community alias "gold"; none is defined'],
        id="community-alias",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"communities": ["65536:1"]})],
        ['spec.communities[0]: "65536:1": "65536" is not a 16-bit unsigned number'],
        id="community-value",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"communities": ["large:1:2"]})],
        ['spec.communities[0]: "large:1:2" is neither a community'],
        id="community-large-short",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"communities": ["big:1:2:3"]})],
        ["a large community starts with"],
        id="community-marker",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"communities": ["1:2", "1:2"]})],
        ["spec.communities[1]: duplicate community"],
        id="community-duplicate",
    ),
    pytest.param(
        [
            obj(
                "BGPAdvertisement",
                "b",
                {"serviceSelectors": [{"matchLabels": {"a": "b"}}], "aggregationLength": 24},
            )
        ],
        ["spec.aggregationLength: serviceSelectors and aggregationLength are mutually exclusive"],
        id="bgp-selectors-aggregation",
    ),
    pytest.param(
        [
            obj(
                "BGPAdvertisement",
                "b",
                {"serviceSelectors": [{"matchLabels": {"a": "b"}}], "aggregationLengthV6": 64},
            )
        ],
        ["spec.aggregationLengthV6: serviceSelectors and aggregationLengthV6 are mutually exclusive"],
        id="bgp-selectors-aggregation-v6",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"serviceSelectors": [{"matchLabels": {"a": "b"}}] * 2})],
        ["spec.serviceSelectors[1]: duplicate selector"],
        id="bgp-selectors-duplicate",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"serviceSelectors": [{"matchLabels": {"a": "b c"}}]})],
        ['spec.serviceSelectors[0].matchLabels.a: invalid label value "b c"'],
        id="bgp-selectors-value",
    ),
    pytest.param(
        [obj("Community", "c", {"communities": [{"name": "x", "value": "1:2:3"}]})],
        ['Community "c" (pools.yaml, document 1): spec.communities[0].value'],
        id="community-resource",
    ),
    pytest.param(
        [obj("Community", "c", {"communities": [{"name": "x"}]})],
        ["spec.communities[0].value: required field is missing"],
        id="community-no-value",
    ),
    pytest.param(
        [
            obj("Community", "c1", {"communities": [{"name": "x", "value": "1:2"}]}),
            obj("Community", "c2", {"communities": [{"name": "x", "value": "1:3"}]}),
        ],
        [
            'Community "c2" (pools.yaml, document 2): spec.communities[0]: '
            'community alias "x" is also defined by Community "c1"'
        ],
        id="alias-duplicate",
    ),
    pytest.param(
        [with_spec(peer(), myASN=None)],
        ['BGPPeer "r1" (pools.yaml, document 1): spec.myASN: required field is missing'],
        id="peer-my-asn",
    ),
    pytest.param(
        [with_spec(peer(), myASN=2**32)],
        ["spec.myASN: 4294967296 is out of range; expected 0 to 4294967295"],
        id="peer-asn-range",
    ),
    pytest.param(
        [with_spec(peer(), peerASN=None)],
        ["spec.peerASN: required field is missing; set peerASN or dynamicASN"],
        id="peer-no-asn",
    ),
    pytest.param(
        [with_spec(peer(), dynamicASN="internal")],
        ["spec.dynamicASN: peerASN and dynamicASN are mutually exclusive"],
        id="peer-both-asn",
    ),
    pytest.param(
        [with_spec(peer(), peerASN=None, dynamicASN="any")],
        ['spec.dynamicASN: "any" is not a dynamic ASN mode'],
        id="peer-dynamic-asn",
    ),
    pytest.param(
        [with_spec(peer(), peerAddress="10.0.0.300")],
        ['spec.peerAddress: "10.0.0.300" is not an IP address'],
        id="peer-address",
    ),
    pytest.param(
        [with_spec(peer(), peerAddress=None)],
        ["spec.peerAddress: required field is missing"],
        id="peer-no-address",
    ),
    pytest.param(
        [with_spec(peer(), interface="eth0")],
        ["spec.interface: peerAddress and interface are mutually exclusive"],
        id="peer-address-and-interface",
    ),
    pytest.param(
        [with_spec(peer(), sourceAddress="me")],
        ['spec.sourceAddress: "me" is not an IP address'],
        id="peer-source",
    ),
    pytest.param(
        [with_spec(peer(), peerPort=0)],
        ["spec.peerPort: 0 is out of range; expected 1 to 16384"],
        id="peer-port",
    ),
    pytest.param(
        [with_spec(peer(), holdTime="2s")],
        ["spec.holdTime: hold time 2s is too short; it must be 0 or at least 3s"],
        id="peer-hold",
    ),
    pytest.param(
        [with_spec(peer(), keepaliveTime="500ms")],
        ["spec.keepaliveTime: hold time 1s is too short"],
        id="peer-derived-hold",
    ),
    pytest.param(
        [with_spec(peer(), holdTime="30s", keepaliveTime="1m")],
        ["spec.keepaliveTime: the keepalive time must not exceed the hold time"],
        id="peer-keepalive",
    ),
    pytest.param(
        [with_spec(peer(), holdTime=90)],
        ["spec.holdTime: expected a string, got an integer (90)"],
        id="peer-hold-type",
    ),
    pytest.param(
        [with_spec(peer(), holdTime="-3s")], ['spec.holdTime: "-3s" is negative'], id="peer-hold-negative"
    ),
    pytest.param(
        [with_spec(peer(), connectTime="1.5s")],
        ["spec.connectTime: must be a whole number of seconds from 1s to 65535s"],
        id="peer-connect",
    ),
    pytest.param(
        [with_spec(peer(), routerID="2001:db8::1")],
        ['spec.routerID: "2001:db8::1" is not an IPv4 address'],
        id="peer-router-id",
    ),
    pytest.param(
        [with_spec(peer(), bfdProfile="fast")],
        [
            'BGPPeer "r1" (pools.yaml, document 1): spec.bfdProfile: '
            'unknown BFDProfile "fast"; none is defined'
        ],
        id="peer-bfd",
    ),
    pytest.param(
        [with_spec(peer(), peerASN=64500, ebgpMultiHop=True)],
        ["spec.ebgpMultiHop: ebgp multihop is for eBGP"],
        id="peer-multihop",
    ),
    pytest.param(
        [with_spec(peer(), password="a\nb")],
        ["spec.password: must not contain line breaks"],
        id="peer-password",
    ),
    pytest.param(
        [with_spec(peer(), password="x", passwordSecret={"name": "s"})],
        ["spec.passwordSecret: password and passwordSecret are mutually exclusive"],
        id="peer-password-secret",
    ),
    pytest.param(
        [with_spec(peer(), passwordSecret={"namespace": "x"})],
        ["spec.passwordSecret.name: required field is missing"],
        id="peer-secret-name",
    ),
    pytest.param(
        [with_spec(peer(), nodeSelectors=[{"matchLabels": {"a": "b"}}, {"matchLabels": {"a": "b"}}])],
        ["spec.nodeSelectors[1]: duplicate selector"],
        id="peer-selectors",
    ),
    pytest.param(
        [with_spec(peer(), localASN=0)],
        ["spec.localASN: 0 is out of range; expected 1 to 4294967295"],
        id="peer-local-asn-zero",
    ),
    pytest.param(
        [with_spec(peer(), localASN=2**32)],
        ["spec.localASN: 4294967296 is out of range"],
        id="peer-local-asn-range",
    ),
    pytest.param(
        [with_spec(peer(), localASN="64512")],
        ['spec.localASN: expected an integer, got a string ("64512")'],
        id="peer-local-asn-type",
    ),
    pytest.param(
        [with_spec(peer(), peerASN=None) | {"apiVersion": V1B1}],
        ['BGPPeer "r1" (pools.yaml, document 1): spec.peerASN: required field is missing'],
        id="peer-v1beta1-no-asn",
    ),
    pytest.param(
        [with_spec(peer(), peerAddress=None) | {"apiVersion": V1B1}],
        ["spec.peerAddress: required field is missing"],
        id="peer-v1beta1-no-address",
    ),
    pytest.param(
        [with_spec(peer(), peerPort=16385) | {"apiVersion": V1B1}],
        ["spec.peerPort: 16385 is out of range; expected 0 to 16384"],
        id="peer-v1beta1-port",
    ),
    pytest.param(
        [with_spec(peer(), holdTime="2s") | {"apiVersion": V1B1}],
        ["spec.holdTime: hold time 2s is too short"],
        id="peer-v1beta1-hold",
    ),
    pytest.param(
        [peer("a"), peer("b")],
        ['BGPPeer "b" (pools.yaml, document 2): is identical to BGPPeer "a" (pools.yaml, document 1)'],
        id="peer-identical",
    ),
    pytest.param([obj("BGPPeer", "r1")], ["spec: required field is missing"], id="peer-no-spec"),
    pytest.param(
        [obj("BFDProfile", "p", {"receiveInterval": 5})],
        [
            'BFDProfile "p" (pools.yaml, document 1): spec.receiveInterval: '
            "5 is out of range; expected 10 to 60000"
        ],
        id="bfd-receive",
    ),
    pytest.param(
        [obj("BFDProfile", "p", {"detectMultiplier": 1})],
        ["spec.detectMultiplier: 1 is out of range; expected 2 to 255"],
        id="bfd-multiplier",
    ),
    pytest.param(
        [obj("BFDProfile", "p", {"minimumTtl": 255})],
        ["spec.minimumTtl: 255 is out of range; expected 1 to 254"],
        id="bfd-ttl",
    ),
    pytest.param(
        [
            pool("v6", "2001:db8::/64"),
            obj("BFDProfile", "echo", {"echoMode": True}),
            peer(bfdProfile="echo"),
            obj("BGPAdvertisement", "b"),
        ],
        [
            'BGPAdvertisement "b" (pools.yaml, document 4): spec.peers: advertises IPv6 pool "v6" to '
            'BGPPeer "r1", whose BFDProfile "echo" has echo mode on'
        ],
        id="bfd-echo-v6",
    ),
    pytest.param(
        [
            pool() | {"metadata": {"name": "blue", "namespace": "a"}},
            obj("L2Advertisement", "l2", namespace="b"),
        ],
        [
            'L2Advertisement "l2" (pools.yaml, document 2): is in namespace "b" but '
            'IPAddressPool "blue" (pools.yaml, document 1) is in "a"'
        ],
        id="namespaces",
    ),
]


@pytest.mark.parametrize(("docs", "fragments"), CRD_ERRORS)
def test_crd_validation(docs: list[dict[str, Any]], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load(*docs)
    for fragment in fragments:
        assert fragment in str(info.value)


# (documents, the warning, a check of what loading did): what MetalLB accepts and we would not write that
# way loads as MetalLB loads it, with a warning naming object, source and field; strict mode refuses it.
CRD_WARNINGS = [
    pytest.param(
        [pool("blue", "192.0.2.0/25", "192.0.2.129/25")],
        f'{where(1)}: spec.addresses[1]: "192.0.2.129/25" has host bits set; '
        "using 192.0.2.128/25 as MetalLB does",
        lambda c: c.pools[0].addresses == ["192.0.2.0/25", "192.0.2.128/25"],
        id="host-bits",
    ),
    pytest.param(
        [pool("blue", "2001:db8::1/64")],
        f'{where(1)}: spec.addresses[0]: "2001:db8::1/64" has host bits set; '
        "using 2001:db8::/64 as MetalLB does",
        lambda c: c.pools[0].addresses == ["2001:db8::/64"],
        id="host-bits-v6",
    ),
    pytest.param(
        [pool(), obj("L2Advertisement", "l2", {"ipAddressPools": ["red", "blue"]})],
        f"{where(2, 'L2Advertisement', 'l2')}: spec.ipAddressPools[0]: "
        'unknown IPAddressPool "red" (defined: "blue"); skipped until it exists, as MetalLB does',
        lambda c: c.l2_advertisements[0].pools == ("blue",),
        id="l2-unknown-pool",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"ipAddressPools": ["red"]}), pool()],
        'BGPAdvertisement "b" (pools.yaml, document 1): spec.ipAddressPools[0]: unknown IPAddressPool "red"',
        # Naming only pools that do not exist selects none (not every pool, as naming none would).
        lambda c: c.bgp_advertisements[0].pools == (),
        id="bgp-unknown-pool",
    ),
    pytest.param(
        [with_spec(pool(), serviceAllocation={"namespaces": ["Web", "web"]})],
        f'{where(1)}: spec.serviceAllocation.namespaces[0]: "Web" is not a valid DNS-1123 name',
        lambda c: c.pools[0].service_allocation.namespaces == ["Web", "web"],
        id="namespace-name",
    ),
    pytest.param(
        [obj("L2Advertisement", "l2", {"interfaces": ["eth 0", "eth1"]})],
        'L2Advertisement "l2" (pools.yaml, document 1): spec.interfaces[0]: '
        '"eth 0" is not a network interface name; kept as MetalLB keeps it; it matches no interface',
        lambda c: c.l2_advertisements[0].interfaces == ("eth 0", "eth1"),
        id="l2-interface",
    ),
    pytest.param(
        [with_spec(pool(), serviceAllocation={"priority": -1})],
        f"{where(1)}: spec.serviceAllocation.priority: -1 is negative, which MetalLB orders unpredictably; "
        "tried before every pool with a positive priority",
        lambda c: c.pools[0].service_allocation.priority == -1,
        id="negative-priority",
    ),
    pytest.param(
        [obj("L2Advertisement", "l2", {"interfaces": ["eth0", "eth1", "eth0"]})],
        'L2Advertisement "l2" (pools.yaml, document 1): spec.interfaces[2]: duplicate interface; '
        "same as spec.interfaces[0]; kept as MetalLB keeps it",
        lambda c: c.l2_advertisements[0].interfaces == ("eth0", "eth1", "eth0"),
        id="l2-interface-repeated",
    ),
    pytest.param(
        [obj("BGPAdvertisement", "b", {"peers": ["r1"]})],
        'BGPAdvertisement "b" (pools.yaml, document 1): spec.peers[0]: '
        'unknown BGPPeer "r1" (none is defined); nothing is advertised to it until it exists',
        lambda c: c.bgp_advertisements[0].peers == ("r1",),
        id="unknown-peer",
    ),
]


@pytest.mark.parametrize(("docs", "warning", "done"), CRD_WARNINGS)
def test_accepted_with_a_warning(docs: list[dict[str, Any]], warning: str, done: Any) -> None:
    config = load(*docs)
    assert len(config.warnings) == 1 and config.warnings[0].startswith(warning)
    assert done(config)
    # Strict mode refuses with the same words, up to what lenient loading would have done.
    with pytest.raises(ConfigError, match="refused in strict mode") as info:
        load_config(yaml.safe_dump_all(docs), source="pools.yaml", strict=True)
    problem, _, done = str(info.value).partition(" (refused in strict mode; otherwise: ")
    assert config.warnings[0] == f"{problem}; {done.removesuffix(')')}"


def test_warnings_do_not_change_equality_and_every_one_is_kept() -> None:
    config = load(pool("blue", "192.0.2.1/24"), obj("L2Advertisement", "l2", {"ipAddressPools": ["x", "y"]}))
    assert [w.split(": ")[1] for w in config.warnings] == [
        "spec.addresses[0]",
        "spec.ipAddressPools[0]",
        "spec.ipAddressPools[1]",
    ]
    assert config == load(
        pool("blue", "192.0.2.0/24"), obj("L2Advertisement", "l2", {"ipAddressPools": ["x", "y"]})
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("kind: [\n", "pools.yaml: invalid YAML: line 2, column 1: expected the node content"),
        ("a: 1\na: 2\n", "pools.yaml: invalid YAML: line 2, column 1: found duplicate key 'a'"),
        (
            "- 1\n- 2\n",
            "document (pools.yaml, document 1): expected a Kubernetes object (a mapping), got a list",
        ),
        ("created: 2020-13-45\n", "pools.yaml: invalid YAML: month must be in 1..12"),
        ("---\n\n---\n", ""),
    ],
)
def test_yaml_level_errors(text: str, fragment: str) -> None:
    if not fragment:
        assert load_config(text, source="pools.yaml") == Config()
        return
    with pytest.raises(ConfigError) as info:
        load_config(text, source="pools.yaml")
    assert fragment in str(info.value)


def test_aggregation_lengths_that_fit_are_accepted() -> None:
    config = load(
        pool("blue", "192.0.2.10-192.0.2.20", "2001:db8::/64"),
        obj("BGPAdvertisement", "b", {"aggregationLength": 30, "aggregationLengthV6": 64}),
    )
    assert config.bgp_advertisements[0].pools == ("blue",)


def test_peer_timers_as_metallb_derives_them() -> None:
    config = load(peer("a", keepaliveTime="10s"), peer("b", holdTime="0", peerAddress="10.0.0.2"))
    a, b = config.bgp_peers
    assert (a.hold_time, a.keepalive_time) == (None, dt.timedelta(seconds=10))  # hold is 3 x 10s, left unset
    assert b.hold_time == dt.timedelta(0)


# A value each v1beta2-only field accepts in v1beta2, so only the version can be what refuses it in v1beta1.
V1BETA2_ONLY = {
    "dynamicASN": "external",
    "localASN": 64512,
    "interface": "eth1",
    "connectTime": "5s",
    "passwordSecret": {"name": "bgp-auth"},
    "enableGracefulRestart": True,
    "vrf": "red",
    "disableMP": True,
    "dualStackAddressFamily": True,
}


def test_every_v1beta2_only_field_is_listed() -> None:
    assert sorted(PEER_V1BETA2_FIELDS) == sorted(V1BETA2_ONLY)


@pytest.mark.parametrize(("field", "value"), sorted(V1BETA2_ONLY.items()))
def test_v1beta1_peer_refuses_the_fields_of_v1beta2(field: str, value: Any) -> None:
    changes = {field: value} | ({"peerASN": None} if field == "dynamicASN" else {})
    changes |= {"peerAddress": None} if field == "interface" else {}
    v2 = with_spec(peer(), **changes)
    load(v2)  # accepted in v1beta2
    with pytest.raises(ConfigError) as info:
        load(v2 | {"apiVersion": V1B1})
    assert (
        f'BGPPeer "r1" (pools.yaml, document 1): spec.{field}: not a field of BGPPeer metallb.io/v1beta1'
        in (str(info.value))
    )
    assert "use apiVersion metallb.io/v1beta2" in str(info.value)


def test_v1beta1_peer_reads_as_its_v1beta2_conversion() -> None:
    spec = {
        "myASN": 64500,
        "peerASN": 64501,
        "peerAddress": "10.0.0.1",
        "sourceAddress": "10.0.0.2",
        "peerPort": 1179,
        "holdTime": "180s",
        "keepaliveTime": "1s",
        "routerID": "10.20.30.40",
        "password": "nopass",
        "bfdProfile": "default",
        "ebgpMultiHop": True,
        "nodeSelectors": [
            {
                "matchLabels": {"foo": "bar"},
                "matchExpressions": [{"key": "k", "operator": "In", "values": ["q"]}],
            }
        ],
    }
    profile = obj("BFDProfile", "default")
    v1 = load(obj("BGPPeer", "p", spec) | {"apiVersion": V1B1}, profile)
    v2 = load(obj("BGPPeer", "p", spec), profile)
    assert v1.bgp_peers == v2.bgp_peers
    assert v1.bgp_peers[0].hold_time == dt.timedelta(seconds=180) and v1.bgp_peers[0].peer_port == 1179


def test_v1beta1_peer_port_and_timers() -> None:
    minimal = {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"}
    [unset] = load(obj("BGPPeer", "p", minimal | {"peerPort": 0}) | {"apiVersion": V1B1}).bgp_peers
    # Port 0 is v1beta1's "unset"; absent timers stay unset (MetalLB's conversion would make them 0s).
    assert (unset.peer_port, unset.hold_time, unset.keepalive_time) == (179, None, None)
    [zero] = load(obj("BGPPeer", "p", minimal | {"holdTime": "0s"}) | {"apiVersion": V1B1}).bgp_peers
    assert zero.hold_time == dt.timedelta(0)


def test_local_asn_and_service_selectors() -> None:
    config = load(
        pool(),
        peer("r1", localASN=64512),
        obj(
            "BGPAdvertisement",
            "b",
            {
                "serviceSelectors": [{"matchLabels": {"tier": "fe"}}],
                "aggregationLength": 32,
                "aggregationLengthV6": 128,
            },
        ),
    )
    [r1] = config.bgp_peers
    assert (r1.my_asn, r1.local_asn, r1.session_asn) == (64500, 64512, 64512)
    [adv] = config.bgp_advertisements
    assert adv.selects_service({"tier": "fe", "x": "y"}) and not adv.selects_service({"tier": "be"})
    assert load(peer("r1")).bgp_peers[0].session_asn == 64500


def test_local_asn_and_service_selectors_convert_back() -> None:
    config = load(
        pool(),
        peer("r1", localASN=64512),
        obj("BGPAdvertisement", "b", {"serviceSelectors": [{"matchLabels": {"tier": "fe"}}]}),
    )
    text = dump_crds(config)
    assert "localASN: 64512" in text and "serviceSelectors" in text
    assert load_config(text) == config


def bgp(name: str, **spec: Any) -> dict[str, Any]:
    return obj("BGPAdvertisement", name, spec)


# (documents, fragment of the message or None when accepted): MetalLB's localPref rule between advertisements.
LOCAL_PREF_CASES = [
    pytest.param(
        [pool(), bgp("a", localPref=100), bgp("b", localPref=200)], "conflicts", id="same-everything"
    ),
    pytest.param([pool(), bgp("a", localPref=100), bgp("b", localPref=100)], None, id="same-pref"),
    pytest.param([pool(), bgp("a", localPref=100), bgp("b")], "conflicts", id="unset-is-zero"),
    pytest.param(
        [pool(), bgp("a", localPref=100, aggregationLength=24), bgp("b", localPref=200)],
        None,
        id="v4-lengths",
    ),
    pytest.param(
        [
            pool("blue", "192.0.2.0/24", "2001:db8::/64"),
            bgp("a", localPref=100, aggregationLength=24),
            bgp("b"),
        ],
        "conflicts",
        id="dual-stack-v4-length-only",
    ),
    pytest.param(
        [
            pool("blue", "192.0.2.0/24", "2001:db8::/64"),
            bgp("a", localPref=100, aggregationLength=24, aggregationLengthV6=64),
            bgp("b"),
        ],
        None,
        id="dual-stack-both-lengths",
    ),
    pytest.param(
        [pool("blue", "2001:db8::/64"), bgp("a", localPref=100, aggregationLength=24), bgp("b")],
        "conflicts",
        id="v6-pool-v4-length",
    ),
    pytest.param(
        [
            peer("r1"),
            peer("r2", peerAddress="10.0.0.2"),
            pool(),
            bgp("a", localPref=1, peers=["r1"]),
            bgp("b", peers=["r2"]),
        ],
        None,
        id="disjoint-peers",
    ),
    pytest.param(
        [peer("r1"), pool(), bgp("a", localPref=1, peers=["r1"]), bgp("b")],
        "conflicts",
        id="all-peers-overlap",
    ),
    pytest.param(
        [pool(), bgp("a", localPref=1, nodeSelectors=[{"matchLabels": {"rack": "a"}}]), bgp("b")],
        None,
        id="node-selectors-left-to-the-speaker",
    ),
    pytest.param(
        [pool(), bgp("a", localPref=1, serviceSelectors=[{"matchLabels": {"t": "a"}}]), bgp("b")],
        None,
        id="service-selectors-left-to-the-speaker",
    ),
    pytest.param(
        [
            pool(),
            pool("green", "198.51.100.0/24"),
            bgp("a", localPref=1, ipAddressPools=["blue"]),
            bgp("b", ipAddressPools=["green"]),
        ],
        None,
        id="no-common-pool",
    ),
]


@pytest.mark.parametrize(("docs", "fragment"), LOCAL_PREF_CASES)
def test_local_pref_rule(docs: list[dict[str, Any]], fragment: str | None) -> None:
    if fragment is None:
        load(*docs)
        return
    with pytest.raises(ConfigError) as info:
        load(*docs)
    n = len(docs)
    assert f'BGPAdvertisement "b" (pools.yaml, document {n}): spec.localPref: ' in str(info.value)
    assert f'of BGPAdvertisement "a" (pools.yaml, document {n - 1}) for pool "blue"' in str(info.value)


def test_bgp_fixture_loads_and_converts_back() -> None:
    config = load_config((FIXTURES / "bgp-crds.yaml").read_text())
    assert config.summary() == (
        "2 pools (272 IPv4 + 256 IPv6 addresses), 1 L2Advertisement, 4 BGPAdvertisements, 3 BGPPeers, "
        "1 Community"
    )
    peers = {p.name: p for p in config.bgp_peers}
    assert peers["reflector"].peer_port == 1179 and peers["tor"].local_asn == 64510
    text = dump_crds(config)
    assert "metallb.io/v1beta1\nkind: BGPPeer" not in text, "written in the version MetalLB stores"
    assert load_config(text) == config


def on_nodes(*selectors: dict[str, Any]) -> dict[str, Any]:
    return {"nodeSelectors": list(selectors)}


HOST = "kubernetes.io/hostname"


# (the second peer's fields beside peer("a")'s, whether the pair is refused): one node holds one session to a
# neighbor, so two peers of one address are refused when some node could match both (MetalLB's FRR mode with
# the Nodes it knows); router IDs and myASN may differ (each session is its own, as in MetalLB native mode).
@pytest.mark.parametrize(
    ("first", "second", "refused"),
    [
        pytest.param({}, {"holdTime": "9s"}, True, id="every-node-both"),
        pytest.param({}, on_nodes({"matchLabels": {HOST: "n1"}}), True, id="every-node-and-one"),
        pytest.param(
            on_nodes({"matchLabels": {HOST: "n1"}}),
            on_nodes({"matchLabels": {HOST: "n2"}}),
            False,
            id="disjoint",
        ),
        pytest.param(
            on_nodes({"matchLabels": {HOST: "n1"}}, {"matchLabels": {HOST: "n2"}}),
            on_nodes({"matchLabels": {HOST: "n3"}}, {"matchLabels": {HOST: "n2"}}),
            True,
            id="or-overlap",
        ),
        pytest.param(
            on_nodes({"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a", "b"]}]}),
            on_nodes({"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a", "b"]}]}),
            False,
            id="in-notin",
        ),
        pytest.param(
            on_nodes({"matchExpressions": [{"key": "rack", "operator": "Exists"}]}),
            on_nodes({"matchExpressions": [{"key": "rack", "operator": "DoesNotExist"}]}),
            False,
            id="exists-absent",
        ),
        pytest.param(
            on_nodes({"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a", "b"]}]}),
            on_nodes({"matchLabels": {"rack": "b", "disk": "ssd"}}),
            True,
            id="in-and-labels",
        ),
        pytest.param(
            {}, {"peerAddress": "10.0.0.2", "routerID": "10.9.9.9", "myASN": 64499}, False, id="other-ip"
        ),
        pytest.param({"vrf": "red"}, {"vrf": "blue"}, False, id="other-vrf"),
    ],
)
def test_one_session_per_neighbor_on_a_node(
    first: dict[str, Any], second: dict[str, Any], refused: bool
) -> None:
    docs = [peer("a", **first), peer("b", **second)]
    if not refused:
        assert [p.name for p in load(*docs).bgp_peers] == ["a", "b"]
        return
    with pytest.raises(ConfigError) as info:
        load(*docs)
    assert str(info.value).startswith('BGPPeer "b" (pools.yaml, document 2): ')
    assert 'also peers with "10.0.0.1"' in str(info.value) or "is identical" in str(info.value)


def test_selector_repeats_are_what_metallb_calls_repeats() -> None:
    """Values are compared sorted; expressions in their order (the same two in another order is no repeat)."""
    a = {"key": "k", "operator": "In", "values": ["x", "y"]}
    b = {"key": "j", "operator": "Exists"}
    with pytest.raises(
        ConfigError, match=r"spec.nodeSelectors\[0\].matchExpressions\[1\]: duplicate expression"
    ):
        load(obj("L2Advertisement", "l2", on_nodes({"matchExpressions": [a, a | {"values": ["y", "x"]}]})))
    with pytest.raises(ConfigError, match=r"spec.nodeSelectors\[1\]: duplicate selector"):
        load(
            obj("L2Advertisement", "l2", on_nodes({"matchExpressions": [a, b]}, {"matchExpressions": [a, b]}))
        )
    swapped = on_nodes({"matchExpressions": [a, b]}, {"matchExpressions": [b, a]})
    assert len(load(obj("L2Advertisement", "l2", swapped)).l2_advertisements[0].node_selectors) == 2


def test_preferred_node_selectors_may_repeat_what_other_selectors_may_not() -> None:
    # MetalLB checks node, pool and service selectors for repeats, not the preferences it weighs.
    term = {"key": "zone", "operator": "In", "values": ["a", "a"]}
    preferred = [{"weight": 10, "preference": {"matchExpressions": [term, term]}}]
    [adv] = load(obj("L2Advertisement", "l2", {"preferredNodeSelectors": preferred})).l2_advertisements
    assert adv.preferred_node_selectors[0].preference.matches({"zone": "a"})
    with pytest.raises(ConfigError, match=r"values\[1\]: duplicate value"):
        load(obj("L2Advertisement", "l2", on_nodes({"matchExpressions": [term]})))
