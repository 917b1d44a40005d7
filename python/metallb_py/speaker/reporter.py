"""The status reporter: ServiceL2Status (or ServiceBGPStatus) objects and nodeAssigned Events, written after
the fact.

Announcing never waits for the API: the worker changes the announce set, and this reporter writes what it says
from its own thread, one work-queue key per Service (as MetalLB keeps its status reporter apart from the
announcing). A key is queued when the announce set changes for that Service and when one of its status
objects changes (another node took over, or removed this node's). One reporter per protocol (`kind`:
status.L2_STATUS or status.BGP_STATUS). Objects have generated names and are found by their labels in the
watched copy; one this reporter created is remembered until the watch shows it, so a second look before the
echo does not create another. Per key:
- the decision is status.decide_status (deletions first, then create, update, keep; or wait);
- a lost race (409, 404: another speaker changed the object meanwhile) reads the objects afresh and tries
  again at once; other temporary errors are retried with per-key backoff; a permanent one (403, 422) is
  logged once and the key left alone until it changes again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from metallb_py.backoff import KeyedBackoff
from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.errors import ApiError, ConflictError, NotFoundError
from metallb_py.runtime.workqueue import WorkQueue
from metallb_py.speaker.status import (
    L2_STATUS,
    StatusKind,
    StatusWrite,
    decide_status,
    status_node,
    status_service,
)

__all__ = ["NODE_ASSIGNED", "StatusReporter"]

log = logging.getLogger("metallb_py.speaker")

NODE_ASSIGNED = "nodeAssigned"
JSON = dict[str, Any]


class Store(Protocol):
    """A watched copy of objects (a Reflector)."""

    def get(self, key: str) -> JSON | None: ...
    def items(self) -> list[JSON]: ...


class StatusStore(Store, Protocol):
    def observe(self, obj: JSON) -> None: ...


class Recorder(Protocol):
    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None: ...


class StatusReporter:
    """See the module docstring. `wanted()`: Service -> what this node announces it with, now (interfaces
    in layer 2 mode, BGPPeers in BGP mode)."""

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.me, self.namespace = client, node, namespace
        self._wanted, self._statuses, self._services, self._events = wanted, statuses, services, events
        self._protocol, self.kind = protocol, kind
        self._resource = kind.resource
        self._clock = clock
        self.queue = WorkQueue(base_delay=0.5, max_delay=30.0, clock=clock)
        self._takeovers = KeyedBackoff(0.5, 30.0)  # Service -> delay before its next takeover
        self._not_before: dict[str, float] = {}
        self._assigned: set[str] = set()  # Services this node has claimed since it began announcing them
        self._refused: dict[str, str] = {}  # Service -> the permanent error last logged for it
        self._last_wanted: set[str] = set()
        self._lock = threading.Lock()
        # Objects this reporter created that the watch has not shown yet (name -> object), and the names the
        # watch showed while a create was in flight (their create then needs no remembering).
        self._pending: dict[str, JSON] = {}
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
        """A status object changed (the watch's handler)."""
        name = _name(obj)
        with self._lock:
            if self._pending.pop(name, None) is None and self._creating:
                self._early.add(name)  # the watch saw it before create() returned
        self.queue.add(status_service(obj))

    def resync(self) -> None:
        """Looks at every Service announced now and every status object naming this node."""
        mine = {status_service(obj) for obj in self._statuses.items() if status_node(obj) == self.me}
        with self._lock:
            self._last_wanted = set(self._wanted())
            keys = sorted(self._last_wanted | mine)
        self.queue.add_all(keys)

    # -- the thread ------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, ready: Callable[[], bool]) -> None:
        """Waits until `ready()` (the statuses are listed and the first round is done), then works the
        queue until `stop` (stop() wakes it)."""
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
            log.debug(
                f"{self._resource.kind} changed meanwhile; again", extra={"service": key, "error": str(exc)}
            )
            self._refresh()
            self.queue.add_after(key, 0.05)  # whatever is still in flight lands first
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
        """The status objects of Service `key`, every node's: the watched ones and this reporter's own not
        watched yet."""
        objects = [obj for obj in self._statuses.items() if status_service(obj) == key]
        names = {_name(obj) for obj in objects}
        with self._lock:
            for name in names & self._pending.keys():
                del self._pending[name]  # the watch has it: the watched copy is the truth from now on
            objects += [obj for obj in self._pending.values() if status_service(obj) == key]
        return objects

    def sync(self, key: str) -> None:
        """Brings the status objects of Service `key` in line with what this node announces."""
        detail = self._wanted().get(key)
        body = self.kind.build(key, self.me, detail, self.namespace) if detail is not None else None
        objects = self.objects_for(key)
        had_mine = any(status_node(obj) == self.me for obj in objects)
        now = self._clock()
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
        if plan.takes_over:
            # Another node's claim: it died, lost the election, or (a partition) still announces too.
            self._not_before[key] = now + self._takeovers.next(key)
        for name in plan.delete:
            self._delete(name)
        if body is None:
            self._assigned.discard(key)
            self._takeovers.forget(key)
            self._not_before.pop(key, None)
            return
        if plan.write is not StatusWrite.KEEP:
            self._write(body, None if plan.current is None else dict(plan.current))
        if not had_mine and key not in self._assigned:
            # The announcer changed to this node (a restart that finds its own object says nothing).
            svc = self._services.get(key)
            if svc is not None:
                message = f'announcing from node "{self.me}" with protocol "{self._protocol}"'
                self._events.record(svc, "Normal", NODE_ASSIGNED, message)
        self._assigned.add(key)

    def _write(self, body: JSON, current: JSON | None) -> None:
        ns = self.namespace
        if current is None:
            current = self._create(body)
        name = _name(current)
        # Creating ignores `status` (a subresource): it is written after.
        if current["metadata"].get("labels") != body["metadata"]["labels"]:
            version = current["metadata"]["resourceVersion"]
            patch = {"metadata": {"labels": body["metadata"]["labels"], "resourceVersion": version}}
            current = self.client.patch(self._resource, name, patch, ns)
            self._observe(current)
        if current.get("status") != body["status"]:
            status = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": body["status"],
            }
            self._observe(self.client.patch(self._resource, name, status, ns, subresource="status"))

    def _create(self, body: JSON) -> JSON:
        with self._lock:
            self._creating = True
            self._early.clear()
        created: JSON | None = None
        try:
            created = self.client.create(self._resource, body, self.namespace)
        finally:
            with self._lock:
                self._creating = False
                if created is not None and _name(created) not in self._early:
                    self._pending[_name(created)] = created
                self._early.clear()
        return created

    def _observe(self, obj: JSON) -> None:
        with self._lock:
            if _name(obj) in self._pending:
                self._pending[_name(obj)] = obj
                return
        self._statuses.observe(obj)

    def _refresh(self) -> None:
        """Puts the API's current status objects into the watched copy (a write lost a race; the watch may
        not have caught up yet)."""
        try:
            for obj in self.client.list(self._resource, self.namespace).items:
                self._statuses.observe(obj)
        except (ApiError, OSError) as exc:
            log.debug(f"cannot list {self._resource.kind}", extra={"error": str(exc)})

    def _delete(self, name: str) -> None:
        with self._lock:
            self._pending.pop(name, None)
        try:
            self.client.delete(self._resource, name, self.namespace)
        except NotFoundError:
            pass
        except (ApiError, OSError) as exc:
            log.warning(f"could not delete {self._resource.kind}", extra={"name": name, "error": str(exc)})

    def release(self) -> None:
        """On a graceful stop: removes this node's status objects."""
        with self._lock:
            pending = list(self._pending.values())
        for obj in [*self._statuses.items(), *pending]:
            if status_node(obj) == self.me:
                self._delete(_name(obj))


def _name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))
