"""The controller under API latency: N Services (1,000 in the README's figure) created while every response
the controller gets from the API server waits 500 ms (a Toxiproxy latency toxic between them), wall time
until all show an address.

Baseline, same session: the same creates served by a controller behind the same proxy with no toxic.
The creates themselves go straight to the API server in both runs (8 concurrent clients): only the
controller's side is slow. Times are taken when the benchmark's own observer (testing.faults.ServiceObserver,
straight to the API server) sees each address; every address must be distinct (checked by the fault
checker), no timing is asserted.

FAULTS_BENCH_SERVICES=N sets the count: 200 by default (what `make bench` and CI run, about 3.5 minutes under
latency); `make bench-faults` runs the 1,000 (about 17 minutes). FAULTS_BENCH_LATENCY_MS changes the 500.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metallb_py.controller import Controller, ControllerOptions
from metallb_py.k8s import KubeClient, connect
from metallb_py.k8s.resources import IP_ADDRESS_POOLS, NAMESPACES, SERVICES
from metallb_py.testing import (
    ControlPlaneError,
    ControlPlaneUnavailableError,
    LocalControlPlane,
    Observation,
    ServiceObserver,
    Toxic,
    Toxiproxy,
    ToxiproxyNotBuiltError,
    check,
)
from metallb_py.testing.faults import Proxy, addresses

N = int(os.environ.get("FAULTS_BENCH_SERVICES", "200"))
LATENCY_MS = int(os.environ.get("FAULTS_BENCH_LATENCY_MS", "500"))
CONFIG_NS = "metallb-system"
POOL_RANGE = "10.66.0.0/20"


@dataclass
class Bench:
    cp: LocalControlPlane
    api: KubeClient
    proxy: Proxy
    through_proxy: Path
    observer: ServiceObserver


def _unavailable(exc: Exception) -> None:
    if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
        raise exc
    pytest.skip(f"no fault lab: {exc}")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    cp = LocalControlPlane()
    toxiproxy = Toxiproxy()
    try:
        cp.start()
        toxiproxy.start()
    except (ControlPlaneUnavailableError, ToxiproxyNotBuiltError) as exc:
        cp.stop()
        _unavailable(exc)
    except ControlPlaneError:
        cp.stop()
        raise
    try:
        api = connect(cp.kubeconfig)
        through_proxy = tmp_path_factory.mktemp("faults") / "proxy.kubeconfig"
        proxy = toxiproxy.proxy_api_server(cp, through_proxy)
        api.create(NAMESPACES, {"metadata": {"name": CONFIG_NS}})
        pool = {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "bench", "namespace": CONFIG_NS},
            "spec": {"addresses": [POOL_RANGE]},
        }
        api.create(IP_ADDRESS_POOLS, pool, CONFIG_NS)
        with ServiceObserver(cp.kubeconfig) as observer:
            yield Bench(cp, api, proxy, through_proxy, observer)
        api.close()
    finally:
        toxiproxy.stop()
        cp.stop()


def assigned_in(ns: str, n: int) -> Callable[[Mapping[str, Observation]], bool]:
    prefix = f"{ns}/"
    return lambda current: sum(1 for k, o in current.items() if k.startswith(prefix) and o.ips) >= n


def bulk_run(bench: Bench, name: str, progress: Callable[[str], None]) -> dict[str, float]:
    """Starts a controller (its own class) behind the proxy, creates N Services, waits for every address;
    returns the wall time from the first create to the last address seen, and the creates' own time."""
    lb_class = f"bench.metallb-py/{name}"
    ns = f"{name}-{uuid.uuid4().hex[:6]}"
    bench.api.create(NAMESPACES, {"metadata": {"name": ns}})
    client = connect(bench.through_proxy)
    options = ControllerOptions(
        namespace=CONFIG_NS, lb_class=lb_class, identity=f"bench-{name}", lease_name=f"bench-{name}"
    )
    controller = Controller(client, options)
    controller.start()
    try:
        assert controller.ready.wait(300), "the controller did not start"
        services: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"s{i:04d}", "namespace": ns},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": lb_class, "ports": [{"port": 80}]},
            }
            for i in range(N)
        ]
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda svc: bench.api.create(SERVICES, svc, ns), services))
        created = time.monotonic() - started
        progress(f"  {name}: {N} Services created in {created:.1f} s; waiting for every address")
        for step in range(1, 11):
            waited = bench.observer.wait_for(assigned_in(ns, N * step // 10), 3600)
            assert waited, f"{name}: not every Service got an address within an hour"
            progress(f"  {name}: {N * step // 10} assigned after {time.monotonic() - started:.1f} s")
    finally:
        controller.stop()
        client.close()
    # Each run's controller serves its own class and, as MetalLB's, ignores the other class's addresses: the
    # runs are judged apart.
    history = [o for o in bench.observer.history() if o.key.startswith(f"{ns}/")]
    first_seen: dict[str, float] = {}
    for obs in history:
        if obs.ips:
            first_seen.setdefault(obs.key, obs.at)
    verdict = check(history, addresses(POOL_RANGE))
    assert verdict.ok, str(verdict)
    return {"wall": max(first_seen.values()) - started, "created": created}


# About one second per Service under 500 ms (two writes in a row): far beyond the default 300 s.
@pytest.mark.timeout(3 * 3600)
def test_bulk_create_under_api_latency(
    bench: Bench, figures: dict[str, float], progress: Callable[[str], None]
) -> None:
    progress(f"baseline: {N} Services, the controller behind Toxiproxy with no toxic")
    baseline = bulk_run(bench, "baseline", progress)
    progress(f"latency: {N} Services, every API response to the controller {LATENCY_MS} ms late")
    with bench.proxy.toxic(Toxic.latency(LATENCY_MS)):
        slow = bulk_run(bench, "latency", progress)
    figures[f"{N:,} Services, {LATENCY_MS} ms API latency: wall time until all assigned, s"] = slow["wall"]
    figures["  of which creating them (straight to the API), s"] = slow["created"]
    figures[f"{N:,} Services, no latency (baseline): wall time until all assigned, s"] = baseline["wall"]
    figures[f"{LATENCY_MS} ms latency / baseline"] = slow["wall"] / baseline["wall"]
    figures[f"{LATENCY_MS} ms latency: s per Service"] = slow["wall"] / N
