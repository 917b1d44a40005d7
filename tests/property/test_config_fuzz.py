"""Garbage in, ConfigError out: no input makes the config or ipam readers raise anything else.

Random text, YAML-shaped text, random nested objects, and objects shaped like each MetalLB kind (real field
names, random values) so that the fuzzing reaches past the envelope checks into every field rule. Whatever
loads must also survive a round trip through the CRD writer, and strict loading must agree with lenient
loading: the same Config when there is no warning, a ConfigError when there is one or lenient refuses.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_py.config import Config, dump_crds, load_config, load_objects
from metallb_py.errors import ConfigError
from metallb_py.ipam import ServiceError, plan, service_request

FIXTURES = Path(__file__).parent.parent / "fixtures"
SEED = load_config((FIXTURES / "seed-configmap.yaml").read_text())

# METALLB_FUZZ_EXAMPLES raises the count for long fuzzing sessions (the default keeps the suite quick).
FUZZ = settings(
    max_examples=int(os.environ.get("METALLB_FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

WORDS = [
    "192.0.2.0/24",
    "192.0.2.1/24",
    "10.0.0.1-10.0.0.5",
    "10.0.0.5-10.0.0.1",
    "2001:db8::/64",
    "::/0",
    "0.0.0.0/0",
    "192.0.2.7",
    "10.0.0.1-2001:db8::1",
    "65000:1",
    "large:1:2:3",
    "gold",
    "90s",
    "1m",
    "0",
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "layer2",
    "bgp",
    "IPv4",
    "IPv6",
    "TCP",
    "UDP",
    "Local",
    "Cluster",
    "LoadBalancer",
    "SingleStack",
    "RequireDualStack",
    "internal",
    "blue",
    "a",
    "",
    " ",
    "\ud800",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)

FIELDS = {
    "IPAddressPool": ["addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"],
    "L2Advertisement": [
        "ipAddressPools",
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "interfaces",
        "serviceSelectors",
        "preferredNodeSelectors",
    ],
    "BGPAdvertisement": [
        "aggregationLength",
        "aggregationLengthV6",
        "localPref",
        "communities",
        "ipAddressPools",
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "peers",
        "serviceSelectors",
    ],
    "BGPPeer": [
        "myASN",
        "peerASN",
        "dynamicASN",
        "localASN",
        "peerAddress",
        "interface",
        "sourceAddress",
        "peerPort",
        "holdTime",
        "keepaliveTime",
        "connectTime",
        "routerID",
        "nodeSelectors",
        "password",
        "passwordSecret",
        "bfdProfile",
        "enableGracefulRestart",
        "ebgpMultiHop",
        "vrf",
        "disableMP",
        "dualStackAddressFamily",
    ],
    "Community": ["communities"],
    "BFDProfile": [
        "receiveInterval",
        "transmitInterval",
        "detectMultiplier",
        "echoInterval",
        "echoMode",
        "passiveMode",
        "minimumTtl",
    ],
}
NESTED_KEYS = [
    "name",
    "value",
    "priority",
    "namespaces",
    "namespaceSelectors",
    "serviceSelectors",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "namespace",
]
LEGACY_FIELDS = [
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
    "aggregation-length",
    "aggregation-length-v6",
    "localpref",
    "communities",
    "peer-address",
    "peer-asn",
    "my-asn",
    "peer-port",
    "hold-time",
    "keepalive-time",
    "router-id",
    "source-address",
    "node-selectors",
    "match-labels",
    "match-expressions",
    "password",
    "bfd-profile",
    "ebgp-multihop",
    "receive-interval",
    "echo-mode",
]
KEYS = st.sampled_from(sorted({k for ks in FIELDS.values() for k in ks} | set(NESTED_KEYS))) | st.text(
    max_size=6
)


def values(keys: st.SearchStrategy[str] = KEYS) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
        max_leaves=20,
    )


VALUES = values()


ADDRESSES = [
    "192.0.2.0/24",
    "192.0.2.0/28",
    "192.0.2.10-192.0.2.20",
    "198.51.100.0/30",
    "2001:db8::/64",
    "2001:db8::1-2001:db8::9",
    "10.0.0.0/8",
    # With host bits: masked with a warning (strict: refused).
    "198.51.100.9/29",
    "2001:db8:1::7/120",
]
NAMES = st.sampled_from(["blue", "green", "r1", "a"])
SELECTOR = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(st.sampled_from(["zone", "team"]), st.sampled_from(["east", "a", ""])),
        "matchExpressions": st.lists(
            st.fixed_dictionaries(
                {
                    "key": st.sampled_from(["zone", "team"]),
                    "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
                },
                optional={"values": st.lists(st.sampled_from(["east", "a"]), max_size=2)},
            ),
            max_size=2,
        ),
    },
)
# Plausible values for some fields, so that whole valid configurations come out often enough for the rules
# between objects (overlaps, references, aggregation) to be fuzzed too; VALUES keeps the garbage coming.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "addresses": st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=3),
    "ipAddressPools": st.lists(NAMES, max_size=2),
    "peers": st.lists(NAMES, max_size=2),
    "ipAddressPoolSelectors": st.lists(SELECTOR, max_size=2),
    "nodeSelectors": st.lists(SELECTOR, max_size=2),
    "serviceSelectors": st.lists(SELECTOR, max_size=2),
    "preferredNodeSelectors": st.lists(
        st.fixed_dictionaries({"weight": st.integers(0, 101), "preference": SELECTOR}), max_size=2
    ),
    "localASN": st.integers(0, 2**32),
    "serviceAllocation": st.fixed_dictionaries(
        {},
        optional={
            "priority": st.integers(-1, 5),
            "namespaces": st.lists(st.sampled_from(["web", "db"]), max_size=2),
            "namespaceSelectors": st.lists(SELECTOR, max_size=2),
            "serviceSelectors": st.lists(SELECTOR, max_size=2),
        },
    ),
    "aggregationLength": st.integers(-1, 33),
    "aggregationLengthV6": st.integers(-1, 129),
    "communities": st.lists(st.sampled_from(["gold", "65000:1", "large:1:2:3", "1:99999"]), max_size=2)
    | st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["gold", "x"]),
                "value": st.sampled_from(["65000:1", "large:1:2:3", "bad"]),
            }
        ),
        max_size=2,
    ),
    "myASN": st.integers(0, 2**32),
    "peerASN": st.integers(0, 2**32),
    "peerAddress": st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1", "x"]),
    "holdTime": st.sampled_from(["90s", "1s", "0", "3m", "x"]),
    "keepaliveTime": st.sampled_from(["30s", "10m", "1"]),
    "bfdProfile": NAMES,
    "echoMode": st.booleans(),
    "receiveInterval": st.integers(0, 70000),
}

# The required fields of the kinds that have some, to start from a valid object half of the time.
BASE: dict[str, dict[str, Any]] = {
    "IPAddressPool": {"addresses": ["192.0.2.0/28"]},
    "BGPPeer": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"},
}


def field_value(field: str) -> st.SearchStrategy[Any]:
    return PLAUSIBLE[field] | VALUES if field in PLAUSIBLE else VALUES


@st.composite
def resource(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(FIELDS)))
    version = "v1beta2" if kind == "BGPPeer" else "v1beta1"
    fields = draw(st.sets(st.sampled_from(FIELDS[kind]), max_size=6))
    spec = {field: draw(field_value(field)) for field in sorted(fields)}
    if draw(st.booleans()):
        spec = BASE.get(kind, {}) | spec
    name = draw(NAMES | st.text(max_size=8))
    doc: dict[str, Any] = {"apiVersion": f"metallb.io/{version}", "kind": kind, "metadata": {"name": name}}
    if draw(st.booleans()):
        doc["spec"] = spec
    if draw(st.booleans()):
        doc["metadata"]["labels"] = draw(
            st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)
        )
    return doc


LEGACY_VALUES = values(st.sampled_from(LEGACY_FIELDS) | st.text(max_size=5))


@st.composite
def legacy_configmap(draw: st.DrawFn) -> dict[str, Any]:
    config = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "address-pools": st.lists(
                    st.dictionaries(st.sampled_from(LEGACY_FIELDS), LEGACY_VALUES, max_size=5)
                ),
                "peers": st.lists(st.dictionaries(st.sampled_from(LEGACY_FIELDS), LEGACY_VALUES, max_size=6)),
                "bgp-communities": st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
                "bfd-profiles": st.lists(
                    st.dictionaries(st.sampled_from(LEGACY_FIELDS), LEGACY_VALUES, max_size=4)
                ),
            },
        )
    )
    text = yaml.safe_dump(config) if draw(st.booleans()) else draw(st.text(max_size=40))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config"}, "data": {"config": text}}


def loads_or_config_error(call: Any, *args: Any) -> Config | None:
    try:
        return call(*args)  # type: ignore[no-any-return]
    except ConfigError:
        return None


@FUZZ
@given(st.text())
def test_random_text(text: str) -> None:
    loads_or_config_error(load_config, text)


YAMLISH = st.lists(
    st.sampled_from(
        [
            "apiVersion: metallb.io/v1beta1",
            "kind: IPAddressPool",
            "metadata:",
            "  name: x",
            "spec:",
            "  addresses:",
            "  - 10.0.0.0/24",
            "---",
            "- a",
            "a: [",
            "}",
            "&x a",
            "*x",
            "!!binary a",
            "? [a]",
            "data:",
            "  config: |",
            "    address-pools:",
            "    - name: a",
            "kind: List",
            "items:",
            "<<: {a: 1}",
        ]
    )
    | st.text(max_size=10),
    max_size=12,
).map("\n".join)


@FUZZ
@given(YAMLISH)
def test_yaml_shaped_text(text: str) -> None:
    loads_or_config_error(load_config, text)


@FUZZ
@given(st.lists(VALUES, max_size=3))
def test_random_objects(objects: list[Any]) -> None:
    loads_or_config_error(load_objects, objects)


def lenient_agrees_with_strict(objects: list[dict[str, Any]]) -> Config | None:
    config = loads_or_config_error(load_objects, objects)
    strict = loads_or_config_error(lambda o: load_objects(o, strict=True), objects)
    if config is None or config.warnings:
        assert strict is None
    else:
        assert strict == config
    return config


@FUZZ
@given(st.lists(resource(), min_size=1, max_size=5))
def test_resource_shaped_objects_and_crd_round_trip(objects: list[dict[str, Any]]) -> None:
    config = lenient_agrees_with_strict(objects)
    if config is not None:
        assert load_config(dump_crds(config)) == config


@FUZZ
@given(legacy_configmap())
def test_legacy_shaped_configmaps(configmap: dict[str, Any]) -> None:
    config = lenient_agrees_with_strict([configmap])
    if config is not None:
        # Whatever loads converts to CRDs that load again, with the same addresses (names may change).
        assert sorted(_pool_facts(load_config(dump_crds(config)))) == sorted(_pool_facts(config))


@st.composite
def accepted_with_warnings(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int, int]:
    """Valid objects, some with what MetalLB accepts and we warn about: host bits, unknown pools and peers.
    Returns them with how many host-bit and how many unknown-name warnings they must give."""

    def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        version = "v1beta2" if kind == "BGPPeer" else "v1beta1"
        return {"apiVersion": f"metallb.io/{version}", "kind": kind, "metadata": {"name": name}, "spec": spec}

    blue = draw(st.sampled_from(["192.0.2.0/24", "192.0.2.5/24"]))
    green = draw(st.sampled_from(["2001:db8::/64", "2001:db8::9/64"]))
    objects = [
        doc("IPAddressPool", "blue", {"addresses": [blue]}),
        doc("IPAddressPool", "green", {"addresses": [green]}),
    ]
    host_bits = (blue != "192.0.2.0/24") + (green != "2001:db8::/64")
    unknown = 0
    if draw(st.booleans()):
        objects.append(doc("BGPPeer", "r1", {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"}))
    defined = {"blue", "green"} | ({"r1"} if objects[-1]["kind"] == "BGPPeer" else set())
    for i, kind in enumerate(
        draw(st.lists(st.sampled_from(["L2Advertisement", "BGPAdvertisement"]), max_size=3))
    ):
        spec: dict[str, Any] = {
            "ipAddressPools": draw(st.lists(st.sampled_from(["blue", "green", "red"]), unique=True))
        }
        if kind == "BGPAdvertisement":
            spec["peers"] = draw(st.lists(st.sampled_from(["r1", "r2"]), unique=True))
        unknown += sum(name not in defined for name in [*spec["ipAddressPools"], *spec.get("peers", [])])
        objects.append(doc(kind, f"adv{i}", spec))
    draw(st.randoms()).shuffle(objects)
    return objects, host_bits, unknown


@FUZZ
@given(accepted_with_warnings())
def test_what_metallb_accepts_loads_with_one_warning_each(
    case: tuple[list[dict[str, Any]], int, int],
) -> None:
    objects, host_bits, unknown = case
    config = lenient_agrees_with_strict(objects)
    assert config is not None
    assert len(config.warnings) == host_bits + unknown
    assert sum("has host bits set" in w for w in config.warnings) == host_bits
    # Written back, the masked CIDRs are plain networks; the names of objects still missing stay as written.
    again = load_config(dump_crds(config))
    assert again == config and len(again.warnings) == unknown


def _pool_facts(config: Config) -> list[tuple[tuple[str, ...], bool, bool]]:
    return [(tuple(p.addresses), p.auto_assign, p.avoid_buggy_ips) for p in config.pools]


SERVICE_FIELDS = [
    "type",
    "ports",
    "port",
    "protocol",
    "ipFamilies",
    "ipFamilyPolicy",
    "externalTrafficPolicy",
    "selector",
    "loadBalancerIP",
    "loadBalancerClass",
    "clusterIPs",
    "annotations",
    "metallb.io/loadBalancerIPs",
    "metallb.io/address-pool",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/loadBalancerIPs",
]
SERVICE_VALUES = values(st.sampled_from(SERVICE_FIELDS) | st.text(max_size=5))


@st.composite
def service(draw: st.DrawFn) -> dict[str, Any]:
    spec = draw(st.dictionaries(st.sampled_from(SERVICE_FIELDS), SERVICE_VALUES, max_size=6))
    if draw(st.booleans()):
        spec["type"] = "LoadBalancer"
    metadata = draw(
        st.dictionaries(
            st.sampled_from(["namespace", "annotations", "labels", "creationTimestamp"]),
            SERVICE_VALUES,
            max_size=3,
        )
    )
    metadata["name"] = draw(st.sampled_from(["a", "b"]) | st.text(max_size=4))
    status = draw(st.none() | st.builds(lambda v: {"loadBalancer": {"ingress": v}}, SERVICE_VALUES))
    return {"kind": "Service", "metadata": metadata, "spec": spec, **({"status": status} if status else {})}


@FUZZ
@given(st.lists(service(), max_size=4))
def test_services_give_service_errors_or_rows(services: list[dict[str, Any]]) -> None:
    for svc in services:
        with contextlib.suppress(ServiceError):
            service_request(svc)
    try:
        rows = plan(SEED, services)
    except ServiceError:
        return
    assert all(row.ok or row.error for row in rows)


@FUZZ
@given(VALUES)
def test_service_request_on_garbage(value: Any) -> None:
    with contextlib.suppress(ServiceError):
        service_request(value)
