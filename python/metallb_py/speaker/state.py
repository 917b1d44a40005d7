"""The speaker's view of API objects, and what it should announce: pure functions, no I/O.

The speaker's loop (speaker.py) watches Services, EndpointSlices, Nodes, the configuration and the speakers'
gossip Leases, and hands their plain dicts to these functions:

- `node_from_api`, `endpoint_slice_from_api`, `l2_service_from_api` reduce objects to what the election
  (election.py) reads; a malformed object is skipped with the reason, never fatal.
- `peer_from_lease` and `gossip_lease` are how speakers find each other without pods: each publishes its
  gossip address in a Lease `metallb-py-speaker-<node>` in its namespace, labelled `GOSSIP_LABEL`.
- `plan` turns the elections into this node's to-do list: addresses to announce on which interfaces,
  addresses to withdraw.
- `l2_status_name` and `l2_status` build the ServiceL2Status that says which node announces a Service.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from metallb_py.config.model import Config
from metallb_py.speaker.election import Decision, Endpoint, EndpointSlice, L2Service, Node

__all__ = [
    "ALLOCATED_FROM_POOL",
    "GOSSIP_ADDRESS_ANNOTATION",
    "GOSSIP_LABEL",
    "GOSSIP_PORT",
    "SERVICE_NAME_LABEL",
    "PeerLeases",
    "Plan",
    "endpoint_slice_from_api",
    "gossip_address",
    "gossip_lease",
    "gossip_lease_name",
    "internal_ip",
    "l2_service_from_api",
    "l2_status",
    "l2_status_name",
    "lease_stamp",
    "node_from_api",
    "peer_from_lease",
    "plan",
]

ALLOCATED_FROM_POOL = "metallb.io/ip-allocated-from-pool"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
GOSSIP_LABEL = "metallb-py.io/gossip"
GOSSIP_ADDRESS_ANNOTATION = "metallb-py.io/gossip-address"
GOSSIP_PORT = 7946
L2_STATUS_NODE_LABEL = "metallb.io/node"
L2_STATUS_SERVICE_LABEL = "metallb.io/service-name"
L2_STATUS_NAMESPACE_LABEL = "metallb.io/service-namespace"


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


def _ingress_ips(svc: Mapping[str, Any]) -> list[str]:
    ips = []
    for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ():
        if not isinstance(ingress, Mapping) or not ingress.get("ip"):
            continue
        try:
            ips.append(str(ipaddress.ip_address(str(ingress["ip"]))))
        except ValueError:
            continue
    return ips


def l2_service_from_api(
    svc: Mapping[str, Any], config: Config | None, lb_class: str | None = None
) -> L2Service | None:
    """A LoadBalancer Service with addresses, as the election sees it; None for any other Service, and for
    one whose spec.loadBalancerClass is not `lb_class` (None: Services without a class, as the controller).

    The pool is the one the controller recorded (MetalLB's annotation), else the configured pool that
    contains the first address; a Service whose addresses are in no pool is not ours to announce.
    """
    spec = svc.get("spec") or {}
    if spec.get("type") != "LoadBalancer" or (spec.get("loadBalancerClass") or None) != lb_class:
        return None
    ips = _ingress_ips(svc)
    if not ips:
        return None
    metadata = _metadata(svc)
    pool = (metadata.get("annotations") or {}).get(ALLOCATED_FROM_POOL)
    if config is not None and (not pool or config.pool(str(pool)) is None):
        pool = next((p.name for p in config.pools if p.contains(ips[0])), None)
    if not pool:
        return None
    key = f"{metadata.get('namespace')}/{metadata.get('name')}"
    policy = str(spec.get("externalTrafficPolicy") or "Cluster")
    return L2Service(key, str(pool), tuple(ips), policy)


# -- gossip Leases -------------------------------------------------------------------------------------------


def gossip_address(ip: str, port: int = GOSSIP_PORT) -> str:
    """`ip:port`, with brackets for IPv6 (what Membership takes)."""
    parsed = ipaddress.ip_address(ip)
    return f"[{parsed}]:{port}" if parsed.version == 6 else f"{parsed}:{port}"


def gossip_lease_name(node: str) -> str:
    return f"metallb-py-speaker-{node}"


def lease_stamp(now: _dt.datetime) -> str:
    """A Lease's MicroTime."""
    return now.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def gossip_lease(
    node: str, namespace: str, address: str, now: _dt.datetime, duration: float = 6.0
) -> dict[str, Any]:
    """The Lease a speaker publishes its gossip address in, renewed while it runs. The gossip decides who is
    alive; the Lease says where to ask, and whom to expect (see PeerLeases)."""
    stamp = lease_stamp(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": gossip_lease_name(node),
            "namespace": namespace,
            "labels": {GOSSIP_LABEL: "true"},
            "annotations": {GOSSIP_ADDRESS_ANNOTATION: address},
        },
        "spec": {
            "holderIdentity": node,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseDurationSeconds": max(1, math.ceil(duration)),
        },
    }


def peer_from_lease(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(node, gossip address) from a speaker's Lease; None when it is not one or is malformed."""
    metadata = _metadata(obj)
    address = (metadata.get("annotations") or {}).get(GOSSIP_ADDRESS_ANNOTATION)
    node = (obj.get("spec") or {}).get("holderIdentity")
    if not address or not node:
        return None
    host, _, port = str(address).rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        if not 0 < int(port) < 65536:
            return None
    except ValueError:
        return None
    return str(node), str(address)


class PeerLeases:
    """Whom a speaker expects to hear in the gossip: the speakers whose Leases are renewed.

    A peer's Lease counts while it changed less than `duration` seconds ago on this speaker's own clock
    (`observe` is called with time.monotonic(); the Lease's timestamps come from other clocks and are only
    compared for change, as client-go's leader election does). A crashed speaker stops renewing, so after
    `duration` the survivors stop expecting it: a lone survivor is then no longer "cut off" and announces.
    Only while this speaker can renew its own Lease, though (`api_healthy`): one cut off from the API as well
    sees every Lease go stale, and must keep expecting its peers rather than announce beside them.
    """

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self._seen: dict[str, tuple[str, str, float]] = {}  # node -> (address, renewTime, observed at)

    def observe(self, obj: Mapping[str, Any], now: float) -> bool:
        """Records a Lease as seen at `now`; True when it names a new peer or a new address (a renewal
        alone is not news: expiry is checked by time, not by events)."""
        peer = peer_from_lease(obj)
        if peer is None:
            return False
        node, address = peer
        renewed = str((obj.get("spec") or {}).get("renewTime") or "")
        known = self._seen.get(node)
        if known is None or known[:2] != (address, renewed):
            self._seen[node] = (address, renewed, now)
        return known is None or known[0] != address

    def forget(self, node: str) -> None:
        self._seen.pop(node, None)

    def expected(self, now: float, *, api_healthy: bool) -> dict[str, str]:
        """node -> gossip address of the peers to expect."""
        return {
            node: address
            for node, (address, _, seen) in sorted(self._seen.items())
            if not api_healthy or now - seen < self.duration
        }


# -- what to announce ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """This node's to-do list after an election round.

    `announce`: address -> (interfaces, Services announced with it), for every address this node owns now.
    `withdraw`: addresses announced until now that this node no longer owns.
    """

    announce: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    withdraw: frozenset[str] = frozenset()


def plan(
    decisions: Mapping[str, Decision],
    me: str,
    interfaces: Mapping[str, tuple[str, ...]],
    announced: Iterable[str],
) -> Plan:
    """The addresses `me` won (on the interfaces chosen per address; none chosen means none announced)
    and those it announced before but no longer wins."""
    mine = {
        ip: (interfaces.get(ip, ()), d.services)
        for ip, d in decisions.items()
        if d.node == me and interfaces.get(ip)
    }
    withdraw = frozenset(str(ipaddress.ip_address(ip)) for ip in announced) - mine.keys()
    return Plan(mine, withdraw)


# -- ServiceL2Status -----------------------------------------------------------------------------------------


def l2_status_name(service_key: str) -> str:
    """One ServiceL2Status per Service, named after it: a new announcer takes the object over, so the list
    never holds a dead node's stale claim."""
    return "l2-" + hashlib.sha256(service_key.encode()).hexdigest()[:16]


def l2_status(service_key: str, node: str, interfaces: Iterable[str], namespace: str) -> dict[str, Any]:
    """The ServiceL2Status saying `node` announces the Service `service_key` on `interfaces`."""
    svc_namespace, _, svc_name = service_key.partition("/")
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceL2Status",
        "metadata": {
            "name": l2_status_name(service_key),
            "namespace": namespace,
            "labels": {
                L2_STATUS_NODE_LABEL: node,
                L2_STATUS_SERVICE_LABEL: svc_name,
                L2_STATUS_NAMESPACE_LABEL: svc_namespace,
            },
        },
        "status": {
            "node": node,
            "serviceName": svc_name,
            "serviceNamespace": svc_namespace,
            "interfaces": [{"name": name} for name in sorted(set(interfaces))],
        },
    }
