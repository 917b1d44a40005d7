"""The status reporter: ServiceL2Status (or ServiceBGPStatus) objects and nodeAssigned Events, written after
the fact.

Announcing never waits for the API: the worker changes the announce set, and this reporter writes what it says
from its own thread, one work-queue key per Service (as MetalLB keeps its status reporter apart from the
announcing). A key is queued when the announce set changes for that Service and when one of its status
objects changes (another node took over, or removed this node's). One reporter per protocol (`kind`:
status.L2_STATUS or status.BGP_STATUS). Objects have generated names and are found by their labels in the
watched copy, through an index Service -> names kept from the watch's changes. The reporter's view corrects
the watched copy where it knows better, until the watch catches up: an object it created (or a LIST showed)
that the watch has not shown yet is added ("unwatched"), one the API said is gone is left out. An unwatched
object still not shown after UNWATCHED_CHECK seconds (or at a resync) is checked with a LIST: the watch
may have relisted past its creation and deletion, and a claim that no longer exists must not be kept.
Per key:
- the decision is status.decide_status (deletions first, then create, update, keep; or wait);
- any failed write fails the key: a lost race (409, 404: another speaker changed the object meanwhile)
  re-reads the Service's objects (a LIST by their labels) and, like other temporary errors, is retried with
  per-key backoff; a permanent one (403, 422) is logged once and the key left alone until it changes again.
  Only release() (a graceful stop) goes on past a failed delete.

Owner: with `pod` (the speaker's Pod name, in `namespace`), the Pod is read once (its uid) and set as owner of
every object written, so they go with the Pod; without it (a library or lab speaker) objects have no owner.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from metallb_py.backoff import KeyedBackoff
from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.errors import ApiError, ConflictError, NotFoundError
from metallb_py.k8s.resources import PODS, meta
from metallb_py.runtime.workqueue import WorkQueue
from metallb_py.speaker.status import (
    L2_STATUS,
    L2_STATUS_NODE_LABEL,
    StatusKind,
    StatusWrite,
    decide_status,
    merged_owners,
    pod_owner,
    service_selector,
    status_node,
    status_service,
)

__all__ = ["NODE_ASSIGNED", "UNWATCHED_CHECK", "StatusReporter"]

log = logging.getLogger("metallb_py.speaker")

NODE_ASSIGNED = "nodeAssigned"
UNWATCHED_CHECK = 10.0  # seconds an object may stay known but not watched before a LIST checks it
JSON = dict[str, Any]


class Store(Protocol):
    """A watched copy of objects (a Reflector), by `namespace/name`."""

    def get(self, key: str) -> JSON | None: ...
    def items(self) -> list[JSON]: ...


class StatusStore(Store, Protocol):
    def observe(self, obj: JSON) -> None: ...


class Recorder(Protocol):
    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None: ...


@dataclass
class _Unwatched:
    """An object known from the API (created here, or listed) that the watch has not shown yet."""

    obj: JSON
    check_at: float  # when to LIST whether it still exists, if the watch has not shown it by then


class StatusReporter:
    """See the module docstring. `wanted()`: Service -> what this node announces it with, now (interfaces
    in layer 2 mode, BGPPeers in BGP mode). `pod`: this speaker's Pod (in `namespace`), the owner of the
    objects; None: no owner."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        namespace: str,
        *,
        wanted: Callable[[], Mapping[str, tuple[str, ...]]],
        statuses: StatusStore,
        services: Store,
        events: Recorder,
        protocol: str = "layer2",
        kind: StatusKind = L2_STATUS,
        pod: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.me, self.namespace = client, node, namespace
        self._wanted, self._statuses, self._services, self._events = wanted, statuses, services, events
        self._protocol, self.kind, self.pod = protocol, kind, pod
        self._resource = kind.resource
        self._clock = clock
        self.queue = WorkQueue(base_delay=0.5, max_delay=30.0, clock=clock)
        self._takeovers = KeyedBackoff(0.5, 30.0)  # Service -> delay before its next takeover
        self._not_before: dict[str, float] = {}
        self._assigned: set[str] = set()  # Services this node has claimed since it began announcing them
        self._refused: dict[str, str] = {}  # Service -> the permanent error last logged for it
        self._last_wanted: set[str] = set()
        self._owner: JSON | None = None
        self._owner_known = pod is None  # the Pod was read (or cannot be): _owner is final
        self._lock = threading.Lock()
        self._index: dict[str, set[str]] = {}  # Service -> names of its objects the watch has shown
        self._unwatched: dict[str, _Unwatched] = {}  # by name
        self._gone: set[str] = set()  # names the watched copy still holds that the API said are gone
        # While a create is in flight: the names the watch showed meanwhile (their create is then watched).
        self._creating = False
        self._early: set[str] = set()

    # -- what queues work ---------------------------------------------------------------------------------

    def announce_changed(self) -> None:
        """The announce set changed: every Service announced before or now is looked at."""
        wanted = set(self._wanted())
        with self._lock:
            keys = sorted(wanted | self._last_wanted)
            self._last_wanted = wanted
        self.queue.add_all(keys)

    def status_changed(self, obj: JSON) -> None:
        """A status object was added, changed or deleted (the watch's handler)."""
        name, key = meta(obj, "name"), status_service(obj)
        with self._lock:
            self._index.setdefault(key, set()).add(name)
            if self._unwatched.pop(name, None) is None and self._creating:
                self._early.add(name)  # the watch saw it before create() returned
        self.queue.add(key)

    def resync(self) -> None:
        """Looks at every Service announced now and every status object naming this node; rebuilds the
        index from the watched copy and has every unwatched object checked."""
        objects = self._statuses.items()
        with self._lock:
            for obj in objects:
                self._index.setdefault(status_service(obj), set()).add(meta(obj, "name"))
            for unwatched in self._unwatched.values():
                unwatched.check_at = float("-inf")
            mine = {status_service(o) for o in objects if status_node(o) == self.me}
            mine |= {status_service(u.obj) for u in self._unwatched.values()}
            self._last_wanted = set(self._wanted())
            keys = sorted(self._last_wanted | mine)
        self.queue.add_all(keys)

    # -- the thread ------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, ready: Callable[[], bool]) -> None:
        """Waits until `ready()` (the statuses are listed and the first round is done), then works the
        queue until `stop` (stop() wakes it)."""
        if self.pod is None:
            log.info(
                f"no Pod name given: {self._resource.kind} objects get no owner and outlive this speaker "
                "unless it stops gracefully (set $POD_NAME in the speaker's Pod)",
                extra={"node": self.me},
            )
        while not ready():
            if stop.wait(0.2):
                return
        self.resync()
        while not stop.is_set():
            key = self.queue.get()
            if key is None:
                return
            try:
                self.process(key)
            finally:
                self.queue.done(key)

    def stop(self) -> None:
        self.queue.shutdown()

    def process(self, key: str) -> None:
        """One Service's turn, with the retry policy of the module docstring."""
        try:
            self.sync(key)
        except (ConflictError, NotFoundError) as exc:
            delay = self.queue.add_rate_limited(key)
            log.debug(
                f"{self._resource.kind} changed meanwhile; again",
                extra={"service": key, "error": str(exc), "retry_in": round(delay, 3)},
            )
            try:
                self._refresh(key)
            except (ApiError, OSError) as list_exc:
                log.debug(f"cannot list {self._resource.kind}", extra={"error": str(list_exc)})
        except ApiError as exc:
            if exc.temporary:
                delay = self.queue.add_rate_limited(key)
                log.warning(
                    f"cannot write {self._resource.kind}; retrying",
                    extra={"service": key, "error": str(exc), "retry_in": round(delay, 3)},
                )
            elif self._refused.get(key) != str(exc):
                self._refused[key] = str(exc)
                log.error(
                    f"{self._resource.kind} refused; not retried until the Service's announcement changes",
                    extra={"service": key, "error": str(exc)},
                )
        except OSError as exc:
            delay = self.queue.add_rate_limited(key)
            log.warning(
                "cannot reach the API; retrying", extra={"error": str(exc), "retry_in": round(delay, 3)}
            )
        else:
            self.queue.forget(key)
            self._refused.pop(key, None)

    def objects_for(self, key: str) -> list[JSON]:
        """The status objects of Service `key`, every node's, as this reporter knows them: the watched ones
        (but those the API said are gone) and the unwatched ones."""
        with self._lock:
            names = sorted(self._index.get(key, ()))
        watched = [(name, self._statuses.get(f"{self.namespace}/{name}")) for name in names]
        objects: list[JSON] = []
        with self._lock:
            index = self._index.get(key, set())
            for name, obj in watched:
                if obj is None or status_service(obj) != key:
                    index.discard(name)  # deleted, or relabelled (then indexed under its Service too)
                    if obj is None:
                        self._gone.discard(name)
                    continue
                self._unwatched.pop(name, None)  # the watch has it: the watched copy is the truth now
                if name not in self._gone:
                    objects.append(obj)
            if not index:
                self._index.pop(key, None)
            objects += [u.obj for u in self._unwatched.values() if status_service(u.obj) == key]
        return objects

    def sync(self, key: str) -> None:
        """Brings the status objects of Service `key` in line with what this node announces."""
        now = self._clock()
        with self._lock:
            due = any(u.check_at <= now and status_service(u.obj) == key for u in self._unwatched.values())
        if due:
            self._refresh(key)
        detail = self._wanted().get(key)
        body = None
        if detail is not None:
            body = self.kind.build(key, self.me, detail, self.namespace)
            if (owner := self._owner_reference()) is not None:
                body["metadata"]["ownerReferences"] = [owner]
        objects = self.objects_for(key)
        had_mine = any(status_node(obj) == self.me for obj in objects)
        plan = decide_status(
            body,
            objects,
            self.me,
            exclusive=self.kind.exclusive,
            now=now,
            not_before=self._not_before.get(key, float("-inf")),
        )
        if plan.write is StatusWrite.WAIT:
            self.queue.add_after(key, self._not_before[key] - now)
            return
        for name in plan.delete:
            self._delete(name)
        if plan.takes_over:
            # Another node's claim: it died, lost the election, or (a partition) still announces too.
            self._not_before[key] = now + self._takeovers.next(key)
        if body is None:
            self._assigned.discard(key)
            self._takeovers.forget(key)
            self._not_before.pop(key, None)
            return
        if plan.write is not StatusWrite.KEEP:
            self._write(key, body, None if plan.current is None else dict(plan.current))
        if not had_mine and key not in self._assigned:
            # The announcer changed to this node (a restart that finds its own object says nothing).
            svc = self._services.get(key)
            if svc is not None:
                message = f'announcing from node "{self.me}" with protocol "{self._protocol}"'
                self._events.record(svc, "Normal", NODE_ASSIGNED, message)
        self._assigned.add(key)

    def _owner_reference(self) -> JSON | None:
        """This speaker's Pod as an owner, read once; a temporary error is raised (the key is retried), a
        permanent one logged and the objects written without an owner."""
        if self._owner_known or self.pod is None:
            return self._owner
        try:
            pod = self.client.get(PODS, self.pod, self.namespace)
        except ApiError as exc:
            if exc.temporary:
                raise
            log.warning(
                f"cannot read this speaker's Pod; {self._resource.kind} objects get no owner (the Pod must "
                "be $POD_NAME in the speaker's namespace, and deploy/rbac.yaml lets the speaker get it)",
                extra={"pod": self.pod, "namespace": self.namespace, "error": str(exc)},
            )
        else:
            self._owner = pod_owner(pod)
        self._owner_known = True
        return self._owner

    def _write(self, key: str, body: JSON, current: JSON | None) -> None:
        ns = self.namespace
        if current is None:
            current = self._create(key, body)
        name = meta(current, "name")
        try:
            # Creating ignores `status` (a subresource): it is written after.
            owners = merged_owners(current, body)
            if current["metadata"].get("labels") != body["metadata"]["labels"] or owners is not None:
                metadata: JSON = {
                    "labels": body["metadata"]["labels"],
                    "resourceVersion": current["metadata"]["resourceVersion"],
                }
                if owners is not None:
                    metadata["ownerReferences"] = owners
                current = self.client.patch(self._resource, name, {"metadata": metadata}, ns)
                self._observe(current)
            if current.get("status") != body["status"]:
                status = {
                    "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                    "status": body["status"],
                }
                self._observe(self.client.patch(self._resource, name, status, ns, subresource="status"))
        except NotFoundError:
            self._forget(name)
            raise

    def _create(self, key: str, body: JSON) -> JSON:
        with self._lock:
            self._creating = True
            self._early.clear()
        created: JSON | None = None
        try:
            created = self.client.create(self._resource, body, self.namespace)
        finally:
            with self._lock:
                self._creating = False
                created_name = meta(created, "name")
                if created is not None and created_name not in self._early:
                    self._unwatched[created_name] = _Unwatched(created, self._clock() + UNWATCHED_CHECK)
                self._early.clear()
        self.queue.add_after(key, UNWATCHED_CHECK)  # whether the watch has shown it by then
        return created

    def _observe(self, obj: JSON) -> None:
        with self._lock:
            unwatched = self._unwatched.get(meta(obj, "name"))
            if unwatched is not None:
                unwatched.obj = obj
                return
        self._statuses.observe(obj)

    def _forget(self, name: str) -> None:
        """The API said `name` is gone: out of this reporter's view until the watch drops it too."""
        with self._lock:
            if self._unwatched.pop(name, None) is None:
                self._gone.add(name)

    def _refresh(self, key: str) -> None:
        """Reads the API's status objects of Service `key` (this node's only, for a kind of which each node
        manages its own) into this reporter's view; the watch may not have caught up yet."""
        selector = service_selector(key)
        if not self.kind.exclusive:
            selector += f",{L2_STATUS_NODE_LABEL}={self.me}"
        listed = self.client.list(self._resource, self.namespace, label_selector=selector).items
        fresh = {meta(obj, "name"): obj for obj in listed}
        known = {meta(obj, "name") for obj in self.objects_for(key)}
        for name in known - fresh.keys():
            self._forget(name)
        check_at = self._clock() + UNWATCHED_CHECK
        for name, obj in fresh.items():
            if self._statuses.get(f"{self.namespace}/{name}") is not None:
                self._statuses.observe(obj)  # a newer copy than the watch's, perhaps
                continue
            with self._lock:
                self._unwatched[name] = _Unwatched(obj, check_at)
        with self._lock:
            waiting = any(status_service(u.obj) == key for u in self._unwatched.values())
        if waiting:
            self.queue.add_after(key, UNWATCHED_CHECK)

    def _delete(self, name: str) -> None:
        with contextlib.suppress(NotFoundError):  # gone already: as good
            self.client.delete(self._resource, name, self.namespace)
        self._forget(name)

    def release(self) -> None:
        """On a graceful stop: removes this node's status objects, going on past any it cannot."""
        with self._lock:
            unwatched = [u.obj for u in self._unwatched.values()]
        for obj in [*self._statuses.items(), *unwatched]:
            if status_node(obj) == self.me:
                try:
                    self._delete(meta(obj, "name"))
                except (ApiError, OSError) as exc:
                    log.warning(
                        f"could not delete {self._resource.kind}",
                        extra={"object": meta(obj, "name"), "error": str(exc)},
                    )
