"""metallb_py.ipam: Services read as allocation arguments, and plans over a configuration."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py._core import Allocator, Pool, Port, ServiceAllocation
from metallb_py.config import load_config
from metallb_py.errors import (
    ConfigError,
    FamilyError,
    IPInUseError,
    IPNotAllowedError,
    NoPoolError,
    PoolExhaustedError,
    UnknownPoolError,
)
from metallb_py.ipam import (
    AnnotationError,
    ServiceError,
    creation_timestamp,
    ingress_ips,
    is_load_balancer,
    load_services,
    plan,
    service_request,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
SEED = load_config((FIXTURES / "seed-configmap.yaml").read_text())


def svc(
    name: str = "web",
    namespace: str | None = "default",
    *,
    annotations: dict[str, str] | None = None,
    created: str | None = None,
    ips: list[str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    if created:
        metadata["creationTimestamp"] = created
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec},
    }
    if ips:
        out["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    return out


# -- service_request ----------------------------------------------------------------------------------------


def test_minimal_service() -> None:
    request = service_request(svc(namespace=None))
    assert request.key == "default/web" and (request.namespace, request.name) == ("default", "web")
    assert request.ports == (Port(80, "TCP"),)
    assert (request.pool, request.requested, request.sharing_key, request.backend_key) == (None, (), None, "")
    assert (request.ip_families, request.ip_family_policy, request.lb_class) == (
        ("IPv4",),
        "SingleStack",
        None,
    )


def test_annotations_and_spec() -> None:
    request = service_request(
        svc(
            annotations={
                "metallb.io/address-pool": "blue",
                "metallb.io/loadBalancerIPs": "192.0.2.1, 2001:db8::1",
                "metallb.io/allow-shared-ip": "dns",
            },
            ports=[{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP", "name": "dns-tcp"}],
            ipFamilies=["IPv4", "IPv6"],
            ipFamilyPolicy="RequireDualStack",
            externalTrafficPolicy="Local",
            selector={"tier": "fe", "app": "dns"},
            loadBalancerClass="metallb",
        )
        | {
            "metadata": {
                "name": "web",
                "labels": {"team": "a"},
                "annotations": {
                    "metallb.io/address-pool": "blue",
                    "metallb.io/loadBalancerIPs": "192.0.2.1, 2001:db8::1",
                    "metallb.io/allow-shared-ip": "dns",
                },
            }
        }
    )
    assert (request.pool, request.requested, request.sharing_key) == (
        "blue",
        ("192.0.2.1", "2001:db8::1"),
        "dns",
    )
    assert request.ports == (Port(53, "UDP"), Port(53, "TCP"))
    assert request.ip_families == ("IPv4", "IPv6") and request.ip_family_policy == "RequireDualStack"
    assert request.backend_key == "app=dns,tier=fe"  # sorted, so equal selectors give equal keys
    assert request.labels == {"team": "a"} and request.lb_class == "metallb"
    kwargs = request.allocate_kwargs()
    assert kwargs["requested"] == ["192.0.2.1", "2001:db8::1"] and kwargs["ports"] == [
        Port(53, "UDP"),
        Port(53, "TCP"),
    ]


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"metallb.universe.tf/address-pool": "old"}, "old"),
        ({"metallb.io/address-pool": "new", "metallb.universe.tf/address-pool": "old"}, "new"),
        # As MetalLB: the metallb.io annotation wins whenever present, and empty means unset.
        ({"metallb.io/address-pool": "", "metallb.universe.tf/address-pool": "old"}, None),
    ],
)
def test_deprecated_annotations(annotations: dict[str, str], expected: str | None) -> None:
    assert service_request(svc(annotations=annotations)).pool == expected


def test_deprecated_ip_and_sharing_annotations() -> None:
    request = service_request(
        svc(
            annotations={
                "metallb.universe.tf/loadBalancerIPs": "192.0.2.9",
                "metallb.universe.tf/allow-shared-ip": "k",
            }
        )
    )
    assert (request.requested, request.sharing_key) == (("192.0.2.9",), "k")
    assert service_request(svc(loadBalancerIP="192.0.2.7")).requested == ("192.0.2.7",)


def test_families_fall_back_to_cluster_ips() -> None:
    assert service_request(svc(clusterIPs=["fd00::10"])).ip_families == ("IPv6",)
    assert service_request(svc(clusterIP="None")).ip_families == ("IPv4",)
    # Neither ipFamilies nor cluster IPs: a dual-stack policy gets both, as a dual-stack cluster gives it.
    for policy in ("RequireDualStack", "PreferDualStack"):
        assert service_request(svc(ipFamilyPolicy=policy)).ip_families == ("IPv4", "IPv6")
    assert service_request(svc(ipFamilyPolicy="PreferDualStack", clusterIPs=["10.0.0.1"])).ip_families == (
        "IPv4",
    )


def test_families_of_a_manifest_without_them_are_those_of_its_requested_addresses() -> None:
    # A hand-written manifest with neither ipFamilies nor cluster IPs: the requested addresses say which
    # families the Service has (as the allocator reads an empty ip_families), when its policy allows them;
    # else the policy's default, and the allocator names the addresses that do not match it.
    lb_ips = "metallb.io/loadBalancerIPs"
    assert service_request(svc(loadBalancerIP="fd00::5")).ip_families == ("IPv6",)
    both = svc(annotations={lb_ips: "fd00::5,10.0.0.5"}, ipFamilyPolicy="RequireDualStack")
    assert service_request(both).ip_families == ("IPv6", "IPv4")
    one = svc(annotations={lb_ips: "fd00::5"}, ipFamilyPolicy="PreferDualStack")
    assert service_request(one).ip_families == ("IPv6",)
    too_many = svc(annotations={lb_ips: "fd00::5,10.0.0.5"})
    assert service_request(too_many).ip_families == ("IPv4",)
    too_few = svc(annotations={lb_ips: "fd00::5"}, ipFamilyPolicy="RequireDualStack")
    assert service_request(too_few).ip_families == ("IPv4", "IPv6")
    # Cluster IPs, when given, are the Service's families (MetalLB's ipfamily.ForService), not the request's.
    assert service_request(svc(loadBalancerIP="fd00::5", clusterIPs=["10.96.0.1"])).ip_families == ("IPv4",)


def test_requested_addresses_of_another_family_than_the_services_are_refused() -> None:
    # MetalLB's controller (allocateIPs): "does not match the ipFamily of the service"; ours names the
    # addresses and the Service's families, and the Service gets nothing.
    config = _pools({"dual": {"addresses": ["10.0.0.0/30", "fd00::/126"]}})
    lb_ips = "metallb.io/loadBalancerIPs"
    services = [
        svc("v4", annotations={lb_ips: "fd00::1"}, ipFamilies=["IPv4"]),
        svc(
            "dual",
            annotations={lb_ips: "10.0.0.1"},
            ipFamilies=["IPv4", "IPv6"],
            ipFamilyPolicy="PreferDualStack",
        ),
        svc("ok", annotations={lb_ips: "fd00::2"}, ipFamilies=["IPv6"]),
    ]
    rows = dict(rows_of(services, config))
    assert rows == {
        "default/v4": "ERROR requested address fd00::1 (IPv6) does not match the Service's ipFamilies IPv4: "
        "request one address of each family in ipFamilies, no other, as MetalLB requires",
        "default/dual": "ERROR requested address 10.0.0.1 (IPv4) does not match the Service's ipFamilies "
        "IPv4+IPv6: request one address of each family in ipFamilies, no other, as MetalLB requires",
        "default/ok": ("fd00::2",),
    }


SERVICE_ERRORS = [
    pytest.param(
        svc(externalTrafficPolicy="Local", selector={"app": "a,tier=b"}),
        ServiceError,
        'Service default/web: spec.selector.app: "a,tier=b": '
        "a selector's keys and values cannot hold ',' or '='",
        id="selector-that-would-be-another-backend",
    ),
    pytest.param(
        svc(annotations={"metallb.io/loadBalancerIPs": "192.0.2.1"}, loadBalancerIP="192.0.2.2"),
        AnnotationError,
        "Service default/web: metadata.annotations.metallb.io/loadBalancerIPs: "
        "cannot be combined with spec.loadBalancerIP",
        id="ips-and-spec",
    ),
    pytest.param(
        svc(annotations={"metallb.io/loadBalancerIPs": "192.0.2.1,300.1.1.1"}),
        AnnotationError,
        "Service default/web: metadata.annotations.metallb.io/loadBalancerIPs: "
        '"300.1.1.1" is not an IP address',
        id="bad-ip",
    ),
    pytest.param(
        svc(annotations={"metallb.universe.tf/loadBalancerIPs": "192.0.2.1/32"}),
        AnnotationError,
        'metadata.annotations.metallb.universe.tf/loadBalancerIPs: "192.0.2.1/32" is not an IP address',
        id="deprecated-bad-ip",
    ),
    pytest.param(
        svc(annotations={"metallb.io/loadBalancerIPs": "192.0.2.1,192.0.2.2"}),
        AnnotationError,
        "at most one IPv4 and one IPv6 address may be requested",
        id="two-v4",
    ),
    pytest.param(
        svc() | {"metadata": {"name": "web", "annotations": {"metallb.io/address-pool": 3}}},
        AnnotationError,
        "Service default/web: metadata.annotations.metallb.io/address-pool: "
        "expected a string, got an integer (3)",
        id="annotation-type",
    ),
    pytest.param(
        svc(loadBalancerIP="me"),
        ServiceError,
        'Service default/web: spec.loadBalancerIP: "me" is not an IP address',
        id="spec-ip",
    ),
    pytest.param(
        svc(externalTrafficPolicy="Nearest"),
        ServiceError,
        'spec.externalTrafficPolicy: unknown policy "Nearest"',
        id="etp",
    ),
    pytest.param(
        svc(ports=[{"port": 0}]),
        ServiceError,
        "spec.ports[0].port: 0 is out of range; expected 1 to 65535",
        id="port-range",
    ),
    pytest.param(
        svc(ports=[{"port": "80"}]),
        ServiceError,
        'spec.ports[0].port: expected an integer, got a string ("80")',
        id="port-type",
    ),
    pytest.param(
        svc(ports=[{"name": "http"}]),
        ServiceError,
        "spec.ports[0].port: required field is missing",
        id="port-missing",
    ),
    pytest.param(
        svc(ports=[{"port": 80, "protocol": "ICMP"}]),
        ServiceError,
        'spec.ports[0].protocol: unknown protocol "ICMP"',
        id="protocol",
    ),
    pytest.param(
        svc(ipFamilies=["IPv5"]), ServiceError, 'spec.ipFamilies[0]: unknown family "IPv5"', id="family"
    ),
    pytest.param(
        svc(ipFamilies=["IPv4", "IPv4"]),
        ServiceError,
        "spec.ipFamilies: lists a family twice",
        id="family-twice",
    ),
    pytest.param(
        svc(ipFamilies=["IPv4", "IPv6"]),
        ServiceError,
        "spec.ipFamilies: a SingleStack service has exactly one family",
        id="single-stack",
    ),
    pytest.param(
        svc(ipFamilyPolicy="Both"), ServiceError, 'spec.ipFamilyPolicy: unknown policy "Both"', id="policy"
    ),
    pytest.param(
        {"kind": "Service", "spec": {}},
        ServiceError,
        "Service: metadata: required field is missing",
        id="no-metadata",
    ),
    pytest.param(
        {"metadata": {"namespace": "x"}},
        ServiceError,
        "Service: metadata.name: required field is missing",
        id="no-name",
    ),
    pytest.param(
        ["not", "a", "service"],
        ServiceError,
        "Service: expected a Service object (a mapping), got a list",
        id="not-a-dict",
    ),
    pytest.param(
        svc() | {"spec": "LoadBalancer"},
        ServiceError,
        "Service default/web: spec: expected a mapping",
        id="spec-type",
    ),
]


@pytest.mark.parametrize(("service", "error", "message"), SERVICE_ERRORS)
def test_service_errors(service: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        service_request(service)
    assert isinstance(info.value, ConfigError)
    assert message in str(info.value)


def test_is_load_balancer() -> None:
    assert is_load_balancer(svc())
    assert not is_load_balancer(svc(type="ClusterIP"))
    assert not is_load_balancer(svc() | {"kind": "Ingress"})
    assert (
        not is_load_balancer({"spec": None})
        and not is_load_balancer("Service")
        and not is_load_balancer(None)
    )


def test_ingress_ips_and_creation_timestamp() -> None:
    service = svc(ips=["192.168.1.13"])
    service["status"]["loadBalancer"]["ingress"].append({"hostname": "lb.example"})
    assert ingress_ips(service) == ["192.168.1.13"]
    assert ingress_ips(svc()) == []
    with pytest.raises(
        ServiceError, match=r"status.loadBalancer.ingress\[0\].ip: \"x\" is not an IP address"
    ):
        ingress_ips(svc(ips=["x"]))
    with pytest.raises(
        ServiceError, match=r"status.loadBalancer.ingress\[1\]: expected a mapping, got a list"
    ):
        ingress_ips(
            svc(ips=["192.168.1.13"]) | {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, []]}}}
        )
    with pytest.raises(ServiceError, match=r"status.loadBalancer: expected a mapping, got a string"):
        ingress_ips(svc() | {"status": {"loadBalancer": "x"}})

    utc = dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC)
    assert creation_timestamp(svc(created="2024-03-01T10:00:00Z")) == utc
    # Unquoted in YAML, a timestamp arrives as a naive datetime meaning UTC.
    from_yaml = yaml.safe_load("metadata: {name: a, creationTimestamp: 2024-03-01T10:00:00Z}")
    assert creation_timestamp(from_yaml) == utc
    assert creation_timestamp(svc()) is None
    with pytest.raises(ServiceError, match=r"metadata\.creationTimestamp"):
        creation_timestamp(svc(created="yesterday"))


# -- plan ----------------------------------------------------------------------------------------------


def rows_of(
    services: list[dict[str, Any]], config: Any = SEED, **kwargs: Any
) -> list[tuple[str, tuple[str, ...] | str]]:
    return [(r.key, r.ips if r.ok else f"ERROR {r.error}") for r in plan(config, services, **kwargs)]


def test_seed_walkthrough_gives_the_first_two_addresses() -> None:
    services, _ = load_services((FIXTURES / "seed-services.yaml").read_text())
    rows = plan(SEED, services)
    assert [(r.namespace, r.name, r.ips, r.pool) for r in rows] == [
        ("default", "lb-hname-svc", ("192.168.1.11",), "nginx-ip-range"),
        ("default", "lb-ip-svc", ("192.168.1.12",), "nginx-ip-range"),
    ]
    # The same through the CRD form of the configuration.
    assert plan(load_config((FIXTURES / "seed-crds.yaml").read_text()), services) == rows


def test_creation_order_decides_not_input_order() -> None:
    early, late = svc("zeta", created="2024-01-01T00:00:00Z"), svc("alpha", created="2024-01-02T00:00:00Z")
    undated = svc("aaa")
    assert rows_of([undated, late, early]) == [
        ("default/zeta", ("192.168.1.11",)),
        ("default/alpha", ("192.168.1.12",)),
        ("default/aaa", ("192.168.1.13",)),  # no timestamp: after every dated service
    ]
    # Ties (here: no timestamps) go by namespace, then name.
    assert [k for k, _ in rows_of([svc("b", "ns1"), svc("a", "ns2"), svc("a", "ns1")])] == [
        "ns1/a",
        "ns1/b",
        "ns2/a",
    ]


def test_existing_addresses_are_kept_first() -> None:
    rows = plan(SEED, [svc("new1"), svc("old", ips=["192.168.1.11"]), svc("new2")])
    assert [(r.key, r.ips, r.restored) for r in rows] == [
        ("default/new1", ("192.168.1.12",), False),
        ("default/new2", ("192.168.1.13",), False),
        ("default/old", ("192.168.1.11",), True),
    ]


def test_kept_addresses_that_no_longer_fit_are_reallocated() -> None:
    outside = svc("outside", ips=["10.9.9.9"])
    other_ip = svc("moved", ips=["192.168.1.13"], annotations={"metallb.io/loadBalancerIPs": "192.168.1.12"})
    rows = {r.key: r for r in plan(SEED, [outside, other_ip])}
    assert (rows["default/outside"].ips, rows["default/outside"].restored) == (("192.168.1.11",), False)
    assert (rows["default/moved"].ips, rows["default/moved"].restored) == (("192.168.1.12",), False)


def _pools(*pools: dict[str, Any]) -> Any:
    return load_config(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "metallb.io/v1beta1",
                    "kind": "IPAddressPool",
                    "metadata": {"name": n},
                    "spec": s,
                }
                for p in pools
                for n, s in p.items()
            ]
        )
    )


def test_kept_addresses_must_be_in_a_pool_that_serves_the_service() -> None:
    # MetalLB's Assign refuses an address whose pool's serviceAllocation does not select the Service; the
    # Service then gets a new address. Before, plan kept it whatever the pool's serviceAllocation said.
    config = _pools(
        {"team": {"addresses": ["10.0.0.0/30"], "serviceAllocation": {"namespaces": ["team"]}}},
        {"open": {"addresses": ["10.1.0.0/30"]}},
    )
    rows = {
        r.key: r
        for r in plan(config, [svc("x", "team", ips=["10.0.0.2"]), svc("y", "web", ips=["10.0.0.1"])])
    }
    assert (rows["team/x"].ips, rows["team/x"].restored) == (("10.0.0.2",), True)
    assert (rows["web/y"].ips, rows["web/y"].pool, rows["web/y"].restored) == (("10.1.0.0",), "open", False)
    # Selected by labels: the Service's labels and its namespace's labels count.
    gold = {"namespaceSelectors": [{"matchLabels": {"tier": "gold"}}]}
    by_label = _pools(
        {"gold": {"addresses": ["10.2.0.0/30"], "serviceAllocation": gold}},
        {"open": {"addresses": ["10.1.0.0/30"]}},
    )
    kept = plan(by_label, [svc("z", "shop", ips=["10.2.0.1"])], namespaces={"shop": {"tier": "gold"}})
    assert (kept[0].ips, kept[0].restored) == (("10.2.0.1",), True)


def test_a_kept_prefer_dual_stack_service_gains_its_missing_family() -> None:
    # As MetalLB's controller (AllocateFromPoolForAdditionalFamily): the shown address stays, the other
    # family comes from the same pool, in ipFamilies order.
    config = _pools({"dual": {"addresses": ["10.0.0.0/30", "fd00::/126"]}})
    shown = svc("x", ips=["fd00::2"], ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"])
    single = svc("y", ips=["10.0.0.3"], ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4"])
    rows = {r.key: r for r in plan(config, [shown, single])}
    assert (rows["default/x"].ips, rows["default/x"].restored) == (("10.0.0.0", "fd00::2"), True)
    assert (rows["default/y"].ips, rows["default/y"].restored) == (("10.0.0.3",), True)


def test_requests_sharing_and_failures() -> None:
    services = [
        svc("pinned", annotations={"metallb.io/loadBalancerIPs": "192.168.1.13"}),
        svc(
            "dns-udp",
            annotations={"metallb.io/allow-shared-ip": "dns"},
            ports=[{"port": 53, "protocol": "UDP"}],
        ),
        svc(
            "dns-tcp",
            annotations={"metallb.io/allow-shared-ip": "dns", "metallb.io/loadBalancerIPs": "192.168.1.11"},
            ports=[{"port": 53, "protocol": "TCP"}],
        ),
        svc("second"),
        svc("third"),
        svc("wrong-pool", annotations={"metallb.io/address-pool": "gold"}),
        svc("bad", annotations={"metallb.io/loadBalancerIPs": "nope"}),
        svc("internal", type="ClusterIP"),
        svc("other-class", loadBalancerClass="example.com/lb"),
    ]
    rows = dict(rows_of(services))
    assert rows["default/pinned"] == ("192.168.1.13",)
    assert rows["default/dns-udp"] == rows["default/dns-tcp"] == ("192.168.1.11",)
    assert rows["default/second"] == ("192.168.1.12",)
    assert str(rows["default/third"]).startswith("ERROR ") and "nginx-ip-range" in str(rows["default/third"])
    assert 'unknown pool "gold"' in str(rows["default/wrong-pool"])
    assert "metadata.annotations.metallb.io/loadBalancerIPs" in str(rows["default/bad"])
    assert "default/internal" not in rows and "default/other-class" not in rows
    assert rows_of([svc("other-class", loadBalancerClass="example.com/lb")], lb_class="example.com/lb") == [
        ("default/other-class", ("192.168.1.11",))
    ]
    # An empty class is no class, as the controller reads it: MetalLB's own.
    assert rows_of([svc("empty-class", loadBalancerClass="")]) == [("default/empty-class", ("192.168.1.11",))]


def test_duplicates_are_reported_not_allocated_twice() -> None:
    rows = plan(SEED, [svc("a"), svc("a")])
    assert [(r.key, r.ok) for r in rows] == [("default/a", True), ("default/a", False)]
    assert "appears more than once" in (rows[1].error or "")


def test_namespace_labels_feed_pool_selection() -> None:
    config = load_config(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "metallb.io/v1beta1",
                    "kind": "IPAddressPool",
                    "metadata": {"name": "team-a"},
                    "spec": {
                        "addresses": ["10.0.0.0/30"],
                        "serviceAllocation": {"namespaceSelectors": [{"matchLabels": {"team": "a"}}]},
                    },
                },
            ]
        )
    )
    rows = dict(rows_of([svc("x", "web"), svc("y", "other")], config, namespaces={"web": {"team": "a"}}))
    assert rows["web/x"] == ("10.0.0.0",)
    assert str(rows["other/y"]).startswith('ERROR no pool may serve "other/y"')


def test_a_service_without_a_name_is_an_input_error() -> None:
    nameless = svc()
    del nameless["metadata"]["name"]
    with pytest.raises(ServiceError, match=r"metadata\.name: required field is missing"):
        plan(SEED, [nameless])


def test_load_services_reads_lists_and_namespaces() -> None:
    text = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                svc("a"),
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": "web", "labels": {"team": "a"}},
                },
            ],
        }
    )
    services, namespaces = load_services(text + "---\n" + yaml.safe_dump(svc("b")))
    assert [s["metadata"]["name"] for s in services] == ["a", "b"] and namespaces == {"web": {"team": "a"}}
    with pytest.raises(
        ConfigError,
        match=r"document \(svc\.yaml, document 1\): kind: expected Service, Namespace or List, "
        r'got a string \("Pod"\)',
    ):
        load_services("kind: Pod\n", source="svc.yaml")
    with pytest.raises(ConfigError, match=r"svc\.yaml: invalid YAML"):
        load_services("[", source="svc.yaml")


def test_plan_does_not_modify_its_input() -> None:
    services = [svc("a", ips=["192.168.1.12"]), svc("b")]
    before = copy.deepcopy(services)
    plan(SEED, services)
    assert services == before


# -- allocation errors name the field at fault --------------------------------------------------------------


def field_allocator() -> Allocator:
    return Allocator(
        [
            Pool("auto", ["10.1.0.0/31"]),
            Pool("manual", ["10.2.0.0/32"], auto_assign=False),
            Pool("picky", ["10.3.0.0/30"], auto_assign=False),
        ]
    )


LB_IPS, POOL, SHARED = "metallb.io/loadBalancerIPs", "metallb.io/address-pool", "metallb.io/allow-shared-ip"
OLD_POOL = "metallb.universe.tf/address-pool"

ALLOCATION_FIELDS = [
    # (annotations, spec, error class, field named)
    ({POOL: "gold"}, {}, UnknownPoolError, f"metadata.annotations.{POOL}"),
    ({OLD_POOL: "gold"}, {}, UnknownPoolError, f"metadata.annotations.{OLD_POOL}"),
    ({LB_IPS: "192.0.2.1"}, {}, IPNotAllowedError, f"metadata.annotations.{LB_IPS}"),
    ({}, {"loadBalancerIP": "192.0.2.1"}, IPNotAllowedError, "spec.loadBalancerIP"),
    ({LB_IPS: "10.1.0.0", POOL: "manual"}, {}, IPNotAllowedError, f"metadata.annotations.{LB_IPS}"),
    ({LB_IPS: "10.1.0.0"}, {"ipFamilies": ["IPv6"]}, FamilyError, f"metadata.annotations.{LB_IPS}"),
    ({}, {"ipFamilies": ["IPv4"], "ipFamilyPolicy": "RequireDualStack"}, FamilyError, "spec.ipFamilyPolicy"),
    ({}, {"ipFamilies": ["IPv6"]}, NoPoolError, "spec.ipFamilies"),
]


@pytest.mark.parametrize(("annotations", "spec", "error", "path"), ALLOCATION_FIELDS)
def test_allocation_errors_name_the_field_at_fault(
    annotations: dict[str, str], spec: dict[str, Any], error: type[Exception], path: str
) -> None:
    request = service_request(svc("x", annotations=annotations, **spec))
    with pytest.raises(error) as info:
        request.allocate(field_allocator())
    assert str(info.value).startswith(f"Service default/x: {path}: ")


def test_a_taken_or_full_address_names_what_chose_it() -> None:
    allocator = field_allocator()
    service_request(svc("a", annotations={LB_IPS: "10.1.0.0"})).allocate(allocator)
    service_request(svc("b", annotations={POOL: "manual"})).allocate(allocator)
    service_request(svc("c")).allocate(allocator)  # the last of auto
    taken = service_request(svc("x", annotations={LB_IPS: "10.1.0.0", SHARED: "k"}))
    with pytest.raises(
        IPInUseError, match=rf"^Service default/x: metadata\.annotations\.{LB_IPS}: 10\.1\.0\.0"
    ):
        taken.allocate(allocator)
    with pytest.raises(PoolExhaustedError, match=rf"^Service default/x: metadata\.annotations\.{POOL}: "):
        service_request(svc("x", annotations={POOL: "manual"})).allocate(allocator)
    with pytest.raises(PoolExhaustedError, match=r"^Service default/x: spec\.ipFamilies: no available IPv4"):
        service_request(svc("x")).allocate(allocator)
    assert "default/x" not in allocator  # nothing held after a failure


def test_no_pool_for_its_namespace_or_labels_names_them() -> None:
    picky = ServiceAllocation(namespaces=["blue"])
    allocator = Allocator([Pool("picky", ["10.3.0.0/30"], service_allocation=picky)])
    with pytest.raises(NoPoolError, match=r"^Service default/x: metadata\.namespace: "):
        service_request(svc("x")).allocate(allocator)
    labelled = svc("y")
    labelled["metadata"]["labels"] = {"app": "web"}
    with pytest.raises(NoPoolError, match=r"^Service default/y: metadata\.labels: "):
        service_request(labelled).allocate(allocator)
    assert service_request(svc("z", "blue")).allocate(allocator) == ["10.3.0.0"]


def test_the_namespace_is_read_from_the_metadata_not_split_from_the_key() -> None:
    # Refused by the API server, not by a file: "a/b" must not become namespace "a", name "b/web".
    request = service_request(svc("web", "a/b"))
    assert (request.key, request.namespace, request.name) == ("a/b/web", "a/b", "web")
