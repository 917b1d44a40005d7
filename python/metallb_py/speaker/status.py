"""The speaker's status objects, as MetalLB writes them. Pure builders and the write decision; the reporter
(reporter.py) does the API calls.

- ServiceL2Status: which node announces a Service in layer 2 mode, one object per Service. `status.node` is
  immutable, so a new announcer replaces the object: at once the first time, then backing off (`takeover_at`),
  so that two nodes that both announce during a partition do not replace each other's claim in a tight loop.
- ServiceBGPStatus: the BGPPeers one node advertises a Service to, one object per Service and node (every
  selected node advertises in BGP mode), so there is nothing to take over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from metallb_py.k8s.resources import SERVICE_BGP_STATUSES, SERVICE_L2_STATUSES, Resource

__all__ = [
    "BGP_STATUS",
    "L2_STATUS",
    "L2_STATUS_NAMESPACE_LABEL",
    "L2_STATUS_NODE_LABEL",
    "L2_STATUS_SERVICE_LABEL",
    "StatusKind",
    "StatusWrite",
    "bgp_status",
    "bgp_status_name",
    "decide_status",
    "l2_status",
    "l2_status_name",
    "status_node",
    "status_service",
]

L2_STATUS_NODE_LABEL = "metallb.io/node"
L2_STATUS_SERVICE_LABEL = "metallb.io/service-name"
L2_STATUS_NAMESPACE_LABEL = "metallb.io/service-namespace"


class StatusWrite(StrEnum):
    """What to do with one Service's ServiceL2Status."""

    KEEP = "keep"  # it says what it should, or it is another node's and not ours to touch
    CREATE = "create"
    UPDATE = "update"  # this node's, but its interfaces or labels are out of date
    TAKE_OVER = "take over"  # another node's claim on a Service this node announces: replace it
    WAIT = "wait"  # the same, but the last takeover was too recent: try again at `not_before`
    DELETE = "delete"  # this node's, but this node no longer announces the Service


def l2_status_name(service_key: str) -> str:
    """One ServiceL2Status per Service, named after it: a new announcer takes the object over, so the list
    never holds a dead node's stale claim."""
    return "l2-" + hashlib.sha256(service_key.encode()).hexdigest()[:16]


def l2_status(service_key: str, node: str, interfaces: Iterable[str], namespace: str) -> dict[str, Any]:
    """The ServiceL2Status saying `node` announces the Service `service_key` on `interfaces`."""
    body = _status_object("ServiceL2Status", l2_status_name(service_key), service_key, node, namespace)
    body["status"]["interfaces"] = [{"name": name} for name in sorted(set(interfaces))]
    return body


def bgp_status_name(service_key: str, node: str) -> str:
    """One ServiceBGPStatus per Service and node."""
    return "bgp-" + hashlib.sha256(f"{service_key}@{node}".encode()).hexdigest()[:16]


def bgp_status(service_key: str, node: str, peers: Iterable[str], namespace: str) -> dict[str, Any]:
    """The ServiceBGPStatus saying `node` advertises the Service `service_key` to the BGPPeers `peers`."""
    body = _status_object(
        "ServiceBGPStatus", bgp_status_name(service_key, node), service_key, node, namespace
    )
    body["status"]["peers"] = sorted(set(peers))
    return body


def _status_object(kind: str, name: str, service_key: str, node: str, namespace: str) -> dict[str, Any]:
    svc_namespace, _, svc_name = service_key.partition("/")
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                L2_STATUS_NODE_LABEL: node,
                L2_STATUS_SERVICE_LABEL: svc_name,
                L2_STATUS_NAMESPACE_LABEL: svc_namespace,
            },
        },
        "status": {"node": node, "serviceName": svc_name, "serviceNamespace": svc_namespace},
    }


@dataclass(frozen=True)
class StatusKind:
    """One kind of status object, for the reporter: its resource, its name for (Service, node), and the
    object saying a node announces a Service with `detail` (interfaces, or peers)."""

    resource: Resource
    name: Callable[[str, str], str]
    build: Callable[[str, str, tuple[str, ...], str], dict[str, Any]]


L2_STATUS = StatusKind(SERVICE_L2_STATUSES, lambda service, _node: l2_status_name(service), l2_status)
BGP_STATUS = StatusKind(SERVICE_BGP_STATUSES, bgp_status_name, bgp_status)


def status_node(obj: Mapping[str, Any] | None) -> str | None:
    """The node a status object names, if any."""
    node = ((obj or {}).get("status") or {}).get("node")
    return str(node) if node else None


def status_service(obj: Mapping[str, Any]) -> str:
    """The `namespace/name` of the Service a status object is about."""
    status = obj.get("status") or {}
    return f"{status.get('serviceNamespace')}/{status.get('serviceName')}"


def decide_status(
    wanted: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    me: str,
    *,
    now: float,
    not_before: float,
) -> StatusWrite:
    """`wanted`: the object this node should have (l2_status), None when it does not announce the Service;
    `current`: the object as watched; `not_before`: when the next takeover of this Service may happen."""
    owner = status_node(current)
    if wanted is None:
        return StatusWrite.DELETE if current is not None and owner == me else StatusWrite.KEEP
    if current is None:
        return StatusWrite.CREATE
    if owner not in (None, me):
        return StatusWrite.WAIT if now < not_before else StatusWrite.TAKE_OVER
    same = current.get("status") == wanted["status"] and (
        (current.get("metadata") or {}).get("labels") == wanted["metadata"]["labels"]
    )
    return StatusWrite.KEEP if same else StatusWrite.UPDATE
