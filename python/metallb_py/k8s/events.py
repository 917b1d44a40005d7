"""core/v1 Events about objects (what `kubectl describe` shows), sent from a background thread.

`record()` never blocks and never raises: the event joins a bounded queue that one thread drains, so a slow or
unreachable API server delays events but never the controller. As client-go's recorder does, an event equal
to a recent one about the same object (same type, reason and message) updates that Event's count and
lastTimestamp instead of creating another object (on the resourceVersion it last wrote: when someone else
changed it meanwhile, another Event is created).

With a `TermFence` (the controller's), each event is sent for the leadership term it was recorded in: once
that term is over it is not sent (the client refuses), and the new term speaks for itself.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.errors import ApiError, ConflictError, NotFoundError, NotLeaderError
from metallb_py.k8s.leader import TermFence
from metallb_py.k8s.resources import EVENTS, meta

__all__ = ["EventRecorder", "involved_object"]

log = logging.getLogger("metallb_py.k8s.events")

_MESSAGE_LIMIT = 1024  # the API server rejects longer event messages


@dataclass(frozen=True)
class _Event:
    type: str
    reason: str
    message: str


def involved_object(obj: dict[str, Any], *, api_version: str = "", kind: str = "") -> dict[str, str]:
    """The ObjectReference of an API object, for an Event's involvedObject."""
    metadata = obj.get("metadata") or {}
    reference = {
        "apiVersion": str(obj.get("apiVersion") or api_version),
        "kind": str(obj.get("kind") or kind),
        "name": str(metadata.get("name", "")),
        "namespace": str(metadata.get("namespace", "")),
        "uid": str(metadata.get("uid", "")),
        "resourceVersion": str(metadata.get("resourceVersion", "")),
    }
    return {k: v for k, v in reference.items() if v}


_Queued = tuple[dict[str, str], _Event, _dt.datetime, int | None]  # reference, event, when, term


def _timestamp(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Sent:
    name: str
    namespace: str
    count: int
    at: float
    version: str  # the Event's resourceVersion as this recorder last wrote it


class EventRecorder:
    """Sends Events as `component` (shown as FROM by kubectl); see the module docstring."""

    def __init__(
        self,
        client: KubeClient,
        *,
        component: str = "metallb-controller",
        instance: str = "",
        queue_size: int = 4096,
        aggregate_window: float = 600.0,
        fence: TermFence | None = None,
    ) -> None:
        self.client = client
        self.component = component
        self.instance = instance
        self._fence = fence
        self._queue: queue.Queue[_Queued | None] = queue.Queue(queue_size)
        self._window = aggregate_window
        self._recent: OrderedDict[tuple[str, str, str, str, str], _Sent] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._sequence = 0
        self.dropped = 0
        self.sent = 0

    def record(
        self,
        obj: dict[str, Any],
        type: str,
        reason: str,
        message: str,
        *,
        api_version: str = "",
        kind: str = "",
    ) -> None:
        """Queues an event about `obj` (an API object dict): `type` Normal or Warning, a CamelCase `reason`, a
        human `message`. Drops it, with a log line, when the queue is full."""
        reference = involved_object(obj, api_version=api_version, kind=kind)
        event = _Event(type, reason, message)
        try:
            term = self._fence.work_term() if self._fence is not None else None
            self._queue.put_nowait((reference, event, _dt.datetime.now(_dt.UTC), term))
        except queue.Full:
            self.dropped += 1
            log.warning(
                "event queue full; event dropped", extra={"reason": event.reason, "object": reference}
            )

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> bool:
        """Sends what is queued (for up to `timeout` seconds), then stops; False when the thread has not
        ended by then (an event still in flight)."""
        if self._thread is None:
            return True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self._thread = None
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until every queued event was handled; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                reference, event, at, term = item
                if self._fence is None:
                    self._send(reference, event, at)
                else:
                    with self._fence.working(term):
                        self._send(reference, event, at)
            except NotLeaderError:
                pass  # leadership was lost after the event was queued: the new leader speaks now
            except ApiError as exc:
                log.warning(
                    "event not sent", extra={"reason": item[1].reason if item else "", "error": str(exc)}
                )
            except Exception:
                log.exception("event not sent")
            finally:
                self._queue.task_done()

    def _send(self, reference: dict[str, str], event: _Event, at: _dt.datetime) -> None:
        namespace = reference.get("namespace") or "default"
        message = (
            event.message
            if len(event.message) <= _MESSAGE_LIMIT
            else event.message[: _MESSAGE_LIMIT - 3] + "..."
        )
        identity = (
            reference.get("uid", reference.get("name", "")),
            namespace,
            event.type,
            event.reason,
            message,
        )
        now = time.monotonic()
        self._expire(now)
        previous = self._recent.get(identity)
        if previous is not None:
            body = {
                "metadata": {"resourceVersion": previous.version},
                "count": previous.count + 1,
                "lastTimestamp": _timestamp(at),
            }
            try:
                written = self.client.patch(EVENTS, previous.name, body, previous.namespace)
                previous.count += 1
                previous.at = now
                previous.version = meta(written, "resourceVersion")
                self._recent.move_to_end(identity)
                self.sent += 1
                return
            except (NotFoundError, ConflictError):
                # Expired (its TTL), or changed by someone else since: create a new one.
                del self._recent[identity]
        self._sequence += 1
        # Unique per recorder: the object's name, the time in nanoseconds and a sequence number.
        name = f"{reference.get('name', 'object')}.{time.time_ns():x}{self._sequence:x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": reference,
            "reason": event.reason,
            "message": message,
            "type": event.type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": _timestamp(at),
            "lastTimestamp": _timestamp(at),
            "count": 1,
        }
        if self.instance:
            body["reportingInstance"] = self.instance
        created = self.client.create(EVENTS, body, namespace)
        self.sent += 1
        self._recent[identity] = _Sent(name, namespace, 1, now, meta(created, "resourceVersion"))
        while len(self._recent) > 4096:
            self._recent.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._recent:
            identity, sent = next(iter(self._recent.items()))
            if now - sent.at < self._window:
                return
            del self._recent[identity]
