"""End-to-end tests: a LabCluster (local control plane, namespace lab, controller, a speaker per node).

Every test here is marked `integration` and `netns`: it needs the Kubernetes binaries (`make k8s` builds and
caches them; pytest only looks for them) and root. Without them the tests skip with the reason;
METALLB_PY_REQUIRE_K8S=1 / METALLB_PY_REQUIRE_NETNS=1 (as in CI) make that a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from metallb_py.testing import ControlPlaneUnavailableError, ensure_kubernetes_binaries

HERE = Path(__file__).parent


def pytest_itemcollected(item: pytest.Item) -> None:
    if HERE in item.path.parents:
        item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.netns)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [tool for tool in ("ip", "ndisc6") if shutil.which(tool) is None]
    reason = None
    if os.geteuid() != 0:
        reason = "needs root for network namespaces"
    elif missing:
        reason = f"needs {', '.join(missing)} (apt-get install iproute2 ndisc6)"
    mine = [item for item in items if HERE in item.path.parents]
    if reason is None or not mine:
        return
    if os.environ.get("METALLB_PY_REQUIRE_NETNS") == "1":
        raise pytest.UsageError(f"METALLB_PY_REQUIRE_NETNS=1 but the end-to-end tests cannot run: {reason}")
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def kubernetes_binaries() -> None:
    try:
        ensure_kubernetes_binaries()  # looks in the cache only: never builds
    except ControlPlaneUnavailableError as exc:
        if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
            pytest.fail(f"no local Kubernetes control plane (METALLB_PY_REQUIRE_K8S=1): {exc}", pytrace=False)
        pytest.skip(f"no local Kubernetes control plane: {exc}")
