"""metallb_py.speaker.objects: API objects to election inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from metallb_py._core import Pool
from metallb_py.config.model import Config
from metallb_py.speaker.election import Endpoint
from metallb_py.speaker.objects import (
    ParseCache,
    endpoint_slice_from_api,
    internal_ip,
    l2_service_from_api,
    node_from_api,
    trim_node,
)

CONFIG = Config(pools=[Pool("seed", ["192.168.1.11-192.168.1.13"]), Pool("v6", ["2001:db8:1::/120"])])


def service(ips: list[str], **extra: Any) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "metadata": {"namespace": "default", "name": "web", "annotations": extra.pop("annotations", {})},
        "spec": {"type": extra.pop("type", "LoadBalancer"), **extra},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }
    return svc


def test_a_trimmed_node_keeps_what_the_election_reads() -> None:
    node = {
        "metadata": {"name": "n1", "labels": {"zone": "a"}, "managedFields": [{"manager": "kubelet"}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.0.2.5"}],
            "images": [{"names": ["registry.example/app:1"], "sizeBytes": 1}] * 50,
        },
    }
    before = (node_from_api(node), internal_ip(node))
    trim_node(node)
    assert "images" not in node["status"] and "managedFields" not in node["metadata"]
    assert (node_from_api(node), internal_ip(node)) == before


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


def test_parse_cache_parses_an_object_again_only_when_its_version_or_the_context_changes() -> None:
    calls: list[str] = []

    def parse(obj: Mapping[str, Any]) -> str | None:
        calls.append(obj["metadata"]["name"])
        return None if obj["metadata"]["name"] == "skip" else obj["metadata"]["name"] + obj["v"]

    def obj(name: str, version: str | None, v: str = "") -> dict[str, Any]:
        metadata = {"namespace": "ns", "name": name}
        if version:
            metadata["resourceVersion"] = version
        return {"metadata": metadata, "v": v}

    cache: ParseCache[str] = ParseCache(parse)
    config = object()
    assert cache.parse_all([obj("a", "1"), obj("skip", "2"), obj("b", None)], config) == ["a", "b"]
    assert calls == ["a", "skip", "b"]
    calls.clear()
    # Unchanged versions come from the cache (a skipped one too); no version: parsed each time.
    assert cache.parse_all([obj("a", "1", "!"), obj("skip", "2"), obj("b", None)], config) == ["a", "b"]
    assert calls == ["b"]
    calls.clear()
    assert cache.parse_all([obj("a", "3", "!")], config) == ["a!"]  # a new version is parsed
    other = object()
    assert cache.parse_all([obj("a", "3", "?")], other) == ["a?"]  # so is everything in a new context
    assert calls == ["a", "a"]
    calls.clear()
    cache.parse_all([], other)  # gone from the watch: forgotten
    assert cache.parse_all([obj("a", "3")], other) == ["a"] and calls == ["a"]
