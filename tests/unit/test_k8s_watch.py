"""metallb_py.k8s.watch.Reflector against a scripted API: resume, relist on 410, backoff, missing CRDs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from metallb_py.k8s.client import ListResult
from metallb_py.k8s.errors import ApiUnavailableError, GoneError, NotFoundError
from metallb_py.k8s.resources import SERVICES
from metallb_py.k8s.watch import LAST_APPLIED, Backoff, Change, Reflector, default_backoff, drop_bookkeeping


def obj(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}, **extra}


class Stream:
    def __init__(self, events: list[tuple[str, dict[str, Any]] | Exception]) -> None:
        self.events = events
        self.closed = False

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for event in self.events:
            if self.closed:
                return
            if isinstance(event, Exception):
                raise event
            yield event

    def close(self) -> None:
        self.closed = True


class ScriptedClient:
    """Answers list() and watch() from scripts; records the versions watches were opened from."""

    def __init__(self, lists: list[ListResult | Exception], watches: list[Stream | Exception]) -> None:
        self.lists, self.watches = lists, watches
        self.watched_from: list[str] = []
        self.done = threading.Event()

    def list(self, resource: object, namespace: str | None = None, **kwargs: Any) -> ListResult:
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def watch(self, resource: object, namespace: str | None = None, **kwargs: Any) -> Stream:
        if self.done.is_set():
            # The reflector retrying before the test stopped it (a slow machine): not part of the script.
            raise ApiUnavailableError(0, "", "end of script")
        self.watched_from.append(kwargs["resource_version"])
        if not self.watches:
            self.done.set()
            raise ApiUnavailableError(0, "", "end of script")
        answer = self.watches.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(client: ScriptedClient, **options: Any) -> tuple[Reflector, list[Change]]:
    changes: list[Change] = []
    reflector = Reflector(
        client,  # type: ignore[arg-type]
        SERVICES,
        changes.append,
        backoff=Backoff(base=0.001, cap=0.002),
        missing_retry=0.001,
        **options,
    )
    reflector.start()
    assert client.done.wait(5)
    reflector.stop()
    return reflector, changes


def summary(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.type, c.key) for c in changes]


def test_list_then_watch_then_resume_after_a_broken_connection() -> None:
    client = ScriptedClient(
        [ListResult([obj("a", "1"), obj("b", "2")], "10")],
        [
            Stream([("MODIFIED", obj("a", "11")), ApiUnavailableError(0, "", "connection reset")]),
            ApiUnavailableError(0, "", "connection refused"),  # the API server restarting
            Stream([("BOOKMARK", {"metadata": {"resourceVersion": "15"}}), ("DELETED", obj("b", "16"))]),
        ],
    )
    reflector, changes = run(client)
    assert summary(changes) == [
        ("ADDED", "ns/a"),
        ("ADDED", "ns/b"),
        ("MODIFIED", "ns/a"),
        ("DELETED", "ns/b"),
    ]
    # Resumed from the last version seen each time; never listed again.
    assert client.watched_from == ["10", "11", "11", "16"]
    assert reflector.keys() == ["ns/a"]
    assert reflector.items()[0]["kind"] == "Service"  # list items lack kind; the store adds it
    assert reflector.synced.is_set()


def bulky(name: str, version: str) -> dict[str, Any]:
    """An object as the API server and kubectl leave it: field owners and the last applied manifest."""
    o = obj(name, version, spec={"type": "LoadBalancer"})
    o["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    o["metadata"]["annotations"] = {LAST_APPLIED: "{...}", "metallb.io/allow-shared-ip": "web"}
    return o


def test_a_trim_applies_to_listed_watched_and_observed_objects_before_anyone_sees_them() -> None:
    client = ScriptedClient([ListResult([bulky("a", "1")], "10")], [Stream([("ADDED", bulky("b", "11"))])])
    reflector, changes = run(client, trim=drop_bookkeeping)
    reflector.observe(bulky("a", "12"))
    for stored in [*reflector.items(), *(c.obj for c in changes)]:
        assert "managedFields" not in stored["metadata"], stored
        assert stored["metadata"]["annotations"] == {"metallb.io/allow-shared-ip": "web"}, stored
        assert stored["spec"] == {"type": "LoadBalancer"} and stored["kind"] == "Service"
    assert [meta["resourceVersion"] for meta in (o["metadata"] for o in reflector.items())] == ["12", "11"]
    # Without a trim, objects are kept whole.
    reflector, _ = run(ScriptedClient([ListResult([bulky("a", "1")], "10")], []))
    assert "managedFields" in reflector.items()[0]["metadata"]


def test_expired_watch_lists_again_and_reports_what_changed_meanwhile() -> None:
    client = ScriptedClient(
        [
            ListResult([obj("a", "1"), obj("b", "2"), obj("c", "3")], "10"),
            ListResult([obj("a", "1"), obj("c", "30"), obj("d", "31")], "40"),
        ],
        [Stream([GoneError(410, "Expired", "too old resource version")])],
    )
    _, changes = run(client)
    assert summary(changes)[3:] == [("MODIFIED", "ns/c"), ("ADDED", "ns/d"), ("DELETED", "ns/b")]
    assert client.watched_from == ["10", "40"]


def test_a_missing_resource_type_counts_as_synced_and_empty() -> None:
    client = ScriptedClient(
        [
            NotFoundError(404, "NotFound", "the server could not find the requested resource"),
            ListResult([], "5"),
        ],
        [],
    )
    reflector, changes = run(client)
    assert reflector.synced.is_set()
    assert changes == []
    assert client.watched_from == ["5"]


def test_a_404_after_a_successful_list_keeps_the_store() -> None:
    """Regression: one spurious 404 around an API server restart emptied the store (deleting every pool)."""
    not_found = NotFoundError(404, "NotFound", "the server could not find the requested resource")
    client = ScriptedClient(
        [ListResult([obj("a", "1")], "10"), not_found, ListResult([obj("a", "1")], "12")],
        [not_found],
    )
    reflector, changes = run(client)
    assert summary(changes) == [("ADDED", "ns/a")]  # no DELETED in between
    assert reflector.keys() == ["ns/a"]
    assert not reflector.missing
    assert client.watched_from == ["10", "12"]


def test_echoes_of_observed_writes_are_not_reported_and_never_go_back_in_time() -> None:
    client = ScriptedClient([ListResult([obj("a", "1")], "10")], [])
    changes: list[Change] = []
    reflector = Reflector(client, SERVICES, changes.append)  # type: ignore[arg-type]
    reflector._list()
    # Two writes in a row (status, then annotation); the watch echoes the first after the second returned.
    reflector.observe(obj("a", "12", status="written"))
    reflector.observe(obj("a", "13", status="written", annotated=True))
    reflector._apply("MODIFIED", obj("a", "12", status="written"))
    stored = reflector.get("ns/a")
    assert stored is not None and stored["metadata"]["resourceVersion"] == "13"
    reflector._apply("MODIFIED", obj("a", "13", status="written", annotated=True))
    reflector._apply("MODIFIED", obj("a", "14"))  # someone else's change: reported
    assert summary(changes) == [("ADDED", "ns/a"), ("MODIFIED", "ns/a")]
    assert changes[-1].old is not None and changes[-1].old["metadata"]["resourceVersion"] == "13"
    assert reflector._own == {}


@pytest.mark.parametrize("failures", [0, 1, 5, 40])
def test_default_backoff_is_capped_and_jittered(failures: int) -> None:
    backoff = default_backoff()
    for _ in range(failures):
        backoff.next()
    delay = backoff.next()
    nominal = min(10.0, 0.2 * 2**failures)
    assert nominal / 2 <= delay <= nominal


class GatedClient(ScriptedClient):
    """list() calls 2 and later each wait for their gate; `started[n]` is set when list n begins."""

    def __init__(self, lists: list[ListResult | Exception], watches: list[Stream | Exception]) -> None:
        super().__init__(lists, watches)
        self.calls = 0
        self.started = {n: threading.Event() for n in (1, 2, 3)}
        self.gates = {n: threading.Event() for n in (1, 2, 3)}
        self.gates[1].set()

    def list(self, resource: object, namespace: str | None = None, **kwargs: Any) -> ListResult:
        self.calls += 1
        n = self.calls
        self.started[n].set()
        assert self.gates[n].wait(30), f"list {n} never released"
        return super().list(resource, namespace, **kwargs)

    def watch(self, resource: object, namespace: str | None = None, **kwargs: Any) -> Stream:
        if self.watches:
            return super().watch(resource, namespace, **kwargs)
        return Stream([])  # ends at once; the reflector watches again


def test_resync_waits_for_a_list_that_started_after_it_was_called() -> None:
    """Regression: resync() counted completed lists, so a list already under way when it was called (and
    maybe missing the writes just before the call) satisfied it; a new leader restored from that copy."""
    client = GatedClient(
        [
            ListResult([obj("a", "1")], "10"),
            ListResult([obj("a", "2")], "20"),  # under way when resync() is called
            ListResult([obj("a", "3")], "30"),  # the list resync() asked for
        ],
        [Stream([GoneError(410, "Expired", "too old resource version")])],
    )
    reflector = Reflector(client, SERVICES, lambda change: None, backoff=Backoff(base=0.001, cap=0.002))  # type: ignore[arg-type]
    close_stream = reflector._close_stream
    called = threading.Event()

    def closing() -> None:  # resync() closes the watch once it has noted which list it waits for
        called.set()
        close_stream()

    reflector._close_stream = closing  # type: ignore[method-assign]
    reflector.start()
    try:
        assert client.started[2].wait(30)
        answers: list[tuple[bool, str]] = []

        def resync() -> None:
            ok = reflector.resync(timeout=30)
            stored = reflector.get("ns/a")
            answers.append((ok, stored["metadata"]["resourceVersion"] if stored else ""))

        waiter = threading.Thread(target=resync)
        waiter.start()
        assert called.wait(30)
        client.gates[2].set()
        assert client.started[3].wait(30)
        # List 2 is done and list 3 is held: a resync satisfied by list 2 returns now.
        waiter.join(1.0)
        assert waiter.is_alive(), f"resync() returned on a list that started before it: {answers}"
        client.gates[3].set()
        waiter.join(30)
        assert answers == [(True, "3")]
    finally:
        for gate in client.gates.values():
            gate.set()
        reflector.stop()
