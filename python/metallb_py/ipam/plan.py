"""`plan`: which addresses MetalLB would give a set of Services under a configuration, without a cluster.

Deterministic by construction. Services are taken in creation order (metadata.creationTimestamp, oldest
first; services without one after all that have one), ties broken by namespace then name, the order in which
a controller starting up would most plausibly have seen them. Two passes, as the MetalLB controller does after
a restart: first every Service that already has addresses in status.loadBalancer.ingress keeps them
(Allocator.assign), so new Services cannot take them; then the others are allocated. A kept address that no
longer fits (outside every pool, another pool than the annotation asks for, other IPs than requested) is
released and the Service allocated afresh in the second pass, as MetalLB does.

Only Services of type LoadBalancer whose spec.loadBalancerClass equals `lb_class` (by default: unset or
empty, i.e. MetalLB's own) are planned; the others are not MetalLB's business and get no row.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metallb_py._core import Allocator
from metallb_py.config import Config
from metallb_py.config.reader import Reader, Where, describe, load_yaml_documents
from metallb_py.errors import AllocationError, ConfigError
from metallb_py.ipam.fields import load_balancer_class
from metallb_py.ipam.service import (
    ServiceError,
    ServiceRequest,
    creation_timestamp,
    ingress_ips,
    is_load_balancer,
    service_key,
    service_request,
)

__all__ = ["PlanRow", "load_services", "plan"]

_LATEST = _dt.datetime.max.replace(tzinfo=_dt.UTC)


@dataclass(frozen=True)
class PlanRow:
    """The outcome for one Service: its addresses and pool, or why it stays pending."""

    key: str
    ips: tuple[str, ...] = ()
    pool: str | None = None
    error: str | None = None
    restored: bool = False  # kept the addresses its status already had

    @property
    def namespace(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "ips": list(self.ips),
            "pool": self.pool,
            "error": self.error,
            "restored": self.restored,
        }


@dataclass
class _Item:
    key: str
    svc: dict[str, Any]
    created: _dt.datetime
    request: ServiceRequest | None = None
    error: str | None = None


def plan(
    config: Config,
    services: Iterable[object],
    *,
    namespaces: Mapping[str, Mapping[str, str]] | None = None,
    lb_class: str | None = None,
) -> list[PlanRow]:
    """Allocate addresses to `services` (Service dicts) under `config`; one row per planned Service, in the
    order they were processed. `namespaces` maps namespace names to their labels, for pools that select
    namespaces by label. A Service without a name raises ServiceError; any other problem of a Service is
    its row's error."""
    namespace_labels = namespaces or {}
    items: list[_Item] = []
    seen: set[str] = set()
    duplicates: list[PlanRow] = []
    for svc in services:
        if not is_load_balancer(svc):
            continue
        assert isinstance(svc, dict)
        key = service_key(svc)
        if load_balancer_class(svc) != lb_class:
            continue
        if key in seen:
            duplicates.append(PlanRow(key, error=f"Service {key} appears more than once in the input"))
            continue
        seen.add(key)
        item = _Item(key, svc, _LATEST)
        try:
            item.created = creation_timestamp(svc) or _LATEST
            item.request = service_request(svc)
        except ServiceError as exc:
            item.error = str(exc)
        items.append(item)
    items.sort(key=lambda i: (i.created, i.key))

    allocator = Allocator(config.pools)
    rows: dict[str, PlanRow] = {}
    # Pass 1: keep what the cluster already shows.
    for item in items:
        if item.request is None:
            continue
        try:
            current = ingress_ips(item.svc)
        except ServiceError as exc:
            item.request, item.error = None, str(exc)
            continue
        labels = dict(namespace_labels.get(item.request.namespace, {}))
        if current and _keep(allocator, item.request, current, labels):
            kept = tuple(str(ip) for ip in allocator.ips(item.key))
            rows[item.key] = PlanRow(item.key, kept, allocator.pool_of(item.key), restored=True)
    # Pass 2: allocate the rest.
    for item in items:
        if item.key in rows:
            continue
        request = item.request
        if request is None:
            rows[item.key] = PlanRow(item.key, error=item.error)
            continue
        try:
            ips = allocator.allocate(
                request.key,
                **request.allocate_kwargs(),
                namespace_labels=dict(namespace_labels.get(request.namespace, {})),
            )
        except (AllocationError, ConfigError) as exc:
            rows[item.key] = PlanRow(item.key, error=str(exc))
            continue
        rows[item.key] = PlanRow(item.key, tuple(str(ip) for ip in ips), allocator.pool_of(item.key))
    return [rows[item.key] for item in items] + duplicates


def _keep(
    allocator: Allocator, request: ServiceRequest, current: list[str], namespace_labels: dict[str, str]
) -> bool:
    """Keeps the addresses a Service shows when MetalLB's controller would: its pool still serves it (as
    MetalLB's Assign checks), no conflict, and the pool and addresses it asks for. A PreferDualStack Service
    showing one family also gains the other from the same pool when it can, as MetalLB's controller does."""
    try:
        pool = allocator.assign(
            request.key,
            current,
            ports=list(request.ports),
            sharing_key=request.sharing_key,
            backend_key=request.backend_key,
            labels=dict(request.labels),
            namespace_labels=namespace_labels,
        )
    except (AllocationError, ConfigError):
        return False
    wrong_pool = request.pool is not None and pool != request.pool
    wrong_ips = bool(request.requested) and sorted(request.requested) != sorted(current)
    if wrong_pool or wrong_ips:
        allocator.release(request.key)
        return False
    if request.ip_family_policy == "PreferDualStack" and len(current) < len(request.ip_families):
        # Keeps what it holds (allocate never takes it away on success) and adds the missing family.
        with contextlib.suppress(AllocationError, ConfigError):
            allocator.allocate(request.key, **request.allocate_kwargs(), namespace_labels=namespace_labels)
    return True


def load_services(
    text: str, *, source: str = "<services>"
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Services and Namespace labels from YAML (documents, or `kind: List` as `kubectl get -o yaml` prints).

    Other kinds are an error naming them: this input is meant to be Services.
    """
    services: list[dict[str, Any]] = []
    namespaces: dict[str, dict[str, str]] = {}

    def take(obj: object, context: str) -> None:
        if obj is None:
            return
        where = Where(f"document ({context})")
        if not isinstance(obj, dict):
            where.fail("", f"expected a Kubernetes object (a mapping), got {describe(obj)}")
        kind = obj.get("kind")
        if kind == "List":
            for path, item in Reader(obj, where).items("items"):
                take(item, f"{context}, {path}")
        elif kind == "Service":
            services.append(obj)
        elif kind == "Namespace":
            metadata = Reader(obj, where).mapping("metadata", required=True)
            assert metadata is not None
            namespaces[metadata.required_text("name")] = metadata.text_map("labels")
        else:
            where.fail("kind", f"expected Service, Namespace or List, got {describe(kind)}")

    for n, document in enumerate(load_yaml_documents(text, Where(source)), start=1):
        take(document, f"{source}, document {n}")
    return services, namespaces
