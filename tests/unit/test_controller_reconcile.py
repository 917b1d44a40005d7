"""metallb_py.controller.reconcile: one Service and the allocator in, the outcome and the writes out; and
metallb_py.controller.sync: the worker's pass over one key, settled by its SyncState.

Table tests: each decision case starts from an allocator over a few pools, optionally holding addresses for
other Services, decides for one Service, and checks the outcome, what is written and which events are
recorded. Each worker case runs one pass against an in-memory API (resourceVersion preconditions as the API
server has them, scripted failures) and checks what happens to the key (retried after its backoff, or left)
and which Events are recorded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from metallb_py import Allocator, LabelSelector, Pool, Port, ServiceAllocation
from metallb_py.controller.metrics import Metrics
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
from metallb_py.controller.sync import WRITE_REFUSED, ServiceSync
from metallb_py.ipam.fields import DEPRECATED_ALLOCATED_FROM_POOL
from metallb_py.k8s.errors import (
    ApiError,
    ApiUnavailableError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
)
from metallb_py.k8s.resources import Resource, object_key
from metallb_py.runtime.workqueue import WorkQueue

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
    annotations: Mapping[str, str | None] = field(default_factory=dict)
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
    Case(
        "a malformed entry beside a valid one is removed, the valid one kept",
        svc(ips=("192.168.1.12", "not-an-ip"), annotations=SEED_POOL),
        Outcome.ALLOCATED,
        ips=("192.168.1.12",),
        status=("192.168.1.12",),
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


# -- the worker's pass over one key (controller.sync) --------------------------------------------------------


class FakeApi:
    """Services by key with the API server's rules for a merge patch: a `metadata.resourceVersion` in the body
    is a precondition (409 when the object changed), each write makes a new version. `failures` are raised by
    the next patches, one each, in order; `refuse` by every patch while set."""

    def __init__(self, *services: dict[str, Any]) -> None:
        self.objects = {object_key(s): copy.deepcopy(s) for s in services}
        self.failures: list[ApiError] = []
        self.refuse: ApiError | None = None
        self.patches = 0
        self.gets = 0
        self._version = 100

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.gets += 1
        obj = self.objects.get(f"{namespace}/{name}")
        if obj is None:
            raise NotFoundError(404, "NotFound", f'services "{name}" not found')
        return copy.deepcopy(obj)

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        self.patches += 1
        if self.failures:
            raise self.failures.pop(0)
        if self.refuse is not None:
            raise self.refuse
        obj = self.objects.get(f"{namespace}/{name}")
        if obj is None:
            raise NotFoundError(404, "NotFound", f'services "{name}" not found')
        metadata = body.get("metadata") or {}
        if metadata.get("resourceVersion") not in (None, obj["metadata"]["resourceVersion"]):
            raise ConflictError(409, "Conflict", "the object has been modified")
        if subresource == "status":
            obj["status"] = copy.deepcopy(body["status"])
        for k, v in (metadata.get("annotations") or {}).items():
            annotations = obj["metadata"].setdefault("annotations", {})
            if v is None:
                annotations.pop(k, None)
            else:
                annotations[k] = v
        return self.touch(f"{namespace}/{name}")

    def touch(self, key: str, **labels: str) -> dict[str, Any]:
        """A new version of the object (another client's change when called by a test)."""
        obj = self.objects[key]
        obj["metadata"].setdefault("labels", {}).update(labels)
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        return copy.deepcopy(obj)


class FakeStore:
    """The watched copies (a Reflector's store)."""

    def __init__(self, *services: dict[str, Any]) -> None:
        self.objects = {object_key(s): copy.deepcopy(s) for s in services}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.objects.get(key)

    def observe(self, obj: dict[str, Any]) -> None:
        self.objects[object_key(obj)] = obj


class FakeEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str]] = []  # (object name, type, reason)

    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        self.recorded.append((obj["metadata"]["name"], type, reason))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


RETRY_BASE = 1.0  # the queue's first retry delay in these tests


class World:
    """One ServiceSync over fakes, a real WorkQueue on a fake clock and a real allocator."""

    def __init__(self, *services: dict[str, Any], pool_list: list[Pool] | None = None) -> None:
        for s in services:
            s["metadata"]["uid"] = "uid-" + s["metadata"]["name"]
        self.api = FakeApi(*services)
        self.store = FakeStore(*services)
        self.events = FakeEvents()
        self.clock = Clock()
        self.queue = WorkQueue(base_delay=RETRY_BASE, max_delay=8 * RETRY_BASE, clock=self.clock)
        self.metrics = Metrics()
        self.allocator = Allocator(pools() if pool_list is None else pool_list)
        self.sync = ServiceSync(
            self.api,
            self.store,
            self.events,
            self.queue,
            self.metrics,
            order=service_order,
            namespace_labels=lambda namespace: {},
        )

    def handle(self, key: str = "default/web") -> SyncState:
        return self.sync.handle(key, self.allocator, ready=True).state

    def changed(self, key: str = "default/web", **labels: str) -> None:
        """Someone else changes the Service; the watch delivers it."""
        self.store.observe(self.api.touch(key, **labels))

    def due(self) -> list[str]:
        """The keys handed out now, each marked done."""
        keys = []
        while (key := self.queue.get(timeout=0)) is not None:
            keys.append(key)
            self.queue.done(key)
        return keys

    def counter(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(name)
        return 0.0 if value is None else value


UNAVAILABLE = ApiUnavailableError(503, "ServiceUnavailable", "the server is currently unable to handle it")
FORBIDDEN = ForbiddenError(403, "Forbidden", 'cannot patch resource "services/status"')
CONFLICT = ConflictError(409, "Conflict", "the object has been modified")


@dataclass
class Pass:
    name: str
    failures: list[ApiError]
    state: SyncState
    retried: bool  # the key comes back after its backoff (and not before)
    events: list[tuple[str, str]]  # (type, reason) recorded about the Service
    errors: tuple[int, int] = (0, 0)  # (temporary, permanent) in the metrics
    deleted: bool = False  # the Service was deleted from the API; the watch has not said so yet
    fill_pools: bool = False  # no address left for it


PASSES = [
    Pass("converges", [], SyncState.SUCCESS, False, [("Normal", "IPAllocated")]),
    Pass(
        "a conflict: read again, decide again, written",
        [ConflictError(409, "Conflict", "modified")],
        SyncState.SUCCESS,
        False,
        [("Normal", "IPAllocated")],
    ),
    Pass("API server unavailable (503)", [UNAVAILABLE], SyncState.ERROR, True, [], errors=(1, 0)),
    Pass(
        "no answer (connection refused)",
        [ApiUnavailableError(0, "", "no answer: connection refused")],
        SyncState.ERROR,
        True,
        [],
        errors=(1, 0),
    ),
    Pass(
        "too many requests (429)",
        [ApiUnavailableError(429, "TooManyRequests", "slow down")],
        SyncState.ERROR,
        True,
        [],
        errors=(1, 0),
    ),
    Pass("gone (410)", [GoneError(410, "Gone", "too old")], SyncState.ERROR, True, [], errors=(1, 0)),
    Pass(
        "still conflicting after every attempt",
        [ConflictError(409, "Conflict", "modified")] * 5,
        SyncState.ERROR,
        True,
        [],
        errors=(1, 0),
    ),
    Pass(
        "forbidden (403): reported, not retried",
        [FORBIDDEN],
        SyncState.ERROR_NO_RETRY,
        False,
        [("Warning", WRITE_REFUSED)],
        errors=(0, 1),
    ),
    Pass(
        "invalid (422): reported, not retried",
        [InvalidError(422, "Invalid", "status.loadBalancer.ingress[0].ip: Invalid value")],
        SyncState.ERROR_NO_RETRY,
        False,
        [("Warning", WRITE_REFUSED)],
        errors=(0, 1),
    ),
    Pass(
        "bad request (400): reported, not retried",
        [InvalidError(400, "BadRequest", "the body of the request was in an unknown format")],
        SyncState.ERROR_NO_RETRY,
        False,
        [("Warning", WRITE_REFUSED)],
        errors=(0, 1),
    ),
    Pass(
        "not found although it is still there: reported, not retried",
        [NotFoundError(404, "NotFound", "the server could not find the requested resource")],
        SyncState.ERROR_NO_RETRY,
        False,
        [("Warning", WRITE_REFUSED)],
        errors=(0, 1),
    ),
    Pass("not found, and gone when read again: released", [], SyncState.SUCCESS, False, [], deleted=True),
    Pass(
        "no address for it: AllocationFailed, waits for addresses to free up",
        [],
        SyncState.ERROR_NO_RETRY,
        False,
        [("Warning", "AllocationFailed")],
        fill_pools=True,
    ),
]


@pytest.mark.parametrize("case", PASSES, ids=[c.name for c in PASSES])
def test_what_the_worker_does_with_each_outcome(case: Pass) -> None:
    world = World(svc())
    world.api.failures = list(case.failures)
    if case.deleted:
        del world.api.objects["default/web"]
    if case.fill_pools:
        fill_seed(world.allocator)

    assert world.handle() is case.state

    assert [(t, r) for _, t, r in world.events.recorded] == case.events
    errors = (
        world.counter("metallb_k8s_client_update_errors_total"),
        world.counter("metallb_py_controller_permanent_errors_total"),
    )
    assert errors == case.errors
    assert world.due() == []  # nothing comes back at once
    world.clock.now += RETRY_BASE
    assert world.due() == (["default/web"] if case.retried else [])
    assert world.queue.idle()
    if case.deleted:
        assert world.allocator.ips("default/web") == []


def test_a_refused_write_is_reported_once_and_left_until_the_service_changes() -> None:
    world = World(svc())
    world.api.refuse = FORBIDDEN
    assert world.handle() is SyncState.ERROR_NO_RETRY
    assert world.api.patches == 1
    world.clock.now += 3600
    assert world.queue.idle() and world.due() == []  # left alone: no retry, however long

    # Woken again (another Service's change freed addresses, the configuration changed, or it changed):
    # each wake-up is one attempt, and the same refusal is not reported again.
    assert world.handle() is SyncState.ERROR_NO_RETRY
    world.changed(team="blue")
    assert world.handle() is SyncState.ERROR_NO_RETRY
    assert world.api.patches == 3
    assert world.events.recorded == [("web", "Warning", WRITE_REFUSED)]
    assert world.counter("metallb_py_controller_permanent_errors_total") == 3
    assert world.counter("metallb_k8s_client_update_errors_total") == 0

    # The rights are granted; the next change converges, and a later refusal is news again.
    world.api.refuse = None
    world.changed(team="green")
    assert world.handle() is SyncState.SUCCESS
    assert world.api.objects["default/web"]["status"]["loadBalancer"]["ingress"] == [{"ip": "192.168.1.11"}]
    world.api.refuse = FORBIDDEN
    world.changed(team="red")
    world.store.objects["default/web"]["spec"]["loadBalancerIP"] = "192.168.1.12"
    assert world.handle() is SyncState.ERROR_NO_RETRY
    assert [r for _, _, r in world.events.recorded] == [WRITE_REFUSED, "IPAllocated", WRITE_REFUSED]


def test_temporary_failures_back_off_per_key_and_a_success_forgets() -> None:
    world = World(svc(), svc("other"))
    world.api.failures = [UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]
    waits = []
    for _ in range(3):
        assert world.handle() is SyncState.ERROR
        waited = 0.0
        while not world.due():
            world.clock.now += RETRY_BASE / 4
            waited += RETRY_BASE / 4
        waits.append(waited)
    assert waits[0] == RETRY_BASE and waits[0] < waits[1] < waits[2]
    assert world.queue.failures("default/web") == 3
    assert world.queue.failures("default/other") == 0  # per key
    assert world.handle() is SyncState.SUCCESS
    assert world.queue.failures("default/web") == 0
    assert world.events.recorded == [("web", "Normal", "IPAllocated")]


def test_addresses_freed_wake_the_services_waiting_for_one_once_the_release_is_written() -> None:
    """Regression: the wake-up of Services waiting for an address followed only a successful write of the
    decision that freed it; when that write failed, its retry decided again but freed nothing more, so the
    waiting Services slept on. Waking them before the write would hand out an address still shown."""
    world = World(svc("holder"), svc("waiter"), pool_list=[Pool("one", ["192.168.1.11/32"])])
    assert world.handle("default/holder") is SyncState.SUCCESS
    assert world.handle("default/waiter") is SyncState.ERROR_NO_RETRY  # no address left
    world.store.objects["default/holder"]["spec"]["type"] = "ClusterIP"
    world.api.failures = [UNAVAILABLE]
    assert world.handle("default/holder") is SyncState.ERROR  # released in the allocator, still shown
    assert world.due() == []
    world.clock.now += RETRY_BASE
    assert world.due() == ["default/holder"]
    assert world.handle("default/holder") is SyncState.SUCCESS  # the release is written now
    assert world.due() == ["default/waiter"]
    assert world.handle("default/waiter") is SyncState.SUCCESS
    waiter = world.api.objects["default/waiter"]
    assert waiter["status"]["loadBalancer"]["ingress"] == [{"ip": "192.168.1.11"}]


ONE = [Pool("one", ["192.168.1.11/32"])]


def shown(world: World, name: str) -> list[str]:
    ingress = world.api.objects[f"default/{name}"]["status"].get("loadBalancer", {}).get("ingress") or []
    return [entry["ip"] for entry in ingress]


@pytest.mark.parametrize(
    "failures",
    [[UNAVAILABLE], [ApiUnavailableError(0, "", "no answer: timed out")], [FORBIDDEN], [CONFLICT] * 5],
    ids=["503", "no answer", "403", "conflicts exhausted"],
)
@pytest.mark.parametrize("change", ["ClusterIP", "a pool that cannot serve it", "a move"])
def test_an_address_is_not_handed_out_while_a_failed_write_leaves_it_shown(
    change: str, failures: list[ApiError]
) -> None:
    """Regression: a decision took the address from `holder` in the allocator at once; the status write that
    removes it failed, so `holder` still showed it while the next Service was given it: one address, two
    Services."""
    pool_list = [Pool("one", ["192.168.1.11/32"]), Pool("other", ["192.168.1.21/32"], auto_assign=False)]
    world = World(svc("holder"), svc("waiter"), pool_list=pool_list)
    assert world.handle("default/holder") is SyncState.SUCCESS
    holder = world.api.objects["default/holder"]
    match change:
        case "ClusterIP":
            holder["spec"]["type"] = "ClusterIP"
        case "a pool that cannot serve it":
            holder["metadata"]["annotations"]["metallb.io/address-pool"] = "nowhere"
        case "a move":
            holder["metadata"]["annotations"]["metallb.io/address-pool"] = "other"
    world.changed("default/holder")  # the user's change, as the watch delivers it
    world.api.failures = list(failures)
    assert world.handle("default/holder") in (SyncState.ERROR, SyncState.ERROR_NO_RETRY)
    assert shown(world, "holder") == ["192.168.1.11"]  # the write did not take effect
    assert world.handle("default/waiter") is SyncState.ERROR_NO_RETRY  # no address: it is still shown
    assert shown(world, "waiter") == []
    world.due()

    # The removal is written: the address is free, and the waiting Service is woken for it.
    world.changed("default/holder")
    assert world.handle("default/holder") is SyncState.SUCCESS or change == "a pool that cannot serve it"
    assert "192.168.1.11" not in shown(world, "holder")
    assert "default/waiter" in world.due()
    assert world.handle("default/waiter") is SyncState.SUCCESS
    assert shown(world, "waiter") == ["192.168.1.11"]


def test_an_address_a_failed_write_left_shown_keeps_its_sharing_terms_and_goes_with_a_deletion() -> None:
    sharing = {"metallb.io/allow-shared-ip": "k"}
    world = World(
        svc("holder", annotations=dict(sharing)),
        svc("friend", annotations=dict(sharing), ports=[{"port": 443, "protocol": "TCP"}]),
        svc("stranger"),
        pool_list=ONE,
    )
    assert world.handle("default/holder") is SyncState.SUCCESS
    world.api.objects["default/holder"]["metadata"]["annotations"]["metallb.io/address-pool"] = "nowhere"
    world.changed("default/holder")
    world.api.failures = [UNAVAILABLE]
    assert world.handle("default/holder") is SyncState.ERROR
    assert world.handle("default/stranger") is SyncState.ERROR_NO_RETRY
    assert world.handle("default/friend") is SyncState.SUCCESS  # the sharing rules still allow it
    assert shown(world, "friend") == ["192.168.1.11"]
    # The holder is deleted: what it showed is released at once (the friend still holds the address).
    del world.api.objects["default/holder"], world.store.objects["default/holder"]
    assert world.handle("default/holder") is SyncState.SUCCESS
    assert world.allocator.holders("192.168.1.11") == ["default/friend"]


def test_a_service_copy_without_a_resource_version_is_read_before_it_is_written() -> None:
    """A merge patch with an empty resourceVersion is unconditional: every write must carry a real one."""
    world = World(svc())
    del world.store.objects["default/web"]["metadata"]["resourceVersion"]
    bodies: list[Mapping[str, Any]] = []
    patch = world.api.patch

    def recording(resource: Resource, name: str, body: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        bodies.append(body)
        return patch(resource, name, body, *args, **kwargs)

    world.api.patch = recording  # type: ignore[method-assign]
    assert world.handle() is SyncState.SUCCESS
    assert bodies and all(b["metadata"]["resourceVersion"] for b in bodies)
