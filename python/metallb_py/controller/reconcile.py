"""The controller's decisions, pure: a Service (a dict) and the allocator in, what to write out.

`reconcile_service` decides for one Service what it should hold and what must be written to the API (its
`status.loadBalancer.ingress`, the `metallb.io/ip-allocated-from-pool` annotation, Events) to get there. It
changes the allocator (allocate, assign, release) but does no I/O; the loop in `controller.py` performs the
writes. `restore_assignments` is the startup pass: every address the cluster already shows is recorded
(`Allocator.assign`) before anything new is allocated, oldest Service first, so a restarted controller never
hands out an address that a Service still shows, unless sharing allows it.

Rules, as MetalLB:

- Only Services of type LoadBalancer whose `spec.loadBalancerClass` equals the controller's class (by default
  unset) are ours. A Service that stops being ours (type changed; it is deleted) gives its addresses back;
  the status and annotation we wrote are removed (the API server clears the status itself on a type change).
- A Service keeps the addresses it shows while they still satisfy its request (pool, requested addresses,
  sharing, families); otherwise it gets new ones, or none (AllocationFailed) when no pool can serve it.
- An unreadable Service (a malformed annotation) keeps what it has, with a Warning saying why, as a bad
  configuration does: errors change nothing.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from metallb_py._core import Allocator
from metallb_py.errors import AllocationError, ConfigError
from metallb_py.ipam import (
    ServiceError,
    ServiceRequest,
    creation_timestamp,
    is_load_balancer,
    service_key,
    service_request,
)
from metallb_py.ipam.fields import ALLOCATED_FROM_POOL as ANNOTATION_ALLOCATED_FROM_POOL
from metallb_py.ipam.fields import DEPRECATED_ALLOCATED_FROM_POOL, ingress_ips, load_balancer_class

__all__ = [
    "ANNOTATION_ALLOCATED_FROM_POOL",
    "Decision",
    "Event",
    "Outcome",
    "SyncState",
    "reconcile_service",
    "restore",
    "restore_assignments",
    "service_order",
]

_POOL_ANNOTATIONS = (ANNOTATION_ALLOCATED_FROM_POOL, DEPRECATED_ALLOCATED_FROM_POOL)

NORMAL, WARNING = "Normal", "Warning"
IP_ALLOCATED, ALLOCATION_FAILED, CLEAR_ASSIGNMENT = "IPAllocated", "AllocationFailed", "ClearAssignment"


class SyncState(enum.Enum):
    """What the worker does with a key after a pass over it (MetalLB's vocabulary); `sync.ServiceSync`
    switches on it. A decision's own state is SUCCESS or ERROR_NO_RETRY; ERROR comes from the API."""

    SUCCESS = "success"  # converged: forget the key's backoff until it changes
    ERROR = "error"  # temporary failure (the API server): retry with per-key backoff
    ERROR_NO_RETRY = "error-no-retry"  # cannot converge as things are: report once, wait for a change


class Outcome(enum.Enum):
    """What a decision is about, for logs, metrics and tests."""

    UNCHANGED = "unchanged"  # holds what it shows; nothing to write
    ALLOCATED = "allocated"  # new or moved addresses: status to write
    UPDATED = "updated"  # same addresses; only the annotation to write
    RELEASED = "released"  # the Service is gone; its addresses are free
    CLEARED = "cleared"  # the Service is no longer ours; what we wrote is removed
    IGNORED = "ignored"  # never ours (not a LoadBalancer, another class)
    WAITING = "waiting"  # no configuration in force yet: nothing may be allocated
    INVALID = "invalid"  # the Service cannot be read (bad annotation...); it keeps what it has
    FAILED = "failed"  # no address can be given; it holds none


_NO_RETRY = (Outcome.INVALID, Outcome.FAILED, Outcome.WAITING)


@dataclass(frozen=True)
class Event:
    """An Event to record about the Service."""

    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The outcome for one Service and the writes that carry it out.

    `status_ips`: the addresses to write to status.loadBalancer.ingress (empty: clear it); None leaves the
    status alone. `annotations`: annotation changes (a None value removes the annotation). `freed`: addresses
    went back to the pools, so Services waiting for one may get it now.
    """

    outcome: Outcome
    ips: tuple[str, ...] = ()
    pool: str | None = None
    status_ips: tuple[str, ...] | None = None
    annotations: Mapping[str, str | None] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    freed: bool = False
    error: str | None = None

    @property
    def state(self) -> SyncState:
        return SyncState.ERROR_NO_RETRY if self.outcome in _NO_RETRY else SyncState.SUCCESS

    @property
    def writes(self) -> bool:
        return self.status_ips is not None or bool(self.annotations)


def reconcile_service(
    key: str,
    svc: Mapping[str, Any] | None,
    allocator: Allocator,
    *,
    config_loaded: bool = True,
    lb_class: str | None = None,
    namespace_labels: Mapping[str, str] | None = None,
) -> Decision:
    """Decide for the Service `key` (`svc` None: it was deleted). `config_loaded` False means no configuration
    is in force yet (or existing assignments were not restored): nothing is allocated or released then."""
    if svc is None:
        freed = allocator.release(key)
        return Decision(Outcome.RELEASED, freed=freed)
    if not config_loaded:
        return Decision(Outcome.WAITING)
    annotations = _annotations(svc)
    # As the status shows them (a malformed entry stays, so it is replaced like any other wrong one), and
    # the valid ones among them, which are what can be kept.
    current = tuple(ingress_ips(svc, keep_malformed=True))
    shown = tuple(ingress_ips(svc))

    if not is_load_balancer(svc) or load_balancer_class(svc) != lb_class:
        return _not_ours(key, svc, allocator, annotations=annotations, current=current, lb_class=lb_class)

    try:
        request = service_request(dict(svc))
    except ServiceError as exc:
        if not allocator.ips(key) and shown:
            _hold_as_shown(allocator, key, shown)  # keep what it shows until it can be read again
        else:
            _hold_alone(allocator, key)  # no newcomer joins it on terms its object may no longer have
        held = tuple(str(ip) for ip in allocator.ips(key))
        return Decision(
            Outcome.INVALID,
            ips=held,
            pool=allocator.pool_of(key),
            events=(Event(WARNING, ALLOCATION_FAILED, f"Cannot read the Service: {exc}"),),
            error=str(exc),
        )

    held = tuple(str(ip) for ip in allocator.ips(key))
    if not held and shown:
        # The status shows addresses this controller does not hold (it restarted, or the configuration just
        # allowed them): keep them when they are still valid for this Service.
        restore(allocator, request, shown)
    labels = dict(namespace_labels or {})
    try:
        ips = tuple(request.allocate(allocator, namespace_labels=labels))  # its errors name the field
    except (AllocationError, ConfigError) as exc:
        freed = allocator.release(key)
        events = [Event(WARNING, ALLOCATION_FAILED, f"Failed to allocate an IP: {exc}")]
        if current:
            events.append(
                Event(
                    WARNING,
                    CLEAR_ASSIGNMENT,
                    f"Removed {_ips_text(current)}: the Service can no longer keep it",
                )
            )
        return Decision(
            Outcome.FAILED,
            status_ips=() if current else None,
            annotations=_remove_pool_annotations(annotations),
            events=tuple(events),
            freed=freed,
            error=str(exc),
        )

    pool = allocator.pool_of(key)
    patch: dict[str, str | None] = {}
    if pool is not None and annotations.get(ANNOTATION_ALLOCATED_FROM_POOL) != pool:
        patch[ANNOTATION_ALLOCATED_FROM_POOL] = pool
    if DEPRECATED_ALLOCATED_FROM_POOL in annotations:
        patch[DEPRECATED_ALLOCATED_FROM_POOL] = None
    if set(ips) == set(current) and len(ips) == len(current):
        return Decision(
            Outcome.UPDATED if patch else Outcome.UNCHANGED, ips=ips, pool=pool, annotations=patch
        )
    moved = [ip for ip in held if ip not in ips]
    message = f"Assigned {_ips_text(ips)} from pool {pool}"
    previous = held or current
    if previous:
        # Moved: the addresses it had no longer fit it (pool changed, request changed, taken by another).
        message += f" (was {_ips_text(previous)})"
    return Decision(
        Outcome.ALLOCATED,
        ips=ips,
        pool=pool,
        status_ips=ips,
        annotations=patch,
        events=(Event(NORMAL, IP_ALLOCATED, message),),
        freed=bool(moved),
    )


def _not_ours(
    key: str,
    svc: Mapping[str, Any],
    allocator: Allocator,
    *,
    annotations: Mapping[str, str],
    current: tuple[str, ...],
    lb_class: str | None,
) -> Decision:
    held = tuple(str(ip) for ip in allocator.ips(key))
    freed = allocator.release(key)
    load_balancer = is_load_balancer(svc)
    # A Service of another class belongs to another implementation (maybe another metallb-py with its own
    # --lb-class): its status and annotations are not ours to touch unless we held it ourselves. A Service
    # that is no longer a LoadBalancer belongs to no implementation: what we may have written goes.
    removals = _remove_pool_annotations(annotations) if held or not load_balancer else {}
    clear_status = not load_balancer and bool(current)
    if not held and not removals and not clear_status:
        return Decision(Outcome.IGNORED)
    if load_balancer:
        theirs = load_balancer_class(svc)
        why = f"its loadBalancerClass {theirs!r} is not {lb_class!r}, the class of this controller"
    else:
        why = "it is no longer of type LoadBalancer"
    events: tuple[Event, ...] = ()
    if held:
        events = (Event(NORMAL, CLEAR_ASSIGNMENT, f"Released {_ips_text(held)}: {why}"),)
    return Decision(
        Outcome.CLEARED,
        status_ips=() if clear_status else None,
        annotations=removals,
        events=events,
        freed=freed,
    )


def restore(allocator: Allocator, request: ServiceRequest, ips: Iterable[str]) -> bool:
    """Records that the Service holds `ips` (as its status shows) when allowed: no conflict with another
    holder, and in the pool and on the addresses it asks for. False (and nothing recorded) otherwise."""
    shown = sorted(ips)
    try:
        pool = allocator.assign(
            request.key,
            shown,
            ports=list(request.ports),
            sharing_key=request.sharing_key,
            backend_key=request.backend_key,
        )
    except (AllocationError, ValueError):  # ConfigError is a ValueError, as is a malformed address
        return False
    wrong_pool = request.pool is not None and pool != request.pool
    wrong_ips = bool(request.requested) and sorted(request.requested) != shown
    if wrong_pool or wrong_ips:
        allocator.release(request.key)
        return False
    return True


_LATEST = _dt.datetime.max.replace(tzinfo=_dt.UTC)


def service_order(svc: Mapping[str, Any]) -> tuple[_dt.datetime, str]:
    """Sort key: oldest first (creationTimestamp; undated last), then namespace/name."""
    try:
        return creation_timestamp(dict(svc)) or _LATEST, service_key(dict(svc))
    except ServiceError:
        return _LATEST, ""


def restore_assignments(
    services: Iterable[Mapping[str, Any]], allocator: Allocator, *, lb_class: str | None = None
) -> dict[str, bool]:
    """Startup: for each of our Services showing addresses, oldest first, record them (see `restore`).

    Returns, per key that showed addresses, whether they were kept. Those not kept are moved or cleared by
    `reconcile_service` later; nothing new is allocated here.
    """
    kept: dict[str, bool] = {}
    for svc in sorted(services, key=service_order):
        if not is_load_balancer(svc) or load_balancer_class(svc) != lb_class:
            continue
        shown = ingress_ips(svc)
        try:
            request = service_request(dict(svc))
        except ServiceError:
            # Unreadable (a bad annotation): it still owns what its status shows, or a restart would hand
            # that address to the next Service while this one keeps showing it.
            try:
                key = service_key(dict(svc))
            except ServiceError:
                continue
            if shown:
                kept[key] = _hold_as_shown(allocator, key, shown)
            continue
        if shown:
            kept[request.key] = restore(allocator, request, shown)
    return kept


def _hold_as_shown(allocator: Allocator, key: str, shown: Iterable[str]) -> bool:
    """Records the addresses an unreadable Service shows, without sharing terms; False if they cannot be."""
    try:
        allocator.assign(key, list(shown))
    except (AllocationError, ValueError):
        return False
    return True


def _hold_alone(allocator: Allocator, key: str) -> None:
    """Holds the addresses of `key` (a Service that cannot be read now) again without sharing terms, when no
    other Service holds them: its sharing annotation may have changed, so none may join it until it can be
    read again. Addresses it already shares stay shared (the others hold them too)."""
    ips = [str(ip) for ip in allocator.ips(key)]
    if not ips or any(allocator.holders(ip) != [key] for ip in ips):
        return
    allocator.release(key)
    if not _hold_as_shown(allocator, key, ips):  # cannot fail: they were just its alone; never left free
        raise AssertionError(f"{key}: could not hold {ips} again after releasing them")


# -- helpers ------------------------------------------------------------------------------------------------


def _annotations(svc: Mapping[str, Any]) -> dict[str, str]:
    metadata = svc.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}


def _remove_pool_annotations(annotations: Mapping[str, str]) -> dict[str, str | None]:
    return {k: None for k in _POOL_ANNOTATIONS if k in annotations}


def _ips_text(ips: Iterable[str]) -> str:
    return ", ".join(ips)
