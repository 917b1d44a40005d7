"""metallb_py.controller.reconcile: one Service and the allocator in, the outcome and the writes out.

Table tests: each case starts from an allocator over a few pools, optionally holding addresses for other
Services, decides for one Service, and checks the outcome, what is written and which events are recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from metallb_py import Allocator, LabelSelector, Pool, Port, ServiceAllocation
from metallb_py.controller.reconcile import (
    ANNOTATION_ALLOCATED_FROM_POOL as POOL_ANNOTATION,
)
from metallb_py.controller.reconcile import (
    Outcome,
    SyncState,
    reconcile_service,
    restore_assignments,
    service_order,
)
from metallb_py.ipam.fields import DEPRECATED_ALLOCATED_FROM_POOL

DEPRECATED_POOL_ANNOTATION = DEPRECATED_ALLOCATED_FROM_POOL


def svc(
    name: str = "web",
    namespace: str = "default",
    *,
    annotations: dict[str, str] | None = None,
    ips: tuple[str, ...] = (),
    created: str | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "resourceVersion": "7"}
    if annotations:
        metadata["annotations"] = annotations
    if created:
        metadata["creationTimestamp"] = created
    if labels:
        metadata["labels"] = labels
    body: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": body,
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]} if ips else {}},
    }


def pools() -> list[Pool]:
    team = ServiceAllocation(namespace_selectors=[LabelSelector({"team": "blue"})])
    return [
        Pool("seed", ["192.168.1.11-192.168.1.13"]),
        Pool("manual", ["10.0.0.1-10.0.0.2"], auto_assign=False),
        Pool("dual", ["10.1.0.1/32", "fd00::1/128"], auto_assign=False),
        Pool("v6", ["fd00:1::/126"], auto_assign=False),
        Pool("blue", ["10.2.0.1/32"], service_allocation=team),
    ]


Setup = Callable[[Allocator], object]


def hold(key: str, ip: str, **kwargs: Any) -> Setup:
    return lambda a: a.assign(key, [ip], **kwargs)


def fill_seed(a: Allocator) -> None:
    for i in range(3):
        a.allocate(f"other/s{i}")


@dataclass
class Case:
    name: str
    service: dict[str, Any] | None
    outcome: Outcome
    ips: tuple[str, ...] = ()
    status: tuple[str, ...] | None = None  # the status write expected (None: none)
    annotations: dict[str, str | None] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    freed: bool = False
    setup: tuple[Setup, ...] = ()
    key: str = "default/web"
    lb_class: str | None = None
    config_loaded: bool = True
    namespace_labels: dict[str, str] = field(default_factory=dict)


SEED_POOL = {POOL_ANNOTATION: "seed"}

CASES = [
    # -- allocation --
    Case(
        "new service gets the lowest address",
        svc(),
        Outcome.ALLOCATED,
        ips=("192.168.1.11",),
        status=("192.168.1.11",),
        annotations=SEED_POOL,
        events=("IPAllocated",),
    ),
    Case(
        "the next service gets the next address",
        svc(),
        Outcome.ALLOCATED,
        ips=("192.168.1.12",),
        status=("192.168.1.12",),
        annotations=SEED_POOL,
        events=("IPAllocated",),
        setup=(hold("default/other", "192.168.1.11"),),
    ),
    Case(
        "converged: holds what it shows, annotated",
        svc(ips=("192.168.1.11",), annotations=SEED_POOL),
        Outcome.UNCHANGED,
        ips=("192.168.1.11",),
        setup=(hold("default/web", "192.168.1.11"),),
    ),
    Case(
        "annotation missing: only the annotation is written",
        svc(ips=("192.168.1.11",)),
        Outcome.UPDATED,
        ips=("192.168.1.11",),
        annotations=SEED_POOL,
        setup=(hold("default/web", "192.168.1.11"),),
    ),
    Case(
        "deprecated pool annotation is replaced by the current one",
        svc(ips=("192.168.1.11",), annotations={DEPRECATED_POOL_ANNOTATION: "seed"}),
        Outcome.UPDATED,
        ips=("192.168.1.11",),
        annotations={POOL_ANNOTATION: "seed", DEPRECATED_POOL_ANNOTATION: None},
        setup=(hold("default/web", "192.168.1.11"),),
    ),
    Case(
        "pool annotation names the pool",
        svc(annotations={"metallb.io/address-pool": "manual"}),
        Outcome.ALLOCATED,
        ips=("10.0.0.1",),
        status=("10.0.0.1",),
        annotations={POOL_ANNOTATION: "manual"},
        events=("IPAllocated",),
    ),
    Case(
        "deprecated pool annotation is honoured",
        svc(annotations={"metallb.universe.tf/address-pool": "manual"}),
        Outcome.ALLOCATED,
        ips=("10.0.0.1",),
        status=("10.0.0.1",),
        annotations={POOL_ANNOTATION: "manual"},
        events=("IPAllocated",),
    ),
    Case(
        "loadBalancerIPs annotation asks for an address",
        svc(annotations={"metallb.io/loadBalancerIPs": "10.0.0.2"}),
        Outcome.ALLOCATED,
        ips=("10.0.0.2",),
        status=("10.0.0.2",),
        annotations={POOL_ANNOTATION: "manual"},
        events=("IPAllocated",),
    ),
    Case(
        "spec.loadBalancerIP asks for an address",
        svc(loadBalancerIP="192.168.1.13"),
        Outcome.ALLOCATED,
        ips=("192.168.1.13",),
        status=("192.168.1.13",),
        annotations=SEED_POOL,
        events=("IPAllocated",),
    ),
    Case(
        "allow-shared-ip shares with a compatible service",
        svc(annotations={"metallb.io/allow-shared-ip": "k"}, loadBalancerIP="192.168.1.11"),
        Outcome.ALLOCATED,
        ips=("192.168.1.11",),
        status=("192.168.1.11",),
        annotations=SEED_POOL,
        events=("IPAllocated",),
        setup=(hold("default/dns", "192.168.1.11", ports=[Port(53, "UDP")], sharing_key="k"),),
    ),
    Case(
        "deprecated allow-shared-ip is honoured",
        svc(annotations={"metallb.universe.tf/allow-shared-ip": "k"}, loadBalancerIP="192.168.1.11"),
        Outcome.ALLOCATED,
        ips=("192.168.1.11",),
        status=("192.168.1.11",),
        annotations=SEED_POOL,
        events=("IPAllocated",),
        setup=(hold("default/dns", "192.168.1.11", ports=[Port(53, "UDP")], sharing_key="k"),),
    ),
    Case(
        "RequireDualStack gets one address per family",
        svc(
            annotations={"metallb.io/address-pool": "dual"},
            ipFamilyPolicy="RequireDualStack",
            ipFamilies=["IPv4", "IPv6"],
        ),
        Outcome.ALLOCATED,
        ips=("10.1.0.1", "fd00::1"),
        status=("10.1.0.1", "fd00::1"),
        annotations={POOL_ANNOTATION: "dual"},
        events=("IPAllocated",),
    ),
    Case(
        "a SingleStack IPv6 service gets an IPv6 address",
        svc(annotations={"metallb.io/address-pool": "v6"}, ipFamilies=["IPv6"]),
        Outcome.ALLOCATED,
        ips=("fd00:1::",),
        status=("fd00:1::",),
        annotations={POOL_ANNOTATION: "v6"},
        events=("IPAllocated",),
    ),
    Case(
        "a pool selecting namespaces by label serves a labelled namespace first",
        svc(namespace="team"),
        Outcome.ALLOCATED,
        ips=("10.2.0.1",),
        status=("10.2.0.1",),
        annotations={POOL_ANNOTATION: "blue"},
        events=("IPAllocated",),
        key="team/web",
        namespace_labels={"team": "blue"},
    ),
    # -- restart: what the status shows --
    Case(
        "status shows an address it may keep: kept, not moved",
        svc(ips=("192.168.1.13",), annotations=SEED_POOL),
        Outcome.UNCHANGED,
        ips=("192.168.1.13",),
    ),
    Case(
        "status shows an address another service holds: moved",
        svc(ips=("192.168.1.11",), annotations=SEED_POOL),
        Outcome.ALLOCATED,
        ips=("192.168.1.12",),
        status=("192.168.1.12",),
        events=("IPAllocated",),
        setup=(hold("default/older", "192.168.1.11"),),
    ),
    Case(
        "status shows an address outside every pool: moved",
        svc(ips=("172.16.0.1",)),
        Outcome.ALLOCATED,
        ips=("192.168.1.11",),
        status=("192.168.1.11",),
        annotations=SEED_POOL,
        events=("IPAllocated",),
    ),
    Case(
        "status shows an address of another pool than the annotation asks: moved",
        svc(ips=("192.168.1.11",), annotations={"metallb.io/address-pool": "manual"}),
        Outcome.ALLOCATED,
        ips=("10.0.0.1",),
        status=("10.0.0.1",),
        annotations={POOL_ANNOTATION: "manual"},
        events=("IPAllocated",),
    ),
    Case(
        "the requested address changed: moved and the old one freed",
        svc(ips=("192.168.1.11",), annotations={**SEED_POOL, "metallb.io/loadBalancerIPs": "192.168.1.13"}),
        Outcome.ALLOCATED,
        ips=("192.168.1.13",),
        status=("192.168.1.13",),
        events=("IPAllocated",),
        freed=True,
        setup=(hold("default/web", "192.168.1.11"),),
    ),
    Case(
        "malformed status entries are replaced",
        svc(ips=("not-an-ip",)),
        Outcome.ALLOCATED,
        ips=("192.168.1.11",),
        status=("192.168.1.11",),
        annotations=SEED_POOL,
        events=("IPAllocated",),
    ),
    # -- failures --
    Case(
        "pool exhausted: pending with AllocationFailed",
        svc(),
        Outcome.FAILED,
        events=("AllocationFailed",),
        setup=(fill_seed,),
    ),
    Case(
        "the requested address is taken: its old one is cleared",
        svc(ips=("192.168.1.11",), annotations={**SEED_POOL, "metallb.io/loadBalancerIPs": "192.168.1.12"}),
        Outcome.FAILED,
        status=(),
        annotations={POOL_ANNOTATION: None},
        events=("AllocationFailed", "ClearAssignment"),
        freed=True,
        setup=(hold("default/web", "192.168.1.11"), hold("default/other", "192.168.1.12")),
    ),
    Case(
        "an unknown pool: pending",
        svc(annotations={"metallb.io/address-pool": "nope"}),
        Outcome.FAILED,
        events=("AllocationFailed",),
    ),
    Case(
        "a malformed annotation: keeps what it holds, with a warning",
        svc(ips=("192.168.1.11",), annotations={**SEED_POOL, "metallb.io/loadBalancerIPs": "banana"}),
        Outcome.INVALID,
        ips=("192.168.1.11",),
        events=("AllocationFailed",),
        setup=(hold("default/web", "192.168.1.11"),),
    ),
    Case(
        "a malformed annotation after a restart: keeps what its status shows",
        svc(ips=("192.168.1.11",), annotations={**SEED_POOL, "metallb.io/loadBalancerIPs": "banana"}),
        Outcome.INVALID,
        ips=("192.168.1.11",),
        events=("AllocationFailed",),
    ),
    Case(
        "no configuration yet: nothing happens",
        svc(),
        Outcome.WAITING,
        config_loaded=False,
    ),
    # -- leaving --
    Case(
        "deleted: its address is freed",
        None,
        Outcome.RELEASED,
        freed=True,
        setup=(hold("default/web", "192.168.1.11"),),
    ),
    Case("deleted, held nothing", None, Outcome.RELEASED),
    Case(
        "type changed away from LoadBalancer: released, annotation removed",
        svc(annotations=SEED_POOL, type="ClusterIP"),
        Outcome.CLEARED,
        annotations={POOL_ANNOTATION: None},
        events=("ClearAssignment",),
        freed=True,
        setup=(hold("default/web", "192.168.1.11"),),
    ),
    Case(
        "not a LoadBalancer but showing addresses: cleared",
        svc(type="NodePort", ips=("192.168.1.11",)),
        Outcome.CLEARED,
        status=(),
    ),
    Case("a ClusterIP service is not ours", svc(type="ClusterIP"), Outcome.IGNORED),
    Case(
        "another class is not ours, whatever its status",
        svc(loadBalancerClass="example.com/other", ips=("192.168.1.11",)),
        Outcome.IGNORED,
    ),
    Case(
        "another class's pool annotation is left alone (another controller wrote it)",
        svc(
            loadBalancerClass="example.com/other", ips=("10.9.0.1",), annotations={POOL_ANNOTATION: "theirs"}
        ),
        Outcome.IGNORED,
    ),
    Case(
        "with --lb-class, a service without a class is not ours",
        svc(),
        Outcome.IGNORED,
        lb_class="example.com/ours",
    ),
    Case(
        "with --lb-class, a service of that class is ours",
        svc(loadBalancerClass="example.com/ours"),
        Outcome.ALLOCATED,
        ips=("192.168.1.11",),
        status=("192.168.1.11",),
        annotations=SEED_POOL,
        events=("IPAllocated",),
        lb_class="example.com/ours",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reconcile(case: Case) -> None:
    allocator = Allocator(pools())
    for setup in case.setup:
        setup(allocator)
    decision = reconcile_service(
        case.key,
        case.service,
        allocator,
        config_loaded=case.config_loaded,
        lb_class=case.lb_class,
        namespace_labels=case.namespace_labels,
    )
    assert decision.outcome is case.outcome
    assert decision.ips == case.ips
    assert decision.status_ips == case.status
    assert dict(decision.annotations) == case.annotations
    assert tuple(e.reason for e in decision.events) == case.events
    assert decision.freed == case.freed
    # The allocator agrees with the decision.
    assert tuple(str(ip) for ip in allocator.ips(case.key)) == case.ips
    expected_state = (
        SyncState.ERROR_NO_RETRY
        if case.outcome in (Outcome.FAILED, Outcome.INVALID, Outcome.WAITING)
        else SyncState.SUCCESS
    )
    assert decision.state is expected_state
    assert decision.writes == (case.status is not None or bool(case.annotations))


def test_deciding_twice_is_idempotent() -> None:
    allocator = Allocator(pools())
    first = reconcile_service("default/web", svc(), allocator)
    written = svc(ips=first.ips, annotations={POOL_ANNOTATION: "seed"})
    again = reconcile_service("default/web", written, allocator)
    assert again.outcome is Outcome.UNCHANGED
    assert not again.writes
    assert not again.events


def test_event_messages_say_what_and_why() -> None:
    allocator = Allocator(pools())
    fill_seed(allocator)
    failed = reconcile_service("default/web", svc(), allocator)
    assert failed.events[0].type == "Warning"
    assert 'no available IPv4 address in pool "seed"' in failed.events[0].message
    allocator.release("other/s0")
    ok = reconcile_service("default/web", svc(), allocator)
    assert ok.events[0].type == "Normal"
    assert ok.events[0].message == "Assigned 192.168.1.11 from pool seed"


def test_restore_keeps_the_oldest_claim_and_allocates_nothing() -> None:
    allocator = Allocator(pools())
    services = [
        svc("newer", ips=("192.168.1.11",), created="2024-01-02T00:00:00Z"),
        svc("older", ips=("192.168.1.11",), created="2024-01-01T00:00:00Z"),
        svc("fresh"),  # no address yet: not touched by the restore
        svc("elsewhere", ips=("172.16.0.1",)),  # outside every pool
        svc("clusterip", type="ClusterIP", ips=("192.168.1.12",)),
        svc("classy", loadBalancerClass="example.com/x", ips=("192.168.1.13",)),
        svc("broken", ips=("192.168.1.13",), annotations={"metallb.io/loadBalancerIPs": "x"}),
    ]
    kept = restore_assignments(services, allocator)
    assert kept == {
        "default/older": True,
        "default/newer": False,
        "default/elsewhere": False,
        "default/broken": True,  # unreadable, but it keeps what it shows (regression: it was skipped)
    }
    assert allocator.keys() == ["default/broken", "default/older"]
    # The loser is moved by its reconcile, never given the address the older one holds.
    moved = reconcile_service("default/newer", services[0], allocator)
    assert moved.ips == ("192.168.1.12",)


def test_restore_shares_when_the_rules_allow_it() -> None:
    allocator = Allocator(pools())
    shared = {"metallb.io/allow-shared-ip": "k"}
    services = [
        svc("http", ips=("192.168.1.11",), annotations=shared),
        svc("dns", ips=("192.168.1.11",), annotations=shared, ports=[{"port": 53, "protocol": "UDP"}]),
    ]
    assert restore_assignments(services, allocator) == {"default/http": True, "default/dns": True}
    assert sorted(allocator.holders("192.168.1.11")) == ["default/dns", "default/http"]


def test_service_order_is_oldest_first_then_by_key() -> None:
    services = [
        svc("b", created="2024-01-01T00:00:00Z"),
        svc("undated"),
        svc("a", created="2024-01-01T00:00:00Z"),
        svc("c", created="2023-12-31T00:00:00Z"),
    ]
    names = [s["metadata"]["name"] for s in sorted(services, key=service_order)]
    assert names == ["c", "a", "b", "undated"]
