"""metallb_py.controller.controller: the worker's handling of one key, driven without its thread or a cluster.

The controller is never started: its client points at a closed port and its watches never list, so each
test sets the worker's state it needs and calls `Controller.process` as the worker thread does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import kubernetes
import pytest

from metallb_py.controller.controller import Controller, ControllerOptions
from metallb_py.controller.poolstatus import PoolStatus
from metallb_py.k8s.client import KubeClient

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

    def publish(statuses: Mapping[str, PoolStatus]) -> None:
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
