"""The status reporter: ServiceL2Status (or ServiceBGPStatus) objects and nodeAssigned Events, written after
the fact.

Announcing never waits for the API: the worker changes the announce set, and this reporter writes what it says
from its own thread, one work-queue key per Service (as MetalLB keeps its status reporter apart from the
announcing). A key is queued when the announce set changes for that Service and when its status object
changes (another node took it over or removed it). One reporter per protocol (`kind`: status.L2_STATUS or
status.BGP_STATUS). Per key:
- the decision is status.decide_status (create, update, take over, wait, delete, keep);
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

    def sync(self, key: str) -> None:
        """Brings the status object of Service `key` in line with what this node announces."""
        detail = self._wanted().get(key)
        ns = self.namespace
        name = self.kind.name(key, self.me)
        body = self.kind.build(key, self.me, detail, ns) if detail is not None else None
        current = self._statuses.get(f"{ns}/{name}")
        previous = status_node(current)
        now = self._clock()
        action = decide_status(
            body, current, self.me, now=now, not_before=self._not_before.get(key, float("-inf"))
        )
        if action is StatusWrite.WAIT:
            self.queue.add_after(key, self._not_before[key] - now)
            return
        if action is StatusWrite.DELETE:
            self._delete(name)
        if body is None:
            self._assigned.discard(key)
            self._takeovers.forget(key)
            self._not_before.pop(key, None)
            return
        if action is StatusWrite.TAKE_OVER:
            # status.node is immutable: another node's claim is replaced (it died or lost the election).
            self._not_before[key] = now + self._takeovers.next(key)
            self._delete(name)
            current = None
        if action is not StatusWrite.KEEP:
            self._write(body, current)
        if previous != self.me and key not in self._assigned:
            # The announcer changed to this node (a restart that finds itself named says nothing).
            svc = self._services.get(key)
            if svc is not None:
                message = f'announcing from node "{self.me}" with protocol "{self._protocol}"'
                self._events.record(svc, "Normal", NODE_ASSIGNED, message)
        self._assigned.add(key)

    def _write(self, body: JSON, current: JSON | None) -> None:
        ns, name = self.namespace, body["metadata"]["name"]
        if current is None:
            try:
                current = self.client.create(self._resource, body, ns)
            except ConflictError:  # created meanwhile (by us, not echoed yet, or by another node)
                current = self.client.get(self._resource, name, ns)
            if status_node(current) not in (None, self.me):
                raise ConflictError(409, "Conflict", f"{name} names {status_node(current)}")
        # Creating ignores `status` (a subresource): labels and status are written after.
        if current.get("status") != body["status"] or (
            current["metadata"].get("labels") != body["metadata"]["labels"]
        ):
            version = current["metadata"]["resourceVersion"]
            patch = {"metadata": {"labels": body["metadata"]["labels"], "resourceVersion": version}}
            updated = self.client.patch(self._resource, name, patch, ns)
            status = {
                "metadata": {"resourceVersion": updated["metadata"]["resourceVersion"]},
                "status": body["status"],
            }
            updated = self.client.patch(self._resource, name, status, ns, subresource="status")
            self._statuses.observe(updated)

    def _refresh(self) -> None:
        """Puts the API's current status objects into the watched copy (a write lost a race; the watch may
        not have caught up yet)."""
        try:
            for obj in self.client.list(self._resource, self.namespace).items:
                self._statuses.observe(obj)
        except (ApiError, OSError) as exc:
            log.debug(f"cannot list {self._resource.kind}", extra={"error": str(exc)})

    def _delete(self, name: str) -> None:
        try:
            self.client.delete(self._resource, name, self.namespace)
        except NotFoundError:
            pass
        except (ApiError, OSError) as exc:
            log.warning(f"could not delete {self._resource.kind}", extra={"name": name, "error": str(exc)})

    def release(self) -> None:
        """On a graceful stop: removes the status objects that still name this node."""
        for obj in self._statuses.items():
            if status_node(obj) == self.me:
                self._delete(obj["metadata"]["name"])
