"""The controller survives what production throws at it: SIGKILL at random points during a bulk create,
an API server restart, and the death of the leader among two replicas.

The controllers here are child processes (`python -m metallb_py.cli controller`), so they can be killed
for real; the API server restart uses an in-process controller. Measured times are printed, not asserted
beyond generous bounds.
"""

from __future__ import annotations

import ipaddress
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _controller_support import (
    Cluster,
    ControllerProcess,
    lb_ips,
    running_controller,
    service,
    unique,
    wait_until,
)

from metallb_py.k8s.resources import LEASES

pytestmark = pytest.mark.integration

# Short leases keep the tests quick; the ratios are client-go's defaults (15 s / 10 s / 2 s).
POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"
FAST_LEASE = ("--lease-duration=3", "--renew-deadline=2", "--retry-period=0.4")


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n[measured] {text}", flush=True)


def duplicates(services: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(ip for svc in services for ip in lb_ips(svc))
    return {ip: n for ip, n in counts.items() if n > 1}


def lease_holder(cluster: Cluster, namespace: str, name: str = "metallb-controller") -> str:
    try:
        return str(cluster.client.get(LEASES, name, namespace)["spec"].get("holderIdentity") or "")
    except Exception:
        return ""


def test_sigkill_at_random_points_during_a_bulk_create(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n, kills = 500, 10
    seed = int(os.environ.get("METALLB_PY_KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    config_ns, ns = cluster.namespace("mlb"), cluster.namespace("bulk")
    lb_class = f"metallb-py.test/{unique('kill')}"
    # Exactly n addresses: a leaked or doubly given address leaves a Service pending at the end.
    cluster.apply_pool(config_ns, "bulk", "10.60.0.1-10.60.1.244")
    controller = ControllerProcess(
        cluster.cp, config_ns, tmp_path / "controller.log", f"--lb-class={lb_class}", identity="killable"
    ).start()
    started = time.monotonic()
    created = threading.Event()
    errors: list[BaseException] = []

    def create_all() -> None:
        try:
            # About 40 a second in batches, so the kills land before, during and after the creates.
            for batch in range(0, n, 20):
                cluster.create_services(
                    [service(f"s{i:03d}", ns, lb_class=lb_class) for i in range(batch, batch + 20)], threads=4
                )
                time.sleep(0.3)
        except BaseException as exc:
            errors.append(exc)
        finally:
            created.set()

    creator = threading.Thread(target=create_all)
    creator.start()
    snapshots = []
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.3, 2.5))
            controller.kill()
            # While it is dead the API holds still: no address may be shown twice, ever.
            services = cluster.services(ns)
            assigned = sum(1 for s in services if lb_ips(s))
            snapshots.append((len(services), assigned))
            assert duplicates(services) == {}, controller.tail()
            controller.start()
        creator.join(120)
        assert not errors, errors

        def all_assigned() -> list[dict[str, Any]]:  # empty (falsy) until every one has an address
            services = cluster.services(ns)
            return services if len(services) == n and all(lb_ips(s) for s in services) else []

        def all_annotated() -> list[dict[str, Any]]:
            services = cluster.services(ns)
            annotated = all(POOL_ANNOTATION in (s["metadata"].get("annotations") or {}) for s in services)
            return services if annotated else []

        final = wait_until(
            all_assigned, timeout=180, interval=0.5, what=f"all {n} Services to get an address"
        )
        elapsed = time.monotonic() - started
        assert duplicates(final) == {}
        ips = {ip for svc in final for ip in lb_ips(svc)}
        assert len(ips) == n
        pool = range(int(ipaddress.ip_address("10.60.0.1")), int(ipaddress.ip_address("10.60.1.244")) + 1)
        assert all(int(ipaddress.ip_address(ip)) in pool for ip in ips)
        annotated = wait_until(all_annotated, timeout=60, what="every pool annotation")
        assert {s["metadata"]["annotations"][POOL_ANNOTATION] for s in annotated} == {"bulk"}
        # Up (serving metrics) before the clean stop: SIGTERM during the start-up imports just kills it.
        wait_until(lambda: _metric(controller, "metallb_py_controller_leader_bool") == 1, 30)
        assert controller.terminate() == 0
    finally:
        controller.kill()
        created.wait(120)
    report(
        capsys,
        f"SIGKILL test (seed {seed}): {kills} kills during the create of {n} Services; "
        f"(created, assigned) at each kill: {snapshots}; no duplicate in any snapshot; all {n} assigned, "
        f"distinct, {elapsed:.1f} s from the first create",
    )


def test_watches_resume_after_an_api_server_restart(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    config_ns, ns = cluster.namespace("mlb"), cluster.namespace("restart")
    lb_class = f"metallb-py.test/{unique('restart')}"
    cluster.apply_pool(config_ns, "p", "10.61.0.0/24")
    with running_controller(
        cluster,
        config_ns,
        lb_class=lb_class,
        leader_election=True,
        lease_duration=3.0,
        renew_deadline=2.0,
        retry_period=0.4,
    ) as controller:
        cluster.create_services([service(f"before-{i}", ns, lb_class=lb_class) for i in range(20)])
        wait_until(lambda: all(cluster.ips_by_service(ns).values()) and len(cluster.services(ns)) == 20)
        before = cluster.ips_by_service(ns)
        restarted = time.monotonic()
        cluster.cp.restart_apiserver()
        back = time.monotonic()
        cluster.create_services([service(f"after-{i}", ns, lb_class=lb_class) for i in range(20)])
        wait_until(
            lambda: len(ips := cluster.ips_by_service(ns)) == 40 and all(ips.values()),
            timeout=90,
            what="the Services created after the restart to get addresses",
        )
        recovered = time.monotonic()
        after = cluster.ips_by_service(ns)
        assert {k: v for k, v in after.items() if k.startswith("before-")} == before  # nothing moved
        assert duplicates(cluster.services(ns)) == {}
        assert controller.is_leader()
        # It did not have to start over from an empty cache: every reflector kept or rebuilt its copy.
        assert all(r.synced.is_set() for r in controller.reflectors)
    report(
        capsys,
        f"API server restart: down and up in {back - restarted:.1f} s; the 20 Services created right after "
        f"had addresses {recovered - back:.1f} s later",
    )


def test_two_replicas_one_leader_and_takeover(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_ns, ns = cluster.namespace("mlb"), cluster.namespace("ha")
    lb_class = f"metallb-py.test/{unique('ha')}"
    cluster.apply_pool(config_ns, "p", "10.62.0.0/24")
    args = (f"--lb-class={lb_class}", *FAST_LEASE)
    a = ControllerProcess(cluster.cp, config_ns, tmp_path / "a.log", *args, identity="replica-a").start()
    b: ControllerProcess | None = None
    try:
        wait_until(lambda: lease_holder(cluster, config_ns) == "replica-a", 30, what="replica-a to lead")
        b = ControllerProcess(cluster.cp, config_ns, tmp_path / "b.log", *args, identity="replica-b").start()
        wait_until(lambda: _metric(b, "metallb_py_controller_leader_bool") == 0, 30, what="replica-b up")
        cluster.create_services([service(f"s{i}", ns, lb_class=lb_class) for i in range(10)])
        wait_until(lambda: len(ips := cluster.ips_by_service(ns)) == 10 and all(ips.values()))

        # Only the leader writes; the follower watched everything but sent no write at all.
        follower = b.metrics()
        writes = [k for k in follower if k.startswith("metallb_py_k8s_client_requests_total")]
        assert all(
            follower[k] == 0 for k in writes if any(f'verb="{v}"' in k for v in ("create", "patch", "delete"))
        ), follower
        assert not any('verb="update"' in k and "services" in k for k in writes)
        leader = a.metrics()
        assert leader['metallb_py_k8s_client_requests_total{resource="services",verb="patch"}'] >= 20
        assert leader["metallb_py_controller_leader_bool"] == 1

        # The leader dies without a word: the follower takes over once the lease expires.
        killed = time.monotonic()
        a.kill()
        cluster.create_service(service("during-takeover", ns, lb_class=lb_class))
        wait_until(
            lambda: lease_holder(cluster, config_ns) == "replica-b", 30, 0.05, what="replica-b to lead"
        )
        took_over = time.monotonic()
        wait_until(lambda: cluster.ips_by_service(ns).get("during-takeover"), 30, 0.05)
        first_ip = time.monotonic()
        ips = cluster.ips_by_service(ns)
        assert len(ips) == 11 and len({ip for v in ips.values() for ip in v}) == 11

        # A clean stop hands the lease over at once.
        a = ControllerProcess(cluster.cp, config_ns, tmp_path / "a2.log", *args, identity="replica-a").start()
        wait_until(lambda: _metric(a, "metallb_py_controller_leader_bool") == 0, 30, what="replica-a back up")
        stopped = time.monotonic()
        assert b.terminate() == 0
        wait_until(lambda: lease_holder(cluster, config_ns) == "replica-a", 30, 0.05)
        handed_over = time.monotonic()
        cluster.create_service(service("after-handover", ns, lb_class=lb_class))
        wait_until(lambda: cluster.ips_by_service(ns).get("after-handover"), 30)
    finally:
        a.kill()
        if b is not None:
            b.kill()
    report(
        capsys,
        f"leader election (lease 3 s, renew deadline 2 s, retry 0.4 s): after SIGKILL of the leader, "
        f"takeover in {took_over - killed:.2f} s, the Service created meanwhile had its address "
        f"{first_ip - killed:.2f} s after the kill; after SIGTERM, handover in {handed_over - stopped:.2f} s",
    )


def _metric(process: ControllerProcess, name: str) -> float | None:
    try:
        return process.metrics().get(name)
    except OSError:
        return None
