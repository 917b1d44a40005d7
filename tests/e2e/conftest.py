"""End-to-end tests: a LabCluster (local control plane, namespace lab, controller, a speaker per node).

Every test here is marked `integration` and `netns` (tests/conftest.py skips those without root and the
clients): it needs the Kubernetes binaries (`make k8s` builds and
caches them; pytest only looks for them) and root. Without them the tests skip with the reason;
METALLB_PY_REQUIRE_K8S=1 / METALLB_PY_REQUIRE_NETNS=1 (as in CI) make that a failure.

The set-up several modules share is here too, imported as `from .conftest import ...`: the usual lab
(`seeded_cluster`: three workers and an excluded control-plane node, MetalLB's seed layer 2 configuration)
and the Service most tests announce (`create_web_service`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from metallb_py.k8s.resources import SERVICES
from metallb_py.testing import ControlPlaneUnavailableError, LabCluster, ensure_kubernetes_binaries

HERE = Path(__file__).parent
SEED_CONFIG = HERE.resolve().parents[1] / "examples" / "seed" / "metallb-l2config.yaml"
WORKERS = ("node1", "node2", "node3")
CONTROL_PLANE = "control-plane"


def pytest_itemcollected(item: pytest.Item) -> None:
    if HERE in item.path.parents:
        item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="session")
def kubernetes_binaries() -> None:
    try:
        ensure_kubernetes_binaries()  # looks in the cache only: never builds
    except ControlPlaneUnavailableError as exc:
        if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
            pytest.fail(f"no local Kubernetes control plane (METALLB_PY_REQUIRE_K8S=1): {exc}", pytrace=False)
        pytest.skip(f"no local Kubernetes control plane: {exc}")


@contextlib.contextmanager
def seeded_cluster(prefix: str, log_dir: Path) -> Iterator[LabCluster]:
    """A LabCluster of WORKERS and CONTROL_PLANE (namespaces named from `prefix`, logs in `log_dir`) with
    MetalLB's seed layer 2 configuration (examples/seed/metallb-l2config.yaml) applied."""
    with LabCluster(WORKERS, CONTROL_PLANE, prefix=prefix, log_dir=log_dir) as cluster:
        cluster.kubectl("apply", "-f", str(SEED_CONFIG))
        yield cluster


def create_web_service(cluster: LabCluster, timeout: float = 60.0) -> str:
    """Creates the LoadBalancer Service default/web (port 80, selector app=web) with a ready endpoint on
    every worker, and returns the address the controller gave it (waiting up to `timeout` seconds)."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    cluster.client.create(SERVICES, manifest, "default")
    cluster.publish_endpoints("default", "web")
    ips = cluster.wait_for(lambda: cluster.external_ips("default", "web"), timeout, "an address for web")
    return ips[0]
