"""metallb_py.k8s.events.EventRecorder's writes, driven without its thread: aggregation on the version it
wrote, and the term an event was recorded in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from metallb_py.k8s.errors import ConflictError
from metallb_py.k8s.events import EventRecorder, _Event, involved_object
from metallb_py.k8s.leader import TermFence
from metallb_py.k8s.resources import Resource

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "uid": "u"},
}


class FakeEvents:
    """Events as the API server keeps them: a patch's metadata.resourceVersion is a precondition."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.requests: list[tuple[str, Mapping[str, Any]]] = []
        self.margin: float | None = 10.0  # what a fence would say; None: not leading in the event's term

    def _stored(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = {**self.objects.get(name, {}), **body}
        obj["metadata"] = {
            **dict(body.get("metadata") or {}),
            "name": name,
            "resourceVersion": str(self.version),
        }
        self.objects[name] = obj
        return dict(obj)

    def create(self, resource: Resource, body: Mapping[str, Any], namespace: str | None = None) -> Any:
        self.requests.append(("create", body))
        return self._stored(body["metadata"]["name"], body)

    def patch(self, resource: Resource, name: str, body: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.requests.append(("patch", body))
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version is not None and version != self.objects[name]["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", "the object has been modified")
        return self._stored(name, body)

    def touch(self, name: str) -> None:
        """Someone else changes the Event."""
        self._stored(name, {"message": "edited"})


def send(recorder: EventRecorder, message: str = "hello") -> None:
    """What the recorder's thread does with one queued event."""
    event = _Event("Normal", "IPAllocated", message)
    recorder._send(involved_object(SERVICE), event, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def test_a_repeated_event_is_counted_on_the_version_written_and_a_new_one_made_when_it_changed() -> None:
    """Regression: the count of a repeated Event was patched without a resourceVersion precondition, so a
    late patch could overwrite whatever the Event had become."""
    api = FakeEvents()
    recorder = EventRecorder(api)  # type: ignore[arg-type]
    send(recorder)
    send(recorder)
    assert [verb for verb, _ in api.requests] == ["create", "patch"]
    assert api.requests[1][1].get("metadata") == {"resourceVersion": "1"}
    (name,) = api.objects
    api.touch(name)
    send(recorder)  # the patch conflicts: a new Event instead
    assert [verb for verb, _ in api.requests] == ["create", "patch", "patch", "create"]
    assert len(api.objects) == 2


def test_an_event_is_sent_for_the_term_it_was_recorded_in() -> None:
    fence = TermFence(None)  # no election: one endless term, 1
    recorder = EventRecorder(FakeEvents(), fence=fence)  # type: ignore[arg-type]
    with fence.working(1):
        recorder.record(SERVICE, "Normal", "IPAllocated", "in the term")
    recorder.record(SERVICE, "Normal", "IPAllocated", "in no term")
    queued = [recorder._queue.get_nowait() for _ in range(2)]
    assert [item[3] for item in queued if item is not None] == [1, None]


def test_outside_a_term_or_once_closed_the_fence_allows_no_write() -> None:
    fence = TermFence(None)
    assert fence.margin() is None
    with fence.working(1):
        assert fence.margin() == float("inf")
        fence.close()
        assert fence.margin() is None
