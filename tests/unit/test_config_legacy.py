"""The legacy ConfigMap format (MetalLB <= 0.12): the seed document, every section, every rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from metallb_py.config import BGPCommunity, load_config, parse_legacy_configmap
from metallb_py.errors import ConfigError

FIXTURES = Path(__file__).parent.parent / "fixtures"
CM = "ConfigMap metallb-system/config (cm.yaml, document 1)"


def configmap(config: str, *, namespace: str | None = "metallb-system") -> str:
    metadata = {"name": "config", **({"namespace": namespace} if namespace else {})}
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"config": config}}
    )


def test_seed_configmap_exactly_as_in_the_seed() -> None:
    config = load_config((FIXTURES / "seed-configmap.yaml").read_text(), source="seed.yaml")

    [pool] = config.pools
    assert pool.name == "nginx-ip-range"
    assert pool.addresses == ["192.168.1.11-192.168.1.13"]
    assert (pool.auto_assign, pool.avoid_buggy_ips) == (True, False)
    assert [(str(a), str(b)) for a, b in pool.ranges()] == [("192.168.1.11", "192.168.1.13")]
    assert config.legacy_protocols == {"nginx-ip-range": "layer2"}
    assert config.namespace == "metallb-system"
    [l2] = config.l2_advertisements
    assert l2.pools == ("nginx-ip-range",)
    assert (
        l2.origin
        == 'ConfigMap metallb-system/config (seed.yaml, document 1): address-pools[0] "nginx-ip-range"'
    )
    assert not (config.bgp_advertisements or config.bgp_peers or config.communities or config.bfd_profiles)
    assert config.summary() == "1 pool (3 addresses), 1 L2Advertisement"


def test_every_section_of_a_full_legacy_configmap() -> None:
    config = load_config((FIXTURES / "legacy-full.yaml").read_text())

    assert config.namespace == "lb"
    assert [p.name for p in config.pools] == ["Office LAN", "transit", "uplink"]
    assert config.legacy_protocols == {"Office LAN": "layer2", "transit": "bgp", "uplink": "bgp"}
    office, transit, uplink = config.pools
    assert office.avoid_buggy_ips and not uplink.auto_assign and transit.auto_assign
    assert uplink.families == ["IPv4", "IPv6"]

    assert [a.name for a in config.l2_advertisements] == ["office-lan"]
    # A bgp pool without bgp-advertisements gets MetalLB's default one (aggregation /32 and /128).
    ads = {a.name: a for a in config.bgp_advertisements}
    assert set(ads) == {"transit", "uplink-1", "uplink-2"}
    assert (ads["transit"].pools, ads["transit"].aggregation_length, ads["transit"].local_pref) == (
        ("transit",),
        32,
        0,
    )
    assert ads["uplink-1"].local_pref == 100
    assert ads["uplink-1"].community_values == (BGPCommunity((65535, 65282)), BGPCommunity((64500, 7)))
    assert (ads["uplink-2"].aggregation_length, ads["uplink-2"].aggregation_length_v6) == (24, 64)
    assert [str(c) for c in ads["uplink-2"].community_values] == ["large:64500:1:2"]

    first, second = config.bgp_peers
    assert (first.name, first.my_asn, first.peer_asn, first.peer_address, first.peer_port) == (
        "peer-10-0-0-1",
        64500,
        64501,
        "10.0.0.1",
        1179,
    )
    assert (first.hold_time, first.keepalive_time) == (dt.timedelta(seconds=120), dt.timedelta(seconds=40))
    assert (first.router_id, first.source_address, first.password) == ("10.0.0.100", "10.0.0.2", "s3cret")
    assert first.bfd_profile == "Fast Detect"
    [selector] = first.node_selectors
    assert selector.matches({"rack": "r1", "kubernetes.io/arch": "arm64"})
    assert not selector.matches({"rack": "r1", "kubernetes.io/arch": "s390x"})
    # The legacy format's default hold time was 90s.
    assert (second.hold_time, second.ebgp_multihop, second.peer_port) == (dt.timedelta(seconds=90), True, 179)

    [communities] = config.communities
    assert {a.name: str(a.value) for a in communities.communities} == {
        "big": "large:64500:1:2",
        "no-advertise": "65535:65282",
    }
    [bfd] = config.bfd_profiles
    assert (bfd.name, bfd.receive_interval, bfd.detect_multiplier, bfd.passive_mode, bfd.echo_mode) == (
        "Fast Detect",
        100,
        5,
        True,
        False,
    )
    assert bfd.minimum_ttl == 10


def test_empty_config_and_bare_legacy_document() -> None:
    assert load_config(configmap("")).pools == []
    bare = load_config("address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/30]}\n")
    assert [p.name for p in bare.pools] == ["a"]


def test_parse_legacy_configmap_takes_an_object() -> None:
    obj = yaml.safe_load((FIXTURES / "seed-configmap.yaml").read_text())
    assert [p.name for p in parse_legacy_configmap(obj).pools] == ["nginx-ip-range"]
    with pytest.raises(ConfigError, match="expected a v1 ConfigMap"):
        parse_legacy_configmap({"kind": "Secret"})


POOL = "address-pools:\n- name: a\n  protocol: {protocol}\n  addresses: [{addresses}]\n{extra}"

# (config text, fragments the message must contain): each names the object and the field.
LEGACY_ERRORS = [
    pytest.param(
        "address-pools:\n- name: nginx-ip-range\n  protocol: layer3\n"
        "  addresses: [192.168.1.11-192.168.1.13]\n",
        [
            f'{CM}: address-pools[0] "nginx-ip-range": protocol: '
            'unknown protocol "layer3"; expected layer2 or bgp'
        ],
        id="unknown-protocol",
    ),
    pytest.param(
        "address-pools:\n- name: a\n  addresses: [10.0.0.0/24]\n",
        [f'{CM}: address-pools[0] "a": protocol: required field is missing'],
        id="missing-protocol",
    ),
    pytest.param(
        "address-pools:\n- protocol: layer2\n  addresses: [10.0.0.0/24]\n",
        [f"{CM}: address-pools[0].name: required field is missing"],
        id="missing-name",
    ),
    pytest.param(
        POOL.format(protocol="layer2", addresses="", extra=""),
        ['address-pools[0] "a": addresses: a pool needs at least one CIDR or range'],
        id="no-addresses",
    ),
    pytest.param(
        POOL.format(protocol="layer2", addresses="10.0.0.9-10.0.0.1", extra=""),
        ['address-pools[0] "a": addresses[0]: "10.0.0.9-10.0.0.1" is reversed'],
        id="reversed-range",
    ),
    pytest.param(
        POOL.format(protocol="layer2", addresses="10.0.0.1-2001:db8::1", extra=""),
        ['address-pools[0] "a": addresses[0]', "mixes IPv4 and IPv6"],
        id="mixed-family",
    ),
    pytest.param(
        POOL.format(protocol="layer2", addresses="10.0.0.0/24, 10.0.0.128/25", extra=""),
        ['address-pools[0] "a": addresses: "10.0.0.0/24" and "10.0.0.128/25" overlap'],
        id="overlap-within-pool",
    ),
    pytest.param(
        POOL.format(protocol="layer2", addresses="10.0.0.0/24", extra="")
        + "- {name: b, protocol: layer2, addresses: [10.0.0.200-10.0.1.5]}\n",
        [
            f'{CM}: address-pools[1] "b": addresses[0]: "10.0.0.200-10.0.1.5" overlaps "10.0.0.0/24" '
            f"of {CM}: "
            'address-pools[0] "a", address-pools[0] "a": addresses[0]'
        ],
        id="overlap-across-pools",
    ),
    pytest.param(
        POOL.format(protocol="layer2", addresses="10.0.0.0/24", extra="")
        + "- {name: a, protocol: layer2, addresses: [10.1.0.0/24]}\n",
        [f'{CM}: address-pools[1] "a": name: duplicate IPAddressPool name "a"; also defined by {CM}'],
        id="duplicate-pool",
    ),
    pytest.param(
        POOL.format(protocol="layer2", addresses="10.0.0.0/24", extra="  auto-assign: 'false'\n"),
        ['address-pools[0] "a": auto-assign: expected true or false, got a string ("false")'],
        id="bool-type",
    ),
    pytest.param(
        POOL.format(protocol="layer2", addresses="10.0.0.0/24", extra="  avoid-buggy-ip: true\n"),
        ['address-pools[0] "a": avoid-buggy-ip: unknown field; did you mean "avoid-buggy-ips"?'],
        id="unknown-pool-field",
    ),
    pytest.param(
        "address-pool:\n- {name: a}\n",
        [f'{CM}: address-pool: unknown field; did you mean "address-pools"?'],
        id="unknown-top-level-field",
    ),
    pytest.param(
        "address-pools: {name: a}\n",
        [f"{CM}: address-pools: expected a list, got a mapping"],
        id="wrong-type-list",
    ),
    pytest.param(
        POOL.format(
            protocol="layer2", addresses="10.0.0.0/24", extra="  bgp-advertisements: [{localpref: 1}]\n"
        ),
        ['address-pools[0] "a": bgp-advertisements: only a bgp pool has BGP advertisements'],
        id="bgp-advertisements-on-layer2",
    ),
    pytest.param(
        POOL.format(
            protocol="bgp",
            addresses="10.0.0.0/26",
            extra="  bgp-advertisements: [{aggregation-length: 33}]\n",
        ),
        [
            'address-pools[0] "a": bgp-advertisements[0].aggregation-length: '
            "33 is out of range; expected 0 to 32"
        ],
        id="aggregation-out-of-range",
    ),
    pytest.param(
        POOL.format(
            protocol="bgp",
            addresses="10.0.0.0/26",
            extra="  bgp-advertisements: [{aggregation-length: 24}]\n",
        ),
        [
            f'{CM}: address-pools[0] "a": bgp-advertisements[0].aggregation-length: '
            "24 is shorter than the /26 "
            'prefix of "10.0.0.0/26"'
        ],
        id="aggregation-shorter-than-prefix",
    ),
    pytest.param(
        POOL.format(
            protocol="bgp",
            addresses="2001:db8::/64",
            extra="  bgp-advertisements: [{aggregation-length-v6: 129}]\n",
        ),
        ["bgp-advertisements[0].aggregation-length-v6: 129 is out of range; expected 0 to 128"],
        id="aggregation-v6-out-of-range",
    ),
    pytest.param(
        POOL.format(
            protocol="bgp", addresses="10.0.0.0/24", extra="  bgp-advertisements: [{communities: [gold]}]\n"
        ),
        [
            'address-pools[0] "a": bgp-advertisements[0].communities[0]: '
            'unknown community alias "gold"; none is defined'
        ],
        id="unknown-community-alias",
    ),
    pytest.param(
        POOL.format(
            protocol="bgp",
            addresses="10.0.0.0/24",
            extra="  bgp-advertisements: [{communities: ['1:70000']}]\n",
        ),
        ['bgp-advertisements[0].communities[0]: "1:70000": "70000" is not a 16-bit unsigned number'],
        id="bad-community-value",
    ),
    pytest.param(
        "bgp-communities:\n  bad: '1:2:3'\n",
        [f'{CM}: bgp-communities.bad: "1:2:3" is neither a community'],
        id="bad-community-alias-value",
    ),
    pytest.param(
        "bgp-communities:\n  huge: large:1:2:4294967296\n",
        ['bgp-communities.huge: "large:1:2:4294967296": "4294967296" is not a 32-bit unsigned number'],
        id="bad-large-community",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 64500}\n",
        [f"{CM}: peers[0].peer-asn: required field is missing"],
        id="peer-asn-missing",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 0, peer-asn: 1}\n",
        ["peers[0].my-asn: 0 is not a valid AS number"],
        id="asn-zero",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 4294967296, peer-asn: 1}\n",
        ["peers[0].my-asn: 4294967296 is out of range; expected 0 to 4294967295"],
        id="asn-out-of-range",
    ),
    pytest.param(
        "peers:\n- {peer-address: router, my-asn: 1, peer-asn: 2}\n",
        ['peers[0].peer-address: "router" is not an IP address'],
        id="peer-address",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 1, peer-asn: 2, hold-time: 1s}\n",
        ["peers[0].hold-time: hold time 1s is too short; it must be 0 or at least 3s"],
        id="hold-time",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 1, peer-asn: 2, hold-time: soon}\n",
        ['peers[0].hold-time: "soon" is not a duration'],
        id="hold-time-syntax",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 1, peer-asn: 2, keepalive-time: 2m}\n",
        ["peers[0].keepalive-time: the keepalive time must not exceed the hold time"],
        id="keepalive-above-hold",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 1, peer-asn: 1, ebgp-multihop: true}\n",
        ["peers[0].ebgp-multihop: ebgp multihop is for eBGP"],
        id="multihop-ibgp",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 1, peer-asn: 2, bfd-profile: slow}\n",
        ['peers[0].bfd-profile: unknown BFDProfile "slow"; none is defined'],
        id="unknown-bfd-profile",
    ),
    pytest.param(
        "peers:\n- peer-address: 10.0.0.1\n  my-asn: 1\n  peer-asn: 2\n  node-selectors:\n"
        "  - match-expressions: [{key: rack, operator: Equals, values: [a]}]\n",
        ['peers[0].node-selectors[0].match-expressions[0].operator: unknown operator "Equals"'],
        id="bad-selector-operator",
    ),
    pytest.param(
        "peers:\n- peer-address: 10.0.0.1\n  my-asn: 1\n  peer-asn: 2\n  node-selectors:\n"
        "  - match-labels: {'bad key!': x}\n",
        ["peers[0].node-selectors[0].match-labels.bad key!: invalid label key"],
        id="bad-selector-label",
    ),
    pytest.param(
        "peers:\n- {peer-address: 10.0.0.1, my-asn: 1, peer-asn: 2}\n"
        "- {peer-address: 10.0.0.1, my-asn: 1, peer-asn: 2}\n",
        [f"{CM}: peers[1]: is identical to {CM}: peers[0]"],
        id="identical-peers",
    ),
    pytest.param(
        "bfd-profiles:\n- {name: p, receive-interval: 5}\n",
        [f'{CM}: bfd-profiles[0] "p": receive-interval: 5 is out of range; expected 10 to 60000'],
        id="bfd-range",
    ),
    pytest.param(
        "bfd-profiles:\n- {name: p, echo: true}\n",
        ['bfd-profiles[0] "p": echo: unknown field; did you mean "echo-mode"?'],
        id="bfd-unknown-field",
    ),
    pytest.param("address-pools: [\n", [f"{CM}: data.config: invalid YAML"], id="invalid-inner-yaml"),
    pytest.param("- a\n- b\n", [f"{CM}: expected a mapping, got a list"], id="config-not-a-mapping"),
]


@pytest.mark.parametrize(("config", "fragments"), LEGACY_ERRORS)
def test_legacy_validation(config: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(configmap(config), source="cm.yaml")
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("config", "warning", "addresses"),
    [
        pytest.param(
            POOL.format(protocol="layer2", addresses="10.0.0.0/24, 192.168.1.1/24", extra=""),
            f'{CM}: address-pools[0] "a": addresses[1]: '
            '"192.168.1.1/24" has host bits set; using 192.168.1.0/24 as MetalLB does',
            ["10.0.0.0/24", "192.168.1.0/24"],
            id="host-bits",
        ),
        pytest.param(
            "address-pools:\n- name: 'say \"a\": addresses[7]'\n  protocol: bgp\n"
            "  addresses: [10.0.0.1/24]\n",
            f'{CM}: address-pools[0] "say \\"a\\": addresses[7]": addresses[0]: '
            '"10.0.0.1/24" has host bits set; using 10.0.0.0/24',
            ["10.0.0.0/24"],
            id="host-bits-odd-name",
        ),
    ],
)
def test_legacy_host_bits_are_masked_as_metallb_did(config: str, warning: str, addresses: list[str]) -> None:
    loaded = load_config(configmap(config), source="cm.yaml")
    assert len(loaded.warnings) == 1 and loaded.warnings[0].startswith(warning)
    assert loaded.pools[0].addresses == addresses
    with pytest.raises(ConfigError, match="refused in strict mode"):
        parse_legacy_configmap(yaml.safe_load(configmap(config)), source="cm.yaml", strict=True)


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}},
            "ConfigMap config (cm.yaml, document 1): data: required field is missing",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "config"},
                "data": {"config": "", "other": "x"},
            },
            "ConfigMap config (cm.yaml, document 1): data.other: unknown field",
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {"config": ""}},
            "metadata: required field is missing",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "Config!"},
                "data": {"config": ""},
            },
            'metadata.name: "Config!" is not a valid DNS-1123 name',
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"config": "a: 1\n---\nb: 2\n"},
            },
            "data.config: holds several YAML documents",
        ),
    ],
)
def test_configmap_envelope(obj: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(yaml.safe_dump(obj), source="cm.yaml")
    assert fragment in str(info.value)


def test_configmap_without_namespace_uses_metallb_system() -> None:
    config = load_config(configmap("address-pools: []\n", namespace=None))
    assert config.namespace == "metallb-system"


def test_layer2_and_bgp_pools_imply_advertisements_named_after_them() -> None:
    text = (
        "address-pools:\n"
        "- {name: Web, protocol: layer2, addresses: [10.0.0.0/28]}\n"
        "- {name: web, protocol: layer2, addresses: [10.0.1.0/28]}\n"
        "- {name: edge, protocol: bgp, addresses: [10.0.2.0/28],\n"
        "   bgp-advertisements: [{}, {localpref: 5, aggregation-length: 30}]}\n"
    )
    config = load_config(configmap(text))
    assert [(a.name, a.pools) for a in config.l2_advertisements] == [("web", ("Web",)), ("web-2", ("web",))]
    assert [(a.name, a.local_pref) for a in config.bgp_advertisements] == [("edge-1", 0), ("edge-2", 5)]


def test_two_local_prefs_for_one_route_are_refused() -> None:
    # MetalLB added this rule after it dropped the ConfigMap; the CRDs a legacy ConfigMap converts to obey it.
    text = (
        "address-pools:\n"
        "- {name: edge, protocol: bgp, addresses: [10.0.2.0/28], bgp-advertisements: [{}, {localpref: 5}]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(configmap(text))
    assert (
        'address-pools[0] "edge": bgp-advertisements[1].localpref: 5 conflicts with localPref 0 of '
        in str(info.value)
    )
