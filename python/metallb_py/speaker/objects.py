"""The speaker's view of API objects: pure adapters from plain dicts to what the election reads, no I/O.

`node_from_api`, `endpoint_slice_from_api` and `l2_service_from_api` reduce Nodes, EndpointSlices and
Services to election.py's types; a malformed object is skipped (None), never fatal. The Service's own fields
are read by metallb_py.ipam.fields, the one reader the controller uses too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from metallb_py.config.model import Config
from metallb_py.ipam.fields import allocated_pool, ingress_ips, load_balancer_class
from metallb_py.k8s.watch import drop_bookkeeping
from metallb_py.speaker.election import SHARED_IP_ANNOTATIONS, Endpoint, EndpointSlice, L2Service, Node

__all__ = [
    "SERVICE_NAME_LABEL",
    "ParseCache",
    "endpoint_slice_from_api",
    "internal_ip",
    "l2_service_from_api",
    "node_from_api",
    "pools_key",
    "trim_node",
]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _conditions(obj: Mapping[str, Any]) -> dict[str, str]:
    status = obj.get("status") or {}
    return {
        str(c.get("type")): str(c.get("status"))
        for c in (status.get("conditions") or ())
        if isinstance(c, Mapping)
    }


def node_from_api(obj: Mapping[str, Any]) -> Node:
    """A Node object as the election sees it. A Node without a Ready condition counts as ready (a node
    that never reported is not known to be broken; gossip decides liveness anyway)."""
    metadata = _metadata(obj)
    conditions = _conditions(obj)
    labels = metadata.get("labels") or {}
    return Node(
        name=str(metadata.get("name", "")),
        labels={str(k): str(v) for k, v in labels.items()},
        ready=conditions.get("Ready", "True") == "True",
        network_unavailable=conditions.get("NetworkUnavailable") == "True",
    )


def trim_node(obj: dict[str, Any]) -> None:
    """What a speaker keeps of a Node (a Reflector's trim): not the API's bookkeeping, nor status.images
    (the container images on the node, often most of a real Node's size); it reads labels, conditions and
    addresses."""
    drop_bookkeeping(obj)
    status = obj.get("status")
    if isinstance(status, dict):
        status.pop("images", None)


def internal_ip(obj: Mapping[str, Any], family: int = 4) -> str | None:
    """The Node's first InternalIP of `family`, or None."""
    for address in (obj.get("status") or {}).get("addresses") or ():
        if not isinstance(address, Mapping) or address.get("type") != "InternalIP":
            continue
        try:
            ip = ipaddress.ip_address(str(address.get("address")))
        except ValueError:
            continue
        if ip.version == family:
            return str(ip)
    return None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def endpoint_slice_from_api(obj: Mapping[str, Any]) -> EndpointSlice | None:
    """An EndpointSlice reduced to its Service's key and endpoints; None when no Service owns it."""
    metadata = _metadata(obj)
    service = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
    namespace = metadata.get("namespace")
    if not service or not namespace:
        return None
    endpoints = []
    for endpoint in obj.get("endpoints") or ():
        if not isinstance(endpoint, Mapping):
            continue
        conditions = endpoint.get("conditions") or {}
        node = endpoint.get("nodeName")
        endpoints.append(
            Endpoint(
                node_name=str(node) if node else None,
                ready=_bool(conditions.get("ready")),
                serving=_bool(conditions.get("serving")),
                terminating=_bool(conditions.get("terminating")),
            )
        )
    return EndpointSlice(f"{namespace}/{service}", tuple(endpoints))


def l2_service_from_api(
    svc: Mapping[str, Any], config: Config | None, lb_class: str | None = None
) -> L2Service | None:
    """A LoadBalancer Service with addresses, as the election sees it; None for any other Service, and for
    one whose spec.loadBalancerClass is not `lb_class` (None: Services without a class, as the controller).
    Labels that are not strings are dropped (the API server never stores them).

    The pool is the one the controller recorded (MetalLB's annotation), else the configured pool that
    contains the first address; a Service whose addresses are in no pool is not ours to announce.
    """
    spec = svc.get("spec") or {}
    if spec.get("type") != "LoadBalancer" or load_balancer_class(svc) != lb_class:
        return None
    ips = ingress_ips(svc)
    if not ips:
        return None
    metadata = _metadata(svc)
    pool = allocated_pool(svc)
    if config is not None and (not pool or config.pool(pool) is None):
        pool = next((p.name for p in config.pools if p.contains(ips[0])), None)
    if not pool:
        return None
    key = f"{metadata.get('namespace')}/{metadata.get('name')}"
    policy = str(spec.get("externalTrafficPolicy") or "Cluster")
    return L2Service(
        key,
        str(pool),
        tuple(ips),
        policy,
        labels=_strings(metadata.get("labels")),
        allow_shared_ip=any(name in _strings(metadata.get("annotations")) for name in SHARED_IP_ANNOTATIONS),
    )


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


T = TypeVar("T")


def pools_key(config: Config) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """What reading a Service's pool depends on in a configuration (the pools' names and ranges): a
    ParseCache context that survives configuration changes that leave the pools alone."""
    return tuple((p.name, tuple((str(a), str(b)) for a, b in p.ranges())) for p in config.pools)


class ParseCache(Generic[T]):
    """What `parse(obj)` gave for each watched object, reused while the object's resourceVersion is the same
    and `context` (whatever else the parse reads, e.g. `pools_key(config)`) compares equal: a round then
    parses only what changed since the last one. Objects without a resourceVersion are parsed every time."""

    def __init__(self, parse: Callable[[Mapping[str, Any]], T | None]) -> None:
        self._parse = parse
        self._context: object = None
        self._seen: dict[tuple[str, str], tuple[str, T | None]] = {}

    def parse_all(self, objects: Iterable[Mapping[str, Any]], context: object = None) -> list[T]:
        if context != self._context:
            self._seen.clear()
            self._context = context
        seen: dict[tuple[str, str], tuple[str, T | None]] = {}
        parsed: list[T] = []
        for obj in objects:
            metadata = _metadata(obj)
            version = metadata.get("resourceVersion")
            if not version:
                if (value := self._parse(obj)) is not None:
                    parsed.append(value)
                continue
            key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
            cached = self._seen.get(key)
            value = cached[1] if cached is not None and cached[0] == version else self._parse(obj)
            seen[key] = (str(version), value)
            if value is not None:
                parsed.append(value)
        self._seen = seen  # objects gone from the watch are forgotten
        return parsed
