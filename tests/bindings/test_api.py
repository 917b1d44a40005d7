"""The Python API as the README documents it, through the compiled extension."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

import metallb_py
from metallb_py import Allocator, LabelSelector, Pool, Port, ServiceAllocation


def test_readme_example() -> None:
    a = Allocator(
        [Pool("nginx-ip-range", ["192.168.1.11-192.168.1.13"], auto_assign=True, avoid_buggy_ips=False)]
    )
    assert a.allocate("default/lb-hname-svc", ports=[Port(port=80, protocol="TCP")]) == [
        IPv4Address("192.168.1.11")
    ]
    assert a.allocate("default/lb-ip-svc", ports=[Port(80)]) == [IPv4Address("192.168.1.12")]
    assert a.ips("default/lb-ip-svc") == [IPv4Address("192.168.1.12")]
    assert a.pool_of("default/lb-ip-svc") == "nginx-ip-range"
    assert a.pool_for_ip("192.168.1.13") == "nginx-ip-range"
    assert a.pool_for_ip(IPv4Address("192.0.2.1")) is None
    assert a.release("default/lb-ip-svc") is True
    assert a.release("default/lb-ip-svc") is False
    assert a.counters("nginx-ip-range") == {
        "total": 3,
        "in_use": 1,
        "available": 2,
        "total_ipv4": 3,
        "in_use_ipv4": 1,
        "total_ipv6": 0,
        "in_use_ipv6": 0,
    }
    assert "default/lb-hname-svc" in a
    assert 42 not in a
    assert len(a) == 1


def test_counters_are_exact_python_ints_for_huge_pools() -> None:
    a = Allocator([Pool("v6", ["2001:db8::/64", "2001:db8:1::/48"]), Pool("v4", ["0.0.0.0/1"])])
    assert a.counters("v6")["total"] == 2**64 + 2**80
    assert a.counters("v4")["total"] == 2**31
    assert a.allocate("ns/x", ip_families=["IPv6"]) == [IPv6Address("2001:db8::")]


def test_dual_stack_and_sharing_keywords() -> None:
    a = Allocator([Pool("dual", ["192.0.2.0/30", "2001:db8::/126"])])
    ips = a.allocate("ns/a", ip_families=["IPv6", "IPv4"], ip_family_policy="RequireDualStack")
    assert ips == [IPv6Address("2001:db8::"), IPv4Address("192.0.2.0")]
    a.allocate("ns/b", sharing_key="k", ports=[Port(80)])
    assert a.allocate("ns/c", sharing_key="k", ports=[Port(53, "UDP")]) == a.ips("ns/b")
    assert sorted(a.holders("192.0.2.1")) == ["ns/b", "ns/c"]


def test_value_types() -> None:
    assert Port(80) == Port(80, "TCP")
    assert len({Port(80), Port(80, "TCP"), Port(80, "UDP")}) == 2
    assert repr(Port(53, "UDP")) == "Port(port=53, protocol='UDP')"
    with pytest.raises(ValueError, match="out of range"):
        Port(0)
    with pytest.raises(ValueError, match="HTTP"):
        Port(80, "HTTP")
    with pytest.raises(ValueError, match="not an IP address"):
        Allocator([]).pool_for_ip("nonsense")
    selector = LabelSelector({"env": "prod"}, [("tier", "In", ["web"])])
    assert selector.matches({"env": "prod", "tier": "web"})
    assert not selector.matches({"env": "prod"})
    sa = ServiceAllocation(priority=5, namespaces=["a"], service_selectors=[selector])
    pool = Pool("p", [" 192.0.2.1 - 192.0.2.3 "], service_allocation=sa)
    assert pool.service_allocation == sa
    assert pool.families == ["IPv4"]
    assert pool.ranges() == [(IPv4Address("192.0.2.1"), IPv4Address("192.0.2.3"))]
    assert pool == Pool("p", [" 192.0.2.1 - 192.0.2.3 "], service_allocation=sa)


def test_public_names() -> None:
    for name in [
        "Allocator",
        "Pool",
        "Port",
        "AllocationError",
        "PoolExhaustedError",
        "ConfigError",
        "load_config",
    ]:
        assert name in metallb_py.__all__
