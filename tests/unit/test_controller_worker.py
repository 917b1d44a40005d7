"""metallb_py.controller.controller: the worker's handling of one key, driven without its thread or a cluster.

The controller is never started: its client points at a closed port and its watches never list, so each
test sets the worker's state it needs and calls `Controller.process` as the worker thread does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import kubernetes
import pytest

from metallb_py.controller.controller import Controller, ControllerOptions
from metallb_py.controller.poolstatus import PoolStatus
from metallb_py.controller.sync import unwritten_key
from metallb_py.k8s.client import KubeClient, ListResult
from metallb_py.k8s.errors import ApiUnavailableError
from metallb_py.k8s.resources import CONFIGURATION_STATES, SERVICES, Resource
from metallb_py.k8s.watch import Reflector

NS = "metallb-system"
POOL = {
    "apiVersion": "metallb.io/v1beta1",
    "kind": "IPAddressPool",
    "metadata": {"name": "p", "namespace": NS, "uid": "uid-p"},
    "spec": {"addresses": ["192.0.2.0/30"]},
}


@pytest.fixture
def controller() -> Iterator[Controller]:
    configuration = kubernetes.client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # nothing listens; nothing here sends a request
    client = KubeClient(kubernetes.client.ApiClient(configuration))
    try:
        yield Controller(client, ControllerOptions(namespace=NS, leader_election=False))
    finally:
        client.close()


def loaded(controller: Controller) -> Controller:
    """As after a first good configuration: pools in force, assignments restored, counters to publish."""
    assert controller._config.apply([POOL], controller._allocator).loaded
    controller._term = controller.fence.current()  # as after the first term's resync
    controller._ready = True
    controller._counters_change()
    return controller


def take(controller: Controller, key: str) -> str:
    controller.queue.add(key)
    taken = controller.queue.get(timeout=0)
    assert taken == key
    return taken


def test_a_failing_pool_status_publication_does_not_end_the_worker(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[Mapping[str, PoolStatus]] = []
    broken = True

    def publish(statuses: Mapping[str, PoolStatus], *, term: int | None = None) -> None:
        if broken:
            raise RuntimeError("the writer is broken")
        published.append(dict(statuses))

    monkeypatch.setattr(controller.pool_status, "publish", publish)
    loaded(controller)
    controller.process(take(controller, "default/web"))  # raised out of the worker before
    assert controller.queue.idle()

    # The next change of the counters is published.
    broken = False
    controller._counters_change()
    controller.process(take(controller, "default/web"))
    assert published == [{"p": PoolStatus(available_ipv4=4)}]


def reloads_of(controller: Controller) -> float | None:
    return controller.metrics.registry.get_sample_value("metallb_py_controller_config_reloads_total")


class StateApi:
    """The ConfigurationState's API: the first `unavailable` patches get no answer."""

    def __init__(self, unavailable: int) -> None:
        self.unavailable = unavailable
        self.statuses: list[Mapping[str, Any]] = []

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return {"metadata": {"name": name, "resourceVersion": "1"}}

    def create(
        self, resource: Resource, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        raise AssertionError("the ConfigurationState exists")

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        assert (resource, subresource) == (CONFIGURATION_STATES, "status")
        if self.unavailable:
            self.unavailable -= 1
            raise ApiUnavailableError(503, "ServiceUnavailable", "the API server is restarting")
        self.statuses.append(body["status"])
        return {"metadata": {"name": name, "resourceVersion": "2"}}


def test_a_configuration_state_write_that_failed_is_retried_with_backoff_without_reloading(
    controller: Controller,
) -> None:
    api = StateApi(unavailable=2)
    controller.config_report.api = api
    controller._term = controller.fence.current()
    controller._synced = True  # as after the resync; the watches hold no configuration object: refused
    controller.process(take(controller, "@config"))
    assert api.statuses == []
    reloads = reloads_of(controller)
    retried: list[str] = []
    for tries in (1, 2):
        key = controller.queue.get(timeout=30)  # due after the backoff
        assert key is not None and key != "@config"
        assert controller.queue.failures(key) == tries
        controller.process(key)
        retried.append(key)
    assert [s["result"] for s in api.statuses] == ["Invalid"]
    assert controller.queue.failures(retried[0]) == 0 and controller.queue.idle()
    assert reloads_of(controller) == reloads == 1


def test_a_pool_change_that_evicts_an_address_a_service_may_still_show_reconsiders_that_service(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded(controller)
    controller._synced = True
    controller._allocator.assign(unwritten_key("default/web", "192.0.2.1"), ["192.0.2.1"])
    moved = {**POOL, "spec": {"addresses": ["198.51.100.0/30"]}}
    monkeypatch.setattr(controller.config_watch, "objects", lambda: [moved])
    controller._reload_config()
    queued = []
    while (key := controller.queue.get(timeout=0)) is not None:
        queued.append(key)
        controller.queue.done(key)
    assert "default/web" in queued and not [k for k in queued if "#" in k]


class QuietWatch:
    """A watch on which nothing happens until it is closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        self.closed.wait()
        return iter(())

    def close(self) -> None:
        self.closed.set()


class SlowLists:
    """The Services' API: the first list answers at once, every later one when the test lets it."""

    def __init__(self) -> None:
        self.lists = 0
        self.started = threading.Condition()
        self.gates: dict[int, threading.Event] = {}

    def list(self, resource: Resource, namespace: str | None = None, **kwargs: Any) -> ListResult:
        with self.started:
            self.lists += 1
            n = self.lists
            gate = self.gates.setdefault(n, threading.Event())
            self.started.notify_all()
        if n > 1:
            gate.wait()
        return ListResult([], str(n))

    def watch(self, resource: Resource, namespace: str | None = None, **kwargs: Any) -> QuietWatch:
        return QuietWatch()

    def release(self, n: int) -> None:
        with self.started:
            self.gates.setdefault(n, threading.Event()).set()

    def release_all(self) -> None:
        with self.started:
            for n in range(1, self.lists + 2):
                self.gates.setdefault(n, threading.Event()).set()


def test_a_resync_retried_in_its_term_waits_for_the_list_it_asked_for_not_a_later_one() -> None:
    """Regression: each try of a term's resync asked for a list that starts after it, so when a list took
    longer than the resync's wait (a slow or narrow link to a big cluster), every retry asked for yet another
    one and the term never completed its resync: the controller never worked again."""
    configuration = kubernetes.client.Configuration()
    configuration.host = "http://127.0.0.1:9"
    client = KubeClient(kubernetes.client.ApiClient(configuration))
    controller = Controller(client, ControllerOptions(namespace=NS))
    api = SlowLists()
    services = Reflector(api, SERVICES, controller._on_service)  # type: ignore[arg-type]
    controller.services = controller.sync.services = services
    controller.reflectors = [services]
    elector = controller.elector
    assert elector is not None
    with elector._lock:  # leading its first term, as after a renewal now
        elector._leading, elector._renewed_at, elector._term = True, elector._clock(), 1
    services.start()
    try:
        assert services.synced.wait(30)
        controller.resync_timeout = 0.05
        controller.process(take(controller, "@resync"))  # asks for list 2, which is slower than the wait
        assert controller._term is None and controller.queue.failures("@resync") == 1
        api.release(2)
        controller.resync_timeout = 30.0
        controller.process(take(controller, "@resync"))
        assert controller._term == 1
        assert api.lists == 2
        assert controller.queue.failures("@resync") == 0  # a later term's retries start from the base delay
    finally:
        api.release_all()
        services.stop()
        client.close()


def test_the_warnings_metric_is_set_before_the_reload_is_reported(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the gauge of configuration warnings was set after the ConfigurationState was written, so
    a reader who saw the state (warnings cleared) could still read the previous count."""
    seen: list[float | None] = []
    api = StateApi(unavailable=0)
    patch = api.patch

    def patch_and_look(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(controller.metrics.registry.get_sample_value("metallb_py_controller_config_warnings"))
        return patch(*args, **kwargs)

    api.patch = patch_and_look  # type: ignore[method-assign]
    controller.config_report.api = api
    controller._term = controller.fence.current()
    controller._synced = True
    host_bits = {**POOL, "spec": {"addresses": ["192.0.2.1/30"]}}
    monkeypatch.setattr(controller.config_watch, "objects", lambda: [host_bits])
    controller._reload_config()
    monkeypatch.setattr(controller.config_watch, "objects", lambda: [POOL])
    controller._reload_config()
    assert seen == [1, 0]
