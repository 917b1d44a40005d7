"""metallb_py.ipam.fields: the shared lenient readers of ingress IPs, class and pool annotation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py.ipam.fields import (
    ALLOCATED_FROM_POOL,
    DEPRECATED_ALLOCATED_FROM_POOL,
    allocated_pool,
    canonical_ip,
    ingress_ips,
    load_balancer_class,
)


def with_ingress(*entries: object) -> dict[str, Any]:
    return {"status": {"loadBalancer": {"ingress": list(entries)}}}


def test_ingress_ips_in_order_as_canonical_text() -> None:
    svc = with_ingress({"ip": "192.168.1.13"}, {"ip": "2001:DB8:0::1"}, {"ip": "10.0.0.1"})
    assert ingress_ips(svc) == ["192.168.1.13", "2001:db8::1", "10.0.0.1"]


@pytest.mark.parametrize(
    "svc",
    [
        {},
        {"status": None},
        {"status": "up"},
        {"status": {"loadBalancer": None}},
        {"status": {"loadBalancer": []}},
        {"status": {"loadBalancer": {"ingress": None}}},
        {"status": {"loadBalancer": {"ingress": {"ip": "10.0.0.1"}}}},
        with_ingress(),
    ],
)
def test_malformed_or_absent_status_reads_as_no_addresses(svc: dict[str, Any]) -> None:
    assert ingress_ips(svc) == []


def test_invalid_entries_are_skipped_and_the_rest_kept() -> None:
    svc = with_ingress(
        {"hostname": "lb.example"},
        "10.0.0.9",
        {"ip": ""},
        {"ip": None},
        {"ip": 167772161},
        {"ip": "not-an-ip"},
        {"ip": "fe80::1%eth0"},
        {"ip": "10.0.0.1/32"},
        {"ip": "10.0.0.2"},
    )
    assert ingress_ips(svc) == ["10.0.0.2"]


def test_walk_reports_each_skipped_part_with_its_path() -> None:
    found: list[tuple[str, object, str]] = []
    svc = with_ingress({"hostname": "lb.example"}, "x", {"ip": 5}, {"ip": "nope"}, {"ip": "10.0.0.2"})
    assert ingress_ips(svc, lambda *args: found.append(args)) == ["10.0.0.2"]
    assert found == [
        ("status.loadBalancer.ingress[1]", "x", "a mapping"),
        ("status.loadBalancer.ingress[2].ip", 5, "a string"),
        ("status.loadBalancer.ingress[3].ip", "nope", "an IP address"),
    ]
    found.clear()
    ingress_ips({"status": {"loadBalancer": {"ingress": "10.0.0.1"}}}, lambda *args: found.append(args))
    assert found == [("status.loadBalancer.ingress", "10.0.0.1", "a list")]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("10.0.0.1", "10.0.0.1"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("2001:0db8::0001", "2001:db8::1"),
        ("::ffff:10.0.0.1", "::ffff:a00:1"),
        ("10.0.0.256", None),
        ("10.0.0.1/32", None),
        ("fe80::1%eth0", None),
        ("", None),
    ],
)
def test_canonical_ip(text: str, canonical: str | None) -> None:
    assert canonical_ip(text) == canonical


@given(
    st.recursive(
        st.none() | st.text() | st.integers(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_readers_never_raise(value: object) -> None:
    for svc in (
        {"status": value},
        {"status": {"loadBalancer": value}},
        {"status": {"loadBalancer": {"ingress": value}}},
        {"spec": value},
        {"spec": {"loadBalancerClass": value}},
        {"metadata": value},
        {"metadata": {"annotations": value}},
        {"metadata": {"annotations": {ALLOCATED_FROM_POOL: value}}},
    ):
        ips = ingress_ips(svc)
        assert all(canonical_ip(ip) == ip for ip in ips)
        assert load_balancer_class(svc) in (None, value)
        assert allocated_pool(svc) is None or isinstance(allocated_pool(svc), str)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"loadBalancerClass": "example.com/lb"}, "example.com/lb"),
        ({"loadBalancerClass": ""}, None),
        ({"loadBalancerClass": None}, None),
        ({"loadBalancerClass": 7}, None),
        ({}, None),
        (None, None),
        ("spec", None),
    ],
)
def test_load_balancer_class_empty_or_malformed_is_none(spec: object, expected: str | None) -> None:
    assert load_balancer_class({"spec": spec}) == expected


def annotated(annotations: object) -> dict[str, Any]:
    return {"metadata": {"name": "web", "annotations": annotations}}


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({ALLOCATED_FROM_POOL: "gold"}, "gold"),
        ({DEPRECATED_ALLOCATED_FROM_POOL: "silver"}, "silver"),
        # The current annotation wins whenever present, even empty: the controller rewrites only it.
        ({ALLOCATED_FROM_POOL: "gold", DEPRECATED_ALLOCATED_FROM_POOL: "silver"}, "gold"),
        ({ALLOCATED_FROM_POOL: "", DEPRECATED_ALLOCATED_FROM_POOL: "silver"}, None),
        ({ALLOCATED_FROM_POOL: 3, DEPRECATED_ALLOCATED_FROM_POOL: "silver"}, "silver"),
        ({DEPRECATED_ALLOCATED_FROM_POOL: ""}, None),
        ({}, None),
        (None, None),
        (["gold"], None),
    ],
)
def test_allocated_pool_precedence(annotations: object, expected: str | None) -> None:
    assert allocated_pool(annotated(annotations)) == expected


def test_allocated_pool_without_metadata() -> None:
    assert allocated_pool({}) is None
    assert allocated_pool({"metadata": "web"}) is None


def test_annotation_names_are_metallbs() -> None:
    assert ALLOCATED_FROM_POOL == "metallb.io/ip-allocated-from-pool"
    assert DEPRECATED_ALLOCATED_FROM_POOL == "metallb.universe.tf/ip-allocated-from-pool"
