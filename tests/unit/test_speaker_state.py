"""metallb_py.speaker.state: API objects to election inputs, gossip Leases, the plan, ServiceL2Status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py._core import Pool
from metallb_py.config.model import Config
from metallb_py.speaker.election import Decision, Endpoint
from metallb_py.speaker.state import (
    PeerLeases,
    endpoint_slice_from_api,
    gossip_address,
    gossip_lease,
    internal_ip,
    l2_service_from_api,
    l2_status,
    l2_status_name,
    node_from_api,
    peer_from_lease,
    plan,
)

CONFIG = Config(pools=[Pool("seed", ["192.168.1.11-192.168.1.13"]), Pool("v6", ["2001:db8:1::/120"])])


def service(ips: list[str], **extra: Any) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "metadata": {"namespace": "default", "name": "web", "annotations": extra.pop("annotations", {})},
        "spec": {"type": extra.pop("type", "LoadBalancer"), **extra},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }
    return svc


def test_node_conditions_and_labels() -> None:
    node = node_from_api(
        {
            "metadata": {"name": "n1", "labels": {"a": "b"}},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "NetworkUnavailable", "status": "True"},
                ],
                "addresses": [
                    {"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": "2001:db8::5"},
                    {"type": "InternalIP", "address": "not-an-ip"},
                    {"type": "InternalIP", "address": "198.51.100.5"},
                ],
            },
        }
    )
    assert (node.name, dict(node.labels), node.ready, node.network_unavailable) == (
        "n1",
        {"a": "b"},
        False,
        True,
    )
    bare = node_from_api({"metadata": {"name": "n2"}})
    assert bare.ready and not bare.network_unavailable, "no Ready condition yet: not known to be broken"


def test_internal_ip_by_family() -> None:
    obj = {"status": {"addresses": [{"type": "InternalIP", "address": "2001:db8::5"}]}}
    assert internal_ip(obj) is None
    assert internal_ip(obj, 6) == "2001:db8::5"
    assert internal_ip({}) is None


def test_endpoint_slice_keeps_unset_conditions_unset() -> None:
    eps = endpoint_slice_from_api(
        {
            "metadata": {"namespace": "ns", "name": "x", "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [
                {"nodeName": "n1", "conditions": {"ready": True, "serving": True, "terminating": False}},
                {"conditions": {}},
                "garbage",
            ],
        }
    )
    assert eps is not None and eps.service == "ns/web"
    assert eps.endpoints == (Endpoint("n1", True, True, False), Endpoint(None))
    assert endpoint_slice_from_api({"metadata": {"namespace": "ns", "name": "orphan"}}) is None


def test_l2_service_pool_from_annotation_else_from_the_pools() -> None:
    annotated = service(["192.168.1.11"], annotations={"metallb.io/ip-allocated-from-pool": "seed"})
    assert l2_service_from_api(annotated, CONFIG) is not None
    found = l2_service_from_api(service(["2001:db8:1::5"], externalTrafficPolicy="Local"), CONFIG)
    assert found is not None
    assert (found.key, found.pool, found.ips, found.local) == ("default/web", "v6", ("2001:db8:1::5",), True)
    # An annotation naming a pool that is not configured: the pools decide.
    stale = service(["192.168.1.12"], annotations={"metallb.io/ip-allocated-from-pool": "gone"})
    assert (s := l2_service_from_api(stale, CONFIG)) is not None and s.pool == "seed"


@pytest.mark.parametrize(
    "svc",
    [
        service([]),
        service(["192.168.1.11"], type="NodePort"),
        service(["203.0.113.9"]),  # in no pool
        service(["not-an-ip"]),
    ],
)
def test_services_that_are_not_ours(svc: dict[str, Any]) -> None:
    assert l2_service_from_api(svc, CONFIG) is None


def test_load_balancer_class_as_the_controller_serves_it() -> None:
    classed = service(["192.168.1.11"], loadBalancerClass="example.com/other")
    assert l2_service_from_api(classed, CONFIG) is None
    assert l2_service_from_api(classed, CONFIG, "example.com/other") is not None
    assert l2_service_from_api(service(["192.168.1.11"]), CONFIG, "example.com/other") is None


def test_gossip_lease_round_trip() -> None:
    lease = gossip_lease(
        "node1", "metallb-system", gossip_address("2001:db8::1"), dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    )
    assert lease["metadata"]["name"] == "metallb-py-speaker-node1"
    assert lease["spec"]["renewTime"] == "2026-01-02T00:00:00.000000Z"
    assert peer_from_lease(lease) == ("node1", "[2001:db8::1]:7946")
    assert gossip_address("198.51.100.1", 1) == "198.51.100.1:1"


@pytest.mark.parametrize("address", ["", "198.51.100.1", "198.51.100.1:0", "198.51.100.1:x", "host:7946"])
def test_malformed_leases_are_skipped(address: str) -> None:
    lease = gossip_lease("n", "ns", "198.51.100.1:7946", dt.datetime.now(dt.UTC))
    lease["metadata"]["annotations"]["metallb-py.io/gossip-address"] = address
    assert peer_from_lease(lease) is None


def test_l2_status_one_object_per_service() -> None:
    obj = l2_status("default/web", "node1", ["eth1", "eth0", "eth0"], "metallb-system")
    assert obj["metadata"]["name"] == l2_status_name("default/web") != l2_status_name("default/web2")
    assert obj["metadata"]["labels"] == {
        "metallb.io/node": "node1",
        "metallb.io/service-name": "web",
        "metallb.io/service-namespace": "default",
    }
    assert obj["status"]["interfaces"] == [{"name": "eth0"}, {"name": "eth1"}]


IPS = st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1", "2001:db8::2"])
NODES = st.sampled_from(["a", "b", "c", None])


@given(
    st.dictionaries(IPS, NODES),
    st.dictionaries(IPS, st.sampled_from([(), ("eth0",), ("eth0", "eth1")])),
    st.sets(IPS),
)
def test_plan_announces_exactly_what_it_won(
    winners: dict[str, str | None], interfaces: dict[str, tuple[str, ...]], before: set[str]
) -> None:
    decisions = {ip: Decision(ip, node, "", services=(f"ns/{ip}",)) for ip, node in winners.items()}
    todo = plan(decisions, "a", interfaces, before)
    won = {ip for ip, node in winners.items() if node == "a" and interfaces.get(ip)}
    assert set(todo.announce) == won
    assert todo.withdraw == before - won
    for ip, (ifaces, services) in todo.announce.items():
        assert ifaces == interfaces[ip] and services == (f"ns/{ip}",)


def lease(node: str, renewed: str, address: str = "198.51.100.9:7946") -> dict[str, Any]:
    obj = gossip_lease(node, "ns", address, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    obj["spec"]["renewTime"] = renewed
    return obj


def test_peer_leases_expire_on_this_clock_only_while_the_api_answers() -> None:
    peers = PeerLeases(duration=6.0)
    assert peers.observe(lease("a", "t1", "198.51.100.1:7946"), now=100.0), "a new peer is news"
    assert peers.observe(lease("b", "t1", "198.51.100.2:7946"), now=100.0)
    assert not peers.observe(lease("b", "t1", "198.51.100.2:7946"), now=104.0)  # unchanged: not a renewal
    assert not peers.observe(lease("a", "t2", "198.51.100.1:7946"), now=104.0), "a renewal is not news"
    assert peers.expected(105.0, api_healthy=True) == {"a": "198.51.100.1:7946", "b": "198.51.100.2:7946"}
    # b stopped renewing 6 s ago (by this clock, whatever its timestamps say): no longer expected.
    assert peers.expected(106.0, api_healthy=True) == {"a": "198.51.100.1:7946"}
    # Cut off from the API too, every Lease looks stale: keep expecting everyone (stay isolated).
    assert set(peers.expected(1000.0, api_healthy=False)) == {"a", "b"}
    # A new address is a change too; a deleted Lease is forgotten.
    assert peers.observe(lease("b", "t1", "198.51.100.22:7946"), now=107.0)
    assert peers.expected(107.0, api_healthy=True)["b"] == "198.51.100.22:7946"
    peers.forget("b")
    peers.observe({"metadata": {"name": "not-a-speaker-lease"}}, now=107.0)
    assert set(peers.expected(107.0, api_healthy=True)) == {"a"}


def test_gossip_lease_carries_its_duration() -> None:
    obj = gossip_lease("n", "ns", "198.51.100.1:7946", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 5.5)
    assert obj["spec"]["leaseDurationSeconds"] == 6
