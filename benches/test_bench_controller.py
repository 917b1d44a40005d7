"""Controller benchmarks against a real API server (a LocalControlPlane of their own), with baselines.

1. Latency, Service created -> ingress IP written, p50 and p99 over 200 Services created one after another
   (each waits for its address, so no queueing). Baseline, same session: the floor any controller faces on
   this API server: the benchmark writes the status itself right after the create, so what remains is
   the create, one write and the watch delivery. The difference is what the controller adds: noticing the
   Service, deciding, and its own writes.
2. Throughput: 1,000 Services bulk-created (8 concurrent clients) until every one shows its address: wall
   time and API requests the controller sent per Service. Baseline: the same 1,000 creates with no
   controller, i.e. the bare API write cost. The controller's wall time can never beat it; the ratio says
   how far behind the creates it finishes.

3. Restart with many Services (`METALLB_PY_BENCH_RESTART_SERVICES`, default 2,000 to keep CI under three
   minutes; the issue's figure is 10,000): `metallb-py controller` runs as a process of its own; the Services
   are bulk-created (16 concurrent clients) and assigned; the controller's resident set is read from /proc
   once it is steady; then it is stopped (SIGTERM, lease handed back) and started again, a new Service is
   created at once, and the time from the new process's start until that Service shows its address is
   measured (goal: under 2 s at 10,000), with the phases the controller's own log shows. Baseline, same
   session: the same restart before the Services exist (what imports, the lists and the lease cost alone).

All measure from the client's side: times are taken when the benchmark's own watch sees the change.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from metallb_py._core import Allocator
from metallb_py.controller import Controller, ControllerOptions
from metallb_py.controller.config import ConfigState
from metallb_py.controller.reconcile import reconcile_service, restore_assignments, service_order
from metallb_py.ipam import service_request
from metallb_py.k8s import Change, KubeClient, Reflector, connect
from metallb_py.k8s.resources import IP_ADDRESS_POOLS, NAMESPACES, SERVICES
from metallb_py.testing import ControlPlaneError, ControlPlaneUnavailableError, LocalControlPlane
from metallb_py.testing.process import NO_PROXY_ENV, ChildProcess

N_LATENCY = 200
N_BULK = 1_000
N_RESTART = int(os.environ.get("METALLB_PY_BENCH_RESTART_SERVICES", "2000"))
LOG_DIR = os.environ.get("METALLB_PY_BENCH_CONTROLLER_LOGS") or None
# A file: the controller restarted with the Services runs under cProfile (every thread) and writes its
# statistics there when it stops (read with `python -m pstats FILE`).
PROFILE = os.environ.get("METALLB_PY_BENCH_CONTROLLER_PROFILE") or None
CONFIG_NS = "metallb-system"


@pytest.fixture(scope="module")
def plane() -> Iterator[LocalControlPlane]:
    # A /16 of cluster IPs: the default /20 holds 4,094 Services, the restart bench makes up to 10,000 more.
    cp = LocalControlPlane(service_cluster_ip_range="10.96.0.0/16")
    try:
        cp.start()
    except ControlPlaneUnavailableError as exc:
        if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
            raise
        pytest.skip(f"no local Kubernetes control plane: {exc}")
    except ControlPlaneError:
        cp.stop()
        raise
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def api(plane: LocalControlPlane) -> Iterator[KubeClient]:
    client = connect(plane.kubeconfig)
    client.create(NAMESPACES, {"metadata": {"name": CONFIG_NS}})
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "bench", "namespace": CONFIG_NS},
        "spec": {"addresses": ["10.64.0.0/16"]},
    }
    client.create(IP_ADDRESS_POOLS, pool, CONFIG_NS)
    yield client
    client.close()


def namespace(client: KubeClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


def manifest(name: str, ns: str, lb_class: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": lb_class,
            "ports": [{"port": 80}],
            # The node port range holds 2,768 (and the node ports play no part here).
            "allocateLoadBalancerNodePorts": False,
        },
    }


class IngressWatcher:
    """The benchmark's own watch on one namespace: when each Service first showed an ingress IP."""

    def __init__(self, client: KubeClient, ns: str) -> None:
        self.seen: dict[str, float] = {}
        self.ips: dict[str, str] = {}
        self._cond = threading.Condition()
        self.reflector = Reflector(client, SERVICES, self._on_change, namespace=ns)

    def _on_change(self, change: Change) -> None:
        now = time.monotonic()
        ingress = ((change.obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        name = change.obj["metadata"]["name"]
        if ingress and name not in self.seen and change.type != "DELETED":
            with self._cond:
                self.seen[name] = now
                self.ips[name] = ingress[0]["ip"]
                self._cond.notify_all()

    def __enter__(self) -> IngressWatcher:
        self.reflector.start()
        assert self.reflector.synced.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.reflector.stop()

    def wait(self, name: str | None = None, count: int = 0, timeout: float = 300) -> None:
        with self._cond:
            done = self._cond.wait_for(
                lambda: (name in self.seen) if name else len(self.seen) >= count, timeout=timeout
            )
        assert done, f"timed out waiting for {name or count}"


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_controller(plane: LocalControlPlane, lb_class: str) -> tuple[Controller, KubeClient]:
    client = connect(plane.kubeconfig)
    options = ControllerOptions(namespace=CONFIG_NS, lb_class=lb_class, identity=f"bench-{lb_class[-6:]}")
    controller = Controller(client, options)
    controller.start()
    assert controller.ready.wait(60)
    return controller, client


def test_latency_created_to_ingress_ip(
    plane: LocalControlPlane, api: KubeClient, figures: dict[str, float]
) -> None:
    # Baseline: the benchmark plays an ideal controller that writes the status at once.
    ns = namespace(api, "floor")
    floor = []
    with IngressWatcher(api, ns) as watcher:
        for i in range(N_LATENCY):
            name = f"s{i}"
            started = time.monotonic()
            created = api.create(SERVICES, manifest(name, ns, "bench.metallb-py/unserved"), ns)
            body = {
                "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
                "status": {"loadBalancer": {"ingress": [{"ip": f"10.65.{i // 250}.{i % 250 + 1}"}]}},
            }
            api.patch(SERVICES, name, body, ns, subresource="status")
            watcher.wait(name)
            floor.append(watcher.seen[name] - started)

    lb_class = "bench.metallb-py/latency"
    controller, client = run_controller(plane, lb_class)
    ns = namespace(api, "latency")
    latencies = []
    try:
        with IngressWatcher(api, ns) as watcher:
            for i in range(N_LATENCY):
                name = f"s{i}"
                started = time.monotonic()
                api.create(SERVICES, manifest(name, ns, lb_class), ns)
                watcher.wait(name)
                latencies.append(watcher.seen[name] - started)
        assert len(set(watcher.ips.values())) == N_LATENCY
    finally:
        controller.stop()
        client.close()
    figures["controller latency, created -> ingress IP: p50 ms"] = percentile(latencies, 50) * 1e3
    figures["controller latency, created -> ingress IP: p99 ms"] = percentile(latencies, 99) * 1e3
    figures["baseline (create + own status write): p50 ms"] = percentile(floor, 50) * 1e3
    figures["baseline (create + own status write): p99 ms"] = percentile(floor, 99) * 1e3
    figures["latency added by the controller, p50: ms"] = (
        percentile(latencies, 50) - percentile(floor, 50)
    ) * 1e3


def bulk_create(api: KubeClient, ns: str, lb_class: str, n: int) -> float:
    services = [manifest(f"s{i:04d}", ns, lb_class) for i in range(n)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda svc: api.create(SERVICES, svc, ns), services))
    return started


def test_bulk_create_1000_until_all_assigned(
    plane: LocalControlPlane, api: KubeClient, figures: dict[str, float]
) -> None:
    # Baseline: the same creates, no controller.
    ns = namespace(api, "bare")
    started = bulk_create(api, ns, "bench.metallb-py/unserved", N_BULK)
    bare = time.monotonic() - started

    lb_class = "bench.metallb-py/bulk"
    controller, client = run_controller(plane, lb_class)
    ns = namespace(api, "bulk")
    try:
        with IngressWatcher(api, ns) as watcher:
            before = client.requests.snapshot()
            started = bulk_create(api, ns, lb_class, N_BULK)
            created = time.monotonic() - started
            watcher.wait(count=N_BULK, timeout=600)
            wall = max(watcher.seen.values()) - started
            controller.events.flush(60)
            after = client.requests.snapshot()
        assert len(set(watcher.ips.values())) == N_BULK
    finally:
        controller.stop()
        client.close()
    sent = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    total = sum(sent.values())
    figures["bulk 1,000 Services: wall time until all assigned, s"] = wall
    figures["bulk 1,000 Services: of which creating them took, s"] = created
    figures["baseline (1,000 creates, no controller): wall time, s"] = bare
    figures["bulk wall time / baseline creates"] = wall / bare
    figures["API requests per Service (controller, all verbs)"] = total / N_BULK
    for (verb, resource), count in sorted(sent.items()):
        if count:
            figures[f"  of which {verb} {resource} per Service"] = count / N_BULK


# -- restart with many Services ------------------------------------------------------------------------------

RESTART_CLASS = "bench.metallb-py/restart"
# The controller's log lines that start each phase of a restart, in order.
PHASES = (
    ("controller started", "at 'controller started' (imports, clients, threads)"),
    ("leading: restoring state from the cluster", "at 'leading' (lease held, every watch listed)"),
    ("restored existing assignments", "at 'restored' (configuration loaded, assignments restored)"),
)


# `python -c PROFILED OUT ARGS...`: the CLI with ARGS, every thread under cProfile counting that thread's CPU
# time (wall time would count the other processes of a shared machine), the statistics merged into OUT when
# it returns (threads still running are included up to that moment).
PROFILED = """
import cProfile, pstats, sys, threading, time
out, argv = sys.argv[1], sys.argv[2:]
profiles = []
plain_run = threading.Thread.run
def run(self):
    profile = cProfile.Profile(time.thread_time)
    profiles.append(profile)
    profile.enable()
    try:
        plain_run(self)
    finally:
        profile.disable()
threading.Thread.run = run
from metallb_py.cli import main
profile = cProfile.Profile(time.thread_time)
try:
    code = profile.runcall(main, argv)
finally:
    stats = pstats.Stats(profile)
    for other in profiles:
        other.create_stats()
        stats.add(other)
    stats.dump_stats(out)
sys.exit(code)
"""


def start_controller_process(plane: LocalControlPlane, log: Path, profile: str | None = None) -> ChildProcess:
    program = ["-c", PROFILED, profile] if profile else ["-m", "metallb_py.cli"]
    argv = [
        sys.executable,
        *program,
        "controller",
        f"--kubeconfig={plane.kubeconfig}",
        f"--namespace={CONFIG_NS}",
        f"--lb-class={RESTART_CLASS}",
        "--identity=bench-restart",
        "--lease-name=bench-restart",
        "--metrics-port=0",
    ]
    return ChildProcess("controller", argv, log, {**os.environ, **NO_PROXY_ENV})


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of `pid` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steady_rss_mib(pid: int) -> tuple[float, float]:
    """The resident set once three readings a second apart agree within 1 MiB (at most a minute)."""
    readings = [rss_mib(pid)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1)
        readings.append(rss_mib(pid))
        last = [r[0] for r in readings[-3:]]
        if len(last) == 3 and max(last) - min(last) < 1:
            break
    return readings[-1]


def log_times(log: Path, since_wall: float) -> dict[str, float]:
    """Seconds after `since_wall` at which each message of the log (from then on) first appeared."""
    seen: dict[str, float] = {}
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
            stamp = dt.datetime.fromisoformat(str(record["ts"]).rstrip("Z")).replace(tzinfo=dt.UTC)
        except (ValueError, KeyError, TypeError):
            continue
        at = stamp.timestamp() - since_wall
        if at >= 0:
            seen.setdefault(str(record.get("msg")), at)
    return seen


def restart_until_served(
    plane: LocalControlPlane,
    api: KubeClient,
    controller: ChildProcess,
    *,
    log: Path,
    ns: str,
    name: str,
    profile: str | None = None,
) -> tuple[ChildProcess, float, dict[str, float]]:
    """Stops `controller`, starts it again, creates Service `name` at once: the new process, the seconds from
    its start until the Service showed its address, and when each phase of the restart began (with the CPU
    seconds the new process spent until the Service was served, which a loaded machine does not inflate as
    it does the wall time)."""
    controller.stop(30)
    with IngressWatcher(api, ns) as watcher:
        started_wall, started = time.time(), time.monotonic()
        restarted = start_controller_process(plane, log, profile)
        api.create(SERVICES, manifest(name, ns, RESTART_CLASS), ns)
        watcher.wait(name, timeout=600)
        cpu = cpu_seconds(restarted.pid)
        served = watcher.seen[name] - started
    times = log_times(log, started_wall)
    phases = {label: times.get(msg, float("nan")) for msg, label in PHASES}
    return restarted, served, {**phases, "CPU seconds of the new process until then": cpu}


# Creating and assigning take about 20 ms a Service here; the rest is a minute at most.
@pytest.mark.timeout(300 + N_RESTART // 20)
def test_restart_with_many_services_until_a_new_one_is_served(
    plane: LocalControlPlane,
    api: KubeClient,
    figures: dict[str, float],
    progress: Any,
    bench_logs: Any,
) -> None:
    n = N_RESTART
    logs: AbstractContextManager[Path] = bench_logs(LOG_DIR, "metallb-py-bench-controller-")
    with logs as directory:
        log = directory / "controller-restart.log"
        bulk, fresh = namespace(api, "restart"), namespace(api, "fresh")
        controller = start_controller_process(plane, log)
        try:
            with IngressWatcher(api, fresh) as watcher:
                api.create(SERVICES, manifest("first", fresh, RESTART_CLASS), fresh)
                watcher.wait("first", timeout=120)
            idle_rss, _ = steady_rss_mib(controller.pid)
            # Baseline: the same restart with none of the Services there.
            controller, baseline, baseline_phases = restart_until_served(
                plane, api, controller, log=log, ns=fresh, name="new-empty"
            )
            progress(f"restart without the Services: {baseline:.2f} s; creating {n:,} Services")

            with IngressWatcher(api, bulk) as watcher:
                started = time.monotonic()
                services = [manifest(f"s{i:05d}", bulk, RESTART_CLASS) for i in range(n)]
                with ThreadPoolExecutor(16) as pool:
                    for done, _ in enumerate(
                        pool.map(lambda svc: api.create(SERVICES, svc, bulk), services), 1
                    ):
                        if done % 1000 == 0:
                            progress(f"  {done:,} created, {len(watcher.seen):,} assigned")
                created = time.monotonic() - started
                while len(watcher.seen) < n:
                    watcher.wait(count=min(n, len(watcher.seen) + 1000), timeout=600)
                    progress(f"  {len(watcher.seen):,} assigned")
                assigned = max(watcher.seen.values()) - started
                assert len(set(watcher.ips.values())) == n
            rss, peak = steady_rss_mib(controller.pid)
            progress(f"all {n:,} assigned after {assigned:.1f} s; restarting the controller")

            controller, served, phases = restart_until_served(
                plane, api, controller, log=log, ns=fresh, name="new-after", profile=PROFILE
            )
            rss_after, peak_after = steady_rss_mib(controller.pid)
        finally:
            controller.stop(30)
        assert controller.returncode == 0, controller.tail()

    label = f"{n:,} Services"
    figures[f"restart with {label}: start -> new Service served, s"] = served
    for phase, at in phases.items():
        figures[f"  {phase}, s"] = at
    figures["baseline (restart, none of them): start -> new Service served, s"] = baseline
    for phase, at in baseline_phases.items():
        figures[f"  baseline {phase}, s"] = at
    figures[f"restart with {label} / baseline"] = served / baseline
    figures[f"{label}: created in, s"] = created
    figures[f"{label}: all assigned after, s"] = assigned
    figures["controller RSS, no Services of its class: MiB"] = idle_rss
    figures[f"controller RSS, {label} assigned (steady): MiB"] = rss
    figures[f"controller peak RSS, {label}: MiB"] = peak
    figures[f"controller RSS after the restart with {label}: MiB"] = rss_after
    figures["controller peak RSS after the restart: MiB"] = peak_after
    figures["controller RSS per Service: KiB"] = (rss - idle_rss) * 1024 / n


# -- the restart's work in-process, at the size ----------------------------------------------------

N_INPROCESS = int(os.environ.get("METALLB_PY_BENCH_RESTART_INPROCESS", "10000"))


def api_service(i: int, ns: str) -> dict[str, Any]:
    """A LoadBalancer Service as the API server returns it once assigned (managed fields included)."""
    ip = f"10.64.{i // 250}.{i % 250 + 1}"
    stamp = f"2026-01-01T00:{i // 3600 % 60:02d}:{i // 60 % 60:02d}Z"
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": f"s{i:05d}",
            "namespace": ns,
            "uid": str(uuid.UUID(int=i)),
            "resourceVersion": str(1000 + i),
            "creationTimestamp": stamp,
            "annotations": {"metallb.io/ip-allocated-from-pool": "bench"},
            "managedFields": [
                {"manager": "bench", "operation": "Update", "apiVersion": "v1", "time": stamp},
                {"manager": "metallb-py", "operation": "Update", "subresource": "status", "time": stamp},
            ],
        },
        "spec": {
            "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30000 + i % 2000}],
            "clusterIP": f"10.96.{i // 250 % 16}.{i % 250 + 1}",
            "clusterIPs": [f"10.96.{i // 250 % 16}.{i % 250 + 1}"],
            "type": "LoadBalancer",
            "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "allocateLoadBalancerNodePorts": True,
            "loadBalancerClass": RESTART_CLASS,
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}},
    }


def test_restart_work_in_process(figures: dict[str, float]) -> None:
    """What a restarted controller does with every Service before a new one, timed piece by piece (CPU
    time of this thread) on `N_INPROCESS` assigned Services built in memory: no API server, so the figures
    at 10,000 cost seconds here, and say where the restart's time goes. Pieces: the two sorts into
    allocation order (restore's and the queue's), `restore_assignments`, and one worker pass
    (`reconcile_service`) over every Service already assigned, which is what a new Service waits behind."""
    n = N_INPROCESS
    services = [api_service(i, "restart") for i in range(n)]
    allocator = Allocator()
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "bench", "namespace": CONFIG_NS},
        "spec": {"addresses": ["10.64.0.0/16"]},
    }
    assert ConfigState(CONFIG_NS).apply([pool], allocator).loaded

    def cpu(run: Any) -> tuple[float, Any]:
        started = time.thread_time()
        result = run()
        return time.thread_time() - started, result

    sort_time, _ = cpu(lambda: sorted(services, key=service_order))
    parse_time, _ = cpu(lambda: [service_request(svc) for svc in services])
    restore_time, kept = cpu(lambda: restore_assignments(services, allocator, lb_class=RESTART_CLASS))
    assert len(kept) == n and all(kept.values())
    keys = [f"restart/s{i:05d}" for i in range(n)]

    def pass_over_all() -> list[Any]:
        return [
            reconcile_service(key, svc, allocator, lb_class=RESTART_CLASS)
            for key, svc in zip(keys, services, strict=True)
        ]

    pass_time, decisions = cpu(pass_over_all)
    assert not any(d.writes for d in decisions), "a restored Service needs no write"
    label = f"in-process, {n:,} assigned Services"
    figures[f"{label}: sort into allocation order, s"] = sort_time
    figures[f"{label}: parse each (service_request), s"] = parse_time
    figures[f"{label}: restore_assignments (sorts and parses), s"] = restore_time
    figures[f"{label}: one reconcile_service each, s"] = pass_time
    figures[f"{label}: restore + queue sort + one pass, s"] = restore_time + sort_time + pass_time
    figures[f"{label}: per Service, restore + sort + pass, ms"] = (
        (restore_time + sort_time + pass_time) * 1e3 / n
    )
