"""The controller against a real API server: annotations, classes, release, restore, pool changes, bad
configuration, namespace selectors, write conflicts and writes the API server refuses.

Each test runs a controller in a thread of the test process, on the session's control plane, with a
loadBalancerClass of its own so tests never see each other's Services.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _controller_support import (
    Cluster,
    ServiceEnv,
    controller_rules,
    lb_ips,
    legacy_config,
    running_controller,
    service,
    wait_until,
)
from prometheus_client import generate_latest

from metallb_py.controller import Controller
from metallb_py.controller.configreport import (
    CONFIGURATION_WARNING,
    CONFIGURATION_WARNINGS,
    INVALID_CONFIGURATION,
    POOL_RECONCILER_VALID,
)
from metallb_py.controller.poolstatus import MAX_INT64
from metallb_py.controller.sync import WRITE_REFUSED
from metallb_py.k8s.resources import (
    CONFIGURATION_STATES,
    IP_ADDRESS_POOLS,
    L2_ADVERTISEMENTS,
    NAMESPACES,
    SERVICES,
)
from metallb_py.testing import ControlPlaneUnavailableError, LocalControlPlane, ensure_kubernetes_binaries

pytestmark = pytest.mark.integration

POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"


class Env(ServiceEnv):
    def get(self, name: str) -> dict[str, Any]:
        svc = self.cluster.get_service(self.ns, name)
        assert svc is not None, name
        return svc

    def wait_ips(self, name: str, expected: list[str] | None = None, timeout: float = 30) -> list[str]:
        if expected is None:
            return wait_until(lambda: self.ips(name), timeout, what=f"{name} to get an address")
        wait_until(lambda: self.ips(name) == expected, timeout, what=f"{name} to show {expected}")
        return expected

    def wait_event(self, name: str, reason: str, namespace: str | None = None) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            events = self.cluster.events(namespace or self.ns, name)
            return next((e for e in events if e["reason"] == reason), None)

        event = wait_until(find, 30, what=f"a {reason} event on {name}")
        assert event is not None
        return event

    def controller(self, **options: Any) -> Any:
        options.setdefault("lb_class", self.lb_class)
        return running_controller(self.cluster, self.config_ns, **options)


@pytest.fixture
def env(cluster: Cluster) -> Env:
    return Env(cluster)


def metric(controller: Controller, name: str) -> float:
    for line in generate_latest(controller.metrics.registry).decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rpartition(" ")[2])
    raise KeyError(name)


def test_annotations_and_requested_addresses(env: Env) -> None:
    env.cluster.apply_pool(env.config_ns, "auto", "10.20.0.1-10.20.0.10")
    env.cluster.apply_pool(env.config_ns, "manual", "10.20.1.0/29", autoAssign=False)
    shared = {"metallb.io/allow-shared-ip": "k", "metallb.io/loadBalancerIPs": "10.20.0.10"}
    with env.controller():
        env.svc("plain")
        env.svc("pool", annotations={"metallb.io/address-pool": "manual"})
        env.svc("old-pool", annotations={"metallb.universe.tf/address-pool": "manual"})
        env.svc("ips", annotations={"metallb.io/loadBalancerIPs": "10.20.1.5"})
        env.svc("old-ips", annotations={"metallb.universe.tf/loadBalancerIPs": "10.20.1.6"})
        env.svc("spec-ip", loadBalancerIP="10.20.0.9")
        env.svc("share-http", annotations=shared)
        env.svc("share-https", annotations=shared, ports=((443, "TCP"),))
        env.svc(
            "share-dns",
            annotations={
                "metallb.universe.tf/allow-shared-ip": "k",
                "metallb.io/loadBalancerIPs": "10.20.0.10",
            },
            ports=((53, "UDP"),),
        )
        env.svc("prefer-dual", ipFamilyPolicy="PreferDualStack")
        env.svc("bad", annotations={"metallb.io/loadBalancerIPs": "banana"})

        env.wait_ips("plain", ["10.20.0.1"])
        env.wait_ips("pool", ["10.20.1.0"])
        env.wait_ips("old-pool", ["10.20.1.1"])
        env.wait_ips("ips", ["10.20.1.5"])
        env.wait_ips("old-ips", ["10.20.1.6"])
        env.wait_ips("spec-ip", ["10.20.0.9"])
        for name in ("share-http", "share-https", "share-dns"):
            env.wait_ips(name, ["10.20.0.10"])
        # The API server gives a PreferDualStack Service only IPv4 on this single-stack cluster.
        assert env.get("prefer-dual")["spec"]["ipFamilies"] == ["IPv4"]
        env.wait_ips("prefer-dual", ["10.20.0.2"])

        wait_until(
            lambda: env.get("pool")["metadata"].get("annotations", {}).get(POOL_ANNOTATION) == "manual"
        )
        assert env.get("plain")["metadata"]["annotations"][POOL_ANNOTATION] == "auto"
        failed = env.wait_event("bad", "AllocationFailed")
        assert failed["type"] == "Warning"
        assert '"banana" is not an IP address' in failed["message"]
        assert env.ips("bad") == []
        allocated = env.wait_event("plain", "IPAllocated")
        assert allocated["type"] == "Normal"
        assert allocated["message"] == "Assigned 10.20.0.1 from pool auto"
        assert allocated["source"]["component"] == "metallb-controller"


def test_only_services_of_its_class_are_served(env: Env) -> None:
    env.cluster.apply_pool(env.config_ns, "auto", "10.21.0.1-10.21.0.10")
    with env.controller():
        env.svc("ours")
        env.svc("classless", lb_class=None)
        env.svc("theirs", lb_class="example.com/someone-else")
        env.cluster.create_service(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "cluster-ip", "namespace": env.ns},
                "spec": {"ports": [{"port": 80}]},
            }
        )
        env.wait_ips("ours", ["10.21.0.1"])
        env.svc("ours-too")
        env.wait_ips("ours-too", ["10.21.0.2"])  # processed after the others: they were skipped, not slow
        for name in ("classless", "theirs", "cluster-ip"):
            svc = env.get(name)
            assert lb_ips(svc) == []
            assert POOL_ANNOTATION not in (svc["metadata"].get("annotations") or {})
            assert env.cluster.events(env.ns, name) == []


def test_release_on_delete_and_on_type_change(env: Env) -> None:
    env.cluster.apply_pool(env.config_ns, "two", "10.22.0.1-10.22.0.2")
    with env.controller() as controller:
        env.svc("a")
        env.wait_ips("a", ["10.22.0.1"])
        env.svc("b")
        env.wait_ips("b", ["10.22.0.2"])
        env.svc("c")
        env.wait_event("c", "AllocationFailed")
        assert env.ips("c") == []

        env.cluster.delete_service(env.ns, "a")
        env.wait_ips("c", ["10.22.0.1"])  # the freed address goes to the waiting Service

        # Type change: the API server drops the status; we release the address and remove our annotation.
        b = env.get("b")
        ports = [{k: v for k, v in p.items() if k != "nodePort"} for p in b["spec"]["ports"]]
        env.cluster.client.patch(
            SERVICES,
            "b",
            {"spec": {"type": "ClusterIP", "ports": ports, "loadBalancerClass": None}},
            env.ns,
        )
        cleared = env.wait_event("b", "ClearAssignment")
        assert "Released 10.22.0.2" in cleared["message"]
        wait_until(lambda: POOL_ANNOTATION not in (env.get("b")["metadata"].get("annotations") or {}))
        assert env.ips("b") == []
        env.svc("d")
        env.wait_ips("d", ["10.22.0.2"])
        wait_until(lambda: metric(controller, 'metallb_allocator_addresses_in_use_total{pool="two"}') == 2)
        assert metric(controller, 'metallb_allocator_addresses_total{pool="two"}') == 2


def test_addresses_shown_at_start_are_kept_and_never_reused(env: Env) -> None:
    env.cluster.apply_pool(env.config_ns, "p", "10.23.0.1-10.23.0.4")
    # As a previous run left them: one Service showing .3, one showing an address outside every pool.
    for name, ip in (("kept", "10.23.0.3"), ("outside", "192.0.2.77")):
        env.svc(name)
        status = {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
        env.cluster.client.patch(SERVICES, name, status, env.ns, subresource="status")
    with env.controller() as controller:
        assert controller.ready.wait(30)
        env.svc("new-1")
        env.svc("new-2")
        env.svc("new-3")
        env.wait_event("new-3", "AllocationFailed")
        assert env.ips("kept") == ["10.23.0.3"]  # not moved to .1
        # Created first, so reconciled first: "outside" moved to .1; the new ones skip .3.
        assert env.ips("outside") == ["10.23.0.1"]
        assert [env.ips(f"new-{i}") for i in (1, 2, 3)] == [["10.23.0.2"], ["10.23.0.4"], []]
        assert env.get("kept")["metadata"]["annotations"][POOL_ANNOTATION] == "p"


def test_a_shrinking_pool_moves_only_the_services_outside_it(env: Env) -> None:
    env.cluster.apply_pool(env.config_ns, "p", "10.24.0.1-10.24.0.4")
    with env.controller():
        for i in range(4):
            env.svc(f"s{i}")
            env.wait_ips(f"s{i}", [f"10.24.0.{i + 1}"])
        versions = {i: env.get(f"s{i}")["metadata"]["resourceVersion"] for i in range(2)}
        env.cluster.apply_pool(env.config_ns, "p", "10.24.0.1-10.24.0.2", "10.24.0.10-10.24.0.11")
        env.wait_ips("s2", ["10.24.0.10"])
        env.wait_ips("s3", ["10.24.0.11"])
        # The others were not written to at all.
        assert {i: env.get(f"s{i}")["metadata"]["resourceVersion"] for i in range(2)} == versions
        wait_until(
            lambda: any(
                e["message"] == "Assigned 10.24.0.10 from pool p (was 10.24.0.3)"
                for e in env.cluster.events(env.ns, "s2")
            ),
            what="an IPAllocated event saying where s2 moved from",
        )


def test_a_bad_configmap_edit_moves_nothing_and_says_why(env: Env) -> None:
    ns = env.config_ns
    env.cluster.apply_configmap(ns, legacy_config("10.25.0.1-10.25.0.5"))
    with env.controller() as controller:
        for i in range(3):
            env.svc(f"s{i}")
        for i in range(3):
            env.wait_ips(f"s{i}", [f"10.25.0.{i + 1}"])
        before = env.cluster.ips_by_service(env.ns)
        assert metric(controller, "metallb_k8s_client_config_loaded_bool") == 1

        good = legacy_config("10.25.0.1-10.25.0.5")
        edits = {
            # Would shrink the pool to one address, but a key is misspelt: refused as a whole.
            "unknown field": (
                good.replace("addresses:\n  - 10.25.0.1-10.25.0.5", "adresses: [10.25.0.1/32]"),
                "adresses",
            ),
            "invalid YAML": ("address-pools: [\n", "YAML"),
            "overlap": (
                good + "- name: other\n  protocol: layer2\n  addresses: [10.25.0.4/32]\n",
                "overlaps",
            ),
        }
        for label, (text, why) in edits.items():
            env.cluster.apply_configmap(ns, text)

            def refused(why: str = why) -> dict[str, Any] | None:
                events = env.cluster.events(ns, "config")
                return next(
                    (e for e in events if e["reason"] == "InvalidConfiguration" and why in e["message"]), None
                )

            event = wait_until(refused, 30, what=f"a Warning about the {label}")
            assert event is not None and event["type"] == "Warning"
            assert event["involvedObject"]["kind"] == "ConfigMap"
            assert "the last valid one stays in force" in event["message"]
            state = env.cluster.client.get(CONFIGURATION_STATES, "controller", ns)
            assert state["status"]["result"] == "Invalid"
            assert why in state["status"]["errorSummary"]
            assert metric(controller, "metallb_k8s_client_config_loaded_bool") == 0
            assert metric(controller, "metallb_k8s_client_config_stale_bool") == 1
            assert env.cluster.ips_by_service(env.ns) == before, label

        # The last good configuration still serves new Services.
        env.svc("while-stale")
        env.wait_ips("while-stale", ["10.25.0.4"])

        env.cluster.apply_configmap(ns, legacy_config("10.25.0.1-10.25.0.5"))
        wait_until(lambda: metric(controller, "metallb_k8s_client_config_loaded_bool") == 1)
        assert metric(controller, "metallb_k8s_client_config_stale_bool") == 0
        wait_until(
            lambda: (
                env.cluster.client.get(CONFIGURATION_STATES, "controller", ns)["status"]["result"] == "Valid"
            )
        )
        state = env.cluster.client.get(CONFIGURATION_STATES, "controller", ns)["status"]
        assert state["errorSummary"] == ""
        assert env.cluster.ips_by_service(env.ns) == {**before, "while-stale": ["10.25.0.4"]}


def test_namespace_labels_select_pools(env: Env) -> None:
    selector = {"namespaceSelectors": [{"matchLabels": {"team": "blue"}}]}
    env.cluster.apply_pool(env.config_ns, "blue", "10.26.0.1-10.26.0.2", serviceAllocation=selector)
    with env.controller():
        env.svc("web")
        env.wait_event("web", "AllocationFailed")
        assert env.ips("web") == []
        env.cluster.client.patch(NAMESPACES, env.ns, {"metadata": {"labels": {"team": "blue"}}})
        env.wait_ips("web", ["10.26.0.1"])


def requests(controller: Controller, verb: str, resource: str = "services") -> int:
    return controller.raw_client.requests.snapshot().get((verb, resource), 0)


def test_a_write_conflict_is_retried_after_reading_again(env: Env) -> None:
    """The controller decides on its watched copy; when that copy is stale, the write's resourceVersion
    precondition fails (409) and it reads the Service again and decides again, keeping the other change.

    Its account may list Services but not watch them, so its copy stays as first listed; the Service
    changes after that list, and only then does the configuration (watched) let the controller write."""
    account = env.cluster.account(controller_rules(service_verbs=("get", "list", "patch")))
    env.svc("web")
    with env.controller(client=account.connect()) as controller:
        wait_until(controller.services.synced.is_set, what="the Services to be listed")
        env.cluster.client.patch(SERVICES, "web", {"metadata": {"labels": {"touched": "yes"}}}, env.ns)
        stale = controller.services.get(f"{env.ns}/web")
        assert stale is not None and "labels" not in stale["metadata"]  # its copy is the listed one
        env.cluster.apply_pool(env.config_ns, "p", "10.27.0.1-10.27.0.2")
        env.wait_ips("web", ["10.27.0.1"])
        svc = env.get("web")
        assert svc["metadata"]["labels"] == {"touched": "yes"}  # their change is kept
        assert svc["metadata"]["annotations"][POOL_ANNOTATION] == "p"
        assert requests(controller, "get") == 1  # one re-read, after the one conflict
        assert metric(controller, "metallb_k8s_client_update_errors_total") == 0  # not a retry


def test_a_write_the_api_server_refuses_is_reported_once_and_not_retried(env: Env) -> None:
    """A 403 is permanent: one Warning Event, then the Service is left alone until it changes, not retried
    with backoff forever. Granted the right, a change to the Service brings it back."""
    env.cluster.apply_pool(env.config_ns, "p", "10.29.0.1-10.29.0.4")
    account = env.cluster.account(controller_rules(write_status=False))
    with env.controller(client=account.connect()) as controller:
        assert controller.ready.wait(30)
        env.svc("web")
        refused = env.wait_event("web", WRITE_REFUSED)
        assert refused["type"] == "Warning"
        assert "403" in refused["message"] and "services/status" in refused["message"]
        wait_until(controller.queue.idle, what="the worker to leave web alone")  # nothing scheduled
        assert requests(controller, "patch") == 1

        # The worker goes on with other Services meanwhile; web is not tried again.
        env.svc("later")
        env.wait_event("later", WRITE_REFUSED)
        wait_until(controller.queue.idle, what="the worker to leave later alone")
        assert requests(controller, "patch") == 2
        assert metric(controller, "metallb_py_controller_permanent_errors_total") == 2
        assert metric(controller, "metallb_k8s_client_update_errors_total") == 0
        events = [e for e in env.cluster.events(env.ns, "web") if e["reason"] == WRITE_REFUSED]
        assert [e["count"] for e in events] == [1]
        assert env.ips("web") == []

        account.grant(controller_rules())
        wait_until(lambda: account.can("patch", "services/status", env.ns), what="the grant in force")
        env.cluster.client.patch(SERVICES, "web", {"metadata": {"labels": {"fixed": "rbac"}}}, env.ns)
        env.wait_ips("web", ["10.29.0.1"])
        wait_until(lambda: POOL_ANNOTATION in (env.get("web")["metadata"].get("annotations") or {}))
        wait_until(controller.queue.idle, what="the worker to finish web")
        assert requests(controller, "patch") == 4  # web's status and annotation; later not tried again
        assert env.ips("later") == []


def test_nothing_is_allocated_before_every_service_was_listed(env: Env) -> None:
    """Regression: a configuration seen before the Services were listed must not start allocation, or a new
    Service listed first would take the address an older one still shows.

    The controller's account may not list Services at first: it leads and has its configuration, and the
    Services' list keeps being refused until the test grants it."""
    env.cluster.apply_pool(env.config_ns, "p", "10.28.0.1-10.28.0.4")
    env.svc("z-old")
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "10.28.0.1"}]}}}
    env.cluster.client.patch(SERVICES, "z-old", status, env.ns, subresource="status")
    env.svc("a-new")
    account = env.cluster.account(controller_rules(service_verbs=("get", "patch")))
    with env.controller(client=account.connect()) as controller:
        wait_until(
            lambda: all(r.synced.is_set() for r in controller.config_watch.reflectors),
            what="the configuration to be listed",
        )
        wait_until(lambda: requests(controller, "list") >= 2, what="the Services' list refused twice")
        assert controller.is_leader()
        assert not controller.services.synced.is_set()
        assert not controller.ready.is_set()
        assert requests(controller, "patch") == 0

        account.grant(controller_rules())
        env.wait_ips("a-new", ["10.28.0.2"])
        assert env.ips("z-old") == ["10.28.0.1"]
        env.wait_event("a-new", "IPAllocated")
        assert controller.events.flush(10)
        # Never shown the old Service's address, not even for a moment.
        messages = [e["message"] for e in env.cluster.events(env.ns, "a-new") if e["reason"] == "IPAllocated"]
        assert messages == ["Assigned 10.28.0.2 from pool p"]


# -- IPAddressPool status counters ---------------------------------------------------------------------------


def pool_status(cluster: Cluster, namespace: str, name: str) -> dict[str, int] | None:
    status = cluster.client.get(IP_ADDRESS_POOLS, name, namespace).get("status")
    return dict(status) if status else None


def counters(assigned_v4: int, assigned_v6: int, available_v4: int, available_v6: int) -> dict[str, int]:
    return {
        "assignedIPv4": assigned_v4,
        "assignedIPv6": assigned_v6,
        "availableIPv4": available_v4,
        "availableIPv6": available_v6,
    }


def wait_pool_status(cluster: Cluster, namespace: str, name: str, expected: dict[str, int]) -> None:
    wait_until(
        lambda: pool_status(cluster, namespace, name) == expected,
        what=f"pool {name} to show {expected}",
    )


@pytest.fixture(scope="module")
def dual_stack_cluster() -> Iterator[Cluster]:
    """A control plane of this module's own whose Services may be dual-stack."""
    try:
        ensure_kubernetes_binaries()
    except ControlPlaneUnavailableError as exc:
        pytest.skip(f"no local Kubernetes control plane: {exc}")
    cp = LocalControlPlane(service_cluster_ip_range="10.96.0.0/20,fd00:10:96::/112")
    cp.start()
    cluster = Cluster(cp)
    try:
        yield cluster
    finally:
        cluster.cleanup()
        cp.stop()


def test_pool_status_counts_follow_services_per_family(dual_stack_cluster: Cluster) -> None:
    """MetalLB's counters: assigned and available addresses per family, written as Services come and go; a
    /64 never runs out (available: the largest int64 less what is assigned)."""
    cluster = dual_stack_cluster
    config_ns, ns = cluster.namespace("mlb"), cluster.namespace("svc")
    cluster.apply_pool(config_ns, "dual", "192.0.2.0/29", "2001:db8::/125")
    cluster.apply_pool(config_ns, "huge", "2001:db8:1::/64", autoAssign=False)
    with running_controller(cluster, config_ns) as controller:
        wait_pool_status(cluster, config_ns, "dual", counters(0, 0, 8, 8))
        wait_pool_status(cluster, config_ns, "huge", counters(0, 0, 0, MAX_INT64))

        cluster.create_service(service("v4", ns))
        wait_pool_status(cluster, config_ns, "dual", counters(1, 0, 7, 8))
        both = service("both", ns, ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])
        cluster.create_service(both)
        wait_pool_status(cluster, config_ns, "dual", counters(2, 1, 6, 7))
        assert lb_ips(cluster.get_service(ns, "both")) == ["192.0.2.1", "2001:db8::"]
        pinned = {"metallb.io/address-pool": "huge"}
        cluster.create_service(service("v6", ns, annotations=pinned, ipFamilies=["IPv6"]))
        wait_pool_status(cluster, config_ns, "huge", counters(0, 1, 0, MAX_INT64 - 1))

        cluster.delete_service(ns, "both")
        wait_pool_status(cluster, config_ns, "dual", counters(1, 0, 7, 8))
        cluster.delete_service(ns, "v6")
        wait_pool_status(cluster, config_ns, "huge", counters(0, 0, 0, MAX_INT64))

        # Someone else's write to the status is put right, without a configuration reload.
        wait_until(controller.queue.idle, what="the worker to be done")
        reloads = metric(controller, "metallb_py_controller_config_reloads_total")
        cluster.client.patch(
            IP_ADDRESS_POOLS, "dual", {"status": counters(9, 9, 9, 9)}, config_ns, subresource="status"
        )
        wait_pool_status(cluster, config_ns, "dual", counters(1, 0, 7, 8))
        wait_until(controller.queue.idle, what="the worker to be done")
        assert metric(controller, "metallb_py_controller_config_reloads_total") == reloads
        # A pool deleted and created again gets its status again.
        cluster.client.delete(IP_ADDRESS_POOLS, "huge", config_ns)
        cluster.apply_pool(config_ns, "huge", "2001:db8:1::/64", autoAssign=False)
        wait_pool_status(cluster, config_ns, "huge", counters(0, 0, 0, MAX_INT64))
        assert metric(controller, "metallb_k8s_client_config_loaded_bool") == 1


def test_a_burst_of_services_costs_one_status_write_per_pool(env: Env) -> None:
    """Services already waiting when the controller starts are allocated in one pass: the counters are
    published when the worker has no key left, so 20 allocations are one status write."""
    env.cluster.apply_pool(env.config_ns, "burst", "198.51.100.0/27")
    for i in range(20):
        env.svc(f"s{i:02}")
    with env.controller(pool_status_interval=3600.0) as controller:
        wait_pool_status(env.cluster, env.config_ns, "burst", counters(20, 0, 12, 0))
        assert sorted(ip for ips in env.cluster.ips_by_service(env.ns).values() for ip in ips) == sorted(
            f"198.51.100.{i}" for i in range(20)
        )
        assert metric(controller, "metallb_py_controller_pool_status_writes_total") == 1
        assert requests(controller, "patch", "ipaddresspools.metallb.io") == 1


def test_a_refused_status_write_never_holds_allocation_back(env: Env) -> None:
    """Without the right to write IPAddressPool status (403) Services still get addresses; granted it, the
    next change of the counters is written."""
    env.cluster.apply_pool(env.config_ns, "p", "198.51.100.0/30")
    config_kinds = ["ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers", "communities"]
    rules = [r for r in controller_rules() if r["apiGroups"] != ["metallb.io"]] + [
        {
            "apiGroups": ["metallb.io"],
            "resources": [*config_kinds, "bfdprofiles"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["metallb.io"],
            "resources": ["configurationstates", "configurationstates/status"],
            "verbs": ["*"],
        },
    ]
    account = env.cluster.account(rules)
    with env.controller(client=account.connect()) as controller:
        env.svc("a")
        env.wait_ips("a", ["198.51.100.0"])
        env.svc("b")
        env.wait_ips("b", ["198.51.100.1"])
        wait_until(lambda: requests(controller, "patch", "ipaddresspools.metallb.io") >= 1)
        assert pool_status(env.cluster, env.config_ns, "p") is None

        rules.append(
            {"apiGroups": ["metallb.io"], "resources": ["ipaddresspools/status"], "verbs": ["patch"]}
        )
        account.grant(rules)
        wait_until(
            lambda: account.can("patch", "ipaddresspools.metallb.io", env.config_ns, subresource="status"),
            what="the grant in force",
        )
        env.cluster.delete_service(env.ns, "a")
        wait_pool_status(env.cluster, env.config_ns, "p", counters(1, 0, 3, 0))


# -- configuration warnings ----------------------------------------------------------------------------------


def l2_advertisement(namespace: str, name: str, *pools: str) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ipAddressPools": list(pools)},
    }


def condition(state: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in state["status"]["conditions"] if c["type"] == kind)


def test_configuration_warnings_show_in_events_and_the_configuration_state(env: Env) -> None:
    ns, client = env.config_ns, env.cluster.client
    env.cluster.apply_pool(ns, "a", "192.0.2.5/28")  # host bits: MetalLB uses 192.0.2.0/28
    client.create(L2_ADVERTISEMENTS, l2_advertisement(ns, "adv", "a", "later"), ns)  # "later": not yet
    with env.controller() as controller:
        env.svc("web")
        env.wait_ips("web", ["192.0.2.0"])
        host_bits = env.wait_event("a", CONFIGURATION_WARNING, ns)
        assert host_bits["type"] == "Warning"
        assert host_bits["involvedObject"]["kind"] == "IPAddressPool"
        assert '"192.0.2.5/28" has host bits set' in host_bits["message"]
        unknown = env.wait_event("adv", CONFIGURATION_WARNING, ns)
        assert unknown["involvedObject"]["kind"] == "L2Advertisement" and '"later"' in unknown["message"]

        state = client.get(CONFIGURATION_STATES, "controller", ns)
        assert state["metadata"]["labels"] == {"metallb.io/component-type": "controller"}
        assert (state["status"]["result"], state["status"]["errorSummary"]) == ("Valid", "")
        assert condition(state, POOL_RECONCILER_VALID)["status"] == "True"
        warned = condition(state, CONFIGURATION_WARNINGS)
        assert (warned["status"], warned["reason"]) == ("True", "AcceptedWithWarnings")
        assert len(warned["message"].splitlines()) == 2
        assert metric(controller, "metallb_py_controller_config_warnings") == 2

        # A reload of the same configuration tells nothing again.
        reloads = metric(controller, "metallb_py_controller_config_reloads_total")
        client.patch(L2_ADVERTISEMENTS, "adv", {"metadata": {"annotations": {"touched": "yes"}}}, ns)
        wait_until(lambda: metric(controller, "metallb_py_controller_config_reloads_total") > reloads)
        wait_until(lambda: controller.events.flush(0.1), what="the queued Events to be sent")
        for name in ("a", "adv"):
            events = [e for e in env.cluster.events(ns, name) if e["reason"] == CONFIGURATION_WARNING]
            assert [e["count"] for e in events] == [1], name

        # Written as intended, the warnings go; nothing moves.
        env.cluster.apply_pool(ns, "a", "192.0.2.0/28")
        env.cluster.apply_pool(ns, "later", "198.51.100.0/28")
        wait_until(
            lambda: (
                condition(client.get(CONFIGURATION_STATES, "controller", ns), CONFIGURATION_WARNINGS)[
                    "status"
                ]
                == "False"
            ),
            what="the warnings to clear",
        )
        assert metric(controller, "metallb_py_controller_config_warnings") == 0
        assert env.ips("web") == ["192.0.2.0"]


def test_strict_refuses_a_warning_and_keeps_the_last_good_configuration(env: Env) -> None:
    ns, client = env.config_ns, env.cluster.client
    env.cluster.apply_pool(ns, "a", "192.0.2.0/28")
    with env.controller(strict=True) as controller:
        env.svc("web")
        env.wait_ips("web", ["192.0.2.0"])
        env.cluster.apply_pool(ns, "a", "192.0.2.5/29")  # would shrink the pool, and has host bits
        refused = env.wait_event("a", INVALID_CONFIGURATION, ns)
        assert refused["involvedObject"]["kind"] == "IPAddressPool"
        assert "strict" in refused["message"] and "the last valid one stays in force" in refused["message"]
        state = client.get(CONFIGURATION_STATES, "controller", ns)
        assert state["status"]["result"] == "Invalid" and "192.0.2.5/29" in state["status"]["errorSummary"]
        invalid = condition(state, POOL_RECONCILER_VALID)
        assert (invalid["status"], invalid["reason"]) == ("False", "ConfigurationError")
        assert metric(controller, "metallb_k8s_client_config_stale_bool") == 1
        assert env.cluster.events(ns, "a") and not [
            e for e in env.cluster.events(ns, "a") if e["reason"] == CONFIGURATION_WARNING
        ]
        # The last good pool (a /28) still serves: the ninth address is outside the refused /29.
        for i in range(1, 9):
            env.svc(f"s{i}")
        env.wait_ips("s8", ["192.0.2.8"])
        assert env.ips("web") == ["192.0.2.0"]
