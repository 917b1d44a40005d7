"""The status reporter driven with fakes: an in-memory API (generated names, resourceVersions, a status
subresource), a watched copy the test brings up to date, and a clock the test moves. The real API server is
exercised by tests/e2e (test_speaker_e2e, test_speaker_l2_parity)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

from metallb_py.k8s.errors import ApiUnavailableError, ConflictError, ForbiddenError, NotFoundError
from metallb_py.speaker.reporter import NODE_ASSIGNED, UNWATCHED_CHECK, StatusReporter
from metallb_py.speaker.status import BGP_STATUS, L2_STATUS, StatusKind, bgp_status, l2_status, status_node

JSON = dict[str, Any]
WEB = "default/web"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryApi:
    """Just enough of an API server for the status objects: create (a generateName gets a fresh suffix;
    status dropped, as a status subresource does), patch (merge), delete, list (by labels), with
    resourceVersions and 409 on a stale one; get of the speaker's Pod. `on_create` runs after a create is
    stored, before it returns. `fail` fails every call, `fail_verb` those of one verb ("delete") or of one
    verb and name ("delete l2-00001")."""

    def __init__(self) -> None:
        self.objects: dict[str, JSON] = {}
        self.pods: dict[str, JSON] = {}
        self.versions = itertools.count(1)
        self.suffixes = itertools.count(1)
        self.calls: list[tuple[str, str]] = []
        self.fail: Exception | None = None
        self.fail_verb: dict[str, Exception] = {}
        self.on_create: Callable[[JSON], None] = lambda _obj: None

    def _check(self, verb: str, name: str) -> None:
        self.calls.append((verb, name))
        if self.fail is not None:
            raise self.fail
        for what in (verb, f"{verb} {name}"):
            if what in self.fail_verb:
                raise self.fail_verb[what]

    def get(self, resource: Any, name: str, _ns: str) -> JSON:
        self._check("get " + resource.plural, name)
        if name not in self.pods:
            raise NotFoundError(404, "NotFound", name)
        return copy.deepcopy(self.pods[name])

    def create(self, _resource: object, body: JSON, _ns: str) -> JSON:
        obj = copy.deepcopy(body)
        metadata = obj["metadata"]
        if "name" not in metadata:
            metadata["name"] = f"{metadata.pop('generateName')}{next(self.suffixes):05d}"
        name = metadata["name"]
        self._check("create", name)
        if name in self.objects:
            raise ConflictError(409, "AlreadyExists", name)
        obj.pop("status", None)
        metadata["resourceVersion"] = str(next(self.versions))
        self.objects[name] = obj
        self.on_create(copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def patch(self, _resource: object, name: str, patch: JSON, _ns: str, subresource: str = "") -> JSON:
        self._check("patch " + subresource, name)
        obj = self.objects.get(name)
        if obj is None:
            raise NotFoundError(404, "NotFound", name)
        if patch["metadata"].get("resourceVersion") not in (None, obj["metadata"]["resourceVersion"]):
            raise ConflictError(409, "Conflict", name)
        if subresource == "status":
            obj["status"] = copy.deepcopy(patch["status"])
        else:
            for field in ("labels", "ownerReferences"):
                if field in patch["metadata"]:
                    obj["metadata"][field] = copy.deepcopy(patch["metadata"][field])
        obj["metadata"]["resourceVersion"] = str(next(self.versions))
        return copy.deepcopy(obj)

    def delete(self, _resource: object, name: str, _ns: str) -> None:
        self._check("delete", name)
        if self.objects.pop(name, None) is None:
            raise NotFoundError(404, "NotFound", name)

    def list(self, _resource: object, _ns: str, *, label_selector: str = "") -> Any:
        self._check("list", label_selector)
        wanted = dict(term.split("=", 1) for term in label_selector.split(",") if term)
        items = [
            copy.deepcopy(o)
            for o in self.objects.values()
            if all(o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        return type("Listed", (), {"items": items})()

    def put(self, obj: JSON, name: str) -> None:
        """An object another writer made (another node, or this one before a restart)."""
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("generateName", None)
        obj["metadata"] |= {"name": name, "resourceVersion": str(next(self.versions))}
        self.objects[name] = obj


class Watched:
    """The reporter's watched copy of the statuses; `sync()` plays the watch catching up (a relist): the
    store takes the API's objects and `handler` hears of each one added, changed or deleted."""

    def __init__(self, api: MemoryApi) -> None:
        self.api = api
        self.objects: dict[str, JSON] = {}
        self.handler: Callable[[JSON], None] = lambda _obj: None
        self.scans = 0  # items() calls

    def get(self, key: str) -> JSON | None:
        return self.objects.get(key.partition("/")[2])

    def items(self) -> list[JSON]:
        self.scans += 1
        return list(self.objects.values())

    def observe(self, obj: JSON) -> None:
        if obj["metadata"]["name"] in self.objects:  # as a Reflector: only objects it holds
            self.objects[obj["metadata"]["name"]] = copy.deepcopy(obj)

    def sync(self) -> None:
        old, self.objects = self.objects, copy.deepcopy(self.api.objects)
        changed = [o for name, o in self.objects.items() if old.get(name) != o]
        for obj in [*changed, *(o for name, o in old.items() if name not in self.objects)]:
            self.handler(obj)


class Services:
    def get(self, key: str) -> JSON | None:
        namespace, _, name = key.partition("/")
        return {"metadata": {"namespace": namespace, "name": name}}

    def items(self) -> list[JSON]:
        return []


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        self.recorded.append((reason, message))


class Reporting:
    def __init__(self, *, kind: StatusKind = L2_STATUS, pod: str | None = None) -> None:
        self.api = MemoryApi()
        self.statuses = Watched(self.api)
        self.events = Events()
        self.clock = Clock()
        self.wanted: dict[str, tuple[str, ...]] = {WEB: ("eth0",)}
        self.reporter = StatusReporter(
            self.api,  # type: ignore[arg-type]
            "a",
            "metallb-system",
            wanted=lambda: dict(self.wanted),
            statuses=self.statuses,
            services=Services(),
            events=self.events,
            kind=kind,
            pod=pod,
            clock=self.clock,
        )
        self.statuses.handler = self.reporter.status_changed

    def claims(self, service: str = WEB) -> list[tuple[str | None, str]]:
        """(node, name) of each status object of `service` in the API, by name."""
        namespace, _, name = service.partition("/")
        return sorted(
            (status_node(obj), obj["metadata"]["name"])
            for obj in self.api.objects.values()
            if obj["metadata"]["labels"]["metallb.io/service-name"] == name
            and obj["metadata"]["labels"]["metallb.io/service-namespace"] == namespace
        )

    def owners(self, service: str = WEB) -> list[str | None]:
        return [node for node, _ in self.claims(service)]

    def drain(self) -> list[str]:
        """Processes every queued key that is due now; the keys processed."""
        done = []
        while (key := self.reporter.queue.get(timeout=0)) is not None:
            try:
                self.reporter.process(key)
            finally:
                self.reporter.queue.done(key)
            done.append(key)
        return done


def test_the_reporter_claims_the_service_once_and_says_so_once() -> None:
    r = Reporting()
    r.reporter.announce_changed()
    assert r.drain() == [WEB]
    [(node, name)] = r.claims()
    assert node == "a" and name.startswith("l2-")
    obj = r.api.objects[name]
    assert obj["status"]["interfaces"] == [{"name": "eth0"}]
    assert obj["metadata"]["labels"] == {
        "metallb.io/node": "a",
        "metallb.io/service-name": "web",
        "metallb.io/service-namespace": "default",
    }
    assert r.events.recorded == [(NODE_ASSIGNED, 'announcing from node "a" with protocol "layer2"')]
    r.statuses.sync()
    r.reporter.status_changed(obj)  # the watch echoes our own write
    writes = len(r.api.calls)
    assert r.drain() == [WEB]
    assert len(r.api.calls) == writes, "nothing to write"
    assert len(r.events.recorded) == 1


def test_a_second_look_before_the_watch_echoes_the_create_does_not_create_another() -> None:
    r = Reporting()
    r.reporter.announce_changed()
    r.drain()
    r.wanted[WEB] = ("eth1",)  # the watch has not shown the new object yet
    r.reporter.announce_changed()
    r.drain()
    [(_, name)] = r.claims()
    assert r.api.objects[name]["status"]["interfaces"] == [{"name": "eth1"}]
    r.statuses.sync()
    r.reporter.status_changed(r.api.objects[name])
    r.drain()
    assert r.claims() == [("a", name)]


def test_an_object_deleted_before_its_create_returned_is_created_again() -> None:
    r = Reporting()

    def someone_deletes_it(obj: JSON) -> None:
        # The watch delivers ADDED then DELETED while create() is still on its way back (once).
        r.api.on_create = lambda _obj: None
        r.reporter.status_changed(obj)
        del r.api.objects[obj["metadata"]["name"]]

    r.api.on_create = someone_deletes_it
    r.reporter.announce_changed()
    r.drain()
    r.clock.now += 0.1  # the status write found it gone: a lost race, looked at again shortly
    r.drain()
    [(node, name)] = r.claims()
    assert node == "a" and r.api.objects[name]["status"]["interfaces"] == [{"name": "eth0"}]


def test_the_announcer_deletes_other_nodes_claims_backing_off_when_they_come_back() -> None:
    r = Reporting()
    other = l2_status(WEB, "b", ["eth0"], "metallb-system")
    r.api.put(other, "l2-bbbbb")
    r.statuses.sync()
    r.reporter.announce_changed()
    r.drain()
    assert r.owners() == ["a"], "the first takeover is at once"
    taken: list[float] = [r.clock.now]
    for i in range(4):  # b claims it again each time (a partition: both announce)
        r.api.put(other, f"l2-b{i}")
        r.statuses.sync()
        r.reporter.status_changed(r.api.objects[f"l2-b{i}"])
        while "b" in r.owners():
            r.drain()
            r.clock.now += 0.05
        taken.append(r.clock.now)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(taken)]
    assert gaps == sorted(gaps) and gaps[-1] >= 2 * gaps[0] >= 1.0, gaps
    assert r.owners() == ["a"]
    assert len(r.events.recorded) == 1, "this node announced all along"


def test_a_restart_keeps_one_of_its_own_and_deletes_what_it_no_longer_announces() -> None:
    r = Reporting()
    mine = l2_status(WEB, "a", ["eth0"], "metallb-system")
    r.api.put(mine, "l2-00001")
    r.api.put(mine, "l2-00002")  # a create whose echo the previous incarnation never saw
    r.api.put(l2_status("default/gone", "a", ["eth0"], "metallb-system"), "l2-00003")
    r.api.put(l2_status("default/elsewhere", "b", ["eth0"], "metallb-system"), "l2-00004")
    r.statuses.sync()
    r.reporter.resync()
    r.drain()
    assert r.claims() == [("a", "l2-00001")]
    assert r.claims("default/gone") == []
    assert r.claims("default/elsewhere") == [("b", "l2-00004")], "not ours to touch"
    assert r.events.recorded == [], "a restart that finds its own object says nothing"


def test_a_permanent_error_is_not_retried_until_the_service_changes() -> None:
    r = Reporting()
    r.api.fail = ForbiddenError(403, "Forbidden", "no")
    r.reporter.announce_changed()
    r.drain()
    calls = len(r.api.calls)
    r.clock.now += 60.0
    assert r.drain() == [] and len(r.api.calls) == calls, "no retry"
    r.api.fail = None
    r.wanted[WEB] = ("eth1",)
    r.reporter.announce_changed()
    r.drain()
    assert r.owners() == ["a"]


def test_a_temporary_error_is_retried_with_backoff() -> None:
    r = Reporting()
    r.api.fail = ConflictError(409, "Conflict", "raced")
    r.reporter.announce_changed()
    assert r.drain() == [WEB]
    r.api.fail = None
    assert r.drain() == [], "not before its delay"
    r.clock.now += 1.0
    assert r.drain() == [WEB] and r.owners() == ["a"]


def test_no_longer_announced_removes_its_own_claim_only() -> None:
    r = Reporting()
    r.api.put(l2_status(WEB, "b", ["eth0"], "metallb-system"), "l2-bbbbb")
    r.statuses.sync()
    r.wanted.clear()
    r.reporter.resync()
    r.drain()
    assert r.owners() == ["b"]
    r.wanted[WEB] = ("eth0",)
    r.reporter.announce_changed()
    r.drain()
    assert r.owners() == ["a"]
    r.statuses.sync()
    r.api.put(l2_status(WEB, "b", ["eth0"], "metallb-system"), "l2-bbbbc")  # b's, written meanwhile
    r.statuses.sync()
    r.wanted.clear()
    r.reporter.announce_changed()
    r.drain()
    assert r.owners() == ["b"]


def test_release_on_a_graceful_stop() -> None:
    r = Reporting()
    r.reporter.announce_changed()
    r.drain()
    r.reporter.release()  # before the watch showed it, too
    assert r.api.objects == {}


def test_a_failed_delete_fails_the_key_and_is_retried() -> None:
    r = Reporting()
    r.api.put(l2_status(WEB, "a", ["eth0"], "metallb-system"), "l2-stale")  # a claim from before a restart
    r.statuses.sync()
    r.wanted.clear()
    r.api.fail_verb["delete"] = ApiUnavailableError(503, "ServiceUnavailable", "busy")
    r.reporter.resync()
    assert r.drain() == [WEB]
    assert r.owners() == ["a"]
    r.api.fail_verb.clear()
    assert r.drain() == [], "not before its delay"
    r.clock.now += 0.5
    assert r.drain() == [WEB]
    assert r.owners() == [], "the stale claim goes once the API answers"


def test_an_update_that_finds_its_object_gone_creates_another_without_looping() -> None:
    r = Reporting()
    r.api.put(l2_status(WEB, "a", ["eth0"], "metallb-system"), "l2-mine")
    r.api.put(l2_status("default/other", "b", ["eth0"], "metallb-system"), "l2-other")
    r.statuses.sync()
    r.reporter.resync()
    r.drain()
    del r.api.objects["l2-mine"]  # deleted by another node; the watch has not shown it (and will not soon)
    r.wanted[WEB] = ("eth1",)
    r.reporter.announce_changed()
    r.api.calls.clear()
    assert r.drain() == [WEB]
    selector = "metallb.io/service-name=web,metallb.io/service-namespace=default"
    assert r.api.calls == [("patch status", "l2-mine"), ("list", selector)], "the Service's objects only"
    assert r.drain() == [], "retried after a backoff, not at once"
    r.clock.now += 0.5
    assert r.drain() == [WEB]
    [(node, name)] = r.claims()
    assert node == "a" and name != "l2-mine"
    assert r.api.objects[name]["status"]["interfaces"] == [{"name": "eth1"}]
    r.clock.now += 60.0
    r.api.calls.clear()
    r.drain()
    assert [verb for verb, _ in r.api.calls] == ["list"], "one check of the unwatched object, then quiet"
    assert r.claims() == [("a", name)]


def test_a_conflict_in_bgp_mode_lists_this_nodes_objects_of_the_service_only() -> None:
    r = Reporting(kind=BGP_STATUS)
    r.wanted[WEB] = ("tor-a",)
    r.api.put(bgp_status(WEB, "a", ["tor-a"], "metallb-system"), "bgp-mine")
    r.statuses.sync()
    r.reporter.resync()
    r.drain()
    r.api.objects["bgp-mine"]["metadata"]["resourceVersion"] = "changed"  # written by someone meanwhile
    r.wanted[WEB] = ("tor-a", "tor-b")
    r.reporter.announce_changed()
    r.api.calls.clear()
    r.drain()
    selector = "metallb.io/service-name=web,metallb.io/service-namespace=default,metallb.io/node=a"
    assert r.api.calls == [("patch status", "bgp-mine"), ("list", selector)]
    r.clock.now += 0.5
    r.drain()
    assert r.api.objects["bgp-mine"]["status"]["peers"] == ["tor-a", "tor-b"], "the listed version written"


def test_an_object_deleted_before_the_watch_showed_it_is_not_kept_as_a_ghost() -> None:
    r = Reporting()
    r.reporter.announce_changed()
    r.drain()
    [(_, created)] = r.claims()
    del r.api.objects[created]  # another node deletes it; the watch relists past both changes
    r.statuses.sync()
    assert r.drain() == []
    r.clock.now += UNWATCHED_CHECK
    assert r.drain() == [WEB]
    [(node, name)] = r.claims()
    assert node == "a" and name != created


def test_a_resync_checks_every_object_the_watch_has_not_shown() -> None:
    r = Reporting()
    r.reporter.announce_changed()
    r.drain()
    [(_, created)] = r.claims()
    del r.api.objects[created]
    r.statuses.sync()
    r.reporter.resync()
    r.drain()
    [(node, name)] = r.claims()
    assert node == "a" and name != created


def test_a_sync_reads_the_services_objects_without_scanning_every_object() -> None:
    r = Reporting()
    for i in range(5):
        r.api.put(l2_status(f"default/svc{i}", "b", ["eth0"], "metallb-system"), f"l2-b{i}")
    r.statuses.sync()
    r.reporter.announce_changed()
    r.statuses.scans = 0
    r.drain()
    r.wanted["default/svc3"] = ("eth0",)
    r.reporter.announce_changed()
    r.drain()
    assert r.statuses.scans == 0
    assert r.claims("default/svc3") == [("a", r.claims("default/svc3")[0][1])]
    assert r.claims("default/svc2") == [("b", "l2-b2")]


POD = {"metadata": {"name": "speaker-x1", "namespace": "metallb-system", "uid": "uid-1"}}
OWNER = {"apiVersion": "v1", "kind": "Pod", "name": "speaker-x1", "uid": "uid-1"}


def test_the_speakers_pod_owns_its_objects() -> None:
    r = Reporting(pod="speaker-x1")
    r.api.pods["speaker-x1"] = POD
    r.reporter.announce_changed()
    r.drain()
    [(_, name)] = r.claims()
    assert r.api.objects[name]["metadata"]["ownerReferences"] == [OWNER]
    r.wanted["default/db"] = ("eth0",)
    r.reporter.announce_changed()
    r.drain()
    assert [verb for verb, _ in r.api.calls].count("get pods") == 1, "the Pod is read once"


def test_a_restart_adds_its_pod_to_the_owners_of_the_object_it_keeps() -> None:
    r = Reporting(pod="speaker-x1")
    r.api.pods["speaker-x1"] = POD
    before = l2_status(WEB, "a", ["eth0"], "metallb-system")
    earlier = {"apiVersion": "v1", "kind": "Pod", "name": "speaker-x0", "uid": "uid-0"}
    same_name = {"apiVersion": "v1", "kind": "Pod", "name": "speaker-x1", "uid": "uid-old"}
    before["metadata"]["ownerReferences"] = [earlier, same_name]
    r.api.put(before, "l2-mine")
    r.statuses.sync()
    r.reporter.resync()
    r.drain()
    assert r.claims() == [("a", "l2-mine")]
    assert r.api.objects["l2-mine"]["metadata"]["ownerReferences"] == [earlier, OWNER]


def test_without_a_readable_pod_objects_have_no_owner() -> None:
    r = Reporting(pod="speaker-x1")
    r.api.fail_verb["get pods"] = ForbiddenError(403, "Forbidden", "no")
    r.reporter.announce_changed()
    r.drain()
    [(_, name)] = r.claims()
    assert "ownerReferences" not in r.api.objects[name]["metadata"]
    r.wanted["default/db"] = ("eth0",)
    r.reporter.announce_changed()
    r.drain()
    assert [verb for verb, _ in r.api.calls].count("get pods") == 1, "a permanent error is not retried"


def test_a_pod_that_cannot_be_read_yet_delays_the_write() -> None:
    r = Reporting(pod="speaker-x1")
    r.api.pods["speaker-x1"] = POD
    r.api.fail_verb["get pods"] = ApiUnavailableError(503, "ServiceUnavailable", "busy")
    r.reporter.announce_changed()
    r.drain()
    assert r.claims() == []
    del r.api.fail_verb["get pods"]
    r.clock.now += 0.5
    r.drain()
    [(_, name)] = r.claims()
    assert r.api.objects[name]["metadata"]["ownerReferences"] == [OWNER]


def test_release_goes_on_past_a_failed_delete() -> None:
    r = Reporting()
    r.wanted["default/db"] = ("eth0",)
    r.reporter.announce_changed()
    r.drain()
    r.statuses.sync()
    first = min(r.api.objects)
    r.api.fail_verb[f"delete {first}"] = ApiUnavailableError(503, "ServiceUnavailable", "busy")
    r.reporter.release()
    assert list(r.api.objects) == [first]
