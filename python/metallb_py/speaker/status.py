"""The speaker's status objects, as MetalLB writes them. Pure builders and the write decision; the reporter
(reporter.py) does the API calls.

Both kinds are one object per (node, Service), created with a generated name (`generateName` "l2-" or
"bgp-", MetalLB's prefixes) and labelled as MetalLB labels them, so `kubectl get servicel2statuses -l
metallb.io/service-name=web,metallb.io/service-namespace=default` finds a Service's, and `-l
metallb.io/node=node1` a node's. An object is found by these labels, never by its name.

- ServiceL2Status: which node announces a Service in layer 2 mode. The announcer keeps its own object (the
  first by name if several) and deletes the rest: its extra ones and other nodes' claims (MetalLB's
  Layer2StatusReconciler), the latter at once the first time, then backing off (`not_before`), so that two
  nodes that both announce during a partition do not delete each other's claim in a tight loop. A node that
  does not announce the Service deletes only its own.
- ServiceBGPStatus: the BGPPeers one node advertises a Service to. Every selected node advertises in BGP
  mode, so each node manages only its own objects.

When the speaker knows its Pod, the Pod owns its objects (an ownerReference, as MetalLB sets one), so the
garbage collector removes them with the Pod even when the speaker could not (a crash, a deleted DaemonSet).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from metallb_py.k8s.resources import SERVICE_BGP_STATUSES, SERVICE_L2_STATUSES, Resource, meta

__all__ = [
    "BGP_STATUS",
    "BGP_STATUS_PREFIX",
    "L2_STATUS",
    "L2_STATUS_NAMESPACE_LABEL",
    "L2_STATUS_NODE_LABEL",
    "L2_STATUS_PREFIX",
    "L2_STATUS_SERVICE_LABEL",
    "StatusKind",
    "StatusPlan",
    "StatusWrite",
    "bgp_status",
    "decide_status",
    "l2_status",
    "merged_owners",
    "pod_owner",
    "service_selector",
    "status_node",
    "status_service",
]

L2_STATUS_NODE_LABEL = "metallb.io/node"
L2_STATUS_SERVICE_LABEL = "metallb.io/service-name"
L2_STATUS_NAMESPACE_LABEL = "metallb.io/service-namespace"
L2_STATUS_PREFIX = "l2-"
BGP_STATUS_PREFIX = "bgp-"


class StatusWrite(StrEnum):
    """What to do with this node's status object of one Service."""

    KEEP = "keep"  # it says what it should (or there is none, and none is wanted)
    CREATE = "create"
    UPDATE = "update"  # its status or labels are out of date
    WAIT = "wait"  # other nodes' claims must go first, but the last takeover was too recent
    DELETE = "delete"  # this node no longer announces the Service: its objects go


def l2_status(service_key: str, node: str, interfaces: Iterable[str], namespace: str) -> dict[str, Any]:
    """The ServiceL2Status saying `node` announces the Service `service_key` on `interfaces` (to create:
    it has a generateName, no name)."""
    body = _status_object("ServiceL2Status", L2_STATUS_PREFIX, service_key, node, namespace)
    body["status"]["interfaces"] = [{"name": name} for name in sorted(set(interfaces))]
    return body


def bgp_status(service_key: str, node: str, peers: Iterable[str], namespace: str) -> dict[str, Any]:
    """The ServiceBGPStatus saying `node` advertises the Service `service_key` to the BGPPeers `peers`."""
    body = _status_object("ServiceBGPStatus", BGP_STATUS_PREFIX, service_key, node, namespace)
    body["status"]["peers"] = sorted(set(peers))
    return body


def service_selector(service_key: str) -> str:
    """The label selector of the status objects of the Service `namespace/name`."""
    namespace, _, name = service_key.partition("/")
    return f"{L2_STATUS_SERVICE_LABEL}={name},{L2_STATUS_NAMESPACE_LABEL}={namespace}"


def pod_owner(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The ownerReference naming the Pod `pod` (as read from the API) as an owner. Neither `controller`
    nor `blockOwnerDeletion`, as MetalLB's: the latter would need delete rights on Pods."""
    metadata = pod.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod", "name": metadata.get("name"), "uid": metadata.get("uid")}


def merged_owners(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The ownerReferences `current` must have to carry every one of `wanted`'s: its own, an owner of the same
    kind and name (an earlier incarnation of the Pod) replaced; None when it has them already."""
    have = list((current.get("metadata") or {}).get("ownerReferences") or [])
    merged = list(have)
    for ref in (wanted.get("metadata") or {}).get("ownerReferences") or []:
        merged = [o for o in merged if (o.get("kind"), o.get("name")) != (ref["kind"], ref["name"])]
        merged.append(dict(ref))
    same = sorted(map(_owner_key, merged)) == sorted(map(_owner_key, have))
    return None if same else merged


def _owner_key(ref: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(ref.get("kind")), str(ref.get("name")), str(ref.get("uid")))


def _status_object(kind: str, prefix: str, service_key: str, node: str, namespace: str) -> dict[str, Any]:
    svc_namespace, _, svc_name = service_key.partition("/")
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": kind,
        "metadata": {
            "generateName": prefix,
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
    """One kind of status object, for the reporter: its resource, the object saying a node announces a
    Service with `detail` (interfaces, or peers), and whether the announcer removes other nodes' objects
    of the Service (`exclusive`: one announcer per Service)."""

    resource: Resource
    build: Callable[[str, str, tuple[str, ...], str], dict[str, Any]]
    exclusive: bool


L2_STATUS = StatusKind(SERVICE_L2_STATUSES, l2_status, exclusive=True)
BGP_STATUS = StatusKind(SERVICE_BGP_STATUSES, bgp_status, exclusive=False)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def status_node(obj: Mapping[str, Any] | None) -> str | None:
    """The node a status object is of: its metallb.io/node label (MetalLB's key), else `status.node`."""
    if obj is None:
        return None
    node = _labels(obj).get(L2_STATUS_NODE_LABEL) or (obj.get("status") or {}).get("node")
    return str(node) if node else None


def status_service(obj: Mapping[str, Any]) -> str:
    """The `namespace/name` of the Service a status object is about: its labels (MetalLB's index), else its
    status."""
    labels = _labels(obj)
    if labels.get(L2_STATUS_SERVICE_LABEL) and labels.get(L2_STATUS_NAMESPACE_LABEL):
        return f"{labels[L2_STATUS_NAMESPACE_LABEL]}/{labels[L2_STATUS_SERVICE_LABEL]}"
    status = obj.get("status") or {}
    return f"{status.get('serviceNamespace')}/{status.get('serviceName')}"


@dataclass(frozen=True)
class StatusPlan:
    """What to do for one Service: delete the objects named in `delete` (first), then `write` this node's
    object, `current` (None: create it). `takes_over`: `delete` holds other nodes' claims."""

    write: StatusWrite
    current: Mapping[str, Any] | None = None
    delete: tuple[str, ...] = ()
    takes_over: bool = False


def decide_status(
    wanted: Mapping[str, Any] | None,
    objects: Sequence[Mapping[str, Any]],
    me: str,
    *,
    exclusive: bool,
    now: float,
    not_before: float,
) -> StatusPlan:
    """`wanted`: the object this node should have (l2_status, bgp_status, with the ownerReferences it must
    carry), None when it does not announce the Service; `objects`: the Service's status objects as watched
    (every node's); `exclusive`: whether other nodes' objects must go (StatusKind.exclusive); `not_before`:
    when the next takeover of this Service may happen. Objects are taken in name order, so every retry
    picks the same one to keep."""
    ordered = sorted(objects, key=lambda o: meta(o, "name"))
    mine = [o for o in ordered if status_node(o) == me]
    if wanted is None:
        names = tuple(meta(o, "name") for o in mine)
        return StatusPlan(StatusWrite.DELETE if names else StatusWrite.KEEP, delete=names)
    others = [o for o in ordered if status_node(o) != me] if exclusive else []
    if others and now < not_before:
        return StatusPlan(StatusWrite.WAIT)
    delete = tuple(meta(o, "name") for o in [*mine[1:], *others])
    if not mine:
        return StatusPlan(StatusWrite.CREATE, None, delete, bool(others))
    current = mine[0]
    same = (
        current.get("status") == wanted["status"]
        and _labels(current) == wanted["metadata"]["labels"]
        and merged_owners(current, wanted) is None
    )
    return StatusPlan(StatusWrite.KEEP if same else StatusWrite.UPDATE, current, delete, bool(others))
