"""One Service key through the controller's worker: decide, write, then settle what happens to the key.

`ServiceSync.handle` decides with `reconcile_service`, writes the decision (the status, then the pool
annotation) on the resourceVersion it was decided on, and settles the key by the `SyncState` it came to:

- SUCCESS: converged. The key's retry delay is forgotten and the decision's Events are recorded.
- ERROR: a temporary failure (the API server unreachable, overloaded or restarting; writes that kept
  conflicting). The key comes back after its per-key backoff, doubling up to the queue's cap.
- ERROR_NO_RETRY: it cannot converge as things are, so retrying the same thing cannot help. Either the
  decision says so (no address can be given, the Service cannot be read) or the API server refused the write
  for good (403: RBAC; 422 or 400: rejected, by validation or an admission policy; 404 although the Service
  is still there). Reported once, as a Warning Event on the Service and one log line, then the key is left
  alone until something changes: a watch event for the Service, a configuration change, addresses freed
  (for the Services waiting for one), a new term as leader.

A write that raced another writer (409) is decided again on a fresh read; one whose Service was deleted
meanwhile (404, and gone on a re-read) releases its addresses.

An address is free only once no Service shows it. A decision takes addresses from a Service in the allocator
at once (it moves, it can no longer keep them, it is no longer ours), but until the write that removes them
from its status took effect the Service still shows them: when a pass ends without that (refused, no answer,
conflicts exhausted), what the Service still shows (and, when no answer came, what the write may have put
there) stays held, with the Service's sharing terms, under placeholder keys (`unwritten_key`). They are
released by the next pass over the key that ends with the Service, as the API confirmed it, not showing them,
or at once when the Service is deleted. Everything here runs on the worker thread;
the API, the watched copies and the Event recorder come in through the small protocols below, so a test
drives a whole pass with fakes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from metallb_py._core import Allocator
from metallb_py.controller.metrics import Metrics
from metallb_py.controller.reconcile import (
    WARNING,
    Decision,
    Outcome,
    SyncState,
    reconcile_service,
)
from metallb_py.errors import AllocationError
from metallb_py.ipam import ServiceError, service_request
from metallb_py.ipam.fields import ingress_ips
from metallb_py.k8s.errors import ApiError, ApiUnavailableError, ConflictError, NotFoundError
from metallb_py.k8s.resources import SERVICES, Resource, meta, object_key
from metallb_py.runtime.workqueue import WorkQueue

__all__ = [
    "WRITE_REFUSED",
    "EventSink",
    "ObjectApi",
    "ObjectStore",
    "ServiceSync",
    "Synced",
    "service_key_of",
    "unwritten_key",
]

log = logging.getLogger("metallb_py.controller")

JSON = dict[str, Any]
WRITE_REFUSED = "WriteRefused"  # the Event reason of a write the API server refused for good


def unwritten_key(key: str, ip: str) -> str:
    """The allocator key that holds `ip` for the Service `key` while it may still show it (see the module
    docstring); no Service key looks like it ('#' is not allowed in a name)."""
    return f"{key}#unwritten {ip}"


def service_key_of(allocator_key: str) -> str:
    """The Service an allocator key stands for: itself, or the Service of an `unwritten_key`."""
    return allocator_key.split("#", 1)[0]


class ObjectApi(Protocol):
    """The requests a writer of Service or IPAddressPool status sends (KubeClient's)."""

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON: ...

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JSON: ...


class ObjectStore(Protocol):
    """The watched copies of the objects a writer writes (a Reflector's)."""

    def get(self, key: str) -> JSON | None: ...

    def observe(self, obj: JSON) -> None: ...


class EventSink(Protocol):
    """Where Events about a Service go (an EventRecorder's `record`)."""

    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class Synced:
    """What one pass over a key came to; `state` decides what happens to the key next.

    `decision`: what was decided and written; None when the API did not take it (then `error` says why).
    `obj`: the Service as last known, the subject of Events. `freed`: a decision gave addresses back (even one
    whose writes then failed): once written, Services waiting for an address may get one.
    """

    state: SyncState
    decision: Decision | None = None
    obj: JSON | None = None
    freed: bool = False
    error: str | None = None

    @property
    def allocations_changed(self) -> bool:
        changed = (Outcome.ALLOCATED, Outcome.RELEASED, Outcome.CLEARED, Outcome.FAILED)
        return self.freed or (self.decision is not None and self.decision.outcome in changed)


class ServiceSync:
    """Handles Service keys for the worker; see the module docstring.

    `order` sorts Services into allocation order (for those woken when addresses free up);
    `namespace_labels` gives a namespace's labels (pools may select namespaces). `reset()` forgets what was
    reported and who is waiting, when a new term as leader starts from nothing.
    """

    def __init__(
        self,
        api: ObjectApi,
        services: ObjectStore,
        events: EventSink,
        queue: WorkQueue,
        metrics: Metrics,
        *,
        lb_class: str | None = None,
        conflict_retries: int = 5,
        order: Callable[[JSON], Any],
        namespace_labels: Callable[[str], Mapping[str, str]],
    ) -> None:
        self.api = api
        self.services = services
        self.events = events
        self.queue = queue
        self.metrics = metrics
        self.lb_class = lb_class
        self.conflict_retries = conflict_retries
        self._order = order
        self._namespace_labels = namespace_labels
        self._pending: set[str] = set()  # Services that got no address, to retry when addresses free up
        self._reported: dict[str, str] = {}  # why each key could not converge, as last reported
        self._freed: set[str] = set()  # decided to give addresses back; not written yet (still shown)
        self._unwritten: dict[str, list[str]] = {}  # Service key -> placeholder keys holding what it shows
        self._latest: JSON | None = None  # the Service as the API last showed it during the current pass
        self._landing: set[str] = set()  # what a status write without an answer may have put there

    def reset(self) -> None:
        """A new term: a new allocator (the placeholders went with the old one)."""
        self._pending.clear()
        self._reported.clear()
        self._freed.clear()
        self._unwritten.clear()

    def handle(self, key: str, allocator: Allocator, *, ready: bool) -> Synced:
        """One pass over the Service `key` (`ready`: a configuration is in force and the assignments the
        cluster shows were restored); the key is settled (forgotten, retried or left) when this returns."""
        synced = self._sync(key, allocator, ready)
        self._settle(key, synced)
        return synced

    # -- deciding and writing --------------------------------------------------------------------------------

    def _sync(self, key: str, allocator: Allocator, ready: bool) -> Synced:
        if not ready:
            return self._decide_and_write(key, allocator, ready)  # nothing is allocated or released
        # What the Service may still show from earlier passes goes back to the pools while this pass decides
        # (the only decision running): it may keep it. Whatever it may still show afterwards is held again.
        before = self._take_unwritten(key, allocator)
        try:
            synced = self._decide_and_write(key, allocator, ready)
        except BaseException:
            self._hold_unwritten(key, allocator, before | set(_shown(self._latest)) | self._landing)
            raise
        if synced.state is SyncState.ERROR or (
            synced.state is SyncState.ERROR_NO_RETRY and not synced.decision
        ):
            # The write carrying the decision did not take effect: the Service shows what it showed, and
            # maybe what the write was putting there when no answer came (it may have landed).
            keep = before | set(_shown(self._latest)) | self._landing
        else:
            # Written, or nothing to write: the Service shows what the API last answered.
            keep = before & set(_shown(self._latest))
        self._hold_unwritten(key, allocator, keep)
        if before - keep - _held(allocator, key):
            synced = dataclasses.replace(synced, freed=True)
        return synced

    def _decide_and_write(self, key: str, allocator: Allocator, ready: bool) -> Synced:
        svc = self._latest = self.services.get(key)
        self._landing = set()
        namespace = key.split("/", 1)[0]
        freed = False
        try:
            for _ in range(self.conflict_retries):
                decision = reconcile_service(
                    key,
                    svc,
                    allocator,
                    config_loaded=ready,
                    lb_class=self.lb_class,
                    namespace_labels=self._namespace_labels(namespace),
                )
                freed = freed or decision.freed
                try:
                    obj = self._write(key, svc, decision)
                except ConflictError:
                    svc = self._latest = self._read(key)  # changed since we decided: read it, decide again
                    continue
                except NotFoundError:
                    current = self._read(key)
                    if current is not None and meta(current, "uid") == meta(svc, "uid"):
                        raise  # the Service is still there: the 404 is about the write itself
                    svc = self._latest = current  # deleted (release), or created again (decide afresh)
                    continue
                return Synced(decision.state, decision, obj, freed=freed, error=decision.error)
        except ApiError as exc:
            state = SyncState.ERROR if exc.temporary else SyncState.ERROR_NO_RETRY
            return Synced(state, obj=svc, freed=freed, error=str(exc))
        why = f"still conflicting after {self.conflict_retries} attempts"
        return Synced(SyncState.ERROR, obj=svc, freed=freed, error=why)

    def _read(self, key: str) -> JSON | None:
        namespace, name = key.split("/", 1)
        try:
            # Not stored: the watch may still deliver older versions; they must not replace a newer one.
            return self.api.get(SERVICES, name, namespace)
        except NotFoundError:
            return None

    def _write(self, key: str, svc: JSON | None, decision: Decision) -> JSON | None:
        if svc is None:
            return None
        namespace, name = key.split("/", 1)
        obj = svc
        if decision.writes and not meta(obj, "resourceVersion"):
            # Without a version the write would be unconditional: read it (as after a conflict) first.
            raise ConflictError(0, "", f"{key}: no resourceVersion to write on")
        if decision.status_ips is not None:
            ingress = [{"ip": ip} for ip in decision.status_ips] or None
            body = {
                "metadata": {"resourceVersion": meta(obj, "resourceVersion")},
                "status": {"loadBalancer": {"ingress": ingress}},
            }
            self._landing = set(decision.status_ips)
            try:
                obj = self.api.patch(SERVICES, name, body, namespace, subresource="status")
            except ApiUnavailableError:
                raise  # no answer (or a 5xx): it may have landed, so what it writes may be shown
            except BaseException:
                self._landing = set()
                raise
            self._landing = set()
            self._latest = obj
            self.services.observe(obj)
        if decision.annotations:
            body = {
                "metadata": {
                    "resourceVersion": meta(obj, "resourceVersion"),
                    "annotations": dict(decision.annotations),
                }
            }
            obj = self.api.patch(SERVICES, name, body, namespace)
            self._latest = obj
            self.services.observe(obj)
        return obj

    # -- addresses a Service may still show ------------------------------------------------------------------

    def _take_unwritten(self, key: str, allocator: Allocator) -> set[str]:
        """Releases the placeholders of `key`; returns the addresses they held."""
        addresses: set[str] = set()
        for placeholder in self._unwritten.pop(key, ()):
            addresses.update(str(ip) for ip in allocator.ips(placeholder))
            allocator.release(placeholder)
        return addresses

    def _hold_unwritten(self, key: str, allocator: Allocator, addresses: set[str]) -> None:
        """Holds each of `addresses` that `key` does not hold under a placeholder, with the sharing terms of
        the Service as last shown when it can be read (so Services allowed to share it still may)."""
        missing = sorted(addresses - _held(allocator, key))
        if not missing:
            return  # the usual case: nothing to hold, and the Service need not be read for its terms
        terms: dict[str, Any] = {}
        try:
            if self._latest is not None:
                request = service_request(dict(self._latest))
                terms = {
                    "ports": list(request.ports),
                    "sharing_key": request.sharing_key,
                    "backend_key": request.backend_key,
                }
        except ServiceError:
            pass  # unreadable: held without terms, as restore_assignments does
        placeholders: list[str] = []
        for ip in missing:
            placeholder = unwritten_key(key, ip)
            try:
                allocator.assign(placeholder, [ip], **terms)
            except (AllocationError, ValueError) as exc:
                # In no pool any more, or held by a Service whose terms exclude this one's (which holds it
                # then): either way, it cannot be handed out.
                log.debug(
                    "address not held for the service", extra={"service": key, "ip": ip, "why": str(exc)}
                )
                continue
            placeholders.append(placeholder)
        if placeholders:
            self._unwritten[key] = placeholders

    # -- settling --------------------------------------------------------------------------------------------

    def _settle(self, key: str, synced: Synced) -> None:
        decision = synced.decision
        match synced.state:
            case SyncState.SUCCESS:
                self.queue.forget(key)
                self.metrics.updates.inc()
                self._reported.pop(key, None)
                if decision is not None and synced.obj is not None:
                    for event in decision.events:
                        self.events.record(synced.obj, event.type, event.reason, event.message)
                if decision is not None and (decision.writes or decision.outcome is Outcome.RELEASED):
                    log.info(decision.outcome.value, extra=_fields(key, decision))
            case SyncState.ERROR:
                self.metrics.update_errors.inc()
                delay = self.queue.add_rate_limited(key)
                log.warning(
                    "service not converged; retrying",
                    extra={"service": key, "error": synced.error, "retry_in": delay},
                )
            case SyncState.ERROR_NO_RETRY:
                self.queue.forget(key)
                if decision is None:
                    self.metrics.permanent_errors.inc()
                else:
                    self.metrics.updates.inc()
                self._report_once(key, synced)
        if decision is not None and decision.outcome is Outcome.FAILED:
            self._pending.add(key)
        else:
            self._pending.discard(key)
        if synced.freed:
            self._freed.add(key)
        if decision is not None and key in self._freed:
            # Addresses went back to the pools and the Service no longer shows them: Services that got none
            # may get one now (oldest first). Not before the write: a retry decides again but frees nothing
            # more, so the wake-up waits for whichever pass writes it.
            self._freed.discard(key)
            waiting = [s for s in (self.services.get(k) for k in self._pending) if s]
            self.queue.add_all([object_key(s) for s in sorted(waiting, key=self._order)], in_order=True)

    def _report_once(self, key: str, synced: Synced) -> None:
        """A Service that keeps failing the same way (it is tried again whenever something changes) says so
        once: one Warning Event, one log line."""
        message = synced.error or ""
        if not message or self._reported.get(key) == message:
            return
        self._reported[key] = message
        decision = synced.decision
        if decision is not None:
            if synced.obj is not None:
                for event in decision.events:
                    self.events.record(synced.obj, event.type, event.reason, event.message)
            log.warning(decision.outcome.value, extra=_fields(key, decision))
            return
        if synced.obj is not None:
            self.events.record(
                synced.obj,
                WARNING,
                WRITE_REFUSED,
                f"Not written, and not retried until the Service or the configuration changes: {message}",
            )
        log.error(
            "write refused; not retrying until the service or the configuration changes",
            extra={"service": key, "error": message},
        )


def _fields(key: str, decision: Decision) -> dict[str, Any]:
    return {"service": key, "ips": list(decision.ips), "pool": decision.pool, "error": decision.error}


def _shown(svc: JSON | None) -> list[str]:
    return ingress_ips(svc) if svc is not None else []


def _held(allocator: Allocator, key: str) -> set[str]:
    return {str(ip) for ip in allocator.ips(key)}
