"""The controller's fencing against a real API server: no address is freed before the write that removes it
took effect, no key of a regained term is handled before that term's resync, no write decided in one term
lands in the next.

The leadership tests drive the controller's worker (`Controller.process`) and its elector (`round()`) from
the test thread, with the elector on a clock of the test's own, so a lapse of leadership happens exactly
where the test puts it (as a leader paused by SIGSTOP for longer than its renew deadline, then continued).
The Lease, the Services, the watches and the writes are the real API server's. "Another replica" writing
meanwhile is the test writing a Service's status, as a controller that took over would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _controller_support import (
    Cluster,
    ServiceEnv,
    controller_rules,
    lb_ips,
    running_controller,
    unique,
    wait_until,
)

from metallb_py.controller import Controller, ControllerOptions
from metallb_py.k8s import connect
from metallb_py.k8s.resources import LEASES, SERVICES

pytestmark = pytest.mark.integration

ADDRESS = "192.0.2.40"


class Clock:
    """The elector's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Env(ServiceEnv):
    def holders(self, ip: str) -> list[str]:
        return sorted(name for name, ips in self.cluster.ips_by_service(self.ns).items() if ip in ips)

    def show(self, name: str, *ips: str) -> None:
        """Writes the Service's status as another controller replica would."""
        svc = self.cluster.get_service(self.ns, name)
        assert svc is not None
        body = {
            "metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips] or None}},
        }
        self.cluster.client.patch(SERVICES, name, body, self.ns, subresource="status")


@pytest.fixture
def env(cluster: Cluster) -> Env:
    return Env(cluster)


# -- addresses freed only once written ----------------------------------------------------------------------


def test_an_address_whose_removal_was_refused_is_not_handed_to_another_service(env: Env) -> None:
    """Regression: the allocator freed an address when it decided to take it from a Service, before the
    status write that removes it; the write was refused (403) and the Service kept showing it, while the next
    Service was given it: one address on two Services.

    Here the controller may write the status of `b` only (RBAC resourceNames), once `a` holds the pool's
    only address; `a` then asks for a pool that does not exist (it cannot keep its address: removing it
    is refused), and `b` is created."""
    env.cluster.apply_pool(env.config_ns, "one", f"{ADDRESS}/32")
    account = env.cluster.account(controller_rules())
    with running_controller(env.cluster, env.config_ns, client=account.connect(), lb_class=env.lb_class):
        env.svc("a")
        wait_until(lambda: env.ips("a") == [ADDRESS], what="a to get the address")
        b_status = {"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]}
        b_status["resourceNames"] = ["b"]
        only_b = [r for r in controller_rules() if r["resources"] != ["services/status"]] + [b_status]
        account.grant(only_b)
        wait_until(
            lambda: not account.can("patch", "services/a", env.ns, subresource="status"),
            what="the narrower grant in force",
        )
        env.cluster.client.patch(
            SERVICES, "a", {"metadata": {"annotations": {"metallb.io/address-pool": "nope"}}}, env.ns
        )
        wait_until(lambda: "WriteRefused" in env.cluster.event_reasons(env.ns, "a"), what="a's write refused")
        env.svc("b")
        wait_until(
            lambda: env.ips("b") or "AllocationFailed" in env.cluster.event_reasons(env.ns, "b"),
            what="b decided",
        )
        assert env.ips("a") == [ADDRESS]  # the refused write left it there
        assert env.holders(ADDRESS) == ["a"]
        assert env.ips("b") == []


# -- leadership terms ---------------------------------------------------------------------------------------


@pytest.fixture
def leading(env: Env) -> Iterator[tuple[Controller, Clock]]:
    """A controller with leader election whose worker and elector the test drives, leading its first term
    with the pool of one address in force and its resync done."""
    env.cluster.apply_pool(env.config_ns, "one", f"{ADDRESS}/32")
    client = connect(env.cluster.cp.kubeconfig)
    options = ControllerOptions(
        namespace=env.config_ns,
        lb_class=env.lb_class,
        identity=unique("fence"),
        lease_name=unique("lease"),
    )
    controller = Controller(client, options)
    clock = Clock()
    assert controller.elector is not None
    controller.elector._clock = clock
    for reflector in controller.reflectors:
        reflector.start()
    try:
        controller.elector.round()
        drain(controller)
        assert controller.ready.is_set()
        yield controller, clock
    finally:
        controller._stop.set()
        for reflector in controller.reflectors:
            reflector.stop()
        client.close()


def drain(controller: Controller) -> None:
    """Runs the worker on every key queued now, in order, as its thread would."""
    while (key := controller.queue.get(timeout=0)) is not None:
        controller.process(key)


def lapse(controller: Controller, clock: Clock) -> None:
    """The leader was paused past its renew deadline (not past its lease: nobody took over), then ran again:
    the worker, continuing, sees it does not lead; the elector's next round renews the Lease it still holds
    and starts a new term."""
    assert controller.elector is not None
    clock.now += controller.options.renew_deadline + 0.5
    assert not controller.is_leader()
    controller.elector.round()
    assert controller.is_leader()


def seen(controller: Controller, key: str, *ips: str) -> None:
    wait_until(
        lambda: (svc := controller.services.get(key)) is not None and lb_ips(svc) == list(ips),
        what=f"{key} showing {list(ips)} in the watched copy",
    )


def test_a_key_queued_before_a_regained_terms_resync_is_not_handled_with_the_old_allocator(
    env: Env, leading: tuple[Controller, Clock]
) -> None:
    """Regression: a leader whose leadership lapsed and came back handled the keys queued meanwhile with the
    allocator of its previous term, before the new term's resync, so an address another replica gave out
    during the lapse was given out again."""
    controller, clock = leading
    # Paused: the watches keep queueing (web, then other) while another replica leads for a while and gives
    # the address to `other`.
    env.svc("web")
    seen(controller, f"{env.ns}/web")
    env.svc("other")
    env.show("other", ADDRESS)
    seen(controller, f"{env.ns}/other", ADDRESS)
    lapse(controller, clock)
    drain(controller)  # web's key first, then other's, then the new term's resync
    assert env.holders(ADDRESS) == ["other"]
    assert env.ips("web") == []


class PausedStore:
    """The worker's watched copy of the Services; the first read of `key` runs `pause` (the worker stopped
    there, between reading the Service and writing its decision)."""

    def __init__(self, store: Any, key: str, pause: Any) -> None:
        self.store, self.key, self.pause = store, key, pause

    def get(self, key: str) -> dict[str, Any] | None:
        obj = self.store.get(key)
        if key == self.key and self.pause is not None:
            pause, self.pause = self.pause, None
            pause()
        return obj  # type: ignore[no-any-return]

    def observe(self, obj: dict[str, Any]) -> None:
        self.store.observe(obj)


def test_a_write_decided_in_a_term_that_ended_is_not_sent(
    env: Env, leading: tuple[Controller, Clock]
) -> None:
    """Regression: the guard before each write asked only whether this replica leads now; a worker paused
    between reading a Service and writing its decision, while its leadership lapsed and came back (and another
    replica gave the address out meanwhile), wrote the decision of the previous term's allocator."""
    controller, clock = leading
    env.svc("web")
    key = f"{env.ns}/web"
    seen(controller, key)

    def pause() -> None:
        env.svc("other")
        env.show("other", ADDRESS)
        lapse(controller, clock)

    store = controller.sync.services
    controller.sync.services = PausedStore(store, key, pause)
    try:
        drain(controller)  # web: decided with the first term's allocator, written (or not) in the second
    finally:
        controller.sync.services = store
    drain(controller)
    assert env.holders(ADDRESS) == ["other"]
    assert env.ips("web") == []


def test_stopping_while_the_worker_may_have_a_write_in_flight_does_not_hand_the_lease_back(
    env: Env, leading: tuple[Controller, Clock]
) -> None:
    """Regression: stop() handed the Lease back once it had waited `timeout` for the worker, even when the
    worker was still in a write (an API server slower than the timeout): another replica took over at once,
    restored from a list without that write, and the write could land after it (one address on two
    Services). A write is bounded to end before the Lease can be taken over without a release, so stop()
    leaves it to expire instead."""
    controller, _ = leading
    assert controller.elector is not None
    env.svc("web")
    key = f"{env.ns}/web"
    in_write, let_go = threading.Event(), threading.Event()

    def pause() -> None:
        in_write.set()
        let_go.wait()

    store = controller.sync.services
    controller.sync.services = PausedStore(store, key, pause)
    controller._worker = threading.Thread(target=controller._work, daemon=True)
    controller._worker.start()
    try:
        controller.queue.add(key)
        in_write.wait()
        controller.stop(timeout=0.1)
    finally:
        let_go.set()
        controller._worker.join()
        controller.sync.services = store
    lease = env.cluster.client.get(LEASES, controller.options.lease_name, env.config_ns)
    assert lease["spec"]["holderIdentity"] == controller.options.identity
    assert env.ips("web") == []  # the worker's write, decided before stop(), was not sent after it


def test_stopping_with_no_write_in_flight_hands_the_lease_back(
    env: Env, leading: tuple[Controller, Clock]
) -> None:
    controller, _ = leading
    controller.stop(timeout=5)
    lease = env.cluster.client.get(LEASES, controller.options.lease_name, env.config_ns)
    assert not lease["spec"].get("holderIdentity")
